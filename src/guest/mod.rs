//! The thin glue between Traefik's http-wasm host and the core: read what the
//! host exposes, hand plain values to the core, write the record out. Every
//! decision lives in the core; this file only moves bytes.

mod alloc;
mod call;
mod emit;
mod host;
#[cfg(feature = "network")]
mod net;
mod pipe;
mod rates;
mod spool;
mod watch;

use host::{REQUEST, RESPONSE, Scratch, Value};
use http_wasm_guest::host::{Request, Response, admin, feature};
use http_wasm_guest::{Guest, register as register_guest};
use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use tdp_core::buffering::{self, HintHeader, Observe, ResponseHints, StreamHints, StreamKind};
use tdp_core::config::{Config, Mode};
use tdp_core::header_names::{self, HeaderNames};
use tdp_core::header_tags::{HeaderTag, MAX_VALUE_LEN, tag_value};
use tdp_core::ids::{IdGenerator, fnv1a64};
use tdp_core::learned::{self, LearnedRoutes};
use tdp_core::limits;
use tdp_core::propagation::{self, Propagation};
use tdp_core::record::{Record, StatusSource};
use tdp_core::request::{self, RequestFacts};
use tdp_core::time::now_unix_ns;
use tdp_core::watch::{Change, Watch};

/// Every allocation of the guest: see `alloc` for why not wasi-libc's alone.
#[global_allocator]
static ALLOCATOR: alloc::Pool = alloc::Pool::new();

/// A request between `handle_request` and `handle_response`. The host holds
/// an instance exclusively for that time, so one slot is enough.
struct InFlight {
    facts: RequestFacts,
    observe: Observe,
    propagation: Propagation,
    header_tags: BTreeMap<String, String>,
    /// Request values too large to read.
    unread: u16,
    #[cfg(feature = "fault-injection")]
    fault: Option<call::fault::Fault>,
}

struct State {
    ids: IdGenerator,
    in_flight: Option<InFlight>,
    emitter: emit::Emitter,
    /// The routes the relay learned to be large, and where it publishes
    /// them; no watch where no directory is mounted (log, network modes).
    learned: LearnedRoutes,
    learned_watch: Option<Watch<watch::WasiFiles>>,
    rates: Option<tdp_core::agent_rates::Follow<watch::WasiFiles>>,
    /// Aborted calls recovered from since the last record, which carries
    /// them to the relay.
    recovered: u32,
    /// Whether this instance said it recovered (once, at ERROR).
    said_recovered: bool,
}

struct Plugin {
    config: Config,
    /// Not a `RefCell`: a trap while it was borrowed would leave it
    /// borrowed for good. Exclusive access comes from the host, which never
    /// enters an instance twice at once (see [`Plugin::state`]).
    state: UnsafeCell<State>,
}

/// A plugin whose configuration did not validate: it passes every request
/// through untouched, having said why once.
struct PassThrough;

impl Guest for PassThrough {}

pub fn register() {
    match Config::from_json(&admin::config()) {
        Ok(config) => {
            emit::mode_warning(&config);
            register_guest(Plugin {
                state: UnsafeCell::new(State {
                    ids: IdGenerator::new(&instance_seeds()),
                    in_flight: None,
                    emitter: emit::Emitter::new(&config),
                    learned: LearnedRoutes::default(),
                    learned_watch: matches!(config.mode, Mode::Auto | Mode::Pipe).then(|| {
                        Watch::new(
                            watch::WasiFiles,
                            tdp_core::watch::beside(&config.pipe_path, learned::FILE_NAME),
                        )
                    }),
                    rates: rates::follow(&config),
                    recovered: 0,
                    said_recovered: false,
                }),
                config,
            })
        }
        Err(e) => {
            emit::config_error(&e);
            register_guest(PassThrough);
        }
    }
}

/// What differs between instances even though `random_get` is seeded
/// identically in each: the start time, and, on hosts with real entropy, the
/// std hasher's random keys (drawn from `random_get`).
fn instance_seeds() -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    [now_unix_ns() as u64, h.finish()]
}

