//! `map_scene`: a scene's training split → a map (spec §5), as named stages, each with its own
//! progress phase:
//!
//! 1. [`Plan::new`]: options checked, every image's size checked from its header, the budget,
//!    the rules read from the mapping cameras;
//! 2. [`encode_views`]: each view decoded and encoded upright once, for every later stage that
//!    needs it (the built-in global encoder, the triangulation, the points' patches);
//! 3. [`global_descriptors`]: built-in VLAD + whitening, `features.npy` or R2Former;
//! 4. [`triangulated_depths`]: depth targets for photo collections ([`glace_structure`]);
//! 5. [`map_points`]: the map's points (every capture, video-like ones included), at the
//!    network's resolution or their own;
//! 6. [`decoder_centres`]: the position decoder's centres over the training cameras;
//! 7. [`fill_buffer`]: augmented, encoded cells;
//! 8. [`train_head`]: AdamW + one-cycle, stopped on divergence;
//! 9. [`assemble`]: the map and its log.

use std::time::Instant;

use glace_data::{preprocess, Frame, Preprocessed, Scene, Split, SplitKind};
use glace_geometry::{CamToWorld, Camera, Distortion};
use glace_nn::global::{colour_layout, place_labels, GlobalInput, VladPca};
use glace_nn::kmeans::kmeans;
use glace_nn::linalg::Matmul;
use glace_nn::map::{GlobalSource, MapInfo, TrainedBudget, TrainedOptions, TrainingLog};
use glace_nn::{Encoded, GlaceMap, Head, HeadConfig, LocalEncoder};
use glace_structure::triangulate::{
    depth_targets, structure_points, DepthTargets, KeypointView, TriangulationConfig, TriangulationView, MAX_VIEWS,
};
use glace_structure::Structure;

use crate::augment::AugmentConfig;
use crate::buffer::{fill, Buffer, BufferConfig};
use crate::loss::LossConfig;
use crate::pipeline::{
    neighbour_angle_deg, query_turns, structure_height, Budget, GlobalChoice, LoadedR2Former, MapError, MapOptions,
    MapReport, Progress, GLOBAL_DIM, SPARSE_VIEW_DEG,
};
use crate::rng::Rng;
use crate::train::{train, IterStats, TrainConfig};

/// Trains a map for the scene's training split. `r2former` is needed when the options ask for
/// R2Former descriptors.
pub fn map_scene(
    scene: &Scene,
    encoder: &LocalEncoder,
    opts: &MapOptions,
    r2former: Option<&LoadedR2Former>,
    progress: &mut dyn Progress,
) -> Result<(GlaceMap, MapReport), MapError> {
    let split = scene.split(SplitKind::Train)?;
    let mut plan = Plan::new(scene, split, opts)?;
    let mut rng = Rng::new(opts.seed);
    let t = Instant::now();
    let mut views = encode_views(&plan, encoder, progress)?;
    let encode_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let globals = global_descriptors(&plan, encoder, &mut views, r2former, progress)?;
    let global_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let targets = triangulated_depths(&plan, &views, progress)?;
    let structure = map_points(&plan, encoder, views, progress)?;
    let triangulate_s = t.elapsed().as_secs_f64();
    plan.size_budget(structure.is_some());
    let centres = decoder_centres(&plan);
    let t = Instant::now();
    let buffer = fill_buffer(&plan, encoder, &targets, &mut rng, progress)?;
    let buffer_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (head, history) = train_head(&plan, encoder, &globals, centres, &buffer, &mut rng, progress)?;
    let train_s = t.elapsed().as_secs_f64();
    let times = StageSeconds { encode_s, global_s, triangulate_s, buffer_s, train_s };
    Ok(assemble(&plan, encoder, r2former, head, globals, structure, &targets, &buffer, &history, times))
}

