//! What the guest learns about a request before passing it on, reduced to
//! plain values, and the decision whether its response may be buffered.

/// Request facts, taken once in `handle_request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestFacts {
    pub start_ns: i64,
    pub host: String,
    pub method: String,
    pub path: String,
    pub scheme: String,
    pub protocol: String,
    pub client_addr: String,
    pub user_agent: String,
}

/// The Host header (or HTTP/2 `:authority`) without port, lowercased, as the
/// resource name nginx users set. `[::1]:8080` becomes `[::1]`.
pub fn host_without_port(raw: &str) -> String {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The request URI without its query string or fragment.
pub fn path_without_query(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
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

/// How the response of a request will be observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    /// Buffer the response in Traefik so the status is readable.
    Buffer,
    /// Pass the response through as it streams; the status is inferred.
    Stream(StreamKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    WebSocket,
    EventStream,
    Grpc,
    Excluded,
}

/// The headers that decide buffering, as the request carries them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamHints<'a> {
    pub upgrade: Option<&'a str>,
    pub connection: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

const GRPC: &str = "application/grpc";

/// Buffering holds the whole response in Traefik's memory and has no Flush
/// or Hijack, so streams and upgrades must never be buffered.
pub fn observe(
    hints: &StreamHints<'_>,
    host: &str,
    path: &str,
    unbuffered_hosts: &[String],
    unbuffered_paths: &[String],
) -> Observe {
    let has = |h: Option<&str>, needle: &str| {
        h.is_some_and(|v| crate::text::contains_ignore_case(v, needle))
    };
    if hints.upgrade.is_some_and(|u| !u.trim().is_empty()) || has(hints.connection, "upgrade") {
        Observe::Stream(StreamKind::WebSocket)
    } else if has(hints.accept, "text/event-stream") {
        Observe::Stream(StreamKind::EventStream)
    } else if hints.content_type.is_some_and(|c| {
        let c = c.trim_start().as_bytes();
        c.len() >= GRPC.len() && c[..GRPC.len()].eq_ignore_ascii_case(GRPC.as_bytes())
    }) {
        Observe::Stream(StreamKind::Grpc)
    } else if unbuffered_hosts.iter().any(|h| h == host)
        || unbuffered_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    {
        Observe::Stream(StreamKind::Excluded)
    } else {
        Observe::Buffer
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

    fn obs(h: StreamHints<'_>, host: &str, path: &str) -> Observe {
        observe(
            &h,
            host,
            path,
            &["big.example".to_owned()],
            &["/download".to_owned()],
        )
    }

    #[test]
    fn streams_are_never_buffered() {
        assert_eq!(obs(StreamHints::default(), "a", "/"), Observe::Buffer);
        let ws = StreamHints {
            upgrade: Some("websocket"),
            connection: Some("Upgrade"),
            ..Default::default()
        };
        assert_eq!(obs(ws, "a", "/"), Observe::Stream(StreamKind::WebSocket));
        let h2c = StreamHints {
            connection: Some("keep-alive, Upgrade"),
            ..Default::default()
        };
        assert_eq!(obs(h2c, "a", "/"), Observe::Stream(StreamKind::WebSocket));
        let sse = StreamHints {
            accept: Some("text/html, Text/Event-Stream"),
            ..Default::default()
        };
        assert_eq!(obs(sse, "a", "/"), Observe::Stream(StreamKind::EventStream));
        let grpc = StreamHints {
            content_type: Some("application/grpc+proto"),
            ..Default::default()
        };
        assert_eq!(obs(grpc, "a", "/"), Observe::Stream(StreamKind::Grpc));
        assert_eq!(
            obs(StreamHints::default(), "big.example", "/"),
            Observe::Stream(StreamKind::Excluded)
        );
        assert_eq!(
            obs(StreamHints::default(), "a", "/download/x.iso"),
            Observe::Stream(StreamKind::Excluded)
        );
        assert_eq!(
            obs(StreamHints::default(), "a", "/downloads"),
            Observe::Stream(StreamKind::Excluded)
        );
        assert_eq!(obs(StreamHints::default(), "a", "/dl"), Observe::Buffer);
    }
}
