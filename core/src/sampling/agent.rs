//! What the Datadog agent tells the plugin: its sampling rates, as the relay
//! publishes them beside the FIFO (`traefik-datadog.rates`, see
//! [`crate::transport::watch`]), each instance's view of the one rate that
//! concerns it, and the service name as the agent keys it (the span's
//! service is spelled the same way).
//!
//! Format: one `<key>\t<rate>` line per entry of the agent's last
//! `rate_by_service` answer, key `service:<service>,env:<env>` as the agent
//! writes it, rate a decimal in 0..=1. An empty file is an answer without
//! rates. Only the relay writes the file; a file that does not parse whole
//! is rejected whole (the previous rates stay) and the error is kept for the
//! guest to say once.

use super::rate::SampleRate;
use crate::text::truncate;
use crate::transport::Mode;
use crate::transport::watch::{Change, FileSys, Watch};
use std::fmt;

/// The file's name in the FIFO's directory.
pub const FILE_NAME: &str = "traefik-datadog.rates";
/// The key of the agent's rate for services it has no rate for yet.
pub const DEFAULT_KEY: &str = "service:,env:";
/// Entries accepted in one file; the agent answers one per service and env
/// it has seen, far fewer than this.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatesError {
    NotUtf8,
    /// Line (from 1) without a tab between key and rate.
    NoTab(usize),
    /// Line (from 1) whose rate is not a number in 0..=1.
    BadRate(usize),
    TooManyEntries,
}

impl fmt::Display for RatesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("is not UTF-8"),
            Self::NoTab(n) => write!(f, "line {n} is not <key><TAB><rate>"),
            Self::BadRate(n) => write!(f, "line {n}: the rate is not a number in 0..1"),
            Self::TooManyEntries => write!(f, "holds more than {MAX_ENTRIES} entries"),
        }
    }
}

impl std::error::Error for RatesError {}

/// The trace agent's limit on a service name (`pkg/trace/traceutil`).
pub const MAX_SERVICE_LEN: usize = 100;

/// Service names as the agent keeps them: lowercase, at most 100 bytes.
pub fn normalize_service(s: &str) -> String {
    truncate(&s.to_lowercase(), MAX_SERVICE_LEN)
}

/// The agent's key for a service and env: the service as the agent
/// normalises it, the env lowercase.
pub fn key(service: &str, env: &str) -> String {
    format!(
        "service:{},env:{}",
        normalize_service(service),
        env.to_lowercase()
    )
}

