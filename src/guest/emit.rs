//! Where records leave the guest. Every mode writes the fallback line for
//! now; the pipe and network transports plug in here.

use http_wasm_guest::host::log;
use tdp_core::config::{Config, ConfigError};
use tdp_core::fallback;
use tdp_core::record::Record;

const LEVEL_INFO: i32 = 0;
const LEVEL_ERROR: i32 = 2;

pub fn record(_config: &Config, record: &Record) {
    log::write(LEVEL_INFO, fallback::encode(record).as_bytes());
}

pub fn config_error(e: &ConfigError) {
    let msg = format!(
        "traefik-datadog: invalid config: {e}; this middleware passes traffic through untouched and records nothing"
    );
    log::write(LEVEL_ERROR, msg.as_bytes());
}
