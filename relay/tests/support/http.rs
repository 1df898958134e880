//! Reads one HTTP/1.1 request, as the relay's client sends it to the agent:
//! a head, then a `Content-Length` body. Shared by the agent stand-in of the
//! tests (support/mod.rs) and examples/fake-agent.rs.

use std::io::BufRead;

/// One request: its head (request line and headers, as sent) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The next request on the connection; `None` at its end, or when what
/// comes is not a request with a readable length and a whole body.
pub fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut head = String::new();
    loop {
        let start = head.len();
        if r.read_line(&mut head).ok()? == 0 {
            return None;
        }
        if &head[start..] == "\r\n" {
            break;
        }
    }
    let request = Request {
        head,
        body: Vec::new(),
    };
    let len = match request.header("content-length") {
        Some(v) => v.parse().ok()?,
        None => 0,
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { body, ..request })
}
