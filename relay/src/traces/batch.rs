//! Batching spans into payloads, and the bounded buffer of payloads between
//! the pipeline (which never waits on the agent) and the sender thread.

use super::payload::{Payload, PayloadBuilder};
use crate::telemetry::Counters;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tdp_core::record::span::Span;

/// Fills payloads up to a span count or a byte size.
#[derive(Debug)]
pub struct Batcher {
    builder: PayloadBuilder,
    max_spans: usize,
    max_bytes: usize,
}

impl Batcher {
    pub fn new(max_spans: usize, max_bytes: usize) -> Self {
        Self {
            builder: PayloadBuilder::new(),
            max_spans,
            max_bytes,
        }
    }

    /// Adds a span; returns the payload when it is full.
    pub fn add(&mut self, span: &Span) -> Result<Option<Payload>, super::payload::EncodeError> {
        self.builder.push(span)?;
        if self.builder.traces() >= self.max_spans || self.builder.bytes() >= self.max_bytes {
            return Ok(self.take());
        }
        Ok(None)
    }

    /// The payload so far, if it holds anything. The next one starts with
    /// room for as many bytes, capped at `max_bytes` plus one span's worth:
    /// under load payloads are full and alike.
    pub fn take(&mut self) -> Option<Payload> {
        if self.builder.traces() == 0 {
            return None;
        }
        let room = (self.builder.bytes() + self.builder.bytes() / 8).min(self.max_bytes + 8192);
        let full = std::mem::replace(&mut self.builder, PayloadBuilder::with_capacity(room));
        Some(full.finish())
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Payload>,
    /// Spans in `queue`.
    queued: usize,
    /// Bytes of the payloads in `queue`.
    queued_bytes: usize,
    /// Spans the sender holds (being sent or waiting to retry).
    in_flight: usize,
    /// Set when the relay stops: deliver until then, drop after.
    deadline: Option<Instant>,
}

/// Payloads waiting for the sender: at most `cap` spans and `cap_bytes`
/// bytes of msgpack (plus the one payload in flight), whichever is reached
/// first. When full, the OLDEST payloads are dropped: fresh spans matter
/// more, and the agent may refuse very old ones anyway.
#[derive(Debug)]
pub struct SpanBuffer {
    inner: Mutex<Inner>,
    ready: Condvar,
    cap: usize,
    cap_bytes: usize,
    counters: Arc<Counters>,
}

impl SpanBuffer {
    pub fn new(cap: usize, cap_bytes: usize, counters: Arc<Counters>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            cap,
            cap_bytes,
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, inner: &Inner) {
        self.counters
            .buffered_spans
            .store((inner.queued + inner.in_flight) as u64, Relaxed);
    }

    pub fn push(&self, p: Payload) {
        let mut inner = self.lock();
        inner.queued += p.traces;
        inner.queued_bytes += p.body.len();
        inner.queue.push_back(p);
        let over = |i: &Inner| i.queued > self.cap || i.queued_bytes > self.cap_bytes;
        if over(&inner) {
            Counters::add(&self.counters.buffer_cap_hits, 1);
            while over(&inner) && inner.queue.len() > 1 {
                if let Some(old) = inner.queue.pop_front() {
                    inner.queued -= old.traces;
                    inner.queued_bytes -= old.body.len();
                    Counters::add(&self.counters.dropped_buffer_full, old.traces as u64);
                }
            }
        }
        self.publish(&inner);
        drop(inner);
        self.ready.notify_all();
    }