/// What every stage reads: the frames, the options, and what was decided before any work.
pub struct Plan<'a> {
    /// The scene.
    pub scene: &'a Scene,
    /// Its training split.
    pub split: &'a Split,
    /// The options, checked.
    pub opts: &'a MapOptions,
    /// Buffer entries and iterations.
    pub budget: Budget,
    /// How the networks' products are computed.
    pub matmul: Matmul,
    /// The mapping cameras.
    pub poses: Vec<CamToWorld>,
    /// Quarter turns queries will be tried in.
    pub turns: Vec<u8>,
    /// Median angle between a view's optical axis and its nearest neighbour's (degrees).
    pub spacing_deg: f64,
    /// Depth targets are triangulated for training (photo collections).
    pub depth_targets: bool,
    /// The map carries points triangulated across the views (every capture, video-like ones
    /// included, where the options triangulate at all).
    pub points: bool,
    /// The shorter image side the map's points are detected at, when it is known before any
    /// image is decoded (every frame's size from its header, or stated); else it is decided from
    /// the decoded images.
    pub points_height: Option<u32>,
}

impl<'a> Plan<'a> {
    /// Checks the options and every frame's size before any image is decoded, and decides the
    /// budget and the rules read from the cameras.
    pub fn new(scene: &'a Scene, split: &'a Split, opts: &'a MapOptions) -> Result<Plan<'a>, MapError> {
        opts.validate().map_err(|(option, message)| MapError::Option { option, message })?;
        let frames = &split.frames;
        if frames.is_empty() {
            return Err(MapError::Invalid(format!("{}: no valid training frames", split.dir.display())));
        }
        // Bounded work per image: each frame's size (from its header or its pixels) at every
        // resolution it is encoded at, before any is decoded: the network's, and the points' one
        // height for all views, chosen by the same rule as their stage.
        let natives: Vec<u32> = frames.iter().filter_map(|f| f.image_size).map(|(w, h)| w.min(h)).collect();
        let points_height = opts.structure_height.unwrap_or_else(|| structure_height(&natives, opts.image_height));
        let known = opts.structure_height.is_some() || natives.len() == frames.len();
        for f in frames {
            let Some((w, h)) = f.image_size else { continue };
            for height in [opts.image_height, points_height] {
                glace_data::check_network_size(w, h, height)
                    .map_err(|m| MapError::Invalid(format!("{}: {m}", f.rgb_path.display())))?;
            }
        }
        let matmul = opts.precision.resolve().map_err(|m| MapError::Invalid(format!("precision: {m}")))?;
        tracing::info!("precision of the networks' products: {}", matmul.name());
        let poses: Vec<CamToWorld> = frames.iter().map(|f| f.cam_to_world).collect();
        let turns = query_turns(&poses);
        let spacing_deg = neighbour_angle_deg(&poses);
        let sparse = spacing_deg >= SPARSE_VIEW_DEG;
        // The triangulation is glace's own (the reference has none), on where the options weigh
        // its depth targets: the map's points for every capture, depth targets where the views
        // are too far apart to fix the depths themselves.
        let points = opts.depth_weight > 0.0 && frames.len() <= MAX_VIEWS;
        let depth_targets = points && sparse;
        if opts.depth_weight > 0.0 {
            tracing::info!(
                "mapping views {spacing_deg:.1}° from their nearest neighbour (median): {}",
                match (sparse, points) {
                    (_, false) => "more views than points are triangulated for",
                    (true, true) => "depth targets and points triangulated",
                    (false, true) => "dense enough for no depth targets; points triangulated",
                }
            );
        }
        if turns.len() > 1 {
            tracing::info!(
                "mapping views are rolled against their neighbours: queries will be tried in 4 quarter turns"
            );
        }
        // Sized for a map with points where they are triangulated; [`Plan::size_budget`] again
        // should none come of it.
        let budget = opts.budget_for(frames.len(), points);
        log_budget(frames.len(), &budget);
        Ok(Plan {
            scene,
            split,
            opts,
            budget,
            matmul,
            poses,
            turns,
            spacing_deg,
            depth_targets,
            points,
            points_height: known.then_some(points_height),
        })
    }

    /// Sizes the budget again for a map with points (`points`) or without, once it is known
    /// which it is (before the buffer is filled).
    pub fn size_budget(&mut self, points: bool) {
        let budget = self.opts.budget_for(self.frames().len(), points);
        if budget != self.budget {
            log_budget(self.frames().len(), &budget);
        }
        self.budget = budget;
    }

    /// The training frames.
    pub fn frames(&self) -> &'a [Frame] {
        &self.split.frames
    }

