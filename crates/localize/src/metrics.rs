//! Pose-error statistics as the reference reports them (spec §6.3): camera-centre distance,
//! rotation angle of R_est·R_gtᵀ, strict thresholds, the upper median (element ⌊n/2⌋).
//! Failed or missing frames count with infinite error.

use std::collections::HashMap;
use std::path::Path;

use glace_geometry::{CamToWorld, PoseError};
use serde::Serialize;

use crate::posefile::PoseRecord;
use crate::LocalizeError;

/// Errors of one frame.
#[derive(Clone, Debug, Serialize)]
pub struct FrameError {
    /// Frame name.
    pub name: String,
    /// Rotation error (degrees; infinite if failed).
    pub rot_deg: f64,
    /// Translation error (metres; infinite if failed).
    pub trans_m: f64,
    /// Localized at all.
    pub ok: bool,
}

/// Summary statistics.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Frames scored.
    pub frames: usize,
    /// Frames without an estimate (failed or missing from the pose file).
    pub failed: usize,
    /// Upper-median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Upper-median translation error (metres).
    pub median_trans_m: f64,
    /// % within 10 cm and 5°.
    pub pct_10cm_5deg: f64,
    /// % within 5 cm and 5°.
    pub pct_5cm_5deg: f64,
    /// % within 2 cm and 2°.
    pub pct_2cm_2deg: f64,
    /// % within 1 cm and 1°.
    pub pct_1cm_1deg: f64,
    /// % within 0.25 m and 2° (Aachen "high").
    pub pct_25cm_2deg: f64,
    /// % within 0.5 m and 5° (Aachen "medium").
    pub pct_50cm_5deg: f64,
    /// % within 5 m and 10° (Aachen "coarse").
    pub pct_5m_10deg: f64,
}

fn upper_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Summarises per-frame errors.
pub fn summarize(errors: &[FrameError]) -> Summary {
    let n = errors.len().max(1) as f64;
    let pct = |m: f64, deg: f64| 100.0 * errors.iter().filter(|e| e.trans_m < m && e.rot_deg < deg).count() as f64 / n;
    Summary {
        frames: errors.len(),
        failed: errors.iter().filter(|e| !e.ok).count(),
        median_rot_deg: upper_median(errors.iter().map(|e| e.rot_deg).collect()),
        median_trans_m: upper_median(errors.iter().map(|e| e.trans_m).collect()),
        pct_10cm_5deg: pct(0.10, 5.0),
        pct_5cm_5deg: pct(0.05, 5.0),
        pct_2cm_2deg: pct(0.02, 2.0),
        pct_1cm_1deg: pct(0.01, 1.0),
        pct_25cm_2deg: pct(0.25, 2.0),
        pct_50cm_5deg: pct(0.5, 5.0),
        pct_5m_10deg: pct(5.0, 10.0),
    }
}

/// Scores pose records against ground truth (frame name → camera-to-world). Every ground-truth
/// frame is scored; records naming frames without ground truth are an error.
pub fn evaluate(
    ground_truth: &[(String, CamToWorld)],
    records: &[PoseRecord],
    pose_file: &Path,
) -> Result<Vec<FrameError>, LocalizeError> {
    let gt: HashMap<&str, &CamToWorld> = ground_truth.iter().map(|(n, p)| (n.as_str(), p)).collect();
    let unknown: Vec<String> =
        records.iter().filter(|r| !gt.contains_key(r.name.as_str())).map(|r| r.name.clone()).collect();
    if !unknown.is_empty() {
        return Err(LocalizeError::UnknownFrames { path: pose_file.to_path_buf(), names: unknown });
    }
    let by_name: HashMap<&str, &PoseRecord> = records.iter().map(|r| (r.name.as_str(), r)).collect();
    Ok(ground_truth
        .iter()
        .map(|(name, gt_pose)| match by_name.get(name.as_str()).and_then(|r| r.pose) {
            Some(est) => {
                let e = PoseError::between(&est.inverse(), gt_pose);
                FrameError { name: name.clone(), rot_deg: e.rot_deg, trans_m: e.trans, ok: true }
            }
            None => FrameError { name: name.clone(), rot_deg: f64::INFINITY, trans_m: f64::INFINITY, ok: false },
        })
        .collect())
}
