//! Trace context propagation: reading the caller's context from request
//! headers (extraction) and writing the plugin span's context into the request
//! sent upstream (injection), in the Datadog, W3C Trace Context and B3
//! multi-header styles, the way dd-trace and nginx-datadog do.
//!
//! Pure functions, no host calls. Extraction asks for headers by name through
//! a closure (`get("traceparent")`), so the guest reads from the host only the
//! few headers a style needs, one by one. Names are always passed lowercase;
//! the lookup must be case-insensitive (the http-wasm host's is). When a
//! header occurs several times the lookup should return the values joined
//! with `,` (HTTP list semantics): `tracestate` is meant to be split that way,
//! and single-valued headers then fail to parse, as they should. A value the
//! guest could not read (larger than its read space) is given as [`UNREAD`]:
//! invalid in every style, and for `x-datadog-tags` the oversize it is.
//!
//! Decisions, where the brief or the specs leave room:
//! - Styles are tried in the configured order; the first that yields a valid
//!   context wins (dd-trace). If `tracecontext` comes later in the order and
//!   carries the same 128-bit trace id, its `tracestate` members of other
//!   vendors are kept for re-injection (dd-trace-cpp's merge). The winner's
//!   parent id is kept (no reparenting to the W3C parent).
//! - Malformed ids, priorities or origins make their style yield nothing;
//!   there is never a half-parsed context. `x-datadog-tags` is the exception
//!   (dd-trace's behaviour): a bad or oversized value drops the tags only and
//!   the span gets `_dd.propagation_error`. A malformed `_dd.p.tid` drops the
//!   high bits only (`malformed_tid`). An invalid `tracestate` (bad member,
//!   duplicate key, more than 32 members) is ignored as a whole; a malformed
//!   `dd` member is ignored as a whole; either way `traceparent` still counts.
//! - A context whose low 64 trace-id bits are 0 is rejected in every style:
//!   Datadog keys traces, sampling and `x-datadog-trace-id` on them.
//! - A parent id of 0 (or none) is accepted only in the Datadog style with an
//!   origin (Synthetics): the plugin span is then the trace's root.
//! - Unknown keys inside tracestate's `dd` member are not re-injected.
//! - Other vendors' tracestate members are re-injected up to 512 characters
//!   ([`MAX_TRACESTATE_OTHERS`]), cut as W3C says a vendor may: members
//!   longer than 128 characters first, then from the end.
//! - Injection overwrites the injected headers (nginx-datadog) and removes
//!   every other header of the three styles (plus the B3 single `b3` header),
//!   so the upstream sees exactly one context, ours, never a stale or
//!   client-forged one next to it. With no inject style, headers are left
//!   untouched.
//! - `_dd.p.dm` is injected only for a kept trace (priority > 0), as
//!   dd-trace does. When `x-datadog-tags` would exceed 512 bytes, only
//!   `_dd.p.tid` and `_dd.p.dm` are sent (so the 128-bit id survives) and the
//!   span gets `_dd.propagation_error=inject_max_size`.
//! - An inherited sampling priority is kept; its mechanism is `_dd.p.dm` when
//!   present, else the default (0), and its rate is
//!   [`sampling::INHERITED_RATE`] (the plugin applied no rate of its own).

mod b3;
mod context;
mod datadog;
pub mod ids;
mod lex;
pub mod settings;
pub mod style;
mod tags;
mod tracecontext;

pub use context::{Extracted, Injection};
pub use ids::SpanContext;
pub use lex::MAX_ORIGIN;
pub use settings::Settings;
pub use style::*;
pub use tags::{
    ERROR_DECODING, ERROR_EXTRACT_MAX_SIZE, ERROR_INJECT_MAX_SIZE, ERROR_MALFORMED_TID,
    MAX_TAGS_HEADER, UNREAD,
};
pub use tracecontext::{MAX_TRACESTATE_MEMBERS, MAX_TRACESTATE_OTHERS, MAX_TRACESTATE_VALUE};

use crate::sampling::{self, Decision, MECHANISM_DEFAULT, Source};
use ids::TraceId;
use tags::{TAG_DM, TAG_TID, encode_tags};

