//! `--udp`: datagrams of exactly one binary frame each (the plugin's network
//! mode). A datagram that is not one whole frame is counted and skipped.
//!
//! Traefik's socket extension shares unlocked state between guest instances
//! (traefik#11629): a datagram may carry a sibling's bytes. Frames carry a
//! CRC-32, so changed bytes are caught (`corrupted`), and a sibling's whole
//! record sent twice is caught by its ids (`duplicated`).
//!
//! With `--udp-secret` only frames sealed with its key are read: a frame
//! without a MAC (an old plugin, a plugin without `relaySecret`, a forger)
//! or with another key's MAC is dropped and counted (`unauthenticated`),
//! before its body is parsed. The checksum is checked first, so bytes the
//! host race changed still count as `corrupted`. A genuine frame sent again
//! is dropped as `duplicated` within the dedup window.
//!
//! A sender of datagrams never waits. When the queue is full this input
//! stops reading, so what arrives meanwhile waits in the socket's receive
//! buffer (`--udp-buffer-bytes`) rather than being read, decoded and
//! dropped on a core the pipeline needs; what the buffer cannot hold the
//! kernel drops, and the relay counts those from the drop count the kernel
//! attaches to the next datagram (`SO_RXQ_OVFL`; `udp.receive_buffer`).

use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use crate::sys;
use crate::telemetry::Counters;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::Duration;
use tdp_core::wire::binary;
use tdp_core::wire::mac::MacKey;

/// What the kernel charges a socket buffer for one datagram of a typical
/// record (~400 bytes; measured on Linux 6: `skb->truesize` on loopback),
/// to say how many records the granted buffer holds.
const CHARGE_PER_RECORD: usize = 1280;

/// After draining the socket, the reader sleeps this long before it looks
/// again, when the kernel granted a buffer that holds what arrives
/// meanwhile: waking per datagram costs Traefik, which shares the cores.
const COALESCE: Duration = Duration::from_millis(2);

/// The receive buffer (as the kernel reports it) from which [`COALESCE`]
/// applies: at 2 ms, room for well over 100k datagrams a second.
const COALESCE_MIN_BUFFER: usize = 2 * 1024 * 1024;

pub fn bind(addr: &str, buffer: usize) -> Result<(UdpSocket, Duration), String> {
    let sock = UdpSocket::bind(addr).map_err(|e| format!("--udp: cannot bind {addr}: {e}"))?;
    let coalesce = match sys::set_recv_buffer(&sock, buffer) {
        Ok(granted) => {
            // The kernel reports twice what it was asked for when it grants it all.
            let short = granted < buffer.saturating_mul(2);
            let line = format!(
                "udp {addr}: receive buffer {granted} bytes, ~{} records wait there while the relay is busy{}",
                granted / CHARGE_PER_RECORD,
                if short {
                    format!(
                        " (asked {buffer}: capped by net.core.rmem_max; raise it or give the relay CAP_NET_ADMIN)"
                    )
                } else {
                    String::new()
                }
            );
            if short {
                warn!("{line}");
            } else {
                info!("{line}");
            }
            if granted >= COALESCE_MIN_BUFFER {
                COALESCE
            } else {
                Duration::ZERO
            }
        }
        Err(e) => {
            warn!("udp {addr}: cannot enlarge the receive buffer: {e}");
            Duration::ZERO
        }
    };
    if let Err(e) = sys::report_drops(&sock) {
        warn!(
            "udp {addr}: the kernel will not report drops (SO_RXQ_OVFL: {e}); a full receive buffer goes uncounted"
        );
    }
    sock.set_nonblocking(true)
        .map_err(|e| format!("--udp: {e}"))?;
    Ok((sock, coalesce))
}

pub fn start(
    addr: &str,
    buffer: usize,
    queue: Queue,
    key: Option<MacKey>,
) -> Result<JoinHandle<()>, String> {
    let (sock, coalesce) = bind(addr, buffer)?;
    let shown = sock
        .local_addr()
        .map_or_else(|_| addr.to_owned(), |a| a.to_string());
    info!(
        "udp: listening on {shown}{}",
        if key.is_some() {
            " (frames must carry the --udp-secret MAC)"
        } else {
            ""
        }
    );
    std::thread::Builder::new()
        .name("input-udp".into())
        .spawn(move || {
            let _alive = crate::health::global().watch("input udp");
            run(&sock, &queue, &shown, coalesce, key.as_ref());
        })
        .map_err(|e| format!("--udp: cannot start thread: {e}"))
}

/// Datagrams read in one go before they are handed on together.
const MAX_BATCH: usize = 512;

/// Record ids remembered to catch duplicates: far more than arrive between
/// a datagram and its duplicate (sent within the same few microseconds).
const DEDUP_WINDOW: usize = 1 << 13;

