use super::*;
use crate::record::sample::record as sample;
use crate::request::host::join_values;
use crate::test_rng::Rng;
use crate::text::decode as text;
use crate::wire::binary::{self, FLAG_CHECKSUM};
use crate::wire::fallback;

/// A header's values as the host gives them, read as the request path
/// reads them: joined in place, then taken as text.
fn header_text(nul_terminated: &[u8], max: usize) -> String {
    text(join_values(&mut nul_terminated.to_vec()), max)
}

#[test]
fn cut_keeps_short_values_and_marks_cut_ones() {
    let mut s = String::from("hello");
    assert!(!cut(&mut s, 5));
    assert_eq!(s, "hello");
    let mut s = String::from("hello world");
    assert!(cut(&mut s, 8));
    assert_eq!(s, "hello...");
    // Never inside a UTF-8 sequence: 5 bytes would split the third 'é'.
    let mut s = String::from("ééééé");
    assert!(cut(&mut s, 8));
    assert_eq!(s, "éé...");
    let mut s = String::from("𝄞𝄞");
    assert!(cut(&mut s, 6));
    assert_eq!(s, "...");
    let mut s = String::from("abcdef");
    assert!(cut(&mut s, 2));
    assert_eq!(s, "..");
    let mut s = String::from("abcdef");
    assert!(cut(&mut s, 0));
    assert_eq!(s, "");
}

#[test]
fn text_replaces_bad_bytes_and_converts_only_a_prefix() {
    assert_eq!(text(b"abc", 10), "abc");
    assert_eq!(text(b"\xff\xfeok", 10), "\u{fffd}\u{fffd}ok");
    assert_eq!(text(b"\xff\xfe\xfd\xfc", 10), "\u{fffd}\u{fffd}...");
    let big = vec![b'u'; 1 << 20];
    let t = text(&big, MAX_USER_AGENT);
    assert_eq!(t.len(), MAX_USER_AGENT);
    assert_eq!(&t[MAX_USER_AGENT - 3..], "...");
    assert_eq!(&t[..4], "uuuu");
}

#[test]
fn header_values_join_with_commas() {
    assert_eq!(header_text(b"a\0b\0\0c\0", usize::MAX), "a,b,,c");
    assert_eq!(header_text(b"\0", usize::MAX), "");
    assert_eq!(header_text(b"abcdef\0", 5), "ab...");
    assert_eq!(header_text(b"abcde\0", 5), "abcde");
    assert_eq!(header_text(b"\xff\0", usize::MAX), "\u{fffd}");
    let many = b"v\0".repeat(500_000);
    let t = header_text(&many, MAX_HOST);
    assert_eq!(t.len(), MAX_HOST);
    assert!(t.starts_with("v,v,v,"));
}

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Bytes that stress a text conversion: ASCII, multi-byte sequences,
    /// cut sequences, invalid bytes, controls, quotes.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        const PIECES: [&[u8]; 9] = [
            b"a",
            b"\"",
            b"\\",
            b"\n",
            b"\x01",
            "é".as_bytes(),
            "𝄞".as_bytes(),
            b"\xf0\x9d",
            b"\xff",
        ];
        let mut out = Vec::with_capacity(len + 4);
        while out.len() < len {
            let piece = PIECES[self.below(PIECES.len())];
            out.extend_from_slice(piece);
        }
        out
    }

    fn string(&mut self) -> String {
        let len = *self.pick(&[0, 1, 3, 4, 17, 100, 511, 512, 513, 1025, 4096, 100_000]);
        String::from_utf8_lossy(&self.bytes(len)).into_owned()
    }
}

#[test]
fn text_equals_converting_everything_then_cutting() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let bytes = {
            let len = rng.below(80);
            rng.bytes(len)
        };
        let max = rng.below(64);
        let mut whole = String::from_utf8_lossy(&bytes).into_owned();
        cut(&mut whole, max);
        assert_eq!(text(&bytes, max), whole, "{bytes:?} at {max}");
        assert!(whole.len() <= max);
    }
}

