//! Request metrics in DogStatsD form: metric names, tags, client-side
//! aggregation per flush interval, and packing of lines into datagrams.
//!
//! Shared by the relay (which aggregates) and the guest's network mode (which
//! will send [`request_lines`] per request). No sockets here: the caller sends
//! the datagrams [`Packer`] produces.
//!
//! Per request the metrics are
//! - `<prefix>.request.hits` — count,
//! - `<prefix>.request.errors` — count, only when the record is an error,
//! - `<prefix>.request.duration` — distribution, in seconds (as Traefik's
//!   `*.request.duration` and Datadog's trace metrics),
//!
//! tagged `env`, `service`, `version` (unified service tagging; omitted when
//! empty), `resource` (the request host by default; the aggregator folds
//! values beyond its cap into `other`, see [`crate::metrics::cardinality`]),
//! `http.method` (`other` for non-standard methods),
//! `http.status_code` and `http.status_class` (both omitted for status 0, the
//! "unknown" of streamed responses), then the record's `tags` (`DD_TAGS`)
//! other than these. No `host:` tag: DogStatsD reads it as the reporting
//! machine's hostname.

pub use crate::metrics::cardinality::MAX_TAG_LEN;
use crate::metrics::cardinality::{DEFAULT_MAX_RESOURCES, ResourceCap, method_tag};
use crate::record::Record;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The default metric prefix, outside the agent's own `trace.*` namespace.
pub const DEFAULT_PREFIX: &str = "traefik_datadog";
/// The largest UDP datagram that avoids IP fragmentation on common links.
pub const UDP_MAX_DATAGRAM: usize = 1432;
/// The largest datagram on the agent's Unix socket transport.
pub const UDS_MAX_DATAGRAM: usize = 8192;
/// Durations kept per series and interval before reservoir sampling starts.
pub const DEFAULT_MAX_SAMPLES: usize = 4096;

/// The three request metric names for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub hits: String,
    pub errors: String,
    pub duration: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            hits: format!("{prefix}.request.hits"),
            errors: format!("{prefix}.request.errors"),
            duration: format!("{prefix}.request.duration"),
        }
    }
}

/// `2xx`, `4xx`...; `None` for status 0 (unknown).
pub fn status_class(status: u16) -> Option<String> {
    (status != 0).then(|| format!("{}xx", status / 100))
}

/// Appends `key:value` to a comma-separated tag list. Empty values are left
/// out; characters that would end the tag, the line or the section (`,`,
/// `|`, `#` at the start, newlines) become `_`; the tag is cut to
/// [`MAX_TAG_LEN`] bytes at a character boundary.
pub fn push_tag(out: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(',');
    }
    let start = out.len();
    out.push_str(key);
    out.push(':');
    for c in value.chars() {
        let c = match c {
            ',' | '|' | '\n' | '\r' => '_',
            c if c.is_control() => '_',
            c => c,
        };
        if out.len() - start + c.len_utf8() > MAX_TAG_LEN {
            break;
        }
        out.push(c);
    }
}

/// The tags of a record's request metrics, in a fixed order.
pub fn request_tags(r: &Record) -> String {
    request_tags_as(r, &r.resource)
}

/// As [`request_tags`], with `resource` as the resource tag's value.
pub fn request_tags_as(r: &Record, resource: &str) -> String {
    let mut t = String::with_capacity(128);
    push_tag(&mut t, "env", &r.env);
    push_tag(&mut t, "service", &r.service);
    push_tag(&mut t, "version", &r.version);
    push_tag(&mut t, "resource", resource);
    push_tag(&mut t, "http.method", method_tag(&r.method));
    if r.status != 0 {
        push_tag(&mut t, "http.status_code", &r.status.to_string());
    }
    if let Some(class) = status_class(r.status) {
        push_tag(&mut t, "http.status_class", &class);
    }
    // As the agent's `synthetics` stats dimension, so monitors can leave
    // Synthetic test traffic out of these metrics too.
    if r.origin.starts_with("synthetics") {
        push_tag(&mut t, "synthetics", "true");
    }
    // The instance's tags (`DD_TAGS`, bounded when read), never one of the
    // keys above.
    for (k, v) in r
        .tags
        .iter()
        .filter(|(k, _)| !OWN_TAGS.contains(&k.as_str()))
    {
        push_tag(&mut t, k, v);
    }
    t
}

