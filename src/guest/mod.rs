//! The thin glue between Traefik's http-wasm host and the core: read what the
//! host exposes, hand plain values to the core, write the record out. Every
//! decision lives in the core; this file only moves bytes.

mod alloc;
mod emit;
mod host;
#[cfg(feature = "network")]
mod net;
mod pipe;
mod rates;
mod spool;
mod watch;

use host::WHOLE;
use http_wasm_guest::host::{Request, Response, admin, feature};
use http_wasm_guest::{Guest, register as register_guest};
use std::cell::RefCell;
use std::collections::BTreeMap;
use tdp_core::buffering::{self, Observe, ResponseHints, StreamHints, StreamKind};
use tdp_core::config::{Config, Mode};
use tdp_core::header_names::HeaderNames;
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
}

struct Plugin {
    config: Config,
    state: RefCell<State>,
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
                state: RefCell::new(State {
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
fn read_header_tags(tags: &[HeaderTag], kind: i32, response: bool) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            host::joined(kind, t.header.as_bytes(), MAX_VALUE_LEN)
                .map(|v| (t.tag_for(response), tag_value(&v)))
        })
        .collect()
}

/// The request's header names, read with one host call, so that absent
/// headers (most trace and stream headers, most of the time) cost no call.
struct Present(HeaderNames);

impl Present {
    fn read() -> Self {
        Self(host::names(host::REQUEST))
    }

    fn has(&self, name: &[u8]) -> bool {
        self.0.has(name)
    }

    /// The scheme `X-Forwarded-Proto` says, judged where the value was read.
    fn scheme(&self) -> &'static str {
        const NAME: &[u8] = b"X-Forwarded-Proto";
        let judged = self.has(NAME).then(|| {
            host::with_joined(host::REQUEST, NAME, |v| {
                // Bytes that are not text are not `https`.
                let text = v.and_then(|b| std::str::from_utf8(b).ok());
                request::scheme(Some(text.unwrap_or("")))
            })
        });
        judged
            .flatten()
            .unwrap_or_else(|| request::scheme(Some("")))
    }

    /// The header's values comma-joined as text of at most `max` bytes,
    /// asked of the host only if present.
    fn get(&self, name: &[u8], max: usize) -> Option<String> {
        if self.has(name) {
            host::joined(host::REQUEST, name, max)
        } else {
            None
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

impl Guest for Plugin {
    fn handle_request(&self, req: &Request, _res: &Response) -> (bool, i32) {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return (true, 0);
        };
        let start_ns = now_unix_ns();
        let client_addr = host::source_addr(limits::MAX_CLIENT_ADDR);
        // The path is cut before the query goes: a long query alone never
        // marks the path as cut.
        let mut uri = host::uri(limits::MAX_PATH);
        let present = Present::read();
        let text = |name: &str, max: usize| present.get(name.as_bytes(), max).unwrap_or_default();
        let get = |name: &str| text(name, WHOLE);
        let mut facts = RequestFacts {
            start_ns,
            // Room for a port, stripped before the cut.
            host: request::host_without_port(&text("Host", 2 * limits::MAX_HOST)),
            method: host::method(limits::MAX_METHOD),
            path: path_of(&mut uri),
            scheme: present.scheme().to_owned(),
            // Only the log line shows it (the span has no tag for it): read
            // when a record becomes a line (see `emit`), not per request.
            protocol: String::new(),
            user_agent: text("User-Agent", limits::MAX_USER_AGENT),
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
        let (upgrade, connection, accept, content_type) = (
            get("Upgrade"),
            get("Connection"),
            get("Accept"),
            get("Content-Type"),
        );
        let range = present.get(b"Range", 0);
        let learned = &state.learned;
        let observe = self.config.buffering.observe(
            &StreamHints {
                upgrade: Some(&upgrade),
                connection: Some(&connection),
                accept: Some(&accept),
                content_type: Some(&content_type),
                range: range.as_deref(),
            },
            &facts.host,
            &facts.path,
            |host, path| learned.contains(host, path),
        );
        if observe == Observe::Buffer {
            admin::enable(feature::BufferResponse);
        }

        state
            .ids
            .absorb(start_ns as u64 ^ fnv1a64(facts.client_addr.as_bytes()));
        let trace_id = state.ids.trace_id((start_ns / 1_000_000_000) as u64);
        let span_id = state.ids.span_id();
        let header = |name: &'static str| present.get(name.as_bytes(), WHOLE);
        let sampling = propagation::SamplingInput {
            host: &facts.host,
            path: &facts.path,
            method: &facts.method,
            agent_rate: rates::rate(&mut state.rates, start_ns),
        };
        let propagation =
            propagation::begin_sampled(&self.config, header, trace_id, span_id, &sampling);
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
        let header_tags = read_header_tags(&self.config.header_tags, host::REQUEST, false);
        state.in_flight = Some(InFlight {
            facts,
            observe,
            propagation,
            header_tags,
        });
        (true, 0)
    }

    fn handle_response(&self, _ctx: i32, _req: &Request, res: &Response, is_error: bool) {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return;
        };
        let Some(f) = state.in_flight.take() else {
            return;
        };
        let end_ns = now_unix_ns();
        // Short values only: statuses, lengths, `Content-Range`, `Upgrade`.
        let header = |name: &[u8]| host::joined(host::RESPONSE, name, 64);
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
        let content_length = host::number(host::RESPONSE, b"Content-Length", 64);
        let mut record = Record::complete(
            f.facts,
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
        record.header_tags = f.header_tags;
        record.header_tags.extend(read_header_tags(
            &self.config.header_tags,
            host::RESPONSE,
            true,
        ));
        state
            .emitter
            .record(&mut record, end_ns, || host::protocol(limits::MAX_PROTOCOL));
    }
}
