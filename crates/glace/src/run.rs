//! Localizing every frame of a scene split, scored against its ground truth.

use std::time::Instant;

use glace_data::{Frame, Scene, SplitKind};
use glace_geometry::PoseError;
use glace_localize::metrics::{summarize, FrameError, Summary};
use glace_localize::posefile::PoseRecord;
use serde::Serialize;

use crate::localizer::{Localization, Query, StageTimes};
use crate::{Error, Localizer, Result};

/// One localized frame of a split.
#[derive(Clone, Debug)]
pub struct FrameOutcome {
    /// The frame's rgb file name.
    pub name: String,
    /// What the localizer found.
    pub localization: Localization,
    /// Error against the split's ground truth (`None` when no pose was found).
    pub error: Option<PoseError>,
}

impl FrameOutcome {
    /// Its errors as the metrics take them (infinite without a pose).
    pub fn frame_error(&self) -> FrameError {
        FrameError {
            name: self.name.clone(),
            rot_deg: self.error.map_or(f64::INFINITY, |e| e.rot_deg),
            trans_m: self.error.map_or(f64::INFINITY, |e| e.trans),
            ok: self.localization.success(),
        }
    }
}

/// A localization run over a split: per-frame outcomes, their summary and the timings.
#[derive(Clone, Debug)]
pub struct SceneRun {
    /// Which split.
    pub split: SplitKind,
    /// Frames in the split's order.
    pub frames: Vec<FrameOutcome>,
    /// Accuracy over the run.
    pub summary: Summary,
    /// Seconds of wall time for the whole run.
    pub wall_s: f64,
    /// Seconds per stage, summed over the frames.
    pub total: StageTimes,
    /// Factor applied to the global descriptor before the head.
    pub global_scale: f32,
}

/// Per-frame milliseconds by stage, for reports.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StageMs {
    /// Image decoding and preprocessing.
    pub decode: f64,
    /// Local and global encoders.
    pub encode: f64,
    /// Head.
    pub head: f64,
    /// RANSAC.
    pub ransac: f64,
    /// Refinement against the map's points.
    pub refine: f64,
}

impl SceneRun {
    /// Records for the reference's pose file.
    pub fn pose_records(&self) -> Vec<PoseRecord> {
        self.frames
            .iter()
            .map(|f| PoseRecord {
                name: f.name.clone(),
                pose: f.localization.cam_from_world(),
                rot_err_deg: f.error.map_or(f64::INFINITY, |e| e.rot_deg),
                trans_err_m: f.error.map_or(f64::INFINITY, |e| e.trans),
                inliers: f.localization.inliers(),
            })
            .collect()
    }

    /// Wall milliseconds per frame.
    pub fn ms_per_frame(&self) -> f64 {
        1000.0 * self.wall_s / self.frames.len().max(1) as f64
    }

    /// Milliseconds per frame by stage.
    pub fn stage_ms(&self) -> StageMs {
        let n = self.frames.len().max(1) as f64;
        let t = &self.total;
        StageMs {
            decode: 1000.0 * t.decode_s / n,
            encode: 1000.0 * t.encode_s / n,
            head: 1000.0 * t.head_s / n,
            ransac: 1000.0 * t.ransac_s / n,
            refine: 1000.0 * t.refine_s / n,
        }
    }

    /// The JSON report `glace localize` writes: the summary, timings and the descriptor scale.
    pub fn report_json(&self) -> serde_json::Value {
        let mut report = serde_json::to_value(&self.summary).expect("plain numbers serialise");
        report["ms_per_frame"] = serde_json::json!(self.ms_per_frame());
        report["global_scale"] = serde_json::json!(self.global_scale);
        report["stage_ms_per_frame"] = serde_json::json!(self.stage_ms());
        // Per frame: what each pose rests on, and why a frame got none.
        report["per_frame"] = self
            .frames
            .iter()
            .map(|f| {
                let l = &f.localization;
                serde_json::json!({
                    "name": f.name, "localized": l.success(), "inliers": l.inliers(), "refined": l.refined(),
                    "retrieved": l.retrieved(), "evidence": l.evidence(), "failure": l.failure(),
                    "rot_err_deg": f.error.map(|e| e.rot_deg), "trans_err": f.error.map(|e| e.trans),
                })
            })
            .collect();
        report
    }
}

/// Localizes every frame of `split`, in order, scoring each against its ground-truth pose.
/// `visit(done, total, frame, outcome)` runs after each frame (for progress, or to take the
/// coordinates out of the outcome when `coordinates` asked for them and they are not to be kept).
/// Global descriptors come from the split's `features.npy` when the map needs them from outside.
pub fn localize_scene(
    localizer: &Localizer,
    scene: &Scene,
    split: SplitKind,
    coordinates: bool,
    visit: &mut dyn FnMut(usize, usize, &Frame, &mut FrameOutcome),
) -> Result<SceneRun> {
    let data = scene.split(split)?;
    if localizer.needs_descriptor() && data.features.is_none() {
        return Err(Error::Input(format!(
            "{}: the map takes global descriptors from outside ({:?}) and this split has no features.npy; \
             give the R2Former checkpoint (--global r2former:<CVPR23_DeitS_Rerank.pth>) or write features.npy with `glace features`",
            data.dir.display(),
            localizer.map().description().global
        )));
    }
    let start = Instant::now();
    let mut frames = Vec::with_capacity(data.frames.len());
    let mut total = StageTimes::default();
    for (k, frame) in data.frames.iter().enumerate() {
        let t = Instant::now();
        let rgb = frame.load_rgb()?;
        let decode_s = t.elapsed().as_secs_f64();
        let query = Query {
            descriptor: if localizer.needs_descriptor() { data.global_feature(frame) } else { None },
            coordinates,
            ..Default::default()
        };
        let mut found =
            localizer.localize_rgb(&rgb, &frame.calibration, scene.distortion, &query).map_err(|e| match e {
                Error::Localize(l) => match *l {
                    glace_localize::LocalizeError::Input(m) => {
                        glace_data::DataError::format(&frame.rgb_path, None, m).into()
                    }
                    other => other.into(),
                },
                Error::Usage { option, message } if option == "image" => {
                    glace_data::DataError::format(&frame.rgb_path, None, message).into()
                }
                other => other,
            })?;
        found.times.decode_s += decode_s;
        if let Some(why) = found.failure() {
            tracing::warn!("{}: {why}", frame.name);
        }
        total.decode_s += found.times.decode_s;
        total.encode_s += found.times.encode_s;
        total.head_s += found.times.head_s;
        total.ransac_s += found.times.ransac_s;
        total.refine_s += found.times.refine_s;
        let error = found.world_from_cam().map(|p| PoseError::between(&p, &frame.cam_to_world));
        let mut outcome = FrameOutcome { name: frame.name.clone(), localization: found, error };
        visit(k + 1, data.frames.len(), frame, &mut outcome);
        frames.push(outcome);
    }
    let errors: Vec<FrameError> = frames.iter().map(FrameOutcome::frame_error).collect();
    Ok(SceneRun {
        split,
        summary: summarize(&errors),
        frames,
        wall_s: start.elapsed().as_secs_f64(),
        total,
        global_scale: localizer.global_scale(),
    })
}
