//! The command line as clap reads it: every flag's value checked and typed
//! by its value parser, so a wrong value is reported as soon as it is read.
//! What the flags mean together, and the environment fallbacks, are decided
//! in [`crate::settings`]; both report errors in the relay's own words.
//!
//! A new flag is a field here (with the value parser of its kind: path,
//! count, duration, ...), a line in [`crate::settings::HELP`] and in
//! relay/README.md's table, and a field of the settings struct of the
//! component it configures, filled in that struct's `from_args`.

use crate::interval::MetricsInterval;
use crate::log::Format;
use crate::settings::{AgentUrl, DEFAULT_STATSD_PORT, DEFAULT_TRACE_PORT, FollowFrom, StatsdUrl};
use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::path::PathBuf;
use std::time::Duration;
use tdp_core::wire::mac::MacKey;

/// The flags of `--help` ([`crate::settings::HELP`], which clap does not
/// generate: its layout is the relay's documentation).
#[derive(Debug, Default, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    allow_hyphen_values = true,
    args_override_self = true
)]
pub struct Args {
    #[arg(short = 'h', long)]
    pub help: bool,
    #[arg(short = 'V', long)]
    pub version: bool,
    #[arg(long)]
    pub check_plugin_config: Option<String>,

    #[arg(long, value_parser = path)]
    pub pipe: Option<PathBuf>,
    #[arg(long, value_parser = group_id)]
    pub pipe_group: Option<u32>,
    #[arg(long, value_parser = path)]
    pub publish_dir: Option<PathBuf>,
    #[arg(long)]
    pub stdin: bool,
    #[arg(long, value_parser = path)]
    pub follow: Option<PathBuf>,
    #[arg(long, value_parser = path)]
    pub state: Option<PathBuf>,
    #[arg(long, value_parser = follow_from)]
    pub follow_from: Option<FollowFrom>,
    #[arg(long, value_parser = udp_address)]
    pub udp: Option<String>,
    #[arg(long, value_parser = udp_key)]
    pub udp_secret: Option<MacKey>,
    #[arg(long, value_parser = udp_key_file)]
    pub udp_secret_file: Option<MacKey>,
    #[arg(long, value_parser = count::<4096>)]
    pub udp_buffer_bytes: Option<usize>,
    #[arg(long)]
    pub echo_records: bool,
    #[arg(long, value_parser = count::<256>)]
    pub max_line_bytes: Option<usize>,
    #[arg(long, value_parser = count::<1>)]
    pub queue_size: Option<usize>,
    #[arg(long, value_parser = count::<4096>)]
    pub queue_bytes: Option<usize>,

    #[arg(long, value_parser = count::<0>)]
    pub learn_bytes: Option<usize>,
    #[arg(long, value_parser = duration)]
    pub learn_ttl: Option<Duration>,

    #[arg(long, value_parser = agent_url)]
    pub agent_url: Option<AgentUrl>,
    #[arg(long)]
    pub no_traces: bool,
    #[arg(long, value_parser = period)]
    pub flush_interval: Option<Duration>,
    #[arg(long, value_parser = count::<1>)]
    pub batch_spans: Option<usize>,
    #[arg(long, value_parser = count::<4096>)]
    pub batch_bytes: Option<usize>,
    #[arg(long, value_parser = count::<1>)]
    pub max_buffered_spans: Option<usize>,
    #[arg(long, value_parser = count::<4096>)]
    pub max_buffered_bytes: Option<usize>,
    #[arg(long, value_parser = period)]
    pub connect_timeout: Option<Duration>,
    #[arg(long, value_parser = period)]
    pub request_timeout: Option<Duration>,
    #[arg(long, value_parser = period)]
    pub payload_deadline: Option<Duration>,
    #[arg(long, value_parser = duration)]
    pub shutdown_timeout: Option<Duration>,

