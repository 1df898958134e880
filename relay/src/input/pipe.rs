//! `--pipe`: the FIFO the plugin writes one binary frame per request to.
//!
//! The FIFO's mode is set before (see `fifo_mode`: 0600, or 0620 with
//! `--pipe-group`); created here only if it went missing meanwhile. It
//! is opened read-write: the relay then never sees end-of-file when writers
//! come and go, and a writer's non-blocking open always finds a reader while
//! the relay lives.
//!
//! When the queue is full the reader stops reading (back-pressure) rather
//! than drop what it read: the pipe's buffer fills, the plugin's
//! non-blocking writes then fail with EAGAIN and it appends those frames to
//! the spool beside the FIFO, which `spool.rs` drains once there is room. A
//! frame costs Traefik a little more that way (an open, a write and a close
//! of the spool), but none is lost.

use super::frames::FrameReader;
use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use crate::sys;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

pub const FIFO_MODE: u32 = super::fifo_mode::OWNER_ONLY;

/// The pipe buffer asked for: room for ~3,000 records, so the reader can
/// wait between reads (see [`COALESCE`]) without writers finding it full.
pub const PIPE_BYTES: usize = 1 << 20;

/// After draining the pipe, the reader sleeps this long before it looks
/// again. Waking on every record cost Traefik, which shares the cores, about
/// a tenth of its throughput (one wakeup and one read per request); batching
/// makes that a few hundred wakeups a second. A record waits at most this
/// long, which the 1 s trace flush dwarfs.
pub const COALESCE: Duration = Duration::from_millis(5);

/// The pause that fits the granted pipe size: a smaller pipe fills sooner.
fn coalesce_for(granted: usize) -> Duration {
    if granted >= PIPE_BYTES / 2 {
        COALESCE
    } else {
        Duration::from_millis(1)
    }
}

/// Creates the FIFO if missing and opens it read-write.
pub fn open(path: &Path) -> Result<File, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(format!(
                "--pipe: {} exists and is not a FIFO; remove it or choose another path",
                path.display()
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            sys::mkfifo(path, FIFO_MODE)
                .map_err(|e| format!("--pipe: cannot create FIFO {}: {e}", path.display()))?;
            info!("pipe: created FIFO {} (mode 0600)", path.display());
        }
        Err(e) => return Err(format!("--pipe: {}: {e}", path.display())),
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("--pipe: cannot open {}: {e}", path.display()))
}

/// Starts the FIFO reader and, beside it, the spool's drainer.
pub fn start(path: &Path, queue: Queue) -> Result<JoinHandle<()>, String> {
    let file = open(path)?;
    super::spool::start(path, queue.clone())?;
    let granted = match sys::set_pipe_size(&file, PIPE_BYTES) {
        Ok(n) => n,
        Err(e) => {
            warn!(
                "pipe {}: cannot grow the pipe buffer to {PIPE_BYTES} bytes ({e}); reading more often",
                path.display()
            );
            0
        }
    };
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("input-pipe".into())
        .spawn(move || {
            let _alive = crate::health::global().watch("input pipe");
            run(file, &queue, &shown, coalesce_for(granted));
        })
        .map_err(|e| format!("--pipe: cannot start thread: {e}"))
}

fn run(mut file: File, queue: &Queue, shown: &str, coalesce: Duration) {
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut throttle = Throttle::new(Duration::from_secs(10));
    let mut stopping = false;
    loop {
        if sys::stop_requested() {
            // One last pass over what writers already put in the pipe.
            stopping = true;
        }
        if queue.is_closed() {
            break;
        }
        let wait = if stopping {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match sys::wait_readable(&file, wait) {
            Ok(true) => {}
            Ok(false) if stopping => break,
            Ok(false) => continue,
            Err(e) => {
                error!("pipe {shown}: poll: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        match file.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(10)),
            Ok(n) => {
                // A short read drained the pipe: let records gather.
                let drained = n < buf.len();
                let mut batch = Vec::with_capacity(n / 128);
                frames.feed(&buf[..n], |r| match r {
                    Ok(record) => batch.push(Envelope::bare(record)),
                    Err(e) => {
                        queue.malformed(Source::Pipe);
                        if let Some(h) = throttle.allow() {
                            warn!("pipe {shown}: skipped bad input: {e}{}", held(h));
                        }
                    }
                });
                // Waits while the queue is full: meanwhile the pipe fills
                // and the plugin spools.
                queue.push(Source::Pipe, batch);
                if drained && !stopping {
                    std::thread::sleep(coalesce);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error!("pipe {shown}: read: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    // Closed at once: from here writers get EPIPE and spool their frames;
    // a frame written between the last read and this close is lost, and so
    // is what the pipe still held if the pipeline stopped taking records
    // first (the grace ran out).
    drop(file);
    info!("pipe {shown}: stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::frames::tests::run_reader;
    use crate::input::tests::record;
    use std::io::Write;
    use tdp_core::wire::binary::encode;

    fn frame(status: u16) -> Vec<u8> {
        encode(&record(status)).expect("fits")
    }

    #[test]
    fn creates_and_reads_the_fifo() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("relay-pipe-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("t.fifo");
        let _ = std::fs::remove_file(&p);
        let mut f = open(&p).expect("created and opened");
        assert_eq!(
            std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        // A writer opening non-blocking, as the guest does, succeeds.
        let mut w = OpenOptions::new().write(true).open(&p).expect("writer");
        w.write_all(&frame(200)).expect("write");
        drop(w); // the last writer leaving is not end-of-file for us
        let mut buf = [0u8; 4096];
        let n = f.read(&mut buf).expect("read");
        assert_eq!(run_reader(&[&buf[..n]]), (vec![200], 0, 0));
        assert!(!sys::wait_readable(&f, Duration::from_millis(20)).expect("poll"));
        let regular = dir.join("regular");
        std::fs::write(&regular, b"x").expect("file");
        assert!(
            open(&regular)
                .expect_err("not a fifo")
                .contains("is not a FIFO")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
