//! The Datadog span a record becomes, with every tag set in this one place.
//! Field names and types are those of the trace agent's `/v0.4/traces` map.

use crate::record::Record;
use crate::sampling::agent::normalize_service;
use crate::sampling::{MECHANISM_AGENT_RATE, MECHANISM_RULE};
use crate::text::truncate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The value of `component`, as nginx-datadog sets `component=nginx`.
pub const COMPONENT: &str = "traefik";
/// `language`, as every Datadog tracer sets it (nginx-datadog: `cpp`).
pub const LANGUAGE: &str = "rust";

/// Unified service tagging's keys: the span's `service`, and its `env` and
/// `version` meta, come from the record's fields only.
pub const UNIFIED: [&str; 3] = ["service", "env", "version"];

/// The trace agent's normalisation limits (`pkg/trace/traceutil`); the
/// service's is the agent's key's ([`normalize_service`]).
pub const MAX_NAME_LEN: usize = 100;
pub const MAX_RESOURCE_LEN: usize = 5000;

/// Span names as the agent keeps them: at most 100 bytes of `[a-zA-Z0-9_.]`
/// (others become `_`), starting with a letter.
pub fn normalize_name(s: &str) -> String {
    let cleaned: String = s
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match truncate(&cleaned, MAX_NAME_LEN) {
        n if n.is_empty() => "unnamed_operation".to_owned(),
        n => n,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub resource: String,
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_id: u64,
    pub start: i64,
    pub duration: i64,
    pub error: i32,
    pub meta: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    #[serde(rename = "type")]
    pub span_type: String,
}

/// What Traefik knows about a request and the guest does not: the host adds
/// these fields to the guest's log lines, and the relay reads them back.
/// Empty fields add no tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFields {
    pub router_name: String,
    pub entrypoint_name: String,
}

impl Span {
    pub fn from_record(r: &Record) -> Self {
        Self::from_record_with(r, &HostFields::default())
    }