/// A case-insensitive lookup over `(name, value)` pairs, for tests and
/// callers that hold all headers; returns the first value of a name.
pub fn lookup_in<'a, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'a [(K, V)],
) -> impl FnMut(&'static str) -> Option<&'a str> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// The first valid context among `styles`, in order. `get` is asked for
/// lowercase header names and returns the value, if present.
pub fn extract<F, S>(styles: &[Style], mut get: F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    for (i, &style) in styles.iter().enumerate() {
        let Some(mut found) = extract_style(style, &mut get) else {
            continue;
        };
        let later = styles.get(i + 1..).unwrap_or_default();
        if style != Style::TraceContext && later.contains(&Style::TraceContext) {
            if let Some(w3c) = extract_style(Style::TraceContext, &mut get) {
                if w3c.trace_id == found.trace_id {
                    found.tracestate_others = w3c.tracestate_others;
                }
            }
        }
        return Some(found);
    }
    None
}

/// Extraction as configured: nothing at all unless `trustIncoming`.
pub fn extract_configured<'c, F, S>(cfg: impl Into<Settings<'c>>, get: F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    let cfg = cfg.into();
    if cfg.trust_incoming {
        extract(cfg.extract, get)
    } else {
        None
    }
}

/// Every incoming header but `tracestate` is, past its blanks, invalid
/// (ids, priorities, origins, `traceparent`'s fields) or over its cap
/// (`x-datadog-tags`, 512) well before this length, and stays so cut here.
const MAX_USEFUL: usize = 1024;

/// What of a header's value extraction needs, copied for it: the same
/// context as the whole value, from at most about 1 KiB of it, so that the
/// guest does not copy up to 8 KiB per header. `tracestate` is used whole:
/// a member at its end can make it invalid. `x-datadog-tags` keeps its
/// blanks: its length decides `extract_max_size`, spaces included, as in
/// dd-trace. Every other header is read past its blanks (`ows`), then cut
/// as [`crate::text::decode`] cuts, marker included.
pub fn useful(name: &str, value: &str) -> String {
    match name {
        TRACESTATE => value.to_owned(),
        X_DATADOG_TAGS => crate::text::decode(value.as_bytes(), MAX_USEFUL),
        _ => crate::text::decode(lex::ows(value).as_bytes(), MAX_USEFUL),
    }
}

/// One style's context, or nothing.
pub fn extract_style<F, S>(style: Style, get: &mut F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    match style {
        Style::Datadog => datadog::extract(get),
        Style::TraceContext => tracecontext::extract(get),
        Style::B3 => b3::extract(get),
    }
}

/// The sampling decision for the plugin span: an inherited priority is kept
/// (mechanism from `_dd.p.dm`, else default; no rate of the plugin's own);
/// without one the plugin decides with `source`, on the (possibly
/// inherited) trace id.
pub fn decide(extracted: Option<&Extracted>, trace_id_low: u64, source: Source) -> Decision {
    match extracted.and_then(|e| e.sampling_priority.map(|p| (e, p))) {
        Some((e, priority)) => Decision {
            priority,
            mechanism: e.mechanism().unwrap_or(MECHANISM_DEFAULT),
            rate: sampling::INHERITED_RATE,
        },
        None => sampling::decide(trace_id_low, source),
    }
}

/// The plugin span's identity: a child of the extracted context, or the root
/// of `new_trace_id`.
pub fn span_context(
    extracted: Option<&Extracted>,
    new_trace_id: TraceId,
    span_id: u64,
    source: Source,
) -> SpanContext {
    let (trace_id, parent_id) = extracted.map_or((new_trace_id, 0), |e| (e.trace_id, e.parent_id));
    SpanContext {
        trace_id,
        span_id,
        parent_id,
        sampling: decide(extracted, trace_id.low, source),
    }
}

/// How many headers the three styles have together.
const HEADER_COUNT: usize = 13;

