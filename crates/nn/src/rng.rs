//! SplitMix64: the crate's small deterministic generator (initialisation, k-means seeding).

/// Seeded generator; the state is used as given.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    /// Uniform [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Index drawn with probability proportional to `weights` (summing to `total`).
    pub(crate) fn weighted<T: Copy + Into<f64>>(&mut self, weights: &[T], total: f64) -> usize {
        let mut r = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            r -= (*w).into();
            if r <= 0.0 {
                return i;
            }
        }
        weights.len() - 1
    }
}
