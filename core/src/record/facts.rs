//! What the plugin learns about a request before passing it on, and about
//! its response after it was served, reduced to plain values.

use super::StatusSource;
use std::collections::BTreeMap;

/// Request facts, taken once in `handle_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestFacts {
    pub start_ns: i64,
    pub host: String,
    pub method: String,
    pub path: String,
    pub scheme: String,
    /// Read only for a record that becomes a log line (the span has no tag
    /// for it): empty until then.
    pub protocol: String,
    pub client_addr: String,
    pub user_agent: String,
    /// The configured header tags the request carried: tag -> value.
    pub header_tags: BTreeMap<String, String>,
    /// Values of the request too large to read (see `Record::unread_values`).
    pub unread_values: u16,
}

/// Response facts, taken once in `handle_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    pub end_ns: i64,
    /// 0: unknown (a streamed response that revealed none).
    pub status: u16,
    pub status_source: StatusSource,
    /// The body's size where the response told it (`Content-Length`).
    pub content_length: Option<u64>,
    /// gRPC's own status, from the `grpc-status` trailer of a gRPC stream.
    pub grpc_status: Option<u8>,
    /// The configured header tags the response carried: tag -> value.
    pub header_tags: BTreeMap<String, String>,
    /// Values of the response too large to read.
    pub unread_values: u16,
}

impl ResponseFacts {
    /// A response known by its end and status alone.
    pub fn new(end_ns: i64, status: u16, status_source: StatusSource) -> Self {
        Self {
            end_ns,
            status,
            status_source,
            content_length: None,
            grpc_status: None,
            header_tags: BTreeMap::new(),
            unread_values: 0,
        }
    }
}

/// The Host header (or HTTP/2 `:authority`) without port, lowercased, as the
/// resource name nginx users set. `[::1]:8080` becomes `[::1]`.
pub fn host_without_port(raw: &str) -> String {
    // Byte searches: `[`, `]`, `:` and `.` are ASCII, and the guest runs
    // this on every request, where char patterns cost it several times more.
    let raw = raw.trim();
    let bytes = raw.as_bytes();
    let host = if bytes.first() == Some(&b'[') {
        match bytes.iter().position(|&b| b == b']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon)
                if !bytes[..colon].contains(&b':')
                    && bytes[colon + 1..].iter().all(u8::is_ascii_digit) =>
            {
                &raw[..colon]
            }
            _ => raw,
        }
    };
    let kept = host.len() - host.bytes().rev().take_while(|&b| b == b'.').count();
    host[..kept].to_ascii_lowercase()
}

/// The request URI without its query string or fragment.
pub fn path_without_query(uri: &str) -> &str {
    // A byte search: `?` and `#` are ASCII, and the guest runs this on
    // every request, where a char-set pattern cost it several times more.
    let end = uri
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(uri.len());
    match &uri[..end] {
        "" => "/",
        p => p,
    }
}

/// The IP part of `ip:port` / `[v6]:port`, as Traefik's `ClientHost`.
pub fn client_host(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(addr, |(ip, _)| ip);
    }
    match addr.rsplit_once(':') {
        Some((ip, _)) if !ip.contains(':') => ip,
        _ => addr,
    }
}

/// The scheme the client used: Traefik sets `X-Forwarded-Proto` at the entry
/// point before any middleware runs.
pub fn scheme(forwarded_proto: Option<&str>) -> &'static str {
    match forwarded_proto.map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("wss") => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(host_without_port("A.Example:8080"), "a.example");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(host_without_port("a.example."), "a.example");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_without_port(""), "");
        assert_eq!(host_without_port("host:abc"), "host:abc");
        assert_eq!(host_without_port("a.example..:80"), "a.example");
        assert_eq!(host_without_port(" A.Example:8080 "), "a.example");
        assert_eq!(host_without_port("h:1:2"), "h:1:2");
        assert_eq!(host_without_port("[::1"), "[::1");
        assert_eq!(host_without_port("host:"), "host");
        assert_eq!(host_without_port("..."), "");
        assert_eq!(host_without_port("Ä.example:1"), "Ä.example");
    }

    #[test]
    fn paths_lose_query() {
        assert_eq!(path_without_query("/a/b?x=1&y=2"), "/a/b");
        assert_eq!(path_without_query("/a#frag"), "/a");
        assert_eq!(path_without_query("?x"), "/");
        assert_eq!(path_without_query(""), "/");
        assert_eq!(path_without_query("/%20?q"), "/%20");
    }

    #[test]
    fn client_hosts() {
        assert_eq!(client_host("10.1.2.3:5555"), "10.1.2.3");
        assert_eq!(client_host("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(client_host(""), "");
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme(Some("https")), "https");
        assert_eq!(scheme(Some("HTTPS")), "https");
        assert_eq!(scheme(Some("wss")), "https");
        assert_eq!(scheme(Some("http")), "http");
        assert_eq!(scheme(None), "http");
    }
}
