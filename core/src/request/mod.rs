//! One request's way through a plugin instance, from `handle_request` to
//! `handle_response`: the facts read from the host, the buffering decision,
//! the trace context extracted, decided and injected, the header tags, the
//! record and its cuts, and the way out it takes. Everything is decided
//! here, driven through the [`Host`] trait; the wasm guest implements it
//! over the http-wasm ABI and forwards the two calls, and the tests drive
//! the same path through [`stand_in`].
//!
//! An [`Instance`] keeps what outlives a request (ids, the published files
//! it follows, its outlets) and the one request in flight: the host holds
//! an instance exclusively from a request's first call to its second.

pub mod host;
pub mod limits;
mod outlet;
mod read;
pub mod stand_in;

pub use host::{Host, Level, Part, Side, Value};

use crate::buffering::Observe;
use crate::buffering::learned::{self, LearnedRoutes};
use crate::config::env::Env;
use crate::config::{Config, ConfigError};
use crate::headers::canonical;
use crate::headers::names::MAX_NAMES;
use crate::propagation::ids::{IdGenerator, fnv1a64};
use crate::propagation::{self, Propagation, SamplingInput};
use crate::record::Record;
use crate::record::facts::{self, RequestFacts};
use crate::sampling::agent::{self, Follow};
use crate::transport::Mode;
use crate::transport::loss;
use crate::transport::network::UdpSys;
use crate::transport::pipe::PipeSys;
use crate::transport::route::{LineLevel, Outlets};
use crate::transport::spool::SpoolSys;
use crate::transport::watch::{self, Change, FileSys, Watch};
use host::Reader;
use limits::{MAX_CLIENT_ADDR, MAX_HOST, MAX_METHOD, MAX_PATH, MAX_PROTOCOL, MAX_USER_AGENT};
use outlet::{Outlet, Trouble};
use std::collections::BTreeMap;

/// The system calls an instance makes besides the host's: those of each
/// transport, asked for when the instance starts.
pub trait System {
    type Files: FileSys;
    type Pipe: PipeSys;
    type Spool: SpoolSys;
    /// [`crate::transport::network::NoSockets`] in a build without sockets.
    type Udp: UdpSys;
    fn files(&mut self) -> Self::Files;
    fn pipe(&mut self) -> Self::Pipe;
    fn spool(&mut self) -> Self::Spool;
    /// `None`: this build has no sockets (plugin.wasm).
    fn udp(&mut self) -> Option<Self::Udp>;
    /// An environment variable of the instance (Traefik passes those its
    /// static `settings.envs` names); read at start only.
    fn env(&mut self, name: &str) -> Option<String>;
}

/// A plugin instance whose configuration validated.
pub struct Instance<S: System> {
    config: Config,
    ids: IdGenerator,
    /// The routes the relay learned to be large, and where it publishes
    /// them; no watch where no directory is mounted (log, network modes).
    learned: LearnedRoutes,
    learned_watch: Option<Watch<S::Files>>,
    rates: Option<Follow<S::Files>>,
    outlet: Outlet<S>,
    /// For looking into why records cannot reach the relay (see
    /// [`crate::transport::loss`]), and the host's answer whether its log
    /// shows INFO lines.
    files: S::Files,
    info_shown: Option<bool>,
    in_flight: Option<InFlight>,
    /// Aborted calls recovered from since the last record, which carries
    /// them to the relay.
    recovered: u32,
}

/// A request between its two calls.
struct InFlight {
    facts: RequestFacts,
    observe: Observe,
    trace: Propagation,
}

/// How the proxy's log shows a configuration that did not validate.
pub fn config_error_line(e: &ConfigError) -> String {
    format!(
        "traefik-datadog: invalid config: {e}; this middleware passes traffic through untouched and records nothing"
    )
}

/// Said once per instance when the configured mode needs the other build.
const NEEDS_SOCKETS: &[u8] = b"traefik-datadog: mode \"network\" needs plugin-net.wasm (the socket build); this plugin.wasm uses the pipe, else log lines";

impl<S: System> Instance<S> {
    /// The instance for the configuration Traefik handed over (`get_config`),
    /// or `None` when it does not validate: the middleware then passes
    /// traffic through untouched, which the log says once, naming each key
    /// at fault. `seeds`: what differs between instances even though the
    /// host may seed their randomness identically (see `IdGenerator`).
    /// The environment's unified service tags (`DD_SERVICE`, `DD_ENV`,
    /// `DD_VERSION`, `DD_TAGS`) are read here, once: defaults under the
    /// Middleware's own keys.
    pub fn start(config: &[u8], seeds: &[u64], mut sys: S, host: &mut impl Host) -> Option<Self> {
        let env = Env::read(|name| sys.env(name));
        if env.skipped.total() > 0 {
            let msg = format!(
                "traefik-datadog: DD_TAGS: {} entries left out ({}); the others apply",
                env.skipped.total(),
                env.skipped
            );
            host.log(Level::Warn, msg.as_bytes());
        }
        match Config::from_json_with_env(config, &env) {
            Ok(config) => Some(Self::new(config, seeds, &mut sys, host)),
            Err(e) => {
                host.log(Level::Error, config_error_line(&e).as_bytes());
                None
            }
        }
    }

