//! `DD_TAGS`: tags every span and metric of the relay carries, read with the
//! plugin's own rules (`tdp_core::config::env`, dd-trace-go's format, each
//! tag bounded and checked).
//!
//! Which wins, for one key: the span's own tags and the plugin's (the
//! Middleware's) over `DD_TAGS`; `env`, `service` and `version` in `DD_TAGS`
//! are not tags but defaults, below `DD_ENV`/`DD_SERVICE`/`DD_VERSION`
//! (dd-trace-go does the same with `DD_TAGS=env:x`).
//!
//! What cannot be carried is skipped and counted, never fatal; the relay
//! says so once at start.

use std::collections::BTreeMap;

/// Adds the tags whose key `into` lacks (the record's or span's own win).
pub fn fill(into: &mut BTreeMap<String, String>, tags: &BTreeMap<String, String>) {
    for (k, v) in tags {
        if !into.contains_key(k) {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// What the relay appends to each DogStatsD line: the `DD_TAGS` the line
/// lacks, then the origin fields (`|c:` container, `|e:` external env),
/// as datadog-go writes them after the tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineExtras {
    pub tags: BTreeMap<String, String>,
    /// `|c:<container ID or in-<inode>>|e:<DD_EXTERNAL_ENV>`, or empty.
    pub origin: String,
}

impl LineExtras {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.origin.is_empty()
    }

    /// `line` (`name:value|type[|@rate][|#tags]`, tags last, as the core
    /// writes it) with the extras appended.
    pub fn decorate(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len() + 64);
        out.push_str(line);
        if !self.tags.is_empty() {
            let existing: Vec<&str> = match line.split_once("|#") {
                Some((_, t)) => t
                    .split(',')
                    .map(|t| t.split(':').next().unwrap_or(t))
                    .collect(),
                None => Vec::new(),
            };
            let mut first = existing.is_empty();
            for (k, v) in &self.tags {
                if existing.contains(&k.as_str()) {
                    continue;
                }
                out.push_str(if first { "|#" } else { "," });
                first = false;
                out.push_str(k);
                if !v.is_empty() {
                    out.push(':');
                    out.push_str(v);
                }
            }
        }
        out.push_str(&self.origin);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn own_tags_win() {
        let mut span = tags(&[("team", "plugin"), ("http.method", "GET")]);
        fill(&mut span, &tags(&[("team", "relay"), ("region", "eu")]));
        assert_eq!(
            span,
            tags(&[("team", "plugin"), ("http.method", "GET"), ("region", "eu")])
        );
    }

    #[test]
    fn lines_get_missing_tags_then_origin() {
        let x = LineExtras {
            tags: tags(&[("region", "eu"), ("team", "relay"), ("bare", "")]),
            origin: "|c:abc|e:it-false,cn-relay".into(),
        };
        assert_eq!(
            x.decorate("p.request.hits:3|c|#env:prod,team:edge"),
            "p.request.hits:3|c|#env:prod,team:edge,bare,region:eu|c:abc|e:it-false,cn-relay"
        );
        assert_eq!(
            x.decorate("p.relay.queue_depth:0|g"),
            "p.relay.queue_depth:0|g|#bare,region:eu,team:relay|c:abc|e:it-false,cn-relay"
        );
        assert_eq!(
            x.decorate("p.request.duration:0.1:0.2|d|@0.5|#env:a"),
            "p.request.duration:0.1:0.2|d|@0.5|#env:a,bare,region:eu,team:relay|c:abc|e:it-false,cn-relay"
        );
        let none = LineExtras::default();
        assert!(none.is_empty());
        assert_eq!(none.decorate("a:1|c"), "a:1|c");
    }
}
