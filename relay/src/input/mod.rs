//! The inputs. Each runs in its own thread and hands records to ONE bounded
//! queue ([`Queue`]) read by the pipeline. An input never drops a record it
//! read for lack of room: it waits, and what arrives meanwhile waits where it
//! came from (the FIFO's buffer, then the plugin's spool; the writer of
//! stdin; the followed file; the socket's receive buffer).

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

use crate::settings::InputSettings;
pub use crate::source::Source;
use crate::telemetry::Counters;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use tdp_core::record::Record;
use tdp_core::record::span::HostFields;

/// How long a waiting input sleeps before it looks for room again. The
/// default queue (4,096 records) takes the pipeline some 20 ms to empty, so
/// the pipeline does not run dry while an input sleeps.
const WAIT_STEP: Duration = Duration::from_millis(2);

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
    /// Set once the pipeline takes no more records (see [`Intake`]).
    closed: Arc<AtomicBool>,
}

/// The pipeline's side of the queue. Once it is closed (or dropped) the
/// inputs stop waiting for room: what they still hold is counted as
/// dropped (`queue_full`), or left in its file to be read again.
#[derive(Debug)]
pub struct Intake {
    rx: Receiver<Vec<Envelope>>,
    closed: Arc<AtomicBool>,
}

impl Intake {
    /// Tells the waiting inputs that nothing more will be taken; what is
    /// already in the channel can still be received.
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
    }
}

impl Deref for Intake {
    type Target = Receiver<Vec<Envelope>>;
    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.close();
    }
}

