//! The synthetic scenes' use of glace's one generator ([`glace_rng::SplitMix64`]): the byte-exact
//! output of a seed must never change, so its seeding, forking and integer rule stay as they were.

use std::ops::{Deref, DerefMut};

pub use glace_rng::{hash, mix, unit};
use glace_rng::{SplitMix64, GOLDEN};

/// Sequential generator. Its counter runs one golden step ahead of the value it was seeded with
/// (`mix` adds one itself), which keeps every scene's bytes.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::from_state(mix(seed).wrapping_add(GOLDEN)))
    }
    /// An independent generator for a named sub-stream.
    pub fn fork(&self, tag: u64) -> Rng {
        Rng(SplitMix64::from_state(hash(&[self.0.state().wrapping_sub(GOLDEN), tag]).wrapping_add(GOLDEN)))
    }
    /// Uniform integer in [0, n), from a uniform float.
    pub fn below(&mut self, n: usize) -> usize {
        (self.f64() * n as f64) as usize % n.max(1)
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
