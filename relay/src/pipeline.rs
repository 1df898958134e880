//! The pipeline thread: takes records from the queue, fills defaults, turns
//! each into a span (batched into payloads for the sender) and into request
//! metrics (aggregated, sent every metrics interval), and reports the
//! relay's own counters. It never waits on the agent.
//!
//! Shutdown (signal, or every input ended): inputs get a short grace to hand
//! on what they hold, the queue is drained, the last batch and metrics are
//! flushed, the sender gets until `--shutdown-timeout` to deliver, and the
//! final counters are printed.

use crate::input::{Envelope, Intake, Source};
use crate::settings::{Defaults, Settings};
use crate::statsd::StatsdSink;
use crate::sys;
use crate::telemetry::{Counters, Snapshot};
use crate::traces::batch::{Batcher, SpanBuffer};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tdp_core::metrics::dogstatsd::Aggregator;
use tdp_core::record::Record;
use tdp_core::record::span::Span;

/// Batches handled between two looks at the clock.
const BURST: usize = 64;
/// How often the stop flag is looked at when idle.
const TICK: Duration = Duration::from_millis(100);

pub struct Traces {
    pub batcher: Batcher,
    pub buffer: Arc<SpanBuffer>,
    pub sender: JoinHandle<()>,
    /// The agent's last `rate_by_service`, reported as gauges (the plugin
    /// reads the same rates from the file published beside the FIFO).
    pub rates: crate::traces::sender::Rates,
}

pub struct Pipeline {
    pub counters: Arc<Counters>,
    pub defaults: Defaults,
    pub traces: Option<Traces>,
    pub aggregator: Option<Aggregator>,
    pub statsd: StatsdSink,
    pub prefix: String,
    pub inputs: Vec<Source>,
    pub telemetry_metrics: bool,
    pub flush_interval: Duration,
    pub metrics_interval: Duration,
    pub telemetry_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Learned large routes, published beside the FIFO; `None`: off.
    pub routes: Option<crate::routes::Routes>,
}

/// `<prefix>.relay.agent_sample_rate` gauges, one per `service:<s>,env:<e>`
/// key of the agent's answer, tagged `agent_service`/`agent_env` (plain
/// `service`/`env` tags would be read as the relay's own).
pub fn rate_lines(rates: &std::collections::BTreeMap<String, f64>, prefix: &str) -> Vec<String> {
    rates
        .iter()
        .map(|(key, rate)| {
            let mut tags = String::new();
            for (k, v) in key.split(',').filter_map(|kv| kv.split_once(':')) {
                let name = match k {
                    "service" => "agent_service",
                    "env" => "agent_env",
                    _ => continue,
                };
                tdp_core::metrics::dogstatsd::push_tag(&mut tags, name, v);
            }
            tdp_core::metrics::dogstatsd::line(
                &format!("{prefix}.relay.agent_sample_rate"),
                rate,
                "g",
                &tags,
            )
        })
        .collect()
}

/// Fills what the record leaves empty with the relay's defaults: its
/// env, service and version (`DD_ENV`, ...; the Middleware's own win), and
/// the relay's `DD_TAGS` under the plugin's tags for the same key. The core
/// puts `tags` on the span (never over its own tags) and on the request
/// metrics.
pub fn apply_defaults(r: &mut Record, d: &Defaults) {
    crate::dd_tags::fill(&mut r.tags, &d.tags);
    for (field, default) in [
        (&mut r.env, &d.env),
        (&mut r.service, &d.service),
        (&mut r.version, &d.version),
    ] {
        if field.is_empty() && !default.is_empty() {
            field.clone_from(default);
        }
    }
}