    /// The training camera centres.
    fn centres(&self) -> Vec<[f64; 3]> {
        self.poses.iter().map(|p| p.center().into()).collect()
    }

    fn distortion(&self) -> Option<Distortion> {
        self.scene.distortion
    }
}

fn log_budget(frames: usize, budget: &Budget) {
    if let Some(rule) = budget.rule {
        tracing::info!(
            "budget for {frames} training frames ({}): {} buffer entries, {} iterations",
            rule.describe(),
            budget.buffer_size,
            budget.iterations
        );
    }
}

/// `work` on each frame in order, as one progress phase named `phase`; stops between frames when
/// the progress asks to.
fn each_frame<T>(
    progress: &mut dyn Progress,
    phase: &str,
    frames: &[Frame],
    mut work: impl FnMut(&Frame) -> Result<T, MapError>,
) -> Result<Vec<T>, MapError> {
    progress.phase(phase, frames.len());
    let mut out = Vec::with_capacity(frames.len());
    for (k, f) in frames.iter().enumerate() {
        out.push(work(f)?);
        progress.step(k + 1, "");
        stop_if_cancelled(progress)?;
    }
    Ok(out)
}

fn stop_if_cancelled(progress: &dyn Progress) -> Result<(), MapError> {
    if progress.cancelled() {
        Err(MapError::Cancelled)
    } else {
        Ok(())
    }
}

/// The mapping views encoded upright at the network's resolution, view by view, as the later
/// stages take them (each list empty where no stage needs it).
#[derive(Default)]
pub struct UprightViews {
    /// The built-in global encoder's inputs (taken by [`global_descriptors`]).
    global_inputs: Vec<GlobalInput>,
    /// The views as the triangulation takes them.
    triangulation: Vec<TriangulationView>,
    /// Their grey levels at the network's resolution (width, height): the points' patches; empty
    /// where the points are detected at a resolution of their own.
    grays: Vec<(Vec<u8>, usize, usize)>,
    /// The shorter side of each image as stored.
    native_heights: Vec<u32>,
}

/// Decodes and encodes each mapping view upright once, where a later stage needs it: the built-in
/// global encoder, or the triangulation (keypoints then too).
pub fn encode_views(
    plan: &Plan,
    encoder: &LocalEncoder,
    progress: &mut dyn Progress,
) -> Result<UprightViews, MapError> {
    let builtin = plan.opts.global == GlobalChoice::Builtin;
    let mut out = UprightViews::default();
    if !builtin && !plan.points {
        return Ok(out);
    }
    let (opts, matmul) = (plan.opts, plan.matmul);
    each_frame(progress, "encoding mapping views", plan.frames(), |f| {
        let rgb = f.load_rgb()?;
        let p = preprocess(&rgb, &f.calibration, opts.image_height);
        // Keypoints only for the triangulation.
        let enc = if plan.points {
            encoder.encode_keypoints_with(matmul, &p.rgb_hw3, &p.image_hw, p.width, p.height)
        } else {
            encoder.encode_with(matmul, &p.rgb_hw3, &p.image_hw, p.width, p.height)
        };
        if plan.points {
            out.triangulation.push(triangulation_view(f, &p, &enc, plan.distortion()));
            out.native_heights.push(rgb.width().min(rgb.height()));
        }
        if builtin {
            let colour = colour_layout(&p.rgb_hw3, p.width, p.height);
            out.global_inputs.push(GlobalInput { descriptors: enc.features.data, colour });
        }
        // Grey levels only where the points are detected at the network's resolution.
        if plan.points && plan.points_height.is_none_or(|h| h == opts.image_height) {
            out.grays.push((p.gray_hw, p.width, p.height));
        }
        Ok(())
    })?;
    Ok(out)
}

