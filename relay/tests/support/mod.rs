//! What the relay's end-to-end tests share: ONE trace agent stand-in
//! ([`Agent`]), which answers as told (well, or in every hostile way the
//! relay must survive) and keeps what it got, and ONE way to run the relay
//! binary ([`Relay`]).
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

pub mod http;

use http::{Request, read_request};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tdp_core::record::span::Span;

/// How long a test waits for something that should happen at once: long
/// enough for a loaded machine, so no assertion depends on its speed.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// What marks a line of the relay's own log.
const RELAY_LINE: &str = " traefik-datadog-relay ";

/// `<time> traefik-datadog-relay <level>: ...`, from the line's start.
pub fn is_relay_line(line: &str) -> bool {
    line.split_once(' ')
        .is_some_and(|(time, rest)| time.ends_with('Z') && rest.starts_with(&RELAY_LINE[1..]))
}

/// The body the stand-in answers accepted payloads with.
pub const RATES: &[u8] = br#"{"rate_by_service":{"service:,env:":1}}"#;

/// How the stand-in answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// 200 with a `rate_by_service` body: the spans count as delivered.
    Accept,
    Status(u16),
    /// `Transfer-Encoding: chunked` with chunk size `ffffffffffffffff`.
    HugeChunk,
    /// Bytes that are not HTTP, then close.
    Garbage,
    /// 200 announcing 100 bytes, sent one per second.
    Drip,
    /// 200 announcing 100 bytes, 10 sent, then close.
    CloseMidResponse,
    /// 200 with a 10 MiB body: accepted (the relay reads 64 KiB of it).
    HugeBody,
    /// Reads the request and never answers.
    Silent,
}

#[derive(Default)]
pub struct State {
    pub script: VecDeque<Act>,
    /// What to do once the script is done.
    pub then: Option<Act>,
    /// Span ids of payloads answered with a whole 2xx.
    pub delivered: BTreeSet<u64>,
    /// Spans per request, and how each was answered.
    pub requests: Vec<(Act, usize)>,
    /// Every request, as received.
    pub received: Vec<Request>,
}

