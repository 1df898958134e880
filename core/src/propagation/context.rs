//! What extraction finds and what injection writes.

use super::ids::TraceId;
use super::style::Style;
use super::tags::{TAG_DM, dm_mechanism};

/// The caller's context, as read from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The style it came from.
    pub style: Style,
    /// Never has `low == 0`.
    pub trace_id: TraceId,
    /// The caller's span; 0 only for a Datadog context with an origin
    /// (Synthetics), where the plugin span is the root.
    pub parent_id: u64,
    pub sampling_priority: Option<i8>,
    pub origin: Option<String>,
    /// `_dd.p.*` tags, `_dd.p.dm` included, `_dd.p.tid` not (it is in
    /// `trace_id.high`). Keys and values fit `x-datadog-tags`.
    pub propagation_tags: Vec<(String, String)>,
    /// Other vendors' `tracestate` members, comma-joined, at most 31.
    pub tracestate_others: String,
    /// A value for `_dd.propagation_error`.
    pub error: Option<&'static str>,
}

impl Extracted {
    /// The sampling mechanism carried in `_dd.p.dm`.
    pub fn mechanism(&self) -> Option<u8> {
        self.propagation_tags
            .iter()
            .find(|(k, _)| k == TAG_DM)
            .and_then(|(_, v)| dm_mechanism(v))
    }
}

/// Headers to write into the upstream request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injection {
    /// Set (overwrite) each of these.
    pub set: Vec<(&'static str, String)>,
    /// Then remove each of these (never one that is also set).
    pub remove: Vec<&'static str>,
    /// A value for `_dd.propagation_error`.
    pub error: Option<&'static str>,
}