/// A mapping frame's upright encoding as the triangulation takes it: its keypoints and their
/// descriptors where the encoder has them (XFeat), else the cells' centres and unit features.
fn triangulation_view(
    frame: &Frame,
    p: &Preprocessed,
    enc: &Encoded,
    distortion: Option<Distortion>,
) -> TriangulationView {
    let f = &enc.features;
    TriangulationView {
        cam_to_world: frame.cam_to_world,
        camera: Camera { intrinsics: p.intrinsics, distortion },
        rows: f.height,
        cols: f.width,
        cell_scale: enc.cell_scale,
        features: enc.matching_features(),
        dim: f.channels,
        keypoints: enc.keypoints.as_ref().map(|k| k.points.clone()),
    }
}

/// One global descriptor per rgb file of the split (skipped frames keep zero rows), their width,
/// and the built-in encoder when it was fitted.
#[derive(Clone)]
pub struct Globals {
    /// Rows by rgb file.
    pub table: Vec<Vec<f32>>,
    /// Width (0: no global input).
    pub dim: usize,
    /// The built-in encoder fitted on the mapping views.
    pub builtin: Option<VladPca>,
}

/// The global descriptors the options ask for.
pub fn global_descriptors(
    plan: &Plan,
    encoder: &LocalEncoder,
    views: &mut UprightViews,
    r2former: Option<&LoadedR2Former>,
    progress: &mut dyn Progress,
) -> Result<Globals, MapError> {
    let (split, opts) = (plan.split, plan.opts);
    match &opts.global {
        GlobalChoice::None => Ok(Globals { table: vec![Vec::new(); split.image_count], dim: 0, builtin: None }),
        GlobalChoice::FeaturesNpy => {
            let f = split.features.as_ref().ok_or_else(|| {
                MapError::Invalid(format!(
                    "{}: --global features needs features.npy in the training split",
                    split.dir.display()
                ))
            })?;
            if f.dim != GLOBAL_DIM {
                return Err(MapError::Invalid(format!(
                    "{}: descriptors are {}-d, expected {GLOBAL_DIM}",
                    f.path.display(),
                    f.dim
                )));
            }
            Ok(Globals { table: (0..f.rows).map(|r| f.row(r).to_vec()).collect(), dim: GLOBAL_DIM, builtin: None })
        }
        GlobalChoice::R2Former(checkpoint) => {
            let net = r2former
                .ok_or_else(|| {
                    MapError::Invalid(format!("{}: R2Former descriptors need the network loaded", checkpoint.display()))
                })?
                .net;
            let rows = each_frame(progress, "R2Former global descriptors", plan.frames(), |f| {
                let rgb = f.load_rgb()?;
                Ok(net.encode(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize))
            })?;
            let mut table = vec![vec![0f32; GLOBAL_DIM]; split.image_count];
            for (f, row) in plan.frames().iter().zip(rows) {
                table[f.file_index] = row;
            }
            Ok(Globals { table, dim: GLOBAL_DIM, builtin: None })
        }
        GlobalChoice::Builtin => {
            progress.phase("fitting the global encoder", 0);
            let inputs = std::mem::take(&mut views.global_inputs);
            let places = place_labels(&plan.centres(), opts.seed);
            let vp = VladPca::fit(
                &inputs,
                Some(&places),
                opts.place_discriminants,
                encoder.dim(),
                16,
                GLOBAL_DIM,
                opts.seed,
            );
            let mut table = vec![vec![0f32; GLOBAL_DIM]; split.image_count];
            for (f, input) in plan.frames().iter().zip(&inputs) {
                table[f.file_index] = vp.encode(input);
            }
            Ok(Globals { table, dim: GLOBAL_DIM, builtin: Some(vp) })
        }
    }
}

