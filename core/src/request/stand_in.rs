//! A stand-in for Traefik's http-wasm host and for the system beside it, so
//! that tests and examples run the request path exactly as the guest does:
//! values written NUL-terminated into the space lent, refused when longer
//! than it, header names listed once, every host call counted; the FIFO, the
//! spool, UDP and the published files kept in memory. Unused by the guest,
//! so the linker leaves it out of the module.

use super::System;
use super::host::{Host, Level, NamesSpace, Part, Side, Space};
use crate::transport::loss::errno;
use crate::transport::network::{Dest, UdpSys};
use crate::transport::pipe::{PipeSys, WriteError};
use crate::transport::spool::SpoolSys;
use crate::transport::watch::{FileSys, Stamp};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::rc::Rc;

/// One request and its response as the host holds them, and what the
/// request path did to and through the host.
#[derive(Debug, Clone)]
pub struct StandIn {
    /// The wall clock: each read returns it, then moves it on by `tick_ns`.
    pub clock_ns: i64,
    pub tick_ns: i64,
    pub method: Vec<u8>,
    pub uri: Vec<u8>,
    pub source_addr: Vec<u8>,
    pub protocol: Vec<u8>,
    /// In order; a name given twice has two values.
    pub request: Vec<(String, Vec<u8>)>,
    pub response: Vec<(String, Vec<u8>)>,
    pub status: u16,
    /// Set once the request path asked for the response to be buffered.
    pub buffered: bool,
    /// The headers the request path set and removed, in order.
    pub set: Vec<(String, String)>,
    pub removed: Vec<String>,
    pub log: Vec<(Level, String)>,
    /// The quietest level the log shows; `None`: the host cannot tell, as
    /// Traefik's (the default).
    pub log_shows: Option<Level>,
    /// The headers asked for, in order.
    pub asked: Vec<(Side, String)>,
    /// Host calls by their http-wasm name (the clock is WASI's, not counted).
    pub calls: BTreeMap<&'static str, u32>,
}

impl Default for StandIn {
    /// The request `scripts/guest_fuel.py` sends, with the headers Traefik
    /// adds before any middleware, and a small buffered 200.
    fn default() -> Self {
        Self {
            clock_ns: 1_764_000_000_000_000_000,
            tick_ns: 1_000_000,
            method: b"GET".to_vec(),
            uri: b"/bench".to_vec(),
            source_addr: b"127.0.0.1:51234".to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            request: pairs(&[
                ("Host", "a.test"),
                ("User-Agent", "bench/1"),
                ("Accept", "*/*"),
                ("Accept-Encoding", "identity"),
                ("X-Forwarded-For", "127.0.0.1"),
                ("X-Forwarded-Host", "a.test"),
                ("X-Forwarded-Port", "80"),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Server", "bench"),
                ("X-Real-Ip", "127.0.0.1"),
            ]),
            response: pairs(&[
                ("Content-Length", "2"),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]),
            status: 200,
            buffered: false,
            set: Vec::new(),
            removed: Vec::new(),
            log: Vec::new(),
            log_shows: None,
            asked: Vec::new(),
            calls: BTreeMap::new(),
        }
    }
}

/// Header pairs from text.
pub fn pairs(headers: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// `bytes` written into `space` as the host writes a value: whole, or not at
/// all when longer than the space; the rest of the space left as it was.
fn fill<'s, const N: usize>(
    space: &'s mut MaybeUninit<[u8; N]>,
    bytes: &[u8],
) -> Option<&'s mut [u8]> {
    if bytes.len() > N {
        return None;
    }
    let dst = space.as_mut_ptr().cast::<u8>();
    // SAFETY: `bytes` fits the space (checked above), the two never
    // overlap (one is borrowed mutably), and the slice returned covers
    // exactly the bytes just written.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        Some(std::slice::from_raw_parts_mut(dst, bytes.len()))
    }
}

impl StandIn {
    fn count(&mut self, call: &'static str) {
        *self.calls.entry(call).or_default() += 1;
    }

    fn side(&self, side: Side) -> &[(String, Vec<u8>)] {
        match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        }
    }

    /// The calls made so far, by name, and forgets them.
    pub fn take_calls(&mut self) -> BTreeMap<&'static str, u32> {
        std::mem::take(&mut self.calls)
    }
}

impl Host for StandIn {
    fn now_ns(&mut self) -> i64 {
        let now = self.clock_ns;
        self.clock_ns += self.tick_ns;
        now
    }

