//! Spans to the trace agent: msgpack payloads ([`payload`]), batching and
//! the bounded buffer between the pipeline and the sender ([`batch`]), the
//! HTTP exchange with the agent behind a trait ([`http`]), the retry policy
//! ([`policy`]) and the sender thread ([`sender`]).

pub mod batch;
pub mod http;
pub mod payload;
pub mod policy;
pub mod sender;