    fn new(config: Config, seeds: &[u64], sys: &mut S, host: &mut impl Host) -> Self {
        let sockets = sys.udp().is_some();
        if Outlets::needs_network_build(config.mode, sockets) {
            host.log(Level::Warn, NEEDS_SOCKETS);
        }
        if let Some(notice) = agent::unfollowed_notice(config.mode, sockets, config.sample_rate) {
            host.log(Level::Warn, notice.as_bytes());
        }
        let mounted = config.mode.uses_pipe(sockets);
        let beside = |name| watch::beside(&config.pipe_path, name);
        let mut outlet = Outlet::new(&config, sys);
        let mut files = sys.files();
        let info_shown = (config.mode == Mode::Log || outlet.watching || outlet.has_network())
            .then(|| host.log_enabled(Level::Info))
            .flatten();
        if config.mode == Mode::Log {
            if let Some(line) = loss::log_mode(info_shown) {
                host.log(Level::Error, line.as_bytes());
            }
        }
        if outlet.watching && !files.is_dir(loss::split(&config.pipe_path).0) {
            // Nothing beside the FIFO will ever open: said now, and only this.
            outlet.watching = false;
            if !outlet.has_network() {
                let line = loss::no_mount(config.mode, &config.pipe_path, info_shown);
                host.log(Level::Error, line.as_bytes());
            }
        }
        Self {
            ids: IdGenerator::new(seeds),
            learned: LearnedRoutes::default(),
            learned_watch: mounted.then(|| Watch::new(sys.files(), beside(learned::FILE_NAME))),
            rates: agent::followed(config.mode, sockets, config.sample_rate).then(|| {
                Follow::new(
                    sys.files(),
                    beside(agent::FILE_NAME),
                    &config.service,
                    &config.env,
                )
            }),
            outlet,
            files,
            info_shown,
            in_flight: None,
            recovered: 0,
            config,
        }
    }

    /// Resets what an aborted call left half done, and counts it for the
    /// next record. The request in flight is forgotten, not dropped: the
    /// aborted call may have left it half-built, and its destructors could
    /// trap again. A few hundred bytes per recovery, which should never
    /// happen.
    pub fn recover(&mut self) {
        std::mem::forget(self.in_flight.take());
        self.recovered = self.recovered.saturating_add(1);
    }

    /// `handle_request`: reads what the record and the decisions need,
    /// decides whether the response is buffered, and injects the trace
    /// context into the request that goes upstream.
    pub fn request<H: Host>(&mut self, host: &mut H) {
        let start_ns = host.now_ns();
        let (mut names_space, mut space) = (host::names_space(), host::space());
        let mut table = [(0, 0); MAX_NAMES];
        let names = host::read_names(host, Side::Request, &mut names_space, &mut table);
        let mut r = Reader::new(host, Side::Request, names, &mut space);
        let client_addr = r.part(Part::SourceAddr, MAX_CLIENT_ADDR);
        // The path is cut before the query goes: a long query alone never
        // marks the path as cut.
        let mut uri = r.part(Part::Uri, MAX_PATH);
        let method = r.part(Part::Method, MAX_METHOD);
        let mut facts = RequestFacts {
            start_ns,
            // Room for a port, stripped before the cut.
            host: facts::host_without_port(&r.text(b"Host", 2 * MAX_HOST).unwrap_or_default()),
            method,
            path: read::path_of(&mut uri),
            scheme: read::scheme(&mut r).to_owned(),
            // Only the log line shows it: read for a record that becomes one.
            protocol: String::new(),
            user_agent: r.text(b"User-Agent", MAX_USER_AGENT).unwrap_or_default(),
            client_addr,
            header_tags: BTreeMap::new(),
            unread_values: 0,
        };
        limits::bound_facts(&mut facts);
        self.follow_learned(start_ns);
        let hints = read::stream_hints(&mut r);
        let learned = &self.learned;
        let observe =
            self.config
                .buffering
                .observe(&hints, &facts.host, &facts.path, |host, path| {
                    learned.contains(host, path)
                });
        if observe == Observe::Buffer {
            r.host.buffer_response();
        }

        self.ids
            .absorb(start_ns as u64 ^ fnv1a64(facts.client_addr.as_bytes()));
        let trace_id = self.ids.trace_id((start_ns / 1_000_000_000) as u64);
        let span_id = self.ids.span_id();
        let sampling = SamplingInput {
            host: &facts.host,
            path: &facts.path,
            method: &facts.method,
            agent_rate: agent_rate(&mut self.rates, start_ns, r.host),
        };
        let trace = propagation::begin_sampled(
            &self.config,
            |name| read::propagation_value(&mut r, name),
            trace_id,
            span_id,
            &sampling,
        );
        // The backend's spans become children of ours: overwrite whatever
        // context the client sent, as nginx-datadog does.
        for (name, value) in &trace.injection.set {
            set_header(r.host, name, value.as_bytes());
        }
        for name in &trace.injection.remove {
            if r.has(name.as_bytes()) {
                r.host.remove_header(name.as_bytes());
            }
        }
        facts.header_tags = read::header_tags(&mut r, &self.config.header_tags, false);
        facts.unread_values = r.unread;
        self.in_flight = Some(InFlight {
            facts,
            observe,
            trace,
        });
    }

