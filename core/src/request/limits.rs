//! How large a client can make a record. Every value a request controls is
//! cut to a documented size, ending in [`MARKER`] when cut, so that a record
//! always fits one frame (one atomic FIFO write, one datagram) and one short
//! fallback log line, whatever the request carried: Traefik itself accepts
//! a header or a method of a megabyte.

use crate::headers::tags as header_tags;
use crate::propagation::{MAX_ORIGIN, MAX_TAGS_HEADER};
use crate::record::Record;
use crate::record::facts::RequestFacts;
use crate::text::{MARKER, cut};
use crate::wire::binary::{CHECKSUM_LEN, HEADER_LEN, MAX_FRAME, encoded_upper_bound};

/// A DNS name is at most 253 bytes.
pub const MAX_HOST: usize = 256;
/// The longest registered method (`UPDATEREDIRECTREF`) is 17 bytes.
pub const MAX_METHOD: usize = 32;
pub const MAX_PATH: usize = 1024;
pub const MAX_USER_AGENT: usize = 512;
/// `HTTP/1.1`, `HTTP/2.0`.
pub const MAX_PROTOCOL: usize = 16;
/// `[v6 address%zone]:port`.
pub const MAX_CLIENT_ADDR: usize = 64;
/// The resource is the host, or the method and path.
pub const MAX_RESOURCE: usize = MAX_METHOD + 1 + MAX_PATH;
/// `_dd.propagation_error` values are short words.
pub const MAX_PROPAGATION_ERROR: usize = 64;
/// Bytes a frame body may take: a frame also has its header and, on the
/// network, a checksum and, with `relaySecret`, a MAC.
pub const BODY_BUDGET: usize = MAX_FRAME - HEADER_LEN - CHECKSUM_LEN - crate::wire::mac::MAC_LEN;

/// Cuts what the client sent to its documented size.
pub fn bound_facts(f: &mut RequestFacts) {
    cut(&mut f.host, MAX_HOST);
    cut(&mut f.method, MAX_METHOD);
    cut(&mut f.path, MAX_PATH);
    cut(&mut f.protocol, MAX_PROTOCOL);
    cut(&mut f.client_addr, MAX_CLIENT_ADDR);
    cut(&mut f.user_agent, MAX_USER_AGENT);
}

/// Makes `r` fit one frame: each value cut to its size, then, if the whole
/// could still exceed [`BODY_BUDGET`] (many header tags, huge configured
/// names), the longest value halved until it cannot, and as a last resort
/// header tags, then the configured tags (at most 1,024 bytes, see
/// `config::env`), dropped from the end. Deterministic; touches nothing in the
/// usual record.
pub fn fit(r: &mut Record) {
    for (s, max) in [
        (&mut r.host, MAX_HOST),
        (&mut r.method, MAX_METHOD),
        (&mut r.path, MAX_PATH),
        (&mut r.protocol, MAX_PROTOCOL),
        (&mut r.client_addr, MAX_CLIENT_ADDR),
        (&mut r.user_agent, MAX_USER_AGENT),
        (&mut r.resource, MAX_RESOURCE),
        (&mut r.origin, MAX_ORIGIN),
        (&mut r.propagation_tags, MAX_TAGS_HEADER),
        (&mut r.propagation_error, MAX_PROPAGATION_ERROR),
    ] {
        cut(s, max);
    }
    for v in r.header_tags.values_mut() {
        cut(v, header_tags::MAX_VALUE_LEN);
    }
    while encoded_upper_bound(r) > BODY_BUDGET {
        if !halve_longest(r) && r.header_tags.pop_last().is_none() && r.tags.pop_last().is_none() {
            break;
        }
    }
}

/// Halves the longest value (scalar or header-tag value) still longer than
/// the marker. False if none is.
fn halve_longest(r: &mut Record) -> bool {
    // The last value of the greatest length, header tags counted after the
    // scalar strings: what one list in that order would give.
    let scalars = r.strings().iter().map(|s| s.len()).max().unwrap_or(0);
    let tags = r.header_tags.values().map(String::len).max();
    let longest = match tags {
        Some(t) if t >= scalars => r.header_tags.values_mut().max_by_key(|s| s.len()),
        _ => r.strings_mut().into_iter().max_by_key(|s| s.len()),
    };
    let Some(longest) = longest else {
        return false;
    };
    if longest.len() <= MARKER.len() {
        return false;
    }
    let half = (longest.len() / 2).max(MARKER.len());
    cut(longest, half)
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
