//! The reference's training loss (spec §5.5): L1 reprojection error in pixels under the ground
//! truth pose, validity by depth (0.1..1000 m) and error (< 1000 px), dynamic tanh with the
//! circle schedule τ = 50·√(1 − t²) + 1 for valid points, L1 distance in camera space to the
//! 10 m pseudo target for invalid points, summed and divided by the full batch size.

/// Loss constants (the reference's defaults).
#[derive(Clone, Copy, Debug)]
pub struct LossConfig {
    /// Minimum valid depth (also the projection clamp).
    pub depth_min: f64,
    /// Maximum valid depth.
    pub depth_max: f64,
    /// Errors above this are invalid.
    pub hard_clamp: f64,
    /// Depth of the pseudo target for invalid points.
    pub depth_target: f64,
    /// τ at the start (soft_clamp).
    pub soft_clamp: f64,
    /// τ floor (soft_clamp_min).
    pub soft_clamp_min: f64,
    /// Weight of the pull towards a sample's triangulated depth, as the pixels a relative depth
    /// error of 1 moves its point in the view at the focal length (0: off, as the reference).
    pub depth_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            depth_min: 0.1,
            depth_max: 1000.0,
            hard_clamp: 1000.0,
            depth_target: 10.0,
            soft_clamp: 50.0,
            soft_clamp_min: 1.0,
            depth_weight: 0.0,
        }
    }
}

/// τ of the circle schedule at `iteration` of `total`.
pub fn tau(cfg: &LossConfig, iteration: usize, total: usize) -> f64 {
    let t = iteration as f64 / total as f64;
    let w = 1.0 - (1.0 - t * t).max(0.0).sqrt();
    (1.0 - w) * cfg.soft_clamp + cfg.soft_clamp_min
}

/// One training sample's geometry: world-to-camera [R|t] (row-major 3×4), K (fx, fy, cx, cy)
/// and the target pixel.
#[derive(Clone, Copy, Debug)]
pub struct SampleGeometry {
    /// Rows of [R | t].
    pub w2c: [f32; 12],
    /// fx, fy, cx, cy.
    pub k: [f32; 4],
    /// Target pixel (u, v).
    pub px: [f32; 2],
    /// Triangulated depth of the sample's cell along the camera's z axis (NaN: none).
    pub depth: f32,
}

/// Loss value and per-sample gradient.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// (Σ valid + Σ invalid) / b.
    pub loss: f64,
    /// d loss / d prediction, b×3.
    pub grad: Vec<f32>,
    /// Valid samples.
    pub valid: Vec<bool>,
    /// L1 reprojection errors (with the depth clamp).
    pub errors: Vec<f32>,
}

