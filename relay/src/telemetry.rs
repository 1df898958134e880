//! The relay's own counters: shared atomics every thread bumps, and their
//! periodic report as `<prefix>.relay.*` DogStatsD metrics and one info
//! line (every telemetry interval and at exit).
//!
//! Each counter is declared once, in the [`counters!`] table below: its
//! field, how it is reported to DogStatsD and its key in the info line.
//! The structs, the snapshot and both reports are generated from it.

use crate::source::Source;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tdp_core::metrics::dogstatsd::line;

/// How a relay-wide counter reaches DogStatsD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A count: the change since the previous report.
    Count,
    /// A gauge: the current value.
    Gauge,
    /// Only in the info line.
    LogOnly,
}

/// One relay-wide counter of the table.
struct Row {
    get: fn(&Snapshot) -> u64,
    kind: Kind,
    /// `<prefix>.relay.<metric>`.
    metric: &'static str,
    /// Its DogStatsD tags. Rows sharing a metric with `reason:` tags form a
    /// family, logged as `metric=sum (reason=value ...)`.
    tags: &'static str,
    /// Its key in the stderr line.
    key: &'static str,
}

/// One per-input counter of the table.
struct InputRow {
    get: fn(&Snapshot) -> &[u64; 4],
    /// Counted for the UDP input only.
    udp_only: bool,
    metric: &'static str,
    /// Tags after `input:<name>`.
    tags: &'static str,
    key: &'static str,
}

