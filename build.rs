//! Shrinks the guest's stack from Rust's default 1 MiB: Traefik keeps one
//! instance per concurrent request, and each instance's linear memory starts
//! at stack + data, so the default cost ~1.1 MiB per in-flight request. The
//! guest's deepest path (parsing its JSON config) needs a few KiB.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-bins=-zstack-size=262144");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
