//! glace's one seeded random generator, SplitMix64, for every crate: mapping's sampling and
//! augmentation, network initialisation and k-means seeding, RANSAC's per-hypothesis streams
//! and the synthetic scenes. The byte-exact output of a seed must never change with a
//! dependency update, so the generator is ours.

/// The golden-ratio increment of SplitMix64.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
#[inline]
pub fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step applied to a value: a fast, well-mixed hash of one word.
#[inline]
pub fn mix(z: u64) -> u64 {
    finalize(z.wrapping_add(GOLDEN))
}

/// A hash of several words.
#[inline]
pub fn hash(values: &[u64]) -> u64 {
    values.iter().fold(0x1234_5678_9ABC_DEF0, |h, &v| mix(h ^ v))
}

/// Uniform [0, 1) from 64 random bits (their top 53).
#[inline]
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The generator. Its state is the SplitMix64 counter; [`SplitMix64::from_state`] takes it as
/// given, so that callers keep their own seeding rules (and their outputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose counter starts at `state`.
    ///
    /// ```
    /// let mut a = glace_rng::SplitMix64::from_state(7);
    /// let mut b = glace_rng::SplitMix64::from_state(7);
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    pub const fn from_state(state: u64) -> Self {
        SplitMix64(state)
    }
    /// The counter.
    pub fn state(&self) -> u64 {
        self.0
    }
    /// 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        finalize(self.0)
    }
    /// Uniform [0, 1).
    #[inline]
    pub fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }
    /// Uniform [a, b).
    #[inline]
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f64()
    }
    /// Uniform integer in [0, n) from the top 32 bits (multiply-shift, no division); `n` below 2³².
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// Standard normal (Box–Muller, cosine branch).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-300);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Two independent standard normals in f32 from one draw (Box–Muller with both branches);
    /// the tails are cut at 5.8 σ by the 24-bit uniforms.
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
    /// An index drawn with probability proportional to `weights` (summing to `total`).
    pub fn weighted<T: Copy + Into<f64>>(&mut self, weights: &[T], total: f64) -> usize {
        let mut r = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            r -= (*w).into();
            if r <= 0.0 {
                return i;
            }
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_splitmix64_reference_sequence() {
        // Vigna's splitmix64.c from state 1234567.
        let mut r = SplitMix64::from_state(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn normal_pairs_are_standard_and_uncorrelated() {
        let mut rng = SplitMix64::from_state(7);
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
