//! The one record a request produces. Every way out of the guest (log line,
//! pipe, network) carries exactly this, and the relay turns it into a span
//! and metrics with the same code.

pub mod build;
pub mod facts;
pub mod resource;
pub mod span;
pub mod status;

pub use build::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the status in a record was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusSource {
    /// Read from the buffered response.
    Buffered,
    /// The response switched protocols (WebSocket): 101.
    Upgrade,
    /// A streamed gRPC response: HTTP 200, gRPC status in `grpc_status`.
    Grpc,
    /// A streamed response whose status the host does not reveal: 0.
    Unknown,
    /// A streamed response whose status the status probe middleware saw.
    Probe,
    /// A streamed response whose `Content-Range` tells 206 or 416.
    #[serde(rename = "content_range")]
    ContentRange,
    /// A streamed response that failed midway, as when the client left: 499.
    Aborted,
}

/// Status code nginx and Traefik use for a client that closed the connection.
pub const CLIENT_CLOSED: u16 = 499;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub start_ns: i64,
    pub duration_ns: i64,
    pub host: String,
    pub method: String,
    pub path: String,
    pub scheme: String,
    pub protocol: String,
    pub status: u16,
    pub status_source: StatusSource,
    pub client_addr: String,
    pub user_agent: String,
    pub trace_id_high: u64,
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_id: u64,
    pub sampling_priority: i8,
    pub sampling_mechanism: u8,
    pub sample_rate: f64,
    pub service: String,
    pub env: String,
    pub version: String,
    pub name: String,
    pub resource: String,
    pub error: bool,
    /// `_dd.origin` of the incoming context (`synthetics`...); empty: none.
    /// Defaulted so frames and lines written before these fields still read.
    #[serde(default)]
    pub origin: String,
    /// `_dd.propagation_error` (`extract_max_size`...); empty: none.
    #[serde(default)]
    pub propagation_error: String,
    /// Inherited `_dd.p.*` tags other than `_dd.p.tid`/`_dd.p.dm`, as
    /// `x-datadog-tags` encodes them (`k=v,k=v`); empty: none.
    #[serde(default)]
    pub propagation_tags: String,
    /// Tags from `headerTags`: tag name -> header value.
    #[serde(default)]
    pub header_tags: BTreeMap<String, String>,
    /// The guest already sent this request's DogStatsD lines (network
    /// mode): readers build the span but must not count the request again.
    #[serde(default)]
    pub metrics_sent: bool,
    /// The response body's size where known (`Content-Length`).
    #[serde(default)]
    pub content_length: Option<u64>,
    /// gRPC's status code (the `grpc-status` trailer) of a gRPC response.
    #[serde(default)]
    pub grpc_status: Option<u8>,
    /// Calls into the guest instance that wrote this record which were
    /// aborted (a trap) and recovered from since its previous record. Not
    /// the request's own: the relay sums them (`plugin_recovered_calls`).
    #[serde(default)]
    pub recovered_calls: u32,
    /// Values of this request (headers, the URI) present but too large for
    /// the guest to read: each stands as `...` in the record or was judged
    /// without its value. The relay sums them (`plugin_unread_values`).
    #[serde(default)]
    pub unread_values: u16,
    /// Tags every record of the instance carries (`DD_TAGS` from the
    /// environment Traefik hands the plugin): span meta that never
    /// overrides the span's own tags, and DogStatsD tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Record {
    /// `client_error` for 4xx, `server_error` for 5xx, whatever the error
    /// rule: the old sidecar's dashboards split on it.
    pub fn error_type(&self) -> &'static str {
        status::error_type(self.status)
    }

    pub fn client_host(&self) -> &str {
        facts::client_host(&self.client_addr)
    }

    /// `scheme://host/path`, never with the query string.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    /// The record's string fields, header tags apart: the one list for
    /// whatever weighs, bounds or cuts them.
    pub fn strings(&self) -> [&String; STRING_FIELDS] {
        [
            &self.host,
            &self.method,
            &self.path,
            &self.scheme,
            &self.protocol,
            &self.client_addr,
            &self.user_agent,
            &self.service,
            &self.env,
            &self.version,
            &self.name,
            &self.resource,
            &self.origin,
            &self.propagation_error,
            &self.propagation_tags,
        ]
    }

    /// [`Record::strings`], to change them.
    pub fn strings_mut(&mut self) -> [&mut String; STRING_FIELDS] {
        [
            &mut self.host,
            &mut self.method,
            &mut self.path,
            &mut self.scheme,
            &mut self.protocol,
            &mut self.client_addr,
            &mut self.user_agent,
            &mut self.service,
            &mut self.env,
            &mut self.version,
            &mut self.name,
            &mut self.resource,
            &mut self.origin,
            &mut self.propagation_error,
            &mut self.propagation_tags,
        ]
    }
}

/// How many string fields [`Record::strings`] lists.
pub const STRING_FIELDS: usize = 15;

/// The sample request of the README and the golden lines: one fixture for
/// the tests of plugin and relay alike. Unused by the guest, so the linker
/// leaves it out of the module.
#[doc(hidden)]
pub mod sample {
    use super::facts::{RequestFacts, ResponseFacts};
    use super::status::StatusSet;
    use super::*;
    use crate::propagation::ids::TraceId;
    use crate::propagation::{Propagation, SpanContext};
    use crate::record::resource::ResourceFrom;
    use crate::sampling::Decision;

    pub fn facts() -> RequestFacts {
        RequestFacts {
            start_ns: 1_795_617_227_123_456_000,
            host: "a.example".into(),
            method: "GET".into(),
            path: "/users/7".into(),
            scheme: "https".into(),
            protocol: "HTTP/1.1".into(),
            client_addr: "10.1.2.3:55555".into(),
            user_agent: "curl/8.5".into(),
            ..RequestFacts::default()
        }
    }

    pub fn ctx() -> SpanContext {
        SpanContext {
            trace_id: TraceId {
                high: 0x6b0e_a0cb_0000_0000,
                low: 0x1234_5678_9abc_def0,
            },
            span_id: 42,
            parent_id: 0,
            sampling: Decision {
                priority: 1,
                mechanism: 0,
                rate: 1.0,
            },
        }
    }

    /// A buffered response of `status` that ended at `end_ns`.
    pub fn response(end_ns: i64, status: u16) -> ResponseFacts {
        ResponseFacts::new(end_ns, status, StatusSource::Buffered)
    }

    pub fn record(status: u16) -> Record {
        let errors = StatusSet::server_errors();
        let settings = Settings {
            service: "edge",
            env: "prod",
            version: "1.2.3",
            span_name: "traefik.request",
            resource_from: ResourceFrom::Host,
            error_statuses: &errors,
            tags: &BTreeMap::new(),
        };
        Record::build(
            &settings,
            facts(),
            &Propagation::root(ctx()),
            response(1_795_617_227_123_456_000 + 15_250_000, status),
            0,
        )
    }
}
