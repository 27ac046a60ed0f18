//! Mapping's seeding of glace's one generator ([`glace_rng::SplitMix64`]): mapping is
//! deterministic for a seed.

use std::ops::{Deref, DerefMut};

use glace_rng::SplitMix64;

/// The generator with mapping's seeding rule (kept so that a seed gives the maps it always gave).
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::from_state(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678))
    }
}

impl Deref for Rng {
    type Target = SplitMix64;
    fn deref(&self) -> &SplitMix64 {
        &self.0
    }
}

impl DerefMut for Rng {
    fn deref_mut(&mut self) -> &mut SplitMix64 {
        &mut self.0
    }
}
