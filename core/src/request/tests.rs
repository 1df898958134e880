//! The request path end to end through the stand-in: exact records, the
//! host calls each request costs, and hostile shapes (values at and over the
//! read space, name lists at and over the table, bytes that are not text,
//! huge URIs), one property test over random requests.

use super::host::{NAMES_MAX, READ_MAX};
use super::stand_in::{StandIn, StandInSystem, pairs};
use super::*;
use crate::propagation::ids::TraceId;
use crate::record::StatusSource;
use crate::test_rng::Rng;
use crate::text::MARKER;
use crate::wire::{binary, fallback};
use std::collections::BTreeMap;

const PIPE: &str = r#"{"service":"edge","env":"prod","version":"1.0","pipePath":"/run/dd/fifo"}"#;

fn start(config: &str, sys: &StandInSystem) -> (Instance<StandInSystem>, StandIn) {
    let mut host = StandIn::default();
    let i = Instance::start(config.as_bytes(), &[1, 2], sys.clone(), &mut host)
        .expect("a valid config");
    (i, host)
}

/// One request and its response; the host calls they made.
fn serve(i: &mut Instance<StandInSystem>, host: &mut StandIn) -> BTreeMap<&'static str, u32> {
    host.take_calls();
    i.request(host);
    i.response(host, false);
    host.take_calls()
}

/// The records the FIFO received, decoded.
fn piped(sys: &StandInSystem) -> Vec<Record> {
    sys.outside
        .borrow()
        .piped
        .iter()
        .map(|f| binary::decode(f).expect("a frame"))
        .collect()
}

fn one_record(sys: &StandInSystem) -> Record {
    let mut all = piped(sys);
    assert_eq!(all.len(), 1, "one record per request");
    all.remove(0)
}

fn calls(list: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    list.iter().copied().collect()
}

/// The host calls of a buffered request in pipe mode with the default
/// styles (docs/host-calls.md): absent headers cost none.
fn default_calls() -> BTreeMap<&'static str, u32> {
    calls(&[
        ("enable_features", 1),
        ("get_header_names", 1),
        ("get_header_values", 5),
        ("get_method", 1),
        ("get_source_addr", 1),
        ("get_status_code", 1),
        ("get_uri", 1),
        ("set_header_value", 6),
    ])
}

/// The ids the first request of an instance seeded `[1, 2]` gets.
fn first_ids(start_ns: i64, client_addr: &str) -> (TraceId, u64) {
    let mut ids = IdGenerator::new(&[1, 2]);
    ids.absorb(start_ns as u64 ^ fnv1a64(client_addr.as_bytes()));
    let trace_id = ids.trace_id((start_ns / 1_000_000_000) as u64);
    (trace_id, ids.span_id())
}

#[test]
fn a_buffered_request_gives_this_exact_record_and_these_calls() {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    let start_ns = host.clock_ns;
    assert_eq!(serve(&mut i, &mut host), default_calls());
    let (trace_id, span_id) = first_ids(start_ns, "127.0.0.1:51234");
    let want = Record {
        start_ns,
        duration_ns: host.tick_ns,
        host: "a.test".into(),
        method: "GET".into(),
        path: "/bench".into(),
        scheme: "http".into(),
        protocol: String::new(),
        status: 200,
        status_source: StatusSource::Buffered,
        client_addr: "127.0.0.1:51234".into(),
        user_agent: "bench/1".into(),
        trace_id_high: trace_id.high,
        trace_id: trace_id.low,
        span_id,
        parent_id: 0,
        sampling_priority: 1,
        sampling_mechanism: 0,
        sample_rate: 1.0,
        service: "edge".into(),
        env: "prod".into(),
        version: "1.0".into(),
        name: "traefik.request".into(),
        resource: "a.test".into(),
        error: false,
        origin: String::new(),
        propagation_error: String::new(),
        propagation_tags: String::new(),
        header_tags: BTreeMap::new(),
        metrics_sent: false,
        content_length: Some(2),
        grpc_status: None,
        recovered_calls: 0,
        unread_values: 0,
        tags: BTreeMap::new(),
    };
    assert_eq!(one_record(&sys), want);
    assert!(host.buffered);
    // The backend's spans join the trace: our span is their parent.
    let set: BTreeMap<_, _> = host.set.iter().cloned().collect();
    assert_eq!(set["X-Datadog-Trace-Id"], trace_id.low.to_string());
    assert_eq!(set["X-Datadog-Parent-Id"], span_id.to_string());
    assert_eq!(set["X-Datadog-Sampling-Priority"], "1");
    assert_eq!(
        set["Traceparent"],
        format!(
            "00-{:016x}{:016x}-{span_id:016x}-01",
            trace_id.high, trace_id.low
        )
    );
    assert!(host.removed.is_empty() && host.log.is_empty());
}