/// The configured header tags present on one side of the exchange.
fn read_header_tags(
    scratch: &mut Scratch,
    tags: &[HeaderTag],
    kind: i32,
    response: bool,
) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            scratch
                .header_text(kind, t.header.as_bytes(), MAX_VALUE_LEN)
                .map(|v| (t.tag_for(response), tag_value(&v)))
        })
        .collect()
}

/// The request's headers: which are present, from one host call, so that
/// absent headers (most trace and stream headers, most of the time) cost no
/// call; and the scratch every value is read into.
struct Present<'n, 's> {
    /// `None` when the list was too long to keep: every header is asked.
    names: Option<HeaderNames<'n>>,
    scratch: Scratch<'s>,
}

impl Present<'_, '_> {
    fn has(&self, name: &[u8]) -> bool {
        self.names.as_ref().is_none_or(|n| n.has(name))
    }

    fn header(&mut self, name: &[u8]) -> Value<'_> {
        if self.has(name) {
            self.scratch.header(REQUEST, name)
        } else {
            Value::Absent
        }
    }

    /// The header's values comma-joined as text of at most `max` bytes,
    /// [`limits::MARKER`] if too large to read.
    fn text(&mut self, name: &[u8], max: usize) -> Option<String> {
        if self.has(name) {
            self.scratch.header_text(REQUEST, name, max)
        } else {
            None
        }
    }

    /// The scheme `X-Forwarded-Proto` says, judged where the value was read.
    fn scheme(&mut self) -> &'static str {
        match self.header(b"X-Forwarded-Proto") {
            // Bytes that are not text are not `https`.
            Value::Read(b) => request::scheme(Some(std::str::from_utf8(b).unwrap_or(""))),
            Value::Absent | Value::Unread => request::scheme(Some("")),
        }
    }

    /// The headers that decide buffering, each judged where it was read.
    fn stream_hints(&mut self) -> StreamHints {
        let mut hints = StreamHints::default();
        for h in HintHeader::ALL {
            match self.header(h.name().as_bytes()) {
                Value::Absent => {}
                Value::Read(b) => hints.see(h, b),
                Value::Unread => hints.see_unread(h),
            }
        }
        hints
    }

    /// A propagation header as the core's extraction reads it: what of the
    /// value it uses ([`propagation::useful`]), [`propagation::UNREAD`] if
    /// too large to read. A value that is not text is one U+FFFD: every
    /// style rejects it as it would the value with its bytes replaced (all
    /// its fields are ASCII), without a conversion that could triple it.
    fn propagation(&mut self, name: &str) -> Option<String> {
        match self.header(name.as_bytes()) {
            Value::Absent => None,
            Value::Read(b) => Some(propagation::useful(
                name,
                std::str::from_utf8(b).unwrap_or("\u{fffd}"),
            )),
            Value::Unread => Some(propagation::UNREAD.to_owned()),
        }
    }

    #[cfg(feature = "fault-injection")]
    fn fault(&mut self) -> Option<call::fault::Fault> {
        match self.header(call::fault::HEADER) {
            Value::Read(b) => call::fault::parse(b),
            Value::Absent | Value::Unread => None,
        }
    }
}

/// The URI's path, cut in place where the path starts the URI (the usual
/// case): one text per request instead of two.
fn path_of(uri: &mut String) -> String {
    let path = request::path_without_query(uri);
    if path.as_ptr() == uri.as_ptr() {
        let len = path.len();
        uri.truncate(len);
        std::mem::take(uri)
    } else {
        path.to_owned()
    }
}

const LEVEL_ERROR: i32 = 2;

