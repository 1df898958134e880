//! The sender thread: takes payloads from the buffer and PUTs them to
//! `/v0.4/traces`, retrying with exponential backoff (100 ms doubling to
//! 5 s) while the agent is unreachable, times out, or answers 408, 429,
//! 502, 503 or 504; other 5xx are retried 5 times, other 4xx not at all.
//! Keeps the agent's `rate_by_service` answer and logs it when it changes.

use super::batch::SpanBuffer;
use super::http::{Client, HttpError};
use super::payload::Payload;
use crate::log::{Throttle, held};
use crate::telemetry::Counters;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const PATH: &str = "/v0.4/traces";
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const OTHER_5XX_ATTEMPTS: u32 = 5;

/// The agent's sampling rates by `service:<s>,env:<e>`, as last answered.
pub type Rates = Arc<Mutex<BTreeMap<String, f64>>>;

pub struct Sender {
    pub client: Client,
    pub agent: String,
    pub buffer: Arc<SpanBuffer>,
    pub counters: Arc<Counters>,
    pub rates: Rates,
    /// Where the plugin's instances read the rates.
    pub rates_file: crate::rates_file::RatesFile,
    pub request_timeout: Duration,
}

/// The request headers for a payload of `traces` traces.
pub fn headers(traces: usize) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/msgpack".to_owned()),
        ("X-Datadog-Trace-Count", traces.to_string()),
        ("Datadog-Meta-Lang", "rust".to_owned()),
        (
            "Datadog-Meta-Lang-Version",
            env!("RELAY_RUSTC_VERSION").to_owned(),
        ),
        (
            "Datadog-Meta-Tracer-Version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("Datadog-Send-Real-Http-Status", "yes".to_owned()),
    ]
}

/// `rate_by_service` from the agent's answer, if it has one.
pub fn parse_rates(body: &[u8]) -> Option<BTreeMap<String, f64>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        rate_by_service: BTreeMap<String, f64>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .map(|a| a.rate_by_service)
}

enum Outcome {
    Sent,
    Retry(String),
    Reject(String),
}

impl Sender {
    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("trace-sender".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut health = Health::default();
        while let Some(p) = self.buffer.pop() {
            self.deliver(&p, &mut health);
            self.buffer.done();
        }
    }

    fn attempt(&mut self, p: &Payload, attempt: u32) -> Outcome {
        match self.client.put(PATH, &headers(p.traces), &p.body) {
            Ok(r) if (200..300).contains(&r.status) => {
                if let Some(rates) = parse_rates(&r.body) {
                    self.keep_rates(rates);
                }
                Outcome::Sent
            }
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    .trim()
                    .to_owned();
                let why = format!("HTTP {} {text:?}", r.status);
                let transient = matches!(r.status, 408 | 429 | 502 | 503 | 504)
                    || (r.status >= 500 && attempt < OTHER_5XX_ATTEMPTS);
                if transient {
                    Outcome::Retry(why)
                } else {
                    Outcome::Reject(why)
                }
            }
            Err(e @ (HttpError::Connect(_) | HttpError::Io(_) | HttpError::Protocol(_))) => {
                Outcome::Retry(e.to_string())
            }
        }
    }

    fn deliver(&mut self, p: &Payload, health: &mut Health) {
        let n = p.traces as u64;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let timeout = match self.buffer.deadline() {
                Some(dl) => {
                    let left = dl.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        Counters::add(&self.counters.dropped_shutdown, n);
                        return;
                    }
                    left.min(self.request_timeout)
                }
                None => self.request_timeout,
            };
            self.client.set_io_timeout(timeout);
            attempt += 1;
            match self.attempt(p, attempt) {
                Outcome::Sent => {
                    Counters::add(&self.counters.spans_sent, n);
                    Counters::add(&self.counters.payloads_sent, 1);
                    health.up(&self.agent);
                    return;
                }
                Outcome::Reject(why) => {
                    Counters::add(&self.counters.agent_errors, 1);
                    Counters::add(&self.counters.dropped_rejected, n);
                    if let Some(h) = health.throttle.allow() {
                        error!(
                            "agent {} refused a payload of {n} spans: {why}; dropped{}",
                            self.agent,
                            held(h)
                        );
                    }
                    return;
                }
                Outcome::Retry(why) => {
                    Counters::add(&self.counters.agent_errors, 1);
                    health.down(&self.agent, &why, self.buffer.spans());
                }
            }
            Counters::add(&self.counters.payloads_retried, 1);
            if !self.buffer.backoff(backoff) {
                Counters::add(&self.counters.dropped_shutdown, n);
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn keep_rates(&mut self, rates: BTreeMap<String, f64>) {
        self.rates_file.offer(&rates);
        let mut kept = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        if *kept != rates {
            let shown: Vec<String> = rates.iter().map(|(k, v)| format!("{k:?}={v}")).collect();
            info!("agent sampling rates: {}", shown.join(" "));
            *kept = rates;
        }
    }
}

/// Logs when the agent goes away and comes back, and not every failure.
struct Health {
    down_since: Option<Instant>,
    throttle: Throttle,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            down_since: None,
            throttle: Throttle::new(Duration::from_secs(10)),
        }
    }
}

impl Health {
    fn down(&mut self, agent: &str, why: &str, held_spans: usize) {
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            warn!("agent {agent}: {why}; holding {held_spans} spans and retrying");
            let _ = self.throttle.allow();
        } else if let Some(h) = self.throttle.allow() {
            warn!(
                "agent {agent} still failing: {why}; holding {held_spans} spans{}",
                held(h)
            );
        }
    }

    fn up(&mut self, agent: &str) {
        if let Some(t) = self.down_since.take() {
            info!(
                "agent {agent} accepts spans again after {:.1}s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_exact() {
        let h = headers(3);
        let names: Vec<&str> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            vec![
                "Content-Type",
                "X-Datadog-Trace-Count",
                "Datadog-Meta-Lang",
                "Datadog-Meta-Lang-Version",
                "Datadog-Meta-Tracer-Version",
                "Datadog-Send-Real-Http-Status"
            ]
        );
        assert_eq!(h[0].1, "application/msgpack");
        assert_eq!(h[1].1, "3");
        assert_eq!(h[2].1, "rust");
        assert!(h[3].1.starts_with("1."), "{}", h[3].1);
        assert_eq!(h[4].1, "0.1.0");
        assert_eq!(h[5].1, "yes");
    }

    #[test]
    fn reads_rate_by_service() {
        let r =
            parse_rates(br#"{"rate_by_service":{"service:edge,env:prod":0.5,"service:,env:":1}}"#)
                .expect("rates");
        assert_eq!(r.len(), 2);
        assert_eq!(r["service:edge,env:prod"], 0.5);
        assert_eq!(r["service:,env:"], 1.0);
        assert_eq!(parse_rates(b"OK"), None);
    }
}