/// Depth targets triangulated across the mapping views (photo collections; none otherwise).
pub fn triangulated_depths(
    plan: &Plan,
    views: &UprightViews,
    progress: &mut dyn Progress,
) -> Result<Vec<DepthTargets>, MapError> {
    if !plan.depth_targets {
        return Ok(Vec::new());
    }
    let upright = &views.triangulation;
    progress.phase("triangulating depth targets", 0);
    let targets = depth_targets(upright, &TriangulationConfig::default(), &mut |done, total| {
        progress.step(done, &format!("{done}/{total} view pairs"));
    });
    stop_if_cancelled(progress)?;
    let cells: usize = targets.iter().map(|t| t.count()).sum();
    let all: usize = upright.iter().map(|v| v.rows * v.cols).sum();
    tracing::info!(
        "depth targets for {cells} of {all} cells ({:.1} %) of {} views",
        100.0 * cells as f64 / all.max(1) as f64,
        upright.len()
    );
    Ok(targets)
}

/// The map's points (every capture where the options triangulate), at the network's resolution from the
/// upright views, or (from images larger than it) at a finer one of their own, encoded for it.
pub fn map_points(
    plan: &Plan,
    encoder: &LocalEncoder,
    views: UprightViews,
    progress: &mut dyn Progress,
) -> Result<Option<Structure>, MapError> {
    if !plan.points {
        return Ok(None);
    }
    let opts = plan.opts;
    let height = plan.points_height.unwrap_or_else(|| structure_height(&views.native_heights, opts.image_height));
    let keypoints: Vec<KeypointView> = if height == opts.image_height {
        views
            .triangulation
            .iter()
            .zip(views.grays)
            .map(|(v, (gray, w, h))| KeypointView::from_view(v).with_gray(gray, w, h))
            .collect()
    } else {
        drop(views);
        each_frame(progress, &format!("keypoints at {height} px for the map's points"), plan.frames(), |f| {
            let p = preprocess(&f.load_rgb()?, &f.calibration, height);
            let enc = encoder.encode_keypoints_with(plan.matmul, &p.rgb_hw3, &p.image_hw, p.width, p.height);
            let camera = Camera { intrinsics: p.intrinsics, distortion: plan.distortion() };
            Ok(keypoint_view(f.cam_to_world, camera, &enc).with_gray(p.gray_hw, p.width, p.height))
        })?
    };
    progress.phase("triangulating the map's points", 0);
    let structure = structure_points(&keypoints, &TriangulationConfig::default(), height, &mut |done, total| {
        progress.step(done, &format!("{done}/{total} view pairs"));
    });
    stop_if_cancelled(progress)?;
    tracing::info!("{} points triangulated at {height} px for the map", structure.len());
    Ok((!structure.is_empty()).then_some(structure))
}

/// A view's keypoints for the map's points: those of `encoded` (one per cell; cell centres and
/// score 1 for encoders without keypoints), `camera` being that of the image it was made from.
fn keypoint_view(cam_to_world: CamToWorld, camera: Camera, encoded: &Encoded) -> KeypointView {
    let f = &encoded.features;
    let pixel = |c: usize| {
        let (u, v) = encoded.keypoint_pixel(c / f.width, c % f.width);
        nalgebra::Point2::new(u, v)
    };
    let score = |c: usize| encoded.keypoints.as_ref().map_or(1.0, |k| k.points[c][2]);
    let cell_size = 8.0 * encoded.cell_scale.0.max(encoded.cell_scale.1);
    let features = encoded.matching_features();
    KeypointView::from_cells(cam_to_world, camera, (f.height * f.width, f.channels), &features, pixel, score, cell_size)
}

/// The position decoder's centres: k-means over the training cameras (their mean for one).
pub fn decoder_centres(plan: &Plan) -> Vec<[f32; 3]> {
    let centres = plan.centres();
    // More centres than cameras would only duplicate points (sklearn refuses outright).
    let clusters = plan.opts.decoder_clusters.min(centres.len());
    if clusters < plan.opts.decoder_clusters {
        tracing::warn!(
            "{} position-decoder centres requested, {clusters} training cameras: using {clusters}",
            plan.opts.decoder_clusters
        );
    }
    if clusters > 1 {
        kmeans(&centres, clusters, 0, 300).centres.iter().map(|c| c.map(|v| v as f32)).collect()
    } else {
        let n = centres.len() as f64;
        vec![[0, 1, 2].map(|a| (centres.iter().map(|c| c[a]).sum::<f64>() / n) as f32)]
    }
}

