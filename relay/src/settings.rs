//! Command-line flags and Datadog environment variables, read into one
//! settings struct per component ([`InputSettings`], [`TraceSettings`],
//! [`MetricsSettings`], [`TelemetrySettings`], [`RouteSettings`],
//! [`PipelineSettings`], [`HealthSettings`]), each built by its own
//! `from_args`. Values are
//! checked by the argument parser ([`crate::args`]); what is left here is
//! what flags mean together and the environment fallbacks. Flags override
//! environment variables; every error names the flag or variable it is about.

use crate::args::{self, Args};
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

/// Looks up an environment variable (a closure, so tests stay hermetic).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

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

/// `--pipe` and `--pipe-group`, which means nothing without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeSettings {
    pub path: PathBuf,
    /// `--pipe-group`: the FIFO is 0620 with this group, instead of 0600.
    pub group: Option<u32>,
}

/// `--udp` and its companions, which mean nothing without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSettings {
    pub addr: String,
    /// `--udp-secret`: only frames with this key's MAC are read.
    pub key: Option<MacKey>,
    /// `--udp-buffer-bytes`: the socket receive buffer asked for.
    pub buffer_bytes: usize,
}

/// The inputs and the queue they fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSettings {
    pub pipe: Option<PipeSettings>,
    pub stdin: bool,
    pub echo_records: bool,
    pub follow: Option<FollowSettings>,
    pub udp: Option<UdpSettings>,
    pub max_line_bytes: usize,
    pub queue_size: usize,
    pub queue_bytes: usize,
}

impl Default for InputSettings {
    fn default() -> Self {
        Self {
            pipe: None,
            stdin: false,
            echo_records: false,
            follow: None,
            udp: None,
            max_line_bytes: 64 * 1024,
            queue_size: DEFAULT_QUEUE_SIZE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

/// Spans: batching, the buffer while the agent is away, the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// Off with `--no-traces`.
    pub enabled: bool,
    pub agent: AgentUrl,
    /// Why `agent` (crate::discovery's rung, for the start line).
    pub agent_from: String,
    pub flush_interval: Duration,
    pub batch_spans: usize,
    pub batch_bytes: usize,
    pub max_buffered_spans: usize,
    pub max_buffered_bytes: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub payload_deadline: Duration,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            agent: AgentUrl::Http {
                host: DEFAULT_HOST.to_owned(),
                port: DEFAULT_TRACE_PORT,
            },
            agent_from: crate::discovery::agent_reason(crate::discovery::Why::Default),
            flush_interval: Duration::from_secs(1),
            batch_spans: 1000,
            batch_bytes: 2_000_000,
            max_buffered_spans: 100_000,
            max_buffered_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            payload_deadline: Duration::from_secs(60),
        }
    }
}

/// Request metrics and where DogStatsD listens (telemetry is sent there too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub statsd: StatsdUrl,
    /// Why `statsd` (for the start line).
    pub statsd_from: String,
    pub prefix: String,
    pub interval: MetricsInterval,
    /// Off with `--no-request-metrics`.
    pub request_metrics: bool,
    pub max_samples: usize,
    pub max_resources: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            statsd: StatsdUrl::Udp {
                host: DEFAULT_HOST.to_owned(),
                port: DEFAULT_STATSD_PORT,
            },
            statsd_from: crate::discovery::statsd_reason(crate::discovery::Why::Default),
            prefix: DEFAULT_PREFIX.to_owned(),
            interval: MetricsInterval::DEFAULT,
            request_metrics: true,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_resources: DEFAULT_MAX_RESOURCES,
        }
    }
}

/// The relay's own counters: an info line, and `P.relay.*` metrics unless off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Off with `--no-telemetry` (the info line stays).
    pub enabled: bool,
    pub interval: Duration,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
        }
    }
}

/// Learned large routes, published for the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSettings {
    /// Response size that makes a route large (0: learn nothing).
    pub learn_bytes: u64,
    /// How long a route stays learned after its last large response.
    pub learn_ttl: Duration,
}

