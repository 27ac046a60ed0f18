//! A small seeded generator (SplitMix64) so that mapping is deterministic for a seed.

/// Seeded generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678)
    }
    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f64()
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32) * n as u64 >> 32) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.f64()).cos()
    }
    /// Two independent standard normals in f32 (Box–Muller with both branches); the tails are
    /// cut at 5.8 σ by the 24-bit uniforms, which does not matter for feature-diffusion noise.
    pub fn normal_pair_f32(&mut self) -> (f32, f32) {
        let bits = self.next_u64();
        let u = ((bits >> 40) + 1) as f32 / (1u32 << 24) as f32; // (0, 1]
        let v = ((bits >> 8) & 0xFF_FFFF) as f32 / (1u32 << 24) as f32; // [0, 1)
        let r = (-2.0 * u.ln()).sqrt();
        let (s, c) = (std::f32::consts::TAU * v).sin_cos();
        (r * c, r * s)
    }
    /// Fisher–Yates permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_pairs_are_standard_and_uncorrelated() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let (mut s, mut ss, mut sab, mut tail) = (0f64, 0f64, 0f64, 0usize);
        for _ in 0..n {
            let (a, b) = rng.normal_pair_f32();
            for v in [a as f64, b as f64] {
                s += v;
                ss += v * v;
                tail += usize::from(v.abs() > 3.0);
            }
            sab += a as f64 * b as f64;
        }
        let m = 2.0 * n as f64;
        assert!((s / m).abs() < 0.01, "mean {}", s / m);
        assert!((ss / m - 1.0).abs() < 0.01, "variance {}", ss / m);
        assert!((sab / n as f64).abs() < 0.01, "correlation {}", sab / n as f64);
        // P(|z| > 3) = 0.27 %.
        assert!((tail as f64 / m - 0.0027).abs() < 0.0006, "tail {}", tail as f64 / m);
    }
}