/// The training buffer: augmented views encoded, cells sampled (with their depth targets).
pub fn fill_buffer(
    plan: &Plan,
    encoder: &LocalEncoder,
    targets: &[DepthTargets],
    rng: &mut Rng,
    progress: &mut dyn Progress,
) -> Result<Buffer, MapError> {
    let opts = plan.opts;
    let bcfg = BufferConfig {
        size: plan.budget.buffer_size,
        samples_per_image: opts.samples_per_image,
        image_height: opts.image_height,
        augment: AugmentConfig { enabled: opts.augment, rotation_deg: opts.rotation_deg, ..Default::default() },
        matmul: plan.matmul,
    };
    progress.phase("filling buffer", plan.budget.buffer_size);
    let buffer = fill(plan.frames(), plan.distortion(), encoder, &bcfg, targets, rng, &mut |imgs, filled| {
        progress.step(filled, &format!("{imgs} images"));
        !progress.cancelled()
    })?;
    stop_if_cancelled(progress)?;
    if buffer.is_empty() {
        return Err(MapError::Invalid("no training sample could be drawn (all images invalid?)".into()));
    }
    Ok(buffer)
}

/// The head trained on the buffer; divergence (a loss or a weight that is not finite) stops it
/// and makes no map.
pub fn train_head(
    plan: &Plan,
    encoder: &LocalEncoder,
    globals: &Globals,
    centres: Vec<[f32; 3]>,
    buffer: &Buffer,
    rng: &mut Rng,
    progress: &mut dyn Progress,
) -> Result<(Head, Vec<IterStats>), MapError> {
    let opts = plan.opts;
    let config = HeadConfig {
        c_in: globals.dim + encoder.dim(),
        channels: opts.head_channels,
        block_channels: ((opts.head_channels as f64) * opts.mlp_ratio) as usize,
        blocks: opts.head_blocks,
        clusters: centres.len(),
        homogeneous: true,
    };
    let mut head = Head::init(config, centres, opts.seed);
    let tcfg = train_config(plan, globals.dim);
    progress.phase("training", plan.budget.iterations);
    let mut recent: Vec<f64> = Vec::new();
    let mut diverged = None;
    let history = train(&mut head, buffer, &globals.table, globals.dim, &tcfg, rng, &mut |s: &IterStats| {
        if !s.loss.is_finite() {
            diverged = Some((s.iteration, s.loss));
            return false;
        }
        recent.push(s.loss);
        if recent.len() > 100 {
            recent.remove(0);
        }
        let mean = recent.iter().sum::<f64>() / recent.len() as f64;
        progress.step(s.iteration + 1, &format!("loss {mean:.2} valid {:.0}% lr {:.1e}", 100.0 * s.valid, s.lr));
        !progress.cancelled()
    });
    stop_if_cancelled(progress)?;
    let weights_finite = head.layers_mut().iter().all(|l| l.weight.iter().chain(&l.bias).all(|v| v.is_finite()));
    if diverged.is_some() || !weights_finite {
        let (iteration, loss) = diverged.unwrap_or((plan.budget.iterations, f64::NAN));
        return Err(MapError::Diverged { iteration, loss, blame: opts.divergence_suspects() });
    }
    Ok((head, history))
}

fn train_config(plan: &Plan, global_dim: usize) -> TrainConfig {
    let opts = plan.opts;
    TrainConfig {
        matmul: plan.matmul,
        batch_size: opts.batch_size,
        iterations: plan.budget.iterations,
        lr_max: opts.lr_max,
        noise_std: if global_dim > 0 { opts.noise_std } else { 0.0 },
        loss: LossConfig {
            depth_target: opts.depth_target,
            soft_clamp: opts.soft_clamp,
            depth_max: opts.depth_max,
            depth_weight: if plan.depth_targets { opts.depth_weight } else { 0.0 },
            ..LossConfig::default()
        },
    }
}