    #[arg(long, value_parser = statsd_url)]
    pub dogstatsd_url: Option<StatsdUrl>,
    #[arg(long, value_parser = metrics_prefix)]
    pub metrics_prefix: Option<String>,
    #[arg(long, value_parser = metrics_interval)]
    pub metrics_interval: Option<MetricsInterval>,
    #[arg(long, value_parser = count::<1>)]
    pub max_samples: Option<usize>,
    #[arg(long, value_parser = count::<1>)]
    pub max_resources: Option<usize>,
    #[arg(long)]
    pub no_request_metrics: bool,
    #[arg(long, value_parser = period)]
    pub telemetry_interval: Option<Duration>,
    #[arg(long)]
    pub no_telemetry: bool,

    #[arg(long, value_parser = listen_address)]
    pub health_listen: Option<String>,
    #[arg(long, value_parser = period)]
    pub unready_after: Option<Duration>,
    #[arg(long, value_parser = log_format)]
    pub log_format: Option<Format>,

    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub service_version: Option<String>,
}

impl Args {
    /// Reads the arguments (without the program name).
    pub fn read(args: &[String]) -> Result<Self, String> {
        Self::try_parse_from(args).map_err(|e| explain(&e))
    }
}

/// clap's error, in the words the relay has always used.
fn explain(e: &clap::Error) -> String {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // "--pipe <PIPE>" names the flag "--pipe".
    let arg = context(ContextKind::InvalidArg);
    let flag = arg.split_whitespace().next().unwrap_or_default();
    let refused = std::error::Error::source(e).and_then(|s| s.downcast_ref::<Refused>());
    match e.kind() {
        ErrorKind::ValueValidation if refused.is_some() => {
            refused.map(|r| r.naming(flag)).unwrap_or_default()
        }
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
            format!("{flag} needs a value")
        }
        ErrorKind::TooManyValues => format!("{flag} takes no value"),
        ErrorKind::UnknownArgument if arg.starts_with('-') => format!("unknown flag {arg}"),
        ErrorKind::UnknownArgument => {
            format!("unexpected argument {arg:?} (flags start with --)")
        }
        _ => e.to_string().trim().to_owned(),
    }
}

/// Why a value was refused, without the name of the flag or environment
/// variable that gave it: the same parsers read both, and
/// [`Refused::naming`] puts the name where the sentence needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `NAME: why`.
    Value(String),
    /// `NAME needs a non-empty path`.
    EmptyPath,
    /// `NAME PATH: why`: what was read from the file at `path` is wrong.
    InFile { path: String, why: String },
}

impl Refused {
    /// The whole message, about the flag or variable `name`.
    pub fn naming(&self, name: &str) -> String {
        match self {
            Self::Value(why) => format!("{name}: {why}"),
            Self::EmptyPath => format!("{name} needs a non-empty path"),
            Self::InFile { path, why } => format!("{name} {path}: {why}"),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.naming("value"))
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(why: String) -> Result<T, Refused> {
    Err(Refused::Value(why))
}

pub fn path(v: &str) -> Result<PathBuf, Refused> {
    if v.is_empty() {
        Err(Refused::EmptyPath)
    } else {
        Ok(PathBuf::from(v))
    }
}

/// A whole number of at least `MIN`; `_` may group digits.
pub fn count<const MIN: usize>(v: &str) -> Result<usize, Refused> {
    match v.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n >= MIN => Ok(n),
        Ok(n) => refuse(format!("{n} is below the minimum {MIN}")),
        Err(_) => refuse(format!("{v:?} is not a whole number")),
    }
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: f64 = num.trim().parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

pub fn duration(v: &str) -> Result<Duration, Refused> {
    parse_duration(v)
        .ok_or_else(|| Refused::Value(format!("{v:?} is not a duration like 500ms, 2s, 1m")))
}

/// A duration something waits for or repeats at: at least 10 ms, so a
/// typo like `1` meant as milliseconds cannot make a thread spin.
pub fn period(v: &str) -> Result<Duration, Refused> {
    match duration(v)? {
        d if d < Duration::from_millis(10) => refuse(format!("{d:?} is too short (at least 10ms)")),
        d => Ok(d),
    }
}

fn metrics_interval(v: &str) -> Result<MetricsInterval, Refused> {
    MetricsInterval::new(duration(v)?).map_err(Refused::Value)
}

fn group_id(v: &str) -> Result<u32, Refused> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| Refused::Value(format!("{v:?} is not a numeric group id (like 65532)")))
}

