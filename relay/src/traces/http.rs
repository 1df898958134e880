//! The HTTP exchange with the trace agent, behind [`Transport`] so the
//! sender's decisions are tested without sockets. [`Client`] is reqwest's
//! blocking client over TCP or the agent's Unix socket: keep-alive, a
//! connect timeout and one overall deadline per attempt (connect, send,
//! answer and body together), the answer's body read up to [`MAX_BODY`].
//! An answer whose status arrived is an answer, whatever its body does.

use crate::settings::AgentUrl;
use bytes::Bytes;
use std::io::Read;
use std::time::{Duration, Instant};

/// The most of an answer's body kept (the agent's `rate_by_service` answer
/// is a few hundred bytes); the rest is not read, the connection dropped.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// At most [`MAX_BODY`] bytes; short if the body broke off or did not
    /// come before the deadline.
    pub body: Vec<u8>,
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The client could not be built (no agent contacted yet).
    Setup(String),
    /// Could not connect (agent down, wrong address or socket path).
    Connect(String),
    /// No status line and headers within the attempt's deadline.
    Timeout,
    /// The connection failed, or the answer is not HTTP that can be read.
    Exchange(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Setup(e) => write!(f, "cannot build the HTTP client: {e}"),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Timeout => f.write_str("timed out waiting for the agent"),
            Self::Exchange(e) => write!(f, "exchange failed: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// One `PUT` to the agent.
pub trait Transport: Send {
    /// Sends `body` to `path` and reads the answer, all within `timeout`.
    fn put(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        body: &Bytes,
        timeout: Duration,
    ) -> Result<Response, HttpError>;
}

pub struct Client {
    http: reqwest::blocking::Client,
    /// `http://host:port` (or `http://localhost` over a Unix socket).
    base: String,
}

impl Client {
    pub fn new(url: &AgentUrl, connect_timeout: Duration) -> Result<Self, HttpError> {
        // No proxy from the environment (the agent is local), no redirects,
        // no retries of its own: the sender decides what is tried again.
        let builder = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .timeout(None);
        let (builder, base) = match url {
            AgentUrl::Http { host, port } if host.contains(':') => {
                (builder, format!("http://[{host}]:{port}"))
            }
            AgentUrl::Http { host, port } => (builder, format!("http://{host}:{port}")),
            AgentUrl::Unix(path) => (
                builder.unix_socket(path.clone()),
                "http://localhost".to_owned(),
            ),
        };
        let http = builder.build().map_err(|e| HttpError::Setup(chain(&e)))?;
        Ok(Self { http, base })
    }
}

impl Transport for Client {
    fn put(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        body: &Bytes,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let deadline = Instant::now() + timeout;
        let mut req = self
            .http
            .put(format!("{}{path}", self.base))
            .timeout(timeout)
            .body(body.clone());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut resp = req.send().map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        // The status decides what becomes of the payload: once it is in, a
        // body that breaks, drips past the deadline or runs long only cuts
        // `body` short (a 2xx tried again would send its spans twice).
        let mut body = Vec::new();
        let mut buf = [0u8; 8192];
        while body.len() < MAX_BODY && Instant::now() < deadline {
            let want = buf.len().min(MAX_BODY - body.len());
            match resp.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Ok(Response { status, body })
    }
}

fn classify(e: &reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_connect() {
        HttpError::Connect(chain(e))
    } else {
        HttpError::Exchange(chain(e))
    }
}

/// An error and its causes, without reqwest's `for url (...)` (the agent
/// is named apart in the sender's log lines).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        let text = match text.find(" for url (") {
            Some(i) => text[..i].to_owned(),
            None => text,
        };
        if !parts.contains(&text) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    /// Reads one request (head and Content-Length body) from `r`.
    fn read_request(r: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).ok()?;
        Some((head, body))
    }

    /// A listener on a free loopback port, and the port.
    fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    }

    fn local(port: u16) -> Client {
        Client::new(
            &AgentUrl::Http {
                host: "127.0.0.1".into(),
                port,
            },
            Duration::from_secs(5),
        )
        .expect("client")
    }

    #[test]
    fn puts_headers_and_body_and_reuses_the_connection() {
        let (l, port) = listener();
        let server = std::thread::spawn(move || {
            let (conn, _) = l.accept().expect("accept");
            let mut r = BufReader::new(conn.try_clone().expect("clone"));
            let mut seen = Vec::new();
            for reply in [&b"{}"[..], b"abc"] {
                let req = read_request(&mut r).expect("request");
                seen.push(req);
                let mut w = &conn;
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    reply.len()
                )
                .expect("head");
                w.write_all(reply).expect("reply");
            }
            seen
        });
        let mut c = local(port);
        let h = [("X-Datadog-Trace-Count", "1".to_owned())];
        let r = c
            .put(
                "/v0.4/traces",
                &h,
                &Bytes::from_static(b"\x91\x90"),
                Duration::from_secs(10),
            )
            .expect("first");
        assert_eq!(
            r,
            Response {
                status: 200,
                body: b"{}".to_vec()
            }
        );
        let r2 = c
            .put("/x", &[], &Bytes::from_static(b""), Duration::from_secs(10))
            .expect("second, same connection");
        assert_eq!(r2.body, b"abc");
        let seen = server.join().expect("server");
        assert!(
            seen[0].0.starts_with("PUT /v0.4/traces HTTP/1.1\r\n"),
            "{}",
            seen[0].0
        );
        assert!(seen[0].0.contains("x-datadog-trace-count: 1\r\n"));
        assert_eq!(seen[0].1, b"\x91\x90");
        assert!(seen[1].0.starts_with("PUT /x HTTP/1.1\r\n"));
    }

    #[test]
    fn connect_errors_timeouts_and_garbage_are_typed() {
        // A port nothing listens on any more.
        let port = listener().1;
        let e = local(port)
            .put("/", &[], &Bytes::from_static(b""), Duration::from_secs(5))
            .expect_err("nothing listens");
        assert!(matches!(e, HttpError::Connect(_)), "{e:?}");

        // Accepts and never answers.
        let (l, port) = listener();
        let hold = std::thread::spawn(move || l.accept().map(|(s, _)| s));
        let t = Instant::now();
        let e = local(port)
            .put(
                "/",
                &[],
                &Bytes::from_static(b"x"),
                Duration::from_millis(300),
            )
            .expect_err("times out");
        assert_eq!(e, HttpError::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(300));
        drop(hold.join());

        // Answers with something that is not HTTP.
        let (l, port) = listener();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = read_request(&mut BufReader::new(s.try_clone().expect("clone")));
            let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n");
        });
        let e = local(port)
            .put("/", &[], &Bytes::from_static(b"x"), Duration::from_secs(5))
            .expect_err("garbage");
        assert!(matches!(e, HttpError::Exchange(_)), "{e:?}");
    }

    #[test]
    fn keeps_at_most_max_body_bytes() {
        let (l, port) = listener();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = read_request(&mut BufReader::new(s.try_clone().expect("clone")));
            let big = vec![b'x'; 4 * MAX_BODY];
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                big.len()
            );
            let _ = s.write_all(&big);
        });
        let r = local(port)
            .put("/", &[], &Bytes::from_static(b"x"), Duration::from_secs(5))
            .expect("answer");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), MAX_BODY);
    }

    #[test]
    fn a_status_that_arrived_stands_whatever_the_body_does() {
        for (answer, want_body) in [
            (
                // hyper takes the size; the body is cut where the bytes end.
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc"[..],
                &b"abc"[..],
            ),
            (
                b"HTTP/1.1 503 No\r\nContent-Length: 100\r\n\r\n{\"rate",
                b"{\"rate",
            ),
        ] {
            let (l, port) = listener();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().expect("accept");
                let _ = read_request(&mut BufReader::new(s.try_clone().expect("clone")));
                let _ = s.write_all(answer);
            });
            let r = local(port)
                .put("/", &[], &Bytes::from_static(b"x"), Duration::from_secs(5))
                .expect("an answer");
            assert_eq!(r.body, want_body);
        }
        // A body that drips: the attempt ends at its deadline.
        let (l, port) = listener();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = read_request(&mut BufReader::new(s.try_clone().expect("clone")));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            for _ in 0..100 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let t = Instant::now();
        let r = local(port)
            .put(
                "/",
                &[],
                &Bytes::from_static(b"x"),
                Duration::from_millis(500),
            )
            .expect("an answer");
        assert_eq!(r.status, 200);
        assert!(r.body.len() < 100, "{}", r.body.len());
        assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    }

    #[test]
    fn unix_socket() {
        let dir = std::env::temp_dir().join(format!("relay-http-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("apm.socket");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let req = read_request(&mut BufReader::new(s.try_clone().expect("clone")));
            let mut w = &s;
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .expect("reply");
            req
        });
        let mut c = Client::new(&AgentUrl::Unix(path), Duration::from_secs(1)).expect("client");
        let r = c
            .put(
                "/v0.4/traces",
                &[],
                &Bytes::from_static(b"hi"),
                Duration::from_secs(5),
            )
            .expect("put");
        assert_eq!(r.body, b"ok");
        let (head, body) = server.join().expect("server").expect("request");
        assert!(head.starts_with("PUT /v0.4/traces HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("host: localhost\r\n"), "{head}");
        assert_eq!(body, b"hi");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
