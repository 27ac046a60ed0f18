//! Hand-held-like camera paths: a smooth closed loop through the free space, the view sweeping
//! left and right across the surroundings, with small high-frequency jitter in position and
//! orientation. Train and test use different loops through the same space (as 7-Scenes does).

use std::f64::consts::TAU;

use glace_geometry::CamToWorld;
use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion, Vector3};

use crate::rng::Rng;

/// Shape of one loop.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoopSpec {
    /// Loop centre (x, y).
    pub centre: [f64; 2],
    /// Loop radii (x, y) in metres.
    pub radii: [f64; 2],
    /// Camera height range (min, max) in metres.
    pub height: [f64; 2],
    /// Mean pitch in degrees (positive looks up).
    pub pitch_deg: f64,
    /// Amplitude of the left-right sweep of the view in degrees.
    pub sweep_deg: f64,
    /// Sweep cycles per loop.
    pub sweep_cycles: f64,
    /// Position jitter in metres (hand shake).
    pub jitter_m: f64,
    /// Orientation jitter in degrees.
    pub jitter_deg: f64,
    /// Direction of travel (+1 or −1).
    pub direction: f64,
    /// Loops travelled over all frames.
    pub turns: f64,
    /// Look at the loop centre (an orbit around objects) instead of away from it.
    pub inward: bool,
    /// Slow variation of the radius, as a fraction (0: none), so that several turns sweep a band
    /// of distances as repeated captures of one place do.
    pub radius_wobble: f64,
}

/// A smooth pseudo-random signal in [−1, 1]: a few sinusoids with random phases.
struct Wobble {
    terms: Vec<(f64, f64, f64)>,
}

impl Wobble {
    fn new(rng: &mut Rng, freqs: &[f64]) -> Self {
        let terms = freqs.iter().map(|&f| (f, rng.range(0.0, TAU), rng.range(0.5, 1.0))).collect::<Vec<_>>();
        Wobble { terms }
    }
    fn at(&self, s: f64) -> f64 {
        let norm: f64 = self.terms.iter().map(|t| t.2).sum();
        self.terms.iter().map(|&(f, p, a)| a * (TAU * f * s + p).sin()).sum::<f64>() / norm
    }
}

/// Camera-to-world rotation looking along `forward` (world, z up) with a roll angle.
pub fn look_rotation(forward: &Vector3<f64>, roll: f64) -> Rotation3<f64> {
    let f = forward.normalize();
    let right = f.cross(&Vector3::z()).normalize();
    let down = f.cross(&right);
    let (s, c) = roll.sin_cos();
    let r = right * c + down * s;
    let d = down * c - right * s;
    Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[r, d, f]))
}

/// `n` poses along a loop.
pub fn loop_poses(spec: &LoopSpec, n: usize, rng: &mut Rng) -> Vec<CamToWorld> {
    let shape_x = Wobble::new(rng, &[2.0, 3.0]);
    let shape_y = Wobble::new(rng, &[2.0, 3.0]);
    let height = Wobble::new(rng, &[1.0, 2.0, 3.0]);
    let sweep = Wobble::new(rng, &[spec.sweep_cycles, spec.sweep_cycles * 1.7]);
    let pitch = Wobble::new(rng, &[2.0, 5.0]);
    let roll = Wobble::new(rng, &[3.0, 7.0]);
    let jitter: Vec<Wobble> = (0..6).map(|_| Wobble::new(rng, &[37.0, 53.0, 71.0])).collect();
    let phase = rng.range(0.0, TAU);
    // Drawn last and only when used, so loops without it keep their random stream.
    let radius = (spec.radius_wobble > 0.0).then(|| Wobble::new(rng, &[0.55 * spec.turns, 0.8 * spec.turns]));
    (0..n)
        .map(|i| {
            let s = i as f64 / n as f64 * spec.turns;
            let th = phase + spec.direction * TAU * s;
            let k = 1.0 + radius.as_ref().map_or(0.0, |w| spec.radius_wobble * w.at(s));
            let x = spec.centre[0] + k * spec.radii[0] * (th.cos() * 0.85 + 0.15 * shape_x.at(s));
            let y = spec.centre[1] + k * spec.radii[1] * (th.sin() * 0.85 + 0.15 * shape_y.at(s));
            let z = spec.height[0] + (spec.height[1] - spec.height[0]) * (0.5 + 0.5 * height.at(s));
            // Look outward from the loop centre, sweeping to either side.
            let out = (y - spec.centre[1]).atan2(x - spec.centre[0]);
            let base = if spec.inward { out + std::f64::consts::PI } else { out };
            let yaw = base + spec.sweep_deg.to_radians() * sweep.at(s);
            let pitch = (spec.pitch_deg + 10.0 * pitch.at(s)).to_radians();
            let j = |k: usize| jitter[k].at(s);
            let yaw = yaw + spec.jitter_deg.to_radians() * j(0);
            let pitch = pitch + spec.jitter_deg.to_radians() * j(1);
            let roll = (4.0 * roll.at(s) + spec.jitter_deg * j(2)).to_radians();
            let forward = Vector3::new(pitch.cos() * yaw.cos(), pitch.cos() * yaw.sin(), pitch.sin());
            let rot = look_rotation(&forward, roll);
            let pos = Vector3::new(x + spec.jitter_m * j(3), y + spec.jitter_m * j(4), z + spec.jitter_m * j(5));
            let q = UnitQuaternion::from_rotation_matrix(&rot);
            CamToWorld(Isometry3::from_parts(Translation3::from(pos), q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_rotation_is_opencv() {
        let r = look_rotation(&Vector3::new(1.0, 0.0, 0.0), 0.0);
        // Camera z (forward) is world +x, camera y (down) is world −z, camera x (right) is world −y.
        assert!((r * Vector3::z() - Vector3::x()).norm() < 1e-12);
        assert!((r * Vector3::y() + Vector3::z()).norm() < 1e-12);
        assert!((r * Vector3::x() + Vector3::y()).norm() < 1e-12);
        assert!((r.matrix().determinant() - 1.0).abs() < 1e-12);
    }
}