impl Default for RouteSettings {
    fn default() -> Self {
        Self {
            learn_bytes: 1 << 20,
            learn_ttl: Duration::from_secs(3600),
        }
    }
}

/// Values for records that carry none (`DD_ENV`, `DD_SERVICE`, `DD_VERSION`),
/// and the tags of `DD_TAGS` (under the record's own, see `crate::dd_tags`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub env: String,
    pub service: String,
    pub version: String,
    pub tags: std::collections::BTreeMap<String, String>,
    /// `DD_TAGS` pairs that cannot be carried (said once at start).
    pub skipped_tags: tdp_core::config::env::Skipped,
}

/// What the pipeline does to every record, and how long it may take to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    pub defaults: Defaults,
    pub shutdown_timeout: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            defaults: Defaults::default(),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// `--health-listen` and when `/ready` gives up on the agent (see
/// [`crate::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Off unless given.
    pub listen: Option<String>,
    pub unready_after: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            listen: None,
            unready_after: crate::health::AGENT_UNANSWERED,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub inputs: InputSettings,
    /// Where files for the plugin are published (the agent's sampling rates,
    /// learned routes): `--publish-dir`, else the FIFO's directory; `None`
    /// without either (no plugin instance could read them).
    pub publish_dir: Option<PathBuf>,
    pub routes: RouteSettings,
    pub traces: TraceSettings,
    pub metrics: MetricsSettings,
    pub telemetry: TelemetrySettings,
    pub pipeline: PipelineSettings,
    pub health: HealthSettings,
    pub log_format: crate::log::Format,
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
    --telemetry-interval DUR  Relay's own counters, as P.relay.* metrics and an
                            info line (default 10s; also at exit).
    --no-telemetry          Do not send P.relay.* metrics (the line stays).

