//! traefik-datadog-relay's entry point. The relay itself is the library
//! beside it (lib.rs): a Unix program, of which a build for anything else
//! (the workspace is also checked for wasm32-wasip1, the plugin's target)
//! holds nothing but the message below.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    traefik_datadog_relay::main()
}

#[cfg(not(unix))]
fn main() {
    // The workspace is also built for wasm32-wasip1 (the plugin); the relay
    // is a native Unix program.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"traefik-datadog-relay runs on Linux and other Unix systems only\n",
    );
    std::process::exit(2);
}
