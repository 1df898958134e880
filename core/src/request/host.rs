//! What the request path asks of the proxy it runs in: the [`Host`] trait,
//! which the wasm guest implements over the http-wasm ABI and
//! [`super::stand_in`] over plain values, and the [`Reader`] every value of
//! a request or response is read through.
//!
//! Every value is read into a [`Space`] that the request path lends from its
//! own stack frame: on the guest the stack is part of the instance's first
//! pages whatever the request, so reading costs the instance no memory and
//! never grows it. A value longer than the space ([`READ_MAX`]) is not read
//! at all: the host gives its length without writing it, and the request
//! path records it as unread (`...`, or judged without it) and counts it.
//! So no client, whatever it sends, makes an instance keep more memory, or
//! the guest copy or fill more than 8 KiB. Values are looked at where they
//! were read ([`Value::Read`]) and copied only as far as the record keeps
//! them; a header the names list does not show costs no host call.

use crate::headers::names::{self, HeaderNames};
use crate::text::{self, MARKER};
use std::mem::MaybeUninit;

/// The longest value read, NUL terminators included. nginx, which this
/// plugin replaces, refuses a request line or header line longer than its
/// largest header buffer (8 KiB by default): what nginx served, the plugin
/// reads whole. Traefik accepts a megabyte; beyond this it is not read.
pub const READ_MAX: usize = 8192;
/// The longest name list kept: a request with a longer one (hundreds of
/// headers) has each needed header asked by name instead.
pub const NAMES_MAX: usize = 2048;

/// Space for one value at a time. Never zeroed: only the bytes the host
/// wrote are ever looked at. A variable of its own in the reading frame
/// ([`space`]): beside initialised fields in one struct, the compiler
/// zeroed it whole on every request.
pub type Space = MaybeUninit<[u8; READ_MAX]>;

pub const fn space() -> Space {
    MaybeUninit::uninit()
}

/// Space for one side's name list.
pub type NamesSpace = MaybeUninit<[u8; NAMES_MAX]>;

pub const fn names_space() -> NamesSpace {
    MaybeUninit::uninit()
}

/// Whose headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// The request's own values, besides its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Method,
    Uri,
    /// The client's `ip:port`.
    SourceAddr,
    /// `HTTP/1.1`, `HTTP/2.0`.
    Protocol,
}

/// How loud a line in the proxy's log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The proxy, as one call into a plugin instance sees it. Reads write into
/// space the caller lends and return the bytes written, or `None` when the
/// value is longer than the space (then nothing is written): the ABI's own
/// shape, so that no implementation copies a value twice.
pub trait Host {
    /// The wall clock, in nanoseconds since the Unix epoch.
    fn now_ns(&mut self) -> i64;
    /// One of the request's own values.
    fn read<'s>(&mut self, part: Part, space: &'s mut Space) -> Option<&'s mut [u8]>;
    /// The names of one side's headers, each NUL-terminated.
    fn header_names<'s>(&mut self, side: Side, space: &'s mut NamesSpace) -> Option<&'s [u8]>;
    /// All values of a header, each NUL-terminated; no bytes when the
    /// header is absent. `name` is never empty.
    fn header_values<'s>(
        &mut self,
        side: Side,
        name: &[u8],
        space: &'s mut Space,
    ) -> Option<&'s mut [u8]>;
    /// Sets (overwrites) a request header. `name` is never empty.
    fn set_header(&mut self, name: &[u8], value: &[u8]);
    /// Removes a request header, all its values.
    fn remove_header(&mut self, name: &[u8]);
    /// Has the response buffered, so that its status can be read.
    fn buffer_response(&mut self);
    /// The status of a buffered response; asked of no other (the
    /// http-wasm host panics when the response was not buffered).
    fn status(&mut self) -> u16;
    /// Writes a line to the proxy's log.
    fn log(&mut self, level: Level, line: &[u8]);
    /// Whether the proxy's log shows lines of `level`; `None`: the host
    /// cannot tell (Traefik's says yes to every level, see
    /// [`crate::transport::loss`]). Asked once per instance, at start.
    fn log_enabled(&mut self, level: Level) -> Option<bool>;
}

