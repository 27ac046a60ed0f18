//! Real captures: a scene mapped and localized with the given options, its accuracy and timings,
//! how its map fits the training and test frames, next to what a structure-based localizer
//! (SIFT + COLMAP) achieved on the same splits (`baselines.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use glace::{localize_scene, Localizer, LocalizerOptions, MapOptions, Scene, SceneOptions, SceneRun, SplitKind};
use serde::{Deserialize, Serialize};

/// A baseline's figures for one scene (`baselines.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    /// Median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Median translation error (the scene's units).
    pub median_trans: f64,
    /// Share within 5 cm / 5°.
    pub pct_5cm_5deg: f64,
    /// Seconds of mapping (feature extraction, matching, triangulation).
    pub mapping_s: f64,
}

/// How the map fits a split's frames under their ground-truth poses.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    /// Median reprojection error of all cells, in the network's pixels.
    pub median_px: f64,
    /// Share of cells within 2 px.
    pub pct_2px: f64,
    /// Share of cells within 10 px.
    pub pct_10px: f64,
}

/// One scene's row.
#[derive(Clone, Debug, Serialize)]
pub struct SceneResult {
    /// The scene's folder name.
    pub scene: String,
    /// Training frames.
    pub train_frames: usize,
    /// Test frames.
    pub test_frames: usize,
    /// Iterations trained.
    pub iterations: usize,
    /// Buffer entries.
    pub buffer_size: usize,
    /// Seconds of mapping, of which the stages below.
    pub mapping_s: f64,
    /// Encoding the views upright.
    pub encode_s: f64,
    /// Global descriptors.
    pub global_s: f64,
    /// Triangulation (depth targets and points).
    pub triangulate_s: f64,
    /// Filling the buffer.
    pub buffer_s: f64,
    /// Training.
    pub train_s: f64,
    /// Milliseconds per test frame.
    pub localize_ms_per_frame: f64,
    /// Test frames without a pose.
    pub failed: usize,
    /// Median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Median translation error, in the scene's units.
    pub median_trans: f64,
    /// Share within 10 cm / 5°.
    pub pct_10cm_5deg: f64,
    /// Share within 5 cm / 5°.
    pub pct_5cm_5deg: f64,
    /// Share within 2 cm / 2°.
    pub pct_2cm_2deg: f64,
    /// Fit of the training frames.
    pub train_fit: Fit,
    /// Fit of the test frames.
    pub test_fit: Fit,
    /// The baseline on the same splits.
    pub baseline: Option<Baseline>,
    /// glace ÷ baseline, rotation.
    pub rot_ratio: Option<f64>,
    /// glace ÷ baseline, translation.
    pub trans_ratio: Option<f64>,
}

/// The scenes in the ACE layout (`<scene>/{train,test}/{rgb,poses}`) directly under `root`, by name.
pub fn ace_scenes(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let is_ace = |dir: &Path| {
        ["train", "test"].iter().all(|s| dir.join(s).join("rgb").is_dir() && dir.join(s).join("poses").is_dir())
    };
    let mut scenes: Vec<PathBuf> =
        std::fs::read_dir(root)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_ace(p)).collect();
    scenes.sort();
    Ok(scenes)
}

/// The baselines of a `baselines.json` (`{"scenes": {name: {…}}}`), by scene name; scenes whose
/// entry does not read as a [`Baseline`] are left out.
pub fn baselines(json: &serde_json::Value) -> BTreeMap<String, Baseline> {
    json.get("scenes")
        .and_then(|s| s.as_object())
        .into_iter()
        .flatten()
        .filter_map(|(name, b)| Some((name.clone(), serde_json::from_value(b.clone()).ok()?)))
        .collect()
}

/// Maps the scene in `dir` with `options`, localizes its test and training frames with the
/// library's defaults, and scores them; the map and its log are saved as `keep` when given.
pub fn real_scene(
    dir: &Path,
    options: &MapOptions,
    baseline: Option<Baseline>,
    keep: Option<&Path>,
) -> crate::Result<SceneResult> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let scene = Scene::open(dir, &SceneOptions::default())?;
    let t = Instant::now();
    let mapped = glace::map_scene(&scene, options, &glace::LocalEncoderChoice::XFeat, &mut glace::Silent)?;
    let mapping_s = t.elapsed().as_secs_f64();
    if let Some(map) = keep {
        mapped.save(map, None)?;
    }
    let image_height = mapped.report.options.image_height;
    let localizer = Localizer::new(&mapped.map, LocalizerOptions::default())?;
    let test = localize_scene(&localizer, &scene, SplitKind::Test, true, &mut |_, _, _, _| {})?;
    let train = localize_scene(&localizer, &scene, SplitKind::Train, true, &mut |_, _, _, _| {})?;
    let s = &test.summary;
    let r = &mapped.report;
    Ok(SceneResult {
        scene: name,
        train_frames: r.frames,
        test_frames: s.frames,
        iterations: r.budget.iterations,
        buffer_size: r.budget.buffer_size,
        mapping_s,
        encode_s: r.encode_s,
        global_s: r.global_s,
        triangulate_s: r.triangulate_s,
        buffer_s: r.buffer_s,
        train_s: r.train_s,
        localize_ms_per_frame: test.ms_per_frame(),
        failed: s.failed,
        median_rot_deg: s.median_rot_deg,
        median_trans: s.median_trans_m,
        pct_10cm_5deg: s.pct_10cm_5deg,
        pct_5cm_5deg: s.pct_5cm_5deg,
        pct_2cm_2deg: s.pct_2cm_2deg,
        train_fit: fit(&train, &scene, image_height)?,
        test_fit: fit(&test, &scene, image_height)?,
        rot_ratio: baseline.as_ref().map(|b| s.median_rot_deg / b.median_rot_deg),
        trans_ratio: baseline.as_ref().map(|b| s.median_trans_m / b.median_trans),
        baseline,
    })
}

/// The fit of a localized split: every cell's reprojection under the ground truth, in the pixels
/// the network saw (the map's image height over the image's shorter side).
pub fn fit(run: &SceneRun, scene: &Scene, image_height: u32) -> crate::Result<Fit> {
    let split = scene.split(run.split)?;
    let mut errors = Vec::new();
    for (frame, outcome) in split.frames.iter().zip(&run.frames) {
        let Some(c) = &outcome.localization.coordinates else { continue };
        let (w, h) = c.image_size;
        let camera = glace::Camera { intrinsics: frame.calibration.intrinsics(w, h), distortion: scene.distortion };
        let scale = image_height as f64 / w.min(h) as f64;
        errors.extend(c.reprojection_errors(&frame.cam_to_world.inverse(), &camera).into_iter().map(|e| e * scale));
    }
    let n = errors.len().max(1) as f64;
    let share = |t: f64| 100.0 * errors.iter().filter(|&&e| e < t).count() as f64 / n;
    let (pct_2px, pct_10px) = (share(2.0), share(10.0));
    errors.sort_by(f64::total_cmp);
    Ok(Fit { median_px: errors.get(errors.len() / 2).copied().unwrap_or(f64::NAN), pct_2px, pct_10px })
}
