//! The Datadog style: `x-datadog-trace-id`, `-parent-id`,
//! `-sampling-priority`, `-origin` and `-tags`.

use super::context::Extracted;
use super::ids::SpanContext;
use super::lex::{decimal_u64, ows, priority, valid_origin};
use super::style::*;
use super::tags::{datadog_tags, datadog_tags_header};
use crate::propagation::ids::TraceId;
use crate::text;

pub(super) fn extract<F, S>(get: &mut F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    let low = decimal_u64(ows(get(X_DATADOG_TRACE_ID)?.as_ref()))?;
    if low == 0 {
        return None;
    }
    let origin = match get(X_DATADOG_ORIGIN) {
        None => None,
        Some(o) => match ows(o.as_ref()) {
            "" => None,
            o if valid_origin(o) => Some(o.to_owned()),
            _ => return None,
        },
    };
    let parent_id = match get(X_DATADOG_PARENT_ID) {
        None => 0,
        Some(p) => decimal_u64(ows(p.as_ref()))?,
    };
    if parent_id == 0 && origin.is_none() {
        return None;
    }
    let sampling_priority = match get(X_DATADOG_SAMPLING_PRIORITY) {
        None => None,
        Some(p) => Some(priority(ows(p.as_ref()))?),
    };
    let mut trace_id = TraceId { high: 0, low };
    let (propagation_tags, error) = match get(X_DATADOG_TAGS) {
        None => (Vec::new(), None),
        Some(t) => datadog_tags(t.as_ref(), &mut trace_id),
    };
    Some(Extracted {
        style: Style::Datadog,
        trace_id,
        parent_id,
        sampling_priority,
        origin,
        propagation_tags,
        tracestate_others: String::new(),
        error,
    })
}

/// Writes the style's headers; returns a value for `_dd.propagation_error`.
pub(super) fn inject(
    ctx: &SpanContext,
    origin: Option<&str>,
    tags: &[(String, String)],
    set: &mut impl FnMut(&'static str, String),
) -> Option<&'static str> {
    set(X_DATADOG_TRACE_ID, text::u64_string(ctx.trace_id.low));
    set(X_DATADOG_PARENT_ID, text::u64_string(ctx.span_id));
    let mut p = String::with_capacity(2);
    text::push_i64(&mut p, i64::from(ctx.sampling.priority));
    set(X_DATADOG_SAMPLING_PRIORITY, p);
    if let Some(o) = origin {
        set(X_DATADOG_ORIGIN, o.to_owned());
    }
    let (header, error) = datadog_tags_header(ctx, tags);
    if let Some(h) = header {
        set(X_DATADOG_TAGS, h);
    }
    error
}

#[cfg(test)]
#[path = "datadog_tests.rs"]
mod tests;
