//! The guest's per-request work without the host calls: the request facts,
//! ids, propagation, the stream decision, the record, and each encoding.
//! Run natively (`cargo run --release --example guest_path`) or compiled for
//! wasm32-wasip1 under a WASI runtime (`cargo build --release --example
//! guest_path --target wasm32-wasip1`, then `.venv/bin/python
//! scripts/wasi-run.py target/wasm32-wasip1/release/examples/guest_path.wasm`),
//! to see what a request costs the guest and which step to cut.

use std::hint::black_box;
use std::time::Instant;
use tdp_core::buffering::{HintHeader, StreamHints};
use tdp_core::config::Config;
use tdp_core::ids::{IdGenerator, fnv1a64};
use tdp_core::propagation;
use tdp_core::record::{Record, StatusSource};
use tdp_core::request::{self, RequestFacts};
use tdp_core::{binary, fallback};

const ITERATIONS: u32 = 100_000;

fn facts(start_ns: i64) -> RequestFacts {
    RequestFacts {
        start_ns,
        host: request::host_without_port("shop.example.com:443"),
        method: "GET".to_owned(),
        path: request::path_without_query("/api/v1/items/42?page=3").to_owned(),
        scheme: request::scheme(Some("https")).to_owned(),
        protocol: "HTTP/1.1".to_owned(),
        client_addr: "10.1.2.3:51234".to_owned(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36".to_owned(),
    }
}

fn request_part(
    cfg: &Config,
    ids: &mut IdGenerator,
    start_ns: i64,
) -> (RequestFacts, propagation::Propagation) {
    let f = facts(start_ns);
    let observe = cfg.buffering.observe(
        &StreamHints::of(&[
            (HintHeader::Upgrade, ""),
            (HintHeader::Connection, ""),
            (HintHeader::Accept, "text/html,application/json"),
            (HintHeader::ContentType, ""),
        ]),
        &f.host,
        &f.path,
        |_, _| false,
    );
    black_box(observe);
    ids.absorb(start_ns as u64 ^ fnv1a64(f.client_addr.as_bytes()));
    let trace_id = ids.trace_id((start_ns / 1_000_000_000) as u64);
    let span_id = ids.span_id();
    let p = propagation::begin(cfg, |_: &'static str| None::<String>, trace_id, span_id);
    (f, p)
}

fn response_part(
    cfg: &Config,
    f: RequestFacts,
    p: &propagation::Propagation,
    end_ns: i64,
) -> Record {
    let mut r = Record::complete(f, end_ns, 200, StatusSource::Buffered, p.ctx, cfg);
    p.annotate(&mut r);
    r
}

fn time(label: &str, mut step: impl FnMut(u32)) {
    for i in 0..ITERATIONS / 10 {
        step(i);
    }
    let t = Instant::now();
    for i in 0..ITERATIONS {
        step(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
    println!("{label:28} {ns:9.0} ns/request");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = Config::from_json(br#"{"service":"edge","env":"prod","version":"1.0.0"}"#)?;
    let mut ids = IdGenerator::new(&[1, 2]);
    let start = 1_764_000_000_000_000_000_i64;
    time("request side", |i| {
        black_box(request_part(&cfg, &mut ids, start + i64::from(i)));
    });
    let (f, p) = request_part(&cfg, &mut ids, start);
    time("record", |i| {
        black_box(response_part(
            &cfg,
            f.clone(),
            &p,
            start + i64::from(i) + 1_000_000,
        ));
    });
    let r = response_part(&cfg, f.clone(), &p, start + 1_000_000);
    time("fallback line (JSON)", |_| {
        black_box(fallback::encode(black_box(&r)));
    });
    time("pipe frame (msgpack)", |_| {
        black_box(binary::encode(black_box(&r)).ok());
    });
    time("network frame (+ CRC-32)", |_| {
        black_box(binary::encode_with(black_box(&r), binary::FLAG_CHECKSUM).ok());
    });
    time("whole request, pipe", |i| {
        let (f, p) = request_part(&cfg, &mut ids, start + i64::from(i));
        let r = response_part(&cfg, f, &p, start + i64::from(i) + 1_000_000);
        black_box(binary::encode(&r).ok());
    });
    Ok(())
}
