use crate::propagation::test_support::*;

#[test]
fn traceparent_alone() {
    assert_eq!(
        ext(TC, &[("traceparent", TP)]),
        Some(Extracted {
            sampling_priority: Some(1),
            ..base(Style::TraceContext)
        })
    );
    let unsampled = TP.replace("-01", "-00");
    assert_eq!(
        ext(TC, &[("Traceparent", &unsampled)]).map(|e| e.sampling_priority),
        Some(Some(0))
    );
    // Only bit 0 of the flags is the sampled flag.
    let other_bits = TP.replace("-01", "-fe");
    assert_eq!(
        ext(TC, &[("traceparent", &other_bits)]).map(|e| e.sampling_priority),
        Some(Some(0))
    );
}

#[test]
fn traceparent_corner_cases() {
    let ok = |tp: &str| ext(TC, &[("traceparent", tp)]).is_some();
    assert!(ok(TP));
    assert!(ok(&format!(" {TP}\t")));
    // Future versions: the four known fields, then maybe `-<more>`.
    assert!(ok(&TP.replacen("00", "01", 1)));
    assert!(ok(&format!("{}-what-ever", TP.replacen("00", "01", 1))));
    assert!(ok(&format!("{}-", TP.replacen("00", "cc", 1))));
    assert!(!ok(&format!("{}x", TP.replacen("00", "01", 1))));
    // Version 00 has exactly four fields; ff is invalid.
    assert!(!ok(&format!("{TP}-extra")));
    assert!(!ok(&TP.replacen("00", "ff", 1)));
    assert!(!ok(&format!("{}-x", TP.replacen("00", "ff", 1))));
    assert!(!ok(&TP.replacen("00", "0g", 1)));
    // All-zero ids.
    assert!(!ok(
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    ));
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef0-0000000000000000-01"
    ));
    // Low half zero: Datadog cannot key on it.
    assert!(!ok(
        "00-6b0ea0cb000000000000000000000000-00f067aa0ba902b7-01"
    ));
    assert!(ok(
        "00-00000000000000000000000000000001-00f067aa0ba902b7-01"
    ));
    // Uppercase hex anywhere.
    assert!(!ok(&TP.to_uppercase()));
    assert!(!ok(&TP.replace("abcdef0", "ABCDEF0")));
    assert!(!ok(&TP.replace("b7-", "B7-")));
    assert!(!ok(&TP.replace("-01", "-0A")));
    assert!(!ok(&TP.replacen("00", "0A", 1)));
    // Wrong lengths and separators.
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef-00f067aa0ba902b7-01"
    ));
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef00-0f067aa0ba902b7-01"
    ));
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef0-00f067aa0ba902b-01"
    ));
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef0-00f067aa0ba902b7-1"
    ));
    assert!(!ok(
        "00-6b0ea0cb00000000123456789abcdef0-00f067aa0ba902b7-001"
    ));
    assert!(!ok(
        "0-6b0ea0cb00000000123456789abcdef0-00f067aa0ba902b7-01"
    ));
    assert!(!ok(
        "00_6b0ea0cb00000000123456789abcdef0_00f067aa0ba902b7_01"
    ));
    assert!(!ok(""));
    assert!(!ok(&TP[..54]));
    assert!(!ok(&TP.replace('-', "\u{2010}")));
    assert!(!ok(&format!("{TP},{TP}")));
}

#[test]
fn tracestate_dd_member_and_other_vendors() {
    let got = ext(
        TC,
        &[
            ("traceparent", TP),
            (
                "tracestate",
                "rojo=00f067aa0ba902b7 , dd=s:2;p:00f067aa0ba902b7;o:synthetics~x;t.dm:-4;t.usr.id:dXNlcg~~;t.tid:6b0ea0cb00000000;x:y,,congo=t61rcWkgMzE",
            ),
        ],
    )
    .expect("context");
    assert_eq!(
        got,
        Extracted {
            sampling_priority: Some(2),
            origin: Some("synthetics=x".into()),
            propagation_tags: tags(&[("_dd.p.dm", "-4"), ("_dd.p.usr.id", "dXNlcg==")]),
            tracestate_others: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into(),
            ..base(Style::TraceContext)
        }
    );
}

