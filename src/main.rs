//! The plugin entry point. Traefik runs `_start` once per new instance; it
//! registers the guest, which then serves `handle_request`/`handle_response`.

#[cfg(target_arch = "wasm32")]
mod guest;

#[cfg(target_arch = "wasm32")]
fn main() {
    guest::register();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "traefik-datadog-plugin is a WebAssembly middleware: build it with \
         `make build` (cargo build --release --target wasm32-wasip1)"
    );
    std::process::exit(2);
}
