//! The B3 multi-header style: `x-b3-traceid`, `-spanid`, `-sampled`,
//! `-flags`.

use super::context::Extracted;
use super::ids::SpanContext;
use super::lex::{hex16, lower_hex, ows};
use super::style::*;
use crate::propagation::ids::TraceId;
use crate::text;

pub(super) fn extract<F, S>(get: &mut F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    let trace = get(X_B3_TRACEID)?;
    let trace = ows(trace.as_ref()).as_bytes();
    let trace_id = match trace.len() {
        16 => TraceId {
            high: 0,
            low: lower_hex(trace)?,
        },
        32 => TraceId {
            high: lower_hex(&trace[..16])?,
            low: lower_hex(&trace[16..])?,
        },
        _ => return None,
    };
    let parent_id = hex16(ows(get(X_B3_SPANID)?.as_ref()))?;
    if trace_id.low == 0 || parent_id == 0 {
        return None;
    }
    let mut sampling_priority = match get(X_B3_SAMPLED) {
        None => None,
        Some(s) => Some(match ows(s.as_ref()) {
            "1" | "true" => 1,
            "0" | "false" => 0,
            "d" => 2,
            _ => return None,
        }),
    };
    // Debug implies accept; other flag values are ignored (B3 spec).
    if get(X_B3_FLAGS).is_some_and(|f| ows(f.as_ref()) == "1") {
        sampling_priority = Some(2);
    }
    Some(Extracted {
        style: Style::B3,
        trace_id,
        parent_id,
        sampling_priority,
        origin: None,
        propagation_tags: Vec::new(),
        tracestate_others: String::new(),
        error: None,
    })
}

/// Writes `x-b3-traceid` (64 bits when the high half is 0), `-spanid` and
/// `-sampled`.
pub(super) fn inject(ctx: &SpanContext, set: &mut impl FnMut(&'static str, String)) {
    let mut trace = String::with_capacity(32);
    if ctx.trace_id.high != 0 {
        ctx.trace_id.push_hex32(&mut trace);
    } else {
        text::push_hex16(&mut trace, ctx.trace_id.low);
    }
    set(X_B3_TRACEID, trace);
    set(X_B3_SPANID, text::hex16(ctx.span_id));
    set(
        X_B3_SAMPLED,
        if ctx.sampling.priority > 0 { "1" } else { "0" }.to_owned(),
    );
}

#[cfg(test)]
#[path = "b3_tests.rs"]
mod tests;
