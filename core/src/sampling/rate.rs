//! A sampling rate: a fraction of traces to keep, in `0..=1`. Checked once
//! where it is read; past that no rate can be out of range or NaN.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SampleRate(f64);

/// Why a number is not a sampling rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutOfRange(pub f64);

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is outside 0..1", self.0)
    }
}

impl std::error::Error for OutOfRange {}

impl SampleRate {
    /// Keep every trace.
    pub const ALL: SampleRate = SampleRate(1.0);
    /// Keep none.
    pub const NONE: SampleRate = SampleRate(0.0);

    /// `rate` when it lies in `0..=1` (NaN does not).
    pub fn new(rate: f64) -> Result<Self, OutOfRange> {
        if (0.0..=1.0).contains(&rate) {
            Ok(Self(rate))
        } else {
            Err(OutOfRange(rate))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for SampleRate {
    type Error = OutOfRange;

    fn try_from(rate: f64) -> Result<Self, OutOfRange> {
        Self::new(rate)
    }
}

impl From<SampleRate> for f64 {
    fn from(rate: SampleRate) -> f64 {
        rate.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fractions_from_0_to_1() {
        for ok in [0.0, 0.25, 1.0, -0.0] {
            assert_eq!(SampleRate::new(ok).map(SampleRate::get), Ok(ok));
        }
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(SampleRate::new(bad).is_err(), "{bad}");
        }
        assert_eq!(SampleRate::try_from(0.5), Ok(SampleRate(0.5)));
        assert_eq!(f64::from(SampleRate::ALL), 1.0);
        assert_eq!(SampleRate::NONE.get(), 0.0);
    }

    #[test]
    fn errors_explain_themselves() {
        assert_eq!(OutOfRange(1.5).to_string(), "1.5 is outside 0..1");
        assert_eq!(OutOfRange(-2.0).to_string(), "-2 is outside 0..1");
    }
}