/// The file for `rates` (keys with a line break cannot be written and are
/// left out; the agent never makes one).
pub fn encode<'a>(rates: impl IntoIterator<Item = (&'a str, f64)>) -> Vec<u8> {
    let mut out = String::new();
    for (k, r) in rates {
        if k.contains(['\n', '\r', '\t']) || !(0.0..=1.0).contains(&r) {
            continue;
        }
        out.push_str(k);
        out.push('\t');
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Every entry of a file, in file order.
pub fn parse(bytes: &[u8]) -> Result<Vec<(&str, f64)>, RatesError> {
    let text = std::str::from_utf8(bytes).map_err(|_| RatesError::NotUtf8)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        if out.len() == MAX_ENTRIES {
            return Err(RatesError::TooManyEntries);
        }
        let (k, r) = line.split_once('\t').ok_or(RatesError::NoTab(i + 1))?;
        let rate = r
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or(RatesError::BadRate(i + 1))?;
        out.push((k, rate));
    }
    Ok(out)
}

/// The rate for `key`, else the agent's default; `None`: the agent gave
/// neither, so the trace is kept by the default mechanism (dd-trace-cpp).
pub fn pick(entries: &[(&str, f64)], key: &str) -> Option<f64> {
    let find = |k: &str| entries.iter().find(|(e, _)| *e == k).map(|(_, r)| *r);
    find(key).or_else(|| find(DEFAULT_KEY))
}

/// Whether an instance follows the agent's rates: only when nothing
/// configured overrides them (`sampleRate` is the catch-all) and records go
/// through the FIFO, whose mounted directory is the one way files reach the
/// guest. `socket_build`: plugin-net.wasm, where `network` mode has no mount.
pub fn followed(mode: Mode, socket_build: bool, sample_rate: Option<SampleRate>) -> bool {
    mode.uses_pipe(socket_build) && sample_rate.is_none()
}

/// Said once at start when the agent's rates cannot be followed though
/// nothing configured replaces them.
pub fn unfollowed_notice(
    mode: Mode,
    socket_build: bool,
    sample_rate: Option<SampleRate>,
) -> Option<String> {
    if followed(mode, socket_build, sample_rate) || sample_rate.is_some() {
        return None;
    }
    let mode = match mode {
        Mode::Network => "network",
        _ => "log",
    };
    Some(format!(
        "traefik-datadog: mode \"{mode}\" has no mounted directory, so the agent's sampling rates do not reach the plugin: traces matching no samplingRules are kept (rate 1); set sampleRate to sample them"
    ))
}

/// One instance's view of the published rates: looks at the file at most
/// every [`crate::transport::watch::CHECK_EVERY_NS`] and keeps the one rate for its
/// service and env.
#[derive(Debug)]
pub struct Follow<S: FileSys> {
    watch: Watch<S>,
    key: String,
    rate: Option<f64>,
    error: Option<RatesError>,
}

impl<S: FileSys> Follow<S> {
    pub fn new(sys: S, path: String, service: &str, env: &str) -> Self {
        Self {
            watch: Watch::new(sys, path),
            key: key(service, env),
            rate: None,
            error: None,
        }
    }

    /// The agent's rate for this service now, if the agent gave one.
    pub fn rate(&mut self, now_ns: i64) -> Option<f64> {
        match self.watch.poll(now_ns) {
            Change::Unchanged => {}
            // The relay removed it: no answer to follow any more.
            Change::Removed => self.rate = None,
            Change::Updated(bytes) => match parse(&bytes) {
                Ok(entries) => self.rate = pick(&entries, &self.key),
                Err(e) => self.error = Some(e),
            },
        }
        self.rate
    }

    /// A rejected file's error, once.
    pub fn take_error(&mut self) -> Option<RatesError> {
        self.error.take()
    }

    pub fn path(&self) -> &str {
        self.watch.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::watch::{CHECK_EVERY_NS, Stamp};
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn encodes_and_parses_back() {
        let file = encode([
            ("service:edge,env:prod", 0.5),
            (DEFAULT_KEY, 1.0),
            ("service:x\n,env:", 0.1),
            ("service:y,env:", 1.5),
            ("service:z,env:", 0.000_1),
        ]);
        assert_eq!(
            std::str::from_utf8(&file).expect("utf-8"),
            "service:edge,env:prod\t0.5\nservice:,env:\t1\nservice:z,env:\t0.0001\n"
        );
        assert_eq!(
            parse(&file),
            Ok(vec![
                ("service:edge,env:prod", 0.5),
                (DEFAULT_KEY, 1.0),
                ("service:z,env:", 0.000_1)
            ])
        );
        assert_eq!(parse(b""), Ok(vec![]));
    }

    #[test]
    fn rejects_what_the_relay_never_writes() {
        assert_eq!(parse(b"a\t0.5\nb 0.5\n"), Err(RatesError::NoTab(2)));
        assert_eq!(parse(b"a\t1.5\n"), Err(RatesError::BadRate(1)));
        assert_eq!(parse(b"a\tNaN\n"), Err(RatesError::BadRate(1)));
        assert_eq!(parse(b"a\t-0.1\n"), Err(RatesError::BadRate(1)));
        assert_eq!(parse(b"a\t\xff\n"), Err(RatesError::NotUtf8));
        let many = "k\t1\n".repeat(MAX_ENTRIES + 1);
        assert_eq!(parse(many.as_bytes()), Err(RatesError::TooManyEntries));
        assert_eq!(
            parse("k\t1\n".repeat(MAX_ENTRIES).as_bytes()).map(|e| e.len()),
            Ok(MAX_ENTRIES)
        );
        assert_eq!(
            RatesError::BadRate(3).to_string(),
            "line 3: the rate is not a number in 0..1"
        );
    }

    #[test]
    fn own_key_then_agent_default_then_none() {
        let e = [("service:edge,env:prod", 0.5), (DEFAULT_KEY, 0.25)];
        assert_eq!(pick(&e, "service:edge,env:prod"), Some(0.5));
        assert_eq!(pick(&e, "service:other,env:prod"), Some(0.25));
        assert_eq!(pick(&e[..1], "service:other,env:prod"), None);
        assert_eq!(key("Edge", "PROD"), "service:edge,env:prod");
        assert_eq!(key("edge", ""), "service:edge,env:");
    }

    #[test]
    fn followed_only_through_the_mount_and_without_sample_rate() {
        let cfg = |mode, sample_rate: Option<f64>| {
            (
                mode,
                sample_rate.map(|r| SampleRate::new(r).expect("a rate")),
            )
        };
        let followed = |(mode, rate), build| followed(mode, build, rate);
        let unfollowed_notice = |(mode, rate), build| unfollowed_notice(mode, build, rate);
        assert!(followed(cfg(Mode::Auto, None), true));
        assert!(followed(cfg(Mode::Pipe, None), false));
        assert!(followed(cfg(Mode::Network, None), false));
        assert!(!followed(cfg(Mode::Network, None), true));
        assert!(!followed(cfg(Mode::Log, None), false));
        assert!(!followed(cfg(Mode::Pipe, Some(0.5)), false));
        assert_eq!(unfollowed_notice(cfg(Mode::Pipe, None), false), None);
        assert_eq!(unfollowed_notice(cfg(Mode::Log, Some(0.5)), false), None);
        assert_eq!(
            unfollowed_notice(cfg(Mode::Network, None), true).as_deref(),
            Some(
                "traefik-datadog: mode \"network\" has no mounted directory, so the agent's sampling rates do not reach the plugin: traces matching no samplingRules are kept (rate 1); set sampleRate to sample them"
            )
        );
        assert!(
            unfollowed_notice(cfg(Mode::Log, None), false)
                .is_some_and(|n| n.starts_with("traefik-datadog: mode \"log\""))
        );
    }

    /// The file's bytes and modification time.
    type Version = Option<(Vec<u8>, i64)>;

    /// A file that the test rewrites; every stat sees the current version.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Version>>);

    impl FileSys for Shared {
        fn stat(&mut self, _: &str) -> Option<Stamp> {
            self.0.borrow().as_ref().map(|(b, t)| Stamp {
                len: b.len() as u64,
                modified_ns: *t,
            })
        }
        fn read(&mut self, _: &str, _: u64) -> Option<Vec<u8>> {
            self.0.borrow().as_ref().map(|(b, _)| b.clone())
        }
    }

    #[test]
    fn follows_the_file_within_one_check_interval() {
        let file = Shared::default();
        let set = |b: &[u8], t: i64| *file.0.borrow_mut() = Some((b.to_vec(), t));
        let mut f = Follow::new(file.clone(), "/run/dd/r".into(), "edge", "prod");
        // No file: the agent has not answered.
        assert_eq!(f.rate(0), None);
        set(b"service:edge,env:prod\t0.1\n", 1);
        // Not looked at again before the interval.
        assert_eq!(f.rate(CHECK_EVERY_NS - 1), None);
        assert_eq!(f.rate(CHECK_EVERY_NS), Some(0.1));
        set(b"service:edge,env:prod\t0.5\n", 2);
        assert_eq!(f.rate(2 * CHECK_EVERY_NS), Some(0.5));
        // A broken file keeps the last rates and is said once.
        set(b"garbage", 3);
        assert_eq!(f.rate(3 * CHECK_EVERY_NS), Some(0.5));
        assert_eq!(f.take_error(), Some(RatesError::NoTab(1)));
        assert_eq!(f.take_error(), None);
        // Answered without a rate for us or a default: rate 1, default.
        set(b"service:other,env:prod\t0.5\n", 4);
        assert_eq!(f.rate(4 * CHECK_EVERY_NS), None);
        set(b"service:,env:\t0.75\n", 5);
        assert_eq!(f.rate(5 * CHECK_EVERY_NS), Some(0.75));
        *file.0.borrow_mut() = None;
        assert_eq!(f.rate(6 * CHECK_EVERY_NS), None);
        assert_eq!(f.path(), "/run/dd/r");
    }
}
