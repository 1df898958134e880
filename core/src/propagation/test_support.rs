//! Shared values and helpers of the propagation tests.

pub use super::*;
pub use crate::propagation::ids::TraceId;
pub use crate::sampling::{self, Decision, Source};

pub const HIGH: u64 = 0x6b0e_a0cb_0000_0000;
pub const LOW: u64 = 0x1234_5678_9abc_def0; // 1311768467463790320
pub const PARENT: u64 = 0x00f0_67aa_0ba9_02b7; // 67667974448284343
pub const SPAN: u64 = 0x5f1d_e3a2_0c44_9b01; // 6853884493057792769
pub const DD: &[Style] = &[Style::Datadog];
pub const TC: &[Style] = &[Style::TraceContext];
pub const B3: &[Style] = &[Style::B3];

pub fn ext(styles: &[Style], headers: &[(&str, &str)]) -> Option<Extracted> {
    extract(styles, lookup_in(headers))
}

pub fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn ctx(high: u64, priority: i8, mechanism: u8) -> SpanContext {
    SpanContext {
        trace_id: TraceId { high, low: LOW },
        span_id: SPAN,
        parent_id: PARENT,
        sampling: Decision {
            priority,
            mechanism,
            rate: 1.0,
        },
    }
}

pub fn base(style: Style) -> Extracted {
    Extracted {
        style,
        trace_id: TraceId {
            high: HIGH,
            low: LOW,
        },
        parent_id: PARENT,
        sampling_priority: None,
        origin: None,
        propagation_tags: Vec::new(),
        tracestate_others: String::new(),
        error: None,
    }
}

pub fn set_of(inj: &Injection) -> Vec<(&str, &str)> {
    inj.set.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

pub const TP: &str = "00-6b0ea0cb00000000123456789abcdef0-00f067aa0ba902b7-01";

pub fn all_three(dd_trace: &str, tp: &str) -> Vec<(&'static str, String)> {
    vec![
        (X_DATADOG_TRACE_ID, dd_trace.to_owned()),
        (X_DATADOG_PARENT_ID, "1".to_owned()),
        (X_DATADOG_SAMPLING_PRIORITY, "2".to_owned()),
        (X_DATADOG_TAGS, "_dd.p.tid=6b0ea0cb00000000".to_owned()),
        (TRACEPARENT, tp.to_owned()),
        (TRACESTATE, "dd=s:1;o:rum,rojo=1".to_owned()),
        (X_B3_TRACEID, "00000000000000000000000000000abc".to_owned()),
        (X_B3_SPANID, "0000000000000003".to_owned()),
    ]
}
