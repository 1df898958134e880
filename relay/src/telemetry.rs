//! The relay's own counters: shared atomics every thread bumps, and their
//! periodic report as `<prefix>.relay.*` DogStatsD metrics and one stderr
//! line (every telemetry interval and at exit).

use crate::source::Source;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tdp_core::dogstatsd::line;

#[derive(Debug, Default)]
pub struct InputCounters {
    /// Records decoded (whether or not the queue took them).
    pub received: AtomicU64,
    /// Input that carried the plugin's marker or frame but could not be read.
    pub malformed: AtomicU64,
    /// Records dropped because the queue was full (in records or bytes).
    pub queue_full: AtomicU64,
    /// Frames whose checksum failed (bytes changed on the way; UDP).
    pub corrupted: AtomicU64,
    /// Records seen before (same trace and span id), dropped (UDP).
    pub duplicated: AtomicU64,
    /// Probes that the guest says went out with a sibling's bytes (UDP):
    /// strays among `corrupted`/`duplicated`/`malformed` that stand for no
    /// lost record.
    pub stray_probes: AtomicU64,
    /// Frames dropped for want of a valid MAC under `--udp-secret`: none,
    /// or one made with another key (UDP).
    pub unauthenticated: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub inputs: [InputCounters; 4],
    pub spans_sent: AtomicU64,
    pub payloads_sent: AtomicU64,
    pub payloads_retried: AtomicU64,
    pub agent_errors: AtomicU64,
    /// Spans dropped: oldest evicted by --max-buffered-spans.
    pub dropped_buffer_full: AtomicU64,
    /// Spans dropped: the agent refused the payload (4xx but 408/429), or
    /// it kept failing (408, 429, 5xx, no answer) past the retry bounds.
    pub dropped_rejected: AtomicU64,
    /// Spans dropped: still held when --shutdown-timeout ran out.
    pub dropped_shutdown: AtomicU64,
    /// Spans that could not be encoded.
    pub dropped_encode: AtomicU64,
    /// Times --max-buffered-spans forced a drop.
    pub buffer_cap_hits: AtomicU64,
    /// Records in the input queue (gauge).
    pub queue_depth: AtomicU64,
    /// Estimated bytes those records hold (gauge), bounded by --queue-bytes.
    pub queue_bytes: AtomicU64,
    /// Records whose request metrics went to `resource:other` because the
    /// interval already had --max-resources distinct resources.
    pub resources_folded: AtomicU64,
    /// Spans waiting for or in delivery (gauge).
    pub buffered_spans: AtomicU64,
    pub statsd_datagrams: AtomicU64,
    pub statsd_errors: AtomicU64,
    /// DogStatsD lines too long for one datagram.
    pub statsd_oversized: AtomicU64,
}

impl Counters {
    pub fn input(&self, s: Source) -> &InputCounters {
        &self.inputs[s as usize]
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        Snapshot {
            received: self.inputs.each_ref().map(|i| g(&i.received)),
            malformed: self.inputs.each_ref().map(|i| g(&i.malformed)),
            queue_full: self.inputs.each_ref().map(|i| g(&i.queue_full)),
            corrupted: self.inputs.each_ref().map(|i| g(&i.corrupted)),
            duplicated: self.inputs.each_ref().map(|i| g(&i.duplicated)),
            stray_probes: self.inputs.each_ref().map(|i| g(&i.stray_probes)),
            unauthenticated: self.inputs.each_ref().map(|i| g(&i.unauthenticated)),
            spans_sent: g(&self.spans_sent),
            payloads_sent: g(&self.payloads_sent),
            payloads_retried: g(&self.payloads_retried),
            agent_errors: g(&self.agent_errors),
            dropped_buffer_full: g(&self.dropped_buffer_full),
            dropped_rejected: g(&self.dropped_rejected),
            dropped_shutdown: g(&self.dropped_shutdown),
            dropped_encode: g(&self.dropped_encode),
            buffer_cap_hits: g(&self.buffer_cap_hits),
            queue_depth: g(&self.queue_depth),
            queue_bytes: g(&self.queue_bytes),
            resources_folded: g(&self.resources_folded),
            buffered_spans: g(&self.buffered_spans),
            statsd_datagrams: g(&self.statsd_datagrams),
            statsd_errors: g(&self.statsd_errors),
            statsd_oversized: g(&self.statsd_oversized),
        }
    }
}

/// The counters at one moment, as plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub received: [u64; 4],
    pub malformed: [u64; 4],
    pub queue_full: [u64; 4],
    pub corrupted: [u64; 4],
    pub duplicated: [u64; 4],
    pub stray_probes: [u64; 4],
    pub unauthenticated: [u64; 4],
    pub spans_sent: u64,
    pub payloads_sent: u64,
    pub payloads_retried: u64,
    pub agent_errors: u64,
    pub dropped_buffer_full: u64,
    pub dropped_rejected: u64,
    pub dropped_shutdown: u64,
    pub dropped_encode: u64,
    pub buffer_cap_hits: u64,
    pub queue_depth: u64,
    pub queue_bytes: u64,
    pub resources_folded: u64,
    pub buffered_spans: u64,
    pub statsd_datagrams: u64,
    pub statsd_errors: u64,
    pub statsd_oversized: u64,
}

