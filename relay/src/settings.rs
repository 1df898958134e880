//! Command-line flags and Datadog environment variables, validated once into
//! [`Settings`]. Flags override environment variables; every error names the
//! flag or variable it is about.

use crate::args::Args;
use crate::interval::MetricsInterval;
use std::path::PathBuf;
use std::time::Duration;
use tdp_core::metrics::cardinality::DEFAULT_MAX_RESOURCES;
use tdp_core::metrics::dogstatsd::{DEFAULT_MAX_SAMPLES, DEFAULT_PREFIX};
use tdp_core::wire::mac::MacKey;

pub const DEFAULT_TRACE_PORT: u16 = 8126;
pub const DEFAULT_STATSD_PORT: u16 = 8125;
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Records the input queue holds by default. Inputs wait when it is full
/// (the FIFO's buffer and the plugin's spool, the socket buffer, stdin's
/// writer and the file hold what arrives meanwhile), so it only has to keep
/// the pipeline busy between two looks of a waiting input (2 ms, a few
/// hundred records). More only holds more decoded records in memory (~1.6
/// KiB each, measured: 10,000 took the relay's peak RSS from 16 to 25 MiB
/// on an unpaced FIFO), not more throughput.
pub const DEFAULT_QUEUE_SIZE: usize = 4096;
/// Bytes of records the input queue holds by default: ~30,000 typical
/// records (~550 bytes each), so --queue-size bounds first unless records are
/// large (log lines up to --max-line-bytes would otherwise allow 640 MiB).
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;
/// The UDP socket's receive buffer asked for: ~6,500 records of ~400 bytes
/// (the kernel charges ~1,280 bytes each and grants twice the size asked),
/// a third of a second of a busy Traefik while the relay is busy, at no
/// cost while it is empty.
pub const DEFAULT_UDP_BUFFER_BYTES: usize = 4 << 20;
pub const ENV_MAX_RESOURCES: &str = "TRAEFIK_DATADOG_RELAY_MAX_RESOURCES";
pub const ENV_UDP_SECRET: &str = "TRAEFIK_DATADOG_RELAY_UDP_SECRET";
pub const ENV_UDP_SECRET_FILE: &str = "TRAEFIK_DATADOG_RELAY_UDP_SECRET_FILE";

