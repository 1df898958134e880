//! The relay's own log lines, one per message, written whole: text
//! (`<RFC 3339 time> traefik-datadog-relay <level>: <text>`, the default) or
//! JSON (`{"time":…,"level":…,"logger":"traefik-datadog-relay","msg":…}`,
//! `--log-format json`).
//!
//! Info goes to stdout, warn and error to stderr, in both formats:
//! Datadog's container log collection files stderr lines as errors unless
//! the line is JSON whose `level` says otherwise, so the counters line and
//! start-up notes on stdout stay info in text mode too, and in JSON mode
//! every line carries its own level whichever stream it is on.
//!
//! With `--stdin` the relay also copies Traefik's lines to stdout; both go
//! through one [`SharedOut`] behind one lock ([`Stdout`] for the copied
//! lines), so a relay line never lands inside a copied one, and a copied
//! line left without its newline (the end of Traefik's output) does not
//! get the relay's next line glued onto it.
//! Writing never panics (a closed stream is ignored), and [`Throttle`]
//! keeps a flood of the same problem to one line per period.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tdp_core::time::{now_unix_ns, rfc3339_micros};

pub const ENV_LOG_FORMAT: &str = "TRAEFIK_DATADOG_RELAY_LOG_FORMAT";

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses the format of every line from now on (set once, at start).
pub fn set_format(f: Format) {
    JSON.store(f == Format::Json, Relaxed);
}

/// One line in `format`, newline included.
pub fn render(format: Format, time: &str, level: &str, msg: &str) -> String {
    match format {
        Format::Text => format!("{time} traefik-datadog-relay {level}: {msg}\n"),
        Format::Json => {
            let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
            format!(
                "{{\"time\":{},\"level\":{},\"logger\":\"traefik-datadog-relay\",\"msg\":{}}}\n",
                q(time),
                q(level),
                q(msg)
            )
        }
    }
}

pub fn write(level: &str, args: std::fmt::Arguments<'_>) {
    let format = if JSON.load(Relaxed) {
        Format::Json
    } else {
        Format::Text
    };
    let line = render(
        format,
        &rfc3339_micros(now_unix_ns()),
        level,
        &args.to_string(),
    );
    if level == "info" {
        let _ = stdout().own_line(line.as_bytes());
    } else {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// A stream written by two parties: the relay's own lines and the lines it
/// copies (`--stdin`). It remembers whether the last byte written ended a
/// line, so the relay's next line starts on a line of its own even after a
/// copied line that has no newline (yet, or ever: the end of input).
#[derive(Debug)]
pub struct SharedOut<W: Write> {
    out: W,
    mid_line: bool,
}

impl<W: Write> SharedOut<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            mid_line: false,
        }
    }

    /// Writes one of the relay's own lines (`line` ends with its newline),
    /// after a newline when the stream is in the middle of a copied line,
    /// then flushes.
    pub fn own_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.mid_line {
            self.write_all(b"\n")?;
        }
        self.write_all(line)?;
        self.out.flush()
    }

    #[cfg(test)]
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Write for SharedOut<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.out.write(bytes)?;
        if let Some(last) = bytes.get(..n).and_then(<[u8]>::last) {
            self.mid_line = *last != b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

static STDOUT: LazyLock<Mutex<SharedOut<io::Stdout>>> =
    LazyLock::new(|| Mutex::new(SharedOut::new(io::stdout())));

fn stdout() -> std::sync::MutexGuard<'static, SharedOut<io::Stdout>> {
    // A thread that panicked while writing left at worst half a line.
    STDOUT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's stdout as the copied lines reach it: each write goes
/// through the same [`SharedOut`] as the relay's info lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        stdout().write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Under one lock: a relay line cannot land between two pieces.
        stdout().write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        stdout().flush()
    }
}

macro_rules! info {
    ($($t:tt)*) => { $crate::log::write("info", format_args!($($t)*)) };
}

macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write("warn", format_args!($($t)*)) };
}

macro_rules! error {
    ($($t:tt)*) => { $crate::log::write("error", format_args!($($t)*)) };
}

/// Lets one message through per period and counts the ones held back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(n)` when a message may be written now, `n` being how many were
    /// held back since the last one.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    pub fn allow_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// " (N similar messages held back)" or nothing.
pub fn held(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar messages held back)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let t = "2026-12-06T10:00:00.000001Z";
        assert_eq!(
            render(Format::Text, t, "info", "started"),
            "2026-12-06T10:00:00.000001Z traefik-datadog-relay info: started\n"
        );
        assert_eq!(
            render(Format::Json, t, "error", "bad \"x\"\nnext"),
            "{\"time\":\"2026-12-06T10:00:00.000001Z\",\"level\":\"error\",\"logger\":\"traefik-datadog-relay\",\"msg\":\"bad \\\"x\\\"\\nnext\"}\n"
        );
    }

    #[test]
    fn own_lines_start_on_a_line_of_their_own() {
        let mut out = SharedOut::new(Vec::new());
        out.own_line(b"relay 1\n").expect("write");
        out.write_all(b"copied whole\n").expect("write");
        out.own_line(b"relay 2\n").expect("write");
        // The end of input: the last copied line has no newline.
        out.write_all(b"copied, no newline at the end")
            .expect("write");
        out.own_line(b"relay 3\n").expect("write");
        out.write_all(b"").expect("write");
        out.own_line(b"relay 4\n").expect("write");
        assert_eq!(
            String::from_utf8_lossy(out.get_ref()),
            "relay 1\ncopied whole\nrelay 2\ncopied, no newline at the end\nrelay 3\nrelay 4\n"
        );
    }

    #[test]
    fn a_short_write_is_judged_by_what_was_written() {
        /// Takes at most 4 bytes per write.
        struct Short(Vec<u8>);
        impl Write for Short {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(4);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = SharedOut::new(Short(Vec::new()));
        assert_eq!(out.write(b"abc\ndef").expect("write"), 4);
        out.own_line(b"relay\n").expect("write");
        out.write_all(b"def\n").expect("write");
        out.own_line(b"relay\n").expect("write");
        assert_eq!(out.get_ref().0, b"abc\nrelay\ndef\nrelay\n");
    }

    #[test]
    fn throttle_lets_one_through_per_period() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow_at(t0), Some(0));
        assert_eq!(t.allow_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.allow_at(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(held(2), " (2 similar messages held back)");
        assert_eq!(held(0), "");
    }
}
