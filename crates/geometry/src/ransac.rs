//! DSAC*-style PnP-RANSAC as the reference runs it at test time (spec §6.2), in pure Rust:
//! 1. hypotheses: draw 4 correspondences (with replacement), P3P on the first three, the fourth
//!    picks among the solutions; keep the sample only if all four reproject within τ; redraw
//!    otherwise (with an explicit cap on tries and an optional wall-time budget);
//! 2. score each hypothesis by the soft inlier count Σ 1 − sigmoid(β(e − τ)), β = 5/τ, errors
//!    clamped at `max_pixel_error`; take the argmax;
//! 3. refine: repeatedly take the inliers (e < τ) and run Levenberg–Marquardt on their
//!    reprojection error, while the inlier set grows (up to 100 rounds).
//!
//! Differences from the reference, all deliberate: full K (fx ≠ fy, any principal point) instead
//! of one focal; per-hypothesis random streams derived from a seed, so results do not depend on
//! the thread count; points behind the camera count as maximal error rather than being projected
//! through the camera plane; a hypothesis whose tries run out is dropped rather than kept as
//! a zero pose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nalgebra::{Matrix3, Matrix6, Rotation3, UnitQuaternion, Vector3, Vector6};
use rayon::prelude::*;

use crate::p3p::p3p;
use crate::{Intrinsics, WorldToCam};

/// RANSAC parameters; defaults are the reference's, with a time budget the reference does not
/// have (2 s): one query's work is bounded whoever calls (the command line, Python, the service
/// and the library read this one default).
#[derive(Clone, Debug)]
pub struct RansacConfig {
    /// Number of hypotheses (64; 3200 for Aachen).
    pub hypotheses: usize,
    /// Inlier threshold τ in pixels (10).
    pub threshold: f64,
    /// Scale of the soft inlier score (100).
    pub inlier_alpha: f64,
    /// Errors are clamped here when scoring (100 px).
    pub max_pixel_error: f64,
    /// Cap on 4-point draws per hypothesis (the reference uses 1,000,000).
    pub max_tries: usize,
    /// Stop drawing hypotheses after this long (None: no limit, as the reference); a query that
    /// runs out before any hypothesis fails.
    pub time_budget: Option<Duration>,
    /// Refinement rounds (100).
    pub refinement_rounds: usize,
    /// Seed of the per-hypothesis random streams.
    pub seed: u64,
    /// Stop as soon as this is set (a caller that gave up on the answer): checked with the time
    /// budget while drawing and before each refinement round.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for RansacConfig {
    fn default() -> Self {
        RansacConfig {
            hypotheses: 64,
            threshold: 10.0,
            inlier_alpha: 100.0,
            max_pixel_error: 100.0,
            max_tries: 1_000_000,
            time_budget: Some(Duration::from_secs(2)),
            refinement_rounds: 100,
            seed: 1305,
            cancel: None,
        }
    }
}

impl RansacConfig {
    /// Checks that every parameter means something: counts of at least one, finite positive
    /// thresholds. The error names the parameter (as a field name) and says why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err((name, format!("{v}: expected a positive, finite number")))
            }
        };
        if self.hypotheses == 0 {
            return Err(("hypotheses", "0: at least one hypothesis is needed".into()));
        }
        // Hypotheses are held at once; beyond this they only take memory (Aachen's is 3200).
        if self.hypotheses > 100_000 {
            return Err(("hypotheses", format!("{}: at most 100000", self.hypotheses)));
        }
        if self.refinement_rounds > 10_000 {
            return Err(("refinement_rounds", format!("{}: at most 10000", self.refinement_rounds)));
        }
        if self.max_tries == 0 {
            return Err(("max_tries", "0: at least one draw per hypothesis is needed".into()));
        }
        positive("threshold", self.threshold)?;
        positive("inlier_alpha", self.inlier_alpha)?;
        positive("max_pixel_error", self.max_pixel_error)?;
        if self.time_budget.is_some_and(|b| b.is_zero()) {
            return Err(("time_budget", "0: use no budget instead of an empty one".into()));
        }
        Ok(())
    }
}

