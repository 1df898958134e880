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
    /// A header that decides buffering was too large to read
    /// ([`StreamHints::unread`]).
    Unread,
}

/// Extensions of paths whose responses are downloads (`unbufferedExtensions`
/// replaces the list). Archives, disk images, packages, media.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "7z", "apk", "avi", "bin", "bz2", "deb", "dmg", "exe", "flac", "gz", "img", "iso", "jar",
    "m4a", "mkv", "mov", "mp3", "mp4", "msi", "ogg", "pkg", "rar", "rpm", "tar", "tgz", "wav",
    "webm", "whl", "xz", "zip", "zst",
];

/// The request headers that decide buffering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintHeader {
    Upgrade,
    Connection,
    Accept,
    ContentType,
    Range,
}

impl HintHeader {
    pub const ALL: [Self; 5] = [
        Self::Upgrade,
        Self::Connection,
        Self::Accept,
        Self::ContentType,
        Self::Range,
    ];

    /// The header's name as Go's header map spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Upgrade => "Upgrade",
            Self::Connection => "Connection",
            Self::Accept => "Accept",
            Self::ContentType => "Content-Type",
            Self::Range => "Range",
        }
    }

    /// Whether only the header's presence counts, not its value.
    pub fn presence_only(self) -> bool {
        self == Self::Range
    }
}

/// What the request headers that decide buffering said, each judged where
/// it was read: the guest reads one value at a time into the same space,
/// so nothing but these flags is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamHints {
    /// A non-blank `Upgrade`, or `Connection` naming `upgrade`.
    pub upgrade: bool,
    /// `Accept` naming `text/event-stream`.
    pub event_stream: bool,
    /// `Content-Type` starting with `application/grpc`.
    pub grpc: bool,
    /// A `Range` header.
    pub range: bool,
    /// A header among these too large to read: it may announce a stream.
    pub unread: bool,
}

impl StreamHints {
    /// Takes one header's value (all its values, comma-joined).
    pub fn see(&mut self, header: HintHeader, value: &[u8]) {
        match header {
            HintHeader::Upgrade => self.upgrade |= !value.trim_ascii().is_empty(),
            HintHeader::Connection => {
                self.upgrade |= crate::text::contains_ignore_case(value, b"upgrade")
            }
            HintHeader::Accept => {
                self.event_stream |= crate::text::contains_ignore_case(value, b"text/event-stream")
            }
            HintHeader::ContentType => {
                let c = value.trim_ascii_start();
                self.grpc |=
                    c.len() >= GRPC.len() && c[..GRPC.len()].eq_ignore_ascii_case(GRPC.as_bytes());
            }
            HintHeader::Range => self.range = true,
        }
    }

    /// Takes a header whose value was too large to read. Only the presence
    /// of `Range` counts, so that one is judged all the same.
    pub fn see_unread(&mut self, header: HintHeader) {
        if header.presence_only() {
            self.see(header, b"");
        } else {
            self.unread = true;
        }
    }

    /// The flags for headers given as text (tests, benchmarks).
    pub fn of(values: &[(HintHeader, &str)]) -> Self {
        let mut h = Self::default();
        for (header, value) in values {
            h.see(*header, value.as_bytes());
        }
        h
    }
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
        hints: &StreamHints,
        host: &str,
        path: &str,
        learned: impl FnOnce(&str, &str) -> bool,
    ) -> Observe {
        let kind = if hints.upgrade {
            StreamKind::WebSocket
        } else if hints.event_stream {
            StreamKind::EventStream
        } else if hints.grpc {
            StreamKind::Grpc
        } else if hints.unread {
            // It may announce a stream, and buffering a stream breaks it:
            // the status is given up instead.
            StreamKind::Unread
        } else if hints.range {
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
