//! Queries: a scene's test frames localized with a kept map and the library's defaults on a
//! given number of threads; per-stage medians and the accuracy of the same run.

use std::path::Path;
use std::time::Instant;

use glace::{localize_scene, Localizer, LocalizerOptions, Map, Scene, SceneOptions, SplitKind};
use serde::Serialize;

/// One scene on one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct QueryRow {
    /// The scene's folder name.
    pub scene: String,
    /// Threads the queries ran on.
    pub threads: usize,
    /// Test frames.
    pub frames: usize,
    /// Frames without a pose.
    pub failed: usize,
    /// Median milliseconds per query, decoding the file included.
    pub median_ms: f64,
    /// Median milliseconds decoding and preprocessing.
    pub decode_ms: f64,
    /// Median milliseconds in the encoders.
    pub encode_ms: f64,
    /// Median milliseconds in the head.
    pub head_ms: f64,
    /// Median milliseconds in RANSAC on the scene coordinates.
    pub ransac_ms: f64,
    /// Median milliseconds refining against the map's points.
    pub refine_ms: f64,
    /// Median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Median translation error (the scene's units).
    pub median_trans: f64,
    /// Share within 5 cm / 5°.
    pub pct_5cm_5deg: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Localizes the test split of the scene in `dir` with the map `map` on `threads` threads.
pub fn query(dir: &Path, map: &Path, threads: usize) -> crate::Result<QueryRow> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| glace::Error::Internal(e.to_string()))?;
    pool.install(|| {
        let scene = Scene::open(dir, &SceneOptions::default())?;
        let localizer = Localizer::new(&Map::open(map)?, LocalizerOptions::default())?;
        let mut wall = Vec::new();
        let mut last = Instant::now();
        let run = localize_scene(&localizer, &scene, SplitKind::Test, false, &mut |_, _, _, _| {
            wall.push(1000.0 * last.elapsed().as_secs_f64());
            last = Instant::now();
        })?;
        let stage = |f: &dyn Fn(&glace::StageTimes) -> f64| {
            median(run.frames.iter().map(|o| 1000.0 * f(&o.localization.times)).collect())
        };
        let s = &run.summary;
        Ok(QueryRow {
            scene: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            threads: threads.max(1),
            frames: s.frames,
            failed: s.failed,
            median_ms: median(wall),
            decode_ms: stage(&|t| t.decode_s),
            encode_ms: stage(&|t| t.encode_s),
            head_ms: stage(&|t| t.head_s),
            ransac_ms: stage(&|t| t.ransac_s),
            refine_ms: stage(&|t| t.refine_s),
            median_rot_deg: s.median_rot_deg,
            median_trans: s.median_trans_m,
            pct_5cm_5deg: s.pct_5cm_5deg,
        })
    })
}
