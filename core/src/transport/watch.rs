//! Files the relay publishes beside the FIFO for every instance to read: the
//! agent's sampling rates, the routes learned to be large. An instance looks
//! at such a file at most every [`CHECK_EVERY_NS`], and reads it only when
//! its size or modification time changed, so the request path pays one
//! `stat` per instance every few seconds and nothing in between. The guest
//! supplies the file system calls through [`FileSys`]; tests a fake.

/// How often an instance looks at a published file.
pub const CHECK_EVERY_NS: i64 = 2_000_000_000;
/// Files larger than this are not read (a file that big was not written by
/// the relay, which bounds what it publishes far below this).
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified_ns: i64,
}

/// The file system calls a watch needs, and the two an instance makes to
/// tell why its records cannot reach the relay (see
/// [`crate::transport::loss`]): never on a request that a FIFO took.
pub trait FileSys {
    /// `None`: no such file (or no mount).
    fn stat(&mut self, path: &str) -> Option<Stamp>;
    /// The whole file, at most `max` bytes; `None` if it cannot be read.
    fn read(&mut self, path: &str, max: u64) -> Option<Vec<u8>>;
    /// Whether `path` is a directory the instance can reach (mounted).
    /// By default yes: a file system that cannot tell claims no missing
    /// mount.
    fn is_dir(&mut self, _path: &str) -> bool {
        true
    }
    /// The names in directory `dir` that are neither regular files,
    /// directories nor symbolic links: FIFOs (WASI has no type for them)
    /// and sockets; the first [`MAX_SPECIAL`]. By default none.
    fn special_files(&mut self, _dir: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Special files listed at most.
pub const MAX_SPECIAL: usize = 16;

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not time to look yet, or the file is as it was.
    Unchanged,
    /// A new version of the file: its bytes.
    Updated(Vec<u8>),
    /// The file was there and is gone (the relay removed it).
    Removed,
}

#[derive(Debug)]
pub struct Watch<S: FileSys> {
    sys: S,
    path: String,
    next_check_ns: i64,
    seen: Option<Stamp>,
}

impl<S: FileSys> Watch<S> {
    pub fn new(sys: S, path: String) -> Self {
        Self {
            sys,
            path,
            next_check_ns: i64::MIN,
            seen: None,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Looks at the file if [`CHECK_EVERY_NS`] has passed since the last
    /// look (a clock that stepped back waits until it catches up).
    pub fn poll(&mut self, now_ns: i64) -> Change {
        if now_ns < self.next_check_ns {
            return Change::Unchanged;
        }
        self.next_check_ns = now_ns.saturating_add(CHECK_EVERY_NS);
        match self.sys.stat(&self.path) {
            None => match self.seen.take() {
                Some(_) => Change::Removed,
                None => Change::Unchanged,
            },
            Some(stamp) if Some(stamp) == self.seen => Change::Unchanged,
            Some(stamp) if stamp.len > MAX_FILE_BYTES => {
                self.seen = Some(stamp);
                Change::Unchanged
            }
            Some(stamp) => match self.sys.read(&self.path, MAX_FILE_BYTES) {
                Some(bytes) => {
                    self.seen = Some(stamp);
                    Change::Updated(bytes)
                }
                // Replaced between stat and read: look again next time.
                None => Change::Unchanged,
            },
        }
    }
}

/// The path of a published file: `name` in the FIFO's directory, the one
/// directory Traefik mounts into the guest.
pub fn beside(pipe_path: &str, name: &str) -> String {
    match pipe_path.rfind('/') {
        Some(i) => format!("{}/{name}", &pipe_path[..i]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Fake {
        stats: VecDeque<Option<Stamp>>,
        content: Vec<u8>,
        reads: usize,
        unreadable: bool,
    }

    impl FileSys for Fake {
        fn stat(&mut self, _path: &str) -> Option<Stamp> {
            self.stats.pop_front().flatten()
        }
        fn read(&mut self, _path: &str, max: u64) -> Option<Vec<u8>> {
            self.reads += 1;
            (!self.unreadable).then(|| self.content.iter().take(max as usize).copied().collect())
        }
    }

    fn stamp(len: u64, t: i64) -> Option<Stamp> {
        Some(Stamp {
            len,
            modified_ns: t,
        })
    }

    #[test]
    fn reads_only_new_versions_and_only_every_interval() {
        let fake = Fake {
            stats: [stamp(3, 1), stamp(3, 1), stamp(4, 2), None, None].into(),
            content: b"abc".to_vec(),
            ..Fake::default()
        };
        let mut w = Watch::new(fake, "/run/dd/x".into());
        assert_eq!(w.poll(0), Change::Updated(b"abc".to_vec()));
        // Within the interval: no stat at all.
        assert_eq!(w.poll(CHECK_EVERY_NS - 1), Change::Unchanged);
        assert_eq!(w.sys.stats.len(), 4);
        assert_eq!(w.poll(CHECK_EVERY_NS), Change::Unchanged);
        assert_eq!(w.sys.reads, 1);
        assert_eq!(w.poll(2 * CHECK_EVERY_NS), Change::Updated(b"abc".to_vec()));
        assert_eq!(w.poll(3 * CHECK_EVERY_NS), Change::Removed);
        assert_eq!(w.poll(4 * CHECK_EVERY_NS), Change::Unchanged);
        assert_eq!(w.sys.reads, 2);
    }

    #[test]
    fn absent_file_is_unchanged_and_oversized_is_never_read() {
        let fake = Fake {
            stats: [None, stamp(MAX_FILE_BYTES + 1, 1)].into(),
            ..Fake::default()
        };
        let mut w = Watch::new(fake, "x".into());
        assert_eq!(w.poll(0), Change::Unchanged);
        assert_eq!(w.poll(CHECK_EVERY_NS), Change::Unchanged);
        assert_eq!(w.sys.reads, 0);
    }

    #[test]
    fn unreadable_file_is_tried_again() {
        let fake = Fake {
            stats: [stamp(1, 1), stamp(1, 1)].into(),
            content: b"z".to_vec(),
            unreadable: true,
            ..Fake::default()
        };
        let mut w = Watch::new(fake, "x".into());
        assert_eq!(w.poll(0), Change::Unchanged);
        w.sys.unreadable = false;
        assert_eq!(w.poll(CHECK_EVERY_NS), Change::Updated(b"z".to_vec()));
    }

    #[test]
    fn clock_going_back_waits() {
        let fake = Fake {
            stats: [stamp(1, 1)].into(),
            ..Fake::default()
        };
        let mut w = Watch::new(fake, "x".into());
        let _ = w.poll(100);
        assert_eq!(w.poll(50), Change::Unchanged);
        assert_eq!(w.sys.stats.len(), 0);
    }

    #[test]
    fn published_files_sit_beside_the_fifo() {
        assert_eq!(
            beside("/run/dd/traefik-datadog.fifo", "traefik-datadog.rates"),
            "/run/dd/traefik-datadog.rates"
        );
        assert_eq!(beside("/x.fifo", "r"), "/r");
        assert_eq!(beside("x.fifo", "r"), "r");
    }
}
