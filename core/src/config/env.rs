//! Unified service tagging from the environment, as every Datadog client
//! reads it: `DD_SERVICE`, `DD_ENV`, `DD_VERSION` and `DD_TAGS`. Traefik
//! hands a plugin the variables named in its static `settings.envs`, with
//! Traefik's own values; the guest reads them once per instance at start.
//!
//! They are defaults: a Middleware's own `service`, `env` and `version`
//! keys win (see [`super::Config::from_json_with_env`]). `DD_TAGS` is parsed
//! as dd-trace-go parses it: entries split on commas if the string holds
//! one, else on spaces; each `key:value` split at its first colon, both
//! sides trimmed. As in dd-trace-go, its `service`, `env` and `version`
//! entries stand in for the `DD_*` variable left unset.

use std::collections::BTreeMap;
use std::fmt;

/// The variables read, in the order a notice lists them.
pub const VARS: [&str; 4] = ["DD_SERVICE", "DD_ENV", "DD_VERSION", "DD_TAGS"];

/// Tags kept from `DD_TAGS`: every record carries them, in each frame and
/// each DogStatsD line, so they are bounded like everything a record holds.
pub const MAX_TAGS: usize = 16;
/// Datadog keeps at most 200 characters of a tag (`key:value`).
pub const MAX_TAG_LEN: usize = crate::metrics::cardinality::MAX_TAG_LEN;
/// Bytes of all tags together (`key:value` each): a record must fit one
/// 4,096-byte frame beside what the request itself brings.
pub const MAX_TAGS_BYTES: usize = 1024;

/// What the environment gives a plugin instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub service: Option<String>,
    pub env: Option<String>,
    pub version: Option<String>,
    /// From `DD_TAGS`, without the three above.
    pub tags: BTreeMap<String, String>,
    /// `DD_TAGS` entries left out, and why.
    pub skipped: Skipped,
}

/// `DD_TAGS` entries left out, counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// No value after the colon, or no colon.
    pub no_value: u32,
    /// Longer than [`MAX_TAG_LEN`] bytes as `key:value`.
    pub too_long: u32,
    /// A byte DogStatsD or the span cannot carry (`|`, `#`, a control
    /// character), or a key the span reserves (`_dd.*`, `language`).
    pub malformed: u32,
    /// Past the first [`MAX_TAGS`], or [`MAX_TAGS_BYTES`] in all.
    pub over_limit: u32,
}

impl Skipped {
    pub fn total(&self) -> u32 {
        self.no_value + self.too_long + self.malformed + self.over_limit
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (n, why) in [
            (self.no_value, "without a value"),
            (self.too_long, "longer than 200 bytes"),
            (
                self.malformed,
                "with '|', '#', a control character or a reserved key",
            ),
            (self.over_limit, "past 16 tags or 1024 bytes"),
        ] {
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{n} {why}")?;
            }
        }
        Ok(())
    }
}

impl Env {
    /// Reads the variables through `get` (the guest: its WASI environment).
    /// Empty values count as unset, as in dd-trace.
    pub fn read(mut get: impl FnMut(&str) -> Option<String>) -> Self {
        let mut var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (service, env, version) = (var("DD_SERVICE"), var("DD_ENV"), var("DD_VERSION"));
        let mut out = Self {
            service,
            env,
            version,
            ..Self::default()
        };
        if let Some(tags) = var("DD_TAGS") {
            out.add_tags(&tags);
        }
        out
    }

    /// Parses `DD_TAGS`; later entries of a key replace earlier ones, as in
    /// dd-trace-go's map.
    fn add_tags(&mut self, s: &str) {
        let sep = if s.contains(',') { ',' } else { ' ' };
        for entry in s.split(sep).map(str::trim).filter(|e| !e.is_empty()) {
            let (key, value) = match entry.split_once(':') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (entry, ""),
            };
            if key.is_empty() {
                continue;
            }
            let fill = match key {
                "service" => Some(&mut self.service),
                "env" => Some(&mut self.env),
                "version" => Some(&mut self.version),
                _ => None,
            };
            if let Some(field) = fill {
                if field.is_none() && !value.is_empty() {
                    *field = Some(value.to_owned());
                }
                continue;
            }
            if value.is_empty() {
                self.skipped.no_value += 1;
            } else if key.len() + 1 + value.len() > MAX_TAG_LEN {
                self.skipped.too_long += 1;
            } else if !carried(key) || !carried(value) || reserved(key) {
                self.skipped.malformed += 1;
            } else if !self.tags.contains_key(key)
                && (self.tags.len() == MAX_TAGS
                    || self.bytes() + key.len() + 1 + value.len() > MAX_TAGS_BYTES)
            {
                self.skipped.over_limit += 1;
            } else {
                self.tags.insert(key.to_owned(), value.to_owned());
            }
        }
    }
}