/// Where the trace agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUrl {
    Http { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for AgentUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http { host, port } if host.contains(':') => write!(f, "http://[{host}]:{port}"),
            Self::Http { host, port } => write!(f, "http://{host}:{port}"),
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Where DogStatsD listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdUrl {
    Udp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for StatsdUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            Self::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Where `--follow` starts in a file that exists at the first start (no
/// state file yet). Files that appear or replace it later are always read
/// from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowFrom {
    Beginning,
    End,
}

/// What `--follow` reads, where it keeps its position and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    pub path: PathBuf,
    /// `--state`, by default `<path>.relay-offset`.
    pub state: PathBuf,
    pub from: FollowFrom,
}

/// Values for records that carry none (`DD_ENV`, `DD_SERVICE`, `DD_VERSION`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub env: String,
    pub service: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub pipe: Option<PathBuf>,
    /// Where the agent's sampling rates are published for the plugin.
    pub publish_dir: Option<PathBuf>,
    pub stdin: bool,
    /// `--follow` and its companions, which mean nothing without it.
    pub follow: Option<FollowSettings>,
    pub udp: Option<String>,
    /// `--udp-secret`: only frames with this key's MAC are read.
    pub udp_key: Option<MacKey>,
    /// `--udp-buffer-bytes`: the socket receive buffer asked for.
    pub udp_buffer_bytes: usize,
    /// `--pipe-group`: the FIFO is 0620 with this group, instead of 0600.
    pub pipe_group: Option<u32>,
    pub echo_records: bool,
    pub max_line_bytes: usize,
    pub queue_size: usize,
    /// Response size that makes a route large (0: learn nothing).
    pub learn_bytes: u64,
    /// How long a route stays learned after its last large response.
    pub learn_ttl: Duration,
    pub queue_bytes: usize,

    pub agent: AgentUrl,
    pub traces: bool,
    pub flush_interval: Duration,
    pub batch_spans: usize,
    pub batch_bytes: usize,
    pub max_buffered_spans: usize,
    pub max_buffered_bytes: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub payload_deadline: Duration,
    pub shutdown_timeout: Duration,

    pub statsd: StatsdUrl,
    pub metrics_prefix: String,
    pub metrics_interval: MetricsInterval,
    pub request_metrics: bool,
    pub max_samples: usize,
    pub max_resources: usize,
    pub telemetry_interval: Duration,
    pub telemetry: bool,

    pub defaults: Defaults,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pipe: None,
            publish_dir: None,
            stdin: false,
            follow: None,
            udp: None,
            udp_key: None,
            udp_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            pipe_group: None,
            echo_records: false,
            max_line_bytes: 64 * 1024,
            queue_size: DEFAULT_QUEUE_SIZE,
            learn_bytes: 1 << 20,
            learn_ttl: Duration::from_secs(3600),
            queue_bytes: DEFAULT_QUEUE_BYTES,
            agent: AgentUrl::Http {
                host: DEFAULT_HOST.to_owned(),
                port: DEFAULT_TRACE_PORT,
            },
            traces: true,
            flush_interval: Duration::from_secs(1),
            batch_spans: 1000,
            batch_bytes: 2_000_000,
            max_buffered_spans: 100_000,
            max_buffered_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            payload_deadline: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(5),
            statsd: StatsdUrl::Udp {
                host: DEFAULT_HOST.to_owned(),
                port: DEFAULT_STATSD_PORT,
            },
            metrics_prefix: DEFAULT_PREFIX.to_owned(),
            metrics_interval: MetricsInterval::DEFAULT,
            request_metrics: true,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_resources: DEFAULT_MAX_RESOURCES,
            telemetry_interval: Duration::from_secs(10),
            telemetry: true,
            defaults: Defaults::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Box<Settings>),
    Help,
    Version,
    /// Validate a plugin configuration (the middleware's options as JSON)
    /// with the plugin's own rules, for CI checks of Middleware manifests.
    CheckPluginConfig(String),
}

pub const HELP: &str = "\
traefik-datadog-relay: reads the records of the Traefik Datadog plugin and
sends one span per request to the Datadog trace agent (/v0.4/traces) and
request metrics to DogStatsD, the way ingress-nginx's Datadog tracer did.

USAGE:
    traefik-datadog-relay [INPUTS] [OPTIONS]
    traefik ... | traefik-datadog-relay --stdin        (Traefik log pipeline)
    traefik-datadog-relay --check-plugin-config JSON   (validate a Middleware's
                            plugin options with the plugin's own rules; prints
                            the problems, exits 1 when there are any)

