//! The spool beside the FIFO (`<fifo>.spool`): the plugin appends the frames
//! the FIFO could not take (relay away, pipe full) and this thread hands them
//! on, so a relay restart or a slow relay loses no record.
//!
//! Draining never shares an offset with writers: the live spool is renamed
//! to `<fifo>.spool.drain-<id>-<offset>` and only the renamed file is read.
//! Instances open the spool for each frame, so one that opened the old name
//! just before the rename can still append to the renamed file, for the few
//! microseconds between its open and its write; a drained file is therefore
//! deleted only once it has stayed unchanged for [`SETTLE`]. The name
//! carries how far the file was handed on, renamed after each chunk, so a
//! relay that stops (or is killed) resumes there instead of sending those
//! records twice. A frame still being written when the file is read shows as
//! an incomplete tail, read again on the next pass.

use super::frames::FrameReader;
use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use crate::sys;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the spool is looked at. Records spooled wait this long at most
/// before the relay reads them (the agent's 10 s trace buckets dwarf it).
pub const INTERVAL: Duration = Duration::from_millis(500);

/// A drained file stays this long unchanged before it is deleted: far more
/// than an instance needs between opening the spool and writing to it.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Bytes read per step; the queue is offered one step's records at a time.
const CHUNK: usize = 64 * 1024;

/// The spool path for a FIFO path (the plugin's `tdp_core::transport::spool::path_for`
/// on the guest's side of the mount).
pub fn spool_path(fifo: &Path) -> PathBuf {
    let mut s = fifo.as_os_str().to_owned();
    s.push(tdp_core::transport::spool::SUFFIX);
    PathBuf::from(s)
}

/// A drained file's name: `<spool name>.drain-<id>-<offset>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DrainName {
    /// Unique and increasing: the time of the rename in ns (bumped past the
    /// previous id if the clock did not move).
    pub id: u64,
    /// Bytes of the file already handed on.
    pub offset: u64,
}

impl DrainName {
    pub fn file_name(self, spool_name: &str) -> String {
        format!("{spool_name}.drain-{}-{}", self.id, self.offset)
    }

    /// `None` for any other name (the directory is shared).
    pub fn parse(spool_name: &str, name: &str) -> Option<Self> {
        let rest = name.strip_prefix(spool_name)?.strip_prefix(".drain-")?;
        let (id, offset) = rest.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(offset) {
            return None;
        }
        Some(Self {
            id: id.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    }
}

/// One renamed spool being handed on.
#[derive(Debug)]
struct Draining {
    name: DrainName,
    /// The offset in the file's current name.
    saved: u64,
    /// Bytes read so far (handed on, or held as an incomplete tail).
    read: u64,
    /// The file's size at the last look.
    len: u64,
    frames: FrameReader,
    records: u64,
    /// When the file last grew (or was taken).
    changed: Instant,
    /// The queue refused part of a chunk (the relay is stopping): the name
    /// keeps the last offset known to be handed on in full.
    hold_offset: bool,
}

impl Draining {
    fn new(name: DrainName, now: Instant) -> Self {
        Self {
            name,
            saved: name.offset,
            read: name.offset,
            len: name.offset,
            frames: FrameReader::default(),
            records: 0,
            changed: now,
            hold_offset: false,
        }
    }

    /// Bytes not handed on yet: unread, or an incomplete tail.
    fn waiting(&self) -> u64 {
        self.len.saturating_sub(self.read) + self.frames.pending() as u64
    }

    /// Deleted once read to its end and unchanged for [`SETTLE`].
    fn settled(&self, len: u64, now: Instant) -> bool {
        self.read >= len && now.duration_since(self.changed) >= SETTLE
    }
}

struct Drainer {
    dir: PathBuf,
    spool_name: String,
    shown: String,
    files: Vec<Draining>,
    last_id: u64,
    /// The live spool's size at the last look (not renamed away yet).
    live_len: u64,
    throttle: Throttle,
}

pub fn start(fifo: &Path, queue: Queue) -> Result<JoinHandle<()>, String> {
    let spool = spool_path(fifo);
    let (Some(dir), Some(name)) = (spool.parent(), spool.file_name().and_then(|n| n.to_str()))
    else {
        return Err(format!(
            "--pipe: {} has no directory or a non-UTF-8 name",
            fifo.display()
        ));
    };
    let mut d = Drainer {
        dir: if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_owned()
        },
        spool_name: name.to_owned(),
        shown: spool.display().to_string(),
        files: Vec::new(),
        last_id: 0,
        live_len: 0,
        throttle: Throttle::new(Duration::from_secs(10)),
    };
    d.adopt_leftovers();
    std::thread::Builder::new()
        .name("input-spool".into())
        .spawn(move || {
            let _alive = crate::health::global().watch("input pipe (spool)");
            d.run(&queue);
        })
        .map_err(|e| format!("--pipe: cannot start the spool thread: {e}"))
}

impl Drainer {
    fn path(&self, name: DrainName) -> PathBuf {
        self.dir.join(name.file_name(&self.spool_name))
    }

