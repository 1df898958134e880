//! The network mode's decisions, apart from the socket calls: one connected
//! UDP socket per destination, found again or opened, and what a send error
//! means. The guest supplies the calls through [`UdpSys`]; tests a fake.
//!
//! Traefik's socket extension shares one fd table between all instances of
//! a middleware and never closes an instance's sockets when it drops the
//! instance. So an instance first looks for a socket a sibling already
//! connected to the same destination ([`UdpSys::find`]; the guest tags each
//! destination's sockets with their fd flags) and opens its own only when
//! there is none: the number of sockets stays near the peak concurrency of
//! the first burst instead of growing with every new instance. A socket the
//! instance did not open is never closed by it.
//!
//! A connected UDP socket learns that nobody listens only afterwards: the
//! kernel reports a datagram's "port unreachable" as `ECONNREFUSED` on the
//! *next* send, and that send does not go out. Taking that answer as "the
//! destination is down" for [`RETRY_NS`] sends every record the fallback way
//! meanwhile; when the window ends, an empty probe datagram goes first, so on
//! loopback the refusal lands on the probe's successor, which falls back,
//! instead of losing a real record. Readers ignore empty datagrams.
//!
//! The probe is a send like any other, so the host race can put a sibling's
//! bytes on the wire in its place. The host then reports more than zero
//! bytes sent: the link counts that and lets the caller mark the datagram
//! that follows, so a receiver can tell a probe's stray from a lost record's.

use std::net::SocketAddr;

/// WASI errno values (the guest is always WASI).
pub mod errno {
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const CONNREFUSED: i32 = 14;
    pub const DESTADDRREQ: i32 = 17;
    pub const INVAL: i32 = 28;
    pub const ISCONN: i32 = 30;
    pub const NOBUFS: i32 = 42;
    pub const NOTCONN: i32 = 53;
    pub const NOTSOCK: i32 = 57;
    pub const PIPE: i32 = 64;
}

/// How long before a destination whose socket broke or could not be opened
/// is tried again.
pub const RETRY_NS: i64 = 3_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The relay's `--udp` input: span records.
    Relay,
    /// DogStatsD on the agent.
    Statsd,
}

pub trait UdpSys {
    /// A socket already connected to `dest` by any instance, if one exists.
    fn find(&mut self, dest: Dest) -> Option<i32>;
    /// Opens, connects and tags a non-blocking UDP socket.
    fn open(&mut self, dest: Dest, addr: SocketAddr) -> Result<i32, i32>;
    /// One datagram; the errno on failure.
    fn send(&mut self, fd: i32, datagram: &[u8]) -> Result<usize, i32>;
}

/// Why a datagram was not sent.
/// The socket calls of a build without sockets (plugin.wasm): a type with
/// no value, so that code which would send is known unreachable there and
/// left out of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSockets {}

impl UdpSys for NoSockets {
    fn find(&mut self, _: Dest) -> Option<i32> {
        match *self {}
    }

    fn open(&mut self, _: Dest, _: SocketAddr) -> Result<i32, i32> {
        match *self {}
    }