impl Plugin {
    /// The instance's state, entered by one handler at a time.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: the host calls one handler of an instance at a time and
        // never re-enters it (it calls nothing back into the guest), each
        // handler takes this once, and the module has one thread.
        unsafe { &mut *self.state.get() }
    }

    /// Enters a handler: resets what an aborted previous call left half
    /// done, counts it, and says so once per instance.
    fn enter(&self) -> &mut State {
        let state = self.state();
        if call::enter() {
            // Forgotten, not dropped: the aborted call may have left it
            // half-built, and its destructors could trap again. A few
            // hundred bytes per recovery, which should never happen.
            std::mem::forget(state.in_flight.take());
            state.recovered = state.recovered.saturating_add(1);
            if !state.said_recovered {
                state.said_recovered = true;
                http_wasm_guest::host::log::write(
                    LEVEL_ERROR,
                    b"traefik-datadog: a call into this plugin instance was aborted before it \
                      returned (a trap); the instance reset its per-request state and records \
                      on. Counted by the relay as plugin_recovered_calls; said once per instance",
                );
            }
        }
        state
    }
}

impl Guest for Plugin {
    fn handle_request(&self, req: &Request, _res: &Response) -> (bool, i32) {
        let state = self.enter();
        let start_ns = now_unix_ns();
        let (mut names_space, mut space) = (host::names_space(), host::space());
        let mut table = [(0, 0); header_names::MAX_NAMES];
        let mut present = Present {
            names: host::names(REQUEST, &mut names_space, &mut table),
            scratch: Scratch::new(&mut space),
        };
        let s = &mut present.scratch;
        let client_addr = s.source_addr(limits::MAX_CLIENT_ADDR);
        // The path is cut before the query goes: a long query alone never
        // marks the path as cut.
        let mut uri = s.uri(limits::MAX_PATH);
        let method = s.method(limits::MAX_METHOD);
        let mut facts = RequestFacts {
            start_ns,
            // Room for a port, stripped before the cut.
            host: request::host_without_port(
                &present
                    .text(b"Host", 2 * limits::MAX_HOST)
                    .unwrap_or_default(),
            ),
            method,
            path: path_of(&mut uri),
            scheme: present.scheme().to_owned(),
            // Only the log line shows it (the span has no tag for it): read
            // when a record becomes a line (see `emit`), not per request.
            protocol: String::new(),
            user_agent: present
                .text(b"User-Agent", limits::MAX_USER_AGENT)
                .unwrap_or_default(),
            client_addr,
        };
        limits::bound_facts(&mut facts);
        if let Some(w) = state.learned_watch.as_mut() {
            match w.poll(start_ns) {
                Change::Updated(bytes) => state.learned = LearnedRoutes::parse(&bytes),
                Change::Removed => state.learned = LearnedRoutes::default(),
                Change::Unchanged => {}
            }
        }
        let hints = present.stream_hints();
        let learned = &state.learned;
        let observe =
            self.config
                .buffering
                .observe(&hints, &facts.host, &facts.path, |host, path| {
                    learned.contains(host, path)
                });
        if observe == Observe::Buffer {
            admin::enable(feature::BufferResponse);
        }

        state
            .ids
            .absorb(start_ns as u64 ^ fnv1a64(facts.client_addr.as_bytes()));
        let trace_id = state.ids.trace_id((start_ns / 1_000_000_000) as u64);
        let span_id = state.ids.span_id();
        let sampling = propagation::SamplingInput {
            host: &facts.host,
            path: &facts.path,
            method: &facts.method,
            agent_rate: rates::rate(&mut state.rates, start_ns),
        };
        let propagation = propagation::begin_sampled(
            &self.config,
            |name| present.propagation(name),
            trace_id,
            span_id,
            &sampling,
        );
        // The backend's spans become children of ours: overwrite whatever
        // context the client sent, as nginx-datadog does.
        for (name, value) in &propagation.injection.set {
            host::set_request_header(name, value.as_bytes());
        }
        for name in &propagation.injection.remove {
            if present.has(name.as_bytes()) {
                req.header.remove(name.as_bytes());
            }
        }
        let header_tags = read_header_tags(
            &mut present.scratch,
            &self.config.header_tags,
            REQUEST,
            false,
        );
        state.in_flight = Some(InFlight {
            facts,
            observe,
            propagation,
            header_tags,
            unread: present.scratch.unread,
            #[cfg(feature = "fault-injection")]
            fault: present.fault(),
        });
        #[cfg(feature = "fault-injection")]
        if state.in_flight.as_ref().and_then(|f| f.fault) == Some(call::fault::Fault::Request) {
            call::fault::trap();
        }
        call::leave();
        (true, 0)
    }

