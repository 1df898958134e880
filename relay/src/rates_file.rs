//! Hands the agent's `rate_by_service` answers to the plugin's instances:
//! each new set of rates is published beside the FIFO
//! (`tdp_core::sampling::agent::FILE_NAME`, see [`crate::publish`]), where every
//! instance looks at most every two seconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use tdp_core::sampling::agent::{FILE_NAME, encode};

#[derive(Debug)]
pub struct RatesFile {
    dir: Option<PathBuf>,
    /// What the file holds now; `None` before the first answer, so the
    /// first one is always written (a file left by an earlier run is
    /// replaced even when the agent now answers no rates).
    published: Option<BTreeMap<String, f64>>,
    failing: bool,
}

impl RatesFile {
    /// `dir: None`: no plugin reads rates (no FIFO, no `--publish-dir`).
    pub fn new(dir: Option<PathBuf>) -> Self {
        if dir.is_none() {
            info!(
                "the agent's sampling rates are not published (no --pipe or --publish-dir): the plugin samples with its configured rates"
            );
        }
        Self {
            dir,
            published: None,
            failing: false,
        }
    }

    /// Publishes `rates` unless the file already holds them. A failed write
    /// is said once (until one succeeds) and tried again on the next answer.
    pub fn offer(&mut self, rates: &BTreeMap<String, f64>) {
        let Some(dir) = self.dir.clone() else { return };
        if self.published.as_ref() == Some(rates) {
            return;
        }
        let bytes = encode(rates.iter().map(|(k, v)| (k.as_str(), *v)));
        match crate::publish::publish(&dir, FILE_NAME, &bytes) {
            Ok(_) => {
                self.published = Some(rates.clone());
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    warn!(
                        "cannot publish the agent's sampling rates in {}: {e}; the plugin keeps its last rates",
                        dir.display()
                    );
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_each_new_answer_once() {
        let d = std::env::temp_dir().join(format!("tdp-rates-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        let file = d.join(FILE_NAME);
        std::fs::write(&file, "left by an earlier run\t0.5\n").expect("stale file");
        let mut r = RatesFile::new(Some(d.clone()));
        let mut rates = BTreeMap::new();
        r.offer(&rates);
        assert_eq!(std::fs::read(&file).expect("read"), b"");
        rates.insert("service:edge,env:prod".to_owned(), 0.1);
        rates.insert("service:,env:".to_owned(), 1.0);
        r.offer(&rates);
        let want: &[u8] = b"service:,env:\t1\nservice:edge,env:prod\t0.1\n";
        assert_eq!(std::fs::read(&file).expect("read"), want);
        // Two versions of one length, at once: still different stamps.
        let before = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        rates.insert("service:edge,env:prod".to_owned(), 0.2);
        r.offer(&rates);
        let after = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(after > before, "{before:?} {after:?}");
        assert_eq!(std::fs::read(&file).expect("read").len(), want.len());
        rates.insert("service:edge,env:prod".to_owned(), 0.1);
        r.offer(&rates);
        // The same answer again: the file is not rewritten.
        std::fs::remove_file(&file).expect("remove");
        r.offer(&rates);
        assert!(!file.exists());
        std::fs::remove_dir_all(&d).expect("cleanup");
        // A failed write is tried again on the next answer.
        let mut r = RatesFile::new(Some(d.clone()));
        r.offer(&rates);
        assert!(r.failing && r.published.is_none());
        std::fs::create_dir_all(&d).expect("temp dir");
        r.offer(&rates);
        assert_eq!(std::fs::read(&file).expect("read"), want);
        std::fs::remove_dir_all(&d).expect("cleanup");
        RatesFile::new(None).offer(&rates);
    }
}
