//! `--follow PATH`: a log file followed like `tail -F`.
//!
//! - The file may not exist yet: it is read from its start once it appears.
//! - Rotation by rename (the path now names another inode): the new file is
//!   read from its start, and the old one stays open and is read too until
//!   it has had nothing new for [`ROTATE_WAIT`]: Traefik (logrotate `create`
//!   plus USR1) keeps appending to the renamed file until it reopens the path.
//! - Copy-truncate (the file got shorter, or its first bytes changed): read
//!   again from the start.
//! - A partial last line waits for its newline.
//! - Restarts neither re-send nor skip: the position (device, inode, offset
//!   of the last whole line handed on, checksum of the file's first bytes)
//!   is kept in the state file, written after the records before it were
//!   handed to the queue. A file rotated while the relay was down is found
//!   again by its inode in the same directory and finished first.
//!
//! Unlike the other inputs this one waits when the queue is full: the file
//! keeps the records that are not read yet.

use super::lines::{LineSink, LineSplitter, Parsed, is_ours, parse_line};
use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use crate::settings::FollowFrom;
use crate::sys;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of a file's head whose checksum identifies its content.
const HEAD_LEN: u64 = 256;
const POLL: Duration = Duration::from_millis(200);
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long a rotated-away file is still read after its last new byte.
pub const ROTATE_WAIT: Duration = Duration::from_secs(5);

/// A rotated-away file still being read, with its own line state.
#[derive(Debug)]
struct Draining {
    cur: Current,
    splitter: LineSplitter,
    last_data: Instant,
}

/// Where reading stopped, as kept in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    pub head_len: u64,
    pub head_hash: u64,
}

impl Position {
    pub fn to_line(self) -> String {
        format!(
            "v1 {} {} {} {} {:016x}\n",
            self.dev, self.ino, self.offset, self.head_len, self.head_hash
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut it = text.split_whitespace();
        if it.next()? != "v1" {
            return None;
        }
        let p = Self {
            dev: it.next()?.parse().ok()?,
            ino: it.next()?.parse().ok()?,
            offset: it.next()?.parse().ok()?,
            head_len: it.next()?.parse().ok()?,
            head_hash: u64::from_str_radix(it.next()?, 16).ok()?,
        };
        it.next().is_none().then_some(p)
    }
}

pub fn load_state(path: &Path) -> Result<Option<Position>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Position::parse(&text).map(Some).ok_or_else(|| {
            format!(
                "--state: {} is not a relay state file; remove it to start over",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("--state: cannot read {}: {e}", path.display())),
    }
}

/// Writes the state atomically (a temporary file renamed over it).
pub fn save_state(path: &Path, p: Position) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(p.to_line().as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

/// FNV-1a, 64 bits: a cheap content fingerprint, not a security measure.
pub use tdp_core::propagation::ids::fnv1a64 as fnv1a;

fn head_hash(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; usize::try_from(len.min(HEAD_LEN)).unwrap_or(0)];
    file.read_exact_at(&mut buf, 0)?;
    Ok(fnv1a(&buf))
}

#[derive(Debug)]
struct Current {
    file: File,
    dev: u64,
    ino: u64,
    pos: u64,
    /// The checksum of the first HEAD_LEN bytes, once the file has them.
    head: Option<u64>,
    /// The last read found the end of the file.
    at_eof: bool,
}

impl Current {
    fn open(path: &Path, at: Option<u64>) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let m = file.metadata()?;
        let pos = match at {
            Some(p) => p,
            None => m.len(),
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(Self {
            file,
            dev: m.dev(),
            ino: m.ino(),
            pos,
            head: None,
            at_eof: false,
        })
    }

    /// Whether the file's first bytes still are the ones seen before.
    fn head_changed(&mut self) -> io::Result<bool> {
        if self.pos < HEAD_LEN {
            return Ok(false);
        }
        let now = head_hash(&self.file, HEAD_LEN)?;
        match self.head {
            Some(h) => Ok(h != now),
            None => {
                self.head = Some(now);
                Ok(false)
            }
        }
    }
}

/// What one [`Follower::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Read this many bytes; poll again at once.
    Data(usize),
    /// Moved to another file or back to the start; poll again at once.
    Switched,
    /// Nothing new; wait a little.
    Idle,
}

