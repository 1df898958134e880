//! What becomes of a payload after each attempt: delivered, tried again
//! after a backoff, or dropped. Pure: the sender feeds it the answer, the
//! attempt number, the time spent and a jitter sample.
//!
//! - 2xx: delivered.
//! - 408, 429, 5xx, no answer (connect error, timeout, unreadable answer):
//!   tried again after an exponential backoff with jitter, while attempts
//!   remain and the payload's deadline is not passed; then dropped.
//! - any other status (413 and the other 4xx; 1xx/3xx, which the agent
//!   never sends): the agent will refuse it again, dropped at once.

use std::time::Duration;

/// The agent's answer to one attempt, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Connect error, timeout, or an answer that could not be read.
    None,
}

/// What to do with the payload after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAfter(Duration),
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The agent refused it for good (4xx other than 408/429).
    Refused,
    /// The agent kept failing until the attempts ran out.
    Attempts,
    /// The agent kept failing until the payload's deadline.
    Deadline,
}

impl DropReason {
    pub fn text(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Attempts => "retries exhausted",
            Self::Deadline => "deadline passed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the second attempt; doubles with each one after.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per payload, the first included.
    pub max_attempts: u32,
    /// Time a payload may take from its first attempt, backoffs included.
    pub deadline: Duration,
    /// The most one attempt may take (connect, send, answer).
    pub attempt_timeout: Duration,
}

impl RetryPolicy {
    /// Whether an answer is final.
    pub fn retryable(answer: Answer) -> Option<bool> {
        match answer {
            Answer::Status(s) if (200..300).contains(&s) => None,
            Answer::Status(408 | 429) | Answer::None => Some(true),
            Answer::Status(s) => Some(s >= 500),
        }
    }

    /// After attempt number `attempt` (1 for the first) got `answer`,
    /// `elapsed` after the payload's first attempt began. `jitter` in
    /// [0, 1) spreads the wait over its upper half, so relays that lost
    /// the agent together do not come back in step.
    pub fn next(&self, answer: Answer, attempt: u32, elapsed: Duration, jitter: f64) -> Next {
        match Self::retryable(answer) {
            None => return Next::Delivered,
            Some(false) => return Next::Drop(DropReason::Refused),
            Some(true) => {}
        }
        if attempt >= self.max_attempts {
            return Next::Drop(DropReason::Attempts);
        }
        let doubled = self
            .first_backoff
            .saturating_mul(1u32 << (attempt - 1).min(20));
        let base = doubled.min(self.max_backoff);
        let wait = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        if elapsed.saturating_add(wait) >= self.deadline {
            return Next::Drop(DropReason::Deadline);
        }
        Next::RetryAfter(wait)
    }

    /// How long the next attempt may take, `elapsed` after the first began;
    /// None when the deadline has passed.
    pub fn attempt_budget(&self, elapsed: Duration) -> Option<Duration> {
        let left = self.deadline.saturating_sub(elapsed);
        (!left.is_zero()).then(|| left.min(self.attempt_timeout))
    }
}

/// A small xorshift generator for jitter (no cryptographic need, and no
/// crate for 10 lines).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A sample in [0, 1).
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_backoff: 100 * MS,
            max_backoff: 5000 * MS,
            max_attempts: 10,
            deadline: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn answers_sort_into_delivered_retried_refused() {
        let p = policy();
        for s in [200, 202, 204, 299] {
            assert_eq!(
                p.next(Answer::Status(s), 1, MS, 0.0),
                Next::Delivered,
                "{s}"
            );
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(
                matches!(p.next(Answer::Status(s), 1, MS, 0.0), Next::RetryAfter(_)),
                "{s}"
            );
        }
        assert!(matches!(
            p.next(Answer::None, 1, MS, 0.0),
            Next::RetryAfter(_)
        ));
        for s in [100, 301, 400, 403, 404, 413, 415, 499] {
            assert_eq!(
                p.next(Answer::Status(s), 1, MS, 0.0),
                Next::Drop(DropReason::Refused),
                "{s}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let p = policy();
        let waits: Vec<Duration> = (1..=9)
            .map(|a| match p.next(Answer::Status(503), a, MS, 0.0) {
                Next::RetryAfter(w) => w,
                other => unreachable!("{other:?}"),
            })
            .collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![50, 100, 200, 400, 800, 1600, 2500, 2500, 2500]);
        assert_eq!(
            p.next(Answer::None, 1, MS, 0.999_999),
            Next::RetryAfter(Duration::from_nanos(99_999_950))
        );
        assert_eq!(
            p.next(Answer::None, 40, MS, 0.5),
            Next::Drop(DropReason::Attempts)
        );
    }

    #[test]
    fn attempts_and_deadline_bound_the_retries() {
        let p = policy();
        assert_eq!(
            p.next(Answer::Status(429), 10, MS, 0.0),
            Next::Drop(DropReason::Attempts)
        );
        assert!(matches!(
            p.next(Answer::Status(429), 9, MS, 0.0),
            Next::RetryAfter(_)
        ));
        // A wait that would end past the deadline is not taken.
        assert_eq!(
            p.next(Answer::None, 3, Duration::from_millis(59_800), 0.0),
            Next::Drop(DropReason::Deadline)
        );
        assert!(matches!(
            p.next(Answer::None, 3, Duration::from_millis(59_700), 0.0),
            Next::RetryAfter(_)
        ));
        // Attempts get what is left of the deadline, at most attempt_timeout.
        assert_eq!(
            p.attempt_budget(Duration::ZERO),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            p.attempt_budget(Duration::from_secs(55)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(p.attempt_budget(Duration::from_secs(60)), None);
        assert_eq!(p.attempt_budget(Duration::from_secs(61)), None);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter::new(42);
        let s: Vec<f64> = (0..1000).map(|_| j.sample()).collect();
        assert!(s.iter().all(|x| (0.0..1.0).contains(x)));
        let low = s.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&low), "{low}");
        assert_eq!(Jitter::new(0).sample(), Jitter::new(1).sample());
    }
}