#[test]
fn tracestate_priority_follows_the_sampled_flag() {
    let prio = |flags: &str, s: &str| {
        let tp = TP.replace("-01", &format!("-{flags}"));
        let state = format!("dd=s:{s};t.dm:-3");
        let e = ext(TC, &[("traceparent", &tp), ("tracestate", &state)]).expect("context");
        (e.sampling_priority, e.mechanism())
    };
    assert_eq!(prio("01", "2"), (Some(2), Some(3)));
    assert_eq!(prio("01", "1"), (Some(1), Some(3)));
    assert_eq!(prio("01", "0"), (Some(1), Some(0)));
    assert_eq!(prio("01", "-1"), (Some(1), Some(0)));
    assert_eq!(prio("00", "-1"), (Some(-1), Some(3)));
    assert_eq!(prio("00", "0"), (Some(0), Some(3)));
    assert_eq!(prio("00", "1"), (Some(0), Some(0)));
    assert_eq!(prio("00", "2"), (Some(0), Some(0)));
    // A dd member without `s`: the flag.
    let e = ext(TC, &[("traceparent", TP), ("tracestate", "dd=o:rum")]).expect("context");
    assert_eq!(e.sampling_priority, Some(1));
    assert_eq!(e.origin.as_deref(), Some("rum"));
}

#[test]
fn invalid_tracestate_is_ignored_but_traceparent_counts() {
    let mut many: Vec<String> = (0..32).map(|i| format!("v{i}=x")).collect();
    let thirty_two = many.join(",");
    many.push("dd=s:2".into());
    let thirty_three = many.join(",");
    for state in [
        "dd=s:2,dd=s:1",
        "dd",
        "Dd=s:2",
        "dd=s:2,rojo=a=b",
        "dd=s:2,rojo=",
        "dd=s:2,rojo=a\tb",
        "dd=s:2,9abc=x",
        "dd=s:2,a@=x",
        "dd=s:2,a@b@c=x",
        "dd=s:2,t@0sys=x",
        "dd=s:2,t@abcdefghijklmno=x",
        "dd=s:2,rojo=\u{e9}",
        &thirty_three,
    ] {
        let got = ext(TC, &[("traceparent", TP), ("tracestate", state)]).expect("context");
        assert_eq!(
            got,
            Extracted {
                sampling_priority: Some(1),
                ..base(Style::TraceContext)
            },
            "{state:?}"
        );
    }
    // 32 members are fine (128 characters); ours takes the first slot on
    // injection, so 31 of theirs are kept.
    let got = ext(TC, &[("traceparent", TP), ("tracestate", &thirty_two)]).expect("context");
    assert_eq!(got.tracestate_others.split(',').count(), 31);
    assert!(got.tracestate_others.ends_with("v30=x"));
    // Beyond 512 characters of other members, members longer than 128
    // go first, then members from the end.
    let long = format!("long={}", "l".repeat(150));
    let mid = |i: usize| format!("m{i:02}={}", "m".repeat(95));
    let mut state: Vec<String> = vec![mid(0), long.clone(), mid(1), "dd=s:1".into()];
    state.extend((2..6).map(mid));
    let got = ext(TC, &[("traceparent", TP), ("tracestate", &state.join(","))]).expect("context");
    // Five members of 99 and their commas: 499; the long one went first,
    // then m05 from the end.
    let want: Vec<String> = (0..5).map(mid).collect();
    assert_eq!(got.tracestate_others, want.join(","));
    assert_eq!(got.tracestate_others.len(), 499);
    assert_eq!(got.origin, None);
    assert_eq!(got.sampling_priority, Some(1));
    // At most 512 kept as they are, long members included.
    let fits = format!("a={},b={},c=zzzz", "x".repeat(250), "y".repeat(250));
    assert_eq!(fits.len(), MAX_TRACESTATE_OTHERS);
    let got = ext(TC, &[("traceparent", TP), ("tracestate", &fits)]).expect("context");
    assert_eq!(got.tracestate_others, fits);
    // Multi-tenant keys are valid.
    let got = ext(
        TC,
        &[
            ("traceparent", TP),
            ("tracestate", "0t-_*/@sys-_*/=x,dd=s:1"),
        ],
    )
    .expect("context");
    assert_eq!(got.tracestate_others, "0t-_*/@sys-_*/=x");
}

