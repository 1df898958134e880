//! Shrinks the guest's stack from Rust's default 1 MiB: Traefik keeps one
//! instance per concurrent request, and each instance's linear memory starts
//! at stack + data, so the default cost ~1.1 MiB per in-flight request. The
//! guest's deepest path is parsing its JSON config: measured under wasmtime,
//! a config nested to serde_json's recursion limit (128) needs 40-48 KiB; a
//! request needs less than 40 KiB, its 10 KiB of read space included
//! (`src/guest/host.rs`). 96 KiB keeps a margin of 2x over the worst case
//! and, with the module's 73 KiB of static data after it, leaves the heap
//! ~24 KiB inside 3 pages (192 KiB): room for the largest value a request
//! makes the guest hold (an 8 KiB `tracestate`) next to the rest. An
//! instance that grows to a fourth page costs Traefik far more than 64 KiB
//! (a c=256 burst: ~70 MiB more RSS), and wasm memory never shrinks.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-bins=-zstack-size=98304");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
