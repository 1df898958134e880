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
//! - routes learned to be large (`crate::learned`): a host and path prefix
//!   whose response was large once.
//!
//! An unbuffered response still gets an honest status where one can be
//! known without the body: the status probe's header, `101` for an upgrade,
//! `206`/`416` from `Content-Range`, gRPC's status from its trailer;
//! otherwise status 0, `unknown`, still counted as a hit.

use crate::record::{CLIENT_CLOSED, StatusSource};

/// How the response of a request will be observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    /// Buffer the response in Traefik so the status is readable.
    Buffer,
    /// Pass the response through as it streams; the status is inferred.
    Stream(StreamKind),
}

/// Why a response is not buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    WebSocket,
    EventStream,
    Grpc,
    /// Listed in `unbufferedHosts` / `unbufferedPaths`.
    Excluded,
    /// The request asks for a range of the body.
    Partial,
    /// The path ends in a download extension.
    Download,
    /// The host and path prefix served a large response before.
    Learned,
}

/// Extensions of paths whose responses are downloads (`unbufferedExtensions`
/// replaces the list). Archives, disk images, packages, media.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "7z", "apk", "avi", "bin", "bz2", "deb", "dmg", "exe", "flac", "gz", "img", "iso", "jar",
    "m4a", "mkv", "mov", "mp3", "mp4", "msi", "ogg", "pkg", "rar", "rpm", "tar", "tgz", "wav",
    "webm", "whl", "xz", "zip", "zst",
];

/// The request headers that decide buffering, as the request carries them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamHints<'a> {
    pub upgrade: Option<&'a str>,
    pub connection: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub range: Option<&'a str>,
}

/// What the operator configured about buffering, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Path prefixes never buffered.
    pub unbuffered_paths: Vec<String>,
    /// Hosts never buffered (lowercase).
    pub unbuffered_hosts: Vec<String>,
    /// Path extensions never buffered (lowercase, without the dot).
    pub unbuffered_extensions: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            unbuffered_paths: Vec::new(),
            unbuffered_hosts: Vec::new(),
            unbuffered_extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

const GRPC: &str = "application/grpc";

impl Policy {
    /// The decision for one request. `learned` answers whether the host and
    /// path belong to a route learned to be large.
    pub fn observe(
        &self,
        hints: &StreamHints<'_>,
        host: &str,
        path: &str,
        learned: impl FnOnce(&str, &str) -> bool,
    ) -> Observe {
        let has = |h: Option<&str>, needle: &str| {
            h.is_some_and(|v| crate::text::contains_ignore_case(v, needle))
        };
        let kind = if hints.upgrade.is_some_and(|u| !u.trim().is_empty())
            || has(hints.connection, "upgrade")
        {
            StreamKind::WebSocket
        } else if has(hints.accept, "text/event-stream") {
            StreamKind::EventStream
        } else if hints.content_type.is_some_and(|c| {
            let c = c.trim_start().as_bytes();
            c.len() >= GRPC.len() && c[..GRPC.len()].eq_ignore_ascii_case(GRPC.as_bytes())
        }) {
            StreamKind::Grpc
        } else if hints.range.is_some() {
            StreamKind::Partial
        } else if self.unbuffered_hosts.iter().any(|h| h == host)
            || self
                .unbuffered_paths
                .iter()
                .any(|p| path.starts_with(p.as_str()))
        {
            StreamKind::Excluded
        } else if extension(path).is_some_and(|e| {
            self.unbuffered_extensions
                .iter()
                .any(|x| x.eq_ignore_ascii_case(e))
        }) {
            StreamKind::Download
        } else if learned(host, path) {
            StreamKind::Learned
        } else {
            return Observe::Buffer;
        };
        Observe::Stream(kind)
    }
}

/// The extension of the path's last segment (`/a/b.tar.gz` -> `gz`); none
/// for a segment without a dot or ending in one.
pub fn extension(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
        _ => None,
    }
}

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

/// A gRPC status code (0-16) from `grpc-status`.
pub fn grpc_code(s: &str) -> Option<u8> {
    match s.trim().parse::<u8>() {
        Ok(c) if c <= 16 => Some(c),
        _ => None,
    }
}

/// The gRPC codes a server span marks as an error, as OpenTelemetry's
/// semantic conventions for gRPC servers: UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. Others are the caller's
/// fault or not failures.
pub fn grpc_is_error(code: u8) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests;
