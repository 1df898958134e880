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

mod support;

use std::collections::BTreeSet;
use support::{Act, Agent, Relay};
use tdp_core::record::sample;
use tdp_core::wire::fallback;

/// The relay with its stdin the only input, spans to `agent`, and `extra`
/// flags.
fn start(agent: &Agent, extra: &[&str]) -> Relay {
    // DogStatsD goes to a socket nobody reads (bound, so sends succeed).
    let statsd = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let statsd_port = statsd.local_addr().expect("addr").port();
    std::mem::forget(statsd);
    let (agent_url, statsd_url) = (agent.url(), format!("udp://127.0.0.1:{statsd_port}"));
    let mut args = vec![
        "--stdin",
        "--agent-url",
        &agent_url,
        "--dogstatsd-url",
        &statsd_url,
        "--no-telemetry",
        "--no-request-metrics",
        "--flush-interval",
        "50ms",
        "--telemetry-interval",
        "100ms",
        // Ends the attempts on a silent or dripping agent; long enough
        // that a healthy local answer never hits it.
        "--request-timeout",
        "3s",
        "--shutdown-timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    Relay::start(args)
}

/// Traefik JSON log lines holding the records with span ids `records`.
fn send(relay: &mut Relay, records: &[u64]) {
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
    relay.write(text.as_bytes());
}

/// Waits until the last `counters` line satisfies `done`.
fn wait_counters(relay: &mut Relay, what: &str, done: impl Fn(&Counters) -> bool) -> Counters {
    relay.wait_line(what, |l| Counters::from_line(l).filter(|c| done(c)))
}

/// Ends stdin (the relay's only input) and returns the final counters.
fn finish(relay: Relay) -> Counters {
    let end = relay.finish();
    assert!(
        end.status.success(),
        "relay exit {}:\n{}",
        end.status,
        end.log
    );
    assert!(!end.log.contains("panicked"), "{}", end.log);
    end.log
        .lines()
        .rev()
        .find_map(Counters::from_line)
        .expect("final counters")
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
    /// A `counters` line of the relay's, read.
    fn from_line(line: &str) -> Option<Self> {
        line.contains(" info: counters ").then(|| Self::parse(line))
    }

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
    let agent = Agent::start(script, then);
    let mut relay = start(&agent, extra);
    send(&mut relay, &(1..=FIRST).collect::<Vec<_>>());
    let first = wait_counters(&mut relay, "first spans accounted", |c| {
        c.received == FIRST && c.accounted() == FIRST
    });
    if recover {
        agent.state().then = Some(Act::Accept);
    }
    let after: Vec<u64> = (1001..1001 + AFTER).collect();
    send(&mut relay, &after);
    wait_counters(&mut relay, "spans after recovery accounted", |c| {
        c.received == FIRST + AFTER && c.accounted() == FIRST + AFTER
    });
    let peak_rss_kib = relay.peak_rss_kib();
    let last = finish(relay);
    let s = agent.state();
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