fn follow_from(v: &str) -> Result<FollowFrom, Refused> {
    match v {
        "beginning" => Ok(FollowFrom::Beginning),
        "end" => Ok(FollowFrom::End),
        other => refuse(format!("{other:?} is not \"beginning\" or \"end\"")),
    }
}

/// `HOST:PORT` to bind (the host may be a name); `example` shows one.
fn address(v: &str, example: &str) -> Result<String, Refused> {
    if v.rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return refuse(format!("{v:?} is not an address and port like {example}"));
    }
    Ok(v.to_owned())
}

fn udp_address(v: &str) -> Result<String, Refused> {
    address(v, "127.0.0.1:8127")
}

/// `--health-listen`: reachable by the kubelet, so not only 127.0.0.1.
pub fn listen_address(v: &str) -> Result<String, Refused> {
    address(v, "0.0.0.0:8128")
}

pub fn log_format(v: &str) -> Result<Format, Refused> {
    match v.trim() {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => refuse(format!("{v:?} is not text or json")),
    }
}

/// A secret's key; the error never shows the secret.
pub fn udp_key(secret: &str) -> Result<MacKey, Refused> {
    MacKey::from_secret(secret).map_err(|e| Refused::Value(format!("the secret {e}")))
}

pub fn udp_key_file(path: &str) -> Result<MacKey, Refused> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Refused::Value(format!("cannot read the secret from {path:?}: {e}")))?;
    udp_key(&text).map_err(|e| match e {
        Refused::Value(why) => Refused::InFile {
            path: path.to_owned(),
            why,
        },
        other => other,
    })
}

fn metrics_prefix(p: &str) -> Result<String, Refused> {
    if p.is_empty()
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        || !p.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return refuse(format!(
            "{p:?} must start with a letter and hold only letters, digits, '_' and '.'"
        ));
    }
    Ok(p.to_owned())
}

/// `host:port`, `[v6]:port`; the port may be left out.
fn host_port(v: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (v, None),
        }
    };
    let host = host.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let port = match port {
        Some(p) => p
            .trim_end_matches('/')
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

fn unix_path(rest: &str) -> Option<PathBuf> {
    rest.starts_with('/').then(|| PathBuf::from(rest))
}

pub fn agent_url(v: &str) -> Result<AgentUrl, Refused> {
    let v = v.trim();
    let parsed = if let Some(rest) = v.strip_prefix("http://") {
        host_port(rest, DEFAULT_TRACE_PORT).map(|(host, port)| AgentUrl::Http { host, port })
    } else if let Some(rest) = v.strip_prefix("unix://") {
        unix_path(rest).map(AgentUrl::Unix)
    } else {
        None
    };
    parsed.ok_or_else(|| {
        Refused::Value(format!(
            "{v:?} is not http://HOST:PORT or unix:///ABSOLUTE/PATH"
        ))
    })
}

pub fn statsd_url(v: &str) -> Result<StatsdUrl, Refused> {
    let v = v.trim();
    let parsed = if let Some(rest) = v.strip_prefix("udp://") {
        host_port(rest, DEFAULT_STATSD_PORT).map(|(host, port)| StatsdUrl::Udp { host, port })
    } else if let Some(rest) = v
        .strip_prefix("unix://")
        .or_else(|| v.strip_prefix("unixgram://"))
    {
        unix_path(rest).map(StatsdUrl::Unix)
    } else {
        None
    };
    parsed.ok_or_else(|| {
        Refused::Value(format!(
            "{v:?} is not udp://HOST:PORT or unix:///ABSOLUTE/PATH"
        ))
    })
}

/// A port number from the environment (flags give ports inside URLs).
pub fn port(v: &str) -> Result<u16, Refused> {
    v.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Refused::Value(format!("{v:?} is not a port number (1-65535)")))
}
