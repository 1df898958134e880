//! The fallback line: one JSON object per request, written through the host
//! `log` call so it works on every Traefik. This is the contract the relay
//! reads (documented in the README); field names follow Traefik's access log
//! and Datadog's reserved log attributes where one exists.

use crate::record::{Record, StatusSource};
use crate::text;
use crate::time::rfc3339_micros;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Every line starts with `{"marker":"traefik-datadog","schema":1,` so a
/// reader finds it inside Traefik's own log stream, in any log format.
pub const MARKER: &str = "traefik-datadog";
pub const SCHEMA: u32 = 1;
/// The exact text every line begins with.
pub const PREFIX: &str = "{\"marker\":\"traefik-datadog\",\"schema\":1,";

/// Declares the line's fields once, in their order on the wire: serde
/// attributes, name and type, how a record fills the field and, unless the
/// field is derived from others, which record field it fills back (`$r` and
/// `$line` name the record and the line in those expressions).
macro_rules! line_fields {
    ($r:ident, $line:ident;
     $( $(#[$attr:meta])* $name:ident : $ty:ty = $enc:expr $(=> $field:ident : $dec:expr)? ; )*
    ) => {
        #[derive(Debug, Serialize, Deserialize)]
        struct Line<'a> {
            $( $(#[$attr])* $name: $ty, )*
        }

        fn to_line($r: &Record) -> Line<'_> {
            Line { $( $name: $enc, )* }
        }

        fn from_line($line: Line<'_>) -> Result<Record, LineError> {
            Ok(Record { $( $( $field: $dec, )? )* })
        }
    };
}

// Borrowed fields: the line is built per request in the guest, where each
// copy is an allocation under a slow compiler.
line_fields! { r, line;
    marker: &'a str = MARKER;
    schema: u32 = SCHEMA;
    #[serde(rename = "StartUTC")]
    start_utc: Cow<'a, str> = Cow::Owned(rfc3339_micros(r.start_ns));
    start_ns: i64 = r.start_ns => start_ns: line.start_ns;
    #[serde(rename = "Duration")]
    duration: i64 = r.duration_ns => duration_ns: line.duration;
    #[serde(rename = "RequestHost")]
    host: Cow<'a, str> = b(&r.host) => host: line.host.into_owned();
    #[serde(rename = "RequestMethod")]
    method: Cow<'a, str> = b(&r.method) => method: line.method.into_owned();
    #[serde(rename = "RequestPath")]
    path: Cow<'a, str> = b(&r.path) => path: line.path.into_owned();
    #[serde(rename = "RequestScheme")]
    scheme: Cow<'a, str> = b(&r.scheme) => scheme: line.scheme.into_owned();
    #[serde(rename = "RequestProtocol")]
    protocol: Cow<'a, str> = b(&r.protocol) => protocol: line.protocol.into_owned();
    #[serde(rename = "DownstreamStatus")]
    status: u16 = r.status => status: line.status;
    status_source: StatusSource = r.status_source => status_source: line.status_source;
    #[serde(rename = "ClientHost")]
    client_host: Cow<'a, str> = b(r.client_host());
    #[serde(rename = "ClientAddr")]
    client_addr: Cow<'a, str> = b(&r.client_addr) => client_addr: line.client_addr.into_owned();
    #[serde(rename = "request_User-Agent")]
    user_agent: Cow<'a, str> = b(&r.user_agent) => user_agent: line.user_agent.into_owned();
    #[serde(rename = "dd.trace_id")]
    trace_id: Cow<'a, str> = Cow::Owned(text::u64_string(r.trace_id))
        => trace_id: decimal_id("dd.trace_id", &line.trace_id)?;
    #[serde(rename = "dd.trace_id_high")]
    trace_id_high: Cow<'a, str> = Cow::Owned(text::hex16(r.trace_id_high))
        => trace_id_high: hex_id("dd.trace_id_high", &line.trace_id_high)?;
    #[serde(rename = "dd.span_id")]
    span_id: Cow<'a, str> = Cow::Owned(text::u64_string(r.span_id))
        => span_id: decimal_id("dd.span_id", &line.span_id)?;
    #[serde(rename = "dd.parent_id")]
    parent_id: Cow<'a, str> = Cow::Owned(text::u64_string(r.parent_id))
        => parent_id: decimal_id("dd.parent_id", &line.parent_id)?;
    #[serde(rename = "dd.service")]
    service: Cow<'a, str> = b(&r.service) => service: line.service.into_owned();
    #[serde(rename = "dd.env")]
    env: Cow<'a, str> = b(&r.env) => env: line.env.into_owned();
    #[serde(rename = "dd.version")]
    version: Cow<'a, str> = b(&r.version) => version: line.version.into_owned();
    #[serde(rename = "dd.name")]
    name: Cow<'a, str> = b(&r.name) => name: line.name.into_owned();
    #[serde(rename = "dd.resource")]
    resource: Cow<'a, str> = b(&r.resource) => resource: line.resource.into_owned();
    #[serde(rename = "dd.error")]
    error: u8 = u8::from(r.error) => error: line.error != 0;
    #[serde(rename = "dd.error_type")]
    error_type: Cow<'a, str> = b(r.error_type());
    #[serde(rename = "dd.sampling_priority")]
    sampling_priority: i8 = r.sampling_priority => sampling_priority: line.sampling_priority;
    #[serde(rename = "dd.sampling_mechanism")]
    sampling_mechanism: u8 = r.sampling_mechanism => sampling_mechanism: line.sampling_mechanism;
    #[serde(rename = "dd.sample_rate")]
    sample_rate: f64 = r.sample_rate => sample_rate: line.sample_rate;
    // Trace context propagation; empty when none. Defaulted so lines
    // written before these fields existed still read.
    #[serde(rename = "dd.origin", default)]
    origin: Cow<'a, str> = b(&r.origin) => origin: line.origin.into_owned();
    #[serde(rename = "dd.propagation_error", default)]
    propagation_error: Cow<'a, str> = b(&r.propagation_error)
        => propagation_error: line.propagation_error.into_owned();
    #[serde(rename = "dd.propagation_tags", default)]
    propagation_tags: Cow<'a, str> = b(&r.propagation_tags)
        => propagation_tags: line.propagation_tags.into_owned();
    #[serde(rename = "dd.header_tags", default, skip_serializing_if = "no_tags")]
    header_tags: Cow<'a, BTreeMap<String, String>> = Cow::Borrowed(&r.header_tags)
        => header_tags: line.header_tags.into_owned();
    #[serde(rename = "dd.metrics_sent", default, skip_serializing_if = "is_false")]
    metrics_sent: bool = r.metrics_sent => metrics_sent: line.metrics_sent;
    #[serde(rename = "ContentLength", default, skip_serializing_if = "Option::is_none")]
    content_length: Option<u64> = r.content_length => content_length: line.content_length;
    #[serde(rename = "GrpcStatus", default, skip_serializing_if = "Option::is_none")]
    grpc_status: Option<u8> = r.grpc_status => grpc_status: line.grpc_status;
    #[serde(rename = "dd.recovered_calls", default, skip_serializing_if = "is_zero")]
    recovered_calls: u32 = r.recovered_calls => recovered_calls: line.recovered_calls;
    #[serde(rename = "dd.unread_values", default, skip_serializing_if = "is_zero")]
    unread_values: u16 = r.unread_values => unread_values: line.unread_values;
    #[serde(rename = "dd.tags", default, skip_serializing_if = "no_tags")]
    tags: Cow<'a, BTreeMap<String, String>> = Cow::Borrowed(&r.tags)
        => tags: line.tags.into_owned();
}

fn decimal_id(field: &'static str, v: &str) -> Result<u64, LineError> {
    v.parse::<u64>().map_err(|_| LineError::BadId {
        field,
        value: v.to_owned(),
    })
}

fn hex_id(field: &'static str, v: &str) -> Result<u64, LineError> {
    u64::from_str_radix(v, 16).map_err(|_| LineError::BadId {
        field,
        value: v.to_owned(),
    })
}

/// Why a line that carries the marker could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    Json(String),
    WrongMarker(String),
    UnsupportedSchema(u32),
    BadId { field: &'static str, value: String },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not a valid record line: {e}"),
            Self::WrongMarker(m) => write!(f, "marker {m:?} is not {MARKER:?}"),
            Self::UnsupportedSchema(s) => {
                write!(f, "schema {s} is not supported (expected {SCHEMA})")
            }
            Self::BadId { field, value } => write!(f, "{field} {value:?} is not a valid id"),
        }
    }
}