/// Evaluates the loss and its gradient for predictions `pred` (b×3).
pub fn reprojection_loss(cfg: &LossConfig, pred: &[f32], geo: &[SampleGeometry], tau: f64) -> LossOutput {
    let b = geo.len();
    assert_eq!(pred.len(), b * 3, "one prediction per sample");
    let mut grad = vec![0f32; b * 3];
    let mut valid = vec![false; b];
    let mut errors = vec![0f32; b];
    let mut total = 0.0f64;
    for i in 0..b {
        let g = &geo[i];
        let y = [pred[3 * i] as f64, pred[3 * i + 1] as f64, pred[3 * i + 2] as f64];
        let r = |row: usize, c: usize| g.w2c[row * 4 + c] as f64;
        let xc: [f64; 3] = [0, 1, 2].map(|row| r(row, 0) * y[0] + r(row, 1) * y[1] + r(row, 2) * y[2] + r(row, 3));
        let (fx, fy, cx, cy) = (g.k[0] as f64, g.k[1] as f64, g.k[2] as f64, g.k[3] as f64);
        let qx = fx * xc[0] + cx * xc[2];
        let qy = fy * xc[1] + cy * xc[2];
        let z = xc[2];
        let zc = z.max(cfg.depth_min);
        let (pu, pv) = (qx / zc, qy / zc);
        let (du, dv) = (pu - g.px[0] as f64, pv - g.px[1] as f64);
        let e = du.abs() + dv.abs();
        errors[i] = e as f32;
        let is_valid = !(z < cfg.depth_min || e > cfg.hard_clamp || z > cfg.depth_max);
        valid[i] = is_valid;
        let mut dxc = [0f64; 3];
        let target_depth = g.depth as f64;
        if is_valid {
            let th = (e / tau).tanh();
            total += tau * th;
            let de = 1.0 - th * th;
            let (su, sv) = (du.signum() * (du != 0.0) as i32 as f64, dv.signum() * (dv != 0.0) as i32 as f64);
            // dπ/dxc with the clamp passing the gradient (z ≥ depth_min for valid points).
            let dz = if z >= cfg.depth_min { 1.0 } else { 0.0 };
            let dpu = [fx / zc, 0.0, cx / zc - qx / (zc * zc) * dz];
            let dpv = [0.0, fy / zc, cy / zc - qy / (zc * zc) * dz];
            for a in 0..3 {
                dxc[a] = de * (su * dpu[a] + sv * dpv[a]);
            }
            if cfg.depth_weight > 0.0 && target_depth.is_finite() {
                // The same robust form in pixels: a relative depth error r costs what a
                // displacement of depth_weight·f·r pixels would.
                let scale = cfg.depth_weight * fx.max(fy) / target_depth;
                let dz = z - target_depth;
                let ed = scale * dz.abs();
                let thd = (ed / tau).tanh();
                total += tau * thd;
                dxc[2] += (1.0 - thd * thd) * scale * dz.signum();
            }
        } else {
            // Pseudo target on the pixel's ray at depth_target (or the triangulated depth):
            // d·K⁻¹(u, v, 1).
            let t = if cfg.depth_weight > 0.0 && target_depth.is_finite() { target_depth } else { cfg.depth_target };
            let target = [t * (g.px[0] as f64 - cx) / fx, t * (g.px[1] as f64 - cy) / fy, t];
            for a in 0..3 {
                let d = xc[a] - target[a];
                total += d.abs();
                dxc[a] = d.signum() * (d != 0.0) as i32 as f64;
            }
        }
        for c in 0..3 {
            let gy = (0..3).map(|row| r(row, c) * dxc[row]).sum::<f64>() / b as f64;
            grad[3 * i + c] = gy as f32;
        }
    }
    LossOutput { loss: total / b as f64, grad, valid, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(depth: f32) -> SampleGeometry {
        SampleGeometry {
            w2c: [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            k: [500.0, 500.0, 320.0, 240.0],
            px: [400.0, 200.0],
            depth,
        }
    }

    #[test]
    fn depth_targets_pull_along_the_ray_and_leave_the_reference_loss_alone() {
        // A prediction on the pixel's ray at depth 2 with a target of 2.5: no reprojection error.
        let (u, v) = ((400.0 - 320.0) / 500.0, (200.0 - 240.0) / 500.0);
        let pred = [2.0 * u, 2.0 * v, 2.0];
        let off = LossConfig::default();
        let on = LossConfig { depth_weight: 1.0, ..off };
        let tau = 20.0;
        // Without a weight, or without a target, the reference's loss.
        let reference = reprojection_loss(&off, &pred, &[sample(2.5)], tau);
        let untargeted = reprojection_loss(&on, &pred, &[sample(f32::NAN)], tau);
        assert_eq!((reference.loss, &reference.grad), (untargeted.loss, &untargeted.grad));
        // With both, the depth term on top: τ·tanh(w·f·|z − z*|/z* / τ), its gradient along z only,
        // towards the target, and matching finite differences.
        let depth_term = |p: &[f32; 3]| {
            reprojection_loss(&on, p, &[sample(2.5)], tau).loss - reprojection_loss(&off, p, &[sample(2.5)], tau).loss
        };
        let expected = tau * (500.0 * 0.5 / 2.5 / tau).tanh();
        assert!((depth_term(&pred) - expected).abs() < 1e-3 * expected, "{} vs {expected}", depth_term(&pred));
        let out = reprojection_loss(&on, &pred, &[sample(2.5)], tau);
        let d: Vec<f32> = out.grad.iter().zip(&reference.grad).map(|(a, b)| a - b).collect();
        assert!(d[0] == 0.0 && d[1] == 0.0 && d[2] < 0.0, "{d:?}");
        let h = 1e-3f32;
        let numeric = (depth_term(&[pred[0], pred[1], pred[2] + h]) - depth_term(&[pred[0], pred[1], pred[2] - h]))
            / (2.0 * h as f64);
        assert!((numeric - d[2] as f64).abs() < 0.02 * numeric.abs(), "{numeric} vs {}", d[2]);
        // Invalid points are pulled to the triangulated depth instead of the pseudo target's.
        let behind = [0.0, 0.0, -1.0];
        let to_target = reprojection_loss(&on, &behind, &[sample(2.5)], tau);
        let to_pseudo = reprojection_loss(&off, &behind, &[sample(2.5)], tau);
        assert!(!to_target.valid[0] && to_target.loss < to_pseudo.loss);
    }
}