/// Why no pose could be estimated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RansacError {
    /// Fewer than 4 usable correspondences.
    #[error("too few usable correspondences ({0}; at least 4 are needed)")]
    TooFewPoints(usize),
    /// [`RansacConfig::cancel`] was set.
    #[error("cancelled")]
    Cancelled,
    /// No 4-point sample passed within the caps.
    #[error("no valid hypothesis within {tries} tries{}", if *.timed_out { " (time budget exhausted)" } else { "" })]
    NoHypothesis {
        /// Draws made in all.
        tries: u64,
        /// The wall-time budget ran out.
        timed_out: bool,
    },
}

/// A pose estimate with its statistics.
#[derive(Clone, Debug)]
pub struct RansacResult {
    /// World-to-camera pose.
    pub pose: WorldToCam,
    /// Size of the inlier set of the last accepted refinement round (0 if none was accepted).
    pub inliers: usize,
    /// Soft inlier score of the winning hypothesis (before refinement).
    pub score: f64,
    /// Hypotheses that passed the 4-point test.
    pub valid_hypotheses: usize,
    /// 4-point draws made in all.
    pub tries: u64,
    /// Refinement rounds accepted.
    pub refinement_rounds: usize,
}

/// A rigid pose in the solver's working form.
#[derive(Clone, Copy, Debug)]
struct Pose {
    r: Matrix3<f64>,
    t: Vector3<f64>,
}

#[derive(Clone, Copy)]
struct Cam {
    fx: f64,
    fy: f64,
    cx: f64,
    cy: f64,
}

impl Cam {
    /// Reprojection error (L2, pixels); infinity behind the camera.
    #[inline]
    fn error(&self, pose: &Pose, x: &Vector3<f64>, uv: &[f64; 2]) -> f64 {
        let p = pose.r * x + pose.t;
        if p.z <= 1e-12 {
            return f64::INFINITY;
        }
        let du = self.fx * p.x / p.z + self.cx - uv[0];
        let dv = self.fy * p.y / p.z + self.cy - uv[1];
        (du * du + dv * dv).sqrt()
    }
    #[inline]
    fn bearing(&self, uv: &[f64; 2]) -> Vector3<f64> {
        Vector3::new((uv[0] - self.cx) / self.fx, (uv[1] - self.cy) / self.fy, 1.0)
    }
}

/// A stable random stream per hypothesis.
type Stream = glace_rng::SplitMix64;

/// Draws one hypothesis: returns the pose and the number of draws used, or None after the cap.
fn draw_hypothesis(
    cam: &Cam,
    pixels: &[[f64; 2]],
    points: &[Vector3<f64>],
    bearings: &[Vector3<f64>],
    cfg: &RansacConfig,
    stream: &mut Stream,
    deadline: Option<Instant>,
) -> (Option<Pose>, u64, bool) {
    let n = points.len();
    let mut tries = 0u64;
    while (tries as usize) < cfg.max_tries {
        tries += 1;
        // `%` rather than is_multiple_of: that needs Rust 1.87, the README promises 1.85.
        #[allow(clippy::manual_is_multiple_of)]
        // Checked on a hypothesis's first draw too, so that the hypotheses still to come after the
        // budget ran out (or the caller gave up) stop at once rather than after 4096 draws each.
        if tries % 4096 == 1 && (deadline.is_some_and(|d| Instant::now() > d) || cancelled(cfg)) {
            return (None, tries, true);
        }
        let idx = [stream.below(n), stream.below(n), stream.below(n), stream.below(n)];
        let sols = p3p(
            [bearings[idx[0]], bearings[idx[1]], bearings[idx[2]]],
            [points[idx[0]], points[idx[1]], points[idx[2]]],
        );
        // The fourth point chooses among the P3P solutions (as OpenCV's P3P with 4 points).
        let best = sols
            .iter()
            .map(|s| Pose { r: s.rotation, t: s.translation })
            .map(|p| (cam.error(&p, &points[idx[3]], &pixels[idx[3]]), p))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, pose)) = best else { continue };
        if idx.iter().all(|&i| cam.error(&pose, &points[i], &pixels[i]) < cfg.threshold) {
            return (Some(pose), tries, false);
        }
    }
    (None, tries, false)
}

