//! Carries a record out along the route [`crate::transport::route`]
//! decides: the FIFO, the spool, UDP to the relay (the socket build; sealed
//! with a MAC when `relaySecret` is set, and with `directStatsd` the
//! DogStatsD lines straight to the agent). When none takes it, the caller
//! writes the fallback log line, the one step that needs the host.

use super::System;
use crate::config::Config;
use crate::metrics::dogstatsd::{self, Names, Packer, UDP_MAX_DATAGRAM};
use crate::record::Record;
use crate::transport::loss::{self, errno};
use crate::transport::network::{Dest, Link, UdpSys};
use crate::transport::pipe::{Fallback, Pipe};
use crate::transport::route::{Failed, LineLevel, Outlets, Step};
use crate::transport::spool::{Spool, SpoolError};
use crate::wire::binary;
use crate::wire::mac::MacKey;
use std::net::{IpAddr, SocketAddr};

/// An instance's ways out, opened at start from the mode and the build.
pub struct Outlet<S: System> {
    outlets: Outlets,
    pipe: Option<Pipe<S::Pipe>>,
    spool: Spool<S::Spool>,
    /// Always `None` in a build without sockets, where the type has no value.
    net: Option<Net<S::Udp>>,
    /// Why the pipe and the spool failed, for the instance to look into
    /// and say once (see [`crate::transport::loss`]); `watching` false once
    /// there is nothing left to say.
    pub trouble: Option<Trouble>,
    pub watching: bool,
    /// Whether [`Trouble::RelayUnreachable`] was raised already: once per
    /// instance.
    relay_trouble_raised: bool,
}

/// A failure of the FIFO or the spool that may mean records never reach
/// the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No FIFO at `pipePath`, the spool took the record: a relay not
    /// started yet, or one reading another name.
    PipeMissing,
    /// Neither took it, for a reason that lasts.
    Unwritable(Fallback, SpoolError),
    /// UDP to the relay failed and the record became an INFO line.
    RelayUnreachable,
}

impl<S: System> Outlet<S> {
    pub fn new(config: &Config, sys: &mut S) -> Self {
        let udp = sys.udp();
        let outlets = Outlets::new(config.mode, udp.is_some());
        Self {
            outlets,
            pipe: outlets
                .pipe
                .then(|| Pipe::new(sys.pipe(), &config.pipe_path)),
            spool: Spool::with_limit(sys.spool(), &config.pipe_path, config.spool_max_bytes),
            net: udp.filter(|_| outlets.network).map(|u| Net::new(config, u)),
            trouble: None,
            watching: outlets.pipe,
            relay_trouble_raised: false,
        }
    }

    /// Whether records may also go over UDP (the socket build's `auto` and
    /// `network` modes): then a missing mount loses nothing.
    pub fn has_network(&self) -> bool {
        self.outlets.network
    }

    /// Sends a record along its route. `now_ns`: the request's end, read
    /// just before; a clock read is a host call, and the transports only
    /// need it for their retry windows. `Err`: no outlet took the record,
    /// which must go out as a log line at that level.
    pub fn send(&mut self, record: &mut Record, now_ns: i64) -> Result<(), LineLevel> {
        let mut route = self.outlets.route();
        let mut step = route.first();
        let mut frame = None;
        let mut pipe_failed = None;
        let mut net_failed = false;
        loop {
            let failed = match step {
                Step::Pipe => match (self.pipe.as_mut(), binary::encode(record)) {
                    (Some(pipe), Ok(f)) => match pipe.send(&f, now_ns) {
                        Ok(()) => return Ok(()),
                        Err(why) => {
                            pipe_failed = Some(why);
                            frame = Some(f);
                            Failed::Pipe
                        }
                    },
                    _ => Failed::Encode,
                },
                Step::Spool => match frame.as_ref() {
                    Some(f) => match self.spool.append(f, now_ns) {
                        Ok(()) => {
                            if self.watching
                                && pipe_failed == Some(Fallback::Unavailable(errno::ENOENT))
                            {
                                self.trouble = Some(Trouble::PipeMissing);
                            }
                            return Ok(());
                        }
                        Err(e) => {
                            if let (true, Some(p), true) =
                                (self.watching, pipe_failed, loss::spool_failure_lasts(e))
                            {
                                self.trouble = Some(Trouble::Unwritable(p, e));
                            }
                            Failed::Spool(e)
                        }
                    },
                    None => Failed::Encode,
                },
                Step::Network => {
                    if let Some(net) = self.net.as_mut() {
                        if net.send(record, now_ns) {
                            return Ok(());
                        }
                    }
                    net_failed = true;
                    Failed::Network
                }
                Step::Line(level) => {
                    if net_failed && level == LineLevel::Info && !self.relay_trouble_raised {
                        self.relay_trouble_raised = true;
                        self.trouble = Some(Trouble::RelayUnreachable);
                    }
                    return Err(level);
                }
            };
            step = route.next(failed);
        }
    }
}

/// UDP to the relay, and with `directStatsd` DogStatsD to the agent.
struct Net<U: UdpSys> {
    sys: U,
    names: Names,
    statsd: Option<Link>,
    relay: Link,
    key: Option<MacKey>,
}

impl<U: UdpSys> Net<U> {
    fn new(config: &Config, sys: U) -> Self {
        // Off by default: the host race cuts and duplicates DogStatsD
        // lines, which carry no checksum; the relay builds the metrics
        // from checked frames instead. Validation guarantees a literal IP.
        let statsd = config
            .direct_statsd
            .then(|| config.agent_host.parse::<IpAddr>().ok())
            .flatten()
            .map(|ip| Link::new(Dest::Statsd, SocketAddr::new(ip, config.statsd_port)));
        Self {
            sys,
            names: Names::new(dogstatsd::DEFAULT_PREFIX),
            statsd,
            relay: Link::new(Dest::Relay, config.relay_address),
            key: config.relay_key.clone(),
        }
    }

    /// DogStatsD first (so the frame can say whether it went), then the
    /// span record. False: the record must go out another way.
    fn send(&mut self, record: &mut Record, now: i64) -> bool {
        if let Some(link) = self.statsd.as_mut() {
            let mut packer = Packer::new(UDP_MAX_DATAGRAM);
            for line in dogstatsd::request_lines(&self.names, record) {
                packer.push(&line);
            }
            let mut all = true;
            for mut datagram in packer.take() {
                all &= link.send(&mut self.sys, &mut datagram, now, |_| {}).is_ok();
            }
            record.metrics_sent = all;
        }
        let key = self.key.as_ref();
        let frame = match key {
            Some(k) => binary::encode_sealed(record, binary::FLAG_CHECKSUM, k),
            None => binary::encode_with(record, binary::FLAG_CHECKSUM),
        };
        match frame {
            Ok(mut frame) => self
                .relay
                .send(&mut self.sys, &mut frame, now, |f| match key {
                    Some(k) => binary::set_flag_sealed(f, binary::FLAG_AFTER_STRAY_PROBE, k),
                    None => binary::set_flag(f, binary::FLAG_AFTER_STRAY_PROBE),
                })
                .is_ok(),
            Err(_) => false,
        }
    }
}
