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
    /// The relay's `DD_ENV` as the agent keys it (lowercase): records
    /// without an env get it, so their spans are rated under it (below).
    default_env: String,
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
            default_env: String::new(),
            published: None,
            failing: false,
        }
    }

    /// The env the relay gives records that carry none (`DD_ENV`).
    pub fn with_default_env(mut self, env: &str) -> Self {
        self.default_env = env.trim().to_lowercase();
        self
    }

    /// Publishes `rates` unless the file already holds them. A failed write
    /// is said once (until one succeeds) and tried again on the next answer.
    pub fn offer(&mut self, rates: &BTreeMap<String, f64>) {
        let Some(dir) = self.dir.clone() else { return };
        if self.published.as_ref() == Some(rates) {
            return;
        }
        let file = aliased(rates, &self.default_env);
        let bytes = encode(file.iter().map(|(k, v)| (k.as_str(), *v)));
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

/// The rates as the plugin should read them. A plugin instance whose
/// Middleware sets no env looks its rate up under `service:S,env:`, but
/// the relay fills that span's env from `DD_ENV`, and the agent rates it
/// under `service:S,env:<DD_ENV>`: each such rate is also published under
/// the empty env, unless the agent answered one for the empty env itself
/// (which stands).
pub fn aliased(rates: &BTreeMap<String, f64>, default_env: &str) -> BTreeMap<String, f64> {
    let mut out = rates.clone();
    if default_env.is_empty() {
        return out;
    }
    let suffix = format!(",env:{default_env}");
    for (k, v) in rates {
        if let Some(service) = k
            .strip_suffix(&suffix)
            .filter(|s| s.starts_with("service:"))
        {
            out.entry(format!("{service},env:")).or_insert(*v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_the_default_env_also_stand_for_no_env() {
        let rates: BTreeMap<String, f64> = [
            ("service:edge,env:prod", 0.25),
            ("service:api,env:prod", 0.5),
            ("service:api,env:", 0.75),
            ("service:edge,env:staging", 0.1),
            ("service:,env:", 1.0),
            ("service:x,env:production", 0.3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let out = aliased(&rates, "prod");
        let want: BTreeMap<String, f64> = [
            ("service:edge,env:prod", 0.25),
            ("service:edge,env:", 0.25),
            ("service:api,env:prod", 0.5),
            // The agent's own entry for the empty env wins.
            ("service:api,env:", 0.75),
            ("service:edge,env:staging", 0.1),
            ("service:,env:", 1.0),
            ("service:x,env:production", 0.3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(out, want);
        assert_eq!(aliased(&rates, ""), rates);
    }

    #[test]
    fn the_published_file_carries_the_aliases() {
        let d = std::env::temp_dir().join(format!("tdp-rates-alias-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        let mut r = RatesFile::new(Some(d.clone())).with_default_env(" Prod ");
        let rates = [("service:edge,env:prod".to_owned(), 0.5)]
            .into_iter()
            .collect();
        r.offer(&rates);
        assert_eq!(
            std::fs::read(d.join(FILE_NAME)).expect("read"),
            b"service:edge,env:\t0.5\nservice:edge,env:prod\t0.5\n"
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

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