HEALTH AND LOGS:
    --health-listen ADDR    Answer probes over HTTP at ADDR, e.g. 0.0.0.0:8128
                            (default off; env TRAEFIK_DATADOG_RELAY_HEALTH_LISTEN):
                            GET /live is 200 while every input, the pipeline and
                            the trace sender run, 503 naming what stopped (for
                            liveness and startup probes); GET /ready is 503 once
                            the agent has left a payload unanswered for
                            --unready-after (for monitoring: not a readiness
                            probe of a sidecar, whose readiness is the pod's).
    --unready-after DUR     How long the agent may leave payloads unanswered
                            (down, unreachable, 5xx) before /ready says so
                            (default 60s).
    --log-format FORMAT     text|json (default text; env
                            TRAEFIK_DATADOG_RELAY_LOG_FORMAT). JSON lines hold
                            time, level, logger, msg. Info lines go to stdout,
                            warnings and errors to stderr, in both formats.

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
    TRAEFIK_DATADOG_RELAY_UDP_SECRET_FILE, TRAEFIK_DATADOG_RELAY_HEALTH_LISTEN,
    TRAEFIK_DATADOG_RELAY_LOG_FORMAT  As their flags (flags win).

SIGNALS: SIGTERM or SIGINT stops the inputs, flushes what is held within
--shutdown-timeout, prints the final counters and exits 0; a second signal
exits at once.
";

impl Settings {
    /// Where records come from and where spans and metrics go, for the
    /// line the relay logs when it starts.
    pub fn summary(&self, inputs: &[crate::source::Source]) -> String {
        let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
        format!(
            "inputs {}; spans to {}; metrics to {} ({}; prefix {}, every {:?})",
            names.join(", "),
            if self.traces.enabled {
                format!("{} ({})", self.traces.agent, self.traces.agent_from)
            } else {
                "nowhere (--no-traces)".to_owned()
            },
            self.metrics.statsd,
            self.metrics.statsd_from,
            self.metrics.prefix,
            self.metrics.interval.get(),
        )
    }
}

/// Parses the arguments (without the program name). `env` looks up an
/// environment variable.
pub fn parse(args: &[String], env: Env) -> Result<Command, String> {
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
    let inputs = InputSettings::from_args(&a, env)?;
    Ok(Command::Run(Box::new(Settings {
        publish_dir: crate::publish::dir(
            a.publish_dir.as_deref(),
            inputs.pipe.as_ref().map(|p| p.path.as_path()),
        ),
        inputs,
        routes: RouteSettings::from_args(&a),
        traces: TraceSettings::from_args(&a, env)?,
        metrics: MetricsSettings::from_args(&a, env)?,
        telemetry: TelemetrySettings::from_args(&a),
        pipeline: PipelineSettings::from_args(&a, env),
        health: HealthSettings::from_args(&a, env)?,
        log_format: match a.log_format {
            Some(f) => f,
            None => {
                var_with(env, crate::log::ENV_LOG_FORMAT, args::log_format)?.unwrap_or_default()
            }
        },
    })))
}

/// A variable's value, unless unset or blank.
fn var(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// `parser`'s reading of the variable `name`, if set.
fn var_with<T>(
    env: Env,
    name: &str,
    parser: fn(&str) -> Result<T, args::Refused>,
) -> Result<Option<T>, String> {
    var(env, name)
        .map(|v| parser(&v).map_err(|e| e.naming(name)))
        .transpose()
}

impl InputSettings {
    fn from_args(a: &Args, env: Env) -> Result<Self, String> {
        let d = Self::default();
        if a.pipe.is_none() && !a.stdin && a.follow.is_none() && a.udp.is_none() {
            return Err(
                "no input: give at least one of --pipe, --stdin, --follow, --udp".to_owned(),
            );
        }
        let follow = match (&a.follow, &a.state) {
            (None, Some(_)) => return Err("--state is only used with --follow".to_owned()),
            (None, None) => None,
            (Some(path), state) => Some(FollowSettings {
                state: state.clone().unwrap_or_else(|| {
                    let mut p = path.clone().into_os_string();
                    p.push(".relay-offset");
                    PathBuf::from(p)
                }),
                path: path.clone(),
                from: a.follow_from.unwrap_or(FollowFrom::End),
            }),
        };
        // Given both flags, the secret file is used.
        let key = match a.udp_secret_file.as_ref().or(a.udp_secret.as_ref()) {
            Some(k) => Some(k.clone()),
            None => match (var(env, ENV_UDP_SECRET), var(env, ENV_UDP_SECRET_FILE)) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{ENV_UDP_SECRET} and {ENV_UDP_SECRET_FILE} are both set; keep one"
                    ));
                }
                (Some(_), None) => var_with(env, ENV_UDP_SECRET, args::udp_key)?,
                (None, Some(_)) => var_with(env, ENV_UDP_SECRET_FILE, args::udp_key_file)?,
                (None, None) => None,
            },
        };
        if a.udp_buffer_bytes.is_some() && a.udp.is_none() {
            return Err("--udp-buffer-bytes is only used with --udp".to_owned());
        }
        if key.is_some() && a.udp.is_none() {
            return Err("--udp-secret is only used with --udp".to_owned());
        }
        if a.pipe_group.is_some() && a.pipe.is_none() {
            return Err("--pipe-group is only used with --pipe".to_owned());
        }
        Ok(Self {
            pipe: a.pipe.clone().map(|path| PipeSettings {
                path,
                group: a.pipe_group,
            }),
            stdin: a.stdin,
            echo_records: a.echo_records,
            follow,
            udp: a.udp.clone().map(|addr| UdpSettings {
                addr,
                key,
                buffer_bytes: a.udp_buffer_bytes.unwrap_or(DEFAULT_UDP_BUFFER_BYTES),
            }),
            max_line_bytes: a.max_line_bytes.unwrap_or(d.max_line_bytes),
            queue_size: a.queue_size.unwrap_or(d.queue_size),
            queue_bytes: a.queue_bytes.unwrap_or(d.queue_bytes),
        })
    }
}