impl Pipeline {
    /// The pipeline of the settings `s`, handing spans to `traces` (the
    /// sender's side) and reading the records of `inputs`.
    pub fn new(
        s: &Settings,
        counters: Arc<Counters>,
        traces: Option<Traces>,
        inputs: Vec<Source>,
    ) -> Self {
        let m = &s.metrics;
        let d = &s.pipeline.defaults;
        if d.skipped_tags.total() > 0 {
            warn!("DD_TAGS: entries left out: {}", d.skipped_tags);
        }
        let extras = crate::dd_tags::LineExtras {
            tags: d.tags.clone(),
            origin: crate::container::origin().statsd_fields(),
        };
        Self {
            statsd: StatsdSink::new(m.statsd.clone(), counters.clone()).with_extras(extras),
            counters,
            defaults: s.pipeline.defaults.clone(),
            traces,
            aggregator: m.request_metrics.then(|| {
                Aggregator::new(&m.prefix, m.max_samples).with_max_resources(m.max_resources)
            }),
            prefix: m.prefix.clone(),
            inputs,
            telemetry_metrics: s.telemetry.enabled,
            flush_interval: s.traces.flush_interval,
            metrics_interval: m.interval.get(),
            telemetry_interval: s.telemetry.interval,
            shutdown_timeout: s.pipeline.shutdown_timeout,
            routes: s.publish_dir.clone().and_then(|dir| {
                crate::routes::Routes::new(dir, s.routes.learn_bytes, s.routes.learn_ttl)
            }),
        }
    }

    fn handle_batch(&mut self, batch: Vec<Envelope>) {
        self.counters
            .queue_depth
            .fetch_sub(batch.len() as u64, Relaxed);
        self.counters
            .queue_bytes
            .fetch_sub(crate::input::weight::total(&batch), Relaxed);
        for e in batch {
            self.handle(e);
        }
    }

    fn handle(&mut self, e: Envelope) {
        let Envelope { mut record, host } = e;
        Counters::add(
            &self.counters.plugin_recovered_calls,
            u64::from(record.recovered_calls),
        );
        Counters::add(
            &self.counters.plugin_unread_values,
            u64::from(record.unread_values),
        );
        apply_defaults(&mut record, &self.defaults);
        if let Some(r) = self.routes.as_mut() {
            r.observe(&record);
        }
        // The guest's network mode sends a request's DogStatsD lines itself.
        if let Some(agg) = self.aggregator.as_mut().filter(|_| !record.metrics_sent) {
            agg.add(&record);
        }
        if let Some(t) = self.traces.as_mut() {
            let span = Span::from_record_with(&record, &host);
            match t.batcher.add(&span) {
                Ok(Some(p)) => t.buffer.push(p),
                Ok(None) => {}
                Err(err) => {
                    Counters::add(&self.counters.dropped_encode, 1);
                    warn!("span could not be encoded: {err}");
                }
            }
        }
    }

    fn flush_traces(&mut self) {
        if let Some(t) = self.traces.as_mut() {
            if let Some(p) = t.batcher.take() {
                t.buffer.push(p);
            }
        }
    }

    fn flush_metrics(&mut self) {
        if let Some(agg) = self.aggregator.as_mut() {
            Counters::add(&self.counters.resources_folded, agg.take_folded());
            if !agg.is_empty() {
                let mut packer = self.statsd.packer();
                agg.flush(&mut packer);
                self.statsd.send_packed(&mut packer);
            }
        }
    }

    fn report(&mut self, prev: &Snapshot) -> Snapshot {
        let now = self.counters.snapshot();
        info!("{}", now.log_line(&self.inputs, sys::rss_bytes()));
        if self.telemetry_metrics {
            let mut packer = self.statsd.packer();
            for l in now.statsd_lines(prev, &self.prefix, &self.inputs) {
                packer.push(&l);
            }
            if let Some(t) = self.traces.as_ref() {
                let rates = t.rates.lock().map(|r| r.clone()).unwrap_or_default();
                for l in rate_lines(&rates, &self.prefix) {
                    packer.push(&l);
                }
            }
            self.statsd.send_packed(&mut packer);
        }
        now
    }