    fn read<'s>(&mut self, part: Part, space: &'s mut Space) -> Option<&'s mut [u8]> {
        let (call, value) = match part {
            Part::Method => ("get_method", &self.method),
            Part::Uri => ("get_uri", &self.uri),
            Part::SourceAddr => ("get_source_addr", &self.source_addr),
            Part::Protocol => ("get_protocol_version", &self.protocol),
        };
        let value = value.clone();
        self.count(call);
        fill(space, &value)
    }

    fn header_names<'s>(&mut self, side: Side, space: &'s mut NamesSpace) -> Option<&'s [u8]> {
        self.count("get_header_names");
        // As Traefik's host lists them: lowercased, sorted, each once.
        let mut names: Vec<String> = self
            .side(side)
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        let list: Vec<u8> = names.iter().flat_map(|n| n.bytes().chain([0])).collect();
        fill(space, &list).map(|b| &*b)
    }

    fn header_values<'s>(
        &mut self,
        side: Side,
        name: &[u8],
        space: &'s mut Space,
    ) -> Option<&'s mut [u8]> {
        self.count("get_header_values");
        self.asked
            .push((side, String::from_utf8_lossy(name).into_owned()));
        let mut values = Vec::new();
        for (n, v) in self.side(side) {
            if n.as_bytes().eq_ignore_ascii_case(name) {
                values.extend_from_slice(v);
                values.push(0);
            }
        }
        fill(space, &values)
    }

    fn set_header(&mut self, name: &[u8], value: &[u8]) {
        self.count("set_header_value");
        let name = String::from_utf8_lossy(name).into_owned();
        self.request.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.request.push((name.clone(), value.to_vec()));
        self.set
            .push((name, String::from_utf8_lossy(value).into_owned()));
    }

    fn remove_header(&mut self, name: &[u8]) {
        self.count("remove_header");
        let name = String::from_utf8_lossy(name).into_owned();
        self.request.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.removed.push(name);
    }

    fn buffer_response(&mut self) {
        self.count("enable_features");
        self.buffered = true;
    }

    fn status(&mut self) -> u16 {
        self.count("get_status_code");
        self.status
    }

    fn log(&mut self, level: Level, line: &[u8]) {
        self.count("log");
        self.log
            .push((level, String::from_utf8_lossy(line).into_owned()));
    }

    fn log_enabled(&mut self, level: Level) -> Option<bool> {
        self.count("log_enabled");
        let rank = |l: Level| match l {
            Level::Info => 0,
            Level::Warn => 1,
            Level::Error => 2,
        };
        self.log_shows.map(|shows| rank(level) >= rank(shows))
    }
}

/// What lies beside the proxy: the FIFO and its reader, the spool file, the
/// relay's UDP port and the files the relay publishes, in memory.
#[derive(Debug, Default)]
pub struct Outside {
    /// Whether a reader holds the FIFO open; without one, opening it fails.
    pub reader: bool,
    /// The frames written to the FIFO, each by one write.
    pub piped: Vec<Vec<u8>>,
    /// The spool file's frames, in order.
    pub spooled: Vec<Vec<u8>>,
    /// Whether the spool can be opened (a mounted directory).
    pub mounted: bool,
    /// Datagrams sent, by destination; only with sockets.
    pub datagrams: Vec<(Dest, Vec<u8>)>,
    /// Published files by path: bytes and modification time.
    pub files: BTreeMap<String, (Vec<u8>, i64)>,
    /// Whether no directory is mounted at the FIFO's: then nothing beside
    /// it opens (the default: mounted).
    pub unmounted: bool,
    /// Why the spool cannot be opened (errno), though mounted.
    pub spool_errno: Option<i32>,
    /// FIFOs lying beside ours, by name (another relay's).
    pub other_fifos: Vec<String>,
    /// The instance's environment variables.
    pub env: BTreeMap<String, String>,
    /// Why a datagram cannot be sent (errno): no relay on its port.
    pub udp_errno: Option<i32>,
}

/// The system calls of a [`crate::request::Instance`], over an [`Outside`]
/// shared with the test that looks at it.
#[derive(Debug, Clone)]
pub struct StandInSystem {
    pub outside: Rc<RefCell<Outside>>,
    /// The socket build (plugin-net.wasm) or not.
    pub sockets: bool,
}