impl TraceSettings {
    fn from_args(a: &Args, env: Env) -> Result<Self, String> {
        let d = Self::default();
        let probe = crate::discovery::Probe::system(env);
        let (agent, why) = crate::discovery::agent(a.agent_url.clone(), &probe, |name, v| {
            args::agent_url(v).map_err(|e| e.naming(name))
        })?;
        let s = Self {
            enabled: !a.no_traces,
            agent,
            agent_from: crate::discovery::agent_reason(why),
            flush_interval: a.flush_interval.unwrap_or(d.flush_interval),
            batch_spans: a.batch_spans.unwrap_or(d.batch_spans),
            batch_bytes: a.batch_bytes.unwrap_or(d.batch_bytes),
            max_buffered_spans: a.max_buffered_spans.unwrap_or(d.max_buffered_spans),
            max_buffered_bytes: a.max_buffered_bytes.unwrap_or(d.max_buffered_bytes),
            connect_timeout: a.connect_timeout.unwrap_or(d.connect_timeout),
            request_timeout: a.request_timeout.unwrap_or(d.request_timeout),
            payload_deadline: a.payload_deadline.unwrap_or(d.payload_deadline),
        };
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
        Ok(s)
    }
}

impl MetricsSettings {
    fn from_args(a: &Args, env: Env) -> Result<Self, String> {
        let d = Self::default();
        let probe = crate::discovery::Probe::system(env);
        let (statsd, why) =
            crate::discovery::statsd(a.dogstatsd_url.clone(), &probe, |name, v| {
                args::statsd_url(v).map_err(|e| e.naming(name))
            })?;
        Ok(Self {
            statsd,
            statsd_from: crate::discovery::statsd_reason(why),
            prefix: a.metrics_prefix.clone().unwrap_or(d.prefix),
            interval: a.metrics_interval.unwrap_or(d.interval),
            request_metrics: !a.no_request_metrics,
            max_samples: a.max_samples.unwrap_or(d.max_samples),
            max_resources: match a.max_resources {
                Some(n) => n,
                None => {
                    var_with(env, ENV_MAX_RESOURCES, args::count::<1>)?.unwrap_or(d.max_resources)
                }
            },
        })
    }
}

impl TelemetrySettings {
    fn from_args(a: &Args) -> Self {
        Self {
            enabled: !a.no_telemetry,
            interval: a.telemetry_interval.unwrap_or(Self::default().interval),
        }
    }
}

impl RouteSettings {
    fn from_args(a: &Args) -> Self {
        let d = Self::default();
        Self {
            learn_bytes: a.learn_bytes.map_or(d.learn_bytes, |n| n as u64),
            learn_ttl: a.learn_ttl.unwrap_or(d.learn_ttl),
        }
    }
}

impl HealthSettings {
    fn from_args(a: &Args, env: Env) -> Result<Self, String> {
        let listen = match &a.health_listen {
            Some(l) => Some(l.clone()),
            None => var_with(env, crate::health::ENV_HEALTH_LISTEN, args::listen_address)?,
        };
        if a.unready_after.is_some() && listen.is_none() {
            return Err("--unready-after is only used with --health-listen".to_owned());
        }
        Ok(Self {
            listen,
            unready_after: a.unready_after.unwrap_or(Self::default().unready_after),
        })
    }
}

impl PipelineSettings {
    fn from_args(a: &Args, env: Env) -> Self {
        // The core's reading, the plugin's own: DD_ENV, DD_SERVICE,
        // DD_VERSION, then DD_TAGS' entries for them, as in dd-trace-go.
        let dd = tdp_core::config::env::Env::read(|name| env(name));
        let pick =
            |flag: &Option<String>, var: Option<String>| flag.clone().or(var).unwrap_or_default();
        Self {
            defaults: Defaults {
                env: pick(&a.env, dd.env),
                service: pick(&a.service, dd.service),
                version: pick(&a.service_version, dd.version),
                tags: dd.tags,
                skipped_tags: dd.skipped,
            },
            shutdown_timeout: a
                .shutdown_timeout
                .unwrap_or(Self::default().shutdown_timeout),
        }
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
