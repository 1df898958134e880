//! The inputs. Each runs in its own thread and hands records to ONE bounded
//! queue ([`Queue`]) read by the pipeline. Inputs never wait on the pipeline
//! except `--follow`, whose file keeps what is not read yet.

pub mod fifo_mode;
pub mod follow;
pub mod frames;
pub mod lines;
pub mod pipe;
pub mod spool;
pub mod stdin;
pub mod traefik_line;
pub mod udp;
pub mod weight;

pub use crate::source::Source;
use crate::telemetry::Counters;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;
use tdp_core::record::Record;
use tdp_core::span::HostFields;

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
/// pipeline); the bound is in records, kept with the `queue_depth` gauge,
/// and in bytes ([`weight`]), kept with `queue_bytes`. One record larger
/// than the byte bound still passes when the queue is empty, so a waiting
/// input never waits for room that cannot come.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: SyncSender<Vec<Envelope>>,
    capacity: usize,
    max_bytes: u64,
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
                max_bytes: u64::MAX,
                counters,
            },
            rx,
        )
    }

    /// Bounds the queue in (estimated) bytes too.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes as u64;
        self
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

    /// Reserves room for the longest head of `batch` that fits in records
    /// and bytes; returns its length and weight.
    fn reserve(&self, batch: &[Envelope]) -> (usize, u64) {
        let n = self.reserve_records(batch.len());
        if n == 0 {
            return (0, 0);
        }
        let weights: Vec<u64> = batch[..n].iter().map(weight::weight).collect();
        let bytes = &self.counters.queue_bytes;
        let mut cur = bytes.load(Relaxed);
        let (take, sum) = loop {
            let room = self.max_bytes.saturating_sub(cur);
            let (mut take, mut sum) = (0, 0u64);
            for w in &weights {
                if sum + w > room {
                    break;
                }
                sum += w;
                take += 1;
            }
            if take == 0 && cur == 0 {
                (take, sum) = (1, weights[0]);
            }
            if take == 0 {
                break (0, 0);
            }
            match bytes.compare_exchange_weak(cur, cur + sum, Relaxed, Relaxed) {
                Ok(_) => break (take, sum),
                Err(now) => cur = now,
            }
        };
        self.counters
            .queue_depth
            .fetch_sub((n - take) as u64, Relaxed);
        (take, sum)
    }

    /// Reserves room for up to `n` records; returns how many fit.
    fn reserve_records(&self, n: usize) -> usize {
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

    fn send(&self, batch: Vec<Envelope>, bytes: u64) -> bool {
        let n = batch.len() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.queue_depth.fetch_sub(n, Relaxed);
                self.counters.queue_bytes.fetch_sub(bytes, Relaxed);
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
        let (fit, bytes) = self.reserve(&batch);
        let dropped = batch.len() - fit;
        batch.truncate(fit);
        let taken = if fit > 0 && self.send(batch, bytes) {
            fit
        } else {
            0
        };
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
            let (fit, bytes) = self.reserve(&batch);
            if fit == 0 {
                if stop() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let rest = batch.split_off(fit);
            if !self.send(batch, bytes) {
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
    fn offer_keeps_the_bound_in_bytes_and_counts_drops() {
        let counters = Arc::new(Counters::default());
        let w = weight::weight(&Envelope::bare(record(200)));
        let (q, rx) = Queue::new(100, counters.clone());
        let q = q.with_max_bytes((3 * w + w / 2) as usize);
        assert_eq!(q.offer(Source::Pipe, batch(2)), 2);
        assert_eq!(q.offer(Source::Pipe, batch(2)), 1, "room for one more");
        assert_eq!(q.offer(Source::Pipe, batch(1)), 0);
        let s = counters.snapshot();
        assert_eq!((s.received[0], s.queue_full[0]), (5, 2));
        assert_eq!((s.queue_depth, s.queue_bytes), (3, 3 * w));
        // The pipeline's side gives both back.
        for b in rx.try_iter() {
            counters.queue_depth.fetch_sub(b.len() as u64, Relaxed);
            counters.queue_bytes.fetch_sub(weight::total(&b), Relaxed);
        }
        assert_eq!(q.offer(Source::Pipe, batch(1)), 1);
        assert_eq!(counters.snapshot().queue_bytes, w);
    }

    #[test]
    fn a_record_larger_than_the_bound_passes_alone_into_an_empty_queue() {
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(100, counters.clone());
        let q = q.with_max_bytes(4096);
        let mut big = Envelope::bare(record(200));
        big.record.user_agent = "x".repeat(10_000);
        let heavy = weight::weight(&big);
        assert_eq!(q.offer(Source::Stdin, vec![big.clone(), big.clone()]), 1);
        assert_eq!(q.offer(Source::Stdin, batch(1)), 0, "not empty: full");
        let s = counters.snapshot();
        assert_eq!((s.queue_bytes, s.queue_full[1]), (heavy, 2));
        // A waiting input gets it in once the queue drains, never forever.
        let c2 = counters.clone();
        let h = std::thread::spawn(move || q.push_wait(Source::Follow, vec![big], &|| false));
        let first = rx.recv_timeout(Duration::from_secs(5)).expect("first");
        c2.queue_depth.fetch_sub(1, Relaxed);
        c2.queue_bytes.fetch_sub(weight::total(&first), Relaxed);
        assert!(h.join().expect("thread"));
        let second = rx.recv_timeout(Duration::from_secs(5)).expect("second");
        assert_eq!(second.len(), 1);
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
