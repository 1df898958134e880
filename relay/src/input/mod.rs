//! The inputs. Each runs in its own thread and hands records to ONE bounded
//! queue ([`Queue`]) read by the pipeline. Inputs never wait on the pipeline
//! except `--follow`, whose file keeps what is not read yet.

pub mod follow;
pub mod lines;
pub mod pipe;
pub mod stdin;
pub mod udp;

use crate::telemetry::Counters;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;
use tdp_core::record::Record;
use tdp_core::span::HostFields;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pipe = 0,
    Stdin = 1,
    Follow = 2,
    Udp = 3,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pipe => "pipe",
            Self::Stdin => "stdin",
            Self::Follow => "follow",
            Self::Udp => "udp",
        }
    }
}

/// A record and what the host said about it (log-line inputs only).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub record: Record,
    pub host: HostFields,
}

impl Envelope {
    pub fn bare(record: Record) -> Self {
        Self {
            record,
            host: HostFields::default(),
        }
    }
}

/// The input side of the bounded queue, with the counting every input does.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: SyncSender<Envelope>,
    counters: Arc<Counters>,
}

impl Queue {
    pub fn new(capacity: usize, counters: Arc<Counters>) -> (Self, Receiver<Envelope>) {
        let (tx, rx) = sync_channel(capacity);
        (Self { tx, counters }, rx)
    }

    pub fn malformed(&self, source: Source) {
        Counters::add(&self.counters.input(source).malformed, 1);
    }

    /// Hands a record on without waiting; when the queue is full the record
    /// is dropped and counted. False when it was not taken.
    pub fn offer(&self, source: Source, e: Envelope) -> bool {
        let c = self.counters.input(source);
        Counters::add(&c.received, 1);
        self.counters.queue_depth.fetch_add(1, Relaxed);
        match self.tx.try_send(e) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters.queue_depth.fetch_sub(1, Relaxed);
                Counters::add(&c.queue_full, 1);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.queue_depth.fetch_sub(1, Relaxed);
                false
            }
        }
    }

    /// Hands a record on, waiting while the queue is full, unless `stop()`
    /// turns true first (then false: the record was not taken).
    pub fn push_wait(&self, source: Source, e: Envelope, stop: &dyn Fn() -> bool) -> bool {
        Counters::add(&self.counters.input(source).received, 1);
        self.counters.queue_depth.fetch_add(1, Relaxed);
        let mut e = e;
        loop {
            match self.tx.try_send(e) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) if !stop() => {
                    e = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => {
                    self.counters.queue_depth.fetch_sub(1, Relaxed);
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record like the core's test sample (its helper is private to the
    /// core crate), built through the public API.
    pub fn record(status: u16) -> Record {
        use tdp_core::config::Config;
        use tdp_core::ids::TraceId;
        use tdp_core::record::{SpanContext, StatusSource};
        use tdp_core::request::RequestFacts;
        use tdp_core::sampling::Decision;
        let facts = RequestFacts {
            start_ns: 1_795_617_227_123_456_000,
            host: "a.example".into(),
            method: "GET".into(),
            path: "/users/7".into(),
            scheme: "https".into(),
            protocol: "HTTP/1.1".into(),
            client_addr: "10.1.2.3:55555".into(),
            user_agent: "curl/8.5".into(),
        };
        let ctx = SpanContext {
            trace_id: TraceId {
                high: 0x6b0e_a0cb_0000_0000,
                low: 0x1234_5678_9abc_def0,
            },
            span_id: 42,
            parent_id: 0,
            sampling: Decision {
                priority: 1,
                mechanism: 0,
                rate: 1.0,
            },
        };
        let cfg = Config {
            service: "edge".into(),
            env: "prod".into(),
            version: "1.2.3".into(),
            ..Config::default()
        };
        Record::complete(
            facts,
            1_795_617_227_123_456_000 + 15_250_000,
            status,
            StatusSource::Buffered,
            ctx,
            &cfg,
        )
    }

    #[test]
    fn offer_drops_and_counts_when_full() {
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(2, counters.clone());
        for _ in 0..3 {
            q.offer(Source::Pipe, Envelope::bare(record(200)));
        }
        let s = counters.snapshot();
        assert_eq!(s.received[0], 3);
        assert_eq!(s.queue_full[0], 1);
        assert_eq!(s.queue_depth, 2);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn push_wait_gives_up_on_stop() {
        let counters = Arc::new(Counters::default());
        let (q, _rx) = Queue::new(1, counters.clone());
        assert!(q.push_wait(Source::Follow, Envelope::bare(record(200)), &|| false));
        assert!(!q.push_wait(Source::Follow, Envelope::bare(record(200)), &|| true));
        assert_eq!(counters.snapshot().queue_depth, 1);
    }
}