impl StandInSystem {
    /// A relay that reads the FIFO, in a mounted directory, without sockets.
    pub fn relay_reading() -> Self {
        Self {
            outside: Rc::new(RefCell::new(Outside {
                reader: true,
                mounted: true,
                ..Outside::default()
            })),
            sockets: false,
        }
    }
}

/// WASI's `ENXIO`: a FIFO without a reader; `ENOENT`: no such file.
const ENXIO: i32 = errno::ENXIO;
const ENOENT: i32 = errno::ENOENT;

/// A handle on the [`Outside`] for each transport.
#[derive(Debug, Clone)]
pub struct Handle(Rc<RefCell<Outside>>);

impl System for StandInSystem {
    type Files = Handle;
    type Pipe = Handle;
    type Spool = Handle;
    type Udp = Handle;

    fn files(&mut self) -> Handle {
        Handle(self.outside.clone())
    }

    fn pipe(&mut self) -> Handle {
        Handle(self.outside.clone())
    }

    fn spool(&mut self) -> Handle {
        Handle(self.outside.clone())
    }

    fn udp(&mut self) -> Option<Handle> {
        self.sockets.then(|| Handle(self.outside.clone()))
    }

    fn env(&mut self, name: &str) -> Option<String> {
        self.outside.borrow().env.get(name).cloned()
    }
}

impl PipeSys for Handle {
    fn open(&mut self, _path: &str) -> Result<i32, i32> {
        let o = self.0.borrow();
        if o.unmounted {
            Err(errno::ENOTCAPABLE)
        } else if o.reader {
            Ok(3)
        } else if o.other_fifos.is_empty() {
            Err(ENXIO)
        } else {
            Err(errno::ENOENT)
        }
    }

    fn write(&mut self, _fd: i32, frame: &[u8]) -> Result<usize, WriteError> {
        let mut o = self.0.borrow_mut();
        if !o.reader {
            return Err(WriteError::Broken(32));
        }
        o.piped.push(frame.to_vec());
        Ok(frame.len())
    }

    fn close(&mut self, _fd: i32) {}
}

impl SpoolSys for Handle {
    fn open_append(&mut self, _path: &str) -> Result<i32, i32> {
        let o = self.0.borrow();
        match o.spool_errno {
            _ if o.unmounted => Err(errno::ENOTCAPABLE),
            Some(e) => Err(e),
            None if o.mounted => Ok(4),
            None => Err(ENOENT),
        }
    }

    fn size(&mut self, _fd: i32) -> Result<u64, i32> {
        Ok(self.0.borrow().spooled.iter().map(|f| f.len() as u64).sum())
    }

    fn write(&mut self, _fd: i32, frame: &[u8]) -> Result<usize, i32> {
        self.0.borrow_mut().spooled.push(frame.to_vec());
        Ok(frame.len())
    }

    fn close(&mut self, _fd: i32) {}
}

impl FileSys for Handle {
    fn stat(&mut self, path: &str) -> Option<Stamp> {
        let o = self.0.borrow();
        let (bytes, modified_ns) = o.files.get(path)?;
        Some(Stamp {
            len: bytes.len() as u64,
            modified_ns: *modified_ns,
        })
    }

    fn read(&mut self, path: &str, max: u64) -> Option<Vec<u8>> {
        let o = self.0.borrow();
        let (bytes, _) = o.files.get(path)?;
        Some(bytes[..bytes.len().min(max as usize)].to_vec())
    }

    fn is_dir(&mut self, _path: &str) -> bool {
        !self.0.borrow().unmounted
    }

    fn special_files(&mut self, _dir: &str) -> Vec<String> {
        self.0.borrow().other_fifos.clone()
    }
}

impl UdpSys for Handle {
    fn find(&mut self, _dest: Dest) -> Option<i32> {
        None
    }

    fn open(&mut self, dest: Dest, _addr: SocketAddr) -> Result<i32, i32> {
        Ok(match dest {
            Dest::Relay => 10,
            Dest::Statsd => 11,
        })
    }

    fn send(&mut self, fd: i32, datagram: &[u8]) -> Result<usize, i32> {
        let dest = if fd == 10 { Dest::Relay } else { Dest::Statsd };
        if let Some(e) = self.0.borrow().udp_errno {
            return Err(e);
        }
        self.0
            .borrow_mut()
            .datagrams
            .push((dest, datagram.to_vec()));
        Ok(datagram.len())
    }
}
