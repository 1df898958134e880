//! The forms a record travels in: the binary frame of the pipe and network
//! transports ([`binary`]), the fallback log line ([`fallback`]), and the
//! keyed MAC that authenticates network frames ([`mac`]).

pub mod binary;
pub mod fallback;
pub mod mac;
