//! The thin glue between Traefik's http-wasm host and the core: read what the
//! host exposes, hand plain values to the core, write the record out. Every
//! decision lives in the core; this file only moves bytes.

mod emit;
#[cfg(feature = "network")]
mod net;
mod pipe;
mod rates;
mod watch;

use http_wasm_guest::host::{Request, Response, admin, feature};
use http_wasm_guest::{Guest, register as register_guest};
use std::cell::RefCell;
use std::collections::BTreeMap;
use tdp_core::config::Config;
use tdp_core::header_tags::{HeaderTag, tag_value};
use tdp_core::ids::{IdGenerator, fnv1a64};
use tdp_core::propagation::{self, Propagation};
use tdp_core::record::{CLIENT_CLOSED, Record, StatusSource};
use tdp_core::request::{self, Observe, RequestFacts, StreamHints, StreamKind};
use tdp_core::time::now_unix_ns;

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

/// All values of a header, comma-joined as HTTP allows; `None` if absent.
fn joined(headers: &http_wasm_guest::host::Header, name: &[u8]) -> Option<String> {
    let values = headers.values(name);
    (!values.is_empty()).then(|| {
        values
            .iter()
            .map(|v| String::from_utf8_lossy(v))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The configured header tags present on one side of the exchange.
fn read_header_tags(
    tags: &[HeaderTag],
    headers: &http_wasm_guest::host::Header,
    response: bool,
) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            joined(headers, t.header.as_bytes()).map(|v| (t.tag_for(response), tag_value(&v)))
        })
        .collect()
}

/// The request's header names, read with one host call, so that absent
/// headers (most trace and stream headers, most of the time) cost no call.
struct Present(Vec<http_wasm_guest::host::Bytes>);

impl Present {
    fn read(headers: &http_wasm_guest::host::Header) -> Self {
        Self(headers.names())
    }

    fn has(&self, name: &[u8]) -> bool {
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The header's values comma-joined, asked of the host only if present.
    fn get(&self, headers: &http_wasm_guest::host::Header, name: &[u8]) -> Option<String> {
        if self.has(name) {
            joined(headers, name)
        } else {
            None
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Guest for Plugin {
    fn handle_request(&self, req: &Request, _res: &Response) -> (bool, i32) {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return (true, 0);
        };
        let start_ns = now_unix_ns();
        let client_addr = lossy(&req.source_addr());
        let uri = lossy(&req.uri());
        let present = Present::read(&req.header);
        let get = |name: &str| {
            present
                .get(&req.header, name.as_bytes())
                .unwrap_or_default()
        };
        let facts = RequestFacts {
            start_ns,
            host: request::host_without_port(&get("Host")),
            method: lossy(&req.method()),
            path: request::path_without_query(&uri).to_owned(),
            scheme: request::scheme(Some(&get("X-Forwarded-Proto"))).to_owned(),
            protocol: lossy(&req.version()),
            user_agent: get("User-Agent"),
            client_addr,
        };
        let (upgrade, connection, accept, content_type) = (
            get("Upgrade"),
            get("Connection"),
            get("Accept"),
            get("Content-Type"),
        );
        let observe = request::observe(
            &StreamHints {
                upgrade: Some(&upgrade),
                connection: Some(&connection),
                accept: Some(&accept),
                content_type: Some(&content_type),
            },
            &facts.host,
            &facts.path,
            &self.config.unbuffered_hosts,
            &self.config.unbuffered_paths,
        );
        if observe == Observe::Buffer {
            admin::enable(feature::BufferResponse);
        }

        state
            .ids
            .absorb(start_ns as u64 ^ fnv1a64(facts.client_addr.as_bytes()));
        let trace_id = state.ids.trace_id((start_ns / 1_000_000_000) as u64);
        let span_id = state.ids.span_id();
        let header = |name: &'static str| present.get(&req.header, name.as_bytes());
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
            req.header.set(name.as_bytes(), value.as_bytes());
        }
        for name in &propagation.injection.remove {
            if present.has(name.as_bytes()) {
                req.header.remove(name.as_bytes());
            }
        }
        let header_tags = read_header_tags(&self.config.header_tags, &req.header, false);
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
        let (status, source) = match f.observe {
            // Only a buffered response may be asked its status: the host
            // panics otherwise.
            Observe::Buffer => (
                u16::try_from(res.status()).unwrap_or(0),
                StatusSource::Buffered,
            ),
            Observe::Stream(_) if is_error => (CLIENT_CLOSED, StatusSource::Aborted),
            Observe::Stream(StreamKind::WebSocket) if res.header.get(b"Upgrade").is_some() => {
                (101, StatusSource::Upgrade)
            }
            Observe::Stream(StreamKind::Grpc) => (200, StatusSource::Grpc),
            Observe::Stream(_) => (0, StatusSource::Unknown),
        };
        let mut record = Record::complete(
            f.facts,
            end_ns,
            status,
            source,
            f.propagation.ctx,
            &self.config,
        );
        f.propagation.annotate(&mut record);
        record.header_tags = f.header_tags;
        record.header_tags.extend(read_header_tags(
            &self.config.header_tags,
            &res.header,
            true,
        ));
        state.emitter.record(&mut record, end_ns);
    }
}
