//! The relay binary end to end, with exact expectations: Traefik log lines
//! on stdin → the exact spans at a fake agent, the exact DogStatsD datagram,
//! the exact passthrough on stdout, exit 0 at end of input.

#![cfg(unix)]

mod support;

use std::net::UdpSocket;
use std::time::Duration;
use support::{Agent, Relay};
use tdp_core::metrics::dogstatsd::{Aggregator, DEFAULT_MAX_SAMPLES, Packer, UDP_MAX_DATAGRAM};
use tdp_core::record::span::{HostFields, Span};
use tdp_core::record::{Record, sample};
use tdp_core::wire::fallback;

fn record(i: u64, status: u16, priority: i8) -> Record {
    let mut r = sample::record(status);
    r.start_ns += i as i64;
    r.duration_ns = 5_000_000;
    r.host = format!("h{}.example", i % 2);
    r.resource = r.host.clone();
    r.path = format!("/r/{i}");
    r.trace_id = 1000 + i;
    r.span_id = 2000 + i;
    r.sampling_priority = priority;
    r.env = String::new(); // filled by --env
    r
}

#[test]
fn stdin_lines_to_exact_spans_metrics_and_passthrough() {
    let agent = Agent::accepting();
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("statsd");
    statsd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let statsd_port = statsd.local_addr().expect("addr").port();

    let records: Vec<Record> = vec![
        record(0, 200, 1),
        record(1, 503, 0),
        record(2, 404, -1),
        record(3, 200, 1),
    ];
    let mut input = Vec::new();
    let mut passthrough = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let line = fallback::encode(r);
        if i % 2 == 0 {
            let message = serde_json::to_string(&line).expect("json string");
            input.extend(format!(
                "{{\"level\":\"info\",\"entryPointName\":\"web\",\"routerName\":\"r{i}@file\",\"middlewareName\":\"dd@file\",\"middlewareType\":\"wasm\",\"time\":\"2026-11-25T14:41:10Z\",\"message\":{message}}}\n"
            ).bytes());
        } else {
            input.extend(
                format!(
                    "\x1b[90m2026-11-25T14:41:10Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1m{line}\x1b[0m \x1b[36mentryPointName=\x1b[0mwebsecure \x1b[36mmiddlewareType=\x1b[0mwasm \x1b[36mrouterName=\x1b[0mr{i}@docker\n"
                )
                .bytes(),
            );
        }
        let other = format!("{{\"level\":\"info\",\"time\":\"x\",\"message\":\"other {i}\"}}\n");
        input.extend(other.bytes());
        passthrough.extend(other.bytes());
    }
    input.extend(b"\xffnot utf-8 and no newline at the end");
    passthrough.extend(b"\xffnot utf-8 and no newline at the end");

    let statsd_url = format!("udp://127.0.0.1:{statsd_port}");
    let mut relay = Relay::start([
        "--stdin",
        "--agent-url",
        &agent.url(),
        "--dogstatsd-url",
        &statsd_url,
        "--metrics-interval",
        "10s",
        "--no-telemetry",
        "--env",
        "prod",
    ]);
    relay.write(&input);
    let out = relay.finish(); // end of input: the relay flushes and exits
    let stderr = &out.log;
    assert!(out.status.success(), "{stderr}");
    // The input ends without a newline; the relay's next line of its own
    // starts on a new line: that one newline is the relay's.
    let mut copied = passthrough.clone();
    copied.push(b'\n');
    assert_eq!(
        out.copied(),
        copied,
        "stdout is every other line, byte for byte (and the relay's own)"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (_, after) = stdout
        .split_once("no newline at the end\n")
        .expect("the last copied line, then a newline");
    assert!(
        support::is_relay_line(after.lines().next().unwrap_or_default()),
        "a relay line follows: {after:?}"
    );
    assert!(
        stderr.contains("stdin.received=4 stdin.malformed=0"),
        "{stderr}"
    );
    assert!(stderr.contains("spans_sent=4 spans_dropped=0"), "{stderr}");

    // Spans: one trace per record, in order, every tag from span.rs.
    let support::http::Request { head, body } = agent.request(0);
    assert!(head.starts_with("PUT /v0.4/traces HTTP/1.1\r\n"), "{head}");
    // Header names are case-insensitive; the client sends them lowercase.
    let head = head.to_ascii_lowercase();
    for h in [
        "content-type: application/msgpack\r\n",
        "x-datadog-trace-count: 4\r\n",
        "datadog-meta-lang: rust\r\n",
        "datadog-meta-tracer-version: 0.1.0\r\n",
        "datadog-send-real-http-status: yes\r\n",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
    let traces: Vec<Vec<Span>> = rmp_serde::from_slice(&body).expect("v0.4 body");
    let expected: Vec<Vec<Span>> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r.env = "prod".into();
            let host = if i % 2 == 0 {
                HostFields {
                    router_name: format!("r{i}@file"),
                    entrypoint_name: "web".into(),
                }
            } else {
                HostFields {
                    router_name: format!("r{i}@docker"),
                    entrypoint_name: "websecure".into(),
                }
            };
            vec![Span::from_record_with(&r, &host)]
        })
        .collect();
    assert_eq!(traces, expected);

    // Metrics: exactly what the core aggregator makes of the same records.
    let mut agg = Aggregator::new("traefik_datadog", DEFAULT_MAX_SAMPLES);
    for r in &records {
        let mut r = r.clone();
        r.env = "prod".into();
        agg.add(&r);
    }
    let mut packer = Packer::new(UDP_MAX_DATAGRAM);
    agg.flush(&mut packer);
    let want = packer.take();
    assert_eq!(want.len(), 1);
    let mut buf = [0u8; 65_536];
    let n = statsd.recv(&mut buf).expect("a datagram");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        String::from_utf8_lossy(&want[0])
    );
    assert!(
        String::from_utf8_lossy(&want[0]).contains(
            "traefik_datadog.request.hits:1|c|#env:prod,service:edge,version:1.2.3,resource:h1.example,http.method:GET,http.status_code:503,http.status_class:5xx\n"
        )
    );
}

#[test]
fn bad_flags_are_named_and_exit_2() {
    let out = Relay::start(["--stdin", "--flush-interval", "soon"]).finish();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.log.contains(
            "--flush-interval: \"soon\" is not a duration like 500ms, 2s, 1m; see --help"
        ),
        "{}",
        out.log
    );
    let help = Relay::start(["--help"]).finish();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--pipe",
        "--stdin",
        "--follow",
        "--state",
        "--udp",
        "--agent-url",
        "--dogstatsd-url",
        "DD_AGENT_HOST",
        "DD_TRACE_AGENT_URL",
        "DD_DOGSTATSD_URL",
        "DD_ENV",
        "DD_SERVICE",
        "DD_VERSION",
    ] {
        assert!(text.contains(flag), "--help does not explain {flag}");
    }
}
