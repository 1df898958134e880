//! The agent's sampling rates, followed through the file the relay
//! publishes beside the FIFO (`tdp_core::agent_rates`).

use super::watch::WasiFiles;
use http_wasm_guest::host::log;
use tdp_core::agent_rates::{self, FILE_NAME, Follow};
use tdp_core::config::Config;
use tdp_core::watch::beside;

const LEVEL_WARN: i32 = 1;

/// The instance's follower, or `None` (said once) where the mode has no
/// mounted directory.
pub fn follow(config: &Config) -> Option<Follow<WasiFiles>> {
    let socket_build = cfg!(feature = "network");
    if let Some(notice) = agent_rates::unfollowed_notice(config, socket_build) {
        log::write(LEVEL_WARN, notice.as_bytes());
    }
    agent_rates::followed(config, socket_build).then(|| {
        Follow::new(
            WasiFiles,
            beside(&config.pipe_path, FILE_NAME),
            &config.service,
            &config.env,
        )
    })
}

/// The agent's rate now; a rejected file is said once.
pub fn rate(follow: &mut Option<Follow<WasiFiles>>, now_ns: i64) -> Option<f64> {
    let f = follow.as_mut()?;
    let rate = f.rate(now_ns);
    if let Some(e) = f.take_error() {
        let msg = format!(
            "traefik-datadog: {} {e}; the previous sampling rates stay",
            f.path()
        );
        log::write(LEVEL_WARN, msg.as_bytes());
    }
    rate
}
