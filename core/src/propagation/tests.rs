use crate::propagation::test_support::*;

use crate::config::Config;

#[test]
fn first_valid_style_in_order_wins() {
    let h = all_three("1311768467463790320", TP);
    let from = |styles: &[Style]| extract(styles, lookup_in(&h)).expect("context");
    let dd = from(&[Style::Datadog, Style::TraceContext, Style::B3]);
    assert_eq!(dd.style, Style::Datadog);
    assert_eq!(dd.parent_id, 1);
    assert_eq!(dd.sampling_priority, Some(2));
    // Same 128-bit trace in traceparent: other vendors' tracestate is
    // kept, nothing else (origin, priority, parent stay Datadog's).
    assert_eq!(dd.tracestate_others, "rojo=1");
    assert_eq!(dd.origin, None);
    let tc = from(&[Style::TraceContext, Style::Datadog]);
    assert_eq!(tc.style, Style::TraceContext);
    assert_eq!(tc.parent_id, PARENT);
    assert_eq!(tc.origin.as_deref(), Some("rum"));
    let b3 = from(&[Style::B3, Style::TraceContext]);
    assert_eq!(b3.style, Style::B3);
    assert_eq!(
        b3.trace_id,
        TraceId {
            high: 0,
            low: 0xabc
        }
    );
    assert_eq!(b3.tracestate_others, "");
    // tracecontext before the winner is not consulted again.
    let h = all_three("1311768467463790320", "garbage");
    let dd = extract(&[Style::TraceContext, Style::Datadog], lookup_in(&h)).expect("dd");
    assert_eq!(dd.style, Style::Datadog);
    assert_eq!(dd.tracestate_others, "");
    // A different trace id in traceparent: nothing merged.
    let h = all_three("99", TP);
    let dd = extract(&Style::DEFAULT, lookup_in(&h)).expect("dd");
    assert_eq!(
        dd.trace_id,
        TraceId {
            high: HIGH,
            low: 99
        }
    );
    assert_eq!(dd.tracestate_others, "");
    // Malformed first style falls through to the next.
    let h = all_three("12x", TP);
    assert_eq!(
        extract(&Style::DEFAULT, lookup_in(&h)).map(|e| e.style),
        Some(Style::TraceContext)
    );
    assert_eq!(extract(&[], lookup_in(&h)), None);
    assert_eq!(extract(&Style::ALL, lookup_in::<&str, &str>(&[])), None);
}

#[test]
fn headers_are_asked_for_by_lowercase_name_and_only_as_needed() {
    let mut asked = Vec::new();
    let got = extract(&Style::ALL, |name| {
        asked.push(name);
        None::<&str>
    });
    assert_eq!(got, None);
    assert_eq!(
        asked,
        vec!["x-datadog-trace-id", "traceparent", "x-b3-traceid"]
    );
}

// ------------------------------------------- config, sampling, record --

#[test]
fn untrusted_incoming_context_is_ignored() {
    let h = all_three("1311768467463790320", TP);
    let cfg = Config {
        trust_incoming: false,
        ..Config::default()
    };
    assert_eq!(extract_configured(&cfg, lookup_in(&h)), None);
    let new = TraceId { high: 7, low: 8 };
    let p = begin(&cfg, lookup_in(&h), new, SPAN);
    assert_eq!(p.extracted, None);
    assert_eq!(p.ctx.trace_id, new);
    assert_eq!(p.ctx.parent_id, 0);
    // The client's headers are replaced by ours.
    assert_eq!(p.injection.set[0], (X_DATADOG_TRACE_ID, "8".to_owned()));
    assert!(p.injection.remove.contains(&X_B3_TRACEID));
    assert!(extract_configured(&Config::default(), lookup_in(&h)).is_some());
}

#[test]
fn no_inject_style_leaves_headers_alone() {
    let cfg = Config {
        propagation_inject: vec![],
        ..Config::default()
    };
    let p = begin(
        &cfg,
        lookup_in::<&str, &str>(&[]),
        TraceId { high: 1, low: 2 },
        3,
    );
    assert_eq!(p.injection, Injection::default());
}