impl Snapshot {
    pub fn spans_dropped(&self) -> u64 {
        self.dropped_buffer_full
            + self.dropped_rejected
            + self.dropped_shutdown
            + self.dropped_encode
    }

    /// The stderr report: totals since start, inputs in use only.
    pub fn log_line(&self, inputs: &[Source], rss: Option<u64>) -> String {
        let mut s = String::from("counters");
        for i in inputs {
            let k = *i as usize;
            s.push_str(&format!(
                " {n}.received={} {n}.malformed={} {n}.queue_full={}",
                self.received[k],
                self.malformed[k],
                self.queue_full[k],
                n = i.name()
            ));
            if *i == Source::Udp {
                s.push_str(&format!(
                    " udp.corrupted={} udp.duplicated={} udp.stray_probes={} udp.unauthenticated={}",
                    self.corrupted[k],
                    self.duplicated[k],
                    self.stray_probes[k],
                    self.unauthenticated[k]
                ));
            }
        }
        s.push_str(&format!(
            " spans_sent={} spans_dropped={} (buffer_full={} rejected={} shutdown={} encode={}) \
             payloads_sent={} payloads_retried={} agent_errors={} buffer_cap_hits={} \
             queue_depth={} queue_bytes={} buffered_spans={} statsd_datagrams={} statsd_errors={} \
             statsd_oversized={} resources_folded={}",
            self.spans_sent,
            self.spans_dropped(),
            self.dropped_buffer_full,
            self.dropped_rejected,
            self.dropped_shutdown,
            self.dropped_encode,
            self.payloads_sent,
            self.payloads_retried,
            self.agent_errors,
            self.buffer_cap_hits,
            self.queue_depth,
            self.queue_bytes,
            self.buffered_spans,
            self.statsd_datagrams,
            self.statsd_errors,
            self.statsd_oversized,
            self.resources_folded,
        ));
        if let Some(rss) = rss {
            s.push_str(&format!(" rss_bytes={rss}"));
        }
        s
    }

