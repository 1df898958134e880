//! `_dd.p.*` propagation tags and the `x-datadog-tags` header that carries
//! them: grammar, caps, and the values of `_dd.propagation_error`.

use super::ids::SpanContext;
use super::lex::{hex16, is_lower_hex, ows};
use crate::propagation::ids::TraceId;
use crate::sampling;

/// Largest `x-datadog-tags` value read or written (dd-trace's default).
pub const MAX_TAGS_HEADER: usize = 512;

/// A header value present but too large for the guest to read. No client
/// can send it: Go's server rejects a NUL in a header value, and the host
/// joins values with NUL bytes only to separate them.
pub const UNREAD: &str = "\0";

/// Values of `_dd.propagation_error`.
pub const ERROR_EXTRACT_MAX_SIZE: &str = "extract_max_size";
pub const ERROR_DECODING: &str = "decoding_error";
pub const ERROR_MALFORMED_TID: &str = "malformed_tid";
pub const ERROR_INJECT_MAX_SIZE: &str = "inject_max_size";

pub(super) const TAG_PREFIX: &str = "_dd.p.";
pub(super) const TAG_TID: &str = "_dd.p.tid";
pub(super) const TAG_DM: &str = "_dd.p.dm";

/// `x-datadog-tags` key: printable ASCII without space, `=` or `,`.
pub(super) fn valid_tag_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'=' && b != b',')
}

/// `x-datadog-tags` value: printable ASCII (inner spaces included) without
/// `,`; surrounding spaces are the header's optional whitespace, not data.
pub(super) fn valid_tag_value(v: &str) -> bool {
    !v.is_empty()
        && v == v.trim_matches(' ')
        && v.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',')
}

/// The mechanism in a `_dd.p.dm` value: `-<n>`, or the legacy
/// `<hex service hash>-<n>`.
pub(super) fn dm_mechanism(v: &str) -> Option<u8> {
    let (hash, n) = v.rsplit_once('-')?;
    if hash.len() > 16 || !hash.bytes().all(is_lower_hex) {
        return None;
    }
    if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Replaces or appends a tag.
pub(super) fn set_tag(tags: &mut Vec<(String, String)>, key: &str, value: &str) {
    match tags.iter_mut().find(|(k, _)| k == key) {
        Some(t) => value.clone_into(&mut t.1),
        None => tags.push((key.to_owned(), value.to_owned())),
    }
}

pub(super) fn encode_tags<'a>(tags: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `k=v,k=v` pairs per dd-trace's grammar (whitespace around a pair is
/// tolerated); `None` when malformed.
pub(super) fn decode_tags(header: &str) -> Option<Vec<(&str, &str)>> {
    let header = ows(header);
    if header.is_empty() {
        return Some(Vec::new());
    }
    header
        .split(',')
        .map(|item| {
            let (k, v) = ows(item).split_once('=')?;
            (valid_tag_key(k) && valid_tag_value(v)).then_some((k, v))
        })
        .collect()
}

/// The `_dd.p.*` tags of `x-datadog-tags`; `_dd.p.tid` goes into `trace`.
pub(super) fn datadog_tags(
    header: &str,
    trace: &mut TraceId,
) -> (Vec<(String, String)>, Option<&'static str>) {
    // An unread value is longer than anything the guest reads, so longer
    // than the cap: the error dd-trace gives an oversized header.
    if header.len() > MAX_TAGS_HEADER || header == UNREAD {
        return (Vec::new(), Some(ERROR_EXTRACT_MAX_SIZE));
    }
    let Some(pairs) = decode_tags(header) else {
        return (Vec::new(), Some(ERROR_DECODING));
    };
    let mut tags = Vec::new();
    let mut error = None;
    for (k, v) in pairs {
        if !k.starts_with(TAG_PREFIX) {
            continue;
        }
        if k == TAG_TID {
            match hex16(v) {
                Some(high) => trace.high = high,
                None => error = Some(ERROR_MALFORMED_TID),
            }
            continue;
        }
        if k == TAG_DM && dm_mechanism(v).is_none() {
            error = Some(ERROR_DECODING);
            continue;
        }
        set_tag(&mut tags, k, v);
    }
    (tags, error)
}

/// `x-datadog-tags`: `_dd.p.tid`, `_dd.p.dm` (kept traces only), then the
/// inherited tags. Over the cap, only the first two.
pub(super) fn datadog_tags_header(
    ctx: &SpanContext,
    tags: &[(String, String)],
) -> (Option<String>, Option<&'static str>) {
    // Written in place, one text per request: the guest builds this header
    // on every request, and each intermediate value cost it an allocation.
    let mut out = String::with_capacity(48);
    let pair = |out: &mut String, k: &str| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
    };
    if ctx.trace_id.high != 0 {
        pair(&mut out, TAG_TID);
        crate::text::push_hex16(&mut out, ctx.trace_id.high);
    }
    if ctx.sampling.priority > 0 {
        pair(&mut out, TAG_DM);
        sampling::push_decision_maker(&mut out, ctx.sampling.mechanism);
    }
    let essential = out.len();
    for (k, v) in tags.iter().filter(|(k, _)| k != TAG_TID && k != TAG_DM) {
        pair(&mut out, k);
        out.push_str(v);
    }
    let error = if out.len() > MAX_TAGS_HEADER {
        out.truncate(essential);
        Some(ERROR_INJECT_MAX_SIZE)
    } else {
        None
    };
    ((!out.is_empty()).then_some(out), error)
}
