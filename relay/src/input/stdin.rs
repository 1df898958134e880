//! `--stdin`: Traefik's log output on stdin. The plugin's record lines are
//! consumed (copied too with `--echo-records`); every other line goes to
//! stdout byte for byte, so the relay can sit in the log pipeline.
//!
//! When the queue is full the relay stops reading stdin rather than drop
//! records: the pipe's buffer fills and Traefik's log writes wait, as they
//! would for any slow consumer of its output (or a relay that stopped).

use super::lines::{LineSink, LineSplitter, Parsed, is_ours, parse_line};
use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use std::io::{self, Read, Write};
use std::thread::JoinHandle;
use std::time::Duration;

pub fn start(queue: Queue, echo: bool, max_line: usize) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("input-stdin".into())
        .spawn(move || {
            let mut guard = crate::health::global().watch("input stdin");
            let stdin = io::stdin();
            let mut sink = Passthrough::new(queue, echo, LineOut::new(crate::log::Stdout));
            run(&mut stdin.lock(), &mut sink, max_line);
            // The last line, if it has no newline, before the relay's own.
            drop(sink);
            info!("stdin: end of input");
            guard.ending("end of input (Traefik's output closed)");
        })
}

/// Traefik's copied lines, buffered and written to stdout whole lines at a
/// time, each write under the lock of [`crate::log::Stdout`]: the relay's
/// own info lines take the same lock, so neither lands inside the other,
/// and one of them after a line without its newline starts on a new line
/// (the newline is the relay's: the copied bytes are unchanged). A piece of a
/// line waits for its end, up to [`LineOut::MAX_TAIL`] (a longer line is
/// written in pieces, and only such a line can be split).
pub struct LineOut<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> LineOut<W> {
    pub const MAX_TAIL: usize = 64 * 1024;

    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Writes what ends a line (everything past [`Self::MAX_TAIL`]).
    fn drain(&mut self, all: bool) -> io::Result<()> {
        let end = if all || self.buf.len() > Self::MAX_TAIL {
            self.buf.len()
        } else {
            match memchr::memrchr(b'\n', &self.buf) {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        if end == 0 {
            return Ok(());
        }
        let r = self
            .out
            .write_all(&self.buf[..end])
            .and_then(|()| self.out.flush());
        self.buf.drain(..end);
        r
    }

    /// Everything written so far, the unfinished line included.
    #[cfg(test)]
    pub fn written(&mut self) -> &W {
        let _ = self.drain(true);
        &self.out
    }
}

impl<W: Write> Write for LineOut<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= 64 * 1024 {
            self.drain(false)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain(false)
    }
}

impl<W: Write> Drop for LineOut<W> {
    /// The last line may lack its newline (end of input): written as is.
    fn drop(&mut self) {
        let _ = self.drain(true);
    }
}

/// Reads `input` to its end through `sink`.
pub fn run<W: Write>(input: &mut impl Read, sink: &mut Passthrough<W>, max_line: usize) {
    let mut splitter = LineSplitter::new(max_line);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                splitter.feed(&buf[..n], sink);
                sink.flush();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error!("stdin: {e}; no more input from stdin");
                break;
            }
        }
    }
    splitter.finish(sink);
    sink.flush();
}

pub struct Passthrough<W: Write> {
    queue: Queue,
    /// Records of the current read, handed on together.
    batch: Vec<Envelope>,
    echo: bool,
    out: W,
    /// The current over-long line is the plugin's (skip it) or not (copy it).
    long_ours: bool,
    broken: bool,
    throttle: Throttle,
}

