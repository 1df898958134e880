//! `--udp`: datagrams of exactly one binary frame each (the plugin's network
//! mode). A datagram that is not one whole frame is counted and skipped.

use super::{Envelope, Queue, Source};
use crate::log::{Throttle, held};
use crate::sys;
use std::io;
use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::Duration;
use tdp_core::binary;

/// Kernel receive buffer asked for, so bursts wait instead of being dropped.
const RECV_BUFFER: usize = 4 * 1024 * 1024;

pub fn bind(addr: &str) -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind(addr).map_err(|e| format!("--udp: cannot bind {addr}: {e}"))?;
    if let Err(e) = sys::set_recv_buffer(&sock, RECV_BUFFER) {
        warn!("udp {addr}: cannot enlarge the receive buffer: {e}");
    }
    sock.set_nonblocking(true)
        .map_err(|e| format!("--udp: {e}"))?;
    Ok(sock)
}

pub fn start(addr: &str, queue: Queue) -> Result<JoinHandle<()>, String> {
    let sock = bind(addr)?;
    let shown = sock
        .local_addr()
        .map_or_else(|_| addr.to_owned(), |a| a.to_string());
    info!("udp: listening on {shown}");
    std::thread::Builder::new()
        .name("input-udp".into())
        .spawn(move || run(&sock, &queue, &shown))
        .map_err(|e| format!("--udp: cannot start thread: {e}"))
}

/// Datagrams read in one go before they are handed on together.
const MAX_BATCH: usize = 512;

fn run(sock: &UdpSocket, queue: &Queue, shown: &str) {
    let mut buf = vec![0u8; 65_536];
    let mut throttle = Throttle::new(Duration::from_secs(10));
    while !sys::stop_requested() {
        match sys::wait_readable(sock, Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                if let Some(h) = throttle.allow() {
                    error!("udp {shown}: poll: {e}{}", held(h));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let mut batch = Vec::new();
        for _ in 0..MAX_BATCH {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => match binary::decode(&buf[..n]) {
                    Ok(r) => batch.push(Envelope::bare(r)),
                    Err(e) => {
                        queue.malformed(Source::Udp);
                        if let Some(h) = throttle.allow() {
                            warn!(
                                "udp {shown}: skipped a {n}-byte datagram from {from}: {e}{}",
                                held(h)
                            );
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(h) = throttle.allow() {
                        error!("udp {shown}: {e}{}", held(h));
                    }
                    break;
                }
            }
        }
        queue.offer(Source::Udp, batch);
    }
    info!("udp {shown}: stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;
    use crate::telemetry::Counters;
    use std::sync::Arc;

    #[test]
    fn one_frame_per_datagram() {
        let sock = bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().expect("addr");
        let counters = Arc::new(Counters::default());
        let (q, rx) = Queue::new(10, counters.clone());
        let tx = UdpSocket::bind("127.0.0.1:0").expect("client");
        let good = binary::encode(&record(200)).expect("frame");
        tx.send_to(&good, addr).expect("send");
        tx.send_to(b"not a frame", addr).expect("send");
        let mut two = good.clone();
        two.extend(&good);
        tx.send_to(&two, addr).expect("send");
        tx.send_to(&binary::encode(&record(503)).expect("frame"), addr)
            .expect("send");
        let h = std::thread::spawn(move || run(&sock, &q, "test"));
        let mut got = Vec::new();
        while got.len() < 2 {
            let batch = rx.recv_timeout(Duration::from_secs(5)).expect("records");
            got.extend(batch.into_iter().map(|e| e.record.status));
        }
        assert_eq!(got, vec![200, 503]);
        assert_eq!(counters.snapshot().malformed[Source::Udp as usize], 2);
        // The global stop flag is shared by all tests: leave the thread be.
        drop(h);
    }
}