#[test]
fn facts_are_cut_to_their_sizes() {
    let mut f = RequestFacts {
        host: "h".repeat(1000),
        method: "M".repeat(1000),
        path: format!("/{}", "p".repeat(5000)),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        client_addr: "1.2.3.4:5".into(),
        user_agent: "é".repeat(600),
        start_ns: 7,
        ..RequestFacts::default()
    };
    bound_facts(&mut f);
    assert_eq!(f.host, format!("{}...", "h".repeat(253)));
    assert_eq!(f.method, format!("{}...", "M".repeat(29)));
    assert_eq!(f.path, format!("/{}...", "p".repeat(1020)));
    assert_eq!(f.user_agent, format!("{}...", "é".repeat(254)));
    assert_eq!(
        (f.protocol.as_str(), f.client_addr.as_str()),
        ("HTTP/1.1", "1.2.3.4:5")
    );
}

#[test]
fn a_usual_record_is_left_alone() {
    let mut r = sample(503);
    fit(&mut r);
    assert_eq!(r, sample(503));
}

fn extreme(rng: &mut Rng) -> Record {
    let mut r = sample(*rng.pick(&[200, 404, 499, 503]));
    for s in r.strings_mut() {
        *s = rng.string();
    }
    let tags = *rng.pick(&[0, 1, 8, 60]);
    for i in 0..tags {
        let key = format!("http.tag{i}.{}", "k".repeat(rng.below(300)));
        let value = rng.string();
        r.header_tags.insert(key, value);
    }
    r.start_ns = rng.next() as i64;
    r.duration_ns = rng.next() as i64;
    r.trace_id = rng.next();
    r.trace_id_high = rng.next();
    r.span_id = rng.next();
    r.parent_id = rng.next();
    r.sampling_priority = rng.next() as i8;
    r.sampling_mechanism = rng.next() as u8;
    r.content_length = Some(u64::MAX);
    r.grpc_status = Some(u8::MAX);
    r.recovered_calls = u32::MAX;
    r.unread_values = u16::MAX;
    r.status_source = crate::record::StatusSource::ContentRange;
    r
}

/// The line's worst case: every kept byte a control character escaped as
/// `\u00XX`, plus the field names.
const MAX_LINE: usize = 6 * BODY_BUDGET + 1024;

#[test]
fn every_record_fits_one_frame_and_one_line_after_fit() {
    let mut rng = Rng(42);
    for case in 0..150 {
        let mut r = extreme(&mut rng);
        let before = binary::encode(&r).map(|f| f.len());
        if let Ok(n) = before {
            assert!(n - HEADER_LEN <= encoded_upper_bound(&r), "case {case}");
        }
        fit(&mut r);
        let frame = binary::encode_with(&r, FLAG_CHECKSUM);
        assert!(frame.is_ok(), "case {case}: {frame:?} after fit");
        let frame = frame.expect("checked just above");
        assert!(frame.len() <= MAX_FRAME, "case {case}");
        assert!(
            frame.len() - HEADER_LEN - CHECKSUM_LEN <= encoded_upper_bound(&r),
            "case {case}: the bound is below the real size"
        );
        assert!(binary::encode(&r).is_ok(), "case {case}");
        assert_eq!(binary::decode_flags(&frame).map(|(d, _)| d), Ok(r.clone()));
        let line = fallback::encode(&r);
        assert!(!line.contains('\n'), "case {case}");
        assert!(line.len() <= MAX_LINE, "case {case}: {} bytes", line.len());
        for (s, max) in [
            (&r.host, MAX_HOST),
            (&r.method, MAX_METHOD),
            (&r.path, MAX_PATH),
            (&r.user_agent, MAX_USER_AGENT),
            (&r.resource, MAX_RESOURCE),
        ] {
            assert!(s.len() <= max, "case {case}");
        }
        assert!(
            r.header_tags
                .values()
                .all(|v| v.len() <= header_tags::MAX_VALUE_LEN)
        );
        // Idempotent: a fitted record is left alone.
        let again = {
            let mut a = r.clone();
            fit(&mut a);
            a
        };
        assert_eq!(again, r, "case {case}");
    }
}