#[test]
fn sampling_keeps_an_inherited_priority() {
    let mut e = base(Style::Datadog);
    e.sampling_priority = Some(-1);
    e.propagation_tags = tags(&[("_dd.p.dm", "-3")]);
    assert_eq!(
        decide(Some(&e), LOW, Source::Default),
        Decision {
            priority: -1,
            mechanism: 3,
            rate: sampling::INHERITED_RATE
        }
    );
    e.propagation_tags.clear();
    e.sampling_priority = Some(2);
    assert_eq!(
        decide(Some(&e), LOW, Source::Agent(0.0)),
        Decision {
            priority: 2,
            mechanism: 0,
            rate: sampling::INHERITED_RATE
        }
    );
    // No inherited priority: the plugin's rate decides, on the
    // inherited trace id.
    e.sampling_priority = None;
    for source in [Source::Rule(0.25), Source::Agent(0.25), Source::Default] {
        assert_eq!(decide(Some(&e), LOW, source), sampling::decide(LOW, source));
        assert_eq!(decide(None, LOW, source), sampling::decide(LOW, source));
    }
}

#[test]
fn new_traces_follow_rules_then_sample_rate_then_the_agent() {
    use crate::sampling_rules::SamplingRule;
    let mut cfg = Config {
        sampling_rules: vec![SamplingRule {
            host: "a.example".into(),
            path_prefix: None,
            method: None,
            rate: crate::sample_rate::SampleRate::NONE,
        }],
        ..Config::default()
    };
    let none = lookup_in::<&str, &str>(&[]);
    // 1 * KNUTH is about 0.0602 of 2^64.
    let id = TraceId { high: 0, low: 1 };
    let input = |host, agent_rate| SamplingInput {
        host,
        path: "/x",
        method: "GET",
        agent_rate,
    };
    let decision = |cfg: &Config, i: &SamplingInput| {
        let p = begin_sampled(cfg, lookup_in::<&str, &str>(&[]), id, SPAN, i);
        (p.ctx.sampling, p.injection.set)
    };
    let (d, set) = decision(&cfg, &input("a.example", Some(1.0)));
    assert_eq!((d.priority, d.mechanism, d.rate), (-1, 3, 0.0));
    assert!(set.contains(&(X_DATADOG_SAMPLING_PRIORITY, "-1".to_owned())));
    // The agent's rate, kept and dropped: priority 1/0, `-1` injected
    // for a kept trace only.
    let (d, set) = decision(&cfg, &input("b.example", Some(0.07)));
    assert_eq!((d.priority, d.mechanism, d.rate), (1, 1, 0.07));
    assert!(set.contains(&(X_DATADOG_SAMPLING_PRIORITY, "1".to_owned())));
    assert!(set.contains(&(X_DATADOG_TAGS, "_dd.p.dm=-1".to_owned())));
    let (d, set) = decision(&cfg, &input("b.example", Some(0.06)));
    assert_eq!((d.priority, d.mechanism, d.rate), (0, 1, 0.06));
    assert!(set.contains(&(X_DATADOG_SAMPLING_PRIORITY, "0".to_owned())));
    assert!(!set.iter().any(|(n, _)| *n == X_DATADOG_TAGS));
    // The agent has not answered: kept by the default mechanism.
    let (d, _) = decision(&cfg, &input("b.example", None));
    assert_eq!((d.priority, d.mechanism, d.rate), (1, 0, 1.0));
    // `sampleRate` is the catch-all before the agent.
    cfg.sample_rate = crate::sample_rate::SampleRate::new(0.07).ok();
    let (d, _) = decision(&cfg, &input("b.example", Some(0.0)));
    assert_eq!((d.priority, d.mechanism, d.rate), (2, 3, 0.07));
    assert_eq!(
        begin(&cfg, none, id, SPAN).ctx.sampling,
        sampling::decide(1, Source::Rule(0.07))
    );
}