/// A trace agent stand-in on a port of its own: answers requests as its
/// script says, then with `then`.
pub struct Agent {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Agent {
    pub fn start(script: Vec<Act>, then: Act) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            then: Some(then),
            ..State::default()
        }));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Self { port, state }
    }

    /// An agent that accepts everything.
    pub fn accepting() -> Self {
        Self::start(Vec::new(), Act::Accept)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The `n`th request received (from 0), waiting for it.
    pub fn request(&self, n: usize) -> Request {
        let limit = Instant::now() + PATIENCE;
        loop {
            if let Some(r) = self.state().received.get(n) {
                return r.clone();
            }
            assert!(Instant::now() < limit, "no request {n} within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(request) = read_request(&mut r) {
        let traces: Vec<Vec<Span>> = rmp_serde::from_slice(&request.body).unwrap_or_default();
        let spans: Vec<u64> = traces.iter().flatten().map(|s| s.span_id).collect();
        let act = {
            let mut s = lock(state);
            let act = s.script.pop_front().or(s.then).unwrap_or(Act::Accept);
            s.requests.push((act, spans.len()));
            s.received.push(request);
            act
        };
        if !answer(act, &mut conn, &spans, state) {
            return;
        }
    }
}

/// Answers `act`; returns false when the connection is to be closed.
fn answer(act: Act, conn: &mut TcpStream, spans: &[u64], state: &Mutex<State>) -> bool {
    match act {
        Act::Accept => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", RATES.len());
            // Delivered once the whole answer is written.
            let sent = conn
                .write_all(head.as_bytes())
                .and_then(|()| conn.write_all(RATES));
            if sent.is_ok() {
                lock(state).delivered.extend(spans);
            }
            sent.is_ok()
        }
        Act::Status(code) => {
            let body = format!("status {code}");
            let head = format!(
                "HTTP/1.1 {code} Hostile\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(head.as_bytes()).is_ok()
        }
        Act::HugeChunk => {
            head_then(
                conn,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                spans,
                state,
            );
            let _ = conn.write_all(b"ffffffffffffffff\r\nabcdef");
            false
        }
        Act::Garbage => {
            let _ = conn.write_all(b"\x00\xffSSH-2.0 garbage\r\n\r\n\x01\x02 not http at all\r\n");
            false
        }
        Act::Drip => {
            if !head_then(
                conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                spans,
                state,
            ) {
                return false;
            }
            for _ in 0..100 {
                if conn.write_all(b"x").is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            false
        }
        Act::CloseMidResponse => {
            head_then(
                conn,
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                spans,
                state,
            );
            let _ = conn.write_all(b"{\"rate_by_");
            false
        }
        Act::HugeBody => {
            let big = vec![b' '; 10 << 20];
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len());
            if head_then(conn, head.as_bytes(), spans, state) {
                let _ = conn.write_all(&big);
            }
            false
        }
        Act::Silent => {
            // Hold the connection until the relay gives up on it.
            let mut sink = [0u8; 1024];
            while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
            false
        }
    }
}

/// Writes a 2xx status line and headers: from then on the payload is
/// accepted, whatever the body does (the relay must not send it again).
fn head_then(conn: &mut TcpStream, head: &[u8], spans: &[u64], state: &Mutex<State>) -> bool {
    let ok = conn.write_all(head).is_ok();
    if ok {
        lock(state).delivered.extend(spans);
    }
    ok
}

/// The relay binary, running with `args` in an empty environment (no
/// `DD_*` variable of the machine's reaches it), its stdin a pipe, its
/// stdout and stderr collected as they come.
pub struct Relay {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// The relay's log lines: stderr's, and its own on stdout.
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// How the relay ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The relay's log lines, whole (see [`Relay::log`]).
    pub log: String,
}

impl Finished {
    /// stdout without the relay's own log lines: what `--stdin` copied.
    /// A relay line is one that starts with its time and name: one glued
    /// onto a copied line would leave that line here, and fail the test.
    pub fn copied(&self) -> Vec<u8> {
        self.stdout
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| !is_relay_line(&String::from_utf8_lossy(l)))
            .flatten()
            .copied()
            .collect()
    }
}

impl Relay {
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_traefik-datadog-relay"))
            .args(args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay starts");
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (bytes, log, lines) = (stdout.clone(), stderr.clone(), stderr.clone());
        let readers = vec![
            std::thread::spawn(move || {
                // The relay's own lines may come on stdout too (between
                // the lines --stdin copies): they join the log as well.
                let mut r = BufReader::new(out);
                let mut line = Vec::new();
                while let Ok(1..) = r.read_until(b'\n', &mut line) {
                    held(&bytes).extend_from_slice(&line);
                    let text = String::from_utf8_lossy(&line);
                    if text.contains(RELAY_LINE) {
                        held(&log).push(text.trim_end().to_owned());
                    }
                    line.clear();
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { return };
                    held(&lines).push(line);
                }
            }),
        ];
        Self {
            child,
            stdin,
            stdout,
            stderr,
            readers,
        }
    }

    /// Writes to the relay's stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    }

    /// The relay's log so far: every line of stderr, and the lines of its
    /// own on stdout.
    pub fn log(&self) -> String {
        held(&self.stderr).join("\n")
    }

    /// The last stderr line that `pick` takes, read by it.
    pub fn last_line<T>(&self, pick: impl Fn(&str) -> Option<T>) -> Option<T> {
        held(&self.stderr).iter().rev().find_map(|l| pick(l))
    }

    /// Waits (polling) until `pick` takes a line of stderr; fails when the
    /// relay exits first or nothing comes within [`PATIENCE`].
    pub fn wait_line<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        let limit = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = self.last_line(&pick) {
                return v;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "relay exited ({exited:?}) waiting for {what}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < limit,
                "relay: no {what} within {PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Ends stdin and waits for the relay to exit, with all it wrote.
    pub fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        let limit = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < limit,
                "relay did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The readers end at the pipes' end, which the exit brings.
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: std::mem::take(&mut *held(&self.stdout)),
            log: self.log(),
        }
    }
}

impl Drop for Relay {
    /// A failed test does not leave its relay running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn held<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
