//! The few operating-system services std does not offer: signal handling
//! (signal-hook), mkfifo(3), socket and pipe buffer sizes, poll(2),
//! recvmmsg(2) and the socket's drop count (nix). Both crates wrap the system calls safely: the relay
//! holds no `unsafe` code.

use nix::fcntl::{FcntlArg, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, recvmmsg, setsockopt, sockopt,
};
use nix::sys::stat::Mode;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

/// Set by SIGTERM/SIGINT and by [`request_stop`].
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);
/// Set by a signal only: a signal after it exits at once.
static SIGNALLED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// SIGTERM and SIGINT set the stop flag ([`stop_requested`]); a second one
/// exits at once (status 1). signal-hook installs the handlers with
/// SA_RESTART, so blocking reads in the input threads do not fail with EINTR.
pub fn install_signal_handlers() -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    for sig in [SIGTERM, SIGINT] {
        // Registered first, so it sees the flag as the previous signal left it.
        flag::register_conditional_shutdown(sig, 1, Arc::clone(&SIGNALLED))?;
        flag::register(sig, Arc::clone(&SIGNALLED))?;
        flag::register(sig, Arc::clone(&STOP))?;
    }
    Ok(())
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Asks the relay to stop, as a signal would (used when all inputs ended).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Creates a FIFO with exactly `mode` (chmod after mkfifo, which the umask
/// would otherwise narrow).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let bits = Mode::from_bits_truncate(mode as nix::libc::mode_t);
    nix::unistd::mkfifo(path, bits)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Asks for a larger socket receive buffer so bursts wait in the kernel
/// rather than being dropped. `SO_RCVBUFFORCE` (privileged) first, then
/// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`. Returns the
/// size granted (the kernel reports twice the payload room it reserves).
pub fn set_recv_buffer(sock: &impl AsFd, bytes: usize) -> io::Result<usize> {
    let v = bytes.min(i32::MAX as usize);
    if setsockopt(sock, sockopt::RcvBufForce, &v).is_err() {
        setsockopt(sock, sockopt::RcvBuf, &v)?;
    }
    Ok(nix::sys::socket::getsockopt(sock, sockopt::RcvBuf)?)
}

/// Asks the kernel for a pipe buffer of `bytes` (Linux `F_SETPIPE_SZ`);
/// returns the size granted. Unprivileged processes may get up to
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default).
#[cfg(target_os = "linux")]
pub fn set_pipe_size(fd: &impl AsFd, bytes: usize) -> io::Result<usize> {
    let v = i32::try_from(bytes).unwrap_or(i32::MAX);
    let granted = fcntl(fd, FcntlArg::F_SETPIPE_SZ(v))?;
    Ok(usize::try_from(granted).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub fn set_pipe_size(_fd: &impl AsFd, _bytes: usize) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Waits up to `timeout` for `fd` to become readable.
pub fn wait_readable(fd: &impl AsFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Resident set size in bytes (Linux /proc; None elsewhere).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * u64::try_from(page).ok()?)
}

/// Asks the kernel to tell, with each datagram, how many the socket has
/// dropped so far (`SO_RXQ_OVFL`): the drops of a full receive buffer are
/// otherwise invisible to the reader.
#[cfg(target_os = "linux")]
pub fn report_drops(sock: &impl AsFd) -> io::Result<()> {
    Ok(setsockopt(sock, sockopt::RxqOvfl, &1)?)
}

#[cfg(not(target_os = "linux"))]
pub fn report_drops(_sock: &impl AsFd) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Datagrams read with one `recvmmsg(2)` call each round, into fixed slots:
/// the UDP input otherwise pays a system call per datagram, on cores it
/// shares with Traefik.
pub struct Datagrams {
    slot: usize,
    bufs: Vec<u8>,
    headers: MultiHeaders<()>,
    /// Length and whether it was cut, of each datagram of the last round.
    got: Vec<(usize, bool)>,
    /// The socket's drop count as the last datagram carrying it said (see
    /// [`report_drops`]); the kernel counts in 32 bits and wraps.
    drops: u32,
    /// The headers of the last round were written by the kernel.
    used: bool,
}

impl Datagrams {
    /// `count` slots of `slot` bytes; a longer datagram is cut to `slot`
    /// and reported as truncated.
    pub fn new(count: usize, slot: usize) -> Self {
        Self {
            slot,
            bufs: vec![0; count * slot],
            headers: Self::headers(count),
            got: Vec::with_capacity(count),
            drops: 0,
            used: false,
        }
    }

    fn headers(count: usize) -> MultiHeaders<()> {
        MultiHeaders::preallocate(count, Some(nix::cmsg_space!(u32)))
    }

    fn slot_count(&self) -> usize {
        self.bufs.len() / self.slot.max(1)
    }

    /// The datagrams the socket dropped since it was opened, as of the last
    /// datagram read (0 until [`report_drops`] is on and a drop happened).
    pub fn dropped(&self) -> u32 {
        self.drops
    }

    /// Reads what is queued, up to the slot count, without blocking:
    /// `Ok(0)` when nothing is.
    pub fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        // The kernel shrinks each used header's control length to what it
        // wrote (0 without a drop count) and nix's recvmmsg does not restore
        // it, so a later drop count would come back truncated: fresh headers
        // after every round that received something.
        if self.used {
            self.headers = Self::headers(self.slot_count());
            self.used = false;
        }
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_mut(self.slot)
            .map(|c| [IoSliceMut::new(c)])
            .collect();
        let received = match recvmmsg(
            sock.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let slot = self.slot;
        self.used = true;
        let drops = &mut self.drops;
        self.got.extend(received.map(|m| {
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    #[cfg(target_os = "linux")]
                    if let ControlMessageOwned::RxqOvfl(n) = c {
                        *drops = n;
                    }
                    #[cfg(not(target_os = "linux"))]
                    let _ = c;
                }
            }
            (m.bytes.min(slot), m.flags.contains(MsgFlags::MSG_TRUNC))
        }));
        Ok(self.got.len())
    }

    /// The datagrams of the last [`recv`](Self::recv), each with whether it
    /// was cut to the slot size.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.got.iter().enumerate().map(|(i, &(len, truncated))| {
            let start = i * self.slot;
            (&self.bufs[start..start + len], truncated)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    #[test]
    fn mkfifo_sets_the_exact_mode() {
        let dir = std::env::temp_dir().join(format!("relay-sys-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("f.fifo");
        let _ = std::fs::remove_file(&p);
        mkfifo(&p, 0o666).expect("mkfifo");
        let m = std::fs::metadata(&p).expect("stat");
        assert!(m.file_type().is_fifo());
        assert_eq!(m.permissions().mode() & 0o777, 0o666);
        assert!(mkfifo(&p, 0o666).is_err(), "exists already");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rss_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().expect("statm") > 0);
        }
    }

    #[test]
    fn datagrams_longer_than_a_slot_are_cut_and_marked() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(set_recv_buffer(&rx, 1 << 16).expect("rcvbuf") > 0);
        let mut d = Datagrams::new(4, 8);
        assert_eq!(d.recv(&rx).expect("empty"), 0);
        tx.send_to(b"short", rx.local_addr().expect("addr"))
            .expect("send");
        tx.send_to(b"0123456789", rx.local_addr().expect("addr"))
            .expect("send");
        assert!(wait_readable(&rx, std::time::Duration::from_secs(5)).expect("poll"));
        let mut got = Vec::new();
        while got.len() < 2 {
            d.recv(&rx).expect("recv");
            got.extend(d.iter().map(|(b, t)| (b.to_vec(), t)));
        }
        assert_eq!(
            got,
            vec![(b"short".to_vec(), false), (b"01234567".to_vec(), true)]
        );
    }
}
