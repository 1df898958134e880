//! Learned routes: the response sizes of the records that pass, kept by a
//! [`Learner`] and published beside the FIFO for the plugin's instances
//! (see `tdp_core::buffering::learned`). Publishing happens on the pipeline thread, at
//! most once per [`PUBLISH_EVERY`], and only when the set changed.

use crate::publish::publish;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tdp_core::buffering::learned::{FILE_NAME, Learner};
use tdp_core::record::Record;

pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);

pub struct Routes {
    learner: Learner,
    dir: PathBuf,
    next_publish: Instant,
    /// The last write failed: write again at the next tick.
    failed: bool,
}

impl Routes {
    /// `None` when learning is off. The published file starts empty, so a
    /// relay that restarts does not leave another run's routes behind.
    pub fn new(dir: PathBuf, threshold: u64, ttl: Duration) -> Option<Self> {
        let learner = Learner::new(threshold, i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX));
        learner.enabled().then(|| {
            let mut r = Self {
                learner,
                dir,
                next_publish: Instant::now(),
                failed: false,
            };
            r.write();
            r
        })
    }

    pub fn observe(&mut self, r: &Record) {
        let end = r.start_ns.saturating_add(r.duration_ns);
        if self
            .learner
            .observe(&r.host, &r.path, r.content_length, end)
        {
            info!(
                "learned a large route: {} {} ({} bytes); its responses are no longer buffered",
                r.host,
                tdp_core::buffering::learned::route_prefix(&r.path),
                r.content_length.unwrap_or(0)
            );
        }
    }

    pub fn tick(&mut self, now: Instant) {
        if now < self.next_publish {
            return;
        }
        self.next_publish = now + PUBLISH_EVERY;
        self.learner.expire(tdp_core::time::now_unix_ns());
        if self.learner.take_changed() || self.failed {
            self.write();
        }
    }

    fn write(&mut self) {
        match publish(&self.dir, FILE_NAME, &self.learner.render()) {
            Ok(_) => self.failed = false,
            Err(e) => {
                if !self.failed {
                    warn!(
                        "cannot publish learned routes in {}: {e}; large routes stay buffered",
                        self.dir.display()
                    );
                }
                self.failed = true;
            }
        }
    }
}
