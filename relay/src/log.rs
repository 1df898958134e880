//! Diagnostics on stderr, one line each: `<RFC 3339 time> traefik-datadog-relay <level>: <text>`.
//! Writing never panics (a closed stderr is ignored), and [`Throttle`]
//! keeps a flood of the same problem to one line per period.

use std::io::Write;
use std::time::{Duration, Instant};
use tdp_core::time::{now_unix_ns, rfc3339_micros};

pub fn write(level: &str, args: std::fmt::Arguments<'_>) {
    let line = format!(
        "{} traefik-datadog-relay {level}: {args}\n",
        rfc3339_micros(now_unix_ns())
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
