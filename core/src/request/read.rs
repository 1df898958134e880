//! What the request path reads from the host, each value judged where it
//! was read: the space it lands in is reused by the next read, so only what
//! the record and the decisions keep is copied out.

use super::host::{Host, Reader, Value};
use crate::buffering::{self, HintHeader, Observe, ResponseHints, StreamHints, StreamKind};
use crate::config::Config;
use crate::headers::tags::{HeaderTag, MAX_VALUE_LEN, tag_value};
use crate::propagation;
use crate::record::StatusSource;
use crate::record::facts::{self, ResponseFacts};
use std::collections::BTreeMap;

/// The URI's path, cut in place where the path starts the URI (the usual
/// case): one text per request instead of two.
pub fn path_of(uri: &mut String) -> String {
    let path = facts::path_without_query(uri);
    if path.as_ptr() == uri.as_ptr() {
        let len = path.len();
        uri.truncate(len);
        std::mem::take(uri)
    } else {
        path.to_owned()
    }
}

/// The scheme `X-Forwarded-Proto` says, judged where the value was read.
pub fn scheme(r: &mut Reader<'_, impl Host>) -> &'static str {
    match r.header(b"X-Forwarded-Proto") {
        // Bytes that are not text are not `https`.
        Value::Read(b) => facts::scheme(Some(std::str::from_utf8(b).unwrap_or(""))),
        Value::Absent | Value::Unread => facts::scheme(Some("")),
    }
}

/// The headers that decide buffering, each judged where it was read.
pub fn stream_hints(r: &mut Reader<'_, impl Host>) -> StreamHints {
    let mut hints = StreamHints::default();
    for h in HintHeader::ALL {
        match r.header(h.name().as_bytes()) {
            Value::Absent => {}
            Value::Read(b) => hints.see(h, b),
            Value::Unread => hints.see_unread(h),
        }
    }
    hints
}

/// A propagation header as extraction reads it: what of the value it uses
/// ([`propagation::useful`]), [`propagation::UNREAD`] if too large to read.
/// A value that is not text is one U+FFFD: every style rejects it as it
/// would the value with its bytes replaced (all its fields are ASCII),
/// without a conversion that could triple it.
pub fn propagation_value(r: &mut Reader<'_, impl Host>, name: &str) -> Option<String> {
    match r.header(name.as_bytes()) {
        Value::Absent => None,
        Value::Read(b) => Some(propagation::useful(
            name,
            std::str::from_utf8(b).unwrap_or("\u{fffd}"),
        )),
        Value::Unread => Some(propagation::UNREAD.to_owned()),
    }
}

/// The configured header tags present on one side of the exchange.
pub fn header_tags(
    r: &mut Reader<'_, impl Host>,
    tags: &[HeaderTag],
    response: bool,
) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            r.text(t.header.as_bytes(), MAX_VALUE_LEN)
                .map(|v| (t.tag_for(response), tag_value(&v)))
        })
        .collect()
}

/// What the response reveals: its status and how it was learned, gRPC's
/// own status, its size, and the configured header tags.
pub fn response(
    r: &mut Reader<'_, impl Host>,
    observe: Observe,
    end_ns: i64,
    is_error: bool,
    config: &Config,
) -> ResponseFacts {
    // Short values only: statuses, lengths, `Content-Range`, `Upgrade`.
    let header = |r: &mut Reader<'_, _>, name: &[u8]| r.text(name, 64);
    let (status, source, grpc) = match observe {
        // Only a buffered response may be asked its status: the host
        // panics otherwise.
        Observe::Buffer => (r.host.status(), StatusSource::Buffered, None),
        Observe::Stream(kind) => {
            let probe = header(r, buffering::PROBE_HEADER.as_bytes());
            let (upgrade, content_range, grpc) = match kind {
                _ if probe.is_some() || is_error => (None, None, None),
                StreamKind::WebSocket => (header(r, b"Upgrade"), None, None),
                // A trailer announced in `Trailer` sits in the header map
                // under its name, an unannounced one as `Trailer:<name>`;
                // a trailers-only response sends it as a header.
                StreamKind::Grpc => (
                    None,
                    None,
                    header(r, b"Grpc-Status").or_else(|| header(r, b"Trailer:Grpc-Status")),
                ),
                _ => (None, header(r, b"Content-Range"), None),
            };
            let (status, source) = buffering::stream_status(
                kind,
                is_error,
                &ResponseHints {
                    probe_status: probe.as_deref(),
                    upgrade: upgrade.as_deref(),
                    content_range: content_range.as_deref(),
                },
            );
            (
                status,
                source,
                grpc.as_deref().and_then(buffering::grpc_code),
            )
        }
    };
    let content_length = r.number(b"Content-Length");
    let header_tags = header_tags(r, &config.header_tags, true);
    ResponseFacts {
        end_ns,
        status,
        status_source: source,
        content_length,
        grpc_status: grpc,
        header_tags,
        unread_values: r.unread,
    }
}
