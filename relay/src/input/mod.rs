//! The inputs. Each runs in its own thread and hands records to ONE bounded
//! queue ([`Queue`]) read by the pipeline. Inputs never wait on the pipeline
//! except `--follow`, whose file keeps what is not read yet.

pub mod follow;
pub mod lines;
pub mod pipe;
pub mod spool;
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
/// Inputs hand on what one read produced as one batch (fewer wake-ups of the
/// pipeline); the bound is in records, kept with the `queue_depth` gauge.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: SyncSender<Vec<Envelope>>,
    capacity: usize,
    counters: Arc<Counters>,
}

impl Queue {
    pub fn new(capacity: usize, counters: Arc<Counters>) -> (Self, Receiver<Vec<Envelope>>) {
        // Every batch holds at least one record and at most `capacity`
        // records are queued, so the channel itself never fills first.
        let (tx, rx) = sync_channel(capacity);
        (
            Self {
                tx,
                capacity,
                counters,
            },
            rx,
        )
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// More than half the queue is taken: an input whose source keeps what
    /// it has not handed on (a file) waits, leaving the room to the pipe.
    pub fn half_full(&self) -> bool {
        self.counters.queue_depth.load(Relaxed) > self.capacity as u64 / 2
    }

    pub fn malformed(&self, source: Source) {
        Counters::add(&self.counters.input(source).malformed, 1);
    }

    /// Reserves room for up to `n` records; returns how many fit.
    fn reserve(&self, n: usize) -> usize {
        let depth = &self.counters.queue_depth;
        let mut cur = depth.load(Relaxed);
        loop {
            let room = (self.capacity as u64).saturating_sub(cur);
            let take = room.min(n as u64);
            if take == 0 {
                return 0;
            }
            match depth.compare_exchange_weak(cur, cur + take, Relaxed, Relaxed) {
                Ok(_) => return take as usize,
                Err(now) => cur = now,
            }
        }
    }

    fn send(&self, batch: Vec<Envelope>) -> bool {
        let n = batch.len() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.queue_depth.fetch_sub(n, Relaxed);
                false
            }
        }
    }

    /// Hands records on without waiting; what does not fit in the queue is
    /// dropped (the newest) and counted. Returns how many were taken.
    pub fn offer(&self, source: Source, mut batch: Vec<Envelope>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let c = self.counters.input(source);
        Counters::add(&c.received, batch.len() as u64);
        let fit = self.reserve(batch.len());
        let dropped = batch.len() - fit;
        batch.truncate(fit);
        let taken = if fit > 0 && self.send(batch) { fit } else { 0 };
        Counters::add(&c.queue_full, (dropped + fit - taken) as u64);
        taken
    }

    /// Hands records on, waiting while the queue is full, unless `stop()`
    /// turns true first. Returns false if some were not taken.
    pub fn push_wait(
        &self,
        source: Source,
        mut batch: Vec<Envelope>,
        stop: &dyn Fn() -> bool,
    ) -> bool {
        Counters::add(&self.counters.input(source).received, batch.len() as u64);
        while !batch.is_empty() {
            let fit = self.reserve(batch.len());
            if fit == 0 {
                if stop() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let rest = batch.split_off(fit);
            if !self.send(batch) {
                return false;
            }
            batch = rest;
        }
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record like the core's test sample (its helper is private to the
    /// core crate), built through the public API.
    pub fn record(status: u16) -> Record {
        tdp_core::record::sample::record(status)
    }

    fn batch(n: usize) -> Vec<Envelope> {
        (0..n).map(|_| Envelope::bare(record(200))).collect()
    }

    #[test]
    fn offer_keeps_the_bound_in_records_and_counts_drops() {
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(5, counters.clone());
        assert_eq!(q.offer(Source::Pipe, batch(3)), 3);
        assert_eq!(q.offer(Source::Pipe, batch(3)), 2);
        assert_eq!(q.offer(Source::Pipe, batch(1)), 0);
        assert_eq!(q.offer(Source::Pipe, Vec::new()), 0);
        let s = counters.snapshot();
        assert_eq!(s.received[0], 7);
        assert_eq!(s.queue_full[0], 2);
        assert_eq!(s.queue_depth, 5);
        let sizes: Vec<usize> = rx.try_iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![3, 2]);
    }

    #[test]
    fn push_wait_splits_and_gives_up_on_stop() {
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(2, counters.clone());
        assert!(q.push_wait(Source::Follow, batch(2), &|| false));
        assert!(!q.push_wait(Source::Follow, batch(1), &|| true));
        assert_eq!(counters.snapshot().queue_depth, 2);
        // A batch larger than the queue goes in pieces as room appears.
        let counters = Arc::new(Counters::default());
        let (q, rx2) = Queue::new(2, counters.clone());
        let h = std::thread::spawn(move || q.push_wait(Source::Follow, batch(5), &|| false));
        let mut got = 0;
        while got < 5 {
            if let Ok(b) = rx2.recv_timeout(Duration::from_secs(5)) {
                got += b.len();
                counters.queue_depth.fetch_sub(b.len() as u64, Relaxed);
            }
        }
        assert!(h.join().expect("thread"));
        drop(rx);
    }
}
