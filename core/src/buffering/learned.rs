//! Routes learned to be large: a host and path prefix whose response was at
//! least `--learn-bytes` once is not buffered again. The relay sees every
//! record's response size, keeps the routes in a [`Learner`] and publishes
//! them beside the FIFO ([`FILE_NAME`]); every instance reads them off the
//! hot path (`crate::transport::watch`) into [`LearnedRoutes`].
//!
//! The file is text, one route a line after a header line:
//! `traefik-datadog routes 1`, then `<host>\t<path prefix>` lines. Lines that
//! do not parse are skipped; at most [`MAX_ROUTES`] are read.

use std::collections::HashMap;

/// The published file's name, beside the FIFO.
pub const FILE_NAME: &str = "traefik-datadog.routes";
pub const HEADER: &str = "traefik-datadog routes 1";
/// Routes kept and read: the oldest is forgotten first.
pub const MAX_ROUTES: usize = 512;
/// The longest path prefix kept; a longer one is cut (still a prefix).
pub const MAX_PREFIX: usize = 256;
/// The longest host kept; a route with a longer host is not learned.
pub const MAX_HOST: usize = 253;

/// The path prefix a response size is learned for: the path's directory
/// (`/files/a/b.bin` -> `/files/a/`), since files beside a large one tend to
/// be large too; a path at the root stands for itself (`/export` ->
/// `/export`); `/` itself is never learned, so one large response never
/// unbuffers a whole host.
pub fn route_prefix(path: &str) -> &str {
    let dir = match path.rfind('/') {
        Some(i) if i > 0 => &path[..=i],
        _ => path,
    };
    cut(dir, MAX_PREFIX)
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn storable(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\t', '\n', '\r'])
}

/// A path prefix worth a route: never `/` alone, which would unbuffer a
/// whole host.
fn is_prefix(p: &str) -> bool {
    storable(p) && p.starts_with('/') && p != "/"
}

/// The routes an instance read: sorted by host, so a request looks only at
/// its own host's prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnedRoutes {
    routes: Vec<(String, String)>,
}

impl LearnedRoutes {
    pub fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Self::default();
        }
        let mut routes: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once('\t'))
            .filter(|(h, p)| storable(h) && is_prefix(p))
            .take(MAX_ROUTES)
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
            .collect();
        routes.sort();
        routes.dedup();
        Self { routes }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether `path` on `host` lies under a learned prefix.
    pub fn contains(&self, host: &str, path: &str) -> bool {
        if self.routes.is_empty() {
            return false;
        }
        let start = self.routes.partition_point(|(h, _)| h.as_str() < host);
        self.routes[start..]
            .iter()
            .take_while(|(h, _)| h == host)
            .any(|(_, p)| path.starts_with(p.as_str()))
    }
}

/// The relay's memory of large routes.
#[derive(Debug)]
pub struct Learner {
    threshold: u64,
    ttl_ns: i64,
    last_seen: HashMap<(String, String), i64>,
    changed: bool,
}

impl Learner {
    /// `threshold`: the response size that makes a route large (0: learn
    /// nothing); `ttl_ns`: how long a route stays learned after its last
    /// large response.
    pub fn new(threshold: u64, ttl_ns: i64) -> Self {
        Self {
            threshold,
            ttl_ns,
            last_seen: HashMap::new(),
            changed: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.threshold > 0
    }

    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    /// Takes one record's response size. True when the route is new.
    pub fn observe(&mut self, host: &str, path: &str, size: Option<u64>, now_ns: i64) -> bool {
        let Some(size) = size else { return false };
        if self.threshold == 0 || size < self.threshold {
            return false;
        }
        let prefix = route_prefix(path);
        if !storable(host) || host.len() > MAX_HOST || !is_prefix(prefix) {
            return false;
        }
        let key = (host.to_owned(), prefix.to_owned());
        let new = self.last_seen.insert(key, now_ns).is_none();
        if new {
            self.changed = true;
            if self.last_seen.len() > MAX_ROUTES {
                self.forget_oldest();
            }
        }
        new
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .last_seen
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(k, _)| k.clone())
        {
            self.last_seen.remove(&oldest);
        }
    }

    /// Forgets routes not seen large for the TTL. Returns how many.
    pub fn expire(&mut self, now_ns: i64) -> usize {
        let before = self.last_seen.len();
        let ttl = self.ttl_ns;
        self.last_seen
            .retain(|_, seen| now_ns.saturating_sub(*seen) < ttl);
        let gone = before - self.last_seen.len();
        self.changed |= gone > 0;
        gone
    }

    /// True once after each change of the set of routes.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The file to publish, routes sorted.
    pub fn render(&self) -> Vec<u8> {
        let mut routes: Vec<_> = self.last_seen.keys().collect();
        routes.sort();
        let mut out = String::with_capacity(HEADER.len() + 1 + routes.len() * 48);
        out.push_str(HEADER);
        out.push('\n');
        for (host, prefix) in routes {
            out.push_str(host);
            out.push('\t');
            out.push_str(prefix);
            out.push('\n');
        }
        out.into_bytes()
    }
}

#[cfg(test)]
#[path = "learned_tests.rs"]
mod tests;
