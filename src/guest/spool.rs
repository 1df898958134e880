//! The spool's system calls, through wasi-libc on the preopened mount (see
//! `pipe.rs`). wazero opens with the host's `O_APPEND`, so the kernel places
//! each write at the end of the file even with many instances writing.

use std::ffi::CString;
use tdp_core::transport::spool::SpoolSys;

pub struct WasiSpool;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl SpoolSys for WasiSpool {
    fn open_append(&mut self, path: &str) -> Result<i32, i32> {
        let Ok(c) = CString::new(path) else {
            return Err(libc::EINVAL);
        };
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NONBLOCK;
        let fd = unsafe { libc::open(c.as_ptr(), flags, 0o666) };
        if fd < 0 { Err(errno()) } else { Ok(fd) }
    }

    fn size(&mut self, fd: i32) -> Result<u64, i32> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
            return Err(errno());
        }
        let st = unsafe { st.assume_init() };
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, i32> {
        let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        if n < 0 { Err(errno()) } else { Ok(n as usize) }
    }

    fn close(&mut self, fd: i32) {
        unsafe {
            libc::close(fd);
        }
    }
}