macro_rules! counters {
    (
        per_input { $( $(#[$idoc:meta])* $ifield:ident: $iscope:ident $imetric:literal $itags:literal; )* }
        relay { $( $(#[$doc:meta])* $field:ident: $kind:ident $metric:literal $tags:literal $key:literal; )* }
    ) => {
        #[derive(Debug, Default)]
        pub struct InputCounters {
            $( $(#[$idoc])* pub $ifield: AtomicU64, )*
        }

        #[derive(Debug, Default)]
        pub struct Counters {
            pub inputs: [InputCounters; 4],
            $( $(#[$doc])* pub $field: AtomicU64, )*
        }

        /// The counters at one moment, as plain numbers.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $( pub $ifield: [u64; 4], )*
            $( pub $field: u64, )*
        }

        impl Counters {
            pub fn snapshot(&self) -> Snapshot {
                let g = |c: &AtomicU64| c.load(Relaxed);
                Snapshot {
                    $( $ifield: self.inputs.each_ref().map(|i| g(&i.$ifield)), )*
                    $( $field: g(&self.$field), )*
                }
            }
        }

        const INPUT_ROWS: &[InputRow] = &[
            $( InputRow {
                get: |s| &s.$ifield,
                udp_only: counters!(@udp $iscope),
                metric: $imetric,
                tags: $itags,
                key: stringify!($ifield),
            }, )*
        ];

        const ROWS: &[Row] = &[
            $( Row {
                get: |s| s.$field,
                kind: Kind::$kind,
                metric: $metric,
                tags: $tags,
                key: $key,
            }, )*
        ];
    };
    (@udp all) => { false };
    (@udp udp) => { true };
}

// The order of the relay rows is the order of the stderr line; DogStatsD
// gets the counts, then the gauges, each in this order.
counters! {
    per_input {
        /// Records decoded (whether or not the queue took them).
        received: all "records_received" "";
        /// Input that carried the plugin's marker or frame but could not be read.
        malformed: all "records_malformed" "";
        /// Records read but not handed on because the queue stayed full until
        /// the pipeline stopped (at shutdown only: inputs wait for room).
        queue_full: all "records_dropped" ",reason:queue_full";
        /// Microseconds the input waited for room in the queue, its records
        /// waiting meanwhile where they came from (FIFO, then the plugin's
        /// spool; stdin's writer; the file; the socket buffer). Summed over
        /// the input's threads (the FIFO's and the spool's for `pipe`).
        held_back_us: all "held_back_us" "";
        /// Frames whose checksum failed (bytes changed on the way; UDP).
        corrupted: udp "records_corrupted" "";
        /// Records seen before (same trace and span id), dropped (UDP).
        duplicated: udp "records_duplicated" "";
        /// Probes that the guest says went out with a sibling's bytes (UDP):
        /// strays among `corrupted`/`duplicated`/`malformed` that stand for no
        /// lost record.
        stray_probes: udp "stray_probes" "";
        /// Frames dropped for want of a valid MAC under `--udp-secret`: none,
        /// or one made with another key (UDP).
        unauthenticated: udp "records_unauthenticated" "";
        /// Datagrams the kernel dropped because the socket's receive buffer
        /// was full (UDP, from `SO_RXQ_OVFL`; learnt with the next datagram).
        receive_buffer: udp "records_dropped" ",reason:receive_buffer";
    }
    relay {
        spans_sent: Count "spans_sent" "" "spans_sent";
        /// Spans dropped: oldest evicted by --max-buffered-spans.
        dropped_buffer_full: Count "spans_dropped" "reason:buffer_full" "buffer_full";
        /// Spans dropped: the agent refused the payload (4xx but 408/429), or
        /// it kept failing (408, 429, 5xx, no answer) past the retry bounds.
        dropped_rejected: Count "spans_dropped" "reason:rejected" "rejected";
        /// Spans dropped: still held when --shutdown-timeout ran out.
        dropped_shutdown: Count "spans_dropped" "reason:shutdown" "shutdown";
        /// Spans that could not be encoded.
        dropped_encode: Count "spans_dropped" "reason:encode" "encode";
        payloads_sent: Count "payloads_sent" "" "payloads_sent";
        payloads_retried: Count "payloads_retried" "" "payloads_retried";
        agent_errors: Count "agent_errors" "" "agent_errors";
        /// Times --max-buffered-spans forced a drop.
        buffer_cap_hits: Count "buffer_cap_hits" "" "buffer_cap_hits";
        /// Records in the input queue (gauge).
        queue_depth: Gauge "queue_depth" "" "queue_depth";
        /// Estimated bytes those records hold (gauge), bounded by --queue-bytes.
        queue_bytes: Gauge "queue_bytes" "" "queue_bytes";
        /// Spans waiting for or in delivery (gauge).
        buffered_spans: Gauge "buffered_spans" "" "buffered_spans";
        /// Bytes of frames in the spool beside the FIFO not handed on yet
        /// (gauge, as of the drainer's last look).
        spool_bytes: Gauge "spool_bytes" "" "spool_bytes";
        statsd_datagrams: LogOnly "statsd_datagrams" "" "statsd_datagrams";
        statsd_errors: Count "statsd_errors" "" "statsd_errors";
        /// DogStatsD lines too long for one datagram.
        statsd_oversized: LogOnly "statsd_oversized" "" "statsd_oversized";
        /// Records whose request metrics went to `resource:other` because the
        /// interval already had --max-resources distinct resources.
        resources_folded: Count "resources_folded" "" "resources_folded";
        /// Calls into plugin instances that were aborted (a trap) and that
        /// the instance recovered from, as its records report them.
        plugin_recovered_calls: Count "plugin_recovered_calls" "" "plugin_recovered_calls";
        /// Request values present but too large for the plugin to read.
        plugin_unread_values: Count "plugin_unread_values" "" "plugin_unread_values";
    }
}

impl Counters {
    pub fn input(&self, s: Source) -> &InputCounters {
        &self.inputs[s as usize]
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
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
        use std::fmt::Write;
        let mut s = String::from("counters");
        for i in inputs {
            let k = *i as usize;
            for r in INPUT_ROWS
                .iter()
                .filter(|r| !r.udp_only || *i == Source::Udp)
            {
                let _ = write!(s, " {}.{}={}", i.name(), r.key, (r.get)(self)[k]);
            }
        }
        let mut rows = ROWS.iter().peekable();
        while let Some(r) = rows.next() {
            if !r.tags.starts_with("reason:") {
                let _ = write!(s, " {}={}", r.key, (r.get)(self));
                continue;
            }
            // A family: its sum, then each member.
            let family: Vec<&Row> = std::iter::once(r)
                .chain(std::iter::from_fn(|| {
                    rows.next_if(|n| n.metric == r.metric)
                }))
                .collect();
            let sum: u64 = family.iter().map(|m| (m.get)(self)).sum();
            let parts: Vec<String> = family
                .iter()
                .map(|m| format!("{}={}", m.key, (m.get)(self)))
                .collect();
            let _ = write!(s, " {}={sum} ({})", r.metric, parts.join(" "));
        }
        if let Some(rss) = rss {
            let _ = write!(s, " rss_bytes={rss}");
        }
        s
    }

    /// `<prefix>.relay.*` lines: counts are the change since `prev`,
    /// gauges the current value.
    pub fn statsd_lines(&self, prev: &Snapshot, prefix: &str, inputs: &[Source]) -> Vec<String> {
        let p = format!("{prefix}.relay");
        let mut out = Vec::new();
        for i in inputs {
            let k = *i as usize;
            for r in INPUT_ROWS
                .iter()
                .filter(|r| !r.udp_only || *i == Source::Udp)
            {
                let delta = (r.get)(self)[k].saturating_sub((r.get)(prev)[k]);
                let tags = format!("input:{}{}", i.name(), r.tags);
                out.push(line(&format!("{p}.{}", r.metric), delta, "c", &tags));
            }
        }
        for r in ROWS.iter().filter(|r| r.kind == Kind::Count) {
            let delta = (r.get)(self).saturating_sub((r.get)(prev));
            out.push(line(&format!("{p}.{}", r.metric), delta, "c", r.tags));
        }
        for r in ROWS.iter().filter(|r| r.kind == Kind::Gauge) {
            out.push(line(
                &format!("{p}.{}", r.metric),
                (r.get)(self),
                "g",
                r.tags,
            ));
        }
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
            held_back_us: [0, 1500, 0, 0],
            corrupted: [0, 0, 0, 4],
            duplicated: [0, 0, 0, 2],
            stray_probes: [0, 0, 0, 1],
            unauthenticated: [0, 0, 0, 5],
            receive_buffer: [0, 0, 0, 6],
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
            spool_bytes: 380,
            statsd_datagrams: 9,
            statsd_errors: 0,
            statsd_oversized: 0,
            plugin_recovered_calls: 1,
            plugin_unread_values: 2,
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
            "counters stdin.received=20 stdin.malformed=2 stdin.queue_full=3 \
             stdin.held_back_us=1500 spans_sent=25 \
             spans_dropped=1 (buffer_full=1 rejected=0 shutdown=0 encode=0) payloads_sent=2 \
             payloads_retried=1 agent_errors=1 buffer_cap_hits=1 queue_depth=7 queue_bytes=4200 \
             buffered_spans=4 spool_bytes=380 statsd_datagrams=9 statsd_errors=0 statsd_oversized=0 \
             resources_folded=3 plugin_recovered_calls=1 plugin_unread_values=2 rss_bytes=4096"
        );
    }

    #[test]
    fn udp_reports_corrupted_and_duplicated() {
        let lines = snap().statsd_lines(&Snapshot::default(), "p", &[Source::Udp]);
        assert_eq!(
            &lines[..9],
            &[
                "p.relay.records_received:0|c|#input:udp",
                "p.relay.records_malformed:0|c|#input:udp",
                "p.relay.records_dropped:0|c|#input:udp,reason:queue_full",
                "p.relay.held_back_us:0|c|#input:udp",
                "p.relay.records_corrupted:4|c|#input:udp",
                "p.relay.records_duplicated:2|c|#input:udp",
                "p.relay.stray_probes:1|c|#input:udp",
                "p.relay.records_unauthenticated:5|c|#input:udp",
                "p.relay.records_dropped:6|c|#input:udp,reason:receive_buffer",
            ]
        );
        assert!(snap().log_line(&[Source::Udp], None).contains(
            " udp.corrupted=4 udp.duplicated=2 udp.stray_probes=1 udp.unauthenticated=5 \
             udp.receive_buffer=6 "
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
                "traefik_datadog.relay.held_back_us:0|c|#input:pipe",
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
                "traefik_datadog.relay.plugin_recovered_calls:1|c",
                "traefik_datadog.relay.plugin_unread_values:2|c",
                "traefik_datadog.relay.queue_depth:7|g",
                "traefik_datadog.relay.queue_bytes:4200|g",
                "traefik_datadog.relay.buffered_spans:4|g",
                "traefik_datadog.relay.spool_bytes:380|g",
            ]
        );
    }
}