INPUTS (at least one; any combination, each read by its own thread):
    --pipe PATH             Read binary frames from the FIFO the plugin writes
                            (plugin `pipePath`, through settings.mounts). The
                            FIFO is created with mode 0600 if missing (relay
                            and Traefik run as the same user, as in the Helm
                            chart's pod); an existing FIFO open to more is
                            narrowed to that mode (or reported when it cannot
                            be). It is opened read-write, so the relay never
                            sees end-of-file and writers never fail while the
                            relay runs.
    --pipe-group GID        Traefik runs as another user in group GID: the
                            FIFO gets that group and mode 0620 (the group may
                            write, nobody else may open it).
    --publish-dir DIR       Where files for the plugin are published, each
                            replaced atomically: traefik-datadog.rates (the
                            agent's sampling rates, on each new answer) and
                            traefik-datadog.routes (learned large routes): the
                            directory the plugin has mounted. Default: the
                            directory of --pipe; without --pipe, none.
    --stdin                 Read Traefik's log output on stdin. Lines holding a
                            plugin record (console or JSON log format) are
                            consumed; every other line is copied to stdout
                            unchanged.
    --follow PATH           Follow a Traefik log file like `tail -F`: waits for
                            it to exist, survives rotation by rename and
                            copy-truncate, waits for a partial last line.
    --state PATH            Where --follow keeps its position (device, inode,
                            offset, checksum of the head), written after records
                            are handed on. Default: <follow PATH>.relay-offset.
    --follow-from WHERE     beginning|end: where to start in a file that already
                            exists when there is no state file yet (default end).
                            New and rotated files are always read from the start.
    --udp ADDR              Receive datagrams of one binary frame each
                            (plugin network mode), e.g. 127.0.0.1:8127. Bind
                            it to a pod-local address (127.0.0.1): anyone who
                            reaches the port can send records unless
                            --udp-secret is set.
    --udp-secret SECRET     Accept only frames sealed with this secret (the
                            plugin's `relaySecret`, at least 32 characters):
                            frames without a MAC or with another key's are
                            dropped and counted (udp.unauthenticated).
                            Prefer the file form: arguments are visible to
                            other processes. Env TRAEFIK_DATADOG_RELAY_UDP_SECRET.
    --udp-secret-file PATH  The same, read from a file (a mounted Kubernetes
                            Secret; surrounding whitespace ignored). Env
                            TRAEFIK_DATADOG_RELAY_UDP_SECRET_FILE.
    --udp-buffer-bytes N    Socket receive buffer asked for (default 4194304):
                            the datagrams that wait while the relay is busy.
                            The kernel charges ~1,280 bytes per record and
                            reports twice the size asked, so 4 MiB holds ~6,500
                            records. Capped at net.core.rmem_max unless the
                            relay has CAP_NET_ADMIN; what overflows is dropped
                            and counted (udp.receive_buffer).
    --echo-records          Also copy the plugin's record lines to stdout.
    --max-line-bytes N      Longest log line read (default 65536). Longer lines
                            are skipped and counted (copied through if they are
                            not the plugin's).
    --queue-size N          Records held between inputs and the pipeline
                            (default 4096). When it is full the inputs stop
                            reading: the FIFO's writers spool, stdin's writer
                            waits, --follow's file keeps the lines, UDP
                            datagrams wait in the socket buffer. Nothing read
                            is dropped, except what is held when the relay
                            stops (counted queue_full).
    --queue-bytes N         ... and bytes those records hold (estimated; default
                            16777216, 16 MiB), whichever is reached first. A
                            record larger than N alone still passes when the
                            queue is empty, so nothing waits forever.

LEARNED ROUTES (with --pipe or --publish-dir):
    --learn-bytes N         A response of at least N bytes (its Content-Length)
                            makes its route (host + path directory) large: the
                            relay publishes the route beside the FIFO
                            (traefik-datadog.routes) and the plugin stops
                            buffering its responses (default 1048576, 1 MiB;
                            0 turns learning off).
    --learn-ttl DUR         A route stays learned this long after its last
                            large response (default 60m).

TRACES:
    --agent-url URL         Trace agent: http://HOST:PORT or unix:///PATH.
                            Default from DD_TRACE_AGENT_URL, else
                            http://$DD_AGENT_HOST:$DD_TRACE_AGENT_PORT, else
                            http://127.0.0.1:8126.
    --no-traces             Do not send spans (metrics only).
    --flush-interval DUR    Send spans at least this often (default 1s).
    --batch-spans N         Send a payload when it holds N spans (default 1000).
    --batch-bytes N         ... or N bytes of msgpack (default 2000000).
    --max-buffered-spans N  Spans held while the agent is down or slow
                            (default 100000) ...
    --max-buffered-bytes N  ... and bytes of msgpack held (default 16777216,
                            16 MiB, about 30000 spans of ~550 bytes), whichever
                            is reached first; beyond it the oldest payloads are
                            dropped and counted.
    --connect-timeout DUR   Agent connect timeout (default 2s).
    --request-timeout DUR   The most one attempt to send a payload may take:
                            connect, send, answer (default 10s).
    --payload-deadline DUR  The most a payload may take, retries and backoff
                            included (default 60s). 408, 429, 5xx and no answer
                            are retried with exponential backoff (100ms doubling
                            to 5s, jittered, at most 30 attempts); other 4xx
                            (413 included) are not. Dropped payloads are counted
                            `rejected`.
    --shutdown-timeout DUR  On SIGTERM/SIGINT: time to flush what is held
                            (default 5s); then remaining spans are counted as
                            dropped and the relay exits 0.

METRICS (DogStatsD):
    --dogstatsd-url URL     udp://HOST:PORT or unix:///PATH (datagram socket).
                            Default from DD_DOGSTATSD_URL, else
                            udp://$DD_AGENT_HOST:$DD_DOGSTATSD_PORT, else
                            udp://127.0.0.1:8125.
    --metrics-prefix P      Metric name prefix (default traefik_datadog):
                            P.request.hits, P.request.errors (counts),
                            P.request.duration (distribution, seconds), tagged
                            env, service, version, resource, http.method,
                            http.status_code, http.status_class.
    --metrics-interval DUR  Aggregation interval of request metrics; must divide
                            10s (default 2s, as Datadog's own clients).
    --max-samples N         Durations kept per series and interval before a
                            uniform sample is sent with its rate (default 4096).
    --max-resources N       Distinct resource tag values per interval (default
                            1000; env TRAEFIK_DATADOG_RELAY_MAX_RESOURCES).
                            Later new values are tagged resource:other and
                            counted (resources_folded); spans keep the real
                            resource. Methods outside GET HEAD POST PUT DELETE
                            CONNECT OPTIONS TRACE PATCH are tagged
                            http.method:other.
    --no-request-metrics    Do not send request metrics (the agent computes
                            trace.* metrics from the spans anyway).
    --telemetry-interval DUR  Relay's own counters, as P.relay.* metrics and a
                            line on stderr (default 10s; also at exit).
    --no-telemetry          Do not send P.relay.* metrics (stderr line stays).

RECORD DEFAULTS (fill records whose field is empty; flags override env):
    --env ENV               Default DD_ENV.
    --service NAME          Default DD_SERVICE.
    --service-version VER   Default DD_VERSION.

    -h, --help              This text.
    -V, --version           The relay's version.

DURATIONS are like 500ms, 2s, 1m (a bare number is seconds).

ENVIRONMENT:
    DD_AGENT_HOST           Host of both the trace agent and DogStatsD.
    DD_TRACE_AGENT_PORT     Trace agent port (default 8126).
    DD_TRACE_AGENT_URL      Trace agent URL (overrides the two above).
    DD_DOGSTATSD_PORT       DogStatsD port (default 8125).
    DD_DOGSTATSD_URL        DogStatsD URL (overrides host and port).
    DD_ENV, DD_SERVICE, DD_VERSION  Record defaults (see above).
    TRAEFIK_DATADOG_RELAY_MAX_RESOURCES, TRAEFIK_DATADOG_RELAY_UDP_SECRET,
    TRAEFIK_DATADOG_RELAY_UDP_SECRET_FILE  As their flags (flags win).

SIGNALS: SIGTERM or SIGINT stops the inputs, flushes what is held within
--shutdown-timeout, prints the final counters and exits 0; a second signal
exits at once.
";

/// Parses the arguments (without the program name). `env` looks up an
/// environment variable.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    let a = Args::read(args)?;
    if a.help {
        return Ok(Command::Help);
    }
    if a.version {
        return Ok(Command::Version);
    }
    if let Some(json) = a.check_plugin_config {
        return Ok(Command::CheckPluginConfig(json));
    }
    let mut s = Settings::default();
    let path_of = |v: Option<String>, flag: &str| opt(v, flag, |f: &str, v: &str| path(f, v));
    let count_of = |v: Option<String>, flag: &str, min: usize, default: usize| {
        Ok::<_, String>(opt(v, flag, |f: &str, v: &str| count(f, v, min))?.unwrap_or(default))
    };
    let duration_of = |v: Option<String>, flag: &str, default: Duration| {
        Ok::<_, String>(opt(v, flag, |f: &str, v: &str| duration(f, v))?.unwrap_or(default))
    };

    s.pipe = path_of(a.pipe, "--pipe")?;
    s.pipe_group = opt(a.pipe_group, "--pipe-group", |f: &str, v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{f}: {v:?} is not a numeric group id (like 65532)"))
    })?;
    s.publish_dir = path_of(a.publish_dir, "--publish-dir")?;
    s.stdin = a.stdin;
    let follow_flag = path_of(a.follow, "--follow")?;
    let state_flag = path_of(a.state, "--state")?;
    let follow_from = opt(a.follow_from, "--follow-from", |f: &str, v: &str| match v {
        "beginning" => Ok(FollowFrom::Beginning),
        "end" => Ok(FollowFrom::End),
        other => Err(format!("{f}: {other:?} is not \"beginning\" or \"end\"")),
    })?
    .unwrap_or(FollowFrom::End);
    s.udp = opt(a.udp, "--udp", |f: &str, v: &str| {
        if v.rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(format!(
                "{f}: {v:?} is not an address and port like 127.0.0.1:8127"
            ));
        }
        Ok(v.to_owned())
    })?;
    // Given both flags, the secret file is used.
    let secret_flag = match opt(a.udp_secret_file, "--udp-secret-file", udp_key_file)? {
        Some(k) => Some(k),
        None => opt(a.udp_secret, "--udp-secret", udp_key)?,
    };
    s.echo_records = a.echo_records;
    s.max_line_bytes = count_of(a.max_line_bytes, "--max-line-bytes", 256, s.max_line_bytes)?;
    s.queue_size = count_of(a.queue_size, "--queue-size", 1, s.queue_size)?;
    s.queue_bytes = count_of(a.queue_bytes, "--queue-bytes", 4096, s.queue_bytes)?;
    let udp_buffer_flag = a.udp_buffer_bytes.is_some();
    s.udp_buffer_bytes = count_of(
        a.udp_buffer_bytes,
        "--udp-buffer-bytes",
        4096,
        s.udp_buffer_bytes,
    )?;
    s.learn_bytes = count_of(a.learn_bytes, "--learn-bytes", 0, s.learn_bytes as usize)? as u64;
    s.learn_ttl = duration_of(a.learn_ttl, "--learn-ttl", s.learn_ttl)?;

    let agent_flag = opt(a.agent_url, "--agent-url", agent_url)?;
    s.traces = !a.no_traces;
    s.flush_interval = duration_of(a.flush_interval, "--flush-interval", s.flush_interval)?;
    s.batch_spans = count_of(a.batch_spans, "--batch-spans", 1, s.batch_spans)?;
    s.batch_bytes = count_of(a.batch_bytes, "--batch-bytes", 4096, s.batch_bytes)?;
    s.max_buffered_spans = count_of(
        a.max_buffered_spans,
        "--max-buffered-spans",
        1,
        s.max_buffered_spans,
    )?;
    s.max_buffered_bytes = count_of(
        a.max_buffered_bytes,
        "--max-buffered-bytes",
        4096,
        s.max_buffered_bytes,
    )?;
    s.connect_timeout = duration_of(a.connect_timeout, "--connect-timeout", s.connect_timeout)?;
    s.request_timeout = duration_of(a.request_timeout, "--request-timeout", s.request_timeout)?;
    s.payload_deadline = duration_of(a.payload_deadline, "--payload-deadline", s.payload_deadline)?;
    s.shutdown_timeout = duration_of(a.shutdown_timeout, "--shutdown-timeout", s.shutdown_timeout)?;

    let statsd_flag = opt(a.dogstatsd_url, "--dogstatsd-url", statsd_url)?;
    if let Some(p) = a.metrics_prefix {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            || !p.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(format!(
                "--metrics-prefix: {p:?} must start with a letter and hold only letters, digits, '_' and '.'"
            ));
        }
        s.metrics_prefix = p;
    }
    let metrics_interval = duration_of(
        a.metrics_interval,
        "--metrics-interval",
        MetricsInterval::DEFAULT.get(),
    )?;
    s.max_samples = count_of(a.max_samples, "--max-samples", 1, s.max_samples)?;
    let max_resources_flag = opt(a.max_resources, "--max-resources", |f: &str, v: &str| {
        count(f, v, 1)
    })?;
    s.request_metrics = !a.no_request_metrics;
    s.telemetry_interval = duration_of(
        a.telemetry_interval,
        "--telemetry-interval",
        s.telemetry_interval,
    )?;
    s.telemetry = !a.no_telemetry;
    let (env_flag, service_flag, version_flag) = (a.env, a.service, a.service_version);

    if s.pipe.is_none() && !s.stdin && follow_flag.is_none() && s.udp.is_none() {
        return Err("no input: give at least one of --pipe, --stdin, --follow, --udp".to_owned());
    }
    s.follow = match (follow_flag, state_flag) {
        (None, Some(_)) => return Err("--state is only used with --follow".to_owned()),
        (None, None) => None,
        (Some(path), state) => Some(FollowSettings {
            state: state.unwrap_or_else(|| {
                let mut p = path.clone().into_os_string();
                p.push(".relay-offset");
                PathBuf::from(p)
            }),
            path,
            from: follow_from,
        }),
    };
    s.metrics_interval =
        MetricsInterval::new(metrics_interval).map_err(|e| format!("--metrics-interval: {e}"))?;
    for (flag, d) in [
        ("--flush-interval", s.flush_interval),
        ("--connect-timeout", s.connect_timeout),
        ("--request-timeout", s.request_timeout),
        ("--payload-deadline", s.payload_deadline),
        ("--telemetry-interval", s.telemetry_interval),
    ] {
        if d < Duration::from_millis(10) {
            return Err(format!("{flag}: {d:?} is too short (at least 10ms)"));
        }
    }
    if s.max_buffered_bytes < s.batch_bytes {
        return Err(format!(
            "--max-buffered-bytes: {} is smaller than --batch-bytes {}",
            s.max_buffered_bytes, s.batch_bytes
        ));
    }
    if s.max_buffered_spans < s.batch_spans {
        return Err(format!(
            "--max-buffered-spans: {} is smaller than --batch-spans {}",
            s.max_buffered_spans, s.batch_spans
        ));
    }

    s.max_resources = match max_resources_flag {
        Some(n) => n,
        None => match env(ENV_MAX_RESOURCES).filter(|v| !v.trim().is_empty()) {
            Some(v) => count(ENV_MAX_RESOURCES, &v, 1)?,
            None => DEFAULT_MAX_RESOURCES,
        },
    };
    s.udp_key = match secret_flag {
        Some(k) => Some(k),
        None => match (
            env(ENV_UDP_SECRET).filter(|v| !v.trim().is_empty()),
            env(ENV_UDP_SECRET_FILE).filter(|v| !v.trim().is_empty()),
        ) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{ENV_UDP_SECRET} and {ENV_UDP_SECRET_FILE} are both set; keep one"
                ));
            }
            (Some(v), None) => Some(udp_key(ENV_UDP_SECRET, &v)?),
            (None, Some(p)) => Some(udp_key_file(ENV_UDP_SECRET_FILE, &p)?),
            (None, None) => None,
        },
    };
    if udp_buffer_flag && s.udp.is_none() {
        return Err("--udp-buffer-bytes is only used with --udp".to_owned());
    }
    if s.udp_key.is_some() && s.udp.is_none() {
        return Err("--udp-secret is only used with --udp".to_owned());
    }
    if s.pipe_group.is_some() && s.pipe.is_none() {
        return Err("--pipe-group is only used with --pipe".to_owned());
    }

    let host = env("DD_AGENT_HOST").filter(|h| !h.trim().is_empty());
    let host_of = |h: &Option<String>| h.clone().unwrap_or_else(|| DEFAULT_HOST.to_owned());
    s.agent = match agent_flag {
        Some(a) => a,
        None => match env("DD_TRACE_AGENT_URL").filter(|v| !v.trim().is_empty()) {
            Some(v) => agent_url("DD_TRACE_AGENT_URL", &v)?,
            None => AgentUrl::Http {
                host: host_of(&host),
                port: env_port(env, "DD_TRACE_AGENT_PORT", DEFAULT_TRACE_PORT)?,
            },
        },
    };
    s.statsd = match statsd_flag {
        Some(u) => u,
        None => match env("DD_DOGSTATSD_URL").filter(|v| !v.trim().is_empty()) {
            Some(v) => statsd_url("DD_DOGSTATSD_URL", &v)?,
            None => StatsdUrl::Udp {
                host: host_of(&host),
                port: env_port(env, "DD_DOGSTATSD_PORT", DEFAULT_STATSD_PORT)?,
            },
        },
    };
    s.defaults = Defaults {
        env: env_flag.or_else(|| env("DD_ENV")).unwrap_or_default(),
        service: service_flag
            .or_else(|| env("DD_SERVICE"))
            .unwrap_or_default(),
        version: version_flag
            .or_else(|| env("DD_VERSION"))
            .unwrap_or_default(),
    };
    Ok(Command::Run(Box::new(s)))
}

