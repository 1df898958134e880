//! The relay binary against an agent stand-in that misbehaves: absurd chunk
//! sizes, garbage, a body that drips, a close mid-response, 413, 429, 5xx,
//! a 10 MiB body, no answer at all. Each case: the relay keeps running, its
//! memory stays bounded, every span is delivered or dropped and counted
//! (exact counts from the relay's own counters and from what the stand-in
//! accepted), and spans sent after the agent recovers arrive.
//!
//! Waits poll the relay's counters and the stand-in's state with generous
//! limits; no assertion depends on how fast the machine is.

#![cfg(unix)]

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tdp_core::record::sample;
use tdp_core::record::span::Span;
use tdp_core::wire::fallback;

/// How the stand-in answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
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
struct State {
    script: VecDeque<Act>,
    /// What to do once the script is done.
    then: Option<Act>,
    /// Span ids of payloads answered with a whole 2xx.
    delivered: BTreeSet<u64>,
    /// Spans per request, and how each was answered.
    requests: Vec<(Act, usize)>,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_request(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// Answers `act`; returns false when the connection is to be closed.
fn answer(act: Act, conn: &mut TcpStream, spans: &[u64], state: &Shared) -> bool {
    let ok_body = br#"{"rate_by_service":{"service:,env:":1}}"#;
    match act {
        Act::Accept => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                ok_body.len()
            );
            // Delivered once the whole answer is written.
            let sent = conn
                .write_all(head.as_bytes())
                .and_then(|()| conn.write_all(ok_body));
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
fn head_then(conn: &mut TcpStream, head: &[u8], spans: &[u64], state: &Shared) -> bool {
    let ok = conn.write_all(head).is_ok();
    if ok {
        lock(state).delivered.extend(spans);
    }
    ok
}

fn serve(conn: TcpStream, state: Shared) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(body) = read_request(&mut r) {
        let traces: Vec<Vec<Span>> = rmp_serde::from_slice(&body).unwrap_or_default();
        let spans: Vec<u64> = traces.iter().flatten().map(|s| s.span_id).collect();
        let act = {
            let mut s = lock(&state);
            let act = s.script.pop_front().or(s.then).unwrap_or(Act::Accept);
            s.requests.push((act, spans.len()));
            act
        };
        if !answer(act, &mut conn, &spans, &state) {
            return;
        }
    }
}

fn stand_in(script: Vec<Act>, then: Act) -> (u16, Shared) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let state: Shared = Arc::new(Mutex::new(State {
        script: script.into(),
        then: Some(then),
        ..State::default()
    }));
    let s = state.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let s = s.clone();
            std::thread::spawn(move || serve(conn, s));
        }
    });
    (port, state)
}

struct Relay {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(agent_port: u16, extra: &[&str]) -> Self {
        // DogStatsD goes to a socket nobody reads (bound, so sends succeed).
        let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let statsd_port = statsd.local_addr().expect("addr").port();
        std::mem::forget(statsd);
        let mut child = Command::new(env!("CARGO_BIN_EXE_traefik-datadog-relay"))
            .args([
                "--stdin",
                "--agent-url",
                &format!("http://127.0.0.1:{agent_port}"),
                "--dogstatsd-url",
                &format!("udp://127.0.0.1:{statsd_port}"),
                "--no-telemetry",
                "--no-request-metrics",
                "--flush-interval",
                "50ms",
                "--telemetry-interval",
                "100ms",
                // Ends the attempts on a silent or dripping agent; long
                // enough that a healthy local answer never hits it.
                "--request-timeout",
                "3s",
                "--shutdown-timeout",
                "30s",
            ])
            .args(extra)
            .env_remove("DD_AGENT_HOST")
            .env_remove("DD_TRACE_AGENT_URL")
            .env_remove("DD_DOGSTATSD_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay starts");
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        Self {
            child,
            stdin,
            stderr,
        }
    }

