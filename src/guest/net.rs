//! The socket calls of the network build (`--features network`), through the
//! WasmEdge socket extension Traefik serves. Only `sock_open`, `sock_connect`,
//! `sock_send` and `fd_fdstat_set_flags` are imported (plus `fd_fdstat_get`,
//! which every WASI program has): no receive, poll, name lookup or address
//! query, which share more unlocked host state (traefik#11629).

use std::net::{IpAddr, SocketAddr};
use tdp_core::transport::network::{Dest, UdpSys, errno};

/// WasmEdge's address argument: a pointer to this pair.
#[repr(C)]
struct Address {
    buf: *const u8,
    len: u32,
}

#[repr(C)]
struct Ciovec {
    buf: *const u8,
    len: u32,
}

#[repr(C)]
#[derive(Default)]
struct FdStat {
    filetype: u8,
    flags: u16,
    rights_base: u64,
    rights_inheriting: u64,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    #[link_name = "sock_open"]
    fn tdp_sock_open(family: i32, sock_type: i32, fd: *mut i32) -> i32;
    #[link_name = "sock_connect"]
    fn tdp_sock_connect(fd: i32, addr: *const Address, port: u32) -> i32;
    #[link_name = "sock_send"]
    fn tdp_sock_send(
        fd: i32,
        iovs: *const Ciovec,
        iovs_len: i32,
        flags: i32,
        sent: *mut i32,
    ) -> i32;
    #[link_name = "fd_fdstat_set_flags"]
    fn tdp_fd_fdstat_set_flags(fd: i32, flags: i32) -> i32;
    #[link_name = "fd_fdstat_get"]
    fn tdp_fd_fdstat_get(fd: i32, stat: *mut FdStat) -> i32;
}

const INET4: i32 = 1;
const INET6: i32 = 2;
const DATAGRAM: i32 = 1;
const FILETYPE_SOCKET_DGRAM: u8 = 5;
const FDFLAG_APPEND: u16 = 1;
const FDFLAG_NONBLOCK: u16 = 4;
/// Sockets are looked for among the first fds only: a few stdio and
/// preopened fds, then the sockets of this middleware's instances.
const SCAN_FDS: i32 = 64;

/// The fd flags that tag a destination's sockets, so sibling instances can
/// tell them apart without asking for the peer address (not imported).
fn tag(dest: Dest) -> u16 {
    match dest {
        Dest::Relay => FDFLAG_NONBLOCK,
        Dest::Statsd => FDFLAG_NONBLOCK | FDFLAG_APPEND,
    }
}

pub struct WasiUdp;

impl UdpSys for WasiUdp {
    fn find(&mut self, dest: Dest) -> Option<i32> {
        (3..SCAN_FDS).find(|fd| {
            let mut st = FdStat::default();
            // A socket is tagged only after it is connected, so a match is usable.
            let ok = unsafe { tdp_fd_fdstat_get(*fd, &mut st) } == 0;
            ok && st.filetype == FILETYPE_SOCKET_DGRAM && st.flags == tag(dest)
        })
    }

    fn open(&mut self, dest: Dest, addr: SocketAddr) -> Result<i32, i32> {
        let (family, octets): (i32, Vec<u8>) = match addr.ip() {
            IpAddr::V4(ip) => (INET4, ip.octets().to_vec()),
            IpAddr::V6(ip) => (INET6, ip.octets().to_vec()),
        };
        let mut fd = -1;
        let e = unsafe { tdp_sock_open(family, DATAGRAM, &mut fd) };
        if e != 0 {
            return Err(e);
        }
        let address = Address {
            buf: octets.as_ptr(),
            len: octets.len() as u32,
        };
        let e = unsafe { tdp_sock_connect(fd, &address, u32::from(addr.port())) };
        if e != 0 {
            // Not closed: fd_close would race the shared fd table; at most one
            // fd per failed attempt, once per retry interval.
            return Err(e);
        }
        let e = unsafe { tdp_fd_fdstat_set_flags(fd, i32::from(tag(dest))) };
        if e != 0 {
            return Err(e);
        }
        Ok(fd)
    }

    fn send(&mut self, fd: i32, datagram: &[u8]) -> Result<usize, i32> {
        let iov = Ciovec {
            buf: datagram.as_ptr(),
            len: datagram.len() as u32,
        };
        let mut sent = 0i32;
        match unsafe { tdp_sock_send(fd, &iov, 1, 0, &mut sent) } {
            0 => Ok(usize::try_from(sent).unwrap_or(0)),
            e if e > 0 => Err(e),
            _ => Err(errno::INVAL),
        }
    }
}