    /// `<prefix>.relay.*` lines: counts are the change since `prev`,
    /// gauges the current value.
    pub fn statsd_lines(&self, prev: &Snapshot, prefix: &str, inputs: &[Source]) -> Vec<String> {
        let p = format!("{prefix}.relay");
        let d = |now: u64, before: u64| now.saturating_sub(before);
        let mut out = Vec::new();
        for i in inputs {
            let k = *i as usize;
            let t = format!("input:{}", i.name());
            out.push(line(
                &format!("{p}.records_received"),
                d(self.received[k], prev.received[k]),
                "c",
                &t,
            ));
            out.push(line(
                &format!("{p}.records_malformed"),
                d(self.malformed[k], prev.malformed[k]),
                "c",
                &t,
            ));
            out.push(line(
                &format!("{p}.records_dropped"),
                d(self.queue_full[k], prev.queue_full[k]),
                "c",
                &format!("{t},reason:queue_full"),
            ));
            if *i == Source::Udp {
                out.push(line(
                    &format!("{p}.records_corrupted"),
                    d(self.corrupted[k], prev.corrupted[k]),
                    "c",
                    &t,
                ));
                out.push(line(
                    &format!("{p}.records_duplicated"),
                    d(self.duplicated[k], prev.duplicated[k]),
                    "c",
                    &t,
                ));
                out.push(line(
                    &format!("{p}.stray_probes"),
                    d(self.stray_probes[k], prev.stray_probes[k]),
                    "c",
                    &t,
                ));
                out.push(line(
                    &format!("{p}.records_unauthenticated"),
                    d(self.unauthenticated[k], prev.unauthenticated[k]),
                    "c",
                    &t,
                ));
            }
        }
        let count = |name: &str, now: u64, before: u64, tags: &str| {
            line(&format!("{p}.{name}"), d(now, before), "c", tags)
        };
        out.push(count("spans_sent", self.spans_sent, prev.spans_sent, ""));
        for (reason, now, before) in [
            (
                "buffer_full",
                self.dropped_buffer_full,
                prev.dropped_buffer_full,
            ),
            ("rejected", self.dropped_rejected, prev.dropped_rejected),
            ("shutdown", self.dropped_shutdown, prev.dropped_shutdown),
            ("encode", self.dropped_encode, prev.dropped_encode),
        ] {
            out.push(count(
                "spans_dropped",
                now,
                before,
                &format!("reason:{reason}"),
            ));
        }
        out.push(count(
            "payloads_sent",
            self.payloads_sent,
            prev.payloads_sent,
            "",
        ));
        out.push(count(
            "payloads_retried",
            self.payloads_retried,
            prev.payloads_retried,
            "",
        ));
        out.push(count(
            "agent_errors",
            self.agent_errors,
            prev.agent_errors,
            "",
        ));
        out.push(count(
            "buffer_cap_hits",
            self.buffer_cap_hits,
            prev.buffer_cap_hits,
            "",
        ));
        out.push(count(
            "statsd_errors",
            self.statsd_errors,
            prev.statsd_errors,
            "",
        ));
        out.push(count(
            "resources_folded",
            self.resources_folded,
            prev.resources_folded,
            "",
        ));
        out.push(line(&format!("{p}.queue_depth"), self.queue_depth, "g", ""));
        out.push(line(&format!("{p}.queue_bytes"), self.queue_bytes, "g", ""));
        out.push(line(
            &format!("{p}.buffered_spans"),
            self.buffered_spans,
            "g",
            "",
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            received: [10, 20, 0, 0],
            malformed: [1, 2, 0, 0],
            queue_full: [0, 3, 0, 0],
            corrupted: [0, 0, 0, 4],
            duplicated: [0, 0, 0, 2],
            stray_probes: [0, 0, 0, 1],
            unauthenticated: [0, 0, 0, 5],
            spans_sent: 25,
            payloads_sent: 2,
            payloads_retried: 1,
            agent_errors: 1,
            dropped_buffer_full: 1,
            dropped_rejected: 0,
            dropped_shutdown: 0,
            dropped_encode: 0,
            buffer_cap_hits: 1,
            queue_depth: 7,
            queue_bytes: 4200,
            resources_folded: 3,
            buffered_spans: 4,
            statsd_datagrams: 9,
            statsd_errors: 0,
            statsd_oversized: 0,
        }
    }

    #[test]
    fn counters_snapshot() {
        let c = Counters::default();
        Counters::add(&c.input(Source::Udp).received, 3);
        Counters::add(&c.spans_sent, 2);
        let s = c.snapshot();
        assert_eq!(s.received, [0, 0, 0, 3]);
        assert_eq!(s.spans_sent, 2);
    }

    #[test]
    fn log_line_exact() {
        assert_eq!(
            snap().log_line(&[Source::Stdin], Some(4096)),
            "counters stdin.received=20 stdin.malformed=2 stdin.queue_full=3 spans_sent=25 \
             spans_dropped=1 (buffer_full=1 rejected=0 shutdown=0 encode=0) payloads_sent=2 \
             payloads_retried=1 agent_errors=1 buffer_cap_hits=1 queue_depth=7 queue_bytes=4200 \
             buffered_spans=4 statsd_datagrams=9 statsd_errors=0 statsd_oversized=0 \
             resources_folded=3 rss_bytes=4096"
        );
    }

    #[test]
    fn udp_reports_corrupted_and_duplicated() {
        let lines = snap().statsd_lines(&Snapshot::default(), "p", &[Source::Udp]);
        assert_eq!(
            &lines[..7],
            &[
                "p.relay.records_received:0|c|#input:udp",
                "p.relay.records_malformed:0|c|#input:udp",
                "p.relay.records_dropped:0|c|#input:udp,reason:queue_full",
                "p.relay.records_corrupted:4|c|#input:udp",
                "p.relay.records_duplicated:2|c|#input:udp",
                "p.relay.stray_probes:1|c|#input:udp",
                "p.relay.records_unauthenticated:5|c|#input:udp",
            ]
        );
        assert!(snap().log_line(&[Source::Udp], None).contains(
            " udp.corrupted=4 udp.duplicated=2 udp.stray_probes=1 udp.unauthenticated=5 "
        ));
    }

    #[test]
    fn statsd_lines_are_deltas_and_gauges() {
        let prev = Snapshot {
            received: [4, 0, 0, 0],
            spans_sent: 20,
            ..Snapshot::default()
        };
        let lines = snap().statsd_lines(&prev, "traefik_datadog", &[Source::Pipe]);
        assert_eq!(
            lines,
            vec![
                "traefik_datadog.relay.records_received:6|c|#input:pipe",
                "traefik_datadog.relay.records_malformed:1|c|#input:pipe",
                "traefik_datadog.relay.records_dropped:0|c|#input:pipe,reason:queue_full",
                "traefik_datadog.relay.spans_sent:5|c",
                "traefik_datadog.relay.spans_dropped:1|c|#reason:buffer_full",
                "traefik_datadog.relay.spans_dropped:0|c|#reason:rejected",
                "traefik_datadog.relay.spans_dropped:0|c|#reason:shutdown",
                "traefik_datadog.relay.spans_dropped:0|c|#reason:encode",
                "traefik_datadog.relay.payloads_sent:2|c",
                "traefik_datadog.relay.payloads_retried:1|c",
                "traefik_datadog.relay.agent_errors:1|c",
                "traefik_datadog.relay.buffer_cap_hits:1|c",
                "traefik_datadog.relay.statsd_errors:0|c",
                "traefik_datadog.relay.resources_folded:3|c",
                "traefik_datadog.relay.queue_depth:7|g",
                "traefik_datadog.relay.queue_bytes:4200|g",
                "traefik_datadog.relay.buffered_spans:4|g",
            ]
        );
    }
}