#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    splitter: LineSplitter,
    cur: Option<Current>,
    draining: Option<Draining>,
    rotate_wait: Duration,
    max_line: usize,
    started: bool,
    from: FollowFrom,
    saved: Option<Position>,
    buf: Vec<u8>,
}

impl Follower {
    pub fn new(path: &Path, max_line: usize, from: FollowFrom, saved: Option<Position>) -> Self {
        Self {
            path: path.to_owned(),
            splitter: LineSplitter::new(max_line),
            cur: None,
            draining: None,
            rotate_wait: ROTATE_WAIT,
            max_line,
            started: false,
            from,
            saved,
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// The position after the last whole line read, if a file is open.
    pub fn position(&self) -> io::Result<Option<Position>> {
        let Some(cur) = &self.cur else {
            return Ok(self.saved);
        };
        let offset = cur.pos.saturating_sub(self.splitter.pending() as u64);
        let head_len = offset.min(HEAD_LEN);
        Ok(Some(Position {
            dev: cur.dev,
            ino: cur.ino,
            offset,
            head_len,
            head_hash: head_hash(&cur.file, head_len)?,
        }))
    }

    /// The first open: resume from the saved position when it still
    /// describes a file we can find, else start per `--follow-from`.
    fn start(&mut self) -> io::Result<()> {
        self.started = true;
        let saved = self.saved;
        let at_path = match File::open(&self.path) {
            Ok(f) => Some(f.metadata()?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(st) = saved else {
            if at_path.is_some() {
                let at = match self.from {
                    FollowFrom::Beginning => Some(0),
                    FollowFrom::End => None,
                };
                self.cur = Some(Current::open(&self.path, at)?);
            }
            return Ok(());
        };
        let resumable = |f: &File, m: &std::fs::Metadata| -> io::Result<bool> {
            Ok((m.dev(), m.ino()) == (st.dev, st.ino)
                && m.len() >= st.offset
                && m.len() >= st.head_len
                && head_hash(f, st.head_len)? == st.head_hash)
        };
        if let Some(m) = &at_path {
            if (m.dev(), m.ino()) == (st.dev, st.ino) {
                let mut cur = Current::open(&self.path, Some(0))?;
                if resumable(&cur.file, m)? {
                    cur.file.seek(SeekFrom::Start(st.offset))?;
                    cur.pos = st.offset;
                    info!(
                        "follow {}: resuming at byte {}",
                        self.path.display(),
                        st.offset
                    );
                } else {
                    info!(
                        "follow {}: changed since the last run (truncated); reading from the start",
                        self.path.display()
                    );
                }
                self.cur = Some(cur);
                return Ok(());
            }
        }
        // The file we were reading is not at the path any more: rotated
        // while we were down. Finish it first if it is still nearby.
        if let Some(old) = find_by_inode(&self.path, st.dev, st.ino) {
            let mut cur = Current::open(&old, Some(0))?;
            let m = cur.file.metadata()?;
            if resumable(&cur.file, &m)? {
                cur.file.seek(SeekFrom::Start(st.offset))?;
                cur.pos = st.offset;
                info!(
                    "follow {}: finishing the rotated file {} from byte {} first",
                    self.path.display(),
                    old.display(),
                    st.offset
                );
                self.cur = Some(cur);
                return Ok(());
            }
        }
        if at_path.is_some() {
            info!(
                "follow {}: a new file since the last run; reading it from the start",
                self.path.display()
            );
            self.cur = Some(Current::open(&self.path, Some(0))?);
        }
        Ok(())
    }

    fn read_some(&mut self, sink: &mut impl LineSink) -> io::Result<usize> {
        match self.cur.as_mut() {
            Some(cur) => read_into(cur, &mut self.splitter, &mut self.buf, sink),
            None => Ok(0),
        }
    }

    /// Reads what was appended to the rotated-away file; closes it once it
    /// has been quiet for [`ROTATE_WAIT`].
    fn drain_rotated(&mut self, sink: &mut impl LineSink) -> io::Result<usize> {
        let Some(d) = self.draining.as_mut() else {
            return Ok(0);
        };
        let n = read_into(&mut d.cur, &mut d.splitter, &mut self.buf, sink)?;
        if n > 0 {
            d.last_data = Instant::now();
        } else if d.last_data.elapsed() >= self.rotate_wait {
            d.splitter.finish(sink);
            info!(
                "follow {}: done with the rotated file (quiet for {:?})",
                self.path.display(),
                self.rotate_wait
            );
            self.draining = None;
        }
        Ok(n)
    }

    pub fn poll(&mut self, sink: &mut impl LineSink) -> io::Result<Poll> {
        let drained = self.drain_rotated(sink)?;
        if drained > 0 {
            return Ok(Poll::Data(drained));
        }
        if self.cur.is_none() {
            if !self.started {
                self.start()?;
            } else {
                match Current::open(&self.path, Some(0)) {
                    Ok(c) => {
                        info!("follow {}: file appeared", self.path.display());
                        self.cur = Some(c);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if self.cur.is_none() {
                return Ok(Poll::Idle);
            }
        }
        if let Some(cur) = self.cur.as_mut() {
            // Copy-truncate while we waited at the end: the file got shorter,
            // or was emptied and refilled past our offset (its head changed).
            if cur.at_eof && (cur.file.metadata()?.len() < cur.pos || cur.head_changed()?) {
                info!(
                    "follow {}: truncated; reading from the start",
                    self.path.display()
                );
                cur.file.seek(SeekFrom::Start(0))?;
                cur.pos = 0;
                cur.head = None;
                cur.at_eof = false;
                self.splitter.reset();
                return Ok(Poll::Switched);
            }
        }
        let n = self.read_some(sink)?;
        let Some(cur) = self.cur.as_mut() else {
            return Ok(Poll::Idle);
        };
        cur.at_eof = n == 0;
        if n > 0 {
            return Ok(Poll::Data(n));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) != (cur.dev, cur.ino) => {
                // Renamed away and replaced. Writers keep appending to the
                // old file until they reopen the path: keep reading it too.
                let next = match Current::open(&self.path, Some(0)) {
                    Ok(c) => c,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Poll::Idle),
                    Err(e) => return Err(e),
                };
                info!(
                    "follow {}: rotated; reading the new file, and the old one until it is quiet",
                    self.path.display()
                );
                if let Some(mut d) = self.draining.take() {
                    // Rotated twice within ROTATE_WAIT: the oldest is done.
                    while read_into(&mut d.cur, &mut d.splitter, &mut self.buf, sink)? > 0 {}
                    d.splitter.finish(sink);
                }
                let old = std::mem::replace(cur, next);
                let splitter =
                    std::mem::replace(&mut self.splitter, LineSplitter::new(self.max_line));
                self.draining = Some(Draining {
                    cur: old,
                    splitter,
                    last_data: Instant::now(),
                });
                Ok(Poll::Switched)
            }
            // Truncation is checked on the next poll, on our own descriptor.
            Ok(_) => Ok(Poll::Idle),
            // Renamed away, the new file is not there yet: keep reading the
            // old one, writers may still append to it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Poll::Idle),
            Err(e) => Err(e),
        }
    }
}

/// Reads once from `cur` into `splitter`.
fn read_into(
    cur: &mut Current,
    splitter: &mut LineSplitter,
    buf: &mut [u8],
    sink: &mut impl LineSink,
) -> io::Result<usize> {
    let n = loop {
        match cur.file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    cur.pos += n as u64;
    if cur.head.is_none() && cur.pos >= HEAD_LEN {
        // Remember the head as soon as there is one, to notice a rewrite
        // even if it grows past our offset before we look.
        cur.head = Some(head_hash(&cur.file, HEAD_LEN)?);
    }
    splitter.feed(&buf[..n], sink);
    Ok(n)
}

/// A file in the same directory as `path` with this device and inode.
fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = e.metadata().ok()?;
        (m.is_file() && m.dev() == dev && m.ino() == ino).then(|| e.path())
    })
}

/// Collects the records of the lines read, for the thread to hand on.
struct Collect<'a> {
    queue: &'a Queue,
    records: Vec<Envelope>,
    long_ours: bool,
    throttle: Throttle,
}

impl Collect<'_> {
    fn malformed(&mut self, why: &str, line: &[u8]) {
        self.queue.malformed(Source::Follow);
        if let Some(n) = self.throttle.allow() {
            let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
            warn!("follow: skipped a record line: {why}: {shown:?}{}", held(n));
        }
    }
}

impl LineSink for Collect<'_> {
    fn line(&mut self, line: &[u8]) {
        match parse_line(line) {
            Parsed::Other => {}
            Parsed::Record(e) => self.records.push(*e),
            Parsed::Malformed(why) => self.malformed(&why, line),
        }
    }