/// The ids of the last [`DEDUP_WINDOW`] records, oldest forgotten first.
#[derive(Default)]
pub struct Dedup {
    seen: HashSet<(u64, u64, u64)>,
    order: VecDeque<(u64, u64, u64)>,
}

impl Dedup {
    /// True the first time an id is offered within the window.
    pub fn first(&mut self, id: (u64, u64, u64)) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > DEDUP_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Slots per `recvmmsg` call; [`MAX_BATCH`] datagrams at most per wake-up.
const SLOTS: usize = 64;

fn run(sock: &UdpSocket, queue: &Queue, shown: &str, coalesce: Duration, key: Option<&MacKey>) {
    // One byte more than the largest frame, so a longer datagram shows as
    // cut (MSG_TRUNC) rather than as a frame that happens to fit.
    let mut datagrams = sys::Datagrams::new(SLOTS, binary::MAX_FRAME + 1);
    let mut throttle = Throttle::new(Duration::from_secs(10));
    let mut dedup = Dedup::default();
    let counters = queue.counters().input(Source::Udp);
    // Passes over the socket once asked to stop: senders that keep sending
    // must not keep the relay from stopping.
    let mut last_passes = 16;
    let mut drops_seen = 0u32;
    loop {
        if queue.is_closed() {
            break;
        }
        // Asked to stop: what the kernel already holds is read before the
        // socket closes; only what arrives after that is refused.
        let stopping = sys::stop_requested();
        if stopping {
            if last_passes == 0 {
                break;
            }
            last_passes -= 1;
        }
        let wait = if stopping {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match sys::wait_readable(sock, wait) {
            Ok(true) => {}
            Ok(false) if stopping => break,
            Ok(false) => continue,
            Err(_) if stopping => break,
            Err(e) => {
                if let Some(h) = throttle.allow() {
                    error!("udp {shown}: poll: {e}{}", held(h));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let mut batch = Vec::new();
        let mut drained = false;
        for _ in 0..MAX_BATCH / SLOTS {
            let got = match datagrams.recv(sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Some(h) = throttle.allow() {
                        error!("udp {shown}: {e}{}", held(h));
                    }
                    break;
                }
            };
            for (bytes, truncated) in datagrams.iter() {
                let outcome = if truncated {
                    Err(binary::BinaryError::TooLong(bytes.len()))
                } else if bytes.is_empty() {
                    // The guest's probes: nothing to read, nothing wrong.
                    continue;
                } else {
                    binary::decode_verified(bytes, key)
                };
                match outcome {
                    Ok((r, flags)) if dedup.first((r.trace_id_high, r.trace_id, r.span_id)) => {
                        if flags & binary::FLAG_AFTER_STRAY_PROBE != 0 {
                            Counters::add(&counters.stray_probes, 1);
                        }
                        batch.push(Envelope::bare(r));
                    }
                    Ok(_) => Counters::add(&counters.duplicated, 1),
                    Err(e) => {
                        match e {
                            binary::BinaryError::Checksum => {
                                Counters::add(&counters.corrupted, 1);
                            }
                            binary::BinaryError::MissingMac | binary::BinaryError::BadMac => {
                                Counters::add(&counters.unauthenticated, 1);
                            }
                            _ => queue.malformed(Source::Udp),
                        }
                        if let Some(h) = throttle.allow() {
                            warn!(
                                "udp {shown}: skipped a {}-byte datagram: {e}{}",
                                bytes.len(),
                                held(h)
                            );
                        }
                    }
                }
            }
            if got < SLOTS {
                drained = true;
                break;
            }
        }
        let drops = datagrams.dropped();
        Counters::add(
            &counters.receive_buffer,
            u64::from(drops.wrapping_sub(drops_seen)),
        );
        drops_seen = drops;
        // Waits while the queue is full: meanwhile datagrams wait in the
        // socket's buffer.
        queue.push(Source::Udp, batch);
        if drained && !coalesce.is_zero() && !stopping {
            std::thread::sleep(coalesce);
        }
    }
    info!("udp {shown}: stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn dedup_window_forgets_the_oldest() {
        let mut d = Dedup::default();
        assert!(d.first((0, 1, 1)));
        assert!(!d.first((0, 1, 1)));
        for i in 0..DEDUP_WINDOW as u64 {
            assert!(d.first((0, 2, i)));
        }
        assert!(d.first((0, 1, 1)), "forgotten after the window");
        assert_eq!(d.order.len(), DEDUP_WINDOW);
    }

    /// A bound input, the datagrams `send` sends to it, then its reader
    /// started: the first `n` records it hands on, and its counters.
    fn read(
        queue: usize,
        n: usize,
        send: impl FnOnce(&UdpSocket, std::net::SocketAddr),
    ) -> (Vec<tdp_core::record::Record>, Arc<Counters>) {
        read_keyed(queue, n, None, send)
    }

    pub(super) fn read_keyed(
        queue: usize,
        n: usize,
        key: Option<MacKey>,
        send: impl FnOnce(&UdpSocket, std::net::SocketAddr),
    ) -> (Vec<tdp_core::record::Record>, Arc<Counters>) {
        let (sock, _) =
            bind("127.0.0.1:0", crate::settings::DEFAULT_UDP_BUFFER_BYTES).expect("bind");
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(queue, counters.clone());
        let tx = UdpSocket::bind("127.0.0.1:0").expect("client");
        send(&tx, sock.local_addr().expect("addr"));
        // The global stop flag is shared by all tests: the thread is left be.
        std::thread::spawn(move || run(&sock, &q, "test", COALESCE, key.as_ref()));
        let mut got = Vec::new();
        while got.len() < n {
            let batch = rx.recv_timeout(Duration::from_secs(5)).expect("records");
            got.extend(batch.into_iter().map(|e| e.record));
        }
        // Let the reader finish counting what followed the last record.
        std::thread::sleep(Duration::from_millis(100));
        (got, counters)
    }

    #[test]
    fn one_frame_per_datagram() {
        let (got, counters) = read(10, 4, |tx, addr| {
            let good = binary::encode(&record(200)).expect("frame");
            tx.send_to(&good, addr).expect("send");
            tx.send_to(b"not a frame", addr).expect("send");
            tx.send_to(b"", addr).expect("send an empty probe");
            let mut two = good.clone();
            two.extend(&good);
            tx.send_to(&two, addr).expect("send");
            let mut other = record(503);
            other.span_id += 1;
            tx.send_to(&binary::encode(&other).expect("frame"), addr)
                .expect("send");
            // Checksummed: a good one, the same again, and one with a changed byte.
            let mut r = record(404);
            r.span_id = 777;
            let summed = binary::encode_with(&r, binary::FLAG_CHECKSUM).expect("frame");
            tx.send_to(&summed, addr).expect("send");
            tx.send_to(&summed, addr).expect("send");
            let mut bad = summed.clone();
            bad[10] ^= 0x20;
            tx.send_to(&bad, addr).expect("send");
            // After a stray probe, the guest marks its frame: counted once, even
            // when the marked frame itself comes twice.
            let mut marked = record(429);
            marked.span_id = 778;
            let mut marked = binary::encode_with(&marked, binary::FLAG_CHECKSUM).expect("frame");
            binary::set_flag(&mut marked, binary::FLAG_AFTER_STRAY_PROBE);
            tx.send_to(&marked, addr).expect("send");
            tx.send_to(&marked, addr).expect("send");
            // Longer than any frame: cut by the receive slot, counted malformed.
            let mut long = good.clone();
            long.resize(binary::MAX_FRAME + 900, b'x');
            tx.send_to(&long, addr).expect("send");
        });
        let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 503, 404, 429]);
        let s = counters.snapshot();
        assert_eq!(s.malformed[Source::Udp as usize], 3);
        assert_eq!(s.duplicated[Source::Udp as usize], 2);
        assert_eq!(s.corrupted[Source::Udp as usize], 1);
        assert_eq!(s.stray_probes[Source::Udp as usize], 1);
    }

    fn numbered(i: u64) -> Vec<u8> {
        let mut r = record(200);
        r.span_id = 10_000 + i;
        binary::encode_with(&r, binary::FLAG_CHECKSUM).expect("frame")
    }

    #[test]
    fn what_the_receive_buffer_cannot_hold_is_counted_with_the_next_datagram() {
        // The smallest buffer the kernel grants holds a few datagrams; 200
        // sent before the reader starts overflow it.
        let (sock, _) = bind("127.0.0.1:0", 4096).expect("bind");
        let addr = sock.local_addr().expect("addr");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("client");
        for i in 0..200 {
            tx.send_to(&numbered(i), addr).expect("send");
        }
        let counters = Arc::new(Counters::default());
        // A queue of one record: the reader waits after each, the kernel
        // keeps the rest.
        let (q, rx) = Queue::new(1, counters.clone());
        std::thread::spawn(move || run(&sock, &q, "test", Duration::ZERO, None));
        let take = |timeout| {
            let b = rx.recv_timeout(timeout).ok()?;
            counters.queue_depth.fetch_sub(b.len() as u64, Relaxed);
            counters
                .queue_bytes
                .fetch_sub(crate::input::weight::total(&b), Relaxed);
            Some(b)
        };
        let mut held = Vec::new();
        while let Some(b) = take(Duration::from_millis(500)) {
            held.extend(b.into_iter().map(|e| e.record.span_id));
        }
        // The drops are learnt from the next datagram (on a slow machine
        // some held records may still come before it).
        tx.send_to(&numbered(999), addr).expect("send");
        loop {
            let b = take(Duration::from_secs(10)).expect("the last datagram");
            held.extend(b.into_iter().map(|e| e.record.span_id));
            if held.last() == Some(&10_999) {
                held.pop();
                break;
            }
        }
        let s = counters.snapshot();
        let u = Source::Udp as usize;
        assert!(held.len() < 200, "nothing overflowed");
        assert_eq!(
            held,
            (0..held.len() as u64)
                .map(|i| 10_000 + i)
                .collect::<Vec<_>>()
        );
        assert_eq!(s.receive_buffer[u], 200 - held.len() as u64);
        assert_eq!((s.received[u], s.queue_full[u]), (held.len() as u64 + 1, 0));
    }

    #[test]
    fn more_datagrams_than_slots_all_arrive_in_order() {
        let n = SLOTS * 3 + 5;
        let (got, counters) = read(10_000, n, |tx, addr| {
            for i in 0..n {
                let mut r = record(200);
                r.span_id = 10_000 + i as u64;
                let frame = binary::encode_with(&r, binary::FLAG_CHECKSUM).expect("frame");
                tx.send_to(&frame, addr).expect("send");
            }
        });
        let ids: Vec<u64> = got.iter().map(|r| r.span_id).collect();
        assert_eq!(ids, (0..n as u64).map(|i| 10_000 + i).collect::<Vec<_>>());
        let s = counters.snapshot();
        assert_eq!(s.malformed[Source::Udp as usize], 0);
        assert_eq!(s.duplicated[Source::Udp as usize], 0);
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;
    use crate::input::tests::record;

    fn key(c: char) -> MacKey {
        MacKey::from_secret(&c.to_string().repeat(40)).expect("valid")
    }

    #[test]
    fn with_a_secret_only_sealed_frames_pass() {
        let k = key('k');
        let (got, counters) = super::tests::read_keyed(10, 3, Some(k.clone()), |tx, addr| {
            let sealed = |status: u16, span: u64, key: &MacKey| {
                let mut r = record(status);
                r.span_id = span;
                binary::encode_sealed(&r, binary::FLAG_CHECKSUM, key).expect("frame")
            };
            tx.send_to(&sealed(200, 1, &k), addr).expect("send");
            // Unkeyed, with and without a checksum.
            let plain = binary::encode_with(&record(500), binary::FLAG_CHECKSUM).expect("frame");
            tx.send_to(&plain, addr).expect("send");
            tx.send_to(&binary::encode(&record(500)).expect("frame"), addr)
                .expect("send");
            // Another key.
            tx.send_to(&sealed(500, 2, &key('x')), addr).expect("send");
            // The MAC flag with 16 bytes of garbage and a right checksum.
            let mut forged = plain[..plain.len() - 4].to_vec();
            forged[3] |= binary::FLAG_MAC;
            forged.extend_from_slice(&[7u8; 16]);
            let crc = binary::crc32(&forged);
            forged.extend_from_slice(&crc.to_le_bytes());
            tx.send_to(&forged, addr).expect("send");
            // A genuine frame replayed: a duplicate, not a second record.
            let again = sealed(404, 3, &k);
            tx.send_to(&again, addr).expect("send");
            tx.send_to(&again, addr).expect("send");
            // Garbage and a corrupted genuine frame keep their own counters.
            tx.send_to(b"TD garbage", addr).expect("send");
            let mut bad = sealed(201, 4, &k);
            bad[12] ^= 0x40;
            tx.send_to(&bad, addr).expect("send");
            tx.send_to(&sealed(202, 5, &k), addr).expect("send");
        });
        let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 404, 202]);
        let s = counters.snapshot();
        let u = Source::Udp as usize;
        assert_eq!(s.unauthenticated[u], 4);
        assert_eq!(s.duplicated[u], 1);
        assert_eq!(s.corrupted[u], 1);
        assert_eq!(s.malformed[u], 1);
        assert_eq!(s.received[u], 3);
    }

    #[test]
    fn without_a_secret_sealed_frames_are_read_too() {
        let (got, counters) = super::tests::read_keyed(10, 2, None, |tx, addr| {
            let sealed = binary::encode_sealed(&record(200), binary::FLAG_CHECKSUM, &key('k'))
                .expect("frame");
            tx.send_to(&sealed, addr).expect("send");
            let mut r = record(503);
            r.span_id += 1;
            tx.send_to(&binary::encode(&r).expect("frame"), addr)
                .expect("send");
        });
        assert_eq!(got.len(), 2);
        assert_eq!(counters.snapshot().unauthenticated[Source::Udp as usize], 0);
    }
}