    fn send(&mut self, _: i32, _: &[u8]) -> Result<usize, i32> {
        match *self {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFail {
    /// No socket: opening failed (errno) or waiting out [`RETRY_NS`].
    NoSocket(i32),
    /// The destination refused a datagram lately: not tried until
    /// [`RETRY_NS`] has passed.
    Down,
    /// The socket is fine but this datagram was refused (full buffer,
    /// nobody listening): dropped.
    Dropped(i32),
    /// The socket looks broken; it is forgotten and looked up again later.
    Broken(i32),
}

/// Errors that mean "this fd is not (or no longer) our connected socket".
fn is_broken(e: i32) -> bool {
    matches!(
        e,
        errno::BADF
            | errno::NOTSOCK
            | errno::NOTCONN
            | errno::DESTADDRREQ
            | errno::ISCONN
            | errno::INVAL
            | errno::PIPE
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub sent: u64,
    pub dropped: u64,
    pub opened: u64,
    pub adopted: u64,
    pub broken: u64,
    pub refused: u64,
    /// Probes that went out carrying a sibling's bytes.
    pub stray_probes: u64,
}

#[derive(Debug)]
enum State {
    Idle {
        retry_at_ns: i64,
    },
    /// `probe`: send an empty datagram before the next real one.
    Ready {
        fd: i32,
        probe: bool,
    },
    Down {
        fd: i32,
        retry_at_ns: i64,
    },
}

/// One destination of one instance.
#[derive(Debug)]
pub struct Link {
    dest: Dest,
    addr: SocketAddr,
    state: State,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(dest: Dest, addr: SocketAddr) -> Self {
        Self {
            dest,
            addr,
            state: State::Idle {
                retry_at_ns: i64::MIN,
            },
            stats: LinkStats::default(),
        }
    }

    fn socket<S: UdpSys>(&mut self, sys: &mut S, now_ns: i64) -> Result<(i32, bool), SendFail> {
        match self.state {
            State::Ready { fd, probe } => return Ok((fd, probe)),
            State::Down { retry_at_ns, .. } if now_ns < retry_at_ns => return Err(SendFail::Down),
            State::Down { fd, .. } => return Ok((fd, true)),
            State::Idle { retry_at_ns } if now_ns < retry_at_ns => {
                return Err(SendFail::NoSocket(0));
            }
            State::Idle { .. } => {}
        }
        if let Some(fd) = sys.find(self.dest) {
            self.stats.adopted += 1;
            return Ok((fd, true));
        }
        match sys.open(self.dest, self.addr) {
            Ok(fd) => {
                self.stats.opened += 1;
                Ok((fd, true))
            }
            Err(e) => {
                self.state = State::Idle {
                    retry_at_ns: now_ns.saturating_add(RETRY_NS),
                };
                Err(SendFail::NoSocket(e))
            }
        }
    }

    fn fail(&mut self, fd: i32, e: i32, now_ns: i64) -> SendFail {
        let retry_at_ns = now_ns.saturating_add(RETRY_NS);
        if e == errno::CONNREFUSED {
            self.stats.refused += 1;
            self.state = State::Down { fd, retry_at_ns };
            SendFail::Down
        } else if is_broken(e) {
            self.stats.broken += 1;
            self.state = State::Idle { retry_at_ns };
            SendFail::Broken(e)
        } else {
            self.state = State::Ready { fd, probe: false };
            SendFail::Dropped(e)
        }
    }

    /// Sends one datagram with one call (two after a pause: probe first);
    /// never blocks, never retries. When the probe carried a sibling's bytes,
    /// `on_stray_probe` may mark the datagram before it goes.
    pub fn send<S: UdpSys>(
        &mut self,
        sys: &mut S,
        datagram: &mut [u8],
        now_ns: i64,
        on_stray_probe: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendFail> {
        let result = self.socket(sys, now_ns).and_then(|(fd, probe)| {
            if probe {
                match sys.send(fd, &[]) {
                    Ok(0) => {}
                    Ok(_) => {
                        self.stats.stray_probes += 1;
                        on_stray_probe(datagram);
                    }
                    Err(e) => return Err(self.fail(fd, e, now_ns)),
                }
            }
            match sys.send(fd, datagram) {
                Ok(n) if n == datagram.len() => {
                    self.state = State::Ready { fd, probe: false };
                    Ok(())
                }
                Ok(_) => {
                    self.state = State::Ready { fd, probe: false };
                    Err(SendFail::Dropped(errno::NOBUFS))
                }
                Err(e) => Err(self.fail(fd, e, now_ns)),
            }
        });
        match result {
            Ok(()) => self.stats.sent += 1,
            Err(_) => self.stats.dropped += 1,
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Fake {
        found: Option<i32>,
        opens: VecDeque<Result<i32, i32>>,
        sends: VecDeque<Result<usize, i32>>,
        calls: Vec<String>,
    }

    impl UdpSys for Fake {
        fn find(&mut self, dest: Dest) -> Option<i32> {
            self.calls.push(format!("find {dest:?}"));
            self.found
        }
        fn open(&mut self, dest: Dest, addr: SocketAddr) -> Result<i32, i32> {
            self.calls.push(format!("open {dest:?} {addr}"));
            self.opens.pop_front().unwrap_or(Err(errno::NOBUFS))
        }
        fn send(&mut self, fd: i32, d: &[u8]) -> Result<usize, i32> {
            self.calls.push(format!("send {fd} {}", d.len()));
            self.sends.pop_front().unwrap_or(Ok(d.len()))
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:8125".parse().expect("addr")
    }

    fn fake(opens: Vec<Result<i32, i32>>, sends: Vec<Result<usize, i32>>) -> Fake {
        Fake {
            opens: opens.into(),
            sends: sends.into(),
            ..Fake::default()
        }
    }

    #[test]
    fn adopts_a_siblings_socket_before_opening_one() {
        let mut sys = Fake {
            found: Some(9),
            ..Fake::default()
        };
        let mut l = Link::new(Dest::Statsd, addr());
        assert_eq!(l.send(&mut sys, &mut b"abc".to_vec(), 0, |_| {}), Ok(()));
        assert_eq!(l.send(&mut sys, &mut b"de".to_vec(), 1, |_| {}), Ok(()));
        // An empty probe first, then one call per datagram.
        assert_eq!(
            sys.calls,
            vec!["find Statsd", "send 9 0", "send 9 3", "send 9 2"]
        );
        assert_eq!(
            l.stats,
            LinkStats {
                sent: 2,
                adopted: 1,
                ..LinkStats::default()
            }
        );
    }

    #[test]
    fn opens_when_none_found_and_waits_after_a_failed_open() {
        let mut sys = fake(vec![Err(errno::NOBUFS), Ok(4)], vec![]);
        let mut l = Link::new(Dest::Relay, "10.0.0.1:8127".parse().expect("addr"));
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 0, |_| {}),
            Err(SendFail::NoSocket(errno::NOBUFS))
        );
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), RETRY_NS - 1, |_| {}),
            Err(SendFail::NoSocket(0))
        );
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), RETRY_NS, |_| {}),
            Ok(())
        );
        assert_eq!(
            sys.calls,
            vec![
                "find Relay",
                "open Relay 10.0.0.1:8127",
                "find Relay",
                "open Relay 10.0.0.1:8127",
                "send 4 0",
                "send 4 1"
            ]
        );
        assert_eq!(
            l.stats,
            LinkStats {
                sent: 1,
                dropped: 2,
                opened: 1,
                ..LinkStats::default()
            }
        );
    }