#[test]
fn malformed_dd_member_is_ignored_as_a_whole() {
    for dd in [
        "s:x;o:rum",
        "s:;o:rum",
        "s:1;p:00F067AA0BA902B7",
        "s:1;p:1",
        "s:1;nocolon",
        "s:1;t.dm:fast",
        "s:1;t.a b:c",
        "s:1;t.x:",
        "s:1;o:",
    ] {
        let state = format!("dd={dd},rojo=1");
        let got = ext(TC, &[("traceparent", TP), ("tracestate", &state)]).expect("context");
        assert_eq!(
            got,
            Extracted {
                sampling_priority: Some(1),
                tracestate_others: "rojo=1".into(),
                ..base(Style::TraceContext)
            },
            "{dd:?}"
        );
    }
}

#[test]
fn tracecontext_injection_exact() {
    let e = Extracted {
        sampling_priority: Some(2),
        origin: Some("synthetics=x;y,z~".into()),
        propagation_tags: tags(&[
            ("_dd.p.dm", "-4"),
            ("_dd.p.usr.id", "dXNlcg=="),
            ("_dd.p.k:e;y", "v,a;l "),
        ]),
        tracestate_others: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into(),
        ..base(Style::TraceContext)
    };
    let inj = inject(TC, &ctx(HIGH, 2, 4), Some(&e));
    assert_eq!(
        set_of(&inj),
        vec![
            (
                "traceparent",
                "00-6b0ea0cb00000000123456789abcdef0-5f1de3a20c449b01-01"
            ),
            (
                "tracestate",
                "dd=s:2;p:5f1de3a20c449b01;o:synthetics~x_y_z_;t.dm:-4;t.usr.id:dXNlcg~~;t.k_e_y:v_a_l_,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
            ),
        ]
    );
    assert_eq!(inj.remove.len(), 5 + 6);
    // A dropped 64-bit trace.
    let inj = inject(TC, &ctx(0, -1, 3), None);
    assert_eq!(
        set_of(&inj),
        vec![
            (
                "traceparent",
                "00-0000000000000000123456789abcdef0-5f1de3a20c449b01-00"
            ),
            ("tracestate", "dd=s:-1;p:5f1de3a20c449b01"),
        ]
    );
    // Round trip of a clean context.
    let clean = Extracted {
        origin: Some("rum".into()),
        propagation_tags: tags(&[("_dd.p.dm", "-4"), ("_dd.p.usr.id", "dXNlcg==")]),
        ..e
    };
    let back = ext(TC, &set_of(&inject(TC, &ctx(HIGH, 2, 4), Some(&clean)))).expect("parses");
    assert_eq!(
        back,
        Extracted {
            parent_id: SPAN,
            ..clean
        }
    );
}

#[test]
fn tracestate_injection_limits() {
    // The dd member stays within 256 characters, dropping what does
    // not fit; other vendors are capped at 31.
    let e = Extracted {
        sampling_priority: Some(1),
        propagation_tags: tags(&[("_dd.p.big", &"x".repeat(240)), ("_dd.p.small", "y")]),
        tracestate_others: (0..40)
            .map(|i| format!("v{i}=x"))
            .collect::<Vec<_>>()
            .join(","),
        ..base(Style::TraceContext)
    };
    let inj = inject(TC, &ctx(HIGH, 1, 0), Some(&e));
    let state = &inj.set[1].1;
    let members: Vec<&str> = state.split(',').collect();
    assert_eq!(members.len(), 32);
    assert_eq!(members[0], "dd=s:1;p:5f1de3a20c449b01;t.dm:-0;t.small:y");
    assert_eq!(members[31], "v30=x");
}
