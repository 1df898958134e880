//! Where records leave the guest: the FIFO when the mode allows it and it
//! works, else the fallback log line, so no record is ever dropped silently.

use super::pipe::WasiPipe;
use http_wasm_guest::host::log;
use tdp_core::binary;
use tdp_core::config::{Config, ConfigError, Mode};
use tdp_core::fallback;
use tdp_core::record::Record;
use tdp_core::time::now_unix_ns;
use tdp_core::transport::Pipe;

const LEVEL_INFO: i32 = 0;
const LEVEL_ERROR: i32 = 2;

pub struct Emitter {
    pipe: Option<Pipe<WasiPipe>>,
}

impl Emitter {
    pub fn new(config: &Config) -> Self {
        // The network build does not exist yet: network behaves as auto
        // without sockets, and log never touches the pipe.
        let pipe = match config.mode {
            Mode::Auto | Mode::Pipe | Mode::Network => Some(Pipe::new(WasiPipe, &config.pipe_path)),
            Mode::Log => None,
        };
        Self { pipe }
    }

    pub fn record(&mut self, record: &Record) {
        if let Some(pipe) = self.pipe.as_mut() {
            if let Ok(frame) = binary::encode(record) {
                if pipe.send(&frame, now_unix_ns()).is_ok() {
                    return;
                }
            }
        }
        log::write(LEVEL_INFO, fallback::encode(record).as_bytes());
    }
}

pub fn config_error(e: &ConfigError) {
    let msg = format!(
        "traefik-datadog: invalid config: {e}; this middleware passes traffic through untouched and records nothing"
    );
    log::write(LEVEL_ERROR, msg.as_bytes());
}