    #[test]
    fn full_buffer_drops_but_keeps_the_socket() {
        let mut sys = fake(vec![Ok(4)], vec![Ok(0), Err(errno::AGAIN)]);
        let mut l = Link::new(Dest::Statsd, addr());
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 0, |_| {}),
            Err(SendFail::Dropped(errno::AGAIN))
        );
        assert_eq!(l.send(&mut sys, &mut b"a".to_vec(), 2, |_| {}), Ok(()));
        assert_eq!(
            sys.calls,
            vec![
                "find Statsd",
                "open Statsd 127.0.0.1:8125",
                "send 4 0",
                "send 4 1",
                "send 4 1"
            ]
        );
        assert_eq!((l.stats.opened, l.stats.broken), (1, 0));
    }

    #[test]
    fn refused_means_down_for_a_while_then_probe_first() {
        // The probe goes out; the real datagram learns of an earlier
        // datagram's refusal: nobody listens.
        let mut sys = fake(
            vec![Ok(4)],
            vec![
                Ok(0),
                Err(errno::CONNREFUSED),
                Ok(0),
                Err(errno::CONNREFUSED),
                Ok(0),
                Ok(1),
                Ok(0),
            ],
        );
        let mut l = Link::new(Dest::Relay, addr());
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 0, |_| {}),
            Err(SendFail::Down)
        );
        // Down: nothing is sent at all until the window ends.
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), RETRY_NS - 1, |_| {}),
            Err(SendFail::Down)
        );
        assert_eq!(sys.calls.len(), 4, "{:?}", sys.calls);
        // Window over: probe, then the real datagram is refused again.
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), RETRY_NS, |_| {}),
            Err(SendFail::Down)
        );
        // Listening again: probe, then the datagram goes; then no probe.
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 2 * RETRY_NS, |_| {}),
            Ok(())
        );
        assert_eq!(
            l.send(&mut sys, &mut b"b".to_vec(), 2 * RETRY_NS + 1, |_| {}),
            Err(SendFail::Dropped(errno::NOBUFS))
        );
        assert_eq!(
            sys.calls,
            vec![
                "find Relay",
                "open Relay 127.0.0.1:8125",
                "send 4 0",
                "send 4 1",
                "send 4 0",
                "send 4 1",
                "send 4 0",
                "send 4 1",
                "send 4 1",
            ]
        );
        assert_eq!(l.stats.refused, 2);
        assert_eq!(
            l.stats.opened, 1,
            "the socket is kept while the destination is down"
        );
    }

    #[test]
    fn a_refused_probe_is_down_too() {
        let mut sys = Fake {
            found: Some(3),
            sends: vec![Err(errno::CONNREFUSED)].into(),
            ..Fake::default()
        };
        let mut l = Link::new(Dest::Relay, addr());
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 0, |_| {}),
            Err(SendFail::Down)
        );
        assert_eq!(sys.calls, vec!["find Relay", "send 3 0"]);
    }

    #[test]
    fn broken_fd_is_forgotten_and_found_again_later() {
        let mut sys = fake(vec![Ok(4)], vec![Err(errno::BADF)]);
        let mut l = Link::new(Dest::Statsd, addr());
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 0, |_| {}),
            Err(SendFail::Broken(errno::BADF))
        );
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), 1, |_| {}),
            Err(SendFail::NoSocket(0))
        );
        sys.found = Some(11);
        assert_eq!(
            l.send(&mut sys, &mut b"a".to_vec(), RETRY_NS, |_| {}),
            Ok(())
        );
        assert_eq!(sys.calls.last().map(String::as_str), Some("send 11 1"));
        assert_eq!(
            l.stats,
            LinkStats {
                sent: 1,
                dropped: 2,
                opened: 1,
                adopted: 1,
                broken: 1,
                ..LinkStats::default()
            }
        );
    }

    #[test]
    fn a_probe_that_carried_bytes_marks_the_datagram_after_it() {
        // The host sent 175 bytes for our empty probe: a sibling's frame.
        let mut sys = fake(vec![Ok(4)], vec![Ok(175), Ok(3), Ok(3)]);
        let mut l = Link::new(Dest::Relay, addr());
        let mut first = *b"abc";
        assert_eq!(l.send(&mut sys, &mut first, 0, |d| d[0] = b'X'), Ok(()));
        assert_eq!(&first, b"Xbc");
        // No probe before the next one, so nothing to mark.
        let mut second = *b"abc";
        assert_eq!(l.send(&mut sys, &mut second, 1, |d| d[0] = b'X'), Ok(()));
        assert_eq!(&second, b"abc");
        assert_eq!(
            sys.calls,
            vec![
                "find Relay",
                "open Relay 127.0.0.1:8125",
                "send 4 0",
                "send 4 3",
                "send 4 3"
            ]
        );
        assert_eq!((l.stats.stray_probes, l.stats.sent), (1, 2));
    }

    #[test]
    fn short_send_is_a_drop() {
        let mut sys = fake(vec![Ok(4)], vec![Ok(0), Ok(1)]);
        let mut l = Link::new(Dest::Relay, addr());
        assert_eq!(
            l.send(&mut sys, &mut b"abc".to_vec(), 0, |_| {}),
            Err(SendFail::Dropped(errno::NOBUFS))
        );
    }
}