    /// The next payload, waiting for one; None once closed and empty, or
    /// when the deadline has passed (what is left is then counted dropped).
    pub fn pop(&self) -> Option<Payload> {
        let mut inner = self.lock();
        loop {
            if let Some(d) = inner.deadline {
                if Instant::now() >= d {
                    let left = inner.queued;
                    inner.queue.clear();
                    inner.queued = 0;
                    inner.queued_bytes = 0;
                    Counters::add(&self.counters.dropped_shutdown, left as u64);
                    self.publish(&inner);
                    return None;
                }
            }
            if let Some(p) = inner.queue.pop_front() {
                inner.queued -= p.traces;
                inner.queued_bytes -= p.body.len();
                inner.in_flight = p.traces;
                self.publish(&inner);
                return Some(p);
            }
            if inner.deadline.is_some() {
                return None;
            }
            inner = self
                .ready
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The sender is done with its payload (sent or dropped).
    pub fn done(&self) {
        let mut inner = self.lock();
        inner.in_flight = 0;
        self.publish(&inner);
    }

    /// Stop accepting waits: deliver what is held until `deadline`.
    pub fn close(&self, deadline: Instant) {
        self.lock().deadline = Some(deadline);
        self.ready.notify_all();
    }

    /// The shutdown deadline, once closing.
    pub fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// Sleeps `d` (a retry backoff), less if closing makes the deadline
    /// nearer; new payloads arriving do not cut it short. Returns false when
    /// the deadline has passed.
    pub fn backoff(&self, d: Duration) -> bool {
        let wanted = Instant::now() + d;
        let mut inner = self.lock();
        loop {
            let until = inner.deadline.map_or(wanted, |dl| wanted.min(dl));
            let now = Instant::now();
            if now >= until {
                break;
            }
            // Woken by push() or close(): the deadline is re-read above.
            inner = self
                .ready
                .wait_timeout(inner, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        inner.deadline.is_none_or(|dl| Instant::now() < dl)
    }

    pub fn spans(&self) -> usize {
        let inner = self.lock();
        inner.queued + inner.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;

    fn payload(n: usize) -> Payload {
        Payload {
            body: vec![0; n],
            traces: n,
        }
    }

    #[test]
    fn batcher_fills_by_count_and_by_bytes() {
        let span = Span::from_record(&record(200));
        let mut b = Batcher::new(3, 1 << 20);
        assert_eq!(b.add(&span).expect("ok"), None);
        assert_eq!(b.add(&span).expect("ok"), None);
        let full = b.add(&span).expect("ok").expect("full at 3");
        assert_eq!(full.traces, 3);
        assert_eq!(b.take(), None);
        let mut by_bytes = Batcher::new(1000, 4096);
        let mut n = 0;
        let p = loop {
            n += 1;
            if let Some(p) = by_bytes.add(&span).expect("ok") {
                break p;
            }
        };
        assert_eq!(p.traces, n);
        assert!(p.body.len() >= 4096 && p.body.len() < 4096 + 600);
    }

    #[test]
    fn the_next_payload_starts_with_room_for_one_like_the_last() {
        let span = Span::from_record(&record(200));
        let mut b = Batcher::new(1000, 2_000_000);
        for _ in 0..600 {
            b.add(&span).expect("ok");
        }
        let p = b.take().expect("a payload");
        assert!(p.body.len() > 64 * 1024, "{}", p.body.len());
        assert!(b.builder.room() >= p.body.len() + p.body.len() / 8);
        // Capped near the byte bound, whatever the last one was.
        let mut small = Batcher::new(1000, 100_000);
        for _ in 0..600 {
            small.add(&span).expect("ok");
        }
        small.take();
        assert!(small.builder.room() <= 100_000 + 8192);
    }

    #[test]
    fn buffer_drops_oldest_and_counts_exactly() {
        let c = Arc::new(Counters::default());
        let b = SpanBuffer::new(10, 1 << 20, c.clone());
        b.push(payload(4));
        b.push(payload(4));
        b.push(payload(4)); // 12 > 10: the first 4 go
        let s = c.snapshot();
        assert_eq!(s.dropped_buffer_full, 4);
        assert_eq!(s.buffer_cap_hits, 1);
        assert_eq!(s.buffered_spans, 8);
        assert_eq!(b.pop().map(|p| p.traces), Some(4));
        assert_eq!(b.spans(), 8, "4 in flight, 4 queued");
        b.done();
        assert_eq!(c.snapshot().buffered_spans, 4);
    }

    #[test]
    fn buffer_is_bounded_in_bytes_too() {
        let c = Arc::new(Counters::default());
        let b = SpanBuffer::new(1000, 10, c.clone());
        b.push(payload(4)); // 4 bytes
        b.push(payload(5)); // 9
        b.push(payload(3)); // 12 > 10: the first goes
        assert_eq!(c.snapshot().dropped_buffer_full, 4);
        b.push(payload(20)); // alone over the cap: everything older goes, it stays
        assert_eq!(c.snapshot().dropped_buffer_full, 12);
        assert_eq!(b.spans(), 20);
    }

    #[test]
    fn close_delivers_until_the_deadline_then_drops() {
        let c = Arc::new(Counters::default());
        let b = SpanBuffer::new(100, 1 << 20, c.clone());
        b.push(payload(3));
        b.close(Instant::now() + Duration::from_secs(60));
        assert_eq!(b.pop().map(|p| p.traces), Some(3));
        assert_eq!(b.pop(), None, "closed and empty");
        b.push(payload(5));
        b.close(Instant::now());
        assert_eq!(b.pop(), None);
        assert_eq!(c.snapshot().dropped_shutdown, 5);
        assert!(!b.backoff(Duration::from_secs(10)), "deadline passed");
    }

    #[test]
    fn backoff_is_not_cut_short_by_pushes_but_by_close() {
        let c = Arc::new(Counters::default());
        let b = Arc::new(SpanBuffer::new(100, 1 << 20, c));
        let b2 = b.clone();
        let t = Instant::now();
        let h = std::thread::spawn(move || b2.backoff(Duration::from_millis(300)));
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            b.push(payload(1));
        }
        assert!(h.join().expect("thread"));
        assert!(t.elapsed() >= Duration::from_millis(300));
        let b3 = b.clone();
        let t = Instant::now();
        let h = std::thread::spawn(move || b3.backoff(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        b.close(Instant::now() + Duration::from_millis(100));
        assert!(!h.join().expect("thread"), "deadline passed while waiting");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn pop_waits_for_a_push() {
        let c = Arc::new(Counters::default());
        let b = Arc::new(SpanBuffer::new(100, 1 << 20, c));
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.pop().map(|p| p.traces));
        std::thread::sleep(Duration::from_millis(50));
        b.push(payload(7));
        assert_eq!(h.join().expect("thread"), Some(7));
    }
}
