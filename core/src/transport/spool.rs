//! The spool: a regular file beside the FIFO that keeps the frames the pipe
//! could not take (no FIFO yet, no reader, a full pipe, a reader that went
//! away) until the relay drains it. Without it those records would become
//! log lines that Traefik drops at its default level.
//!
//! Each frame is one `O_APPEND` write of at most [`MAX_FRAME`] bytes, so
//! frames from concurrent instances never interleave. The file is opened,
//! appended to and closed for every frame: the relay drains by renaming the
//! spool away, and a writer that opened the old name can then only still
//! write into the renamed file for the few microseconds between its open and
//! its write, which the relay waits out before it deletes a drained file.
//!
//! The guest supplies the system calls through [`SpoolSys`]; tests supply a
//! fake.
//!
//! [`MAX_FRAME`]: crate::wire::binary::MAX_FRAME

use crate::transport::pipe::RETRY_NS;
use std::fmt;

/// The spool's name is the FIFO's with this suffix, in the same directory
/// (the one mount Traefik gives the plugin).
pub const SUFFIX: &str = ".spool";

/// The spool stops growing here: about 200,000 records of 300 bytes, a
/// minute of a busy Traefik with the relay away. On a memory-backed
/// `emptyDir` it counts against the pod's memory.
/// Set with the middleware's `spoolMaxBytes` (0 turns the spool off).
pub const MAX_BYTES: u64 = 64 << 20;

/// The largest `spoolMaxBytes` accepted.
pub const LIMIT_BYTES: u64 = 1 << 30;

/// The spool path for a FIFO path.
pub fn path_for(pipe_path: &str) -> String {
    format!("{pipe_path}{SUFFIX}")
}

/// The system calls the spool needs. `open_append` creates the file if
/// missing and opens it write-only in append mode.
pub trait SpoolSys {
    fn open_append(&mut self, path: &str) -> Result<i32, i32>;
    /// The file's current size.
    fn size(&mut self, fd: i32) -> Result<u64, i32>;
    fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, i32>;
    fn close(&mut self, fd: i32);
}

/// Why a frame did not go into the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolError {
    /// `spoolMaxBytes: 0`.
    Off,
    /// The spool could not be opened (no mount, read-only, ...); errno.
    Unavailable(i32),
    /// Waiting out [`RETRY_NS`] after the spool could not be opened.
    Waiting,
    /// The spool holds [`MAX_BYTES`] already: the relay is away too long.
    Full,
    /// The write failed (errno) or was short (0): the disk is full.
    Write(i32),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "spool cannot be opened (errno {e})"),
            Self::Off => f.write_str("spool turned off (spoolMaxBytes 0)"),
            Self::Waiting => f.write_str("spool unavailable, retrying later"),
            Self::Full => f.write_str("spool is at spoolMaxBytes, the relay is not draining it"),
            Self::Write(0) => f.write_str("spool write was short (disk full?)"),
            Self::Write(e) => write!(f, "spool write failed (errno {e})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    pub spooled: u64,
    pub full: u64,
    pub failed: u64,
}

#[derive(Debug)]
pub struct Spool<S: SpoolSys> {
    sys: S,
    path: String,
    max_bytes: u64,
    retry_at_ns: i64,
    pub stats: SpoolStats,
}

impl<S: SpoolSys> Spool<S> {
    pub fn with_limit(sys: S, pipe_path: &str, max_bytes: u64) -> Self {
        Self {
            sys,
            path: path_for(pipe_path),
            max_bytes,
            retry_at_ns: i64::MIN,
            stats: SpoolStats::default(),
        }
    }

    /// Appends one frame as one write. Never blocks; `Err` tells the caller
    /// the record must go out another way.
    pub fn append(&mut self, frame: &[u8], now_ns: i64) -> Result<(), SpoolError> {
        let result = self.try_append(frame, now_ns);
        match result {
            Ok(()) => self.stats.spooled += 1,
            Err(SpoolError::Full) => self.stats.full += 1,
            Err(_) => self.stats.failed += 1,
        }
        result
    }

    fn try_append(&mut self, frame: &[u8], now_ns: i64) -> Result<(), SpoolError> {
        if self.max_bytes == 0 {
            return Err(SpoolError::Off);
        }
        if now_ns < self.retry_at_ns {
            return Err(SpoolError::Waiting);
        }
        let fd = match self.sys.open_append(&self.path) {
            Ok(fd) => fd,
            Err(errno) => {
                self.retry_at_ns = now_ns.saturating_add(RETRY_NS);
                return Err(SpoolError::Unavailable(errno));
            }
        };
        let result = self.write_bounded(fd, frame);
        self.sys.close(fd);
        result
    }

