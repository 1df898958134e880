//! Reads from the http-wasm host. Hand-written over `http-wasm-guest`'s
//! readers for size and allocations: those box every header name and value
//! (one allocation each, N+1 for the name list) and, past their 2 KiB
//! shared buffer, allocate and zero a fresh one per read.
//!
//! Every read goes into a [`Scratch`], space on the calling handler's stack:
//! the stack is part of the instance's first pages whatever the request, so
//! reading costs the instance no memory and never grows it. A value longer
//! than the scratch ([`READ_MAX`]) is not read at all: the ABI gives its
//! length without writing it, the guest records it as unread (`...`, or
//! judged without it) and counts it. So no client, whatever it sends, makes
//! an instance keep more memory, or the guest copy or fill more than 8 KiB.
//!
//! The ABI: a read call gets a buffer and its limit, returns the value's
//! full length, and writes nothing when that exceeds the limit. A length is
//! never trusted beyond the bytes this module owns.

use std::mem::MaybeUninit;
use tdp_core::header_names::{self, HeaderNames};
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

/// The longest value read, NUL terminators included. nginx, which this
/// plugin replaces, refuses a request line or header line longer than its
/// largest header buffer (8 KiB by default): what nginx served, the plugin
/// reads whole. Traefik accepts a megabyte; beyond this it is not read.
pub const READ_MAX: usize = 8192;
/// The longest name list kept: a request with a longer one (hundreds of
/// headers) has each needed header asked by name instead.
pub const NAMES_MAX: usize = 2048;

/// Space for one value at a time, on the handler's stack. Never zeroed:
/// only the bytes the host wrote are ever looked at. A variable of its own
/// (see [`space`]): beside initialised fields in one struct, the compiler
/// zeroed it whole on every request.
pub type Space = MaybeUninit<[u8; READ_MAX]>;

pub const fn space() -> Space {
    MaybeUninit::uninit()
}

/// Reads values into a [`Space`], one at a time, and counts those that did
/// not fit.
pub struct Scratch<'s> {
    buf: &'s mut Space,
    /// Values present but longer than [`READ_MAX`].
    pub unread: u16,
}

/// A header's values as one read gave them.
pub enum Value<'a> {
    Absent,
    /// All its values, comma-joined, in the scratch.
    Read(&'a [u8]),
    /// Present, longer than [`READ_MAX`]: not read (and counted).
    Unread,
}

impl<'s> Scratch<'s> {
    pub fn new(buf: &'s mut Space) -> Self {
        Self { buf, unread: 0 }
    }

    /// `call(buf, limit)` writes a value if it fits and returns its full
    /// length: the bytes written, or `None` (counted) if it did not fit.
    fn read(&mut self, call: impl FnOnce(*mut u8, i32) -> u32) -> Option<&mut [u8]> {
        let ptr = self.buf.as_mut_ptr().cast::<u8>();
        let len = call(ptr, READ_MAX as i32) as usize;
        if len > READ_MAX {
            self.unread = self.unread.saturating_add(1);
            return None;
        }
        // SAFETY: the host wrote `len` bytes from `ptr`, within the buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    /// A value as text of at most `max` bytes, [`limits::MARKER`] if unread.
    fn text(&mut self, call: impl FnOnce(*mut u8, i32) -> i32, max: usize) -> String {
        match self.read(|buf, lim| call(buf, lim) as u32) {
            Some(b) => limits::text(b, max),
            None => limits::MARKER.to_owned(),
        }
    }

    pub fn method(&mut self, max: usize) -> String {
        self.text(|b, l| unsafe { get_method(b, l) }, max)
    }

    pub fn uri(&mut self, max: usize) -> String {
        self.text(|b, l| unsafe { get_uri(b, l) }, max)
    }

    pub fn protocol(&mut self, max: usize) -> String {
        self.text(|b, l| unsafe { get_protocol_version(b, l) }, max)
    }

    pub fn source_addr(&mut self, max: usize) -> String {
        self.text(|b, l| unsafe { get_source_addr(b, l) }, max)
    }

    /// All values of a header, comma-joined as HTTP allows, in the scratch.
    pub fn header(&mut self, kind: i32, name: &[u8]) -> Value<'_> {
        // The host traps on an empty name.
        let Some(name_len) = i32::try_from(name.len()).ok().filter(|n| *n > 0) else {
            return Value::Absent;
        };
        let read = self.read(|buf, lim| {
            length(unsafe { get_header_values(kind, name.as_ptr(), name_len, buf, lim) })
        });
        match read {
            None => Value::Unread,
            Some([]) => Value::Absent,
            Some(b) => {
                // Each value is NUL-terminated: the last NUL goes, the
                // others join the values as commas.
                let values = match b {
                    [values @ .., 0] => values,
                    all => all,
                };
                for c in values.iter_mut() {
                    if *c == 0 {
                        *c = b',';
                    }
                }
                Value::Read(values)
            }
        }
    }

    /// A header as text of at most `max` bytes: `None` if absent,
    /// [`limits::MARKER`] if unread.
    pub fn header_text(&mut self, kind: i32, name: &[u8], max: usize) -> Option<String> {
        match self.header(kind, name) {
            Value::Absent => None,
            Value::Read(b) => Some(limits::text(b, max)),
            Value::Unread => Some(limits::MARKER.to_owned()),
        }
    }

    /// A header read as a number (`Content-Length`), parsed where it was
    /// read; `None` if absent, unread or not a number.
    pub fn number(&mut self, kind: i32, name: &[u8]) -> Option<u64> {
        match self.header(kind, name) {
            Value::Read(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Value::Absent | Value::Unread => None,
        }
    }
}

/// The length half of a `count << 32 | length` result.
fn length(count_len: i64) -> u32 {
    count_len as u32
}

/// Space for one side's name list, on the handler's stack.
pub type NamesSpace = MaybeUninit<[u8; NAMES_MAX]>;

pub const fn names_space() -> NamesSpace {
    MaybeUninit::uninit()
}

/// The names of one side's headers, read with one host call so that absent
/// headers cost no call; `None` when the list does not fit `space` or
/// `table`: every header must then be asked for.
pub fn names<'a>(
    kind: i32,
    space: &'a mut NamesSpace,
    table: &'a mut header_names::Table,
) -> Option<HeaderNames<'a>> {
    let ptr = space.as_mut_ptr().cast::<u8>();
    let len = length(unsafe { get_header_names(kind, ptr, NAMES_MAX as i32) }) as usize;
    if len > NAMES_MAX {
        return None;
    }
    // SAFETY: the host wrote `len` bytes from `ptr`, within `space`.
    HeaderNames::parse(unsafe { std::slice::from_raw_parts(ptr, len) }, table)
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
