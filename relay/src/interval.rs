//! The request-metrics interval: a duration that divides 10 s, the agent's
//! aggregation bucket, so every interval falls in exactly one bucket.

use std::time::Duration;

const BUCKET: Duration = Duration::from_secs(10);

/// An interval that divides 10 s; it cannot be built otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsInterval(Duration);

impl MetricsInterval {
    /// Datadog's own clients aggregate over 2 s.
    pub const DEFAULT: Self = Self(Duration::from_secs(2));

    pub fn new(d: Duration) -> Result<Self, String> {
        if d.is_zero() || BUCKET.as_nanos() % d.as_nanos() != 0 {
            return Err(format!(
                "{d:?} does not divide 10s (the agent's bucket); use e.g. 1s, 2s, 5s, 10s"
            ));
        }
        Ok(Self(d))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_divisors_of_ten_seconds() {
        for ms in [100, 500, 1000, 2000, 2500, 5000, 10_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(MetricsInterval::new(d).map(MetricsInterval::get), Ok(d));
        }
        for ms in [0, 3000, 7000, 20_000] {
            assert!(MetricsInterval::new(Duration::from_millis(ms)).is_err());
        }
        assert_eq!(MetricsInterval::DEFAULT.get(), Duration::from_secs(2));
    }
}