#[test]
fn a_log_mode_record_is_one_line_with_the_protocol_read_for_it() {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(r#"{"service":"edge","mode":"log"}"#, &sys);
    // Said once at start: where the lines go (see loss_tests.rs), and that
    // log mode cannot follow the agent's rates.
    assert!(host.log.remove(0).1.contains("has no mounted directory"));
    assert!(
        host.log
            .remove(0)
            .1
            .contains("mode \"log\": records go out as INFO")
    );
    let mut want_calls = default_calls();
    want_calls.insert("get_protocol_version", 1);
    want_calls.insert("log", 1);
    assert_eq!(serve(&mut i, &mut host), want_calls);
    assert!(piped(&sys).is_empty());
    assert_eq!(host.log.len(), 1, "one line: {:?}", host.log);
    let (level, line) = &host.log[0];
    assert_eq!(*level, Level::Info);
    let record = fallback::decode(line).expect("a plugin line");
    assert_eq!(record.protocol, "HTTP/1.1");
    assert_eq!(fallback::encode(&record), *line);
}

#[test]
fn without_a_reader_the_record_goes_to_the_spool_and_without_a_mount_to_a_line() {
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().reader = false;
    let (mut i, mut host) = start(PIPE, &sys);
    serve(&mut i, &mut host);
    let spooled = sys.outside.borrow().spooled.clone();
    assert_eq!(spooled.len(), 1);
    assert_eq!(binary::decode(&spooled[0]).map(|r| r.status), Ok(200));
    // No mount at all: said once at start (loss_tests.rs), then the line,
    // at INFO in auto mode, at ERROR in pipe mode.
    for (mode, level) in [("auto", Level::Info), ("pipe", Level::Error)] {
        let sys = StandInSystem::relay_reading();
        sys.outside.borrow_mut().unmounted = true;
        let (mut i, mut host) = start(&format!(r#"{{"mode":"{mode}"}}"#), &sys);
        assert!(
            host.log
                .remove(0)
                .1
                .contains("no directory mounted at /run/dd")
        );
        serve(&mut i, &mut host);
        assert_eq!(host.log.len(), 1, "{mode}");
        assert_eq!(host.log[0].0, level, "{mode}");
        assert!(
            host.log[0].1.contains("\"DownstreamStatus\":200"),
            "{}",
            host.log[0].1
        );
    }
}

#[test]
fn a_config_that_does_not_validate_says_so_once_and_starts_nothing() {
    let mut host = StandIn::default();
    let i = Instance::start(
        br#"{"sampleRate":2,"bogus":1}"#,
        &[1, 2],
        StandInSystem::relay_reading(),
        &mut host,
    );
    assert!(i.is_none());
    assert_eq!(host.log.len(), 1);
    assert_eq!(host.log[0].0, Level::Error);
    assert!(
        host.log[0]
            .1
            .starts_with("traefik-datadog: invalid config: key \"bogus\": unknown key;"),
        "{}",
        host.log[0].1
    );
    assert!(
        host.log[0]
            .1
            .ends_with("; this middleware passes traffic through untouched and records nothing")
    );
}

#[test]
fn network_mode_in_the_build_without_sockets_is_auto() {
    // The one answer (`Mode::uses_pipe`): the pipe carries the records, and
    // the files the relay publishes beside it are followed.
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().files.insert(
        "/run/dd/traefik-datadog.rates".into(),
        (b"service:edge,env:prod\t0.5\n".to_vec(), 1),
    );
    let (mut i, mut host) = start(
        r#"{"service":"edge","env":"prod","mode":"network","pipePath":"/run/dd/fifo"}"#,
        &sys,
    );
    assert_eq!(host.log.len(), 1, "{:?}", host.log);
    assert!(host.log[0].1.contains("needs plugin-net.wasm"));
    serve(&mut i, &mut host);
    let r = one_record(&sys);
    assert_eq!((r.sampling_mechanism, r.sample_rate), (1, 0.5));
    assert!(i.learned_watch.is_some());
    // The socket build sends it to the relay instead, and follows nothing.
    let sys = StandInSystem {
        sockets: true,
        ..StandInSystem::relay_reading()
    };
    let (mut i, mut host) = start(r#"{"mode":"network"}"#, &sys);
    assert!(host.log[0].1.contains("has no mounted directory"));
    serve(&mut i, &mut host);
    assert!(piped(&sys).is_empty() && i.learned_watch.is_none() && i.rates.is_none());
    // Readers ignore the empty probe that may go first.
    let mut datagrams = sys.outside.borrow().datagrams.clone();
    datagrams.retain(|(_, d)| !d.is_empty());
    assert_eq!(datagrams.len(), 1);
    let (r, flags) = binary::decode_flags(&datagrams[0].1).expect("a checksummed frame");
    assert_eq!(
        (r.status, flags & binary::FLAG_CHECKSUM),
        (200, binary::FLAG_CHECKSUM)
    );
}

#[test]
fn a_learned_route_streams_its_response() {
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().files.insert(
        "/run/dd/traefik-datadog.routes".into(),
        (b"traefik-datadog routes 1\na.test\t/files/\n".to_vec(), 1),
    );
    let (mut i, mut host) = start(PIPE, &sys);
    host.uri = b"/files/big.bin?x=1".to_vec();
    let calls = serve(&mut i, &mut host);
    assert!(!host.buffered && !calls.contains_key("get_status_code"));
    let r = one_record(&sys);
    assert_eq!(
        (r.status, r.status_source, r.path.as_str()),
        (0, StatusSource::Unknown, "/files/big.bin")
    );
}

/// The record of one request with `request` headers (Host and the
/// forwarded headers kept) and `response` headers.
fn record_for(
    config: &str,
    request: &[(&str, &str)],
    response: &[(&str, &str)],
) -> (Record, StandIn) {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(config, &sys);
    host.request
        .retain(|(n, _)| n == "Host" || n.starts_with("X-Forwarded"));
    host.request.extend(pairs(request));
    host.response = pairs(response);
    serve(&mut i, &mut host);
    (one_record(&sys), host)
}

/// Request headers, response headers, and the status, its source, the
/// gRPC status and the error they give.
type StreamCase<'a> = (
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    u16,
    StatusSource,
    Option<u8>,
    bool,
);

#[test]
fn streams_get_the_status_their_headers_reveal() {
    let cases: [StreamCase; 6] = [
        (
            &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
            &[("Upgrade", "websocket")],
            101,
            StatusSource::Upgrade,
            None,
            false,
        ),
        (
            &[("Content-Type", "application/grpc")],
            &[("Trailer:Grpc-Status", "14")],
            200,
            StatusSource::Grpc,
            Some(14),
            true,
        ),
        (
            &[("Accept", "text/event-stream")],
            &[],
            0,
            StatusSource::Unknown,
            None,
            false,
        ),
        (
            &[("Range", "bytes=0-1")],
            &[("Content-Range", "bytes 0-1/10")],
            206,
            StatusSource::ContentRange,
            None,
            false,
        ),
        (
            &[("Range", "bytes=0-1")],
            &[("X-Traefik-Datadog-Status", "503")],
            503,
            StatusSource::Probe,
            None,
            true,
        ),
        (
            &[("Accept", "*/*")],
            &[],
            200,
            StatusSource::Buffered,
            None,
            false,
        ),
    ];
    for (request, response, status, source, grpc, error) in cases {
        let (r, host) = record_for(PIPE, request, response);
        assert_eq!(
            (r.status, r.status_source, r.grpc_status, r.error),
            (status, source, grpc, error),
            "{request:?}"
        );
        assert_eq!(host.buffered, source == StatusSource::Buffered);
    }
}

#[test]
fn a_stream_that_failed_midway_is_499() {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    host.request
        .push(("Accept".into(), b"text/event-stream".to_vec()));
    i.request(&mut host);
    i.response(&mut host, true);
    let r = one_record(&sys);
    assert_eq!((r.status, r.status_source), (499, StatusSource::Aborted));
}

#[test]
fn header_tags_come_from_both_sides() {
    let (r, _) = record_for(
        r#"{"headerTags":["x-request-id:req.id","content-type"]}"#,
        &[("X-Request-Id", "abc"), ("Content-Type", "text/plain")],
        &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", "def"),
        ],
    );
    assert_eq!(
        r.header_tags,
        [
            ("http.request.headers.content-type", "text/plain"),
            ("http.response.headers.content-type", "application/json"),
            ("req.id", "def"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<BTreeMap<_, _>>()
    );
}

#[test]
fn an_incoming_context_is_continued_and_stale_headers_go() {
    let (r, host) = record_for(
        PIPE,
        &[
            ("X-Datadog-Trace-Id", "1234567890123"),
            ("X-Datadog-Parent-Id", "42"),
            ("X-Datadog-Sampling-Priority", "2"),
            ("X-Datadog-Origin", "synthetics"),
            ("X-Datadog-Tags", "_dd.p.dm=-4,_dd.p.usr=x"),
            ("X-B3-Traceid", "463ac35c9f6413ad"),
            ("B3", "463ac35c9f6413ad-a2fb4a1d1a96d312-1"),
        ],
        &[],
    );
    assert_eq!(
        (
            r.trace_id,
            r.parent_id,
            r.sampling_priority,
            r.sampling_mechanism
        ),
        (1_234_567_890_123, 42, 2, 4)
    );
    assert_eq!(
        (r.origin.as_str(), r.propagation_tags.as_str()),
        ("synthetics", "_dd.p.usr=x")
    );
    // Removed only where present: the names list says which.
    assert_eq!(host.removed, ["x-b3-traceid", "b3"]);
}

#[test]
fn an_aborted_call_is_forgotten_and_counted_in_the_next_record() {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    i.request(&mut host);
    // The call after an abort: what was in flight is dropped unrecorded.
    i.recover();
    i.response(&mut host, false);
    assert!(piped(&sys).is_empty());
    i.recover();
    serve(&mut i, &mut host);
    assert_eq!(one_record(&sys).recovered_calls, 2);
    serve(&mut i, &mut host);
    assert_eq!(piped(&sys)[1].recovered_calls, 0);
}

/// A value of `len` bytes that are all `fill`.
fn long(fill: u8, len: usize) -> String {
    String::from_utf8(vec![fill; len]).expect("ASCII")
}

#[test]
fn values_at_the_read_space_are_read_and_over_it_recorded_unread() {
    // The host writes the value and its NUL: READ_MAX - 1 bytes fit.
    let fits = long(b'u', READ_MAX - 1);
    let (r, _) = record_for(PIPE, &[("User-Agent", &fits)], &[]);
    assert_eq!(
        r.user_agent,
        format!(
            "{}{MARKER}",
            long(b'u', limits::MAX_USER_AGENT - MARKER.len())
        )
    );
    assert_eq!(r.unread_values, 0);
    let (r, host) = record_for(PIPE, &[("User-Agent", &long(b'u', READ_MAX))], &[]);
    assert_eq!((r.user_agent.as_str(), r.unread_values), (MARKER, 1));
    assert!(host.buffered);
    // A host too large to read is no host: the resource is method and path.
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    host.request[0].1 = vec![b'h'; READ_MAX];
    host.uri = vec![b'/'; 1 << 20];
    serve(&mut i, &mut host);
    let r = one_record(&sys);
    assert_eq!(
        (
            r.host.as_str(),
            r.path.as_str(),
            r.resource.as_str(),
            r.unread_values
        ),
        ("", MARKER, "GET ...", 2)
    );
    // A stream hint too large to read streams the response, status unknown;
    // a `Range` counts by its presence alone.
    let (r, host) = record_for(PIPE, &[("Accept", &long(b'a', READ_MAX))], &[]);
    assert_eq!(
        (r.status_source, r.unread_values, host.buffered),
        (StatusSource::Unknown, 1, false)
    );
    let (r, _) = record_for(PIPE, &[("Range", &long(b'r', READ_MAX))], &[]);
    assert_eq!(
        (r.status_source, r.unread_values),
        (StatusSource::Unknown, 1)
    );
}

#[test]
fn many_values_of_one_header_are_joined_then_judged_by_their_size() {
    let (r, _) = record_for(PIPE, &[("User-Agent", "a"), ("User-Agent", "b")], &[]);
    assert_eq!(r.user_agent, "a,b");
    // 3,000 values and their NULs fit the space; 5,000 do not.
    let joined = vec!["v"; 3000].join(",");
    let (r, _) = record_for(PIPE, &vec![("User-Agent", "v"); 3000], &[]);
    let kept = limits::MAX_USER_AGENT - MARKER.len();
    assert_eq!(r.user_agent, format!("{}{MARKER}", &joined[..kept]));
    let (r, _) = record_for(PIPE, &vec![("User-Agent", "v"); 5000], &[]);
    assert_eq!((r.user_agent.as_str(), r.unread_values), (MARKER, 1));
    // Joined, `https,https` is not `https`.
    let (r, _) = record_for(PIPE, &[("X-Forwarded-Proto", "https")], &[]);
    assert_eq!(r.scheme, "http");
}

#[test]
fn bytes_that_are_not_text_are_replaced_and_never_extracted() {
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    host.request
        .push(("User-Agent".into(), b"\xff\xfeok".to_vec()));
    host.request
        .retain(|(n, v)| n != "User-Agent" || v != b"bench/1");
    host.request
        .push(("Traceparent".into(), b"00-\xff".to_vec()));
    host.method = b"G\xe9T".to_vec();
    serve(&mut i, &mut host);
    let r = one_record(&sys);
    assert_eq!(
        (r.user_agent.as_str(), r.method.as_str(), r.parent_id),
        ("\u{fffd}\u{fffd}ok", "G\u{fffd}T", 0)
    );
}

/// The request with `n` headers `X-Custom-Header-<i>` besides its own.
fn with_custom_headers(n: usize) -> StandIn {
    let mut host = StandIn::default();
    host.request
        .extend((0..n).map(|i| (format!("X-Custom-Header-{i}"), b"v".to_vec())));
    host
}

#[test]
fn a_name_list_over_the_table_or_the_space_has_each_needed_header_asked() {
    // 64 names in all are kept: absent headers cost nothing.
    let listed = 64 - StandIn::default().request.len();
    for (n, kept) in [(listed, true), (listed + 1, false)] {
        let sys = StandInSystem::relay_reading();
        let (mut i, _) = start(PIPE, &sys);
        let mut host = with_custom_headers(n);
        let calls = serve(&mut i, &mut host);
        if kept {
            assert_eq!(calls, default_calls(), "{n}");
        } else {
            // Every header the path needs is asked: Host, X-Forwarded-Proto,
            // User-Agent, the 5 stream hints, the first of each default
            // style, Content-Length; and every stale context header removed.
            assert_eq!(calls["get_header_values"], 11, "{n}");
            assert_eq!(calls["remove_header"], 7, "{n}");
        }
        assert_eq!(one_record(&sys).status, 200);
    }
    // A list longer than its space: the same, whatever the count.
    let sys = StandInSystem::relay_reading();
    let (mut i, mut host) = start(PIPE, &sys);
    host.request
        .push((format!("X-{}", long(b'n', NAMES_MAX)), b"v".to_vec()));
    let calls = serve(&mut i, &mut host);
    assert_eq!(calls["get_header_values"], 11);
    assert_eq!(one_record(&sys).user_agent, "bench/1");
}

/// Random requests of hostile shapes: every one gives exactly one record,
/// which fits one frame; no absent header costs a call while the names list
/// was kept; nothing panics.
#[test]
fn hostile_requests_each_give_one_bounded_record() {
    const NAMES: [&str; 16] = [
        "Host",
        "User-Agent",
        "Accept",
        "Upgrade",
        "Connection",
        "Content-Type",
        "Range",
        "X-Forwarded-Proto",
        "Traceparent",
        "Tracestate",
        "X-Datadog-Trace-Id",
        "X-Datadog-Parent-Id",
        "X-Datadog-Tags",
        "X-B3-Traceid",
        "X-Request-Id",
        "x-custom",
    ];
    const SIZES: [usize; 9] = [
        0,
        1,
        5,
        511,
        1025,
        READ_MAX - 2,
        READ_MAX - 1,
        READ_MAX,
        70_000,
    ];
    let sys = StandInSystem::relay_reading();
    let (mut i, _) = start(
        r#"{"propagationStyleExtract":"datadog,tracecontext,b3","headerTags":["x-request-id","content-type"]}"#,
        &sys,
    );
    let mut rng = Rng(0x5eed);
    let mut pick = |n: usize| (rng.next() % n as u64) as usize;
    for case in 0..400 {
        let mut host = StandIn::default();
        host.request.clear();
        for _ in 0..pick(12) {
            let name = NAMES[pick(NAMES.len())];
            let len = SIZES[pick(SIZES.len())];
            let value: Vec<u8> = (0..len)
                .map(|k| match pick(8) {
                    0 => 0xff,
                    1 => b',',
                    2 => b' ',
                    _ => b"0123456789abcdef-"[k % 17],
                })
                .collect();
            host.request.push((name.to_owned(), value));
        }
        if pick(4) == 0 {
            host.request
                .extend((0..60 + pick(10)).map(|k| (format!("x-h{k}"), b"v".to_vec())));
        }
        host.uri = vec![b'/'; SIZES[pick(SIZES.len())].max(1)];
        host.method = vec![b'M'; 1 + pick(40)];
        let distinct: std::collections::BTreeSet<String> = host
            .request
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        serve(&mut i, &mut host);
        let all = piped(&sys);
        assert_eq!(all.len(), case + 1, "case {case}: one record each");
        let r = &all[case];
        assert!(
            binary::encoded_upper_bound(r) <= limits::BODY_BUDGET,
            "case {case}"
        );
        assert!(r.host.len() <= limits::MAX_HOST && r.path.len() <= limits::MAX_PATH);
        assert!(
            r.method.len() <= limits::MAX_METHOD && r.user_agent.len() <= limits::MAX_USER_AGENT
        );
        let listed: usize = distinct.iter().map(|n| n.len() + 1).sum();
        if distinct.len() <= crate::headers::names::MAX_NAMES && listed <= NAMES_MAX {
            // A kept list: no header it shows absent is asked for.
            for (side, name) in &host.asked {
                assert!(
                    *side == Side::Response || distinct.contains(&name.to_ascii_lowercase()),
                    "case {case}: {name} asked"
                );
            }
        }
    }
}
