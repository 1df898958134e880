//! Head-based sampling, decided in the guest at request time the way
//! dd-trace does it, so the decision can travel to the backend.
//!
//! Where the rate comes from, first that applies: a matching sampling rule
//! or the catch-all `sampleRate` (mechanism rule, priority 2/-1, reported as
//! `_dd.rule_psr`), else the agent's rate for the plugin's service and env
//! (mechanism agent rate, priority 1/0, `_dd.agent_psr`), else rate 1 until
//! the agent has answered (mechanism default, priority 1) — as dd-trace-cpp.

pub mod agent;
pub mod rate;
pub mod rules;

/// dd-trace's Knuth multiplier for deterministic, cross-tracer sampling.
const KNUTH_FACTOR: u64 = 1_111_111_111_111_111_111;

/// Sampling mechanisms as carried in `_dd.p.dm`.
pub const MECHANISM_DEFAULT: u8 = 0;
pub const MECHANISM_AGENT_RATE: u8 = 1;
pub const MECHANISM_RULE: u8 = 3;

/// [`Decision::rate`] of an inherited decision: the plugin applied no rate
/// of its own, so the span reports none (no `_dd.rule_psr`/`_dd.agent_psr`).
pub const INHERITED_RATE: f64 = -1.0;

/// The `_dd.p.dm` value for a mechanism: `-<n>`, as span tag, in
/// `x-datadog-tags` and (after `t.dm:`) in tracestate.
pub fn decision_maker(mechanism: u8) -> String {
    let mut s = String::with_capacity(4);
    push_decision_maker(&mut s, mechanism);
    s
}

/// Appends [`decision_maker`]'s value where a header is being written.
pub fn push_decision_maker(out: &mut String, mechanism: u8) {
    out.push('-');
    crate::text::push_u64(out, u64::from(mechanism));
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// 1 for the default mechanism, 1/0 for the agent's rate, 2/-1 for a
    /// user rule.
    pub priority: i8,
    pub mechanism: u8,
    /// The rate applied (0..=1), reported as `_dd.rule_psr` for rules and
    /// `_dd.agent_psr` for the agent's rate; [`INHERITED_RATE`] when the
    /// decision came with the request.
    pub rate: f64,
}

/// Where the rate of a new trace comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// Nothing configured and no answer from the agent yet: keep.
    Default,
    /// The agent's `rate_by_service` for the plugin's service and env.
    Agent(f64),
    /// A sampling rule or the catch-all `sampleRate`.
    Rule(f64),
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
    // rate < 1 here, so the product is below 2^64 and the cast truncates
    // exactly; comparing integers keeps every u64 hash distinct.
    let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
    trace_id_low.wrapping_mul(KNUTH_FACTOR) <= threshold
}

/// The decision for a new trace.
pub fn decide(trace_id_low: u64, source: Source) -> Decision {
    match source {
        Source::Default => Decision {
            priority: 1,
            mechanism: MECHANISM_DEFAULT,
            rate: 1.0,
        },
        Source::Agent(rate) => Decision {
            priority: i8::from(keeps(trace_id_low, rate)),
            mechanism: MECHANISM_AGENT_RATE,
            rate,
        },
        Source::Rule(rate) => Decision {
            priority: if keeps(trace_id_low, rate) { 2 } else { -1 },
            mechanism: MECHANISM_RULE,
            rate,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_everything_by_default_mechanism() {
        assert_eq!(
            decide(12345, Source::Default),
            Decision {
                priority: 1,
                mechanism: 0,
                rate: 1.0
            }
        );
    }

    #[test]
    fn rules_keep_with_2_and_drop_with_minus_1() {
        assert_eq!(
            decide(12345, Source::Rule(0.0)),
            Decision {
                priority: -1,
                mechanism: 3,
                rate: 0.0
            }
        );
        assert_eq!(
            decide(12345, Source::Rule(1.0)),
            Decision {
                priority: 2,
                mechanism: 3,
                rate: 1.0
            }
        );
    }

    #[test]
    fn agent_rates_keep_with_1_and_drop_with_0() {
        // 1 * KNUTH is about 0.0602 of 2^64.
        assert_eq!(
            decide(1, Source::Agent(0.07)),
            Decision {
                priority: 1,
                mechanism: 1,
                rate: 0.07
            }
        );
        assert_eq!(
            decide(1, Source::Agent(0.06)),
            Decision {
                priority: 0,
                mechanism: 1,
                rate: 0.06
            }
        );
        assert_eq!(decide(u64::MAX, Source::Agent(1.0)).priority, 1);
        assert_eq!(decide(0, Source::Agent(0.0)).priority, 0);
    }

    #[test]
    fn decision_makers() {
        assert_eq!(decision_maker(MECHANISM_DEFAULT), "-0");
        assert_eq!(decision_maker(MECHANISM_AGENT_RATE), "-1");
        assert_eq!(decision_maker(MECHANISM_RULE), "-3");
    }

    #[test]
    fn knuth_hash_boundary() {
        assert!(keeps(1, 0.07));
        assert!(!keeps(1, 0.06));
        assert!(keeps(0, 0.000_001));
        // The exact threshold: at 0.5 the largest hash kept is 2^63.
        let inverse = (0..6).fold(KNUTH_FACTOR, |x: u64, _| {
            x.wrapping_mul(2u64.wrapping_sub(KNUTH_FACTOR.wrapping_mul(x)))
        });
        let id_hashing_to = |h: u64| h.wrapping_mul(inverse);
        assert_eq!(id_hashing_to(1 << 63).wrapping_mul(KNUTH_FACTOR), 1 << 63);
        assert!(keeps(id_hashing_to(1 << 63), 0.5));
        assert!(!keeps(id_hashing_to((1 << 63) + 1), 0.5));
        assert!(keeps(id_hashing_to(u64::MAX), 1.0));
        assert!(!keeps(id_hashing_to(0), 0.0));
    }

    #[test]
    fn half_rate_keeps_about_half() {
        let kept = (1..=100_000u64)
            .map(crate::propagation::ids::mix64)
            .filter(|id| keeps(*id, 0.5))
            .count();
        assert!((49_000..=51_000).contains(&kept), "kept {kept}");
    }
}
