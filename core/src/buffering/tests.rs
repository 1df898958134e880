use super::*;
use crate::record::status::grpc_is_error;

fn policy() -> Policy {
    Policy {
        unbuffered_paths: vec!["/download".to_owned()],
        unbuffered_hosts: vec!["big.example".to_owned()],
        ..Policy::default()
    }
}

fn obs(h: StreamHints, host: &str, path: &str) -> Observe {
    policy().observe(&h, host, path, |h, p| {
        h == "learned.example" && p.starts_with("/export/")
    })
}

#[test]
fn ordinary_requests_are_buffered() {
    assert_eq!(obs(StreamHints::default(), "a", "/"), Observe::Buffer);
    assert_eq!(
        obs(StreamHints::default(), "a", "/api/users.json"),
        Observe::Buffer
    );
    assert_eq!(obs(StreamHints::default(), "a", "/dl"), Observe::Buffer);
}

#[test]
fn streams_are_never_buffered() {
    use HintHeader::*;
    let ws = StreamHints::of(&[(Upgrade, "websocket"), (Connection, "Upgrade")]);
    assert_eq!(obs(ws, "a", "/"), Observe::Stream(StreamKind::WebSocket));
    let h2c = StreamHints::of(&[(Connection, "keep-alive, Upgrade")]);
    assert_eq!(obs(h2c, "a", "/"), Observe::Stream(StreamKind::WebSocket));
    let sse = StreamHints::of(&[(Accept, "text/html, Text/Event-Stream")]);
    assert_eq!(obs(sse, "a", "/"), Observe::Stream(StreamKind::EventStream));
    let grpc = StreamHints::of(&[(ContentType, " application/grpc+proto")]);
    assert_eq!(obs(grpc, "a", "/"), Observe::Stream(StreamKind::Grpc));
    // Blank or unrelated values say nothing.
    let plain = StreamHints::of(&[
        (Upgrade, " \t"),
        (Connection, "keep-alive"),
        (Accept, "text/event"),
        (ContentType, "text/grpc"),
    ]);
    assert_eq!(plain, StreamHints::default());
    assert_eq!(obs(plain, "a", "/"), Observe::Buffer);
}

#[test]
fn a_hint_too_large_to_read_streams_unless_another_hint_decides() {
    use HintHeader::*;
    for h in [Upgrade, Connection, Accept, ContentType] {
        let mut hints = StreamHints::default();
        hints.see_unread(h);
        assert_eq!(
            obs(hints, "a", "/"),
            Observe::Stream(StreamKind::Unread),
            "{h:?}"
        );
        hints.see(Accept, b"text/event-stream");
        assert_eq!(
            obs(hints, "a", "/"),
            Observe::Stream(StreamKind::EventStream)
        );
    }
    // Only Range's presence counts: unread, it is still a range.
    let mut hints = StreamHints::default();
    hints.see_unread(Range);
    assert_eq!(hints, StreamHints::of(&[(Range, "")]));
    assert_eq!(obs(hints, "a", "/"), Observe::Stream(StreamKind::Partial));
}

#[test]
fn ranges_listed_routes_downloads_and_learned_routes_stream() {
    let range = StreamHints::of(&[(HintHeader::Range, "bytes=0-99")]);
    assert_eq!(obs(range, "a", "/x"), Observe::Stream(StreamKind::Partial));
    let excluded = Observe::Stream(StreamKind::Excluded);
    assert_eq!(obs(StreamHints::default(), "big.example", "/"), excluded);
    assert_eq!(obs(StreamHints::default(), "a", "/download/x"), excluded);
    assert_eq!(obs(StreamHints::default(), "a", "/downloads"), excluded);
    let download = Observe::Stream(StreamKind::Download);
    assert_eq!(obs(StreamHints::default(), "a", "/f/ubuntu.ISO"), download);
    assert_eq!(obs(StreamHints::default(), "a", "/a.tar.gz"), download);
    assert_eq!(obs(StreamHints::default(), "a", "/v.mp4"), download);
    assert_eq!(
        obs(StreamHints::default(), "learned.example", "/export/all"),
        Observe::Stream(StreamKind::Learned)
    );
    assert_eq!(
        obs(StreamHints::default(), "learned.example", "/api"),
        Observe::Buffer
    );
    assert_eq!(
        obs(StreamHints::default(), "a", "/export/all"),
        Observe::Buffer
    );
}

