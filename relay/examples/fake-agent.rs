//! A fast stand-in for the trace agent, for benchmarks and failure drills:
//! accepts `PUT /v0.4/traces`, checks the body is a msgpack array of the
//! count `X-Datadog-Trace-Count` announces, answers with `rate_by_service`.
//!
//!   fake-agent [--listen ADDR] [--status CODE] [--delay-ms N] [--report PATH]
//!
//! `--status` makes it answer every request with that code (e.g. 503) until
//! the file named by `--status-file` (if given) holds another code. Every
//! second it writes `requests traces bad_requests` to `--report` (and
//! stdout).

// The tests' request reader: one way to read what the relay sends. Only it
// is shared: the tests' stand-in (support/mod.rs) keeps every request and
// follows scripts, which a benchmark's agent must not pay for.
#[path = "../tests/support/http.rs"]
mod http;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    traces: AtomicU64,
    bad: AtomicU64,
}

fn array_len(body: &[u8]) -> Option<u64> {
    match *body.first()? {
        b @ 0x90..=0x9f => Some(u64::from(b & 0x0f)),
        0xdc => Some(u64::from(u16::from_be_bytes([
            *body.get(1)?,
            *body.get(2)?,
        ]))),
        0xdd => Some(u64::from(u32::from_be_bytes([
            *body.get(1)?,
            *body.get(2)?,
            *body.get(3)?,
            *body.get(4)?,
        ]))),
        _ => None,
    }
}

fn status_now(default: u16, file: &Option<String>) -> u16 {
    file.as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn serve(
    conn: TcpStream,
    stats: &Stats,
    status: u16,
    status_file: &Option<String>,
    delay: Duration,
) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut w = write_half;
    let mut r = BufReader::with_capacity(1 << 16, conn);
    while let Some(request) = http::read_request(&mut r) {
        let count = request
            .header("x-datadog-trace-count")
            .and_then(|v| v.parse::<u64>().ok());
        let body = request.body;
        stats.requests.fetch_add(1, Relaxed);
        std::thread::sleep(delay);
        let code = status_now(status, status_file);
        let reply = if code == 200 {
            match (array_len(&body), count) {
                (Some(n), Some(c)) if n == c => {
                    stats.traces.fetch_add(n, Relaxed);
                }
                _ => {
                    stats.bad.fetch_add(1, Relaxed);
                }
            }
            let b = r#"{"rate_by_service":{"service:,env:":1,"service:edge,env:test":1}}"#;
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        } else {
            format!("HTTP/1.1 {code} Drill\r\nContent-Length: 5\r\n\r\ndrill")
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen = "127.0.0.1:18126".to_owned();
    let mut status = 200u16;
    let mut status_file = None;
    let mut delay = Duration::ZERO;
    let mut report = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--listen" => listen = v(),
            "--status" => status = v().parse().unwrap_or(200),
            "--status-file" => status_file = Some(v()),
            "--delay-ms" => delay = Duration::from_millis(v().parse().unwrap_or(0)),
            "--report" => report = Some(v()),
            other => {
                eprintln!("fake-agent: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let l = TcpListener::bind(&listen)?;
    let stats = Arc::new(Stats::default());
    let s2 = stats.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let line = format!(
                "{} {} {}\n",
                s2.requests.load(Relaxed),
                s2.traces.load(Relaxed),
                s2.bad.load(Relaxed)
            );
            if let Some(p) = &report {
                let _ = std::fs::write(p, &line);
            }
        }
    });
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let stats = stats.clone();
        let status_file = status_file.clone();
        std::thread::spawn(move || serve(conn, &stats, status, &status_file, delay));
    }
    Ok(())
}
