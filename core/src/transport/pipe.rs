//! The pipe transport's decisions, apart from the host calls that carry them
//! out: when to (re)open the FIFO, what a failed write means, and when a
//! record must go out as a fallback log line instead. The guest supplies the
//! system calls through [`PipeSys`]; tests supply a fake.

/// How long an instance waits before trying the FIFO again after it found no
/// mount, no FIFO, no reader, or a broken pipe.
pub const RETRY_NS: i64 = 3_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The pipe is full (the reader is slow): this record falls back.
    WouldBlock,
    /// Anything else (no reader any more, bad fd): close, retry later.
    Broken(i32),
}

/// The system calls the pipe needs. Opening must be non-blocking and
/// write-only, so it fails at once when no reader holds the FIFO open.
pub trait PipeSys {
    fn open(&mut self, path: &str) -> Result<i32, i32>;
    fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, WriteError>;
    fn close(&mut self, fd: i32);
}

/// Why a record did not go through the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The FIFO could not be opened (no mount, no FIFO, no reader); errno.
    Unavailable(i32),
    /// Waiting out [`RETRY_NS`] after a failure.
    Waiting,
    /// The pipe was full.
    Full,
    /// The write failed or was short; the fd was closed.
    Broken(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipeStats {
    pub piped: u64,
    pub fell_back: u64,
    pub opens: u64,
    pub full: u64,
    pub broken: u64,
}

#[derive(Debug)]
enum State {
    Closed { retry_at_ns: i64 },
    Open(i32),
}

#[derive(Debug)]
pub struct Pipe<S: PipeSys> {
    sys: S,
    path: String,
    state: State,
    pub stats: PipeStats,
}

impl<S: PipeSys> Pipe<S> {
    pub fn new(sys: S, path: &str) -> Self {
        Self {
            sys,
            path: path.to_owned(),
            state: State::Closed {
                retry_at_ns: i64::MIN,
            },
            stats: PipeStats::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Sends one frame as one write. `Err` tells the caller to emit the
    /// record another way; nothing here ever blocks.
    pub fn send(&mut self, frame: &[u8], now_ns: i64) -> Result<(), Fallback> {
        let result = self.try_send(frame, now_ns);
        match result {
            Ok(()) => self.stats.piped += 1,
            Err(_) => self.stats.fell_back += 1,
        }
        result
    }

    fn try_send(&mut self, frame: &[u8], now_ns: i64) -> Result<(), Fallback> {
        let fd = match self.state {
            State::Open(fd) => fd,
            State::Closed { retry_at_ns } if now_ns < retry_at_ns => return Err(Fallback::Waiting),
            State::Closed { .. } => match self.sys.open(&self.path) {
                Ok(fd) => {
                    self.stats.opens += 1;
                    self.state = State::Open(fd);
                    fd
                }
                Err(errno) => {
                    self.state = State::Closed {
                        retry_at_ns: now_ns.saturating_add(RETRY_NS),
                    };
                    return Err(Fallback::Unavailable(errno));
                }
            },
        };
        match self.sys.write(fd, frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Err(WriteError::WouldBlock) => {
                self.stats.full += 1;
                Err(Fallback::Full)
            }
            // A short write cannot happen for <= PIPE_BUF bytes; if it does,
            // the reader resyncs on the next frame and we start over.
            Ok(_) => self.break_off(fd, now_ns, 0),
            Err(WriteError::Broken(errno)) => self.break_off(fd, now_ns, errno),
        }
    }

    fn break_off(&mut self, fd: i32, now_ns: i64, errno: i32) -> Result<(), Fallback> {
        self.stats.broken += 1;
        self.sys.close(fd);
        self.state = State::Closed {
            retry_at_ns: now_ns.saturating_add(RETRY_NS),
        };
        Err(Fallback::Broken(errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Scripted system calls: each open/write takes the next answer.
    #[derive(Default, Debug)]
    struct Fake {
        opens: VecDeque<Result<i32, i32>>,
        writes: VecDeque<Result<usize, WriteError>>,
        closed: Vec<i32>,
        written: Vec<Vec<u8>>,
    }

    impl PipeSys for Fake {
        fn open(&mut self, _path: &str) -> Result<i32, i32> {
            self.opens.pop_front().unwrap_or(Err(2))
        }
        fn write(&mut self, _fd: i32, frame: &[u8]) -> Result<usize, WriteError> {
            let r = self.writes.pop_front().unwrap_or(Ok(frame.len()));
            if r.is_ok() {
                self.written.push(frame.to_vec());
            }
            r
        }
        fn close(&mut self, fd: i32) {
            self.closed.push(fd);
        }
    }

    fn pipe(opens: Vec<Result<i32, i32>>, writes: Vec<Result<usize, WriteError>>) -> Pipe<Fake> {
        Pipe::new(
            Fake {
                opens: opens.into(),
                writes: writes.into(),
                ..Fake::default()
            },
            "/run/dd/x.fifo",
        )
    }

    #[test]
    fn opens_once_and_writes_every_frame() {
        let mut p = pipe(vec![Ok(5)], vec![]);
        assert_eq!(p.send(b"abc", 0), Ok(()));
        assert_eq!(p.send(b"de", 1), Ok(()));
        assert_eq!(
            p.stats,
            PipeStats {
                piped: 2,
                opens: 1,
                ..Default::default()
            }
        );
        assert_eq!(p.sys.written, vec![b"abc".to_vec(), b"de".to_vec()]);
    }

    #[test]
    fn no_reader_falls_back_and_retries_only_after_the_interval() {
        // ENXIO (no reader) first, then a reader appears.
        let mut p = pipe(vec![Err(60), Ok(7)], vec![]);
        assert_eq!(p.send(b"a", 0), Err(Fallback::Unavailable(60)));
        assert_eq!(p.send(b"a", RETRY_NS - 1), Err(Fallback::Waiting));
        assert_eq!(p.sys.opens.len(), 1, "no open attempt while waiting");
        assert_eq!(p.send(b"a", RETRY_NS), Ok(()));
        assert!(p.is_open());
        assert_eq!(
            p.stats,
            PipeStats {
                piped: 1,
                fell_back: 2,
                opens: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn full_pipe_falls_back_but_keeps_the_fd() {
        let mut p = pipe(vec![Ok(5)], vec![Err(WriteError::WouldBlock)]);
        assert_eq!(p.send(b"a", 0), Err(Fallback::Full));
        assert!(p.is_open());
        assert_eq!(p.send(b"b", 1), Ok(()));
        assert_eq!(p.stats.full, 1);
        assert!(p.sys.closed.is_empty());
    }

    #[test]
    fn broken_pipe_closes_and_reopens_later() {
        // EPIPE: the relay went away.
        let mut p = pipe(vec![Ok(5), Ok(6)], vec![Err(WriteError::Broken(64))]);
        assert_eq!(p.send(b"a", 10), Err(Fallback::Broken(64)));
        assert_eq!(p.sys.closed, vec![5]);
        assert_eq!(p.send(b"a", 11), Err(Fallback::Waiting));
        assert_eq!(p.send(b"a", 10 + RETRY_NS), Ok(()));
        assert_eq!(
            p.stats,
            PipeStats {
                piped: 1,
                fell_back: 2,
                opens: 2,
                broken: 1,
                full: 0
            }
        );
    }

    #[test]
    fn short_write_is_treated_as_broken() {
        let mut p = pipe(vec![Ok(5)], vec![Ok(1)]);
        assert_eq!(p.send(b"abc", 0), Err(Fallback::Broken(0)));
        assert_eq!(p.sys.closed, vec![5]);
    }
}
