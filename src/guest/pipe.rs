//! The FIFO system calls, through wasi-libc: `open` resolves the path against
//! the directories Traefik preopened from `settings.mounts`.

use std::ffi::CString;
use tdp_core::transport::pipe::{PipeSys, WriteError};

pub struct WasiPipe;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl PipeSys for WasiPipe {
    fn open(&mut self, path: &str) -> Result<i32, i32> {
        let Ok(c) = CString::new(path) else {
            return Err(libc::EINVAL);
        };
        // Non-blocking: fails at once (ENXIO) when no reader holds the FIFO,
        // and a full pipe answers EAGAIN instead of stalling the request.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
        if fd < 0 { Err(errno()) } else { Ok(fd) }
    }

    fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, WriteError> {
        let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match errno() {
            libc::EAGAIN => Err(WriteError::WouldBlock),
            e => Err(WriteError::Broken(e)),
        }
    }

    fn close(&mut self, fd: i32) {
        unsafe {
            libc::close(fd);
        }
    }
}
