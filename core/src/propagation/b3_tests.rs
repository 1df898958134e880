use crate::propagation::test_support::*;

#[test]
fn b3_extraction() {
    let b3 = |trace: &str, span: &str, sampled: Option<&str>, flags: Option<&str>| {
        let mut h = vec![("X-B3-TraceId", trace), ("X-B3-SpanId", span)];
        if let Some(s) = sampled {
            h.push(("X-B3-Sampled", s));
        }
        if let Some(f) = flags {
            h.push(("X-B3-Flags", f));
        }
        ext(B3, &h)
    };
    assert_eq!(
        b3(
            "6b0ea0cb00000000123456789abcdef0",
            "00f067aa0ba902b7",
            Some("1"),
            None
        ),
        Some(Extracted {
            sampling_priority: Some(1),
            ..base(Style::B3)
        })
    );
    assert_eq!(
        b3("123456789abcdef0", "00f067aa0ba902b7", None, None),
        Some(Extracted {
            trace_id: TraceId { high: 0, low: LOW },
            ..base(Style::B3)
        })
    );
    let prio = |sampled: Option<&str>, flags: Option<&str>| {
        b3("123456789abcdef0", "00f067aa0ba902b7", sampled, flags).map(|e| e.sampling_priority)
    };
    assert_eq!(prio(Some("0"), None), Some(Some(0)));
    assert_eq!(prio(Some("true"), None), Some(Some(1)));
    assert_eq!(prio(Some("false"), None), Some(Some(0)));
    assert_eq!(prio(Some("d"), None), Some(Some(2)));
    assert_eq!(prio(None, Some("1")), Some(Some(2)));
    assert_eq!(prio(Some("0"), Some("1")), Some(Some(2)));
    assert_eq!(prio(Some("1"), Some("0")), Some(Some(1)));
    assert_eq!(prio(Some("2"), None), None);
    assert_eq!(prio(Some("yes"), None), None);
    for (t, s) in [
        ("123456789ABCDEF0", "00f067aa0ba902b7"),
        ("123456789abcdef0", "00F067AA0BA902B7"),
        ("0000000000000000", "00f067aa0ba902b7"),
        ("6b0ea0cb000000000000000000000000", "00f067aa0ba902b7"),
        ("123456789abcdef0", "0000000000000000"),
        ("123456789abcdef", "00f067aa0ba902b7"),
        ("123456789abcdef0a", "00f067aa0ba902b7"),
        ("123456789abcdef0", "f067aa0ba902b7"),
        ("123456789abcdef0", ""),
        ("123456789abcdef0", "+0f067aa0ba902b7"),
    ] {
        assert_eq!(b3(t, s, None, None), None, "{t:?} {s:?}");
    }
    assert_eq!(ext(B3, &[("x-b3-traceid", "123456789abcdef0")]), None);
}

#[test]
fn b3_injection_exact() {
    let inj = inject(B3, &ctx(HIGH, 2, 4), None);
    assert_eq!(
        set_of(&inj),
        vec![
            ("x-b3-traceid", "6b0ea0cb00000000123456789abcdef0"),
            ("x-b3-spanid", "5f1de3a20c449b01"),
            ("x-b3-sampled", "1"),
        ]
    );
    assert_eq!(
        inj.remove,
        vec![
            "x-datadog-trace-id",
            "x-datadog-parent-id",
            "x-datadog-sampling-priority",
            "x-datadog-origin",
            "x-datadog-tags",
            "traceparent",
            "tracestate",
            "x-b3-parentspanid",
            "x-b3-flags",
            "b3",
        ]
    );
    let inj = inject(B3, &ctx(0, -1, 3), None);
    assert_eq!(
        set_of(&inj),
        vec![
            ("x-b3-traceid", "123456789abcdef0"),
            ("x-b3-spanid", "5f1de3a20c449b01"),
            ("x-b3-sampled", "0"),
        ]
    );
    let back = ext(B3, &set_of(&inject(B3, &ctx(HIGH, 2, 4), None))).expect("parses");
    assert_eq!(
        back,
        Extracted {
            parent_id: SPAN,
            sampling_priority: Some(1),
            ..base(Style::B3)
        }
    );
}
