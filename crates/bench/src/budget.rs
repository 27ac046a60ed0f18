//! Time to accuracy: how a scene's accuracy grows with the mapping budget, with the refinement
//! against the map's points and without it. The stages before training run once (views encoded,
//! global descriptors, triangulation, the largest buffer); then for each buffer size (visits of
//! every frame: a prefix of the largest buffer, which is what a smaller fill with the same seed
//! draws) and each iteration count the head is trained from the same seed, the map assembled as
//! its file holds it, and the test frames localized with the library's defaults.

use std::path::Path;
use std::time::Instant;

use glace::{localize_scene, Localizer, LocalizerOptions, Map, MapOptions, Scene, SceneOptions, SplitKind};
use glace_mapping::pipeline::{Progress, Silent};
use glace_mapping::rng::Rng;
use glace_mapping::stages::{self, Plan, StageSeconds};
use serde::Serialize;

/// The budgets to try.
#[derive(Clone, Debug)]
pub struct BudgetGrid {
    /// Training iterations (batches of the options' `batch_size`).
    pub iterations: Vec<usize>,
    /// Buffer sizes, in augmented visits of every training frame.
    pub visits: Vec<usize>,
}

/// Accuracy of the test frames localized one way.
#[derive(Clone, Debug, Serialize)]
pub struct Accuracy {
    /// Median rotation error (degrees).
    pub median_rot_deg: f64,
    /// Median translation error (the scene's units).
    pub median_trans: f64,
    /// Share within 5 cm / 5°.
    pub pct_5cm_5deg: f64,
    /// Share within 2 cm / 2°.
    pub pct_2cm_2deg: f64,
    /// Test frames without a pose.
    pub failed: usize,
    /// Milliseconds per test frame.
    pub ms_per_frame: f64,
}

impl Accuracy {
    fn of(run: &glace::SceneRun) -> Accuracy {
        let s = &run.summary;
        Accuracy {
            median_rot_deg: s.median_rot_deg,
            median_trans: s.median_trans_m,
            pct_5cm_5deg: s.pct_5cm_5deg,
            pct_2cm_2deg: s.pct_2cm_2deg,
            failed: s.failed,
            ms_per_frame: run.ms_per_frame(),
        }
    }
}

/// One budget's row.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetRow {
    /// The scene's folder name.
    pub scene: String,
    /// Training frames.
    pub frames: usize,
    /// The map carries points (the refinement runs).
    pub points: bool,
    /// Augmented visits of each frame in the buffer.
    pub visits: usize,
    /// Buffer entries.
    pub buffer_size: usize,
    /// Iterations trained.
    pub iterations: usize,
    /// Samples trained per training frame.
    pub samples_per_frame: usize,
    /// Seconds of mapping this budget takes: the shared stages, the buffer filled to this size and
    /// the training.
    pub mapping_s: f64,
    /// Of which training.
    pub train_s: f64,
    /// Median reprojection error of the test frames' cells under their true poses (network
    /// pixels).
    pub test_fit_px: f64,
    /// With the refinement (the defaults).
    pub refined: Accuracy,
    /// Without it (`--no-structure`).
    pub unrefined: Accuracy,
}

/// Records when the buffer reached each size.
struct FillClock {
    start: Instant,
    filling: bool,
    marks: Vec<(usize, f64)>,
}

impl Progress for FillClock {
    fn phase(&mut self, name: &str, _: usize) {
        self.filling = name == "filling buffer";
        if self.filling {
            self.start = Instant::now();
        }
    }
    fn step(&mut self, done: usize, _: &str) {
        if self.filling {
            self.marks.push((done, self.start.elapsed().as_secs_f64()));
        }
    }
}

