//! A minimal HTTP/1.1 client for the trace agent: one request at a time
//! over TCP or a Unix socket, `Content-Length` bodies, keep-alive with one
//! silent reconnect when the agent closed an idle connection, a connect
//! timeout and a read/write inactivity timeout. Responses may use
//! `Content-Length`, chunked encoding, or end at close.

use crate::settings::AgentUrl;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use tdp_core::text::contains_ignore_case;

/// The largest response body read (the agent answers a few hundred bytes).
const MAX_BODY: usize = 1 << 20;
const MAX_HEADER_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Unix(s) => s.flush(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum HttpError {
    /// Could not connect (agent down, wrong address, timeout).
    Connect(io::Error),
    /// The connection failed during the exchange.
    Io(io::Error),
    /// The answer is not HTTP we can read.
    Protocol(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Io(e) if e.kind() == io::ErrorKind::WouldBlock => {
                f.write_str("timed out waiting for the agent")
            }
            Self::Io(e) => write!(f, "connection failed: {e}"),
            Self::Protocol(m) => write!(f, "bad response: {m}"),
        }
    }
}

#[derive(Debug)]
pub struct Client {
    url: AgentUrl,
    host_header: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Option<BufReader<Stream>>,
}

impl Client {
    pub fn new(url: AgentUrl, connect_timeout: Duration, io_timeout: Duration) -> Self {
        let host_header = match &url {
            AgentUrl::Http { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            AgentUrl::Http { host, port } => format!("{host}:{port}"),
            AgentUrl::Unix(_) => "localhost".to_owned(),
        };
        Self {
            url,
            host_header,
            connect_timeout,
            io_timeout,
            conn: None,
        }
    }

    /// Changes the inactivity timeout (shorter during shutdown).
    pub fn set_io_timeout(&mut self, d: Duration) {
        self.io_timeout = d.max(Duration::from_millis(1));
        if let Some(c) = &self.conn {
            let _ = set_timeouts(c.get_ref(), self.io_timeout);
        }
    }

    fn connect(&self) -> Result<Stream, HttpError> {
        let stream = match &self.url {
            AgentUrl::Http { host, port } => {
                let addrs = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(HttpError::Connect)?;
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut found = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, self.connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or(HttpError::Connect(last))?;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
            AgentUrl::Unix(path) => {
                Stream::Unix(UnixStream::connect(path).map_err(HttpError::Connect)?)
            }
        };
        set_timeouts(&stream, self.io_timeout).map_err(HttpError::Connect)?;
        Ok(stream)
    }

    /// Sends `PUT path` with `body`. A kept-alive connection the agent has
    /// closed meanwhile is replaced once, silently.
    pub fn put(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let head = self.head(path, headers, body.len());
        if self.conn.is_some() {
            match self.exchange(&head, body) {
                Err(Stale) => self.conn = None,
                Ok(r) => return r,
            }
        }
        self.conn = Some(BufReader::with_capacity(16 * 1024, self.connect()?));
        match self.exchange(&head, body) {
            Ok(r) => r,
            Err(Stale) => {
                self.conn = None;
                Err(HttpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )))
            }
        }
    }

    fn head(&self, path: &str, headers: &[(&str, String)], len: usize) -> Vec<u8> {
        let mut h = format!(
            "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n",
            self.host_header
        );
        for (k, v) in headers {
            h.push_str(k);
            h.push_str(": ");
            h.push_str(v);
            h.push_str("\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    /// One request and response on the current connection. `Err(Stale)`
    /// when the connection turned out closed before any response byte.
    fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Result<Response, HttpError>, Stale> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Stale);
        };
        let sent = conn
            .get_mut()
            .write_all(head)
            .and_then(|()| conn.get_mut().write_all(body))
            .and_then(|()| conn.get_mut().flush());
        if let Err(e) = sent {
            return if is_stale(&e) {
                Err(Stale)
            } else {
                self.conn = None;
                Ok(Err(HttpError::Io(e)))
            };
        }
        match read_response(conn) {
            Ok((resp, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok(Ok(resp))
            }
            Err(ReadError::Stale) => Err(Stale),
            Err(ReadError::Fail(e)) => {
                self.conn = None;
                Ok(Err(e))
            }
        }
    }
}

struct Stale;

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn set_timeouts(s: &Stream, d: Duration) -> io::Result<()> {
    match s {
        Stream::Tcp(t) => {
            t.set_read_timeout(Some(d))?;
            t.set_write_timeout(Some(d))
        }
        Stream::Unix(u) => {
            u.set_read_timeout(Some(d))?;
            u.set_write_timeout(Some(d))
        }
    }
}

enum ReadError {
    /// The connection was closed before any byte of a response.
    Stale,
    Fail(HttpError),
}

fn fail<T>(m: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Fail(HttpError::Protocol(m.into())))
}