    fn write_bounded(&mut self, fd: i32, frame: &[u8]) -> Result<(), SpoolError> {
        let size = self.sys.size(fd).map_err(SpoolError::Write)?;
        if size.saturating_add(frame.len() as u64) > self.max_bytes {
            return Err(SpoolError::Full);
        }
        match self.sys.write(fd, frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(_) => Err(SpoolError::Write(0)),
            Err(errno) => Err(SpoolError::Write(errno)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// One file in memory; opens and writes can be scripted to fail.
    #[derive(Default, Debug)]
    struct Fake {
        file: Vec<u8>,
        open_errors: VecDeque<i32>,
        write_answers: VecDeque<Result<usize, i32>>,
        opened: Vec<String>,
        open_fds: u32,
    }

    impl SpoolSys for Fake {
        fn open_append(&mut self, path: &str) -> Result<i32, i32> {
            self.opened.push(path.to_owned());
            if let Some(e) = self.open_errors.pop_front() {
                return Err(e);
            }
            self.open_fds += 1;
            Ok(9)
        }
        fn size(&mut self, _fd: i32) -> Result<u64, i32> {
            Ok(self.file.len() as u64)
        }
        fn write(&mut self, _fd: i32, frame: &[u8]) -> Result<usize, i32> {
            match self.write_answers.pop_front() {
                Some(Ok(n)) => {
                    self.file.extend_from_slice(&frame[..n]);
                    Ok(n)
                }
                Some(Err(e)) => Err(e),
                None => {
                    self.file.extend_from_slice(frame);
                    Ok(frame.len())
                }
            }
        }
        fn close(&mut self, _fd: i32) {
            self.open_fds -= 1;
        }
    }

    #[test]
    fn appends_each_frame_with_its_own_open_and_close() {
        let mut s = Spool::with_limit(Fake::default(), "/run/dd/x.fifo", MAX_BYTES);
        assert_eq!(s.append(b"abc", 0), Ok(()));
        assert_eq!(s.append(b"de", 1), Ok(()));
        assert_eq!(s.sys.file, b"abcde");
        assert_eq!(s.sys.opened, vec!["/run/dd/x.fifo.spool"; 2]);
        assert_eq!(s.sys.open_fds, 0);
        assert_eq!(
            s.stats,
            SpoolStats {
                spooled: 2,
                ..Default::default()
            }
        );
    }

    #[test]
    fn refuses_a_frame_that_would_pass_the_limit() {
        let mut s = Spool::with_limit(Fake::default(), "/p", 5);
        assert_eq!(s.append(b"abc", 0), Ok(()));
        assert_eq!(s.append(b"def", 0), Err(SpoolError::Full));
        assert_eq!(s.append(b"de", 0), Ok(()));
        assert_eq!(s.append(b"f", 0), Err(SpoolError::Full));
        assert_eq!(s.sys.file, b"abcde");
        assert_eq!(s.sys.open_fds, 0, "closed after a refusal too");
        assert_eq!(
            s.stats,
            SpoolStats {
                spooled: 2,
                full: 2,
                failed: 0
            }
        );
    }

    #[test]
    fn a_zero_limit_turns_the_spool_off() {
        let mut s = Spool::with_limit(Fake::default(), "/p", 0);
        assert_eq!(s.append(b"a", 0), Err(SpoolError::Off));
        assert!(s.sys.opened.is_empty());
    }

    #[test]
    fn no_mount_waits_before_trying_again() {
        let fake = Fake {
            open_errors: VecDeque::from([76]),
            ..Fake::default()
        };
        let mut s = Spool::with_limit(fake, "/p", MAX_BYTES);
        assert_eq!(s.append(b"a", 10), Err(SpoolError::Unavailable(76)));
        assert_eq!(s.append(b"a", 10 + RETRY_NS - 1), Err(SpoolError::Waiting));
        assert_eq!(s.sys.opened.len(), 1, "no open while waiting");
        assert_eq!(s.append(b"a", 10 + RETRY_NS), Ok(()));
        assert_eq!(s.stats.failed, 2);
    }

    #[test]
    fn write_errors_and_short_writes_are_reported() {
        let fake = Fake {
            write_answers: VecDeque::from([Err(28), Ok(1)]),
            ..Fake::default()
        };
        let mut s = Spool::with_limit(fake, "/p", MAX_BYTES);
        assert_eq!(s.append(b"abc", 0), Err(SpoolError::Write(28)));
        assert_eq!(s.append(b"abc", 0), Err(SpoolError::Write(0)));
        assert_eq!(s.append(b"xy", 0), Ok(()), "no waiting after a write error");
        assert_eq!(s.sys.open_fds, 0);
        assert_eq!(s.stats.failed, 2);
    }

    #[test]
    fn spool_max_bytes_is_a_whole_number_of_bytes() {
        use crate::config::Config;
        let limit = |json: &str| Config::from_json(json.as_bytes()).map(|c| c.spool_max_bytes);
        assert_eq!(limit("{}"), Ok(MAX_BYTES));
        assert_eq!(limit(r#"{"spoolMaxBytes":0}"#), Ok(0));
        assert_eq!(limit(r#"{"spoolMaxBytes":"4096"}"#), Ok(4096));
        assert_eq!(limit(r#"{"spoolMaxBytes":1073741824}"#), Ok(LIMIT_BYTES));
        for bad in ["-1", "1.5", "1073741825", "\"lots\""] {
            let e = Config::from_json(format!(r#"{{"spoolMaxBytes":{bad}}}"#).as_bytes())
                .expect_err(bad)
                .to_string();
            assert!(e.contains("spoolMaxBytes"), "{e}");
        }
        assert_eq!(
            Config::from_json(br#"{"spoolMaxBytes":-1}"#)
                .expect_err("negative")
                .to_string(),
            "key \"spoolMaxBytes\": -1 is not a whole number of bytes in 0..=1073741824"
        );
    }

    #[test]
    fn errors_explain_themselves() {
        assert_eq!(
            SpoolError::Full.to_string(),
            "spool is at spoolMaxBytes, the relay is not draining it"
        );
        assert_eq!(
            SpoolError::Write(0).to_string(),
            "spool write was short (disk full?)"
        );
    }
}
