//! Reads from the http-wasm host. Hand-written over `http-wasm-guest`'s
//! readers for size and allocations: those box every header name and value
//! (one allocation each, N+1 for the name list) and, past their 2 KiB
//! shared buffer, allocate and zero a fresh one per read; here one buffer
//! per instance grows to the largest value seen and is reused, and only the
//! text the core keeps is allocated.
//!
//! The ABI: a read call gets a buffer and its limit, returns the value's
//! full length, and writes nothing when that exceeds the limit; the caller
//! grows its buffer and asks again. A length is never trusted beyond the
//! bytes this module owns: a value larger than [`MAX_READ`], or one that
//! changed size between the two calls, reads as unreadable, never as a
//! slice past the buffer.

use std::cell::RefCell;
use tdp_core::header_names::HeaderNames;
use tdp_core::{header_name, limits};

#[link(wasm_import_module = "http_handler")]
unsafe extern "C" {
    fn get_method(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_uri(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_protocol_version(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_source_addr(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_header_names(kind: i32, buf: *mut u8, buf_limit: i32) -> i64;
    fn get_header_values(
        kind: i32,
        name: *const u8,
        name_len: i32,
        buf: *mut u8,
        buf_limit: i32,
    ) -> i64;
    fn set_header_value(
        kind: i32,
        name: *const u8,
        name_len: i32,
        value: *const u8,
        value_len: i32,
    );
}

/// Header kinds of the ABI.
pub const REQUEST: i32 = 0;
pub const RESPONSE: i32 = 1;

/// Enough for the usual request without growing.
const INITIAL: usize = 2048;
/// Traefik accepts a request head of about 1 MiB (Go's MaxHeaderBytes and
/// its 4 KiB slack); a value beyond this is reported, not read.
pub const MAX_READ: usize = 16 << 20;
/// No cut: the whole value, for the core's own parsers (propagation,
/// stream hints), which bound what they keep themselves.
pub const WHOLE: usize = usize::MAX;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What one read gave.
enum Read<'a> {
    Bytes(&'a mut [u8]),
    /// Longer than [`MAX_READ`], or changed size between the two calls.
    Unreadable,
}

/// Calls `call(buf, limit)` (which returns the value's full length), growing
/// the instance's buffer and calling once more if the value did not fit.
fn read<R>(call: impl Fn(*mut u8, i32) -> u32, f: impl FnOnce(Read<'_>) -> R) -> R {
    BUF.with(|cell| {
        // Only a re-entrant call could find it borrowed; the host never
        // calls back into the guest during a read.
        let Ok(mut buf) = cell.try_borrow_mut() else {
            return f(Read::Unreadable);
        };
        if buf.len() < INITIAL {
            buf.resize(INITIAL, 0);
        }
        let mut len = call(buf.as_mut_ptr(), limit(&buf)) as usize;
        if len > buf.len() {
            if len > MAX_READ {
                return f(Read::Unreadable);
            }
            buf.resize(len, 0);
            len = call(buf.as_mut_ptr(), limit(&buf)) as usize;
        }
        match buf.get_mut(..len) {
            Some(bytes) => f(Read::Bytes(bytes)),
            None => f(Read::Unreadable),
        }
    })
}

fn limit(buf: &[u8]) -> i32 {
    i32::try_from(buf.len()).unwrap_or(i32::MAX)
}

/// The length half of a `count << 32 | length` result.
fn length(count_len: i64) -> u32 {
    count_len as u32
}

/// A value as text of at most `max` bytes, [`limits::MARKER`] if unreadable.
fn text(call: impl Fn(*mut u8, i32) -> i32, max: usize) -> String {
    read(
        |buf, lim| call(buf, lim) as u32,
        |r| match r {
            Read::Bytes(b) => limits::text(b, max),
            Read::Unreadable => limits::MARKER.to_owned(),
        },
    )
}

pub fn method(max: usize) -> String {
    text(|b, l| unsafe { get_method(b, l) }, max)
}

pub fn uri(max: usize) -> String {
    text(|b, l| unsafe { get_uri(b, l) }, max)
}

pub fn protocol(max: usize) -> String {
    text(|b, l| unsafe { get_protocol_version(b, l) }, max)
}

pub fn source_addr(max: usize) -> String {
    text(|b, l| unsafe { get_source_addr(b, l) }, max)
}

/// All values of a header, comma-joined as HTTP allows, as text of at most
/// `max` bytes; `None` if absent.
pub fn joined(kind: i32, name: &[u8], max: usize) -> Option<String> {
    with_joined(kind, name, |r| match r {
        Some(b) => limits::text(b, max),
        None => limits::MARKER.to_owned(),
    })
}

/// `f` on all values of a header comma-joined in the read buffer itself
/// (the same bytes [`limits::header_text`] makes, without its copies),
/// `None` given to `f` if unreadable; `None` if absent.
pub fn with_joined<R>(kind: i32, name: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Option<R> {
    // The host traps on an empty name.
    let name_len = i32::try_from(name.len()).ok().filter(|n| *n > 0)?;
    read(
        |buf, lim| length(unsafe { get_header_values(kind, name.as_ptr(), name_len, buf, lim) }),
        |r| match r {
            Read::Bytes([]) => None,
            Read::Bytes(b) => {
                let values = match b {
                    [values @ .., 0] => values,
                    all => all,
                };
                for c in values.iter_mut() {
                    if *c == 0 {
                        *c = b',';
                    }
                }
                Some(f(Some(values)))
            }
            Read::Unreadable => Some(f(None)),
        },
    )
}

/// A header read as a number (`Content-Length`), parsed where it was read:
/// as `joined(kind, name, max)` then trimmed and parsed, without the text.
pub fn number(kind: i32, name: &[u8], max: usize) -> Option<u64> {
    with_joined(kind, name, |r| {
        let b = r.filter(|b| b.len() <= max)?;
        std::str::from_utf8(b).ok()?.trim().parse().ok()
    })
    .flatten()
}

/// The names of one side's headers, read with one host call so that absent
/// headers cost no call.
pub fn names(kind: i32) -> HeaderNames {
    HeaderNames::parse(read(
        |buf, lim| length(unsafe { get_header_names(kind, buf, lim) }),
        |r| match r {
            Read::Bytes(b) => b.to_vec(),
            Read::Unreadable => Vec::new(),
        },
    ))
}

/// Sets (overwrites) a request header. The name goes in Go's canonical
/// spelling: the host's header map would otherwise canonicalise it with an
/// allocation on every call.
pub fn set_request_header(name: &str, value: &[u8]) {
    let mut buf = [0u8; header_name::MAX_CANONICAL];
    let name = match header_name::propagation(name) {
        Some(known) => known.as_bytes(),
        None => header_name::canonical(name.as_bytes(), &mut buf).unwrap_or(name.as_bytes()),
    };
    // The host traps on an empty name; injected names never are.
    let (Ok(name_len), Ok(value_len)) = (i32::try_from(name.len()), i32::try_from(value.len()))
    else {
        return;
    };
    if name_len == 0 {
        return;
    }
    unsafe { set_header_value(REQUEST, name.as_ptr(), name_len, value.as_ptr(), value_len) }
}