    fn send(&mut self, records: &[u64]) {
        let mut text = String::new();
        for i in records {
            let mut r = sample::record(200);
            r.trace_id = 1_000_000 + i;
            r.span_id = *i;
            r.path = format!("/hostile/{i}");
            let message = serde_json::to_string(&fallback::encode(&r)).expect("json");
            text.push_str(&format!(
                "{{\"level\":\"info\",\"entryPointName\":\"web\",\"routerName\":\"r@file\",\"middlewareName\":\"dd@file\",\"middlewareType\":\"wasm\",\"time\":\"2026-11-25T14:41:10Z\",\"message\":{message}}}\n"
            ));
        }
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write");
        stdin.flush().expect("flush");
    }

    fn log(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// The last `counters` line, as name → value.
    fn counters(&self) -> Option<Counters> {
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .rev()
            .find(|l| l.contains(" info: counters "))
            .map(|l| Counters::parse(l))
    }

    /// Waits (polling) until `done` holds for the counters.
    fn wait_counters(&mut self, what: &str, done: impl Fn(&Counters) -> bool) -> Counters {
        let limit = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(c) = self.counters().filter(|c| done(c)) {
                return c;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "relay exited ({exited:?}) waiting for {what}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < limit,
                "relay: no {what} within 120 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Ends stdin (the relay's only input) and returns the final counters.
    fn finish(mut self) -> Counters {
        drop(self.stdin.take());
        let limit = Instant::now() + Duration::from_secs(120);
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
        // The stderr reader thread drains the last lines after the exit.
        let limit = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("stopped after") && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(status.success(), "relay exit {status}:\n{}", self.log());
        assert!(!self.log().contains("panicked"), "{}", self.log());
        self.counters().expect("final counters")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    received: u64,
    sent: u64,
    dropped: u64,
    rejected: u64,
    retried: u64,
}

impl Counters {
    fn parse(line: &str) -> Self {
        let get = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.trim_start_matches('(').strip_prefix(k))
                .and_then(|v| v.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| unreachable!("{k} missing in {line}"))
        };
        Self {
            received: get("stdin.received="),
            sent: get("spans_sent="),
            dropped: get("spans_dropped="),
            rejected: get("rejected="),
            retried: get("payloads_retried="),
        }
    }

    fn accounted(&self) -> u64 {
        self.sent + self.dropped
    }
}

/// What a case ended with, for the report and the checks.
struct Outcome {
    first: Counters,
    last: Counters,
    delivered: BTreeSet<u64>,
    requests: Vec<(Act, usize)>,
    peak_rss_kib: u64,
}

const FIRST: u64 = 20;
const AFTER: u64 = 10;
/// Peak RSS allowed: the relay idles at a few MiB; a 10 MiB answer read
/// whole would pass this.
const RSS_CAP_KIB: u64 = 24 * 1024;

/// Runs one case: FIRST spans while the stand-in follows `script` (then
/// `then`), then, once those are all accounted for, `recover` and AFTER
/// spans that must arrive.
fn case(script: Vec<Act>, then: Act, extra: &[&str], recover: bool) -> Outcome {
    let (port, state) = stand_in(script, then);
    let mut relay = Relay::start(port, extra);
    relay.send(&(1..=FIRST).collect::<Vec<_>>());
    let first = relay.wait_counters("first spans accounted", |c| {
        c.received == FIRST && c.accounted() == FIRST
    });
    if recover {
        lock(&state).then = Some(Act::Accept);
    }
    let after: Vec<u64> = (1001..1001 + AFTER).collect();
    relay.send(&after);
    relay.wait_counters("spans after recovery accounted", |c| {
        c.received == FIRST + AFTER && c.accounted() == FIRST + AFTER
    });
    let peak_rss_kib = relay.peak_rss_kib();
    let last = relay.finish();
    let s = lock(&state);
    let o = Outcome {
        first,
        last,
        delivered: s.delivered.clone(),
        requests: s.requests.clone(),
        peak_rss_kib,
    };
    eprintln!(
        "case {:?} then {then:?}: requests {:?}; first {:?}; final {:?}; delivered {}; peak RSS {} KiB",
        o.requests.first().map(|r| r.0),
        o.requests,
        o.first,
        o.last,
        o.delivered.len(),
        o.peak_rss_kib
    );
    // Every span accounted for exactly, what the relay counts as sent is
    // what the stand-in accepted, the spans after recovery arrived, and
    // memory stayed bounded.
    assert_eq!(o.last.received, FIRST + AFTER);
    assert_eq!(
        o.last.accounted(),
        FIRST + AFTER,
        "{o_last:?}",
        o_last = o.last
    );
    assert_eq!(o.last.sent, o.delivered.len() as u64);
    assert!(
        after.iter().all(|i| o.delivered.contains(i)),
        "{:?}",
        o.delivered
    );
    assert!(
        o.peak_rss_kib < RSS_CAP_KIB,
        "peak RSS {} KiB",
        o.peak_rss_kib
    );
    o
}

/// No answer (no status), then a healthy agent: the payload is tried
/// again and delivered; nothing is dropped.
fn no_answer_then_delivered(act: Act) {
    let o = case(vec![act], Act::Accept, &[], false);
    assert_eq!(o.first.sent, FIRST, "{act:?}");
    assert_eq!(o.last.dropped, 0, "{act:?}");
    assert_eq!(o.last.retried, 1, "{act:?}");
    assert_eq!(o.requests[0], (act, FIRST as usize));
    assert_eq!(o.requests[1], (Act::Accept, FIRST as usize));
}

/// A 200 whose body is broken: the status stands, the spans count as sent
/// once (not sent again), the relay goes on.
fn accepted_with_a_broken_body(act: Act) {
    let o = case(vec![act], Act::Accept, &[], false);
    assert_eq!(o.first.sent, FIRST, "{act:?}");
    assert_eq!(o.last.sent, FIRST + AFTER, "{act:?}");
    assert_eq!(o.last.retried, 0, "{act:?}");
    assert_eq!(o.requests[0], (act, FIRST as usize));
}

#[test]
fn absurd_chunk_size() {
    accepted_with_a_broken_body(Act::HugeChunk);
}

#[test]
fn dripping_body() {
    accepted_with_a_broken_body(Act::Drip);
}

#[test]
fn close_mid_response() {
    accepted_with_a_broken_body(Act::CloseMidResponse);
}

#[test]
fn ten_mib_answer_is_not_read_whole() {
    accepted_with_a_broken_body(Act::HugeBody);
}

#[test]
fn garbage_answer() {
    no_answer_then_delivered(Act::Garbage);
}

#[test]
fn never_answers() {
    no_answer_then_delivered(Act::Silent);
}

#[test]
fn transient_statuses_are_retried() {
    for code in [429, 500, 503] {
        let o = case(
            vec![Act::Status(code), Act::Status(code)],
            Act::Accept,
            &[],
            false,
        );
        assert_eq!(o.first.sent, FIRST, "{code}");
        assert_eq!(o.last.dropped, 0, "{code}");
        assert_eq!(o.last.retried, 2, "{code}");
    }
}

#[test]
fn refused_payloads_are_dropped_and_counted() {
    for code in [413, 400] {
        let o = case(vec![Act::Status(code)], Act::Accept, &[], false);
        assert_eq!(o.first.rejected, FIRST, "{code}");
        assert_eq!(o.first.sent, 0, "{code}");
        assert_eq!(o.last.retried, 0, "{code}");
        assert_eq!(o.last.sent, AFTER, "{code}");
        assert_eq!(o.last.dropped, FIRST, "{code}");
    }
}

#[test]
fn failing_past_the_payload_deadline_drops_and_counts() {
    // 503 until the payload's deadline passes, then the agent recovers.
    let o = case(
        vec![],
        Act::Status(503),
        &["--payload-deadline", "2s"],
        true,
    );
    assert_eq!(o.first.rejected, FIRST);
    assert_eq!(o.first.sent, 0);
    assert!(o.first.retried >= 1, "{:?}", o.first);
    assert_eq!(o.last.sent, AFTER);
    assert_eq!(o.last.dropped, FIRST);
}
