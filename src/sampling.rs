//! Head-based sampling, decided in the guest at request time the way
//! dd-trace does it, so the decision can travel to the backend.

/// dd-trace's Knuth multiplier for deterministic, cross-tracer sampling.
const KNUTH_FACTOR: u64 = 1_111_111_111_111_111_111;

/// Sampling mechanisms as carried in `_dd.p.dm`.
pub const MECHANISM_DEFAULT: u8 = 0;
pub const MECHANISM_RULE: u8 = 3;

/// The `_dd.p.dm` value for a mechanism: `-<n>`, as span tag, in
/// `x-datadog-tags` and (after `t.dm:`) in tracestate.
pub fn decision_maker(mechanism: u8) -> String {
    let mut s = String::with_capacity(4);
    s.push('-');
    crate::text::push_u64(&mut s, u64::from(mechanism));
    s
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// 1/0 for the default mechanism, 2/-1 for a user rule.
    pub priority: i8,
    pub mechanism: u8,
    /// The rate applied; reported as `_dd.rule_psr` for rules.
    pub rate: f64,
}

/// Keep iff `low64(trace_id) * KNUTH (wrapping) <= rate * 2^64`: every
/// tracer and the agent agree on the same trace for the same rate.
pub fn keeps(trace_id_low: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let threshold = rate * 18_446_744_073_709_551_616.0;
    (trace_id_low.wrapping_mul(KNUTH_FACTOR) as f64) <= threshold
}

/// The decision for a new trace. A configured rate of exactly 1 is the
/// default mechanism (nothing set by the user); anything else is a rule.
pub fn decide(trace_id_low: u64, configured_rate: f64) -> Decision {
    let keep = keeps(trace_id_low, configured_rate);
    if configured_rate >= 1.0 {
        Decision {
            priority: 1,
            mechanism: MECHANISM_DEFAULT,
            rate: 1.0,
        }
    } else {
        Decision {
            priority: if keep { 2 } else { -1 },
            mechanism: MECHANISM_RULE,
            rate: configured_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rate_keeps_everything_by_default_mechanism() {
        let d = decide(12345, 1.0);
        assert_eq!(
            d,
            Decision {
                priority: 1,
                mechanism: 0,
                rate: 1.0
            }
        );
    }

    #[test]
    fn zero_rate_rejects_by_rule() {
        assert_eq!(decide(12345, 0.0).priority, -1);
        assert_eq!(decide(12345, 0.0).mechanism, 3);
    }

    #[test]
    fn knuth_hash_boundary() {
        // 1 * KNUTH is about 0.0602 of 2^64.
        assert!(keeps(1, 0.07));
        assert!(!keeps(1, 0.06));
        assert!(keeps(0, 0.000_001));
    }

    #[test]
    fn half_rate_keeps_about_half() {
        let kept = (1..=100_000u64)
            .map(crate::ids::mix64)
            .filter(|id| keeps(*id, 0.5))
            .count();
        assert!((49_000..=51_000).contains(&kept), "kept {kept}");
    }
}
