//! Carries out the route [`tdp_core::outlet`] decides for each record: the
//! FIFO, the spool, UDP to the relay (the plugin-net.wasm build; sealed with
//! a MAC when `relaySecret` is set, and with `directStatsd` the DogStatsD
//! lines straight to the agent), and last the fallback log line.

use super::pipe::WasiPipe;
use super::spool::WasiSpool;
use http_wasm_guest::host::log;
use tdp_core::binary;
use tdp_core::config::{Config, ConfigError};
use tdp_core::fallback;
use tdp_core::limits;
use tdp_core::outlet::{Failed, LineLevel, Outlets, Step};
use tdp_core::record::Record;
use tdp_core::spool::Spool;
use tdp_core::transport::Pipe;

const LEVEL_INFO: i32 = 0;
const LEVEL_WARN: i32 = 1;
const LEVEL_ERROR: i32 = 2;

pub struct Emitter {
    outlets: Outlets,
    pipe: Option<Pipe<WasiPipe>>,
    spool: Spool<WasiSpool>,
    #[cfg(feature = "network")]
    net: Option<network::Net>,
}

impl Emitter {
    pub fn new(config: &Config) -> Self {
        let outlets = Outlets::new(config.mode, cfg!(feature = "network"));
        Self {
            outlets,
            pipe: outlets.pipe.then(|| Pipe::new(WasiPipe, &config.pipe_path)),
            spool: Spool::with_limit(WasiSpool, &config.pipe_path, config.spool_max_bytes),
            #[cfg(feature = "network")]
            net: outlets.network.then(|| network::Net::new(config)),
        }
    }

    /// `now_ns`: the request's end, read just before; a clock read is a
    /// host call, and the transports only need it for their retry windows.
    /// `protocol`: the request's protocol version, which only the log line
    /// shows, asked of the host only for a record that becomes one.
    pub fn record(&mut self, record: &mut Record, now_ns: i64, protocol: impl FnOnce() -> String) {
        // Whatever the request carried, the record now fits one frame.
        limits::fit(record);
        let mut route = self.outlets.route();
        let mut step = route.first();
        let mut frame = None;
        loop {
            let failed = match step {
                Step::Pipe => match (self.pipe.as_mut(), binary::encode(record)) {
                    (Some(pipe), Ok(f)) => {
                        if pipe.send(&f, now_ns).is_ok() {
                            return;
                        }
                        frame = Some(f);
                        Failed::Pipe
                    }
                    _ => Failed::Encode,
                },
                Step::Spool => match frame.as_ref() {
                    Some(f) => match self.spool.append(f, now_ns) {
                        Ok(()) => return,
                        Err(e) => Failed::Spool(e),
                    },
                    None => Failed::Encode,
                },
                Step::Network => {
                    #[cfg(feature = "network")]
                    if let Some(net) = self.net.as_mut() {
                        if net.send(record, now_ns) {
                            return;
                        }
                    }
                    Failed::Network
                }
                Step::Line(level) => {
                    record.protocol = protocol();
                    let level = match level {
                        LineLevel::Info => LEVEL_INFO,
                        LineLevel::Error => LEVEL_ERROR,
                    };
                    log::write(level, fallback::encode(record).as_bytes());
                    return;
                }
            };
            step = route.next(failed);
        }
    }
}

/// Said once per instance when the configured mode needs the other build.
pub fn mode_warning(config: &Config) {
    if Outlets::needs_network_build(config.mode, cfg!(feature = "network")) {
        log::write(
            LEVEL_WARN,
            b"traefik-datadog: mode \"network\" needs plugin-net.wasm (the socket build); this plugin.wasm uses the pipe, else log lines",
        );
    }
}

pub fn config_error(e: &ConfigError) {
    let msg = format!(
        "traefik-datadog: invalid config: {e}; this middleware passes traffic through untouched and records nothing"
    );
    log::write(LEVEL_ERROR, msg.as_bytes());
}

#[cfg(feature = "network")]
mod network {
    use super::super::net::WasiUdp;
    use std::net::{IpAddr, SocketAddr};
    use tdp_core::binary;
    use tdp_core::config::Config;
    use tdp_core::dogstatsd::{self, Names, Packer, UDP_MAX_DATAGRAM};
    use tdp_core::mac::MacKey;
    use tdp_core::network::{Dest, Link};
    use tdp_core::record::Record;

    pub struct Net {
        sys: WasiUdp,
        names: Names,
        statsd: Option<Link>,
        relay: Link,
        key: Option<MacKey>,
    }

    impl Net {
        pub fn new(config: &Config) -> Self {
            // Off by default: the host race cuts and duplicates DogStatsD
            // lines, which carry no checksum; the relay builds the metrics
            // from checked frames instead. Validation guarantees a literal IP.
            let statsd = config
                .direct_statsd
                .then(|| config.agent_host.parse::<IpAddr>().ok())
                .flatten()
                .map(|ip| Link::new(Dest::Statsd, SocketAddr::new(ip, config.statsd_port)));
            Self {
                sys: WasiUdp,
                names: Names::new(dogstatsd::DEFAULT_PREFIX),
                statsd,
                relay: Link::new(Dest::Relay, config.relay_address),
                key: config.relay_key.clone(),
            }
        }

        /// DogStatsD first (so the frame can say whether it went), then the
        /// span record. False: the record must go out another way.
        pub fn send(&mut self, record: &mut Record, now: i64) -> bool {
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
}