impl<W: Write> Passthrough<W> {
    pub fn new(queue: Queue, echo: bool, out: W) -> Self {
        Self {
            queue,
            batch: Vec::new(),
            echo,
            out,
            long_ours: false,
            broken: false,
            throttle: Throttle::new(Duration::from_secs(10)),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if let Err(e) = self.out.write_all(bytes) {
            self.broken = true;
            warn!("stdout: {e}; log lines are no longer copied through");
        }
    }

    /// Flushes stdout, then hands on the records read so far, waiting for
    /// room (the other lines are not held up by that wait).
    fn flush(&mut self) {
        if !self.broken && self.out.flush().is_err() {
            self.broken = true;
            warn!("stdout closed; log lines are no longer copied through");
        }
        if !self.batch.is_empty() {
            self.queue
                .push(Source::Stdin, std::mem::take(&mut self.batch));
        }
    }

    fn malformed(&mut self, why: &str, line: &[u8]) {
        self.queue.malformed(Source::Stdin);
        if let Some(n) = self.throttle.allow() {
            let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
            warn!("stdin: skipped a record line: {why}: {shown:?}{}", held(n));
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> LineSink for Passthrough<W> {
    fn line(&mut self, line: &[u8]) {
        match parse_line(line) {
            Parsed::Other => self.write(line),
            Parsed::Record(e) => {
                self.batch.push(*e);
                if self.echo {
                    self.write(line);
                }
            }
            Parsed::Malformed(why) => {
                self.malformed(&why, line);
                if self.echo {
                    self.write(line);
                }
            }
        }
    }

    fn long_start(&mut self, head: &[u8], _complete: bool) {
        self.long_ours = is_ours(head);
        if self.long_ours {
            self.malformed("longer than --max-line-bytes", head);
        }
        if !self.long_ours || self.echo {
            self.write(head);
        }
    }

    fn long_more(&mut self, chunk: &[u8], _complete: bool) {
        if !self.long_ours || self.echo {
            self.write(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;
    use crate::telemetry::Counters;
    use std::sync::Arc;
    use tdp_core::wire::fallback;

    fn json_line(status: u16) -> String {
        let m = serde_json::to_string(&fallback::encode(&record(status))).expect("s");
        format!(
            "{{\"level\":\"info\",\"entryPointName\":\"web\",\"routerName\":\"r@file\",\"middlewareName\":\"dd@file\",\"middlewareType\":\"wasm\",\"time\":\"2026-11-25T14:41:10Z\",\"message\":{m}}}\n"
        )
    }

    fn feed(input: &[u8], echo: bool, max: usize) -> (Vec<u8>, Vec<u16>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(100, counters.clone());
        let mut sink = Passthrough::new(q, echo, Vec::new());
        // Feed in awkward 7-byte reads.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(7).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        run(&mut Slow(input), &mut sink, max);
        let out = sink.into_inner();
        let statuses = rx.try_iter().flatten().map(|e| e.record.status).collect();
        (out, statuses, counters)
    }

    #[test]
    fn consumes_records_and_copies_everything_else_exactly() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"level\":\"info\",\"message\":\"Starting\"}\n");
        input.extend_from_slice(json_line(200).as_bytes());
        input.extend_from_slice(b"\xff\xfe binary \x1b[0m junk\r\n");
        input.extend_from_slice(json_line(503).as_bytes());
        input.extend_from_slice(
            b"2026-11-25T14:41:10Z INF {\"marker\":\"traefik-datadog\",\"schema\":1,\"cut\n",
        );
        // A bare record is not a line the plugin's log call writes: copied.
        input.extend_from_slice(b"{\"marker\":\"traefik-datadog\",\"schema\":1}\n");
        input.extend_from_slice(b"last line without newline");
        let (out, statuses, counters) = feed(&input, false, 64 * 1024);
        assert_eq!(statuses, vec![200, 503]);
        assert_eq!(
            out,
            b"{\"level\":\"info\",\"message\":\"Starting\"}\n\xff\xfe binary \x1b[0m junk\r\n{\"marker\":\"traefik-datadog\",\"schema\":1}\nlast line without newline"
        );
        let s = counters.snapshot();
        assert_eq!(s.received[Source::Stdin as usize], 2);
        assert_eq!(s.malformed[Source::Stdin as usize], 1);
    }

    #[test]
    fn copied_lines_leave_whole() {
        /// Records each write it gets.
        #[derive(Default)]
        struct Writes(Vec<Vec<u8>>);
        impl Write for Writes {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = LineOut::new(Writes::default());
        w.write_all(b"one\ntw").expect("write");
        w.flush().expect("flush");
        w.write_all(b"o\nthree").expect("write");
        w.flush().expect("flush");
        assert_eq!(
            w.written().0,
            vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn echo_copies_record_lines_too() {
        let input = json_line(200);
        let (out, statuses, _) = feed(input.as_bytes(), true, 64 * 1024);
        assert_eq!(statuses, vec![200]);
        assert_eq!(out, input.as_bytes());
    }

    #[test]
    fn long_lines_pass_through_unless_they_are_records() {
        let long_other = format!("{}\n", "x".repeat(5000));
        let long_ours = format!("{}{}\n", json_line(200).trim_end(), " padding".repeat(1000));
        let input = format!("{long_other}{long_ours}{}", json_line(404));
        let (out, statuses, counters) = feed(input.as_bytes(), false, 2048);
        assert_eq!(out, long_other.as_bytes());
        assert_eq!(statuses, vec![404]);
        assert_eq!(counters.snapshot().malformed[Source::Stdin as usize], 1);
    }
}