/// A flag's value, when given, read by `f` under the flag's name.
fn opt<T>(
    v: Option<String>,
    flag: &str,
    f: impl Fn(&str, &str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    v.map(|v| f(flag, &v)).transpose()
}

fn path(flag: &str, v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err(format!("{flag} needs a non-empty path"))
    } else {
        Ok(PathBuf::from(v))
    }
}

/// A secret's key; the error names the flag or variable, never the secret.
fn udp_key(name: &str, secret: &str) -> Result<MacKey, String> {
    MacKey::from_secret(secret).map_err(|e| format!("{name}: the secret {e}"))
}

fn udp_key_file(name: &str, path: &str) -> Result<MacKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{name}: cannot read the secret from {path:?}: {e}"))?;
    udp_key(&format!("{name} {path}"), &text)
}

fn count(flag: &str, v: &str, min: usize) -> Result<usize, String> {
    match v.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(n) => Err(format!("{flag}: {n} is below the minimum {min}")),
        Err(_) => Err(format!("{flag}: {v:?} is not a whole number")),
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

fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    parse_duration(v).ok_or_else(|| format!("{flag}: {v:?} is not a duration like 500ms, 2s, 1m"))
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

fn agent_url(name: &str, v: &str) -> Result<AgentUrl, String> {
    let v = v.trim();
    let parsed = if let Some(rest) = v.strip_prefix("http://") {
        host_port(rest, DEFAULT_TRACE_PORT).map(|(host, port)| AgentUrl::Http { host, port })
    } else if let Some(rest) = v.strip_prefix("unix://") {
        unix_path(rest).map(AgentUrl::Unix)
    } else {
        None
    };
    parsed.ok_or_else(|| format!("{name}: {v:?} is not http://HOST:PORT or unix:///ABSOLUTE/PATH"))
}

fn statsd_url(name: &str, v: &str) -> Result<StatsdUrl, String> {
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
    parsed.ok_or_else(|| format!("{name}: {v:?} is not udp://HOST:PORT or unix:///ABSOLUTE/PATH"))
}

fn env_port(env: &dyn Fn(&str) -> Option<String>, name: &str, default: u16) -> Result<u16, String> {
    match env(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{name}: {v:?} is not a port number (1-65535)")),
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
