//! The request path's [`Host`] over the http-wasm ABI. Hand-written over
//! `http-wasm-guest`'s readers for size and allocations: those box every
//! header name and value (one allocation each, N+1 for the name list) and,
//! past their 2 KiB shared buffer, allocate and zero a fresh one per read.
//!
//! The ABI: a read call gets a buffer and its limit, returns the value's
//! full length, and writes nothing when that exceeds the limit. A length is
//! never trusted beyond the bytes the space lent holds.

use http_wasm_guest::host::log;
use std::mem::MaybeUninit;
use tdp_core::request::host::{Host, Level, NamesSpace, Part, Side, Space};

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
    fn remove_header(kind: i32, name: *const u8, name_len: i32);
    fn enable_features(features: i32) -> i32;
    fn get_status_code() -> i32;
}

/// Header kinds of the ABI.
const REQUEST: i32 = 0;
const RESPONSE: i32 = 1;
/// `BufferResponse`, the ABI's feature bit.
const BUFFER_RESPONSE: i32 = 2;

/// Log levels of the ABI.
const LEVEL_INFO: i32 = 0;
const LEVEL_WARN: i32 = 1;
const LEVEL_ERROR: i32 = 2;
/// `LogLevelNone`: no line is ever shown at it, so a host that says it is
/// enabled answers yes to everything (Traefik's `logs.WasmLogger` does).
const LEVEL_NONE: i32 = 3;

/// The http-wasm host Traefik runs the guest in: one host per instance,
/// with no state of its own.
pub struct Abi;

fn kind(side: Side) -> i32 {
    match side {
        Side::Request => REQUEST,
        Side::Response => RESPONSE,
    }
}

/// `call(buf, limit)` writes a value into `space` if it fits and returns
/// its full length: the bytes written, or `None` if it did not fit.
fn fill<const N: usize>(
    space: &mut MaybeUninit<[u8; N]>,
    call: impl FnOnce(*mut u8, i32) -> u32,
) -> Option<&mut [u8]> {
    let ptr = space.as_mut_ptr().cast::<u8>();
    let len = call(ptr, N as i32) as usize;
    if len > N {
        return None;
    }
    // SAFETY: the host wrote `len` bytes from `ptr`, within the space.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// The length half of a `count << 32 | length` result.
fn length(count_len: i64) -> u32 {
    count_len as u32
}

impl Host for Abi {
    fn now_ns(&mut self) -> i64 {
        tdp_core::time::now_unix_ns()
    }

    fn read<'s>(&mut self, part: Part, space: &'s mut Space) -> Option<&'s mut [u8]> {
        fill(space, |buf, lim| {
            (unsafe {
                match part {
                    Part::Method => get_method(buf, lim),
                    Part::Uri => get_uri(buf, lim),
                    Part::SourceAddr => get_source_addr(buf, lim),
                    Part::Protocol => get_protocol_version(buf, lim),
                }
            }) as u32
        })
    }

    fn header_names<'s>(&mut self, side: Side, space: &'s mut NamesSpace) -> Option<&'s [u8]> {
        fill(space, |buf, lim| {
            length(unsafe { get_header_names(kind(side), buf, lim) })
        })
        .map(|b| &*b)
    }

    fn header_values<'s>(
        &mut self,
        side: Side,
        name: &[u8],
        space: &'s mut Space,
    ) -> Option<&'s mut [u8]> {
        let name_len = i32::try_from(name.len()).ok()?;
        fill(space, |buf, lim| {
            length(unsafe { get_header_values(kind(side), name.as_ptr(), name_len, buf, lim) })
        })
    }

    fn set_header(&mut self, name: &[u8], value: &[u8]) {
        let (Ok(name_len), Ok(value_len)) = (i32::try_from(name.len()), i32::try_from(value.len()))
        else {
            return;
        };
        unsafe { set_header_value(REQUEST, name.as_ptr(), name_len, value.as_ptr(), value_len) }
    }

    fn remove_header(&mut self, name: &[u8]) {
        if let Ok(name_len) = i32::try_from(name.len()) {
            unsafe { remove_header(REQUEST, name.as_ptr(), name_len) }
        }
    }

    fn buffer_response(&mut self) {
        unsafe { enable_features(BUFFER_RESPONSE) };
    }

    fn status(&mut self) -> u16 {
        u16::try_from(unsafe { get_status_code() }).unwrap_or(0)
    }

    fn log(&mut self, level: Level, line: &[u8]) {
        log::write(code(level), line);
    }

    fn log_enabled(&mut self, level: Level) -> Option<bool> {
        if log::enabled(LEVEL_NONE) {
            return None;
        }
        Some(log::enabled(code(level)))
    }
}

fn code(level: Level) -> i32 {
    match level {
        Level::Info => LEVEL_INFO,
        Level::Warn => LEVEL_WARN,
        Level::Error => LEVEL_ERROR,
    }
}
