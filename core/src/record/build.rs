//! The one place a record is made: from what the request and its response
//! revealed, the span's place in its trace, and the few settings a record
//! takes from the configuration, borrowed.

use super::Record;
use super::facts::{RequestFacts, ResponseFacts};
use super::resource::{ResourceFrom, resource};
use super::status::{StatusSet, grpc_is_error};
use crate::propagation::Propagation;
use std::collections::BTreeMap;

/// What a record takes from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub service: &'a str,
    pub env: &'a str,
    pub version: &'a str,
    pub span_name: &'a str,
    pub resource_from: ResourceFrom,
    /// Statuses that mark the span as an error (`errorStatuses`).
    pub error_statuses: &'a StatusSet,
    /// Tags every record carries (`DD_TAGS`).
    pub tags: &'a BTreeMap<String, String>,
}

impl Record {
    /// The record of a finished request. `recovered_calls`: calls into the
    /// instance aborted since its previous record (see the field). A clock
    /// that stepped back gives duration 0, never a negative one; an unknown
    /// status (0) is never an error, and a gRPC server failure is one even
    /// though HTTP said 200.
    pub fn build(
        settings: &Settings<'_>,
        request: RequestFacts,
        trace: &Propagation,
        response: ResponseFacts,
        recovered_calls: u32,
    ) -> Self {
        let ctx = &trace.ctx;
        let status = response.status;
        let resource = resource(
            settings.resource_from,
            &request.method,
            &request.host,
            &request.path,
        );
        let mut header_tags = request.header_tags;
        header_tags.extend(response.header_tags);
        Self {
            duration_ns: response.end_ns.saturating_sub(request.start_ns).max(0),
            start_ns: request.start_ns,
            status,
            status_source: response.status_source,
            error: (status != 0 && settings.error_statuses.contains(status))
                || response.grpc_status.is_some_and(grpc_is_error),
            trace_id_high: ctx.trace_id.high,
            trace_id: ctx.trace_id.low,
            span_id: ctx.span_id,
            parent_id: ctx.parent_id,
            sampling_priority: ctx.sampling.priority,
            sampling_mechanism: ctx.sampling.mechanism,
            sample_rate: ctx.sampling.rate,
            service: settings.service.to_owned(),
            env: settings.env.to_owned(),
            version: settings.version.to_owned(),
            name: settings.span_name.to_owned(),
            resource,
            host: request.host,
            method: request.method,
            path: request.path,
            scheme: request.scheme,
            protocol: request.protocol,
            client_addr: request.client_addr,
            user_agent: request.user_agent,
            origin: trace.origin().to_owned(),
            propagation_error: trace.error().to_owned(),
            propagation_tags: trace.inherited_tags(),
            header_tags,
            tags: settings.tags.clone(),
            metrics_sent: false,
            content_length: response.content_length,
            grpc_status: response.grpc_status,
            recovered_calls,
            unread_values: request.unread_values.saturating_add(response.unread_values),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::record::StatusSource;
    use crate::record::sample::{ctx, facts, record as sample, response};

    fn build(cfg: &Config, end_ns: i64, status: u16, source: StatusSource) -> Record {
        Record::build(
            &cfg.into(),
            facts(),
            &Propagation::root(ctx()),
            ResponseFacts::new(end_ns, status, source),
            0,
        )
    }

    #[test]
    fn build_fills_every_field() {
        let r = sample(503);
        assert_eq!(r.duration_ns, 15_250_000);
        assert_eq!(r.resource, "a.example");
        assert_eq!(r.name, "traefik.request");
        assert_eq!(r.service, "edge");
        assert!(r.error);
        assert_eq!(r.error_type(), "server_error");
        assert_eq!(r.client_host(), "10.1.2.3");
        assert_eq!(r.url(), "https://a.example/users/7");
        assert_eq!(r.trace_id, 0x1234_5678_9abc_def0);
        assert_eq!(r.span_id, 42);
    }

    #[test]
    fn default_error_rule_is_5xx_only() {
        assert!(!sample(404).error);
        assert_eq!(sample(404).error_type(), "client_error");
        assert_eq!(sample(200).error_type(), "");
        assert!(!sample(499).error);
        assert!(sample(500).error);
    }

    #[test]
    fn sidecar_error_rule_counts_4xx() {
        let cfg = Config {
            error_statuses: StatusSet::parse("400-599").expect("valid"),
            ..Config::default()
        };
        let r = build(&cfg, 0, 404, StatusSource::Buffered);
        assert!(r.error);
        assert_eq!(r.error_type(), "client_error");
    }

    #[test]
    fn unknown_status_is_never_an_error() {
        let cfg = Config {
            error_statuses: StatusSet::parse("100-999").expect("valid"),
            ..Config::default()
        };
        let r = build(&cfg, 0, 0, StatusSource::Unknown);
        assert!(!r.error);
    }

    #[test]
    fn clock_stepping_back_gives_zero_duration() {
        let r = build(&Config::default(), 5, 200, StatusSource::Buffered);
        assert_eq!(r.duration_ns, 0);
    }

    #[test]
    fn grpc_server_failures_are_errors_under_http_200() {
        for (code, error) in [(0, false), (5, false), (13, true), (14, true)] {
            let mut res = response(1, 200);
            res.status_source = StatusSource::Grpc;
            res.grpc_status = Some(code);
            let r = Record::build(
                &(&Config::default()).into(),
                facts(),
                &Propagation::root(ctx()),
                res,
                0,
            );
            assert_eq!((r.grpc_status, r.error), (Some(code), error), "{code}");
        }
    }

    #[test]
    fn both_sides_counts_and_tags_are_kept() {
        let mut req = facts();
        req.unread_values = 2;
        req.header_tags.insert("a".into(), "request".into());
        req.header_tags.insert("b".into(), "request".into());
        let mut res = response(1, 200);
        res.unread_values = 1;
        res.content_length = Some(7);
        // A tag named for both sides takes the response's value.
        res.header_tags.insert("b".into(), "response".into());
        let r = Record::build(
            &(&Config::default()).into(),
            req,
            &Propagation::root(ctx()),
            res,
            3,
        );
        assert_eq!(
            (r.unread_values, r.recovered_calls, r.content_length),
            (3, 3, Some(7))
        );
        assert_eq!(
            r.header_tags.into_iter().collect::<Vec<_>>(),
            [
                ("a".to_owned(), "request".to_owned()),
                ("b".to_owned(), "response".to_owned())
            ]
        );
    }
}