#[test]
fn the_largest_values_give_way_first() {
    let mut r = sample(200);
    r.user_agent = "u".repeat(MAX_USER_AGENT);
    r.path = "/".repeat(MAX_PATH);
    r.resource = "r".repeat(MAX_RESOURCE);
    r.host = "h".repeat(MAX_HOST);
    r.propagation_tags = "t".repeat(MAX_TAGS_HEADER);
    for i in 0..4 {
        r.header_tags
            .insert(format!("http.t{i}"), "v".repeat(header_tags::MAX_VALUE_LEN));
    }
    fit(&mut r);
    assert!(encoded_upper_bound(&r) <= BODY_BUDGET);
    let lens: Vec<usize> = [
        &r.resource,
        &r.path,
        &r.user_agent,
        &r.host,
        &r.propagation_tags,
    ]
    .iter()
    .map(|s| s.len())
    .chain(r.header_tags.values().map(String::len))
    .collect();
    // Ties go to the later value: header-tag values before the scalars.
    assert_eq!(lens, [264, 512, 512, 256, 512, 512, 512, 256, 256]);
    assert_eq!(r.header_tags.len(), 4);
}

/// Hostile header values, valid-looking or not, from extraction through the
/// record's encodings: no panic, and the record still fits.
#[test]
fn hostile_headers_never_panic_from_extraction_to_encoding() {
    use crate::config::Config;
    use crate::propagation;
    use crate::propagation::ids::TraceId;
    use crate::record::facts::{self as request, ResponseFacts};
    use crate::record::resource::ResourceFrom;
    use crate::record::{Settings, StatusSource};

    const SHAPES: [&str; 14] = [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-é",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "0af7651916cd43dd8448eb211c80319c",
        "dd=s:2;p:b7ad6b7169203331;o:rum;t.dm:-4;t.usr:é,other=x",
        "_dd.p.tid=640cfd8d00000000,_dd.p.dm=-4,_dd.p.é=1",
        "18446744073709551615",
        "-1",
        "é",
        "𝄞𝄞𝄞",
        ",,,;;;===",
        "[::1]:",
        "\u{fffd}",
        "",
    ];
    let mut rng = Rng(7);
    for styles in [
        "datadog",
        "tracecontext",
        "b3",
        "datadog,tracecontext,b3",
        "none",
    ] {
        let json = format!(
            r#"{{"service":"edge","propagationStyleExtract":"{styles}","propagationStyleInject":"{styles}","headerTags":["x-a:a"]}}"#
        );
        let cfg = Config::from_json(json.as_bytes()).expect("valid config");
        for _ in 0..150 {
            let mut value = || -> String {
                let base = rng.pick(&SHAPES).to_string();
                let len = *rng.pick(&[0, 1, 20, 600, 5000]);
                match rng.below(3) {
                    0 => base,
                    1 => base + &String::from_utf8_lossy(&rng.bytes(len)),
                    _ => String::from_utf8_lossy(&rng.bytes(len)).into_owned(),
                }
            };
            let headers: Vec<(&'static str, String)> = [
                propagation::X_DATADOG_TAGS,
                propagation::TRACEPARENT,
                propagation::TRACESTATE,
                propagation::X_B3_TRACEID,
                propagation::X_B3_SPANID,
                propagation::X_B3_SAMPLED,
                propagation::X_B3_FLAGS,
                "x-datadog-trace-id",
                "x-datadog-parent-id",
                "x-datadog-sampling-priority",
                "x-datadog-origin",
            ]
            .into_iter()
            .map(|n| (n, value()))
            .collect();
            let get = |name: &'static str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            let p = propagation::begin(&cfg, get, TraceId { high: 1, low: 2 }, 3);
            let mut facts = RequestFacts {
                start_ns: 1,
                host: request::host_without_port(&value()),
                method: value(),
                path: request::path_without_query(&value()).to_owned(),
                scheme: request::scheme(Some(&value())).to_owned(),
                protocol: value(),
                client_addr: value(),
                user_agent: value(),
                ..RequestFacts::default()
            };
            bound_facts(&mut facts);
            for from in [ResourceFrom::Host, ResourceFrom::MethodPath] {
                let mut c = cfg.clone();
                c.resource_from = from;
                let mut r = Record::build(
                    &Settings::from(&c),
                    facts.clone(),
                    &p,
                    ResponseFacts::new(2, 200, StatusSource::Buffered),
                    0,
                );
                r.header_tags.insert("a".into(), value());
                fit(&mut r);
                assert!(binary::encode_with(&r, FLAG_CHECKSUM).is_ok());
                assert!(!fallback::encode(&r).contains('\n'));
                let _ = crate::record::span::Span::from_record(&r);
            }
        }
    }
}
