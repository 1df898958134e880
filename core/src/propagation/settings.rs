//! The part of the configuration propagation reads, borrowed: built from the
//! whole configuration at no cost, so this module depends on nothing larger
//! than what it uses.

use super::style::Style;
use crate::sampling::rate::SampleRate;
use crate::sampling::rules::SamplingRule;

#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Read the caller's context at all (`trustIncoming`).
    pub trust_incoming: bool,
    /// Styles tried in order on extraction.
    pub extract: &'a [Style],
    /// Styles written on injection; none leaves the headers alone.
    pub inject: &'a [Style],
    /// Rates by host, path prefix and method, before `sample_rate`.
    pub sampling_rules: &'a [SamplingRule],
    /// The catch-all rate; `None`: follow the agent's rates.
    pub sample_rate: Option<SampleRate>,
}
