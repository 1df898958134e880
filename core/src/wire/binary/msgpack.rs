//! A record's frame body: the MessagePack array rmp-serde writes for it
//! (struct as an array in field order, every integer in its smallest form,
//! the status source as its serde name), byte for byte, so readers keep
//! decoding it with rmp-serde.

// Hand-written: the guest pays Traefik CPU for every wasm operation of every
// request, and serde's generic encoder cost ~1,500 more per frame than this.

use crate::record::{Record, StatusSource};

/// MessagePack's largest string header (str32) and largest number.
const STR_OVERHEAD: usize = 5;
const NUM: usize = 9;
/// The record's non-string fields: 13 numbers, 2 optional numbers (the
/// response size, the gRPC status), the status source (a variant name of
/// at most 13 bytes), 2 booleans, and the array and two map headers.
const FIXED: usize = 15 * NUM + (13 + STR_OVERHEAD) + 2 + 3 * STR_OVERHEAD;

/// A bound on what [`write`] adds for `r` that is never below the real
/// size, computed without encoding: the frame is reserved with it once, and
/// [`crate::request::limits::fit`] cuts a record until it fits the frame's budget.
pub fn bound(r: &Record) -> usize {
    let strings: usize = r.strings().iter().map(|s| s.len() + STR_OVERHEAD).sum();
    let pairs = |m: &std::collections::BTreeMap<String, String>| -> usize {
        m.iter()
            .map(|(k, v)| k.len() + v.len() + 2 * STR_OVERHEAD)
            .sum()
    };
    FIXED + strings + pairs(&r.header_tags) + pairs(&r.tags)
}

/// Appends `r` as rmp-serde's default encoding does.
pub fn write(out: &mut Vec<u8>, r: &Record) {
    // Destructured so that a new field does not compile until it is written.
    let Record {
        start_ns,
        duration_ns,
        host,
        method,
        path,
        scheme,
        protocol,
        status,
        status_source,
        client_addr,
        user_agent,
        trace_id_high,
        trace_id,
        span_id,
        parent_id,
        sampling_priority,
        sampling_mechanism,
        sample_rate,
        service,
        env,
        version,
        name,
        resource,
        error,
        origin,
        propagation_error,
        propagation_tags,
        header_tags,
        metrics_sent,
        content_length,
        grpc_status,
        recovered_calls,
        unread_values,
        tags,
    } = r;
    // array16 of 34 fields.
    out.extend_from_slice(&[0xdc, 0, 34]);
    put_sint(out, *start_ns);
    put_sint(out, *duration_ns);
    put_str(out, host);
    put_str(out, method);
    put_str(out, path);
    put_str(out, scheme);
    put_str(out, protocol);
    put_uint(out, u64::from(*status));
    put_str(out, status_source_name(*status_source));
    put_str(out, client_addr);
    put_str(out, user_agent);
    put_uint(out, *trace_id_high);
    put_uint(out, *trace_id);
    put_uint(out, *span_id);
    put_uint(out, *parent_id);
    put_sint(out, i64::from(*sampling_priority));
    put_uint(out, u64::from(*sampling_mechanism));
    out.push(0xcb);
    out.extend_from_slice(&sample_rate.to_bits().to_be_bytes());
    put_str(out, service);
    put_str(out, env);
    put_str(out, version);
    put_str(out, name);
    put_str(out, resource);
    put_bool(out, *error);
    put_str(out, origin);
    put_str(out, propagation_error);
    put_str(out, propagation_tags);
    put_map_len(out, header_tags.len());
    for (k, v) in header_tags {
        put_str(out, k);
        put_str(out, v);
    }
    put_bool(out, *metrics_sent);
    match content_length {
        Some(n) => put_uint(out, *n),
        None => out.push(0xc0),
    }
    match grpc_status {
        Some(n) => put_uint(out, u64::from(*n)),
        None => out.push(0xc0),
    }
    put_uint(out, u64::from(*recovered_calls));
    put_uint(out, u64::from(*unread_values));
    put_map_len(out, tags.len());
    for (k, v) in tags {
        put_str(out, k);
        put_str(out, v);
    }
}

/// The serde name of each variant (`rename_all = "lowercase"`, one rename).
fn status_source_name(s: StatusSource) -> &'static str {
    match s {
        StatusSource::Buffered => "buffered",
        StatusSource::Upgrade => "upgrade",
        StatusSource::Grpc => "grpc",
        StatusSource::Unknown => "unknown",
        StatusSource::Probe => "probe",
        StatusSource::ContentRange => "content_range",
        StatusSource::Aborted => "aborted",
    }
}

/// rmp's `write_uint`: positive fixint, then uint 8/16/32/64.
fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// rmp's `write_sint`: a value >= 0 takes the unsigned forms, as in
/// [`put_uint`]; a negative one negative fixint, then int 8/16/32/64.
fn put_sint(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        put_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// rmp's `write_str`: fixstr below 32 bytes, then str 8/16/32. A length
/// past `u32::MAX` is cut as rmp cuts it (no frame holds such a string).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else {
        put_wide_len(out, n, 0xda);
    }
    out.extend_from_slice(s.as_bytes());
}

/// rmp's `write_map_len`: fixmap below 16 entries, then map 16/32.
fn put_map_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        put_wide_len(out, n, 0xde);
    }
}

/// `marker16` and a u16 length, or the 32-bit marker after it and a u32.
fn put_wide_len(out: &mut Vec<u8>, n: usize, marker16: u8) {
    if n <= 0xffff {
        out.push(marker16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(marker16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

#[cfg(test)]
#[path = "msgpack_tests.rs"]
mod tests;