/// Seconds per stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageSeconds {
    /// [`encode_views`].
    pub encode_s: f64,
    /// [`global_descriptors`].
    pub global_s: f64,
    /// [`triangulated_depths`] and [`map_points`].
    pub triangulate_s: f64,
    /// [`fill_buffer`].
    pub buffer_s: f64,
    /// [`train_head`].
    pub train_s: f64,
}

/// The map (head, built-in global encoder, structure, description) and its report.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    plan: &Plan,
    encoder: &LocalEncoder,
    r2former: Option<&LoadedR2Former>,
    head: Head,
    globals: Globals,
    structure: Option<Structure>,
    targets: &[DepthTargets],
    buffer: &Buffer,
    history: &[IterStats],
    times: StageSeconds,
) -> (GlaceMap, MapReport) {
    let opts = plan.opts;
    // Each view's global descriptor beside its points, for retrieval at localization.
    let structure = structure.map(|mut s| {
        let rows: Vec<&Vec<f32>> = plan.frames().iter().filter_map(|f| globals.table.get(f.file_index)).collect();
        if globals.dim > 0 && rows.len() == s.views() && rows.iter().all(|r| r.len() == globals.dim) {
            s.view_globals_vg = rows.into_iter().flatten().copied().collect();
        }
        s
    });
    let tail = &history[history.len().saturating_sub(100)..];
    let StageSeconds { encode_s, global_s, triangulate_s, buffer_s, train_s } = times;
    let report = MapReport {
        options: opts.clone(),
        frames: plan.frames().len(),
        budget: plan.budget,
        encode_s,
        global_s,
        buffer_s,
        train_s,
        buffer_entries: buffer.len(),
        buffer_passes: buffer.passes,
        buffer_bytes: buffer.bytes(),
        final_loss: tail.iter().map(|s| s.loss).sum::<f64>() / tail.len().max(1) as f64,
        final_valid: tail.iter().map(|s| s.valid).sum::<f64>() / tail.len().max(1) as f64,
        samples_per_s: (history.len() * opts.batch_size.min(buffer.len())) as f64 / train_s.max(1e-9),
        precision: plan.matmul.name(),
        query_turns: plan.turns.clone(),
        view_spacing_deg: plan.spacing_deg,
        triangulate_s,
        depth_targets: targets.iter().map(|t| t.count()).sum(),
        structure_points: structure.as_ref().map_or(0, |s| s.len()),
        depth_target_share: buffer.depth.iter().filter(|d| d.is_finite()).count() as f64 / buffer.len().max(1) as f64,
    };
    // The options as they serialise; the ones localization reads, by name.
    let mut other = match serde_json::to_value(opts) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => Default::default(),
    };
    let options = TrainedOptions {
        image_height: other.remove("image_height").and_then(|v| v.as_u64()),
        noise_std: other.remove("noise_std").and_then(|v| v.as_f64()),
        other,
    };
    let info = MapInfo {
        head: head.config,
        local_encoder: encoder.identity(),
        global: match &opts.global {
            GlobalChoice::None => GlobalSource::None,
            GlobalChoice::Builtin => GlobalSource::Builtin,
            GlobalChoice::FeaturesNpy => GlobalSource::FeaturesNpy,
            GlobalChoice::R2Former(checkpoint) => GlobalSource::R2Former {
                sha256: r2former.map(|r| r.sha256.clone()).unwrap_or_default(),
                checkpoint: checkpoint.display().to_string(),
            },
        },
        training: TrainingLog {
            source: None,
            scene: Some(plan.scene.root.display().to_string()),
            frames: Some(plan.frames().len()),
            options: Some(options),
            budget: Some(TrainedBudget {
                buffer_size: plan.budget.buffer_size,
                iterations: plan.budget.iterations,
                rule: plan.budget.rule.map(|r| r.describe()),
            }),
            precision: Some(plan.matmul.name()),
            query_turns: Some(plan.turns.clone()),
            final_loss: Some(report.final_loss),
            seconds: Some(encode_s + global_s + triangulate_s + buffer_s + train_s),
        },
    };
    let global_scale = info.expected_global_scale();
    (GlaceMap { info, head, global: globals.builtin, global_scale, structure }, report)
}
