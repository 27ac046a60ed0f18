//! A small deterministic RNG (SplitMix64): the byte-exact output of a seed must never change with
//! a dependency update, so the generator is ours.

/// Mixes a 64-bit value (the SplitMix64 finaliser).
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of several values.
#[inline]
pub fn hash(values: &[u64]) -> u64 {
    values.iter().fold(0x1234_5678_9ABC_DEF0, |h, &v| mix(h ^ v))
}

/// Uniform [0, 1) from a hash.
#[inline]
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Sequential generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed))
    }
    /// An independent generator for a named sub-stream.
    pub fn fork(&self, tag: u64) -> Rng {
        Rng(hash(&[self.0, tag]))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform [0, 1).
    pub fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }
    /// Uniform [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f64()
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.f64() * n as f64) as usize % n.max(1)
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
