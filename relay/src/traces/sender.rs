//! The sender thread: takes payloads from the buffer and PUTs them to
//! `/v0.4/traces`. What is retried, how long to wait and when to give up
//! is [`super::policy`]'s; every payload ends delivered (`spans_sent`),
//! dropped by the agent's refusal or the retry bounds (`rejected`), or
//! dropped at shutdown (`shutdown`). Keeps the agent's `rate_by_service`
//! answer and logs it when it changes.

use super::batch::SpanBuffer;
use super::http::Transport;
use super::payload::Payload;
use super::policy::{Answer, Jitter, Next, RetryPolicy};
use crate::log::{Throttle, held};
use crate::telemetry::Counters;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const PATH: &str = "/v0.4/traces";
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts per payload; with the backoff capped at 5 s the payload's
/// deadline (`--payload-deadline`) is usually reached first.
pub const MAX_ATTEMPTS: u32 = 30;

/// The agent's sampling rates by `service:<s>,env:<e>`, as last answered.
pub type Rates = Arc<Mutex<BTreeMap<String, f64>>>;

pub struct Sender {
    pub client: Box<dyn Transport>,
    pub agent: String,
    pub buffer: Arc<SpanBuffer>,
    pub counters: Arc<Counters>,
    pub rates: Rates,
    pub policy: RetryPolicy,
    pub jitter: Jitter,
    /// Where the plugin's instances read the rates.
    pub rates_file: crate::rates_file::RatesFile,
    /// The relay's container, as headers (`crate::container::Origin`).
    pub origin: Vec<(&'static str, String)>,
}

/// The retry policy of the relay's flags.
pub fn policy(request_timeout: Duration, payload_deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        first_backoff: FIRST_BACKOFF,
        max_backoff: MAX_BACKOFF,
        max_attempts: MAX_ATTEMPTS,
        deadline: payload_deadline,
        attempt_timeout: request_timeout,
    }
}