    fn long_start(&mut self, head: &[u8], _complete: bool) {
        self.long_ours = is_ours(head);
        if self.long_ours {
            self.malformed("longer than --max-line-bytes", head);
        }
    }

    fn long_more(&mut self, _chunk: &[u8], _complete: bool) {}
}

pub struct Options {
    pub path: PathBuf,
    pub state: PathBuf,
    pub from: FollowFrom,
    pub max_line: usize,
}

pub fn start(o: Options, queue: Queue) -> Result<JoinHandle<()>, String> {
    check_path(&o.path)?;
    let saved = load_state(&o.state)?;
    let follower = Follower::new(&o.path, o.max_line, o.from, saved);
    std::thread::Builder::new()
        .name("input-follow".into())
        .spawn(move || {
            let _alive = crate::health::global().watch("input follow");
            run(follower, &o.state, &queue);
        })
        .map_err(|e| format!("--follow: cannot start thread: {e}"))
}

/// What can never become a file to follow fails the start: a directory,
/// or a path under something that is not a directory. A file that does not
/// exist yet is waited for (Traefik creates it), as is a missing directory
/// (a volume mounted late), said once.
fn check_path(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!(
            "--follow: {} is a directory; give the path of Traefik's log file (its --log.filePath)",
            path.display()
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(d) = dir.filter(|d| !d.exists()) {
                warn!(
                    "--follow: the directory {} does not exist yet; waiting for {} to appear",
                    d.display(),
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(format!(
            "--follow: {}: a part of the path is not a directory",
            path.display()
        )),
        Err(e) => Err(format!("--follow: {}: {e}", path.display())),
    }
}

fn run(mut follower: Follower, state: &Path, queue: &Queue) {
    let shown = follower.path.display().to_string();
    let mut sink = Collect {
        queue,
        records: Vec::new(),
        long_ours: false,
        throttle: Throttle::new(Duration::from_secs(10)),
    };
    let mut errors = Throttle::new(Duration::from_secs(10));
    let mut last_save = Instant::now();
    let mut dirty = false;
    let save = |f: &Follower, errors: &mut Throttle| {
        let r = f
            .position()
            .and_then(|p| p.map_or(Ok(()), |p| save_state(state, p)));
        if let Err(e) = r {
            if let Some(h) = errors.allow() {
                error!(
                    "follow {shown}: cannot write the state file {}: {e}{}",
                    state.display(),
                    held(h)
                );
            }
        }
    };
    loop {
        if sys::stop_requested() {
            save(&follower, &mut errors);
            break;
        }
        let result = follower.poll(&mut sink);
        // Records first, then the position that covers them.
        let records = std::mem::take(&mut sink.records);
        if !queue.push_or_keep(Source::Follow, records, &sys::stop_requested) {
            // Stopping with records not handed on: keep the last saved
            // position so the next run reads them again.
            info!("follow {shown}: stopped");
            return;
        }
        match result {
            Ok(Poll::Data(_)) => {
                dirty = true;
                if last_save.elapsed() >= SAVE_EVERY {
                    save(&follower, &mut errors);
                    last_save = Instant::now();
                    dirty = false;
                }
            }
            Ok(Poll::Switched) => {
                save(&follower, &mut errors);
                last_save = Instant::now();
                dirty = false;
            }
            Ok(Poll::Idle) => {
                if dirty {
                    save(&follower, &mut errors);
                    last_save = Instant::now();
                    dirty = false;
                }
                std::thread::sleep(POLL);
            }
            Err(e) => {
                if let Some(h) = errors.allow() {
                    error!("follow {shown}: {e}{}", held(h));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    info!("follow {shown}: stopped");
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