impl Queue {
    pub fn new(capacity: usize, counters: Arc<Counters>) -> (Self, Intake) {
        // Every batch holds at least one record and at most `capacity`
        // records are queued, so the channel itself never fills first.
        let (tx, rx) = sync_channel(capacity);
        let closed = Arc::new(AtomicBool::new(false));
        (
            Self {
                tx,
                capacity,
                max_bytes: u64::MAX,
                counters,
                closed: closed.clone(),
            },
            Intake { rx, closed },
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

    /// The pipeline takes no more records (the relay is stopping).
    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// More than half the queue is taken: the spool, which keeps what it
    /// has not handed on, waits, leaving the room to the FIFO, whose
    /// buffer is small.
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

    /// Hands records on from a source that keeps nothing once read (the
    /// FIFO, stdin, the socket), waiting while the queue is full for as
    /// long as the pipeline runs. Only records still held when the pipeline
    /// closes are dropped, counted as `queue_full`. Returns how many were
    /// taken.
    pub fn push(&self, source: Source, batch: Vec<Envelope>) -> usize {
        let n = batch.len();
        let left = self.wait_in(source, batch, &|| self.is_closed());
        Counters::add(&self.counters.input(source).queue_full, left as u64);
        n - left
    }

    /// Hands records on from a source that keeps them (a file), waiting
    /// while the queue is full, unless `give_up()` turns true first (or the
    /// pipeline closes): then the caller reads them again later. Returns
    /// false if some were not taken.
    pub fn push_or_keep(
        &self,
        source: Source,
        batch: Vec<Envelope>,
        give_up: &dyn Fn() -> bool,
    ) -> bool {
        self.wait_in(source, batch, &|| give_up() || self.is_closed()) == 0
    }

    /// Hands on as much of `batch` as the queue takes, waiting for room in
    /// [`WAIT_STEP`]s until `give_up()`; the time spent waiting is counted
    /// as the source's `held_back_us`. Returns how many were not taken.
    fn wait_in(
        &self,
        source: Source,
        mut batch: Vec<Envelope>,
        give_up: &dyn Fn() -> bool,
    ) -> usize {
        let c = self.counters.input(source);
        Counters::add(&c.received, batch.len() as u64);
        let mut waiting: Option<Instant> = None;
        let held = |since: Option<Instant>| {
            if let Some(t) = since {
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                Counters::add(&c.held_back_us, us);
            }
        };
        // Once the pipeline has closed, its last look at the channel may be
        // over: nothing more is sent.
        while !batch.is_empty() && !self.is_closed() {
            let (fit, bytes) = self.reserve(&batch);
            if fit == 0 {
                if give_up() {
                    break;
                }
                waiting.get_or_insert_with(Instant::now);
                std::thread::sleep(WAIT_STEP);
                continue;
            }
            held(waiting.take());
            let rest = batch.split_off(fit);
            if !self.send(batch, bytes) {
                // The pipeline is gone: nothing more can be taken.
                return fit + rest.len();
            }
            batch = rest;
        }
        held(waiting);
        batch.len()
    }
}

/// Starts every input `s` names, each on its own thread, and returns which
/// they are with the pipeline's end of their queue, which disconnects once
/// every input has ended.
pub fn start(s: &InputSettings, counters: &Arc<Counters>) -> Result<(Vec<Source>, Intake), String> {
    let (queue, intake) = Queue::new(s.queue_size, counters.clone());
    let queue = queue.with_max_bytes(s.queue_bytes);
    let mut inputs = Vec::new();
    if let Some(p) = &s.pipe {
        fifo_mode::prepare(&p.path, p.group)?;
        pipe::start(&p.path, queue.clone())?;
        inputs.push(Source::Pipe);
    }
    if s.stdin {
        stdin::start(queue.clone(), s.echo_records, s.max_line_bytes)
            .map_err(|e| format!("--stdin: cannot start thread: {e}"))?;
        inputs.push(Source::Stdin);
    }
    if let Some(f) = &s.follow {
        let options = follow::Options {
            path: f.path.clone(),
            state: f.state.clone(),
            from: f.from,
            max_line: s.max_line_bytes,
        };
        follow::start(options, queue.clone())?;
        inputs.push(Source::Follow);
    }
    if let Some(u) = &s.udp {
        udp::start(&u.addr, u.buffer_bytes, queue.clone(), u.key.clone())?;
        inputs.push(Source::Udp);
    }
    Ok((inputs, intake))
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

    /// Takes what the pipeline would: every queued batch, giving its room back.
    fn take(intake: &Intake, counters: &Counters) -> Vec<usize> {
        let sizes: Vec<usize> = intake
            .try_iter()
            .map(|b| {
                counters.queue_depth.fetch_sub(b.len() as u64, Relaxed);
                counters.queue_bytes.fetch_sub(weight::total(&b), Relaxed);
                b.len()
            })
            .collect();
        sizes
    }

    /// Starts `f` on a thread and returns once the queue holds `depth`
    /// records: `f` has put in what fits and waits for the rest.
    fn waiting<T: Send + 'static>(
        counters: &Counters,
        depth: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let h = std::thread::spawn(f);
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.queue_depth.load(Relaxed) != depth && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Past its first look for room, so at least one wait step.
        std::thread::sleep(WAIT_STEP * 2);
        h
    }

    #[test]
    fn push_waits_for_room_instead_of_dropping() {
        let counters = Arc::new(Counters::default());
        let (q, intake) = Queue::new(5, counters.clone());
        assert_eq!(q.push(Source::Pipe, batch(3)), 3);
        assert_eq!(q.push(Source::Pipe, Vec::new()), 0);
        // 4 more do not fit: 2 go in, the rest wait for the pipeline.
        let q2 = q.clone();
        let h = waiting(&counters, 5, move || q2.push(Source::Pipe, batch(4)));
        assert!(!h.is_finished(), "waiting for room");
        assert_eq!(take(&intake, &counters), vec![3, 2]);
        assert_eq!(h.join().expect("thread"), 4);
        assert_eq!(take(&intake, &counters), vec![2]);
        let s = counters.snapshot();
        assert_eq!((s.received[0], s.queue_full[0]), (7, 0));
        assert!(s.held_back_us[0] >= WAIT_STEP.as_micros() as u64);
        assert_eq!((s.queue_depth, s.queue_bytes), (0, 0));
    }

    #[test]
    fn push_counts_what_it_holds_when_the_pipeline_closes() {
        let counters = Arc::new(Counters::default());
        let (q, intake) = Queue::new(2, counters.clone());
        let q2 = q.clone();
        let h = waiting(&counters, 2, move || q2.push(Source::Udp, batch(5)));
        intake.close();
        assert_eq!(h.join().expect("thread"), 2);
        assert!(q.is_closed());
        assert_eq!(
            q.push(Source::Udp, batch(1)),
            0,
            "closed: nothing more sent"
        );
        let s = counters.snapshot();
        assert_eq!((s.received[3], s.queue_full[3]), (6, 4));
        // What went in before the close is still there for the last drain.
        assert_eq!(take(&intake, &counters), vec![2]);
    }

    #[test]
    fn push_into_a_dropped_pipeline_counts_the_records() {
        let counters = Arc::new(Counters::default());
        let (q, intake) = Queue::new(10, counters.clone());
        drop(intake);
        assert_eq!(q.push(Source::Stdin, batch(3)), 0);
        let s = counters.snapshot();
        assert_eq!((s.received[1], s.queue_full[1], s.queue_depth), (3, 3, 0));
    }

    #[test]
    fn the_bound_in_bytes_holds_and_a_waiting_input_gets_in_as_room_comes() {
        let counters = Arc::new(Counters::default());
        let w = weight::weight(&Envelope::bare(record(200)));
        let (q, intake) = Queue::new(100, counters.clone());
        let q = q.with_max_bytes((3 * w + w / 2) as usize);
        assert_eq!(q.push(Source::Pipe, batch(2)), 2);
        let q2 = q.clone();
        let h = waiting(&counters, 3, move || q2.push(Source::Pipe, batch(3)));
        let s = counters.snapshot();
        assert_eq!(
            (s.queue_depth, s.queue_bytes),
            (3, 3 * w),
            "room for one more"
        );
        assert_eq!(take(&intake, &counters), vec![2, 1]);
        assert_eq!(h.join().expect("thread"), 3);
        assert_eq!(take(&intake, &counters), vec![2]);
        assert_eq!(counters.snapshot().queue_full[0], 0);
    }

    #[test]
    fn a_record_larger_than_the_bound_passes_alone_into_an_empty_queue() {
        let counters = Arc::new(Counters::default());
        let (q, intake) = Queue::new(100, counters.clone());
        let q = q.with_max_bytes(4096);
        let mut big = Envelope::bare(record(200));
        big.record.user_agent = "x".repeat(10_000);
        let heavy = weight::weight(&big);
        let q2 = q.clone();
        let h = waiting(&counters, 1, move || {
            q2.push(Source::Stdin, vec![big.clone(), big])
        });
        assert_eq!(
            counters.snapshot().queue_bytes,
            heavy,
            "one in, one waiting"
        );
        assert_eq!(take(&intake, &counters), vec![1]);
        assert_eq!(h.join().expect("thread"), 2);
        assert_eq!(take(&intake, &counters), vec![1]);
    }

    #[test]
    fn push_or_keep_splits_and_gives_up_leaving_the_records_to_the_source() {
        let counters = Arc::new(Counters::default());
        let (q, intake) = Queue::new(2, counters.clone());
        assert!(q.push_or_keep(Source::Follow, batch(2), &|| false));
        assert!(!q.push_or_keep(Source::Follow, batch(1), &|| true));
        let s = counters.snapshot();
        assert_eq!(
            (s.queue_depth, s.queue_full[2]),
            (2, 0),
            "kept, not dropped"
        );
        assert_eq!(take(&intake, &counters), vec![2]);
        // A batch larger than the queue goes in pieces as room appears.
        let q2 = q.clone();
        let h = std::thread::spawn(move || q2.push_or_keep(Source::Follow, batch(5), &|| false));
        let mut got = 0;
        while got < 5 {
            if let Ok(b) = intake.recv_timeout(Duration::from_secs(5)) {
                got += b.len();
                counters.queue_depth.fetch_sub(b.len() as u64, Relaxed);
                counters.queue_bytes.fetch_sub(weight::total(&b), Relaxed);
            }
        }
        assert!(h.join().expect("thread"));
        // The pipeline closing ends the wait too.
        assert_eq!(q.push(Source::Follow, batch(2)), 2);
        let q2 = q.clone();
        let h = waiting(&counters, 2, move || {
            q2.push_or_keep(Source::Follow, batch(1), &|| false)
        });
        intake.close();
        assert!(!h.join().expect("thread"));
    }
}
