//! Shrinks the guest's stack from Rust's default 1 MiB: Traefik keeps one
//! instance per concurrent request, and each instance's linear memory starts
//! at stack + data, so the default cost ~1.1 MiB per in-flight request. The
//! guest's deepest path is parsing its JSON config: measured under wasmtime,
//! a config nested to serde_json's recursion limit (128) needs 40-48 KiB, a
//! request under 16 KiB. 104 KiB keeps a margin of 2.2x over the worst case
//! and, with the module's 73 KiB of static data after it, leaves the heap the
//! ~17 KiB a request needs inside 3 pages (192 KiB): an instance that grows
//! to a fourth page costs Traefik far more than 64 KiB (a c=256 burst: ~70
//! MiB more RSS), and 112 KiB left too little heap for the guest's allocator.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-bins=-zstack-size=106496");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
