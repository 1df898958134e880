//! The host-independent core of the Traefik Datadog plugin: configuration,
//! the per-request record, ids, sampling, the span schema and the record's
//! encodings. Nothing here calls the host, so it is tested natively and, the
//! same tests, under a real WASI runtime.

pub mod agent_rates;
pub mod binary;
pub mod buffering;
pub mod cardinality;
pub mod config;
pub mod dogstatsd;
pub mod fallback;
pub mod grpc;
pub mod header_name;
pub mod header_names;
pub mod header_tags;
pub mod ids;
pub mod json_value;
pub mod learned;
pub mod limits;
pub mod mac;
pub mod network;
pub mod outlet;
pub mod propagation;
pub mod record;
pub mod request;
pub mod resource_from;
pub mod sample_rate;
pub mod sampling;
pub mod sampling_rules;
pub mod span;
pub mod spool;
pub mod status;
#[cfg(test)]
mod test_rng;
pub mod text;
pub mod time;
pub mod transport;
pub mod watch;
