//! The few system calls std does not bind: signal handlers, mkfifo(3) and
//! the UDP receive buffer size. Everything unsafe in the relay is here.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work: atomics and _exit.
    STOP.store(true, Ordering::SeqCst);
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // A second signal: the user wants out now.
        unsafe { libc::_exit(1) };
    }
}

/// SIGTERM and SIGINT set the stop flag ([`stop_requested`]); a second one
/// exits at once. SA_RESTART keeps blocking reads in the input threads from
/// failing with EINTR.
pub fn install_signal_handlers() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only touches
        // atomics and calls _exit, both async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
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
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Asks for a larger socket receive buffer so bursts wait in the kernel
/// rather than being dropped. `SO_RCVBUFFORCE` (privileged) first, then
/// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`. Returns the
/// size granted (the kernel reports twice the payload room it reserves).
pub fn set_recv_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<usize> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt: libc::c_int| {
        // SAFETY: a valid fd and a pointer to a c_int of the stated size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, an out-pointer to a c_int and its length.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// Asks the kernel for a pipe buffer of `bytes` (Linux `F_SETPIPE_SZ`);
/// returns the size granted. Unprivileged processes may get up to
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default).
#[cfg(target_os = "linux")]
pub fn set_pipe_size(fd: &impl AsRawFd, bytes: usize) -> io::Result<usize> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl on a valid fd with an integer argument.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, v) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub fn set_pipe_size(_fd: &impl AsRawFd, _bytes: usize) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Waits up to `timeout` for `fd` to become readable.
pub fn wait_readable(fd: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the call's duration.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    match rc {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Resident set size in bytes (Linux /proc; None elsewhere).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Datagrams read with one `recvmmsg(2)` call each round, into fixed slots:
/// the UDP input otherwise pays a system call per datagram, on cores it
/// shares with Traefik.
pub struct Datagrams {
    slot: usize,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    got: usize,
}

impl Datagrams {
    /// `count` slots of `slot` bytes; a longer datagram is cut to `slot`
    /// and reported as truncated.
    pub fn new(count: usize, slot: usize) -> Self {
        Self {
            slot,
            bufs: vec![0; count * slot],
            // SAFETY: both are plain C structs for which all-zero is valid.
            iovecs: vec![unsafe { std::mem::zeroed() }; count],
            msgs: vec![unsafe { std::mem::zeroed() }; count],
            got: 0,
        }
    }

    /// Reads what is queued, up to the slot count, without blocking:
    /// `Ok(0)` when nothing is.
    pub fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.got = 0;
        let base = self.bufs.as_mut_ptr();
        for (i, (iov, msg)) in self.iovecs.iter_mut().zip(&mut self.msgs).enumerate() {
            // SAFETY: slot i lies within `bufs` (count * slot bytes).
            iov.iov_base = unsafe { base.add(i * self.slot) }.cast();
            iov.iov_len = self.slot;
            msg.msg_hdr.msg_name = std::ptr::null_mut();
            msg.msg_hdr.msg_namelen = 0;
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_hdr.msg_control = std::ptr::null_mut();
            msg.msg_hdr.msg_controllen = 0;
            msg.msg_hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
        let vlen = libc::c_uint::try_from(self.msgs.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: every header points at its own iovec and slot, all alive
        // and unaliased for the call's duration.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        self.got = usize::try_from(rc).unwrap_or(0).min(self.msgs.len());
        Ok(self.got)
    }

    /// The datagrams of the last [`recv`](Self::recv), each with whether it
    /// was cut to the slot size.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.msgs[..self.got].iter().enumerate().map(|(i, m)| {
            let len = (m.msg_len as usize).min(self.slot);
            let start = i * self.slot;
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
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
}