/// The headers that make the plugin span the upstream's parent.
pub fn inject(styles: &[Style], ctx: &SpanContext, extracted: Option<&Extracted>) -> Injection {
    if styles.is_empty() {
        return Injection::default();
    }
    // Sized once for every header of the three styles: no growth per request.
    let mut out = Injection {
        set: Vec::with_capacity(HEADER_COUNT),
        remove: Vec::with_capacity(HEADER_COUNT),
        error: None,
    };
    let origin = extracted.and_then(|e| e.origin.as_deref());
    let tags: &[(String, String)] = extracted.map_or(&[], |e| &e.propagation_tags);
    let others = extracted.map_or("", |e| e.tracestate_others.as_str());
    let mut error = None;
    // Where each style's headers sit in `out.set`, by `Style::ALL` order. A
    // style listed twice writes nothing new: its headers are set already.
    let mut written = [0..0, 0..0, 0..0];
    let mut done = [false; 3];
    for &style in styles {
        let i = style.index();
        if std::mem::replace(&mut done[i], true) {
            continue;
        }
        let start = out.set.len();
        let mut set = |name: &'static str, value: String| out.set.push((name, value));
        match style {
            Style::Datadog => error = error.or(datadog::inject(ctx, origin, tags, &mut set)),
            Style::TraceContext => tracecontext::inject(ctx, origin, tags, others, &mut set),
            Style::B3 => b3::inject(ctx, &mut set),
        }
        written[i] = start..out.set.len();
    }
    out.error = error;
    // Every header of the three styles not written goes. Each style writes a
    // part of its own list, in the list's order, so one walk per style finds
    // them (the guest pays for every comparison, on every request).
    for (style, range) in Style::ALL.into_iter().zip(written) {
        let mut next = out.set[range].iter().map(|(n, _)| *n).peekable();
        for &name in style.headers() {
            if next.peek() == Some(&name) {
                next.next();
            } else {
                out.remove.push(name);
            }
        }
        debug_assert!(
            next.peek().is_none(),
            "{style:?} writes in its list's order"
        );
    }
    out
}

/// The plugin span's place in its trace, as one request's propagation
/// decided it, and the headers that carry it upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    pub ctx: SpanContext,
    pub extracted: Option<Extracted>,
    pub injection: Injection,
}

/// What the sampling decision of a new trace depends on besides the
/// configuration: the request, and the agent's rate if it has answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingInput<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    pub agent_rate: Option<f64>,
}

/// [`begin_sampled`] for a request that matches no host rule and an agent
/// that has not answered.
pub fn begin<'c, F, S>(
    cfg: impl Into<Settings<'c>>,
    get: F,
    new_trace_id: TraceId,
    span_id: u64,
) -> Propagation
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    begin_sampled(cfg, get, new_trace_id, span_id, &SamplingInput::default())
}

/// Extract (if trusted), decide, and compute the headers to inject, in one
/// call. `new_trace_id` is used when nothing is extracted.
pub fn begin_sampled<'c, F, S>(
    cfg: impl Into<Settings<'c>>,
    get: F,
    new_trace_id: TraceId,
    span_id: u64,
    input: &SamplingInput,
) -> Propagation
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    let cfg = cfg.into();
    let extracted = extract_configured(cfg, get);
    let source = crate::sampling::rules::source(
        cfg.sampling_rules,
        cfg.sample_rate,
        input.agent_rate,
        input.host,
        input.path,
        input.method,
    );
    let ctx = span_context(extracted.as_ref(), new_trace_id, span_id, source);
    let injection = inject(cfg.inject, &ctx, extracted.as_ref());
    Propagation {
        ctx,
        extracted,
        injection,
    }
}

impl Propagation {
    /// A trace begun here: nothing extracted, nothing injected.
    pub fn root(ctx: SpanContext) -> Self {
        Self {
            ctx,
            extracted: None,
            injection: Injection::default(),
        }
    }

    /// `_dd.origin` of the incoming context; empty: none.
    pub fn origin(&self) -> &str {
        self.extracted
            .as_ref()
            .and_then(|e| e.origin.as_deref())
            .unwrap_or_default()
    }

    /// The inherited `_dd.p.*` tags other than tid and dm, as
    /// `x-datadog-tags` encodes them (`k=v,k=v`); empty: none.
    pub fn inherited_tags(&self) -> String {
        self.extracted.as_ref().map_or_else(String::new, |e| {
            encode_tags(
                e.propagation_tags
                    .iter()
                    .filter(|(k, _)| k != TAG_TID && k != TAG_DM),
            )
        })
    }

    /// `_dd.propagation_error`: extraction's first, else injection's;
    /// empty: none.
    pub fn error(&self) -> &'static str {
        self.extracted
            .as_ref()
            .and_then(|e| e.error)
            .or(self.injection.error)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
