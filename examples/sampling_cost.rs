//! What following the agent's rates and applying sampling rules cost a
//! request, natively (`cargo run --release --example sampling_cost`) or as
//! the guest runs it (`cargo build --release --example sampling_cost
//! --target wasm32-wasip1`, then `.venv/bin/python scripts/wasi-run.py
//! target/wasm32-wasip1/release/examples/sampling_cost.wasm`): the
//! per-request check between looks, one look at an unchanged file (a
//! `stat`, at most every 2 s per instance), one read of a changed file, and
//! the decision with no rules and with ten.

use std::hint::black_box;
use std::time::Instant;
use tdp_core::sampling;
use tdp_core::sampling::agent::{Follow, encode};
use tdp_core::sampling::rules::{self, SamplingRule};
use tdp_core::transport::watch::CHECK_EVERY_NS;

const FILE: &str = "traefik-datadog.rates.bench";

/// The guest's own file calls (std's, which are WASI calls on wasm), so
/// the figures are the guest's.
#[path = "../src/guest/watch.rs"]
mod watch;
use watch::WasiFiles;

fn per_op(label: &str, n: u32, f: impl FnMut(u32)) {
    let mut f = f;
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{label:<52} {ns:>10.1} ns");
}

fn main() {
    let rates: Vec<(String, f64)> = (0..50)
        .map(|i| (format!("service:svc{i},env:prod"), 0.5))
        .chain([("service:edge,env:prod".to_owned(), 0.1)])
        .collect();
    std::fs::write(FILE, encode(rates.iter().map(|(k, r)| (k.as_str(), *r)))).expect("write");

    let mut f = Follow::new(WasiFiles, FILE.to_owned(), "edge", "prod");
    assert_eq!(f.rate(0), Some(0.1));
    per_op(
        "rate between looks (the per-request check)",
        10_000_000,
        |i| {
            black_box(f.rate(black_box(1 + i64::from(i % 1000))));
        },
    );
    let mut now = 0;
    per_op("rate with a look, file unchanged (stat)", 20_000, |_| {
        now += CHECK_EVERY_NS;
        black_box(f.rate(now));
    });
    let mut f = Follow::new(WasiFiles, FILE.to_owned(), "edge", "prod");
    let mut now = 0;
    per_op(
        "rate with a look, file changed (stat+read+parse)",
        2_000,
        |_| {
            // A fresh follower sees the file as new each time.
            f = Follow::new(WasiFiles, FILE.to_owned(), "edge", "prod");
            now += CHECK_EVERY_NS;
            black_box(f.rate(now));
        },
    );
    let _ = std::fs::remove_file(FILE);

    let rules: Vec<SamplingRule> = (0..10)
        .map(|i| SamplingRule {
            host: format!("host{i}.example"),
            path_prefix: Some("/api".into()),
            method: None,
            rate: tdp_core::sampling::rate::SampleRate::new(0.5).expect("a rate"),
        })
        .collect();
    per_op("decision, no rules (agent rate)", 10_000_000, |i| {
        let s = rules::source(&[], None, Some(0.1), "shop.example.com", "/api/x", "GET");
        black_box(sampling::decide(
            u64::from(i).wrapping_mul(0x9E37),
            black_box(s),
        ));
    });
    per_op("decision, 10 rules, none matching", 10_000_000, |i| {
        let s = rules::source(&rules, None, Some(0.1), "shop.example.com", "/api/x", "GET");
        black_box(sampling::decide(
            u64::from(i).wrapping_mul(0x9E37),
            black_box(s),
        ));
    });
}