    fn handle_response(&self, _ctx: i32, _req: &Request, res: &Response, is_error: bool) {
        let state = self.enter();
        // Used where it lies and cleared after: moving it out whole copied
        // its ~260 bytes twice per request (a wasm loop once lowered).
        let State {
            in_flight,
            emitter,
            recovered,
            ..
        } = state;
        if let Some(f) = in_flight.as_mut() {
            self.respond(f, emitter, std::mem::take(recovered), res, is_error);
        }
        *in_flight = None;
        call::leave();
    }
}

impl Plugin {
    fn respond(
        &self,
        f: &mut InFlight,
        emitter: &mut emit::Emitter,
        recovered: u32,
        res: &Response,
        is_error: bool,
    ) {
        let end_ns = now_unix_ns();
        let mut space = host::space();
        let mut scratch = Scratch::new(&mut space);
        // Short values only: statuses, lengths, `Content-Range`, `Upgrade`.
        let mut header = |name: &[u8]| scratch.header_text(RESPONSE, name, 64);
        let (status, source, grpc) = match f.observe {
            // Only a buffered response may be asked its status: the host
            // panics otherwise.
            Observe::Buffer => (
                u16::try_from(res.status()).unwrap_or(0),
                StatusSource::Buffered,
                None,
            ),
            Observe::Stream(kind) => {
                let probe = header(buffering::PROBE_HEADER.as_bytes());
                let (upgrade, content_range, grpc) = match kind {
                    _ if probe.is_some() || is_error => (None, None, None),
                    StreamKind::WebSocket => (header(b"Upgrade"), None, None),
                    // A trailer announced in `Trailer` sits in the header map
                    // under its name, an unannounced one as `Trailer:<name>`;
                    // a trailers-only response sends it as a header.
                    StreamKind::Grpc => (
                        None,
                        None,
                        header(b"Grpc-Status").or_else(|| header(b"Trailer:Grpc-Status")),
                    ),
                    _ => (None, header(b"Content-Range"), None),
                };
                let (status, source) = buffering::stream_status(
                    kind,
                    is_error,
                    &ResponseHints {
                        probe_status: probe.as_deref(),
                        upgrade: upgrade.as_deref(),
                        content_range: content_range.as_deref(),
                    },
                );
                (
                    status,
                    source,
                    grpc.as_deref().and_then(buffering::grpc_code),
                )
            }
        };
        let content_length = scratch.number(RESPONSE, b"Content-Length");
        #[cfg(feature = "fault-injection")]
        let fault = f.fault;
        let mut record = Record::complete(
            std::mem::take(&mut f.facts),
            end_ns,
            status,
            source,
            f.propagation.ctx,
            &self.config,
        );
        record.content_length = content_length;
        if let Some(code) = grpc {
            record.set_grpc_status(code);
        }
        f.propagation.annotate(&mut record);
        record.header_tags = std::mem::take(&mut f.header_tags);
        record.header_tags.extend(read_header_tags(
            &mut scratch,
            &self.config.header_tags,
            RESPONSE,
            true,
        ));
        record.unread_values = f.unread.saturating_add(scratch.unread);
        record.recovered_calls = recovered;
        #[cfg(feature = "fault-injection")]
        if fault == Some(call::fault::Fault::Response) {
            call::fault::trap();
        }
        emitter.record(&mut record, end_ns, || {
            scratch.protocol(limits::MAX_PROTOCOL)
        });
    }
}
