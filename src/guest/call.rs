//! Whether the previous call into this instance finished.
//!
//! A trap (ours, or a host function's panic) aborts a call midway, and
//! http-wasm-host-go then puts the instance back into its pool as the trap
//! left it: globals, memory and borrow flags included. So each handler marks
//! its entry and its return; a mark found still set at an entry means the
//! previous call was aborted, and the handler resets the per-request state
//! before it serves the request (see `Plugin::enter`). The shadow-stack
//! pointer, which Rust cannot set, is reset by the post-link step
//! (`postlink/`): the exported handlers start by setting it to its initial
//! value, the only right one when no guest frame is live.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Set from a handler's entry to its return. wasm32-wasip1 has one thread:
/// the atomic is a plain load and store, used for being a safe static.
static IN_CALL: AtomicBool = AtomicBool::new(false);

/// Marks a handler's entry; true if the previous call never returned.
pub fn enter() -> bool {
    IN_CALL.swap(true, Relaxed)
}

/// Marks a handler's return.
pub fn leave() {
    IN_CALL.store(false, Relaxed);
}

/// Test-only faults, in builds with the `fault-injection` feature (never in
/// the released modules): a request carrying [`HEADER`] traps where its
/// value says, so that the recovery can be proven in the real Traefik.
#[cfg(feature = "fault-injection")]
pub mod fault {
    pub const HEADER: &[u8] = b"X-Traefik-Datadog-Fault";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// Trap in `handle_request`, with the request in flight.
        Request,
        /// Trap in `handle_response`, with the request still in flight.
        Response,
    }

    #[link(wasm_import_module = "http_handler")]
    unsafe extern "C" {
        fn get_header_values(
            kind: i32,
            name: *const u8,
            name_len: i32,
            buf: *mut u8,
            buf_limit: i32,
        ) -> i64;
    }

    /// The fault the request asks for: one host call more per request, in
    /// this build only.
    pub fn read() -> Option<Fault> {
        let mut buf = [0u8; 16];
        let len = unsafe {
            get_header_values(
                0,
                HEADER.as_ptr(),
                HEADER.len() as i32,
                buf.as_mut_ptr(),
                16,
            )
        } as u32 as usize;
        match buf.get(..len)? {
            b"request\0" => Some(Fault::Request),
            b"response\0" => Some(Fault::Response),
            _ => None,
        }
    }

    /// A trap, as any abort: the call ends here, nothing after it runs.
    pub fn trap() -> ! {
        core::arch::wasm32::unreachable()
    }
}
