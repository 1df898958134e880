//! Sends DogStatsD datagrams over UDP or a Unix datagram socket. Sending
//! never blocks: the socket is non-blocking, and a datagram the kernel or
//! the agent cannot take now is dropped and counted. The socket is opened
//! lazily and again after failures (agent not started yet, restarted).

use crate::dd_tags::LineExtras;
use crate::log::{Throttle, held};
use crate::settings::StatsdUrl;
use crate::telemetry::Counters;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdp_core::metrics::dogstatsd::{Packer, UDP_MAX_DATAGRAM, UDS_MAX_DATAGRAM};

const REOPEN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

#[derive(Debug)]
pub struct StatsdSink {
    url: StatsdUrl,
    socket: Option<Socket>,
    last_open: Option<Instant>,
    counters: Arc<Counters>,
    throttle: Throttle,
    /// `DD_TAGS` and the container's origin fields, added to every line.
    extras: LineExtras,
}

impl StatsdSink {
    pub fn new(url: StatsdUrl, counters: Arc<Counters>) -> Self {
        Self {
            url,
            socket: None,
            last_open: None,
            counters,
            throttle: Throttle::new(Duration::from_secs(30)),
            extras: LineExtras::default(),
        }
    }

    /// Every line sent gets `extras` (tags it lacks, origin fields).
    pub fn with_extras(mut self, extras: LineExtras) -> Self {
        self.extras = extras;
        self
    }

    /// The largest datagram for this transport.
    pub fn max_datagram(&self) -> usize {
        match self.url {
            StatsdUrl::Udp { .. } => UDP_MAX_DATAGRAM,
            StatsdUrl::Unix(_) => UDS_MAX_DATAGRAM,
        }
    }

    pub fn packer(&self) -> Packer {
        Packer::new(self.max_datagram())
    }

    fn open(&self) -> io::Result<Socket> {
        match &self.url {
            StatsdUrl::Udp { host, port } => {
                let addr: SocketAddr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Ok(Socket::Udp(s))
            }
            StatsdUrl::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_nonblocking(true)?;
                Ok(Socket::Unix(s))
            }
        }
    }

    fn problem(&mut self, what: &str, e: &io::Error) {
        if let Some(h) = self.throttle.allow() {
            warn!("dogstatsd {}: {what}: {e}{}", self.url, held(h));
        }
    }

    /// Sends the packer's datagrams and the count of lines it dropped.
    /// With extras, the lines are packed again with them (every few
    /// seconds, not per request: the copy is cheap).
    pub fn send_packed(&mut self, packer: &mut Packer) {
        Counters::add(
            &self.counters.statsd_oversized,
            std::mem::take(&mut packer.oversized),
        );
        let datagrams = packer.take();
        let datagrams = if self.extras.is_empty() {
            datagrams
        } else {
            let mut again = self.packer();
            for d in &datagrams {
                for line in d.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    again.push(&self.extras.decorate(&String::from_utf8_lossy(line)));
                }
            }
            Counters::add(&self.counters.statsd_oversized, again.oversized);
            again.take()
        };
        for d in datagrams {
            self.send(&d);
        }
    }

    pub fn send(&mut self, datagram: &[u8]) {
        if self.socket.is_none() {
            if self.last_open.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
                Counters::add(&self.counters.statsd_errors, 1);
                return;
            }
            self.last_open = Some(Instant::now());
            match self.open() {
                Ok(s) => self.socket = Some(s),
                Err(e) => {
                    self.problem("cannot open", &e);
                    Counters::add(&self.counters.statsd_errors, 1);
                    return;
                }
            }
        }
        let r = match &self.socket {
            Some(Socket::Udp(s)) => s.send(datagram),
            Some(Socket::Unix(s)) => s.send(datagram),
            None => return,
        };
        match r {
            Ok(_) => Counters::add(&self.counters.statsd_datagrams, 1),
            Err(e) => {
                Counters::add(&self.counters.statsd_errors, 1);
                // UDP: ECONNREFUSED only reports an earlier datagram nobody
                // read; the socket is fine. A Unix socket whose agent went
                // away must be reconnected.
                let reopen = !matches!(
                    (&self.socket, e.kind()),
                    (_, io::ErrorKind::WouldBlock)
                        | (Some(Socket::Udp(_)), io::ErrorKind::ConnectionRefused)
                );
                self.problem("send failed", &e);
                if reopen {
                    self.socket = None;
                    self.last_open = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_over_udp() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let port = rx.local_addr().expect("addr").port();
        let c = Arc::new(Counters::default());
        let mut s = StatsdSink::new(
            StatsdUrl::Udp {
                host: "127.0.0.1".into(),
                port,
            },
            c.clone(),
        );
        assert_eq!(s.max_datagram(), 1432);
        let mut p = s.packer();
        p.push("a:1|c");
        p.push("b:2|g");
        s.send_packed(&mut p);
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], b"a:1|c\nb:2|g\n");
        assert_eq!(c.snapshot().statsd_datagrams, 1);
    }

    #[test]
    fn every_line_gets_the_extras() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let port = rx.local_addr().expect("addr").port();
        let c = Arc::new(Counters::default());
        let extras = LineExtras {
            tags: [("team".to_owned(), "relay".to_owned())]
                .into_iter()
                .collect(),
            origin: "|c:abc".to_owned(),
        };
        let mut s = StatsdSink::new(
            StatsdUrl::Udp {
                host: "127.0.0.1".into(),
                port,
            },
            c.clone(),
        )
        .with_extras(extras);
        let mut p = s.packer();
        p.push("a:1|c|#team:edge");
        p.push("b:2|g");
        s.send_packed(&mut p);
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).expect("datagram");
        assert_eq!(
            &buf[..n],
            b"a:1|c|#team:edge|c:abc\nb:2|g|#team:relay|c:abc\n"
        );
    }

    #[test]
    fn unix_socket_absent_then_present() {
        let dir = std::env::temp_dir().join(format!("relay-statsd-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("dsd.socket");
        let _ = std::fs::remove_file(&path);
        let c = Arc::new(Counters::default());
        let mut s = StatsdSink::new(StatsdUrl::Unix(path.clone()), c.clone());
        assert_eq!(s.max_datagram(), 8192);
        s.send(b"x:1|c\n");
        assert_eq!(c.snapshot().statsd_errors, 1, "no agent yet: counted");
        let rx = UnixDatagram::bind(&path).expect("bind");
        s.last_open = None; // skip the reopen wait
        s.send(b"x:2|c\n");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], b"x:2|c\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