impl Env {
    /// The tags' size as `key:value` each.
    fn bytes(&self) -> usize {
        self.tags.iter().map(|(k, v)| k.len() + 1 + v.len()).sum()
    }
}

/// Whether a DogStatsD tag and a span meta entry carry the text unchanged.
fn carried(s: &str) -> bool {
    !s.chars().any(|c| c == '|' || c == '#' || c.is_control())
}

/// Keys the span's schema owns whatever the record says.
fn reserved(key: &str) -> bool {
    key.starts_with("_dd.") || key == "language"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Env {
        Env::read(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn nothing_set_gives_nothing() {
        assert_eq!(read(&[]), Env::default());
        assert_eq!(
            read(&[("DD_ENV", "  "), ("DD_TAGS", " , ")]),
            Env::default()
        );
    }

    #[test]
    fn the_three_variables_trimmed() {
        let e = read(&[
            ("DD_SERVICE", " edge "),
            ("DD_ENV", "prod"),
            ("DD_VERSION", "1.2"),
        ]);
        assert_eq!(
            (e.service, e.env, e.version),
            (Some("edge".into()), Some("prod".into()), Some("1.2".into()))
        );
    }

    #[test]
    fn dd_tags_split_on_commas_when_there_is_one_else_on_spaces() {
        assert_eq!(
            read(&[("DD_TAGS", "team:edge, region : eu-west-1,cost center:42")]).tags,
            tags(&[
                ("team", "edge"),
                ("region", "eu-west-1"),
                ("cost center", "42")
            ])
        );
        assert_eq!(
            read(&[("DD_TAGS", "team:edge  region:eu url:http://x:1")]).tags,
            tags(&[("team", "edge"), ("region", "eu"), ("url", "http://x:1")])
        );
        assert_eq!(
            read(&[("DD_TAGS", "team:a,team:b")]).tags,
            tags(&[("team", "b")]),
            "the last of a key wins"
        );
    }

    #[test]
    fn dd_tags_service_env_version_fill_only_what_is_unset() {
        let e = read(&[
            ("DD_ENV", "prod"),
            ("DD_TAGS", "env:staging,service:web,version:,team:x"),
        ]);
        assert_eq!(
            (e.service.as_deref(), e.env.as_deref(), e.version.as_deref()),
            (Some("web"), Some("prod"), None)
        );
        assert_eq!(e.tags, tags(&[("team", "x")]));
        assert_eq!(e.skipped, Skipped::default());
    }

    #[test]
    fn garbage_is_skipped_and_counted() {
        let long = format!("k:{}", "v".repeat(MAX_TAG_LEN - 1));
        let many: Vec<String> = (0..20).map(|i| format!("t{i:02}:x")).collect();
        let e = read(&[(
            "DD_TAGS",
            &format!(
                "bare,:novalue,a:,{long},p:x|y,h:#1,_dd.p.dm:-0,language:go,ok:1,{}",
                many.join(",")
            ),
        )]);
        assert_eq!(
            e.skipped,
            Skipped {
                no_value: 2,
                too_long: 1,
                malformed: 4,
                over_limit: 5,
            }
        );
        assert_eq!(e.tags.len(), MAX_TAGS);
        assert_eq!(e.tags.get("ok").map(String::as_str), Some("1"));
        assert!(!e.tags.contains_key("t15"));
        assert_eq!(
            e.skipped.to_string(),
            "2 without a value, 1 longer than 200 bytes, \
             4 with '|', '#', a control character or a reserved key, 5 past 16 tags or 1024 bytes"
        );
        // Exactly 200 bytes as key:value is kept.
        let edge = format!("k:{}", "v".repeat(MAX_TAG_LEN - 2));
        assert_eq!(read(&[("DD_TAGS", &edge)]).tags.len(), 1);
        // Six tags of 200 bytes pass 1,024 bytes: the sixth is left out.
        let big: Vec<String> = (0..6)
            .map(|i| format!("k{i}:{}", "v".repeat(MAX_TAG_LEN - 3)))
            .collect();
        let e = read(&[("DD_TAGS", &big.join(","))]);
        assert_eq!((e.tags.len(), e.skipped.over_limit), (5, 1));
    }
}
