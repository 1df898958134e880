//! Spans to the trace agent: msgpack payloads ([`payload`]), batching and
//! the bounded buffer between the pipeline and the sender ([`batch`]), the
//! HTTP exchange with the agent behind a trait ([`http`]), the retry policy
//! ([`policy`]) and the sender thread ([`sender`]).

pub mod batch;
pub mod http;
pub mod payload;
pub mod policy;
pub mod sender;

use crate::settings::TraceSettings;
use crate::telemetry::Counters;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Starts the sender thread and returns what the pipeline hands spans to;
/// `None` with `--no-traces`. `publish_dir`: where the agent's sampling
/// rates are published for the plugin; `default_env`: the env the relay
/// gives records without one (their rates are published under no env too).
pub fn start(
    s: &TraceSettings,
    publish_dir: Option<PathBuf>,
    default_env: &str,
    counters: &Arc<Counters>,
) -> Result<Option<crate::pipeline::Traces>, String> {
    if !s.enabled {
        return Ok(None);
    }
    let buffer = Arc::new(batch::SpanBuffer::new(
        s.max_buffered_spans,
        s.max_buffered_bytes,
        counters.clone(),
    ));
    let rates: sender::Rates = Arc::new(Mutex::new(Default::default()));
    let client = http::Client::new(&s.agent, s.connect_timeout)
        .map_err(|e| format!("cannot set up the agent client: {e}"))?;
    let sender = sender::Sender {
        client: Box::new(client),
        agent: s.agent.to_string(),
        buffer: buffer.clone(),
        counters: counters.clone(),
        rates: rates.clone(),
        policy: sender::policy(s.request_timeout, s.payload_deadline),
        jitter: policy::Jitter::new(sender::jitter_seed()),
        rates_file: crate::rates_file::RatesFile::new(publish_dir).with_default_env(default_env),
        origin: crate::container::origin().headers(),
    }
    .spawn()
    .map_err(|e| format!("cannot start the sender thread: {e}"))?;
    Ok(Some(crate::pipeline::Traces {
        batcher: batch::Batcher::new(s.batch_spans, s.batch_bytes),
        buffer,
        sender,
        rates,
    }))
}