    /// `handle_response`: the request in flight's record, sent out.
    /// `is_error`: the host reported that serving the response failed.
    pub fn response<H: Host>(&mut self, host: &mut H, is_error: bool) {
        // Used where it lies and cleared after: moving it out whole copied
        // its ~260 bytes twice per request (a wasm loop once lowered).
        if let Some(f) = self.in_flight.as_mut() {
            let end_ns = host.now_ns();
            let mut space = host::space();
            let mut r = Reader::new(host, Side::Response, None, &mut space);
            let response = read::response(&mut r, f.observe, end_ns, is_error, &self.config);
            let mut record = Record::build(
                &(&self.config).into(),
                std::mem::take(&mut f.facts),
                &f.trace,
                response,
                std::mem::take(&mut self.recovered),
            );
            // Whatever the request carried, the record now fits one frame.
            limits::fit(&mut record);
            let sent = self.outlet.send(&mut record, end_ns);
            if self.outlet.trouble.is_some() {
                self.look_into_trouble(r.host);
            }
            if let Err(level) = sent {
                // Only the line shows the protocol: asked of the host now.
                record.protocol = r.part(Part::Protocol, MAX_PROTOCOL);
                let line = crate::wire::fallback::encode(&record);
                r.host.log(level.into(), line.as_bytes());
            }
        }
        self.in_flight = None;
    }

    /// Says, once per instance, when the pipe's and the spool's failures
    /// mean records never reach the relay: a spool that cannot be written,
    /// or a missing FIFO while the relay reads another one beside it. A
    /// missing FIFO alone is a relay not started yet: the spool keeps the
    /// records. Runs only after a failure, at most once per retry window.
    fn look_into_trouble(&mut self, host: &mut impl Host) {
        let line = match self.outlet.trouble.take() {
            Some(Trouble::Unwritable(pipe, spool)) => Some(loss::spool_unwritable(
                self.config.mode,
                &self.config.pipe_path,
                pipe,
                spool,
                self.info_shown,
            )),
            Some(Trouble::PipeMissing) => {
                let (dir, name) = loss::split(&self.config.pipe_path);
                self.files
                    .special_files(dir)
                    .into_iter()
                    .find(|f| f != name && !f.ends_with(".sock") && !f.ends_with(".socket"))
                    .map(|found| loss::other_fifo(&self.config.pipe_path, &found))
            }
            Some(Trouble::RelayUnreachable) => {
                let line = loss::relay_unreachable(self.config.relay_address, self.info_shown);
                host.log(Level::Error, line.as_bytes());
                return;
            }
            None => None,
        };
        if let Some(line) = line {
            self.outlet.watching = false;
            host.log(Level::Error, line.as_bytes());
        }
    }

    /// Looks at the learned routes' file, at most every few seconds.
    fn follow_learned(&mut self, now_ns: i64) {
        if let Some(w) = self.learned_watch.as_mut() {
            match w.poll(now_ns) {
                Change::Updated(bytes) => self.learned = LearnedRoutes::parse(&bytes),
                Change::Removed => self.learned = LearnedRoutes::default(),
                Change::Unchanged => {}
            }
        }
    }
}

/// The agent's rate now; a rejected rates file is said once.
fn agent_rate<F: FileSys>(
    follow: &mut Option<Follow<F>>,
    now_ns: i64,
    host: &mut impl Host,
) -> Option<f64> {
    let f = follow.as_mut()?;
    let rate = f.rate(now_ns);
    if let Some(e) = f.take_error() {
        let msg = format!(
            "traefik-datadog: {} {e}; the previous sampling rates stay",
            f.path()
        );
        host.log(Level::Warn, msg.as_bytes());
    }
    rate
}

/// Sets a request header under its name in Go's canonical spelling: the
/// host's header map would otherwise canonicalise it with an allocation on
/// every call.
fn set_header(host: &mut impl Host, name: &str, value: &[u8]) {
    let mut buf = [0u8; canonical::MAX_CANONICAL];
    let name = match canonical::propagation(name) {
        Some(known) => known.as_bytes(),
        None => canonical::canonical(name.as_bytes(), &mut buf).unwrap_or(name.as_bytes()),
    };
    // The host traps on an empty name; injected names never are.
    if !name.is_empty() {
        host.set_header(name, value);
    }
}

/// How loud a fallback line is, as the host's log takes it.
impl From<LineLevel> for Level {
    fn from(level: LineLevel) -> Self {
        match level {
            LineLevel::Info => Self::Info,
            LineLevel::Error => Self::Error,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod loss_tests;