fn io_fail(e: io::Error) -> ReadError {
    ReadError::Fail(HttpError::Io(e))
}

/// One line ending in `\n`, at most MAX_HEADER_LINE bytes, without `\r\n`.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, ReadError> {
    let mut buf = Vec::new();
    let n = r
        .take(MAX_HEADER_LINE as u64)
        .read_until(b'\n', &mut buf)
        .map_err(io_fail)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return fail("header line too long or cut off");
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads a response; returns it and whether the connection can be reused.
fn read_response(r: &mut impl BufRead) -> Result<(Response, bool), ReadError> {
    let status_line = match read_line(r) {
        Ok(Some(l)) => l,
        Ok(None) => return Err(ReadError::Stale),
        Err(ReadError::Fail(HttpError::Io(e))) if is_stale(&e) => return Err(ReadError::Stale),
        Err(e) => return Err(e),
    };
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."));
    let Some(status) = status else {
        return fail(format!("status line {status_line:?}"));
    };
    let mut length = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    for _ in 0..MAX_HEADERS {
        let Some(line) = read_line(r)? else {
            return fail("connection closed in the headers");
        };
        if line.is_empty() {
            let body = if (100..200).contains(&status) || status == 204 || status == 304 {
                Vec::new()
            } else if chunked {
                read_chunked(r)?
            } else if let Some(n) = length {
                if n > MAX_BODY {
                    return fail(format!("body of {n} bytes is too large"));
                }
                let mut b = vec![0u8; n];
                r.read_exact(&mut b).map_err(io_fail)?;
                b
            } else {
                keep = false;
                let mut b = Vec::new();
                r.take(MAX_BODY as u64 + 1)
                    .read_to_end(&mut b)
                    .map_err(io_fail)?;
                if b.len() > MAX_BODY {
                    return fail("body too large");
                }
                b
            };
            return Ok((Response { status, body }, keep));
        }
        let Some((name, value)) = line.split_once(':') else {
            return fail(format!("header {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .or_else(|_| fail(format!("Content-Length {value:?}")))?,
                );
            }
            "transfer-encoding" => chunked = contains_ignore_case(value, "chunked"),
            "connection" => {
                if contains_ignore_case(value, "close") {
                    keep = false;
                } else if contains_ignore_case(value, "keep-alive") {
                    keep = true;
                }
            }
            _ => {}
        }
    }
    fail("too many headers")
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let Some(line) = read_line(r)? else {
            return fail("connection closed in a chunk");
        };
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .or_else(|_| fail(format!("chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while let Some(l) = read_line(r)? {
                if l.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return fail("body too large");
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).map_err(io_fail)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).map_err(io_fail)?;
        if &crlf != b"\r\n" {
            return fail("chunk not followed by CRLF");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;

    fn parse(raw: &[u8]) -> Result<(Response, bool), String> {
        let mut r = BufReader::new(raw);
        read_response(&mut r).map_err(|e| match e {
            ReadError::Stale => "stale".to_owned(),
            ReadError::Fail(e) => e.to_string(),
        })
    }

    #[test]
    fn parses_lengths_chunks_and_close() {
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOKextra"
            ),
            Ok((
                Response {
                    status: 200,
                    body: b"OK".to_vec()
                },
                true
            ))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"),
            Ok((Response { status: 200, body: b"abcde".to_vec() }, true))
        );
        assert_eq!(
            parse(b"HTTP/1.0 429 Too Many Requests\r\n\r\nslow down"),
            Ok((
                Response {
                    status: 429,
                    body: b"slow down".to_vec()
                },
                false
            ))
        );
        assert_eq!(
            parse(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"),
            Ok((
                Response {
                    status: 204,
                    body: vec![]
                },
                false
            ))
        );
        assert_eq!(parse(b""), Err("stale".into()));
        assert_eq!(
            parse(b"SSH-2.0-OpenSSH\r\n"),
            Err("bad response: status line \"SSH-2.0-OpenSSH\"".into())
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err("bad response: Content-Length \"x\"".into())
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
    }

    /// A one-connection-at-a-time server answering each request with
    /// `reply`, reporting the requests it saw.
    fn serve(
        listener: TcpListener,
        replies: Vec<&'static [u8]>,
        close_after_first: bool,
    ) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut replies = replies.into_iter();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                loop {
                    let mut r = BufReader::new(conn.try_clone().expect("clone"));
                    let mut req = Vec::new();
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).expect("read") == 0 {
                            break;
                        }
                        req.extend_from_slice(line.as_bytes());
                        if let Some(v) = line.strip_prefix("Content-Length: ") {
                            len = v.trim().parse().expect("len");
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if req.is_empty() {
                        break;
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).expect("body");
                    req.extend(body);
                    let _ = tx.send(req);
                    let Some(reply) = replies.next() else { return };
                    conn.write_all(reply).expect("reply");
                    if close_after_first {
                        break;
                    }
                }
            }
        });
        rx
    }

    /// A client of an agent on 127.0.0.1:`port`.
    fn local_client(port: u16, connect: Duration, io: Duration) -> Client {
        Client::new(
            AgentUrl::Http {
                host: "127.0.0.1".into(),
                port,
            },
            connect,
            io,
        )
    }

    #[test]
    fn puts_with_headers_and_reuses_the_connection() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let seen = serve(
            l,
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            ],
            false,
        );
        let mut c = local_client(port, Duration::from_secs(2), Duration::from_secs(2));
        let r = c
            .put(
                "/v0.4/traces",
                &[("X-Datadog-Trace-Count", "1".into())],
                b"\x91\x90",
            )
            .expect("first");
        assert_eq!(
            r,
            Response {
                status: 200,
                body: b"{}".to_vec()
            }
        );
        let req = seen.recv().expect("request");
        let mut want = format!(
            "PUT /v0.4/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 2\r\nX-Datadog-Trace-Count: 1\r\n\r\n"
        )
        .into_bytes();
        want.extend_from_slice(b"\x91\x90");
        assert_eq!(req, want);
        let r2 = c
            .put("/x", &[], b"")
            .expect("second on the same connection");
        assert_eq!(r2.body, b"abc");
    }

    #[test]
    fn reconnects_once_when_the_agent_closed_the_connection() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let _seen = serve(
            l,
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2",
            ],
            true,
        );
        let mut c = local_client(port, Duration::from_secs(2), Duration::from_secs(2));
        assert_eq!(c.put("/", &[], b"a").expect("first").status, 200);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.put("/", &[], b"b").expect("second").body, b"2");
    }

    #[test]
    fn connect_errors_and_timeouts() {
        // A port with nothing listening.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut c = local_client(port, Duration::from_secs(1), Duration::from_secs(1));
        assert!(matches!(c.put("/", &[], b""), Err(HttpError::Connect(_))));

        // A server that accepts and never answers.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let _hold = std::thread::spawn(move || {
            let c = l.accept();
            std::thread::sleep(Duration::from_secs(3));
            drop(c);
        });
        let mut c = local_client(port, Duration::from_secs(1), Duration::from_millis(200));
        let t = std::time::Instant::now();
        let e = c.put("/", &[], b"x").expect_err("times out");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(e.to_string(), "timed out waiting for the agent");
    }

    #[test]
    fn unix_socket() {
        let dir = std::env::temp_dir().join(format!("relay-http-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("apm.socket");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\nhi") {
                let n = s.read(&mut buf).expect("read");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"PUT /v0.4/traces HTTP/1.1\r\nHost: localhost\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .expect("reply");
        });
        let mut c = Client::new(
            AgentUrl::Unix(path),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(c.put("/v0.4/traces", &[], b"hi").expect("put").body, b"ok");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