/// The keys of the request metrics' own tags, and `host`, which DogStatsD
/// takes for the reporting machine's name.
pub const OWN_TAGS: [&str; 9] = [
    "host",
    "env",
    "service",
    "version",
    "resource",
    "http.method",
    "http.status_code",
    "http.status_class",
    "synthetics",
];

/// A duration in nanoseconds as seconds; negative durations count as 0.
pub fn seconds(ns: i64) -> f64 {
    ns.max(0) as f64 / 1e9
}

/// One DogStatsD line: `name:value|kind[|#tags]`.
pub fn line(name: &str, value: impl std::fmt::Display, kind: &str, tags: &str) -> String {
    let mut s = format!("{name}:{value}|{kind}");
    if !tags.is_empty() {
        s.push_str("|#");
        s.push_str(tags);
    }
    s
}

/// The lines one request produces, not aggregated (the guest's network mode
/// sends them as they come).
pub fn request_lines(names: &Names, r: &Record) -> Vec<String> {
    let tags = request_tags(r);
    let mut out = vec![line(&names.hits, 1, "c", &tags)];
    if r.error {
        out.push(line(&names.errors, 1, "c", &tags));
    }
    out.push(line(&names.duration, seconds(r.duration_ns), "d", &tags));
    out
}

/// Packs lines into datagrams of at most `max` bytes, each line ended by
/// `\n`. A line that cannot fit even alone is dropped and counted.
#[derive(Debug)]
pub struct Packer {
    max: usize,
    current: Vec<u8>,
    done: Vec<Vec<u8>>,
    /// Lines dropped because they were longer than a datagram.
    pub oversized: u64,
}

impl Packer {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            current: Vec::new(),
            done: Vec::new(),
            oversized: 0,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn push(&mut self, line: &str) {
        if line.len() + 1 > self.max {
            self.oversized += 1;
            return;
        }
        if self.current.len() + line.len() + 1 > self.max {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.current.extend_from_slice(line.as_bytes());
        self.current.push(b'\n');
    }

    /// Writes `name:v1:v2...|d[|@rate][|#tags]` lines, as many values per
    /// line as fit in one datagram (the agent >= 7.25 reads packed values).
    /// `rate` < 1 tells the agent each value stands for `1/rate` requests.
    pub fn push_distribution(&mut self, name: &str, values: &[f64], rate: f64, tags: &str) {
        let mut suffix = String::from("|d");
        if rate < 1.0 {
            let _ = write!(suffix, "|@{rate}");
        }
        if !tags.is_empty() {
            suffix.push_str("|#");
            suffix.push_str(tags);
        }
        let mut cur = String::new();
        let mut value = String::new();
        for v in values {
            value.clear();
            let _ = write!(value, ":{v}");
            if !cur.is_empty() && cur.len() + value.len() + suffix.len() + 1 > self.max {
                cur.push_str(&suffix);
                self.push(&cur);
                cur.clear();
            }
            if cur.is_empty() {
                cur.push_str(name);
            }
            cur.push_str(&value);
        }
        if !cur.is_empty() {
            cur.push_str(&suffix);
            self.push(&cur);
        }
    }

    /// The datagrams packed so far; the packer starts empty again.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        std::mem::take(&mut self.done)
    }
}

#[derive(Debug, Default)]
struct Series {
    hits: u64,
    errors: u64,
    /// Durations in seconds: all of them, or a uniform sample once more
    /// than the cap arrived in the interval.
    samples: Vec<f64>,
}

