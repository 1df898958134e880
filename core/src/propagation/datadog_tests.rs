use crate::propagation::test_support::*;

#[test]
fn datadog_extracts_128_bit_context_with_tags() {
    let got = ext(
        DD,
        &[
            ("X-Datadog-Trace-Id", "1311768467463790320"),
            ("X-Datadog-Parent-Id", " 67667974448284343 "),
            ("X-Datadog-Sampling-Priority", "2"),
            ("X-Datadog-Origin", "rum"),
            (
                "X-Datadog-Tags",
                "_dd.p.tid=6b0ea0cb00000000,_dd.p.dm=-4,_dd.p.usr.id=dXNlcg==,other=x",
            ),
        ],
    );
    assert_eq!(
        got,
        Some(Extracted {
            sampling_priority: Some(2),
            origin: Some("rum".into()),
            propagation_tags: tags(&[("_dd.p.dm", "-4"), ("_dd.p.usr.id", "dXNlcg==")]),
            ..base(Style::Datadog)
        })
    );
    assert_eq!(got.expect("context").mechanism(), Some(4));
}

#[test]
fn datadog_64_bit_without_priority() {
    assert_eq!(
        ext(
            DD,
            &[
                ("x-datadog-trace-id", "1311768467463790320"),
                ("x-datadog-parent-id", "67667974448284343"),
            ]
        ),
        Some(Extracted {
            trace_id: TraceId { high: 0, low: LOW },
            ..base(Style::Datadog)
        })
    );
}

#[test]
fn datadog_malformed_ids_yield_nothing() {
    let with = |trace: &str, parent: &str, prio: &str| {
        ext(
            DD,
            &[
                ("x-datadog-trace-id", trace),
                ("x-datadog-parent-id", parent),
                ("x-datadog-sampling-priority", prio),
            ],
        )
    };
    assert!(with("1", "2", "1").is_some());
    assert!(with("18446744073709551615", "18446744073709551615", "-1").is_some());
    for (t, p, s) in [
        ("0", "2", "1"),
        ("", "2", "1"),
        ("+1", "2", "1"),
        ("-1", "2", "1"),
        ("0x10", "2", "1"),
        ("18446744073709551616", "2", "1"),
        ("1 2", "2", "1"),
        ("1,1", "2", "1"),
        ("١", "2", "1"),
        ("1", "0", "1"),
        ("1", "", "1"),
        ("1", "x", "1"),
        ("1", "2", ""),
        ("1", "2", "one"),
        ("1", "2", "+1"),
        ("1", "2", "128"),
        ("1", "2", "1.0"),
    ] {
        assert_eq!(with(t, p, s), None, "{t:?} {p:?} {s:?}");
    }
    // No parent at all, and no origin: not a context.
    assert_eq!(ext(DD, &[("x-datadog-trace-id", "1")]), None);
    assert_eq!(ext(DD, &[("x-datadog-parent-id", "1")]), None);
    // An origin that is not printable ASCII invalidates the context.
    assert_eq!(
        ext(
            DD,
            &[
                ("x-datadog-trace-id", "1"),
                ("x-datadog-parent-id", "2"),
                ("x-datadog-origin", "synth\u{1}"),
            ]
        ),
        None
    );
    let long = "s".repeat(MAX_ORIGIN + 1);
    assert_eq!(
        ext(
            DD,
            &[
                ("x-datadog-trace-id", "1"),
                ("x-datadog-parent-id", "2"),
                ("x-datadog-origin", &long),
            ]
        ),
        None
    );
}

#[test]
fn synthetics_parent_zero_makes_the_plugin_span_root() {
    for origin in ["synthetics", "synthetics-browser", "lambda"] {
        for parent in [Some("0"), None] {
            let mut h = vec![
                ("x-datadog-trace-id", "1311768467463790320"),
                ("x-datadog-sampling-priority", "1"),
                ("x-datadog-origin", origin),
            ];
            if let Some(p) = parent {
                h.push(("x-datadog-parent-id", p));
            }
            let got = ext(&Style::DEFAULT, &h).expect("synthetics context");
            assert_eq!(
                got,
                Extracted {
                    trace_id: TraceId { high: 0, low: LOW },
                    parent_id: 0,
                    sampling_priority: Some(1),
                    origin: Some(origin.into()),
                    ..base(Style::Datadog)
                }
            );
            let c = span_context(Some(&got), TraceId::default(), SPAN, Source::Rule(0.0));
            assert_eq!(c.parent_id, 0);
            assert_eq!(c.trace_id.low, LOW);
            assert_eq!(c.sampling.priority, 1);
            let inj = inject(&Style::DEFAULT, &c, Some(&got));
            assert!(inj.set.contains(&(X_DATADOG_ORIGIN, origin.to_owned())));
            let state = &inj.set[6].1;
            assert!(
                state.starts_with(&format!("dd=s:1;p:5f1de3a20c449b01;o:{origin};t.dm:-0")),
                "{state}"
            );
        }
    }
}

