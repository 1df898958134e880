//! Sampling rules: a rate per host (the resource nginx users see), optionally
//! narrowed to a path prefix and a method, like dd-trace's
//! `DD_TRACE_SAMPLING_RULES` and nginx-datadog's per-location
//! `datadog_sample_rate`. The first matching rule decides; `sampleRate` is
//! the catch-all after them; without either the agent's rate applies.
//!
//! `host` is matched without case; `*.example` matches every subdomain of
//! `example`, `*` every host. The configuration reads the rules
//! (`crate::config::rules`).

use super::Source;
use super::rate::SampleRate;

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRule {
    /// Lowercase: `a.example`, `*.example` or `*`.
    pub host: String,
    /// Matched as a plain prefix of the path, as nginx `location /x`.
    pub path_prefix: Option<String>,
    /// Uppercase.
    pub method: Option<String>,
    pub rate: SampleRate,
}

impl SamplingRule {
    pub fn matches(&self, host: &str, path: &str, method: &str) -> bool {
        host_matches(&self.host, host)
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| path.starts_with(p.as_str()))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        // `*.example`: a subdomain, never `example` itself or `xexample`.
        Some(suffix) => {
            host.len() > suffix.len()
                && host.is_char_boundary(host.len() - suffix.len())
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Where the rate of a new trace on `host`, `path`, `method` comes from.
pub fn source(
    rules: &[SamplingRule],
    catch_all: Option<SampleRate>,
    agent_rate: Option<f64>,
    host: &str,
    path: &str,
    method: &str,
) -> Source {
    if let Some(r) = rules.iter().find(|r| r.matches(host, path, method)) {
        return Source::Rule(r.rate.get());
    }
    match (catch_all, agent_rate) {
        (Some(rate), _) => Source::Rule(rate.get()),
        (None, Some(rate)) => Source::Agent(rate),
        (None, None) => Source::Default,
    }
}

/// A rule from its parts, for the tests of this module and of the
/// configuration that parses rules.
#[cfg(test)]
pub(crate) fn rule(
    host: &str,
    path: Option<&str>,
    method: Option<&str>,
    rate: f64,
) -> SamplingRule {
    SamplingRule {
        host: host.into(),
        path_prefix: path.map(Into::into),
        method: method.map(Into::into),
        rate: SampleRate::new(rate).expect("a rate"),
    }
}

#[cfg(test)]
mod tests {
    use super::rule as r;
    use super::*;

    #[test]
    fn first_matching_rule_then_catch_all_then_agent_then_default() {
        let rules = [
            r("a.example", Some("/health"), None, 0.0),
            r("a.example", None, Some("POST"), 1.0),
            r("a.example", None, None, 0.25),
            r("*.b.example", None, None, 0.5),
        ];
        let src = |catch: Option<f64>, agent: Option<f64>, host, path, method| {
            let catch = catch.map(|r| SampleRate::new(r).expect("a rate"));
            source(&rules, catch, agent, host, path, method)
        };
        assert_eq!(
            src(None, None, "a.example", "/healthz", "GET"),
            Source::Rule(0.0)
        );
        assert_eq!(
            src(None, None, "A.Example", "/x", "post"),
            Source::Rule(1.0)
        );
        assert_eq!(
            src(None, None, "a.example", "/x", "GET"),
            Source::Rule(0.25)
        );
        assert_eq!(
            src(None, None, "x.b.example", "/", "GET"),
            Source::Rule(0.5)
        );
        assert_eq!(src(None, None, "b.example", "/", "GET"), Source::Default);
        assert_eq!(
            src(None, Some(0.1), "b.example", "/", "GET"),
            Source::Agent(0.1)
        );
        assert_eq!(
            src(Some(0.3), Some(0.1), "b.example", "/", "GET"),
            Source::Rule(0.3)
        );
        assert_eq!(
            src(Some(0.3), None, "a.example", "/", "GET"),
            Source::Rule(0.25)
        );
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*", ""));
        assert!(host_matches("*.example", "a.example"));
        assert!(host_matches("*.example", "a.b.EXAMPLE"));
        assert!(!host_matches("*.example", "example"));
        assert!(!host_matches("*.example", "xexample"));
        assert!(!host_matches("*.example", ".example"));
        assert!(!host_matches("a.example", "b.example"));
        // Multi-byte hosts never split a character.
        assert!(!host_matches("*.example", "é.exampl"));
    }
}
