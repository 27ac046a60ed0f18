//! The reference's DSAC* RANSAC statistics (`shared/fixtures/dsacstar_ransac.npz`): five synthetic
//! frames with 0–90 % outliers, the reference's pose errors and wall times. Used by the accuracy
//! test and by `glace bench ransac`.

use std::path::Path;

use crate::LocalizeError;
use std::time::Instant;

use glace_geometry::ransac::{ransac_pnp, RansacConfig};
use glace_geometry::{CamToWorld, Intrinsics, PoseError};
use nalgebra::Matrix4;
use serde::Serialize;

/// One fixture case.
pub struct Case {
    /// Fraction of outlier cells.
    pub outlier_fraction: f64,
    /// Cell pixel positions (8j + 4, 8i + 4).
    pub pixels: Vec<[f64; 2]>,
    /// Scene coordinates per cell.
    pub points: Vec<[f64; 3]>,
    /// Ground truth.
    pub gt: CamToWorld,
    /// Reference rotation errors of its 10 calls (degrees).
    pub ref_rot_deg: Vec<f64>,
    /// Reference translation errors (metres).
    pub ref_trans_m: Vec<f64>,
    /// Reference wall times (seconds).
    pub ref_time_s: Vec<f64>,
    /// Reference inlier counts.
    pub ref_inliers: Vec<i32>,
}

/// The camera of all cases: f = 525, principal point (320, 240).
pub fn intrinsics() -> Intrinsics {
    Intrinsics { fx: 525.0, fy: 525.0, cx: 320.0, cy: 240.0 }
}

fn get<T: npyz::Deserialize>(
    npz: &mut npyz::npz::NpzArchive<std::io::BufReader<std::fs::File>>,
    path: &Path,
    name: &str,
    len: Option<usize>,
) -> Result<Vec<T>, LocalizeError> {
    let bad = |message: String| LocalizeError::Format { path: path.to_path_buf(), message };
    let npy =
        npz.by_name(name).map_err(|e| bad(format!("{name}: {e}")))?.ok_or_else(|| bad(format!("{name}: missing")))?;
    if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
        return Err(bad(format!("{name}: Fortran order not expected")));
    }
    let v = npy.into_vec().map_err(|e| bad(format!("{name}: {e}")))?;
    match len {
        Some(n) if v.len() != n => Err(bad(format!("{name}: {} values, expected {n}", v.len()))),
        _ => Ok(v),
    }
}

/// Reads the five cases.
pub fn load(path: &Path) -> Result<Vec<Case>, LocalizeError> {
    let mut npz =
        npyz::npz::NpzArchive::open(path).map_err(|e| LocalizeError::Io { path: path.to_path_buf(), source: e })?;
    let mut cases = Vec::new();
    let (h, w) = (60, 80);
    for k in 0..5 {
        let sc: Vec<f32> = get(&mut npz, path, &format!("case{k}_scene_coordinates"), Some(3 * h * w))?;
        let outlier: Vec<bool> = get(&mut npz, path, &format!("case{k}_is_outlier"), None)?;
        let gt: Vec<f32> = get(&mut npz, path, &format!("case{k}_gt_pose_c2w"), Some(16))?;
        let mut pixels = Vec::with_capacity(h * w);
        let mut points = Vec::with_capacity(h * w);
        for i in 0..h {
            for j in 0..w {
                pixels.push([(8 * j + 4) as f64, (8 * i + 4) as f64]);
                let c = i * w + j;
                points.push([sc[c] as f64, sc[h * w + c] as f64, sc[2 * h * w + c] as f64]);
            }
        }
        let m = Matrix4::from_row_slice(&gt.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let gt = CamToWorld::from_matrix(&m, 1e-3).map_err(|e| LocalizeError::Format {
            path: path.to_path_buf(),
            message: format!("case{k} ground truth: {e}"),
        })?;
        cases.push(Case {
            outlier_fraction: outlier.iter().filter(|&&o| o).count() as f64 / outlier.len().max(1) as f64,
            pixels,
            points,
            gt,
            ref_rot_deg: get(&mut npz, path, &format!("case{k}_rot_err_deg"), None)?,
            ref_trans_m: get(&mut npz, path, &format!("case{k}_trans_err_m"), None)?,
            ref_time_s: get(&mut npz, path, &format!("case{k}_wall_time_s"), None)?,
            ref_inliers: get(&mut npz, path, &format!("case{k}_inlier_count"), None)?,
        });
    }
    Ok(cases)
}

/// The reference's median: element ⌊n/2⌋ of the sorted values.
pub fn upper_median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Our statistics on a case next to the reference's.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// Outlier fraction.
    pub outlier_fraction: f64,
    /// Our median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Our median translation error (cm).
    pub median_trans_cm: f64,
    /// Our median wall time per frame (ms).
    pub ms_per_frame: f64,
    /// Our median inlier count.
    pub median_inliers: f64,
    /// Runs that failed.
    pub failures: usize,
    /// Reference median rotation error.
    pub reference_median_rot_deg: f64,
    /// Reference median translation error (cm).
    pub reference_median_trans_cm: f64,
    /// Reference median wall time per frame (ms, 2 OpenMP threads).
    pub reference_ms_per_frame: f64,
    /// Reference time / ours.
    pub speedup: f64,
}

/// Runs a case `runs` times with seeds 0..runs.
pub fn run_case(case: &Case, runs: usize) -> CaseResult {
    let (mut rot, mut trans, mut ms, mut inl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    for seed in 0..runs as u64 {
        // Unbounded in time, as the reference.
        let cfg = RansacConfig { seed, time_budget: None, ..Default::default() };
        let t = Instant::now();
        let res = ransac_pnp(&case.pixels, &case.points, &intrinsics(), &cfg);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        match res {
            Ok(r) => {
                let e = PoseError::between(&r.pose.inverse(), &case.gt);
                rot.push(e.rot_deg);
                trans.push(e.trans * 100.0);
                inl.push(r.inliers as f64);
            }
            Err(_) => failures += 1,
        }
    }
    let ref_ms = upper_median(&case.ref_time_s.iter().map(|s| s * 1000.0).collect::<Vec<_>>());
    let ours_ms = upper_median(&ms);
    CaseResult {
        outlier_fraction: case.outlier_fraction,
        median_rot_deg: upper_median(&rot),
        median_trans_cm: upper_median(&trans),
        ms_per_frame: ours_ms,
        median_inliers: upper_median(&inl),
        failures,
        reference_median_rot_deg: upper_median(&case.ref_rot_deg),
        reference_median_trans_cm: upper_median(&case.ref_trans_m) * 100.0,
        reference_ms_per_frame: ref_ms,
        speedup: ref_ms / ours_ms,
    }
}