#[test]
fn x_datadog_tags_limit_and_errors_keep_the_context() {
    let with_tags = |t: &str| {
        ext(
            DD,
            &[
                ("x-datadog-trace-id", "1311768467463790320"),
                ("x-datadog-parent-id", "67667974448284343"),
                ("x-datadog-tags", t),
            ],
        )
        .expect("context survives bad tags")
    };
    // Exactly 512 bytes is read...
    let pad = "_dd.p.tid=6b0ea0cb00000000,_dd.p.a=";
    let at_limit = format!("{pad}{}", "v".repeat(MAX_TAGS_HEADER - pad.len()));
    assert_eq!(at_limit.len(), 512);
    let got = with_tags(&at_limit);
    assert_eq!(got.error, None);
    assert_eq!(got.trace_id.high, HIGH);
    assert_eq!(got.propagation_tags.len(), 1);
    // ...513 is dropped entirely, the high bits with it; so is a value too
    // large for the guest to read.
    for over in [format!("{at_limit}v"), UNREAD.to_owned()] {
        assert_eq!(
            with_tags(&over),
            Extracted {
                trace_id: TraceId { high: 0, low: LOW },
                error: Some("extract_max_size"),
                ..base(Style::Datadog)
            }
        );
    }
    for malformed in [
        "_dd.p.dm",
        "_dd.p.dm=",
        "=x",
        "_dd.p.dm=-1,",
        ",_dd.p.dm=-1",
        "_dd.p.dm=-1,,_dd.p.x=y",
        "_dd.p.a b=c",
        "_dd.p.x=\u{e9}",
        "_dd.p.x=a\tb",
    ] {
        let got = with_tags(malformed);
        assert_eq!(got.error, Some("decoding_error"), "{malformed:?}");
        assert!(got.propagation_tags.is_empty());
        assert_eq!(got.trace_id, TraceId { high: 0, low: LOW });
    }
    let got = with_tags("_dd.p.tid=6B0EA0CB00000000,_dd.p.dm=-3");
    assert_eq!(got.error, Some("malformed_tid"));
    assert_eq!(got.trace_id.high, 0);
    assert_eq!(got.propagation_tags, tags(&[("_dd.p.dm", "-3")]));
    let got = with_tags("_dd.p.dm=fast,_dd.p.x=y");
    assert_eq!(got.error, Some("decoding_error"));
    assert_eq!(got.propagation_tags, tags(&[("_dd.p.x", "y")]));
    // Legacy `<service hash>-<mechanism>`, spaces around pairs, values
    // with spaces and `=`, duplicates (last wins), foreign keys dropped.
    let got = with_tags(" _dd.p.dm=934086a686-4 , _dd.p.x=a b=c,_dd.p.x=d,foo=bar");
    assert_eq!(got.error, None);
    assert_eq!(
        got.propagation_tags,
        tags(&[("_dd.p.dm", "934086a686-4"), ("_dd.p.x", "d")])
    );
    assert_eq!(got.mechanism(), Some(4));
    assert_eq!(with_tags("").propagation_tags, vec![]);
    assert_eq!(with_tags("").error, None);
}

#[test]
fn datadog_injection_exact() {
    let e = Extracted {
        sampling_priority: Some(2),
        origin: Some("rum".into()),
        propagation_tags: tags(&[("_dd.p.dm", "-4"), ("_dd.p.usr.id", "dXNlcg==")]),
        ..base(Style::Datadog)
    };
    let inj = inject(DD, &ctx(HIGH, 2, 4), Some(&e));
    assert_eq!(
        set_of(&inj),
        vec![
            ("x-datadog-trace-id", "1311768467463790320"),
            ("x-datadog-parent-id", "6853884493057792769"),
            ("x-datadog-sampling-priority", "2"),
            ("x-datadog-origin", "rum"),
            (
                "x-datadog-tags",
                "_dd.p.tid=6b0ea0cb00000000,_dd.p.dm=-4,_dd.p.usr.id=dXNlcg=="
            ),
        ]
    );
    assert_eq!(
        inj.remove,
        vec![
            "traceparent",
            "tracestate",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-flags",
            "b3",
        ]
    );
    assert_eq!(inj.error, None);
    // A dropped 64-bit trace without origin: no tags header, and the
    // client's stale ones are removed.
    let inj = inject(DD, &ctx(0, 0, 0), None);
    assert_eq!(
        set_of(&inj),
        vec![
            ("x-datadog-trace-id", "1311768467463790320"),
            ("x-datadog-parent-id", "6853884493057792769"),
            ("x-datadog-sampling-priority", "0"),
        ]
    );
    assert_eq!(&inj.remove[..2], &["x-datadog-origin", "x-datadog-tags"]);
    // Round trip.
    let back = ext(DD, &set_of(&inject(DD, &ctx(HIGH, 2, 4), Some(&e)))).expect("parses");
    assert_eq!(
        back,
        Extracted {
            parent_id: SPAN,
            ..e
        }
    );
}

#[test]
fn x_datadog_tags_injection_respects_the_cap() {
    let mut e = base(Style::Datadog);
    // 26 + 12 + 9 + 465 = 512: sent whole.
    e.propagation_tags = tags(&[("_dd.p.a", &"x".repeat(465))]);
    let fits = inject(DD, &ctx(HIGH, 1, 0), Some(&e));
    assert_eq!(fits.set[3].1.len(), 512);
    assert_eq!(fits.error, None);
    e.propagation_tags = tags(&[("_dd.p.a", &"x".repeat(470))]);
    let full = inject(DD, &ctx(HIGH, 1, 0), Some(&e));
    let header = &full.set[3].1;
    assert_eq!(full.set[3].0, "x-datadog-tags");
    assert_eq!(header.as_str(), "_dd.p.tid=6b0ea0cb00000000,_dd.p.dm=-0");
    assert_eq!(full.error, Some("inject_max_size"));
}