#[test]
fn begin_and_annotate_fill_the_record() {
    let h = [
        ("x-datadog-trace-id", "1311768467463790320"),
        ("x-datadog-parent-id", "67667974448284343"),
        ("x-datadog-sampling-priority", "1"),
        ("x-datadog-origin", "synthetics"),
        (
            "x-datadog-tags",
            "_dd.p.dm=-1,_dd.p.tid=6b0ea0cb00000000,_dd.p.usr.id=u=1,_dd.p.ts=02,bad key=1",
        ),
    ];
    let p = begin(&Config::default(), lookup_in(&h), TraceId::default(), SPAN);
    // One bad pair drops the whole tags header: no high bits, no dm.
    assert_eq!(
        p.ctx,
        SpanContext {
            trace_id: TraceId { high: 0, low: LOW },
            span_id: SPAN,
            parent_id: PARENT,
            sampling: Decision {
                priority: 1,
                mechanism: 0,
                rate: sampling::INHERITED_RATE
            }
        }
    );
    let mut r = crate::record::tests::sample(200);
    p.annotate(&mut r);
    assert_eq!(r.origin, "synthetics");
    assert_eq!(r.propagation_error, "decoding_error");
    assert_eq!(r.propagation_tags, "");
    let h = [
        ("x-datadog-trace-id", "1311768467463790320"),
        ("x-datadog-parent-id", "67667974448284343"),
        ("x-datadog-sampling-priority", "2"),
        ("x-datadog-origin", "synthetics"),
        (
            "x-datadog-tags",
            "_dd.p.dm=-1,_dd.p.tid=6b0ea0cb00000000,_dd.p.usr.id=u=1,_dd.p.ts=02",
        ),
    ];
    let p = begin(&Config::default(), lookup_in(&h), TraceId::default(), SPAN);
    assert_eq!(
        p.ctx.trace_id,
        TraceId {
            high: HIGH,
            low: LOW
        }
    );
    assert_eq!(
        p.ctx.sampling,
        Decision {
            priority: 2,
            mechanism: 1,
            rate: sampling::INHERITED_RATE
        }
    );
    let mut r = crate::record::tests::sample(200);
    p.annotate(&mut r);
    assert_eq!(r.origin, "synthetics");
    assert_eq!(r.propagation_error, "");
    assert_eq!(r.propagation_tags, "_dd.p.usr.id=u=1,_dd.p.ts=02");
    let span = crate::span::Span::from_record(&r);
    assert_eq!(span.meta["_dd.origin"], "synthetics");
    assert_eq!(span.meta["_dd.p.usr.id"], "u=1");
    assert_eq!(span.meta["_dd.p.ts"], "02");
    // Nothing extracted: the record keeps empty fields; an injection
    // error still shows.
    let mut r = crate::record::tests::sample(200);
    let inj = Injection {
        error: Some(ERROR_INJECT_MAX_SIZE),
        ..Injection::default()
    };
    annotate(&mut r, None, &inj);
    assert_eq!(
        (
            r.origin.as_str(),
            r.propagation_error.as_str(),
            r.propagation_tags.as_str()
        ),
        ("", "inject_max_size", "")
    );
}

#[test]
fn a_value_cut_to_its_useful_length_extracts_as_the_whole_value() {
    let long = |head: &str, fill: char| format!("{head}{}", fill.to_string().repeat(3000));
    let padded = |v: &str| format!("{}{v}{}", " \t".repeat(1000), "\t ".repeat(1000));
    let v01 = format!("01{}-", &TP[2..]);
    let variants: Vec<(&'static str, String)> = vec![
        (X_DATADOG_TRACE_ID, long("1", '1')),
        (X_DATADOG_TRACE_ID, long("1311768467463790320", ' ')),
        (X_DATADOG_PARENT_ID, long("1", ' ')),
        (X_DATADOG_SAMPLING_PRIORITY, long("2", '0')),
        (X_DATADOG_ORIGIN, long("rum", 'x')),
        (
            X_DATADOG_TAGS,
            long("_dd.p.tid=6b0ea0cb00000000,_dd.p.a=", 'b'),
        ),
        (X_DATADOG_TAGS, long("_dd.p.tid=6b0ea0cb00000000", ' ')),
        (TRACEPARENT, long(&v01, 'f')),
        (TRACEPARENT, long(TP, ' ')),
        (TRACEPARENT, long(TP, '0')),
        (X_B3_TRACEID, long("abc", '0')),
        (X_B3_SPANID, long("def", 'f')),
        (X_B3_SAMPLED, long("1", '1')),
        (X_DATADOG_TRACE_ID, padded("1311768467463790320")),
        (X_DATADOG_TAGS, padded("_dd.p.tid=6b0ea0cb00000000")),
        (TRACEPARENT, padded(TP)),
        (X_B3_SAMPLED, padded("0")),
    ];
    for (name, value) in variants {
        let mut whole = all_three("1311768467463790320", TP);
        whole.retain(|(n, _)| *n != name);
        let mut cut = whole.clone();
        cut.push((name, useful(name, &value)));
        whole.push((name, value));
        assert!(cut.last().is_some_and(|(_, v)| v.len() <= 1024));
        for styles in [
            &Style::ALL[..],
            &[Style::B3],
            &[Style::TraceContext, Style::Datadog],
        ] {
            assert_eq!(
                extract(styles, lookup_in(&cut)),
                extract(styles, lookup_in(&whole)),
                "{name} {styles:?}"
            );
        }
    }
    let state = format!("dd=s:1,{}", "a".repeat(3000));
    assert_eq!(useful(TRACESTATE, &state), state);
    assert_eq!(useful(X_DATADOG_TAGS, " _dd.p.a=b "), " _dd.p.a=b ");
    assert_eq!(useful(TRACEPARENT, " \t00-a\t "), "00-a");
}
