//! Shrinks the guest's stack from Rust's default 1 MiB: Traefik keeps one
//! instance per concurrent request, and each instance's linear memory starts
//! at stack + data, so the default cost ~1.1 MiB per in-flight request. The
//! guest's deepest path is parsing its JSON config: measured under wasmtime,
//! a config nested to serde_json's recursion limit (128) needs 40-48 KiB; a
//! request needs less than 40 KiB, its 16 KiB of read space included
//! (`src/guest/host.rs`). 88 KiB keeps a margin of 1.8x over the worst case
//! (integration/config/test_bad_config.py runs it in Traefik; an overflow
//! would run below address 0, a trap the entry points recover from, never a
//! write into the data) and, with the module's 75 KiB of static data after it,
//! leaves the heap ~29 KiB inside 3 pages (192 KiB): room for the largest
//! value a request makes the guest hold (an 8 KiB `tracestate`) next to the
//! rest. An instance that grows to a fourth page costs Traefik far more than
//! 64 KiB (a c=256 burst: ~70 MiB more RSS), and wasm memory never shrinks.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-bins=-zstack-size=90112");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
