//! The host-independent core of the Traefik Datadog plugin. Each folder is
//! one part, and each part imports only parts below it in this list:
//!
//! - [`request`]: one request's way through a plugin instance, driven
//!   through the [`request::Host`] trait that the wasm guest implements
//!   over the http-wasm ABI (and a stand-in implements for tests);
//! - [`config`]: the middleware's options, validated once, and the borrowed
//!   settings each part takes from them;
//! - [`buffering`]: whether a response is buffered, and its status when not;
//! - [`wire`] and [`metrics`]: the record's encodings (frame, fallback line,
//!   MAC) and its DogStatsD metrics;
//! - [`record`]: the one record a request produces, and the span it becomes;
//! - [`headers`]: header names as the host lists and spells them, and the
//!   configured header tags;
//! - [`propagation`]: trace ids and context, read from and written into
//!   request headers;
//! - [`sampling`]: head-based sampling decisions and the agent's rates;
//! - [`transport`]: the ways bytes leave an instance (FIFO, spool, UDP) and
//!   the files the relay publishes back, apart from the system calls;
//! - [`text`] and [`time`]: helpers everything uses.
//!
//! Nothing here calls the host: the guest and the relay supply the system
//! calls through traits, so every part is tested natively and, the same
//! tests, under a real WASI runtime.

pub mod buffering;
pub mod config;
pub mod headers;
pub mod metrics;
pub mod propagation;
pub mod record;
pub mod request;
pub mod sampling;
#[cfg(test)]
mod test_rng;
pub mod text;
pub mod time;
pub mod transport;
pub mod wire;