#[test]
fn an_empty_extension_list_buffers_downloads() {
    let p = Policy {
        unbuffered_extensions: Vec::new(),
        ..Policy::default()
    };
    assert_eq!(
        p.observe(&StreamHints::default(), "a", "/x.iso", |_, _| false),
        Observe::Buffer
    );
}

#[test]
fn extensions_of_the_last_segment_only() {
    assert_eq!(extension("/a/b.tar.gz"), Some("gz"));
    assert_eq!(extension("/a.b/c"), None);
    assert_eq!(extension("/a/.hidden"), None);
    assert_eq!(extension("/a/b."), None);
    assert_eq!(extension("/"), None);
    assert_eq!(extension("x.iso"), Some("iso"));
}

#[test]
fn unbuffered_status_from_what_the_headers_reveal() {
    let none = ResponseHints::default();
    let k = StreamKind::Download;
    assert_eq!(stream_status(k, false, &none), (0, StatusSource::Unknown));
    assert_eq!(stream_status(k, true, &none), (499, StatusSource::Aborted));
    let probe = ResponseHints {
        probe_status: Some("404"),
        content_range: Some("bytes 0-1/2"),
        ..Default::default()
    };
    assert_eq!(stream_status(k, false, &probe), (404, StatusSource::Probe));
    let bad_probe = ResponseHints {
        probe_status: Some("1x"),
        ..Default::default()
    };
    assert_eq!(
        stream_status(k, false, &bad_probe),
        (0, StatusSource::Unknown)
    );
    let partial = ResponseHints {
        content_range: Some("bytes 0-99/1000"),
        ..Default::default()
    };
    assert_eq!(
        stream_status(StreamKind::Partial, false, &partial),
        (206, StatusSource::ContentRange)
    );
    let unsatisfiable = ResponseHints {
        content_range: Some("bytes */1000"),
        ..Default::default()
    };
    assert_eq!(
        stream_status(StreamKind::Partial, false, &unsatisfiable),
        (416, StatusSource::ContentRange)
    );
    let odd = ResponseHints {
        content_range: Some("items 0-9/100"),
        ..Default::default()
    };
    assert_eq!(stream_status(k, false, &odd), (0, StatusSource::Unknown));
}

#[test]
fn upgrades_and_grpc() {
    let up = ResponseHints {
        upgrade: Some("websocket"),
        ..Default::default()
    };
    assert_eq!(
        stream_status(StreamKind::WebSocket, false, &up),
        (101, StatusSource::Upgrade)
    );
    assert_eq!(
        stream_status(StreamKind::WebSocket, false, &ResponseHints::default()),
        (0, StatusSource::Unknown)
    );
    assert_eq!(
        stream_status(StreamKind::Grpc, false, &ResponseHints::default()),
        (200, StatusSource::Grpc)
    );
    let probe101 = ResponseHints {
        probe_status: Some("101"),
        ..Default::default()
    };
    assert_eq!(
        stream_status(StreamKind::WebSocket, false, &probe101),
        (101, StatusSource::Probe)
    );
}

#[test]
fn status_and_grpc_code_parsing() {
    assert_eq!(parse_status(" 503 "), Some(503));
    assert_eq!(parse_status("100"), None);
    assert_eq!(parse_status("199"), None);
    assert_eq!(parse_status("1000"), None);
    assert_eq!(parse_status(""), None);
    assert_eq!(grpc_code("0"), Some(0));
    assert_eq!(grpc_code("16"), Some(16));
    assert_eq!(grpc_code("17"), None);
    assert_eq!(grpc_code("-1"), None);
    assert!(grpc_is_error(13) && grpc_is_error(14) && grpc_is_error(2));
    assert!(!grpc_is_error(0) && !grpc_is_error(5) && !grpc_is_error(1));
}
