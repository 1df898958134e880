//! Trace and span ids that stay unique across instances and restarts, and
//! the identity they give the plugin span.
//!
//! Traefik's plain WASI host seeds `random_get` with 42 in every instance, so
//! randomness alone repeats. Each instance instead folds into its key the wall
//! clock at start, whatever `random_get` gives (real entropy on hosts that have
//! it), and per request the request's wall time and client address; a counter
//! separates ids drawn within one instance. The key is run through a bijective
//! mixer, so distinct inputs never collapse onto one id within an instance.

use crate::sampling::Decision;

/// The plugin span's identity within its trace: its ids and its parent's,
/// and the sampling decision that travels with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: u64,
    pub parent_id: u64,
    pub sampling: Decision,
}

/// A 128-bit trace id: high 64 bits = `unix_seconds << 32` (Datadog's
/// convention), low 64 bits random. `high == 0` means a 64-bit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId {
    pub high: u64,
    pub low: u64,
}

impl TraceId {
    /// The high half as the 16 lowercase hex digits of `_dd.p.tid`.
    pub fn high_hex(&self) -> String {
        crate::text::hex16(self.high)
    }

    /// Appends the 32-hex-digit form of W3C `traceparent`.
    pub fn push_hex32(&self, out: &mut String) {
        crate::text::push_hex16(out, self.high);
        crate::text::push_hex16(out, self.low);
    }
}

/// splitmix64's finalizer: a bijection on u64 with full avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bits: folds bytes (a client address) into a seed, and
/// fingerprints a followed file's head in the relay; not a security measure.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Per-instance id source. Not thread-safe by design: a guest instance is
/// single-threaded and serves one request at a time.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    key: u64,
    counter: u64,
}

impl IdGenerator {
    /// `seeds` are anything that differs between instances: start time in ns,
    /// host randomness, an address of the instance's memory.
    pub fn new(seeds: &[u64]) -> Self {
        let key = seeds
            .iter()
            .fold(0x6a09_e667_f3bc_c909, |k, s| mix64(k ^ mix64(*s)));
        Self { key, counter: 0 }
    }

    /// Folds request-specific entropy (wall time, client address hash) into
    /// the key, so two instances started in the same microsecond diverge at
    /// their first request.
    pub fn absorb(&mut self, entropy: u64) {
        self.key = mix64(self.key ^ mix64(entropy));
    }

    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix64(
            self.key
                .wrapping_add(self.counter.wrapping_mul(0xd1b5_4a32_d192_ed03)),
        )
    }

    /// A span id: 63-bit (positive as an i64, as Datadog tracers make them)
    /// and never 0, which means "no parent".
    pub fn span_id(&mut self) -> u64 {
        loop {
            let id = self.next_u64() >> 1;
            if id != 0 {
                return id;
            }
        }
    }

    /// A new 128-bit trace id started at `unix_secs`.
    pub fn trace_id(&mut self, unix_secs: u64) -> TraceId {
        let low = loop {
            let v = self.next_u64();
            if v != 0 {
                break v;
            }
        };
        TraceId {
            high: (unix_secs & 0xffff_ffff) << 32,
            low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn mix64_known_values() {
        // splitmix64 reference outputs for states 0 and 1 after one step.
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn trace_id_high_half_is_seconds_shifted() {
        let mut g = IdGenerator::new(&[1]);
        let t = g.trace_id(1_795_617_227);
        assert_eq!(t.high, 1_795_617_227u64 << 32);
        assert_eq!(t.high_hex(), "6b06f1cb00000000");
        assert_ne!(t.low, 0);
        let mut hex = String::new();
        t.push_hex32(&mut hex);
        assert_eq!(hex, format!("6b06f1cb00000000{:016x}", t.low));
    }

    #[test]
    fn span_ids_are_63_bit_nonzero_and_unique() {
        let mut g = IdGenerator::new(&[42]);
        let ids: HashSet<u64> = (0..100_000).map(|_| g.span_id()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| *id != 0 && *id < (1 << 63)));
    }

    #[test]
    fn instances_with_same_host_random_but_different_start_diverge() {
        // Every Traefik instance gets random_get seeded with 42: only the
        // start time (1 µs apart here) tells them apart.
        let start = 1_795_617_227_000_000_000u64;
        let mut seen = HashSet::new();
        for instance in 0..1_000u64 {
            let mut g = IdGenerator::new(&[start + instance * 1_000, 42]);
            for _ in 0..100 {
                assert!(seen.insert(g.span_id()), "id repeated across instances");
            }
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn same_start_instant_diverges_after_absorbing_request_entropy() {
        let mut a = IdGenerator::new(&[7, 42]);
        let mut b = IdGenerator::new(&[7, 42]);
        a.absorb(fnv1a64(b"127.0.0.1:50000"));
        b.absorb(fnv1a64(b"127.0.0.1:50002"));
        assert_ne!(a.span_id(), b.span_id());
    }
}
