//! The W3C Trace Context style: `traceparent`, and `tracestate` with its
//! `dd` member.

use super::context::Extracted;
use super::ids::SpanContext;
use super::lex::{hex16, lower_hex, ows, priority, valid_origin};
use super::style::*;
use super::tags::{
    TAG_DM, TAG_PREFIX, TAG_TID, dm_mechanism, set_tag, valid_tag_key, valid_tag_value,
};
use crate::propagation::ids::TraceId;
use crate::sampling;
use crate::text;

/// W3C: at most 32 list members in `tracestate`.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// W3C: a list member's value is at most 256 characters; so is our `dd=`
/// member as a whole (dd-trace-cpp).
pub const MAX_TRACESTATE_VALUE: usize = 256;
/// Other vendors' members kept for re-injection, commas included: W3C asks
/// a vendor to propagate at least 512 characters of the header and tells
/// how to cut beyond. The guest pays memory and work for every byte kept
/// and written again, on every request.
pub const MAX_TRACESTATE_OTHERS: usize = 512;
/// W3C: when the header must be cut, members longer than this go first.
const LONG_MEMBER: usize = 128;

/// `traceparent` → trace id, parent id, sampled flag.
fn parse_traceparent(s: &str) -> Option<(TraceId, u64, bool)> {
    let b = s.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = lower_hex(&b[0..2])?;
    if version == 0xff {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append
    // `-<more>`, which a version-00 reader ignores.
    if (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = TraceId {
        high: lower_hex(&b[3..19])?,
        low: lower_hex(&b[19..35])?,
    };
    let parent = lower_hex(&b[36..52])?;
    let flags = lower_hex(&b[53..55])?;
    if trace_id.low == 0 || parent == 0 {
        return None;
    }
    Some((trace_id, parent, flags & 1 == 1))
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// W3C list-member key: `simple-key` or `tenant@system`.
fn valid_tracestate_key(k: &str) -> bool {
    let ok = |s: &str, max: usize, first: fn(u8) -> bool| {
        let b = s.as_bytes();
        !b.is_empty() && b.len() <= max && first(b[0]) && b[1..].iter().all(|&c| key_char(c))
    };
    match k.split_once('@') {
        None => ok(k, 256, |c| c.is_ascii_lowercase()),
        Some((tenant, system)) => {
            ok(tenant, 241, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit()
            }) && ok(system, 14, |c| c.is_ascii_lowercase())
        }
    }
}

/// W3C list-member value: 1-256 printable characters but `,` and `=`, not
/// ending in a space.
fn valid_tracestate_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_TRACESTATE_VALUE
        && !v.ends_with(' ')
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

struct Tracestate<'a> {
    dd: Option<&'a str>,
    others: Vec<&'a str>,
}

/// The `dd` member's value and the other members; `None` when invalid.
fn parse_tracestate(s: &str) -> Option<Tracestate<'_>> {
    let mut dd = None;
    let mut others = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for member in s.split(',') {
        let member = ows(member);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_tracestate_key(key)
            || !valid_tracestate_value(value)
            || keys.contains(&key)
            || keys.len() == MAX_TRACESTATE_MEMBERS
        {
            return None;
        }
        keys.push(key);
        if key == "dd" {
            dd = Some(value);
        } else {
            others.push(member);
        }
    }
    Some(Tracestate { dd, others })
}

