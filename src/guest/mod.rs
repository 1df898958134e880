//! The thin glue between Traefik's http-wasm host and the core: the core's
//! `Host` over the ABI (`host`), the system calls of its transports (`pipe`,
//! `spool`, `net`, `watch`), the allocator, and the mark that tells an
//! aborted call (`call`). Every decision lives in the core's request path
//! (`tdp_core::record::facts`); the handlers forward to it.

mod alloc;
mod call;
mod host;
#[cfg(feature = "network")]
mod net;
mod pipe;
mod spool;
mod watch;

use host::Abi;
use http_wasm_guest::host::{Request, Response};
use http_wasm_guest::{Guest, register as register_guest};
use std::cell::UnsafeCell;
use tdp_core::request::host::{Host, Level};
use tdp_core::request::{Instance, System};
use tdp_core::time::now_unix_ns;

/// Every allocation of the guest: see `alloc` for why not wasi-libc's alone.
#[global_allocator]
static ALLOCATOR: alloc::Pool = alloc::Pool::new();

/// The guest's system calls, through WASI on the mounted directory.
struct Wasi;

impl System for Wasi {
    type Files = watch::WasiFiles;
    type Pipe = pipe::WasiPipe;
    type Spool = spool::WasiSpool;
    #[cfg(feature = "network")]
    type Udp = net::WasiUdp;
    #[cfg(not(feature = "network"))]
    type Udp = tdp_core::transport::network::NoSockets;

    fn files(&mut self) -> Self::Files {
        watch::WasiFiles
    }

    fn pipe(&mut self) -> Self::Pipe {
        pipe::WasiPipe
    }

    fn spool(&mut self) -> Self::Spool {
        spool::WasiSpool
    }

    fn udp(&mut self) -> Option<Self::Udp> {
        #[cfg(feature = "network")]
        return Some(net::WasiUdp);
        #[cfg(not(feature = "network"))]
        None
    }

    /// WASI's environment: what Traefik's `settings.envs` names, with
    /// Traefik's own values.
    fn env(&mut self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

struct State {
    instance: Instance<Wasi>,
    /// Whether this instance said it recovered (once, at ERROR).
    said_recovered: bool,
    #[cfg(feature = "fault-injection")]
    fault: Option<call::fault::Fault>,
}

struct Plugin {
    /// Not a `RefCell`: a trap while it was borrowed would leave it
    /// borrowed for good. Exclusive access comes from the host, which never
    /// enters an instance twice at once (see [`Plugin::state`]).
    state: UnsafeCell<State>,
}

/// A plugin whose configuration did not validate: it passes every request
/// through untouched, having said why once.
struct PassThrough;

impl Guest for PassThrough {}

pub fn register() {
    let config = http_wasm_guest::host::admin::config();
    match Instance::start(&config, &instance_seeds(), Wasi, &mut Abi) {
        Some(instance) => register_guest(Plugin {
            state: UnsafeCell::new(State {
                instance,
                said_recovered: false,
                #[cfg(feature = "fault-injection")]
                fault: None,
            }),
        }),
        None => register_guest(PassThrough),
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

impl Plugin {
    /// The instance's state, entered by one handler at a time.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: the host calls one handler of an instance at a time and
        // never re-enters it (it calls nothing back into the guest), each
        // handler takes this once, and the module has one thread.
        unsafe { &mut *self.state.get() }
    }

    /// Enters a handler: has the instance reset what an aborted previous
    /// call left half done, and says so once per instance.
    fn enter(&self) -> &mut State {
        let state = self.state();
        if call::enter() {
            state.instance.recover();
            if !state.said_recovered {
                state.said_recovered = true;
                Abi.log(
                    Level::Error,
                    b"traefik-datadog: a call into this plugin instance was aborted before it \
                      returned (a trap); the instance reset its per-request state and records \
                      on. Counted by the relay as plugin_recovered_calls; said once per instance",
                );
            }
        }
        state
    }
}

impl Guest for Plugin {
    fn handle_request(&self, _req: &Request, _res: &Response) -> (bool, i32) {
        let state = self.enter();
        state.instance.request(&mut Abi);
        #[cfg(feature = "fault-injection")]
        {
            state.fault = call::fault::read();
            if state.fault == Some(call::fault::Fault::Request) {
                call::fault::trap();
            }
        }
        call::leave();
        (true, 0)
    }

    fn handle_response(&self, _ctx: i32, _req: &Request, _res: &Response, is_error: bool) {
        let state = self.enter();
        #[cfg(feature = "fault-injection")]
        if state.fault.take() == Some(call::fault::Fault::Response) {
            call::fault::trap();
        }
        state.instance.response(&mut Abi, is_error);
        call::leave();
    }
}