fn cancelled(cfg: &RansacConfig) -> bool {
    cfg.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
}

fn soft_score(cam: &Cam, pose: &Pose, pixels: &[[f64; 2]], points: &[Vector3<f64>], cfg: &RansacConfig) -> f64 {
    let beta = 5.0 / cfg.threshold;
    let sum: f64 = points
        .iter()
        .zip(pixels)
        .map(|(x, uv)| {
            let e = cam.error(pose, x, uv).min(cfg.max_pixel_error);
            1.0 - 1.0 / (1.0 + (-beta * (e - cfg.threshold)).exp())
        })
        .sum();
    cfg.inlier_alpha * sum / points.len() as f64
}

/// Levenberg–Marquardt on the squared reprojection error of the given correspondences,
/// starting from `pose`. Left-multiplicative update: x_cam ← exp(ω)·x_cam + v.
fn refine_lm(cam: &Cam, pose: &Pose, pixels: &[[f64; 2]], points: &[Vector3<f64>], idx: &[usize]) -> Option<Pose> {
    let cost = |p: &Pose| -> f64 {
        idx.iter()
            .map(|&i| {
                let c = p.r * points[i] + p.t;
                if c.z <= 1e-12 {
                    return 1e12;
                }
                let du = cam.fx * c.x / c.z + cam.cx - pixels[i][0];
                let dv = cam.fy * c.y / c.z + cam.cy - pixels[i][1];
                du * du + dv * dv
            })
            .sum()
    };
    let mut cur = *pose;
    let mut cur_cost = cost(&cur);
    let mut lambda = 1e-3;
    for _ in 0..50 {
        let mut h = Matrix6::<f64>::zeros();
        let mut g = Vector6::<f64>::zeros();
        for &i in idx {
            let c = cur.r * points[i] + cur.t;
            if c.z <= 1e-12 {
                continue;
            }
            let iz = 1.0 / c.z;
            let ru = cam.fx * c.x * iz + cam.cx - pixels[i][0];
            let rv = cam.fy * c.y * iz + cam.cy - pixels[i][1];
            // d(u,v)/d(c): [[fx/z, 0, −fx·x/z²], [0, fy/z, −fy·y/z²]]
            let du = Vector3::new(cam.fx * iz, 0.0, -cam.fx * c.x * iz * iz);
            let dv = Vector3::new(0.0, cam.fy * iz, -cam.fy * c.y * iz * iz);
            // d(c)/d(ω) = −[c]×, d(c)/d(v) = I  ⇒  row · (−[c]×) = c × row
            let jacobian_row = |d: Vector3<f64>| {
                let w = c.cross(&d);
                Vector6::new(w.x, w.y, w.z, d.x, d.y, d.z)
            };
            let (ju, jv) = (jacobian_row(du), jacobian_row(dv));
            h += ju * ju.transpose() + jv * jv.transpose();
            g += ju * ru + jv * rv;
        }
        let mut improved = false;
        for _ in 0..10 {
            let mut damped = h;
            for k in 0..6 {
                damped[(k, k)] += lambda * h[(k, k)].max(1e-9);
            }
            let Some(step) = damped.cholesky().map(|c| c.solve(&(-g))) else {
                lambda *= 10.0;
                continue;
            };
            let rot = Rotation3::new(Vector3::new(step[0], step[1], step[2])).into_inner();
            let cand = Pose { r: rot * cur.r, t: rot * cur.t + Vector3::new(step[3], step[4], step[5]) };
            let c = cost(&cand);
            if c < cur_cost {
                let rel = (cur_cost - c) / cur_cost.max(1e-300);
                cur = cand;
                cur_cost = c;
                lambda = (lambda * 0.1).max(1e-12);
                improved = true;
                if rel < 1e-12 || step.norm() < 1e-14 {
                    return Some(orthonormalised(cur));
                }
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    cur_cost.is_finite().then(|| orthonormalised(cur))
}

fn orthonormalised(p: Pose) -> Pose {
    Pose { r: crate::pose::nearest_rotation(&p.r).into_inner(), t: p.t }
}

/// Estimates a world-to-camera pose from 2D–3D correspondences.
///
/// `pixels` are ideal (undistorted) pixel positions in the image whose intrinsics are `k`.
/// Correspondences with non-finite values are ignored.
pub fn ransac_pnp(
    pixels: &[[f64; 2]],
    points: &[[f64; 3]],
    k: &Intrinsics,
    cfg: &RansacConfig,
) -> Result<RansacResult, RansacError> {
    assert_eq!(pixels.len(), points.len(), "one pixel per point");
    let cam = Cam { fx: k.fx, fy: k.fy, cx: k.cx, cy: k.cy };
    let (px, pts): (Vec<[f64; 2]>, Vec<Vector3<f64>>) = pixels
        .iter()
        .zip(points)
        .filter(|(uv, x)| uv.iter().chain(x.iter()).all(|v| v.is_finite()))
        .map(|(uv, x)| (*uv, Vector3::new(x[0], x[1], x[2])))
        .unzip();
    if pts.len() < 4 {
        return Err(RansacError::TooFewPoints(pts.len()));
    }
    let bearings: Vec<Vector3<f64>> = px.iter().map(|uv| cam.bearing(uv)).collect();
    let deadline = cfg.time_budget.map(|b| Instant::now() + b);

    let drawn: Vec<(Option<Pose>, u64, bool)> = (0..cfg.hypotheses)
        .into_par_iter()
        .map(|h| {
            let mut stream = Stream::from_state(
                cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (h as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            draw_hypothesis(&cam, &px, &pts, &bearings, cfg, &mut stream, deadline)
        })
        .collect();
    if cancelled(cfg) {
        return Err(RansacError::Cancelled);
    }
    let tries: u64 = drawn.iter().map(|d| d.1).sum();
    let timed_out = drawn.iter().any(|d| d.2);
    let hyps: Vec<Pose> = drawn.into_iter().filter_map(|d| d.0).collect();
    if hyps.is_empty() {
        return Err(RansacError::NoHypothesis { tries, timed_out });
    }
    let scores: Vec<f64> = hyps.par_iter().map(|p| soft_score(&cam, p, &px, &pts, cfg)).collect();
    let (best, score) =
        scores.iter().enumerate().fold((0, f64::NEG_INFINITY), |acc, (i, &s)| if s > acc.1 { (i, s) } else { acc });

    let mut pose = hyps[best];
    let mut best_count = 4;
    let mut inliers = 0;
    let mut rounds = 0;
    for _ in 0..cfg.refinement_rounds {
        if cancelled(cfg) {
            return Err(RansacError::Cancelled);
        }
        let idx: Vec<usize> = (0..pts.len()).filter(|&i| cam.error(&pose, &pts[i], &px[i]) < cfg.threshold).collect();
        if idx.len() <= best_count {
            break;
        }
        best_count = idx.len();
        let Some(refined) = refine_lm(&cam, &pose, &px, &pts, &idx) else { break };
        pose = refined;
        inliers = idx.len();
        rounds += 1;
    }
    let rot = UnitQuaternion::from_matrix(&pose.r);
    let iso = nalgebra::Isometry3::from_parts(nalgebra::Translation3::from(pose.t), rot);
    Ok(RansacResult {
        pose: WorldToCam(iso),
        inliers,
        score,
        valid_hypotheses: hyps.len(),
        tries,
        refinement_rounds: rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoseError;

    fn synthetic(outliers: f64, seed: u64) -> (Vec<[f64; 2]>, Vec<[f64; 3]>, WorldToCam, Intrinsics) {
        let k = Intrinsics::new(520.0, 530.0, 310.0, 250.0).unwrap();
        let gt = WorldToCam(nalgebra::Isometry3::new(Vector3::new(0.3, -0.2, 0.5), Vector3::new(0.1, 0.4, -0.2)));
        let c2w = gt.inverse();
        let mut s = Stream::from_state(seed);
        let mut u = || s.f64();
        let (mut px, mut pts) = (Vec::new(), Vec::new());
        for i in 0..60 {
            for j in 0..80 {
                let (pu, pv) = ((8 * j + 4) as f64, (8 * i + 4) as f64);
                let z = 2.0 + 2.0 * u();
                let pc = nalgebra::Point3::new((pu - k.cx) / k.fx * z, (pv - k.cy) / k.fy * z, z);
                let pw = c2w.transform_point(&pc);
                let p = if u() < outliers { [u() * 6.0 - 3.0, u() * 6.0 - 3.0, u() * 6.0] } else { [pw.x, pw.y, pw.z] };
                px.push([pu, pv]);
                pts.push(p);
            }
        }
        (px, pts, gt, k)
    }

    #[test]
    fn recovers_pose_with_outliers_and_full_k() {
        for outliers in [0.0, 0.5, 0.85] {
            let (px, pts, gt, k) = synthetic(outliers, 3);
            let res = ransac_pnp(&px, &pts, &k, &RansacConfig::default()).unwrap();
            let err = PoseError::between(&res.pose.inverse(), &gt.inverse());
            // Noise-free inliers: exact without outliers; outliers that happen to fall within τ
            // pull the least-squares refinement slightly.
            let (rot_tol, trans_tol) = if outliers == 0.0 { (1e-6, 1e-7) } else { (0.02, 1e-3) };
            assert!(err.rot_deg < rot_tol && err.trans < trans_tol, "outliers {outliers}: {err:?}");
            let expected = ((1.0 - outliers) * 4800.0) as usize;
            assert!(res.inliers.abs_diff(expected) < 200, "inliers {} vs ~{expected}", res.inliers);
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (px, pts, _, k) = synthetic(0.6, 4);
        let a = ransac_pnp(&px, &pts, &k, &RansacConfig::default()).unwrap();
        let b = ransac_pnp(&px, &pts, &k, &RansacConfig::default()).unwrap();
        assert_eq!(a.pose, b.pose);
        assert_eq!(a.tries, b.tries);
    }

    #[test]
    fn hopeless_inputs_fail_without_panicking() {
        let k = Intrinsics::new(500.0, 500.0, 320.0, 240.0).unwrap();
        let cfg = RansacConfig { max_tries: 2000, ..Default::default() };
        // Collinear world points.
        let px: Vec<[f64; 2]> = (0..100).map(|i| [i as f64 * 6.0, (i * 7 % 480) as f64]).collect();
        let line: Vec<[f64; 3]> = (0..100).map(|i| [i as f64 * 0.1, 0.0, 3.0]).collect();
        assert!(matches!(ransac_pnp(&px, &line, &k, &cfg), Err(RansacError::NoHypothesis { .. })));
        // All points behind the camera under any pose that fits... pure noise.
        let behind: Vec<[f64; 3]> =
            (0..100).map(|i| [(i * 37 % 11) as f64, (i * 13 % 7) as f64, -5.0 - (i % 3) as f64]).collect();
        let r = ransac_pnp(&px, &behind, &k, &cfg);
        assert!(r.is_err() || r.unwrap().inliers < 100);
        // NaN coordinates are dropped; too few remain.
        let nan = vec![[f64::NAN, 0.0, 1.0]; 50];
        assert_eq!(ransac_pnp(&px[..50], &nan, &k, &cfg).unwrap_err(), RansacError::TooFewPoints(0));
        // Time budget.
        let cfg = RansacConfig { time_budget: Some(Duration::from_millis(20)), ..Default::default() };
        let err = ransac_pnp(&px, &line, &k, &cfg).unwrap_err();
        assert!(matches!(err, RansacError::NoHypothesis { timed_out: true, .. }), "{err}");
        // A caller that gives up stops the drawing within a few thousand tries.
        let flag = Arc::new(AtomicBool::new(false));
        let cfg = RansacConfig { max_tries: usize::MAX, cancel: Some(flag.clone()), ..Default::default() };
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            flag.store(true, Ordering::Relaxed);
        });
        let t = Instant::now();
        assert_eq!(ransac_pnp(&px, &line, &k, &cfg).unwrap_err(), RansacError::Cancelled);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        setter.join().unwrap();
    }
}