/// The other vendors' members re-injected after ours: ours goes first, so
/// 31 at most; and when they exceed [`MAX_TRACESTATE_OTHERS`], cut as W3C
/// says (Trace Context, "tracestate limits"): members longer than 128
/// characters first, then members from the end, until they fit.
fn kept_others(mut others: Vec<&str>) -> String {
    others.truncate(MAX_TRACESTATE_MEMBERS - 1);
    let joined_len = |ms: &[&str]| {
        ms.iter()
            .map(|m| m.len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    if joined_len(&others) > MAX_TRACESTATE_OTHERS {
        others.retain(|m| m.len() <= LONG_MEMBER);
    }
    while joined_len(&others) > MAX_TRACESTATE_OTHERS {
        others.pop();
    }
    others.join(",")
}

struct DdState {
    priority: Option<i8>,
    origin: Option<String>,
    tags: Vec<(String, String)>,
}

/// The `dd` member: `s:<prio>;p:<hex16>;o:<origin>;t.<tag>:<value>`, `~`
/// standing for `=` in values. `None` when any known field is malformed.
fn parse_dd_member(v: &str) -> Option<DdState> {
    let mut state = DdState {
        priority: None,
        origin: None,
        tags: Vec::new(),
    };
    for field in v.split(';') {
        if field.is_empty() {
            continue;
        }
        let (key, value) = field.split_once(':')?;
        if key == "s" {
            state.priority = Some(priority(value)?);
        } else if key == "p" {
            hex16(value)?;
        } else if key == "o" {
            let origin = value.replace('~', "=");
            if !valid_origin(&origin) {
                return None;
            }
            state.origin = Some(origin);
        } else if let Some(name) = key.strip_prefix("t.") {
            let tag = format!("{TAG_PREFIX}{name}");
            let value = value.replace('~', "=");
            if !valid_tag_key(&tag) || !valid_tag_value(&value) {
                return None;
            }
            if tag == TAG_DM && dm_mechanism(&value).is_none() {
                return None;
            }
            // The high bits travel in traceparent itself.
            if tag != TAG_TID {
                set_tag(&mut state.tags, &tag, &value);
            }
        }
    }
    Some(state)
}

pub(super) fn extract<F, S>(get: &mut F) -> Option<Extracted>
where
    F: FnMut(&'static str) -> Option<S>,
    S: AsRef<str>,
{
    let (trace_id, parent_id, sampled) = parse_traceparent(ows(get(TRACEPARENT)?.as_ref()))?;
    let mut out = Extracted {
        style: Style::TraceContext,
        trace_id,
        parent_id,
        sampling_priority: Some(i8::from(sampled)),
        origin: None,
        propagation_tags: Vec::new(),
        tracestate_others: String::new(),
        error: None,
    };
    let Some(header) = get(TRACESTATE) else {
        return Some(out);
    };
    let Some(state) = parse_tracestate(header.as_ref()) else {
        return Some(out);
    };
    out.tracestate_others = kept_others(state.others);
    if let Some(dd) = state.dd.and_then(parse_dd_member) {
        out.origin = dd.origin;
        out.propagation_tags = dd.tags;
        match dd.priority {
            // The flag is authoritative; `s` refines it when consistent.
            Some(s) if (s > 0) == sampled => out.sampling_priority = Some(s),
            // Inconsistent: the flag wins, decided by default.
            Some(_) => set_tag(&mut out.propagation_tags, TAG_DM, "-0"),
            None => {}
        }
    }
    Some(out)
}

/// Appends a tracestate `dd` field value: printable, `,;~` → `_`, `=` → `~`,
/// no trailing space.
fn push_tracestate_value(out: &mut String, v: &str) {
    out.extend(v.chars().map(|c| match c {
        '=' => '~',
        ',' | ';' | '~' => '_',
        ' '..='~' => c,
        _ => '_',
    }));
    if out.ends_with(' ') {
        out.pop();
        out.push('_');
    }
}

/// A character of a tracestate `dd` field key suffix: printable without
/// space, `,;=:`.
fn tracestate_key_char(c: char) -> char {
    match c {
        ',' | ';' | '=' | ':' => '_',
        '!'..='~' => c,
        _ => '_',
    }
}

/// `dd=s:<prio>;p:<span>[;o:<origin>][;t.dm:-<n>][;t.<k>:<v>...]` (fields
/// that would push the member past 256 characters are left out), then up to
/// 31 other vendors' members.
fn tracestate_header(
    ctx: &SpanContext,
    origin: Option<&str>,
    tags: &[(String, String)],
    others: &str,
) -> String {
    let mut dd = String::with_capacity(64);
    dd.push_str("dd=s:");
    text::push_i64(&mut dd, i64::from(ctx.sampling.priority));
    dd.push_str(";p:");
    text::push_hex16(&mut dd, ctx.span_id);
    // Each field is written in place and taken back if it overflows the
    // member: the guest builds this header on every request.
    let field = |dd: &mut String, write: &dyn Fn(&mut String)| {
        let before = dd.len();
        dd.push(';');
        write(dd);
        if dd.len() > MAX_TRACESTATE_VALUE {
            dd.truncate(before);
        }
    };
    if let Some(o) = origin {
        field(&mut dd, &|dd| {
            dd.push_str("o:");
            push_tracestate_value(dd, o);
        });
    }
    if ctx.sampling.priority > 0 {
        field(&mut dd, &|dd| {
            dd.push_str("t.dm:");
            sampling::push_decision_maker(dd, ctx.sampling.mechanism);
        });
    }
    for (k, v) in tags {
        if k == TAG_TID || k == TAG_DM {
            continue;
        }
        if let Some(name) = k.strip_prefix(TAG_PREFIX) {
            field(&mut dd, &|dd| {
                dd.push_str("t.");
                dd.extend(name.chars().map(tracestate_key_char));
                dd.push(':');
                push_tracestate_value(dd, v);
            });
        }
    }
    for member in others
        .split(',')
        .filter(|m| !m.is_empty())
        .take(MAX_TRACESTATE_MEMBERS - 1)
    {
        dd.push(',');
        dd.push_str(member);
    }
    dd
}

/// Writes `traceparent` and `tracestate`.
pub(super) fn inject(
    ctx: &SpanContext,
    origin: Option<&str>,
    tags: &[(String, String)],
    others: &str,
    set: &mut impl FnMut(&'static str, String),
) {
    let mut tp = String::with_capacity(55);
    tp.push_str("00-");
    ctx.trace_id.push_hex32(&mut tp);
    tp.push('-');
    text::push_hex16(&mut tp, ctx.span_id);
    tp.push_str(if ctx.sampling.priority > 0 {
        "-01"
    } else {
        "-00"
    });
    set(TRACEPARENT, tp);
    set(TRACESTATE, tracestate_header(ctx, origin, tags, others));
}

#[cfg(test)]
#[path = "tracecontext_tests.rs"]
mod tests;