/// Maps the scene in `dir` once per budget of `grid` over `options` and localizes its test frames
/// with and without the refinement; `on_row` sees each row as it is measured.
pub fn time_to_accuracy(
    dir: &Path,
    options: &MapOptions,
    grid: &BudgetGrid,
    on_row: &mut dyn FnMut(&BudgetRow),
) -> crate::Result<Vec<BudgetRow>> {
    let usage = |field: &str, m: &str| glace::Error::usage(field, m.to_string());
    if grid.iterations.is_empty() || grid.iterations.contains(&0) {
        return Err(usage("iterations", "expected one or more counts, each at least 1"));
    }
    if grid.visits.is_empty() || grid.visits.contains(&0) {
        return Err(usage("visits", "expected one or more counts, each at least 1"));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let scene = Scene::open(dir, &SceneOptions::default())?;
    let split = scene.split(SplitKind::Train)?;
    let mut plan = Plan::new(&scene, split, options)?;
    let encoder = glace::LocalEncoderChoice::XFeat.load()?;
    let frames = plan.frames().len();
    let per_visit = frames * options.samples_per_image;
    let most = grid.visits.iter().copied().max().unwrap_or(1);
    plan.budget.buffer_size = per_visit * most;

    let mut times = StageSeconds::default();
    let silent = &mut Silent;
    let t = Instant::now();
    let mut views = stages::encode_views(&plan, &encoder, silent)?;
    times.encode_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let globals = stages::global_descriptors(&plan, &encoder, &mut views, None, silent)?;
    times.global_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let targets = stages::triangulated_depths(&plan, &views, silent)?;
    let structure = stages::map_points(&plan, &encoder, views, silent)?;
    times.triangulate_s = t.elapsed().as_secs_f64();
    let centres = stages::decoder_centres(&plan);
    let mut rng = Rng::new(options.seed);
    let mut clock = FillClock { start: Instant::now(), filling: false, marks: Vec::new() };
    let full = stages::fill_buffer(&plan, &encoder, &targets, &mut rng, &mut clock)?;
    let shared_s = times.encode_s + times.global_s + times.triangulate_s;

    let mut rows = Vec::new();
    for &visits in &grid.visits {
        let buffer = full.prefix(per_visit * visits);
        times.buffer_s = clock.marks.iter().find(|(filled, _)| *filled >= buffer.len()).map_or(0.0, |&(_, s)| s);
        for &iterations in &grid.iterations {
            plan.budget.buffer_size = buffer.len();
            plan.budget.iterations = iterations;
            let mut train_rng = rng.clone();
            let t = Instant::now();
            let (head, history) =
                stages::train_head(&plan, &encoder, &globals, centres.clone(), &buffer, &mut train_rng, silent)?;
            times.train_s = t.elapsed().as_secs_f64();
            let (map, _) = stages::assemble(
                &plan,
                &encoder,
                None,
                head,
                globals.clone(),
                structure.clone(),
                &targets,
                &buffer,
                &history,
                times,
            );
            // As its file holds it (fp16 weights), as `glace map` saves it.
            let bytes = glace_formats::map_file::to_bytes(&map)?;
            let map = Map::from_glace_map(glace_formats::map_file::from_bytes(&bytes, Path::new("<memory>"))?);
            let refined = Localizer::new(&map, LocalizerOptions::default())?;
            let refined_run = localize_scene(&refined, &scene, SplitKind::Test, true, &mut |_, _, _, _| {})?;
            let unrefined = Localizer::new(&map, LocalizerOptions { skip_structure: true, ..Default::default() })?;
            let unrefined_run = localize_scene(&unrefined, &scene, SplitKind::Test, false, &mut |_, _, _, _| {})?;
            let row = BudgetRow {
                scene: name.clone(),
                frames,
                points: structure.is_some(),
                visits,
                buffer_size: buffer.len(),
                iterations,
                samples_per_frame: iterations * options.batch_size / frames.max(1),
                mapping_s: shared_s + times.buffer_s + times.train_s,
                train_s: times.train_s,
                test_fit_px: crate::real::fit(&refined_run, &scene, options.image_height)?.median_px,
                refined: Accuracy::of(&refined_run),
                unrefined: Accuracy::of(&unrefined_run),
            };
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}