    pub fn run(mut self, rx: Intake) {
        let start = Instant::now();
        let mut next_flush = start + self.flush_interval;
        let mut next_metrics = start + self.metrics_interval;
        let mut next_report = start + self.telemetry_interval;
        let mut prev = Snapshot::default();
        let grace = (self.shutdown_timeout / 2).min(Duration::from_secs(1));
        let mut stop_at: Option<Instant> = None;
        let health = crate::health::global();
        loop {
            health.beat();
            let now = Instant::now();
            if stop_at.is_none() && sys::stop_requested() {
                health.stopping();
                info!("stopping: inputs get {grace:?} to hand on what they hold");
                stop_at = Some(now);
            }
            let next = next_flush.min(next_metrics).min(next_report);
            let wait = next.saturating_duration_since(now).min(TICK);
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.handle_batch(batch);
                    for _ in 0..BURST {
                        match rx.try_recv() {
                            Ok(batch) => self.handle_batch(batch),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if stop_at.is_none() {
                        health.stopping();
                        info!("all inputs ended; stopping");
                        sys::request_stop();
                    }
                    break;
                }
            }
            let now = Instant::now();
            if let Some(r) = self.routes.as_mut() {
                r.tick(now);
            }
            if now >= next_flush {
                self.flush_traces();
                next_flush = now + self.flush_interval;
            }
            if now >= next_metrics {
                self.flush_metrics();
                next_metrics += self.metrics_interval;
                if next_metrics <= now {
                    next_metrics = now + self.metrics_interval;
                }
            }
            if now >= next_report {
                prev = self.report(&prev);
                next_report = now + self.telemetry_interval;
            }
            if stop_at.is_some_and(|t| now >= t + grace) {
                break;
            }
        }
        // Inputs waiting for room stop (counting what they hold); whatever
        // they handed on is flushed too.
        rx.close();
        while let Ok(batch) = rx.try_recv() {
            self.handle_batch(batch);
        }
        drop(rx);
        self.flush_traces();
        self.flush_metrics();
        let deadline = Instant::now() + self.shutdown_timeout;
        if let Some(t) = self.traces.take() {
            let held = t.buffer.spans();
            if held > 0 {
                info!(
                    "flushing {held} spans to the agent (up to {:?})",
                    self.shutdown_timeout
                );
            }
            t.buffer.close(deadline);
            // The sender stops by the deadline; its last request may still
            // be waiting for the agent's answer, so allow a moment more.
            while !t.sender.is_finished() && Instant::now() < deadline + Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.sender.is_finished() {
                let _ = t.sender.join();
            } else {
                Counters::add(&self.counters.dropped_shutdown, t.buffer.spans() as u64);
            }
        }
        let last = self.report(&prev);
        info!(
            "stopped after {:.1}s: {} spans sent, {} dropped",
            start.elapsed().as_secs_f64(),
            last.spans_sent,
            last.spans_dropped()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_rates_become_gauges() {
        let rates = [
            ("service:edge,env:prod".to_owned(), 0.5),
            ("service:,env:".to_owned(), 1.0),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            rate_lines(&rates, "traefik_datadog"),
            vec![
                "traefik_datadog.relay.agent_sample_rate:1|g",
                "traefik_datadog.relay.agent_sample_rate:0.5|g|#agent_service:edge,agent_env:prod",
            ]
        );
    }
    use crate::input::tests::record;

    #[test]
    fn defaults_fill_only_empty_fields() {
        let d = Defaults {
            env: "staging".into(),
            service: "relay-default".into(),
            version: "9".into(),
            ..Defaults::default()
        };
        let mut r = record(200);
        r.env.clear();
        apply_defaults(&mut r, &d);
        assert_eq!(
            (r.env.as_str(), r.service.as_str(), r.version.as_str()),
            ("staging", "edge", "1.2.3")
        );
        let mut r = record(200);
        r.version.clear();
        apply_defaults(&mut r, &Defaults::default());
        assert_eq!(r.version, "");
    }

    #[test]
    fn the_plugins_tags_win_over_dd_tags() {
        let d = Defaults {
            tags: [("team", "relay"), ("region", "eu")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Defaults::default()
        };
        let mut r = record(200);
        r.tags.insert("team".into(), "plugin".into());
        apply_defaults(&mut r, &d);
        assert_eq!(
            r.tags
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>(),
            vec!["region:eu", "team:plugin"]
        );
        // On the span and on the request metrics, through the core.
        let span = Span::from_record(&r);
        assert_eq!(span.meta.get("team").map(String::as_str), Some("plugin"));
        assert_eq!(span.meta.get("region").map(String::as_str), Some("eu"));
        let tags = tdp_core::metrics::dogstatsd::request_tags(&r);
        assert!(tags.ends_with(",region:eu,team:plugin"), "{tags}");
    }
}
