//! Carries a record out along the route [`crate::transport::route`]
//! decides: the FIFO, the spool, UDP to the relay (the socket build; sealed
//! with a MAC when `relaySecret` is set, and with `directStatsd` the
//! DogStatsD lines straight to the agent). When none takes it, the caller
//! writes the fallback log line, the one step that needs the host.

use super::System;
use crate::config::Config;
use crate::metrics::dogstatsd::{self, Names, Packer, UDP_MAX_DATAGRAM};
use crate::record::Record;
use crate::transport::network::{Dest, Link, UdpSys};
use crate::transport::pipe::Pipe;
use crate::transport::route::{Failed, LineLevel, Outlets, Step};
use crate::transport::spool::Spool;
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
        }
    }

    /// Sends a record along its route. `now_ns`: the request's end, read
    /// just before; a clock read is a host call, and the transports only
    /// need it for their retry windows. `Err`: no outlet took the record,
    /// which must go out as a log line at that level.
    pub fn send(&mut self, record: &mut Record, now_ns: i64) -> Result<(), LineLevel> {
        let mut route = self.outlets.route();
        let mut step = route.first();
        let mut frame = None;
        loop {
            let failed = match step {
                Step::Pipe => match (self.pipe.as_mut(), binary::encode(record)) {
                    (Some(pipe), Ok(f)) => {
                        if pipe.send(&f, now_ns).is_ok() {
                            return Ok(());
                        }
                        frame = Some(f);
                        Failed::Pipe
                    }
                    _ => Failed::Encode,
                },
                Step::Spool => match frame.as_ref() {
                    Some(f) => match self.spool.append(f, now_ns) {
                        Ok(()) => return Ok(()),
                        Err(e) => Failed::Spool(e),
                    },
                    None => Failed::Encode,
                },
                Step::Network => {
                    if let Some(net) = self.net.as_mut() {
                        if net.send(record, now_ns) {
                            return Ok(());
                        }
                    }
                    Failed::Network
                }
                Step::Line(level) => return Err(level),
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
