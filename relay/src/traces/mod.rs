//! Spans to the trace agent: msgpack payloads ([`payload`]), batching and
//! the bounded buffer between the pipeline and the sender ([`batch`]), a
//! minimal HTTP/1.1 client ([`http`]) and the sender thread with retries
//! ([`sender`]).

pub mod batch;
pub mod http;
pub mod payload;
pub mod sender;
