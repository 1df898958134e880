//! The request-side decision: buffer the response, or let it stream, and
//! why. Reads only the request and the operator's policy.

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