/// A header's values as one read gave them.
#[derive(Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Absent,
    /// All its values, comma-joined as HTTP allows, where they were read.
    Read(&'a [u8]),
    /// Present, longer than [`READ_MAX`]: not read (and counted).
    Unread,
}

/// The host's values (each NUL-terminated) joined with commas in place: the
/// last NUL goes, the others become commas.
pub fn join_values(raw: &mut [u8]) -> &[u8] {
    let values = match raw {
        [values @ .., 0] => values,
        all => all,
    };
    for c in values.iter_mut() {
        if *c == 0 {
            *c = b',';
        }
    }
    values
}

/// Reads one side's names list into `space`, split into `table`; `None`
/// when it does not fit either: every header must then be asked for.
pub fn read_names<'a>(
    host: &mut impl Host,
    side: Side,
    space: &'a mut NamesSpace,
    table: &'a mut names::Table,
) -> Option<HeaderNames<'a>> {
    HeaderNames::parse(host.header_names(side, space)?, table)
}

/// One side of the exchange, read value by value into one space: which
/// headers are there (from the names list, when kept), and the values too
/// large to read, counted.
pub struct Reader<'a, H: Host> {
    pub host: &'a mut H,
    side: Side,
    /// `None`: every header is asked for.
    names: Option<HeaderNames<'a>>,
    space: &'a mut Space,
    /// Values present but longer than [`READ_MAX`].
    pub unread: u16,
}

impl<'a, H: Host> Reader<'a, H> {
    pub fn new(
        host: &'a mut H,
        side: Side,
        names: Option<HeaderNames<'a>>,
        space: &'a mut Space,
    ) -> Self {
        Self {
            host,
            side,
            names,
            space,
            unread: 0,
        }
    }

    /// Counts a value that did not fit.
    fn unread(&mut self) {
        self.unread = self.unread.saturating_add(1);
    }

    /// One of the request's own values as text of at most `max` bytes,
    /// [`MARKER`] if too large to read.
    pub fn part(&mut self, part: Part, max: usize) -> String {
        match self.host.read(part, self.space) {
            Some(b) => text::decode(b, max),
            None => {
                self.unread();
                MARKER.to_owned()
            }
        }
    }

    /// Whether the side may carry `name`: listed, or no list was kept.
    /// Inlined, as [`Reader::header`], so that a constant name's bit in the
    /// list is computed when compiling: most names asked for are absent.
    #[inline]
    pub fn has(&self, name: &[u8]) -> bool {
        self.names.as_ref().is_none_or(|n| n.has(name))
    }

    /// All values of a header, where they were read.
    #[inline]
    pub fn header(&mut self, name: &[u8]) -> Value<'_> {
        if name.is_empty() || !self.has(name) {
            return Value::Absent;
        }
        self.read(name)
    }

    /// A header the list shows, or every header when no list was kept.
    fn read(&mut self, name: &[u8]) -> Value<'_> {
        match self.host.header_values(self.side, name, &mut *self.space) {
            None => {
                self.unread = self.unread.saturating_add(1);
                Value::Unread
            }
            Some([]) => Value::Absent,
            Some(raw) => Value::Read(join_values(raw)),
        }
    }

    /// A header as text of at most `max` bytes: `None` if absent,
    /// [`MARKER`] if too large to read.
    pub fn text(&mut self, name: &[u8], max: usize) -> Option<String> {
        match self.header(name) {
            Value::Absent => None,
            Value::Read(b) => Some(text::decode(b, max)),
            Value::Unread => Some(MARKER.to_owned()),
        }
    }

    /// A header read as a number (`Content-Length`), parsed where it was
    /// read; `None` if absent, unread or not a number.
    pub fn number(&mut self, name: &[u8]) -> Option<u64> {
        match self.header(name) {
            Value::Read(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Value::Absent | Value::Unread => None,
        }
    }
}