/// A jitter seed that differs between relays started together.
pub fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The request headers for a payload of `traces` traces, then `origin`'s
/// (the container ID headers, as Datadog's clients send them).
pub fn headers(traces: usize, origin: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut h = vec![
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
    ];
    h.extend_from_slice(origin);
    h
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

impl Sender {
    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("trace-sender".into())
            .spawn(move || {
                let _alive = crate::health::global().watch("trace sender");
                self.run();
            })
    }

    fn run(mut self) {
        let mut health = Health::default();
        while let Some(p) = self.buffer.pop() {
            self.deliver(p, &mut health);
            self.buffer.done();
        }
    }

    /// The time the next attempt may take; None once the relay's shutdown
    /// deadline has passed.
    fn budget(&self, started: Instant) -> Option<Duration> {
        let mut budget = self
            .policy
            .attempt_budget(started.elapsed())
            .unwrap_or(Duration::from_millis(1));
        if let Some(dl) = self.buffer.deadline() {
            let left = dl.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            budget = budget.min(left);
        }
        Some(budget)
    }

    fn deliver(&mut self, p: Payload, health: &mut Health) {
        let n = p.traces as u64;
        let traces = p.traces;
        // Shared, not copied, by every attempt: the body is up to
        // --batch-bytes and is held while the agent is down.
        let body = Bytes::from(p.body);
        let started = Instant::now();
        let headers = headers(traces, &self.origin);
        let mut attempt = 0;
        loop {
            let Some(budget) = self.budget(started) else {
                Counters::add(&self.counters.dropped_shutdown, n);
                return;
            };
            attempt += 1;
            let result = self.client.put(PATH, &headers, &body, budget);
            let answer = match &result {
                Ok(r) => Answer::Status(r.status),
                Err(_) => Answer::None,
            };
            let next = self
                .policy
                .next(answer, attempt, started.elapsed(), self.jitter.sample());
            if next == Next::Delivered {
                if let Some(rates) = result.ok().and_then(|r| parse_rates(&r.body)) {
                    self.keep_rates(rates);
                }
                Counters::add(&self.counters.spans_sent, n);
                Counters::add(&self.counters.payloads_sent, 1);
                health.up(&self.agent);
                crate::health::global().agent_answered();
                return;
            }
            Counters::add(&self.counters.agent_errors, 1);
            // Refused (4xx) is still an answer: the agent is there.
            let answered = matches!(&result, Ok(r) if r.status < 500);
            let why = match result {
                Ok(r) => {
                    let text = String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                        .trim()
                        .to_owned();
                    format!("HTTP {} {text:?}", r.status)
                }
                Err(e) => e.to_string(),
            };
            match next {
                Next::RetryAfter(wait) => {
                    health.down(&self.agent, &why, self.buffer.spans());
                    crate::health::global().agent_failed(&why);
                    Counters::add(&self.counters.payloads_retried, 1);
                    if !self.buffer.backoff(wait) {
                        Counters::add(&self.counters.dropped_shutdown, n);
                        return;
                    }
                }
                Next::Drop(reason) => {
                    Counters::add(&self.counters.dropped_rejected, n);
                    if answered {
                        crate::health::global().agent_answered();
                    }
                    if let Some(h) = health.drops.allow() {
                        error!(
                            "agent {}: payload of {n} spans dropped ({}, {attempt} attempts in {:.1}s): {why}{}",
                            self.agent,
                            reason.text(),
                            started.elapsed().as_secs_f64(),
                            held(h)
                        );
                    }
                    return;
                }
                Next::Delivered => {}
            }
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
    /// Dropped payloads, apart: the warnings of an outage must not hide
    /// the error that says spans were lost.
    drops: Throttle,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            down_since: None,
            throttle: Throttle::new(Duration::from_secs(10)),
            drops: Throttle::new(Duration::from_secs(10)),
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
    use crate::traces::http::{HttpError, Response};
    use std::collections::VecDeque;

    /// Answers from a script, recording the time budget of each attempt.
    struct Fake {
        script: VecDeque<Result<Response, HttpError>>,
        budgets: Arc<Mutex<Vec<Duration>>>,
    }

    impl Transport for Fake {
        fn put(
            &mut self,
            path: &str,
            headers: &[(&'static str, String)],
            _body: &Bytes,
            timeout: Duration,
        ) -> Result<Response, HttpError> {
            assert_eq!(path, PATH);
            assert_eq!(headers[1].0, "X-Datadog-Trace-Count");
            assert_eq!(headers[6], ("Datadog-Container-ID", "abc".to_owned()));
            self.budgets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(timeout);
            self.script.pop_front().unwrap_or(Ok(Response {
                status: 200,
                body: Vec::new(),
            }))
        }
    }

    fn status(s: u16) -> Result<Response, HttpError> {
        Ok(Response {
            status: s,
            body: format!("status {s}").into_bytes(),
        })
    }

    struct Run {
        counters: crate::telemetry::Snapshot,
        budgets: Vec<Duration>,
        rates: BTreeMap<String, f64>,
    }

    /// Delivers one payload of 3 spans through `script` (then 200s).
    fn run(script: Vec<Result<Response, HttpError>>, deadline: Duration) -> Run {
        let counters = Arc::new(Counters::default());
        let buffer = Arc::new(SpanBuffer::new(100, 1 << 20, counters.clone()));
        let budgets = Arc::new(Mutex::new(Vec::new()));
        let rates: Rates = Arc::default();
        let mut policy = policy(Duration::from_secs(10), deadline);
        policy.first_backoff = Duration::from_millis(2);
        policy.max_backoff = Duration::from_millis(8);
        let mut sender = Sender {
            client: Box::new(Fake {
                script: script.into(),
                budgets: budgets.clone(),
            }),
            agent: "fake".into(),
            buffer: buffer.clone(),
            counters: counters.clone(),
            rates: rates.clone(),
            policy,
            jitter: Jitter::new(7),
            rates_file: crate::rates_file::RatesFile::new(None),
            origin: vec![("Datadog-Container-ID", "abc".to_owned())],
        };
        buffer.push(Payload {
            body: vec![0x93],
            traces: 3,
        });
        let p = buffer.pop().expect("payload");
        sender.deliver(p, &mut Health::default());
        buffer.done();
        let budgets = budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let rates = rates.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Run {
            counters: counters.snapshot(),
            budgets,
            rates,
        }
    }

    #[test]
    fn delivered_after_transient_failures_and_rates_kept() {
        let ok = Ok(Response {
            status: 200,
            body: br#"{"rate_by_service":{"service:edge,env:prod":0.25}}"#.to_vec(),
        });
        let r = run(
            vec![
                status(503),
                status(429),
                status(408),
                status(500),
                Err(HttpError::Timeout),
                Err(HttpError::Connect("refused".into())),
                Err(HttpError::Exchange("invalid chunk size".into())),
                ok,
            ],
            Duration::from_secs(60),
        );
        assert_eq!(r.counters.spans_sent, 3);
        assert_eq!(r.counters.payloads_sent, 1);
        assert_eq!(r.counters.payloads_retried, 7);
        assert_eq!(r.counters.agent_errors, 7);
        assert_eq!(r.counters.spans_dropped(), 0);
        assert_eq!(r.budgets.len(), 8);
        assert_eq!(r.rates["service:edge,env:prod"], 0.25);
    }

    #[test]
    fn refused_payloads_are_dropped_at_once_and_counted() {
        for s in [400, 403, 404, 413, 415] {
            let r = run(vec![status(s)], Duration::from_secs(60));
            assert_eq!(r.counters.dropped_rejected, 3, "{s}");
            assert_eq!(r.counters.spans_sent, 0, "{s}");
            assert_eq!(r.counters.payloads_retried, 0, "{s}");
            assert_eq!(r.counters.agent_errors, 1, "{s}");
            assert_eq!(r.budgets.len(), 1, "{s}");
        }
    }

    #[test]
    fn retries_end_at_the_attempt_bound_and_are_counted() {
        let script = (0..MAX_ATTEMPTS + 5).map(|_| status(503)).collect();
        let r = run(script, Duration::from_secs(600));
        assert_eq!(r.budgets.len(), MAX_ATTEMPTS as usize);
        assert_eq!(r.counters.dropped_rejected, 3);
        assert_eq!(r.counters.payloads_retried, u64::from(MAX_ATTEMPTS) - 1);
        assert_eq!(r.counters.agent_errors, u64::from(MAX_ATTEMPTS));
        assert_eq!(r.counters.spans_sent, 0);
    }

    #[test]
    fn retries_end_at_the_payload_deadline() {
        let script = (0..1000).map(|_| Err(HttpError::Timeout)).collect();
        let deadline = Duration::from_millis(30);
        let r = run(script, deadline);
        assert_eq!(r.counters.dropped_rejected, 3);
        assert_eq!(r.counters.spans_sent, 0);
        assert!(
            r.budgets.len() < MAX_ATTEMPTS as usize,
            "{}",
            r.budgets.len()
        );
        assert!(r.budgets.iter().all(|b| *b <= deadline), "{:?}", r.budgets);
    }

    #[test]
    fn an_outage_warning_does_not_hold_back_the_drop_error() {
        let mut h = Health::default();
        h.down("agent", "refused", 3);
        h.down("agent", "refused", 3);
        assert_eq!(h.throttle.allow(), None, "outage warnings throttled");
        assert_eq!(h.drops.allow(), Some(0), "the first drop is said");
    }

    #[test]
    fn headers_exact() {
        let h = headers(3, &[("Datadog-Container-ID", "abc".to_owned())]);
        let names: Vec<&str> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            vec![
                "Content-Type",
                "X-Datadog-Trace-Count",
                "Datadog-Meta-Lang",
                "Datadog-Meta-Lang-Version",
                "Datadog-Meta-Tracer-Version",
                "Datadog-Send-Real-Http-Status",
                "Datadog-Container-ID"
            ]
        );
        assert_eq!(h[6].1, "abc");
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