/// Request metrics aggregated over one flush interval, per tag set (that is
/// per env/service/version, resource, method and status). Distinct
/// resources per interval are capped ([`Aggregator::with_max_resources`]),
/// so the series held stay bounded whatever Hosts clients send.
#[derive(Debug)]
pub struct Aggregator {
    names: Names,
    max_samples: usize,
    series: BTreeMap<String, Series>,
    resources: ResourceCap,
    rng: u64,
}

impl Aggregator {
    /// `max_samples` bounds the durations kept per series and interval
    /// (memory); beyond it a uniform reservoir sample is sent with its rate.
    pub fn new(prefix: &str, max_samples: usize) -> Self {
        Self {
            names: Names::new(prefix),
            max_samples: max_samples.max(1),
            series: BTreeMap::new(),
            resources: ResourceCap::new(DEFAULT_MAX_RESOURCES),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// At most `max` distinct resources per interval keep their own series;
    /// the rest share `resource:other`.
    pub fn with_max_resources(mut self, max: usize) -> Self {
        self.resources = ResourceCap::new(max);
        self
    }

    /// Records whose resource was folded into `other` since the last call.
    pub fn take_folded(&mut self) -> u64 {
        self.resources.take_folded()
    }

    pub fn add(&mut self, r: &Record) {
        let tags = request_tags_as(r, self.resources.admit(&r.resource));
        let s = self.series.entry(tags).or_default();
        s.hits += 1;
        if r.error {
            s.errors += 1;
        }
        let v = seconds(r.duration_ns);
        if s.samples.len() < self.max_samples {
            s.samples.push(v);
        } else {
            // Algorithm R: the n-th value replaces a random slot with
            // probability cap/n, so every value is kept with equal chance.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = self.rng % s.hits;
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| s.samples.get_mut(j)) {
                *slot = v;
            }
        }
    }

    /// Series held for the current interval.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Writes every series' lines (sorted by tags) and starts a new interval.
    pub fn flush(&mut self, packer: &mut Packer) {
        self.resources.reset();
        for (tags, s) in std::mem::take(&mut self.series) {
            packer.push(&line(&self.names.hits, s.hits, "c", &tags));
            if s.errors > 0 {
                packer.push(&line(&self.names.errors, s.errors, "c", &tags));
            }
            let rate = if s.hits > s.samples.len() as u64 {
                s.samples.len() as f64 / s.hits as f64
            } else {
                1.0
            };
            packer.push_distribution(&self.names.duration, &s.samples, rate, &tags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample::record as sample;

    const TAGS_503: &str = "env:prod,service:edge,version:1.2.3,resource:a.example,\
                            http.method:GET,http.status_code:503,http.status_class:5xx";

    fn text(datagrams: &[Vec<u8>]) -> Vec<String> {
        datagrams
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    #[test]
    fn names_and_tags() {
        assert_eq!(
            Names::new("traefik_datadog"),
            Names {
                hits: "traefik_datadog.request.hits".into(),
                errors: "traefik_datadog.request.errors".into(),
                duration: "traefik_datadog.request.duration".into(),
            }
        );
        assert_eq!(request_tags(&sample(503)), TAGS_503);
        let mut r = sample(200);
        r.env.clear();
        r.version.clear();
        r.status = 0;
        assert_eq!(
            request_tags(&r),
            "service:edge,resource:a.example,http.method:GET"
        );
        assert_eq!(status_class(404).as_deref(), Some("4xx"));
        assert_eq!(status_class(0), None);
        r.origin = "synthetics-browser".into();
        assert_eq!(
            request_tags(&r),
            "service:edge,resource:a.example,http.method:GET,synthetics:true"
        );
        r.origin = "rum".into();
        assert!(!request_tags(&r).contains("synthetics"));
    }

    #[test]
    fn instance_tags_follow_the_own_tags_and_never_replace_them() {
        let mut r = sample(200);
        for (k, v) in [
            ("team", "edge"),
            ("region", "eu-west-1"),
            ("env", "spoof"),
            ("host", "spoof"),
            ("http.status_code", "500"),
            ("resource", "spoof"),
        ] {
            r.tags.insert(k.into(), v.into());
        }
        assert_eq!(
            request_tags(&r),
            "env:prod,service:edge,version:1.2.3,resource:a.example,http.method:GET,\
             http.status_code:200,http.status_class:2xx,region:eu-west-1,team:edge"
        );
    }

    #[test]
    fn tag_values_cannot_break_the_line() {
        let mut t = String::new();
        push_tag(&mut t, "resource", "a,b|c\nd\re\u{1}f#g:h");
        assert_eq!(t, "resource:a_b_c_d_e_f#g:h");
        let mut long = String::new();
        push_tag(&mut long, "resource", &"é".repeat(300));
        assert_eq!(long.len(), 199, "cut at a char boundary within 200 bytes");
        assert!(long.starts_with("resource:éé"));
    }

    #[test]
    fn per_request_lines_exact() {
        let names = Names::new("traefik_datadog");
        assert_eq!(
            request_lines(&names, &sample(503)),
            vec![
                format!("traefik_datadog.request.hits:1|c|#{TAGS_503}"),
                format!("traefik_datadog.request.errors:1|c|#{TAGS_503}"),
                format!("traefik_datadog.request.duration:0.01525|d|#{TAGS_503}"),
            ]
        );
        assert_eq!(request_lines(&names, &sample(200)).len(), 2);
    }

    #[test]
    fn aggregates_per_tag_set_into_one_exact_datagram() {
        let mut agg = Aggregator::new("p", DEFAULT_MAX_SAMPLES);
        let mut a = sample(200);
        a.duration_ns = 1_000_000;
        agg.add(&a);
        a.duration_ns = 2_500_000;
        agg.add(&a);
        let mut b = sample(503);
        b.duration_ns = 40_000_000;
        agg.add(&b);
        assert_eq!(agg.len(), 2);
        let mut p = Packer::new(UDP_MAX_DATAGRAM);
        agg.flush(&mut p);
        assert!(agg.is_empty());
        let t200 = "env:prod,service:edge,version:1.2.3,resource:a.example,\
                    http.method:GET,http.status_code:200,http.status_class:2xx";
        assert_eq!(
            text(&p.take()),
            vec![format!(
                "p.request.hits:2|c|#{t200}\n\
                 p.request.duration:0.001:0.0025|d|#{t200}\n\
                 p.request.hits:1|c|#{TAGS_503}\n\
                 p.request.errors:1|c|#{TAGS_503}\n\
                 p.request.duration:0.04|d|#{TAGS_503}\n"
            )]
        );
        assert!(p.take().is_empty());
    }

    #[test]
    fn packer_splits_at_the_limit_exactly() {
        let mut p = Packer::new(20);
        p.push("aaaaaaaaa"); // 10 bytes with \n
        p.push("bbbbbbbbb"); // 20: still fits
        p.push("c"); // would be 22
        p.push(&"x".repeat(20)); // 21 bytes alone: dropped
        assert_eq!(
            text(&p.take()),
            vec!["aaaaaaaaa\nbbbbbbbbb\n".to_owned(), "c\n".to_owned()]
        );
        assert_eq!(p.oversized, 1);
    }

    #[test]
    fn distribution_values_split_across_lines_that_fit() {
        let mut p = Packer::new(23);
        // "d:0.5:0.25|d|#k:v\n" is 18 bytes; one more ":0.125" would be 24.
        p.push_distribution("d", &[0.5, 0.25, 0.125, 1.0], 1.0, "k:v");
        assert_eq!(
            text(&p.take()),
            vec![
                "d:0.5:0.25|d|#k:v\n".to_owned(),
                "d:0.125:1|d|#k:v\n".to_owned()
            ]
        );
        p.push_distribution("d", &[0.5], 0.25, "");
        assert_eq!(text(&p.take()), vec!["d:0.5|d|@0.25\n".to_owned()]);
    }

    #[test]
    fn many_values_fill_datagrams_under_the_udp_limit() {
        let mut p = Packer::new(UDP_MAX_DATAGRAM);
        let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) / 1e4).collect();
        p.push_distribution("traefik_datadog.request.duration", &values, 1.0, TAGS_503);
        let grams = p.take();
        assert!(grams.len() > 1);
        let mut seen = 0;
        for g in &grams {
            assert!(g.len() <= UDP_MAX_DATAGRAM);
            let s = String::from_utf8_lossy(g);
            for l in s.lines() {
                let (head, rest) = l.split_once('|').expect("kind");
                assert_eq!(rest, format!("d|#{TAGS_503}"));
                seen += head.split(':').count() - 1;
            }
        }
        assert_eq!(seen, 1000);
    }

    #[test]
    fn resources_beyond_the_cap_share_one_series_per_interval() {
        let mut agg = Aggregator::new("p", DEFAULT_MAX_SAMPLES).with_max_resources(2);
        let mut r = sample(200);
        r.env.clear();
        r.version.clear();
        r.duration_ns = 1_000_000_000;
        for host in ["a", "b", "c", "a", "d"] {
            r.resource = host.into();
            agg.add(&r);
        }
        r.resource = "e".into();
        r.method = "PROPFIND".into();
        agg.add(&r);
        assert_eq!(agg.take_folded(), 3);
        let mut p = Packer::new(UDS_MAX_DATAGRAM);
        agg.flush(&mut p);
        let t = |res: &str, m: &str| {
            format!(
                "service:edge,resource:{res},http.method:{m},http.status_code:200,http.status_class:2xx"
            )
        };
        assert_eq!(
            text(&p.take()).concat(),
            format!(
                "p.request.hits:2|c|#{a}\np.request.duration:1:1|d|#{a}\n\
                 p.request.hits:1|c|#{b}\np.request.duration:1|d|#{b}\n\
                 p.request.hits:2|c|#{o}\np.request.duration:1:1|d|#{o}\n\
                 p.request.hits:1|c|#{om}\np.request.duration:1|d|#{om}\n",
                a = t("a", "GET"),
                b = t("b", "GET"),
                o = t("other", "GET"),
                om = t("other", "other"),
            )
        );
        // The next interval admits new values again.
        r.resource = "d".into();
        r.method = "GET".into();
        agg.add(&r);
        assert_eq!(agg.take_folded(), 0);
        agg.flush(&mut p);
        assert!(text(&p.take()).concat().contains("resource:d,"));
    }

    #[test]
    fn series_stay_bounded_with_a_new_host_per_request() {
        let mut agg = Aggregator::new("p", 16);
        let mut r = sample(200);
        for i in 0..50_000 {
            r.resource = format!("h{i}.example");
            agg.add(&r);
        }
        assert_eq!(agg.len(), DEFAULT_MAX_RESOURCES + 1);
        assert_eq!(agg.take_folded(), 50_000 - DEFAULT_MAX_RESOURCES as u64);
    }

    #[test]
    fn reservoir_caps_samples_and_reports_the_rate() {
        let mut agg = Aggregator::new("p", 4);
        let mut r = sample(200);
        r.env.clear();
        r.version.clear();
        r.service = "s".into();
        r.resource = "h".into();
        for i in 0..10 {
            r.duration_ns = i * 1_000_000_000;
            agg.add(&r);
        }
        let mut p = Packer::new(UDS_MAX_DATAGRAM);
        agg.flush(&mut p);
        let out = text(&p.take()).concat();
        let lines: Vec<&str> = out.lines().collect();
        let tags =
            "service:s,resource:h,http.method:GET,http.status_code:200,http.status_class:2xx";
        assert_eq!(lines[0], format!("p.request.hits:10|c|#{tags}"));
        let (values, rest) = lines[1].split_once('|').expect("kind");
        assert_eq!(rest, format!("d|@0.4|#{tags}"));
        assert_eq!(values.split(':').count(), 5, "{values}");
    }
}