impl std::error::Error for LineError {}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

// serde's skip_serializing_if hands over the field as it is: a `&Cow`.
#[allow(clippy::ptr_arg)]
fn no_tags(t: &Cow<'_, BTreeMap<String, String>>) -> bool {
    t.is_empty()
}

fn b(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

/// Encodes a record as its fallback line (no trailing newline).
pub fn encode(r: &Record) -> String {
    // Serializing plain strings and numbers cannot fail; an empty line would
    // be skipped by readers rather than harm the request.
    serde_json::to_string(&to_line(r)).unwrap_or_default()
}

/// Decodes one fallback line (the JSON object alone).
pub fn decode(text: &str) -> Result<Record, LineError> {
    let line: Line<'_> = serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))?;
    if line.marker != MARKER {
        return Err(LineError::WrongMarker(line.marker.to_owned()));
    }
    if line.schema != SCHEMA {
        return Err(LineError::UnsupportedSchema(line.schema));
    }
    from_line(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample::record as sample;

    const GOLDEN: &str = concat!(
        r#"{"marker":"traefik-datadog","schema":1,"StartUTC":"2026-11-25T14:33:47.123456Z","#,
        r#""start_ns":1795617227123456000,"Duration":15250000,"RequestHost":"a.example","#,
        r#""RequestMethod":"GET","RequestPath":"/users/7","RequestScheme":"https","#,
        r#""RequestProtocol":"HTTP/1.1","DownstreamStatus":503,"status_source":"buffered","#,
        r#""ClientHost":"10.1.2.3","ClientAddr":"10.1.2.3:55555","request_User-Agent":"curl/8.5","#,
        r#""dd.trace_id":"1311768467463790320","dd.trace_id_high":"6b0ea0cb00000000","#,
        r#""dd.span_id":"42","dd.parent_id":"0","dd.service":"edge","dd.env":"prod","#,
        r#""dd.version":"1.2.3","dd.name":"traefik.request","dd.resource":"a.example","#,
        r#""dd.error":1,"dd.error_type":"server_error","dd.sampling_priority":1,"#,
        r#""dd.sampling_mechanism":0,"dd.sample_rate":1.0,"dd.origin":"","#,
        r#""dd.propagation_error":"","dd.propagation_tags":""}"#
    );

    #[test]
    fn encodes_the_documented_line_exactly() {
        assert_eq!(encode(&sample(503)), GOLDEN);
        assert!(GOLDEN.starts_with(PREFIX));
    }

    #[test]
    fn round_trips() {
        for status in [200, 301, 404, 429, 499, 500, 503] {
            let r = sample(status);
            assert_eq!(decode(&encode(&r)).expect("own line decodes"), r);
        }
    }

    #[test]
    fn round_trips_awkward_strings() {
        let mut r = sample(200);
        r.path = "/q\"uote\\/ü/\u{1}".into();
        r.user_agent = "Mozilla/5.0 (X11; \"x\")\n".into();
        r.span_id = u64::MAX >> 1;
        r.trace_id = u64::MAX;
        assert_eq!(decode(&encode(&r)).expect("decodes"), r);
        assert!(!encode(&r).contains('\n'), "a line must stay one line");
    }

    #[test]
    fn round_trips_propagation_fields() {
        let mut r = sample(200);
        r.origin = "synthetics-browser".into();
        r.propagation_error = "extract_max_size".into();
        r.propagation_tags = "_dd.p.usr.id=a=b,_dd.p.ts=02".into();
        let line = encode(&r);
        assert!(line.ends_with(concat!(
            r#""dd.origin":"synthetics-browser","dd.propagation_error":"extract_max_size","#,
            r#""dd.propagation_tags":"_dd.p.usr.id=a=b,_dd.p.ts=02"}"#
        )));
        assert_eq!(decode(&line).expect("decodes"), r);
    }

    #[test]
    fn round_trips_size_and_grpc_status() {
        let mut r = sample(200);
        r.content_length = Some(209_715_200);
        r.grpc_status = Some(14);
        let line = encode(&r);
        assert!(line.ends_with(r#","ContentLength":209715200,"GrpcStatus":14}"#));
        assert_eq!(decode(&line).expect("decodes"), r);
    }

    #[test]
    fn round_trips_the_guest_counts_only_when_not_zero() {
        let mut r = sample(200);
        r.recovered_calls = 2;
        r.unread_values = 3;
        let line = encode(&r);
        assert!(line.ends_with(r#","dd.recovered_calls":2,"dd.unread_values":3}"#));
        assert_eq!(decode(&line).expect("decodes"), r);
        assert!(!encode(&sample(200)).contains("recovered"));
    }

    #[test]
    fn round_trips_the_tags_only_when_there_are_some() {
        let mut r = sample(200);
        r.tags.insert("team".into(), "edge".into());
        let line = encode(&r);
        assert!(line.ends_with(r#","dd.tags":{"team":"edge"}}"#));
        assert_eq!(decode(&line).expect("decodes"), r);
        assert!(!encode(&sample(200)).contains("dd.tags"));
    }

    #[test]
    fn reads_lines_written_before_the_propagation_fields() {
        let old = GOLDEN.replacen(
            r#","dd.origin":"","dd.propagation_error":"","dd.propagation_tags":"""#,
            "",
            1,
        );
        assert!(old.ends_with(r#""dd.sample_rate":1.0}"#));
        assert_eq!(decode(&old).expect("old line decodes"), sample(503));
    }

    #[test]
    fn rejects_foreign_and_future_lines() {
        let other = GOLDEN.replacen("traefik-datadog", "other", 1);
        assert_eq!(decode(&other), Err(LineError::WrongMarker("other".into())));
        let future = GOLDEN.replacen("\"schema\":1", "\"schema\":2", 1);
        assert_eq!(decode(&future), Err(LineError::UnsupportedSchema(2)));
        let bad_id = GOLDEN.replacen("\"dd.span_id\":\"42\"", "\"dd.span_id\":\"4x\"", 1);
        assert_eq!(
            decode(&bad_id),
            Err(LineError::BadId {
                field: "dd.span_id",
                value: "4x".into()
            })
        );
        assert!(matches!(decode("{\"marker\":"), Err(LineError::Json(_))));
        assert!(matches!(decode(""), Err(LineError::Json(_))));
    }
}
