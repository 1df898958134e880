//! The guest's per-request path, the real one (`tdp_core::request`), driven
//! through the stand-in host instead of Traefik: the request side, the
//! response side with its record and frame, and each encoding alone. Run
//! natively (`cargo run --release --example guest_path`) or compiled for
//! wasm32-wasip1 under a WASI runtime (`cargo build --release --example
//! guest_path --target wasm32-wasip1`, then `.venv/bin/python
//! scripts/wasi-run.py target/wasm32-wasip1/release/examples/guest_path.wasm`),
//! to see what a request costs and which step to cut. The stand-in's own
//! work (copying values into the read space, keeping the frames) is counted
//! too; `make guest-cost` counts the guest's alone.

use std::hint::black_box;
use std::time::Instant;
use tdp_core::record::Record;
use tdp_core::request::Instance;
use tdp_core::request::stand_in::{StandIn, StandInSystem};
use tdp_core::wire::{binary, fallback};

const ITERATIONS: u32 = 100_000;
const CONFIG: &[u8] =
    br#"{"service":"edge","env":"prod","version":"1.0.0","pipePath":"/run/dd/fifo"}"#;

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
    let sys = StandInSystem::relay_reading();
    let mut host = StandIn::default();
    let mut instance = Instance::start(CONFIG, &[1, 2], sys.clone(), &mut host)
        .ok_or("the example's config does not validate")?;
    let request = host.clone();
    // Each request starts from the same host state; frames are dropped as
    // they come, as the relay reads them.
    let fresh = || {
        sys.outside.borrow_mut().piped.clear();
        request.clone()
    };
    time("request side", |_| {
        let mut h = fresh();
        instance.request(&mut h);
        black_box(&h);
    });
    time("whole request, pipe", |_| {
        let mut h = fresh();
        instance.request(&mut h);
        instance.response(&mut h, false);
        black_box(&h);
    });
    let frame = sys.outside.borrow().piped.last().cloned();
    let record: Record = binary::decode(&frame.ok_or("no frame was written")?)?;
    time("fallback line (JSON)", |_| {
        black_box(fallback::encode(black_box(&record)));
    });
    time("pipe frame (msgpack)", |_| {
        black_box(binary::encode(black_box(&record)).ok());
    });
    time("network frame (+ CRC-32)", |_| {
        black_box(binary::encode_with(black_box(&record), binary::FLAG_CHECKSUM).ok());
    });
    Ok(())
}
