//! Whether a response is buffered so its status can be read, and what the
//! status of a response is when it was not.
//!
//! The host reveals a response's status only when the response is buffered,
//! and buffering holds the whole body in Traefik's memory (about 3.5 times
//! its size while Go's slices grow) until it is complete: a large download
//! would cost the ingress its memory and the client its first byte. So a
//! response is buffered only when nothing says it may be large or long:
//! - streams and upgrades (WebSocket, SSE, gRPC) are never buffered: the
//!   buffering writer has no Flush and no Hijack;
//! - requests that announce a partial or large body: a `Range` header, a
//!   path ending in a download extension ([`DEFAULT_EXTENSIONS`]);
//! - hosts and path prefixes the operator listed;
//! - routes learned to be large (`crate::buffering::learned`): a host and path prefix
//!   whose response was large once.
//!
//! An unbuffered response still gets an honest status where one can be
//! known without the body: the status probe's header, `101` for an upgrade,
//! `206`/`416` from `Content-Range`, gRPC's status from its trailer;
//! otherwise status 0, `unknown`, still counted as a hit.

use crate::record::{CLIENT_CLOSED, StatusSource};

pub mod learned;
pub mod observe;
pub use observe::*;

/// What an unbuffered response reveals in its header map after it was
/// served: the headers sent and the status probe's header. (gRPC's own
/// status, from its trailer, is recorded beside the HTTP status.)
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHints<'a> {
    /// The status the probe middleware saw the backend write.
    pub probe_status: Option<&'a str>,
    /// The response's `Upgrade` header.
    pub upgrade: Option<&'a str>,
    pub content_range: Option<&'a str>,
}

/// The name of the header the status probe sets once the response headers
/// are on the wire (so the client never sees it).
pub const PROBE_HEADER: &str = "X-Traefik-Datadog-Status";

/// The status and its source for a response that was not buffered.
/// `is_error`: the host reported that serving it failed (the client left).
pub fn stream_status(
    kind: StreamKind,
    is_error: bool,
    h: &ResponseHints<'_>,
) -> (u16, StatusSource) {
    if is_error {
        return (CLIENT_CLOSED, StatusSource::Aborted);
    }
    if let Some(code) = h.probe_status.and_then(parse_status) {
        return (code, StatusSource::Probe);
    }
    match kind {
        StreamKind::WebSocket if h.upgrade.is_some_and(|u| !u.trim().is_empty()) => {
            (101, StatusSource::Upgrade)
        }
        StreamKind::Grpc => (200, StatusSource::Grpc),
        _ => match h.content_range.map(str::trim) {
            // RFC 9110 14.4: a 416 carries `bytes */<length>`, a 206 the
            // range it holds; no other status carries Content-Range.
            Some(r) if r.starts_with("bytes */") => (416, StatusSource::ContentRange),
            Some(r) if r.starts_with("bytes ") => (206, StatusSource::ContentRange),
            _ => (0, StatusSource::Unknown),
        },
    }
}

/// A final status code (200-999) written as decimal digits.
pub fn parse_status(s: &str) -> Option<u16> {
    match s.trim().parse::<u16>() {
        Ok(c) if (200..=999).contains(&c) => Some(c),
        // 101 is final for an upgrade the probe saw hijacked.
        Ok(101) => Some(101),
        _ => None,
    }
}

/// A gRPC status code (0-16) from the `grpc-status` trailer.
pub fn grpc_code(s: &str) -> Option<u8> {
    match s.trim().parse::<u8>() {
        Ok(c) if c <= 16 => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
