//! The property tests' generator: xorshift64, deterministic from its seed,
//! so a failing case repeats, and no extra crate. Each test file adds the
//! draws it needs in its own `impl Rng`.

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