    /// The span of a record, with the host's fields as `traefik.*` tags.
    pub fn from_record_with(r: &Record, host: &HostFields) -> Self {
        let mut meta = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                meta.insert(k.to_owned(), v.to_owned());
            }
        };
        put("component", COMPONENT);
        put("span.kind", "server");
        put("env", &r.env);
        put("version", &r.version);
        put("http.method", &r.method);
        put("http.url", &r.url());
        put("http.host", &r.host);
        put("http.useragent", &r.user_agent);
        put("peer.hostname", r.client_host());
        put("resource_name", &r.resource);
        put("error.type", r.error_type());
        if r.status != 0 {
            put("http.status_code", &r.status.to_string());
        }
        if let Some(code) = r.grpc_status {
            put("grpc.status.code", &code.to_string());
        }
        if r.trace_id_high != 0 {
            put("_dd.p.tid", &crate::text::hex16(r.trace_id_high));
        }
        put(
            "_dd.p.dm",
            &crate::sampling::decision_maker(r.sampling_mechanism),
        );
        put("traefik.router.name", &host.router_name);
        put("traefik.entrypoint.name", &host.entrypoint_name);
        // Trace context propagation: Synthetics and RUM origins (the agent's
        // `synthetics` stats dimension), why incoming tags were dropped, and
        // the inherited `_dd.p.*` tags (never overriding tid/dm above).
        put("_dd.origin", &r.origin);
        put("_dd.propagation_error", &r.propagation_error);
        for (k, v) in r
            .propagation_tags
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, v)| k.starts_with("_dd.p.") && *k != "_dd.p.tid" && !v.is_empty())
        {
            meta.entry(k.to_owned()).or_insert_with(|| v.to_owned());
        }
        // User-chosen header tags never override the schema's own tags.
        for (k, v) in &r.header_tags {
            meta.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // The instance's tags (`DD_TAGS`) neither: nor the unified service
        // tags, which the record's own fields alone give.
        for (k, v) in r
            .tags
            .iter()
            .filter(|(k, _)| !UNIFIED.contains(&k.as_str()))
        {
            if !v.is_empty() {
                meta.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        meta.insert("language".to_owned(), LANGUAGE.to_owned());

        let mut metrics = BTreeMap::new();
        metrics.insert(
            "_sampling_priority_v1".to_owned(),
            f64::from(r.sampling_priority),
        );
        // The agent computes trace metrics only for top-level or measured spans.
        metrics.insert("_top_level".to_owned(), 1.0);
        metrics.insert("_dd.measured".to_owned(), 1.0);
        if let Some(len) = r.content_length {
            metrics.insert("http.response.content_length".to_owned(), len as f64);
        }
        // Only for a rate the plugin applied: an inherited decision has none
        // (negative rate).
        if r.sample_rate >= 0.0 {
            match r.sampling_mechanism {
                MECHANISM_RULE => metrics.insert("_dd.rule_psr".to_owned(), r.sample_rate),
                MECHANISM_AGENT_RATE => metrics.insert("_dd.agent_psr".to_owned(), r.sample_rate),
                _ => None,
            };
        }

        Self {
            service: normalize_service(&r.service),
            name: normalize_name(&r.name),
            resource: truncate(&r.resource, MAX_RESOURCE_LEN),
            trace_id: r.trace_id,
            span_id: r.span_id,
            parent_id: r.parent_id,
            start: r.start_ns,
            duration: r.duration_ns,
            error: i32::from(r.error),
            meta,
            metrics,
            span_type: "web".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample::record as sample;
    use crate::sampling::INHERITED_RATE;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn server_error_span_has_the_parity_schema() {
        let s = Span::from_record(&sample(503));
        assert_eq!(s.service, "edge");
        assert_eq!(s.name, "traefik.request");
        assert_eq!(s.resource, "a.example");
        assert_eq!(s.span_type, "web");
        assert_eq!(s.error, 1);
        assert_eq!(s.start, 1_795_617_227_123_456_000);
        assert_eq!(s.duration, 15_250_000);
        assert_eq!(
            s.meta,
            m(&[
                ("_dd.p.dm", "-0"),
                ("_dd.p.tid", "6b0ea0cb00000000"),
                ("component", "traefik"),
                ("env", "prod"),
                ("error.type", "server_error"),
                ("http.host", "a.example"),
                ("http.method", "GET"),
                ("http.status_code", "503"),
                ("http.url", "https://a.example/users/7"),
                ("http.useragent", "curl/8.5"),
                ("language", "rust"),
                ("peer.hostname", "10.1.2.3"),
                ("resource_name", "a.example"),
                ("span.kind", "server"),
                ("version", "1.2.3"),
            ])
        );
        let metrics: Vec<(&str, f64)> = s.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            metrics,
            vec![
                ("_dd.measured", 1.0),
                ("_sampling_priority_v1", 1.0),
                ("_top_level", 1.0)
            ]
        );
    }

    #[test]
    fn header_tags_are_added_but_never_override_the_schema() {
        let mut r = sample(200);
        r.header_tags.insert("http.request_id".into(), "r-1".into());
        r.header_tags.insert("http.method".into(), "SPOOF".into());
        let s = Span::from_record(&r);
        assert_eq!(s.meta["http.request_id"], "r-1");
        assert_eq!(s.meta["http.method"], "GET");
    }

    #[test]
    fn instance_tags_are_added_but_never_override_the_schema() {
        let mut r = sample(500);
        r.env = String::new();
        for (k, v) in [
            ("team", "edge"),
            ("http.status_code", "200"),
            ("error.type", "none"),
            ("component", "x"),
            ("env", "spoof"),
            ("version", "9"),
            ("service", "other"),
            ("empty", ""),
        ] {
            r.tags.insert(k.into(), v.into());
        }
        r.header_tags.insert("team".into(), "from-header".into());
        let s = Span::from_record(&r);
        assert_eq!(s.meta["team"], "from-header", "header tags first");
        assert_eq!(s.meta["http.status_code"], "500");
        assert_eq!(s.meta["error.type"], "server_error");
        assert_eq!(s.meta["component"], "traefik");
        assert_eq!(s.meta["version"], "1.2.3");
        assert_eq!(s.service, "edge");
        for absent in ["env", "service", "empty"] {
            assert!(!s.meta.contains_key(absent), "{absent}: {:?}", s.meta);
        }
        r.header_tags.clear();
        assert_eq!(Span::from_record(&r).meta["team"], "edge");
    }

    #[test]
    fn names_are_normalised_as_the_agent_would() {
        let mut r = sample(200);
        r.service = "Edge-Proxy".into();
        r.name = "1traefik request!".into();
        r.resource = "h".repeat(6000);
        let s = Span::from_record(&r);
        assert_eq!(s.service, "edge-proxy");
        assert_eq!(s.name, "traefik_request_");
        assert_eq!(s.resource.len(), 5000);
        assert_eq!(normalize_name("!!!"), "unnamed_operation");
        assert_eq!(normalize_service(&"S".repeat(150)), "s".repeat(100));
        assert_eq!(normalize_name(&"a".repeat(150)).len(), 100);
    }

    #[test]
    fn ok_span_has_no_error_tags() {
        let s = Span::from_record(&sample(200));
        assert_eq!(s.error, 0);
        assert!(!s.meta.contains_key("error.type"));
        assert_eq!(s.meta["http.status_code"], "200");
    }

    #[test]
    fn unknown_status_omits_status_code() {
        let mut r = sample(200);
        r.status = 0;
        assert!(!Span::from_record(&r).meta.contains_key("http.status_code"));
    }

    #[test]
    fn host_fields_become_traefik_tags() {
        let host = HostFields {
            router_name: "r@file".into(),
            entrypoint_name: "web".into(),
        };
        let s = Span::from_record_with(&sample(200), &host);
        assert_eq!(s.meta["traefik.router.name"], "r@file");
        assert_eq!(s.meta["traefik.entrypoint.name"], "web");
        assert_eq!(s.meta.len(), Span::from_record(&sample(200)).meta.len() + 2);
        let none = Span::from_record_with(&sample(200), &HostFields::default());
        assert_eq!(none, Span::from_record(&sample(200)));
    }

    #[test]
    fn propagation_fields_become_tags() {
        let mut r = sample(200);
        r.origin = "synthetics".into();
        r.propagation_error = "extract_max_size".into();
        r.propagation_tags = "_dd.p.usr.id=dXNlcg==,_dd.p.dm=-9,_dd.p.tid=ffffffffffffffff,other=x,_dd.p.ts=02,_dd.p.x=".into();
        let s = Span::from_record(&r);
        let plain = Span::from_record(&sample(200));
        assert_eq!(s.meta["_dd.origin"], "synthetics");
        assert_eq!(s.meta["_dd.propagation_error"], "extract_max_size");
        assert_eq!(s.meta["_dd.p.usr.id"], "dXNlcg==");
        assert_eq!(s.meta["_dd.p.ts"], "02");
        // tid and dm come from the record's ids and decision, not the tags.
        assert_eq!(s.meta["_dd.p.dm"], "-0");
        assert_eq!(s.meta["_dd.p.tid"], "6b0ea0cb00000000");
        assert_eq!(s.meta.len(), plain.meta.len() + 4);
        // Nor does a tid tag stand in for a 64-bit trace id.
        r.trace_id_high = 0;
        assert!(!Span::from_record(&r).meta.contains_key("_dd.p.tid"));
        assert!(!plain.meta.contains_key("_dd.origin"));
        assert!(!plain.meta.contains_key("_dd.propagation_error"));
    }

    #[test]
    fn inherited_rule_decision_reports_no_rate() {
        let mut r = sample(200);
        r.parent_id = 7;
        r.sampling_priority = 2;
        r.sampling_mechanism = 3;
        r.sample_rate = INHERITED_RATE;
        let s = Span::from_record(&r);
        assert_eq!(s.meta["_dd.p.dm"], "-3");
        assert!(!s.metrics.contains_key("_dd.rule_psr"));
        r.sampling_mechanism = 1;
        let s = Span::from_record(&r);
        assert_eq!(s.meta["_dd.p.dm"], "-1");
        assert!(!s.metrics.contains_key("_dd.agent_psr"));
    }

    #[test]
    fn agent_rate_decisions_report_the_agent_rate() {
        for (priority, rate) in [(0, 0.1), (1, 0.1), (1, 1.0)] {
            let mut r = sample(200);
            r.sampling_priority = priority;
            r.sampling_mechanism = 1;
            r.sample_rate = rate;
            let s = Span::from_record(&r);
            assert_eq!(s.meta["_dd.p.dm"], "-1");
            assert_eq!(s.metrics["_dd.agent_psr"], rate);
            assert_eq!(s.metrics["_sampling_priority_v1"], f64::from(priority));
            assert!(!s.metrics.contains_key("_dd.rule_psr"));
        }
    }

    #[test]
    fn a_rule_of_rate_1_reports_it() {
        let mut r = sample(200);
        r.sampling_priority = 2;
        r.sampling_mechanism = 3;
        r.sample_rate = 1.0;
        assert_eq!(Span::from_record(&r).metrics["_dd.rule_psr"], 1.0);
    }

    #[test]
    fn rule_sampling_reports_its_rate() {
        let mut r = sample(200);
        r.sampling_priority = -1;
        r.sampling_mechanism = 3;
        r.sample_rate = 0.25;
        let s = Span::from_record(&r);
        assert_eq!(s.meta["_dd.p.dm"], "-3");
        assert_eq!(s.metrics["_dd.rule_psr"], 0.25);
        assert_eq!(s.metrics["_sampling_priority_v1"], -1.0);
    }
}