    /// Files a previous run renamed and did not finish.
    fn adopt_leftovers(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut names: Vec<DrainName> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| DrainName::parse(&self.spool_name, n))
            })
            .collect();
        names.sort();
        let now = Instant::now();
        for n in names {
            info!(
                "spool {}: resuming {} at byte {}",
                self.shown,
                n.file_name(&self.spool_name),
                n.offset
            );
            self.last_id = self.last_id.max(n.id);
            let mut d = Draining::new(n, now);
            d.len = std::fs::symlink_metadata(self.path(n)).map_or(n.offset, |m| m.len());
            self.files.push(d);
        }
    }

    /// Bytes the spool holds that were not handed on yet, for the
    /// `spool_bytes` gauge.
    fn waiting(&self) -> u64 {
        self.live_len + self.files.iter().map(Draining::waiting).sum::<u64>()
    }

    fn run(mut self, queue: &Queue) {
        let mut buf = vec![0u8; CHUNK];
        let gauge = &queue.counters().spool_bytes;
        loop {
            self.take_live();
            gauge.store(self.waiting(), Relaxed);
            let mut i = 0;
            while i < self.files.len() {
                if sys::stop_requested() {
                    break;
                }
                if self.drain(i, &mut buf, queue) {
                    let d = self.files.remove(i);
                    self.finish(d, queue);
                } else {
                    i += 1;
                }
            }
            // Each pass ends with the offsets in the names, so a stop (or a
            // kill) between passes resends nothing.
            for i in 0..self.files.len() {
                self.save(i);
            }
            gauge.store(self.waiting(), Relaxed);
            if sys::stop_requested() {
                break;
            }
            let until = Instant::now() + INTERVAL;
            while Instant::now() < until && !sys::stop_requested() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        info!("spool {}: stopped", self.shown);
    }

    /// Renames a non-empty live spool away to drain it.
    fn take_live(&mut self) {
        let live = self.dir.join(&self.spool_name);
        self.live_len = 0;
        // Not through a symlink: the directory is shared.
        match std::fs::symlink_metadata(&live) {
            Ok(m) if m.is_file() && m.len() > 0 => self.live_len = m.len(),
            Ok(m) if !m.is_file() => {
                if let Some(h) = self.throttle.allow() {
                    warn!(
                        "spool {}: not a regular file, left alone{}",
                        self.shown,
                        held(h)
                    );
                }
                return;
            }
            _ => return,
        }
        let id = (tdp_core::time::now_unix_ns().max(0) as u64).max(self.last_id + 1);
        let name = DrainName { id, offset: 0 };
        match std::fs::rename(&live, self.path(name)) {
            Ok(()) => {
                self.last_id = id;
                let mut d = Draining::new(name, Instant::now());
                d.len = self.live_len;
                self.live_len = 0;
                self.files.push(d);
            }
            Err(e) => {
                if let Some(h) = self.throttle.allow() {
                    error!(
                        "spool {}: cannot rename it to drain it: {e}{}",
                        self.shown,
                        held(h)
                    );
                }
            }
        }
    }

    /// Reads file `i` from where it was left to its end, handing records on.
    /// True when it is done with (settled, or gone).
    fn drain(&mut self, i: usize, buf: &mut [u8], queue: &Queue) -> bool {
        let path = self.path(DrainName {
            offset: self.files[i].saved,
            ..self.files[i].name
        });
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(e) => {
                if let Some(h) = self.throttle.allow() {
                    error!(
                        "spool {}: cannot read {}: {e}{}",
                        self.shown,
                        path.display(),
                        held(h)
                    );
                }
                return false;
            }
        };
        // What the other files hold, for the gauge while this one drains.
        let others: u64 = self
            .files
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, f)| f.waiting())
            .sum();
        let others = others + self.live_len;
        let d = &mut self.files[i];
        if let Err(e) = file.seek(SeekFrom::Start(d.read)) {
            error!("spool {}: seek: {e}", self.shown);
            return false;
        }
        let mut grew = false;
        loop {
            if sys::stop_requested() {
                break;
            }
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("spool {}: read: {e}", self.shown);
                    break;
                }
            };
            grew = true;
            d.len = d.len.max(d.read + n as u64);
            let mut batch = Vec::with_capacity(n / 128);
            let mut bad = None;
            d.frames.feed(&buf[..n], |r| match r {
                Ok(record) => batch.push(Envelope::bare(record)),
                Err(e) => {
                    queue.malformed(Source::Pipe);
                    bad = Some(e);
                }
            });
            if let Some(e) = bad {
                if let Some(h) = self.throttle.allow() {
                    warn!("spool {}: skipped bad input: {e}{}", self.shown, held(h));
                }
            }
            d.records += batch.len() as u64;
            d.read += n as u64;
            // The FIFO's reader gets the second half of the queue to
            // itself: the pipe's buffer is small, the spool is not.
            while queue.half_full() && !sys::stop_requested() && !queue.is_closed() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if !queue.push_or_keep(Source::Pipe, batch, &sys::stop_requested) {
                d.hold_offset = true;
                break;
            }
            queue
                .counters()
                .spool_bytes
                .store(d.waiting() + others, Relaxed);
        }
        let now = Instant::now();
        if grew {
            d.changed = now;
        }
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        d.len = len;
        d.settled(len, now)
    }

    /// Offset of file `i` into its name: everything read but an incomplete
    /// tail was handed on.
    fn save(&mut self, i: usize) {
        let d = &self.files[i];
        let handed = d.read - d.frames.pending() as u64;
        if handed == d.saved || d.hold_offset {
            return;
        }
        let from = self.path(DrainName {
            offset: d.saved,
            ..d.name
        });
        let to = self.path(DrainName {
            offset: handed,
            ..d.name
        });
        match std::fs::rename(&from, &to) {
            Ok(()) => self.files[i].saved = handed,
            Err(e) => {
                if let Some(h) = self.throttle.allow() {
                    error!(
                        "spool {}: cannot rename {}: {e}{}",
                        self.shown,
                        from.display(),
                        held(h)
                    );
                }
            }
        }
    }

    fn finish(&mut self, d: Draining, queue: &Queue) {
        let path = self.path(DrainName {
            offset: d.saved,
            ..d.name
        });
        let tail = d.frames.pending();
        if tail > 0 {
            // A frame cut short (the disk filled up mid-write): never completed.
            queue.malformed(Source::Pipe);
            warn!(
                "spool {}: {} ends with {tail} bytes of an incomplete frame",
                self.shown,
                path.display()
            );
        }
        match std::fs::remove_file(&path) {
            Ok(()) => info!(
                "spool {}: handed on {} records from {}",
                self.shown,
                d.records,
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => error!(
                "spool {}: cannot delete {}: {e}",
                self.shown,
                path.display()
            ),
        }
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
