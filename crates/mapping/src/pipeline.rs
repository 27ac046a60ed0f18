//! What mapping is asked and what it reports: options and presets, the budget rule, the rules read
//! from the mapping cameras (query turns, view spacing, the structure's resolution), progress
//! and errors. The run itself is [`crate::stages`].

use glace_data::DataError;
use glace_nn::linalg::Precision;
use glace_nn::R2Former;
use serde::Serialize;

/// Width of the global descriptor.
pub const GLOBAL_DIM: usize = 256;

/// Where the global descriptor comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalChoice {
    /// None: ACE behaviour (no global input, no noise anywhere).
    None,
    /// The built-in VLAD + PCA encoder, fitted on the training images.
    Builtin,
    /// `features.npy` of the scene.
    FeaturesNpy,
    /// R2Former computed here from this checkpoint (`CVPR23_DeitS_Rerank.pth`).
    R2Former(std::path::PathBuf),
}

impl std::str::FromStr for GlobalChoice {
    type Err = String;
    /// `builtin`, `features`, `none` or `r2former:<checkpoint>`, as `glace map --global` takes it.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "builtin" => Ok(GlobalChoice::Builtin),
            "features" => Ok(GlobalChoice::FeaturesNpy),
            "none" => Ok(GlobalChoice::None),
            _ => match s.strip_prefix("r2former:") {
                Some(p) if !p.is_empty() => Ok(GlobalChoice::R2Former(p.into())),
                _ => Err(format!("'{s}': expected builtin, features, none or r2former:<checkpoint.pth>")),
            },
        }
    }
}

/// Everything `glace map` can set.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapOptions {
    /// Preset name the options came from.
    pub preset: String,
    /// Global descriptor source.
    pub global: GlobalChoice,
    /// Built-in global descriptor reduced to the directions that tell places apart (for scenes of
    /// several alike places: rooms of one building; see `glace_nn::global`).
    pub place_discriminants: bool,
    /// Feature-diffusion σ.
    pub noise_std: f32,
    /// Position-decoder centres (1 = mean camera centre).
    pub decoder_clusters: usize,
    /// Head width.
    pub head_channels: usize,
    /// Extra residual blocks.
    pub head_blocks: usize,
    /// Block width ratio.
    pub mlp_ratio: f64,
    /// Buffer entries (the most, while `scene_budget` is on).
    pub buffer_size: usize,
    /// Cells per image visit.
    pub samples_per_image: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Iterations (the most, while `scene_budget` is on).
    pub iterations: usize,
    /// Size the budget by the scene ([`MapOptions::budget_for`]): buffer and iterations grow with
    /// the number of training frames up to `buffer_size` and `iterations`. Off, both are used as
    /// given. Maps logged before this option existed read as off.
    #[serde(default)]
    pub scene_budget: bool,
    /// Peak learning rate.
    pub lr_max: f64,
    /// Shorter image side.
    pub image_height: u32,
    /// Shorter image side the map's points are detected and matched at (they are matched at
    /// keypoints, whose precision is in pixels); `None`: [`structure_height`]'s rule. Logs
    /// written before this option read as `None`.
    #[serde(default)]
    pub structure_height: Option<u32>,
    /// Augmentation on/off.
    pub augment: bool,
    /// Largest in-plane rotation of the augmentation, degrees either way (reference
    /// `--aug_rotation` 15). Logs written before this option existed read as 15.
    #[serde(default = "reference_rotation_deg")]
    pub rotation_deg: f64,
    /// Depth of the pseudo target for invalid predictions (reference 10 m).
    pub depth_target: f64,
    /// Predictions deeper than this (metres) are invalid and pulled to the pseudo target
    /// (reference 1000). Bounding it by the scene's extent keeps points that the network cannot
    /// yet tell apart from escaping far along their rays, where the reprojection loss hardly
    /// constrains them (measured on integrated rooms: docs/experiments.md).
    pub depth_max: f64,
    /// Starting τ of the dynamic-tanh schedule in pixels (reference 50).
    pub soft_clamp: f64,
    /// Weight of the depth targets triangulated across the mapping views
    /// ([`glace_structure::triangulate`]), used where the views are a photo collection
    /// ([`SPARSE_VIEW_DEG`]); 0: none, as the reference. Logs written before this option read
    /// as 0.
    #[serde(default)]
    pub depth_weight: f64,
    /// Seed.
    pub seed: u64,
    /// Precision of the matrix products in mapping: head training and the local encoder's passes
    /// (`auto`: bf16 where this CPU has a path faster than fp32, else fp32). Logs written before
    /// this option read as auto.
    #[serde(default)]
    pub precision: Precision,
}

impl MapOptions {
    /// A named preset: `cpu` (the default without a GPU) or the reference's `7scenes`,
    /// `12scenes`, `cambridge`, `rooms`, `aachen`.
    pub fn preset(name: &str) -> Option<MapOptions> {
        let reference = MapOptions {
            preset: name.into(),
            global: GlobalChoice::Builtin,
            place_discriminants: false,
            noise_std: 0.1,
            decoder_clusters: 1,
            head_channels: 768,
            head_blocks: 1,
            mlp_ratio: 1.0,
            buffer_size: 16_000_000,
            samples_per_image: 1024,
            batch_size: 40960,
            iterations: 30000,
            scene_budget: false,
            lr_max: 5e-3,
            image_height: 480,
            structure_height: None,
            augment: true,
            rotation_deg: 15.0,
            depth_target: 10.0,
            depth_max: 1000.0,
            soft_clamp: 50.0,
            depth_weight: 0.0,
            seed: 42,
            precision: Precision::Auto,
        };
        Some(match name {
            // Measured on the synthetic desk and TUM fr2/desk (docs/experiments.md).
            // soft_clamp 300: with the reference's 50, predictions that become valid far from their
            // target (inside-out views start behind the camera) sit in the flat tail of the tanh and
            // stop learning.
            // depth_weight 1: depth targets triangulated across the mapping views; measured on
            // the real object sets, where views lie 14–22° apart (docs/experiments.md).
            "cpu" => MapOptions {
                head_channels: 256,
                depth_weight: 1.0,
                buffer_size: 1_000_000,
                batch_size: 1024,
                iterations: 20_000,
                scene_budget: true,
                soft_clamp: 300.0,
                ..reference
            },
            "7scenes" | "12scenes" => MapOptions { batch_size: 5120, ..reference },
            "cambridge" => MapOptions { head_blocks: 2, ..reference },
            "rooms" => MapOptions { decoder_clusters: 50, iterations: 100_000, place_discriminants: true, ..reference },
            "aachen" => MapOptions {
                head_blocks: 3,
                mlp_ratio: 2.0,
                decoder_clusters: 50,
                iterations: 100_000,
                place_discriminants: true,
                ..reference
            },
            _ => return None,
        })
    }
}

fn reference_rotation_deg() -> f64 {
    15.0
}

/// The buffer and iterations a mapping run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// Buffer entries.
    pub buffer_size: usize,
    /// Training iterations.
    pub iterations: usize,
    /// The rule that sized them (`None`: the options' values as given).
    pub rule: Option<BudgetRule>,
}

/// How a scene-sized budget grows with the scene's training frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetRule {
    /// Which captures it is for.
    pub name: &'static str,
    /// Augmented visits of each training frame in the buffer.
    pub visits_per_frame: usize,
    /// Samples trained per training frame (in batches of `batch_size`).
    pub samples_per_frame: usize,
    /// The fewest samples trained, whatever the scene's size.
    pub min_samples: usize,
}

impl BudgetRule {
    /// Its words, for logs: `"points: 2 visits, 8 × 1024 samples per frame, at least 500 × 1024"`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} buffer visits and {} × 1024 samples per frame, at least {} × 1024 samples",
            self.name,
            self.visits_per_frame,
            self.samples_per_frame / 1024,
            self.min_samples / 1024
        )
    }
}

/// Maps whose queries rest on the scene coordinates alone (no points: the triangulation off, or
/// none triangulated).
/// From the time-to-accuracy curves of TUM fr2/desk (docs/experiments.md: two buffer visits
/// do as well as four; 500 iterations lose 13–28 % in rotation, 1000 nothing) and the 600-frame
/// desk demo (100 % within 5 cm / 5° at 34 k samples per frame, the preset's bound).
pub const COORDINATES_BUDGET: BudgetRule = BudgetRule {
    name: "scene coordinates alone",
    visits_per_frame: 2,
    samples_per_frame: 40 * 1024,
    min_samples: 600 * 1024,
};

/// Maps with points: the refinement against them does the fine work, the scene coordinates need
/// only bring a query within its first window. From the time-to-accuracy curves of the shared
/// photo collections (docs/experiments.md): their refined accuracy is flat from 250–500
/// iterations on; this keeps a margin above that.
pub const REFINED_BUDGET: BudgetRule = BudgetRule {
    name: "refined against the map's points",
    visits_per_frame: 2,
    samples_per_frame: 8 * 1024,
    min_samples: 500 * 1024,
};

/// Largest `--depth-weight`: beyond it the depth pull drowns the reprojection term.
pub const MAX_DEPTH_WEIGHT: f64 = 100.0;
/// Largest `lr_max`: AdamW steps of this size already throw the head away each step.
pub const MAX_LR: f64 = 1.0;

impl MapOptions {
    /// What to blame when training diverges: the options set away from the preset's values that
    /// move the loss or its steps, by field name; else the inputs.
    ///
    /// ```
    /// let o = glace_mapping::pipeline::MapOptions::preset("cpu").unwrap();
    /// assert!(o.divergence_suspects().starts_with("the inputs"));
    /// let heavy = glace_mapping::pipeline::MapOptions { depth_weight: 90.0, lr_max: 0.5, ..o };
    /// assert!(heavy.divergence_suspects().contains("lr_max 0.5, depth_weight 90"), "{}", heavy.divergence_suspects());
    /// ```
    pub fn divergence_suspects(&self) -> String {
        let Some(p) = MapOptions::preset(&self.preset) else { return "the options or the inputs".into() };
        let mut changed: Vec<String> = Vec::new();
        let mut note = |changed_here: bool, option: &str, value: String| {
            if changed_here {
                changed.push(format!("{option} {value}"));
            }
        };
        note(self.lr_max != p.lr_max, "lr_max", self.lr_max.to_string());
        note(self.depth_weight != p.depth_weight, "depth_weight", self.depth_weight.to_string());
        note(self.soft_clamp != p.soft_clamp, "soft_clamp", self.soft_clamp.to_string());
        note(self.noise_std != p.noise_std, "noise_std", self.noise_std.to_string());
        note(self.mlp_ratio != p.mlp_ratio, "mlp_ratio", self.mlp_ratio.to_string());
        note(self.depth_target != p.depth_target, "depth_target", self.depth_target.to_string());
        note(self.depth_max != p.depth_max, "depth_max", self.depth_max.to_string());
        note(self.batch_size != p.batch_size, "batch_size", self.batch_size.to_string());
        if changed.is_empty() {
            "the inputs (a pose far outside the scene, or encoder weights that give NaN), since every option is \
             the preset's"
                .into()
        } else {
            format!("the options set away from the '{}' preset: {}", self.preset, changed.join(", "))
        }
    }
}

impl MapOptions {
    /// The budget for a scene of `frames` training frames whose map carries points (`points`)
    /// or not. With `scene_budget` on, `rule` ([`REFINED_BUDGET`] with points, else
    /// [`COORDINATES_BUDGET`]) sizes the buffer in visits of every frame and the training in
    /// samples per frame, each bounded by the options' `buffer_size` and `iterations`: the fixed
    /// budget made small scenes train (and revisit each image hundreds of times to fill the
    /// buffer) as long as 600-frame ones, for no accuracy (docs/experiments.md). Off, the
    /// options' values as given.
    ///
    /// ```
    /// let o = glace_mapping::pipeline::MapOptions::preset("cpu").unwrap();
    /// let small = o.budget_for(15, false);
    /// assert_eq!(small.buffer_size, 15 * 2 * 1024);
    /// assert!(small.iterations < o.iterations);
    /// assert!(o.budget_for(15, true).iterations < small.iterations);
    /// assert_eq!(o.budget_for(100_000, false).iterations, o.iterations);
    /// ```
    pub fn budget_for(&self, frames: usize, points: bool) -> Budget {
        if !self.scene_budget {
            return Budget { buffer_size: self.buffer_size, iterations: self.iterations, rule: None };
        }
        let rule = if points { REFINED_BUDGET } else { COORDINATES_BUDGET };
        let batch = self.batch_size.max(1);
        let samples = frames.saturating_mul(rule.samples_per_frame).max(rule.min_samples);
        Budget {
            buffer_size: frames
                .saturating_mul(rule.visits_per_frame)
                .saturating_mul(self.samples_per_image)
                .clamp(1, self.buffer_size),
            iterations: samples.div_ceil(batch).clamp(1, self.iterations),
            rule: Some(rule),
        }
    }

    /// Checks every option before any work starts: zero, negative or non-finite values that
    /// mean nothing are refused, as are contradictory depths. The error names the field; each
    /// front end spells it its own way (`--iterations`, `iterations=`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.precision.resolve().map_err(|m| ("precision", m))?;
        let at_least_one = |name: &'static str, v: usize| {
            if v == 0 {
                Err((name, "0: must be at least 1".to_string()))
            } else {
                Ok(())
            }
        };
        at_least_one("iterations", self.iterations)?;
        at_least_one("batch_size", self.batch_size)?;
        at_least_one("buffer_size", self.buffer_size)?;
        at_least_one("samples_per_image", self.samples_per_image)?;
        at_least_one("head_channels", self.head_channels)?;
        at_least_one("decoder_clusters", self.decoder_clusters)?;
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) || ((self.head_channels as f64) * self.mlp_ratio) < 1.0
        {
            return Err((
                "mlp_ratio",
                format!("{}: must be positive and leave a block at least 1 wide", self.mlp_ratio),
            ));
        }
        if !(self.lr_max.is_finite() && self.lr_max > 0.0) {
            return Err(("lr_max", format!("{}: expected a positive learning rate such as 5e-3", self.lr_max)));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(("noise_std", format!("{}: expected a finite σ ≥ 0", self.noise_std)));
        }
        if !(self.depth_weight.is_finite() && (0.0..=MAX_DEPTH_WEIGHT).contains(&self.depth_weight)) {
            return Err((
                "depth_weight",
                format!(
                    "{}: expected a weight from 0 to {MAX_DEPTH_WEIGHT} (the reprojection term weighs 1)",
                    self.depth_weight
                ),
            ));
        }
        if self.lr_max > MAX_LR {
            return Err(("lr_max", format!("{}: at most {MAX_LR} (the presets use 5e-3)", self.lr_max)));
        }
        if !(self.soft_clamp.is_finite() && self.soft_clamp >= 0.0) {
            return Err(("soft_clamp", format!("{}: expected a finite τ ≥ 0 pixels", self.soft_clamp)));
        }
        if !(self.rotation_deg.is_finite() && (0.0..=180.0).contains(&self.rotation_deg)) {
            return Err(("rotation_deg", format!("{}: expected 0 to 180 degrees", self.rotation_deg)));
        }
        use glace_nn::{MAX_IMAGE_HEIGHT as MAX, MIN_IMAGE_HEIGHT as MIN};
        if !(MIN..=MAX).contains(&self.image_height) {
            return Err(("image_height", format!("{}: expected {MIN} to {MAX} pixels", self.image_height)));
        }
        if let Some(h) = self.structure_height.filter(|h| !(MIN..=MAX).contains(h)) {
            return Err((
                "structure_height",
                format!("{h}: expected {MIN} to {MAX} pixels (the local encoder needs at least {MIN})"),
            ));
        }
        // Invalid points are pulled to the pseudo target, which must itself be a valid depth
        // (beyond the loss's 0.1 m minimum and short of the maximum). Written as "is valid"
        // tests so that NaN fails them.
        if !(self.depth_target > 0.1 && self.depth_target.is_finite()) {
            return Err(("depth_target", format!("{} m must exceed 0.1 m", self.depth_target)));
        }
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must fail the test too
        if !(self.depth_max > self.depth_target) {
            return Err((
                "depth_max",
                format!("{} m must exceed depth_target {} m", self.depth_max, self.depth_target),
            ));
        }
        Ok(())
    }
}

/// Two mapping views are neighbours for [`query_turns`] when their optical axes are this close
/// (degrees).
pub const NEIGHBOUR_AXIS_DEG: f64 = 30.0;
/// [`query_turns`] and [`neighbour_angle_deg`] look at no more than this many views (evenly
/// spaced), bounding their pairs.
const RULE_VIEWS: usize = 2000;

/// The quarter turns (clockwise, 0–3) a query of this scene should be tried in, read from the
/// mapping cameras: all four when two neighbouring views (optical axes within
/// [`NEIGHBOUR_AXIS_DEG`]) are rolled more than 45° against each other — a gantry flipped over,
/// portrait next to landscape, views over the pole of an object — since then a query can be
/// rolled against the mapping views nearest it and the local encoder is not rotation-invariant;
/// else only upright. A capture held level keeps the cost of one pass.
///
/// ```
/// use glace_geometry::CamToWorld;
/// use nalgebra::{Isometry3, Vector3};
/// let level = CamToWorld(Isometry3::identity());
/// let rolled = CamToWorld(Isometry3::new(Vector3::zeros(), Vector3::new(0.0, 0.0, 3.0)));
/// assert_eq!(glace_mapping::pipeline::query_turns(&[level, level]), vec![0]);
/// assert_eq!(glace_mapping::pipeline::query_turns(&[level, rolled]), vec![0, 1, 2, 3]);
/// ```
pub fn query_turns(cam_to_world: &[glace_geometry::CamToWorld]) -> Vec<u8> {
    let step = cam_to_world.len().div_ceil(RULE_VIEWS).max(1);
    let rotations: Vec<nalgebra::Matrix3<f64>> = cam_to_world.iter().step_by(step).map(|p| p.rotation()).collect();
    let cos_axis = NEIGHBOUR_AXIS_DEG.to_radians().cos();
    for (a, ra) in rotations.iter().enumerate() {
        for rb in &rotations[a + 1..] {
            if ra.column(2).dot(&rb.column(2)) < cos_axis {
                continue;
            }
            // b's down axis in a's camera frame, against a's own: the roll between the two.
            let y = ra.transpose() * rb.column(1);
            if y[0].atan2(y[1]).abs() > std::f64::consts::FRAC_PI_4 {
                return vec![0, 1, 2, 3];
            }
        }
    }
    vec![0]
}

/// The shorter image side the map's points are detected at when the options do not say: the
/// training images' own (the median of their shorter sides), but never below the network's
/// `image_height` nor above twice it. The points are matched at keypoints, whose error is in
/// pixels: images larger than the network's give more precise points and poses (measured in
/// docs/experiments.md), at the cost of one more encoder pass per mapping view and query.
///
/// ```
/// use glace_mapping::pipeline::structure_height;
/// assert_eq!(structure_height(&[912, 912, 900], 480), 912);
/// assert_eq!(structure_height(&[480, 480], 480), 480);
/// assert_eq!(structure_height(&[3000, 3000, 2000], 480), 960);
/// assert_eq!(structure_height(&[240], 480), 480);
/// ```
pub fn structure_height(native_heights: &[u32], image_height: u32) -> u32 {
    let mut h = native_heights.to_vec();
    h.sort_unstable();
    let native = h.get(h.len() / 2).copied().unwrap_or(image_height);
    native.clamp(image_height, image_height.saturating_mul(2))
}

/// Mapping views whose optical axes lie this far (degrees, median over the views) from their
/// nearest neighbour's are a photo collection, where depth targets are triangulated; closer, a
/// video-like capture whose overlapping views already fix the depths.
pub const SPARSE_VIEW_DEG: f64 = 3.0;

/// The median over the mapping views of the angle (degrees) between a view's optical axis and
/// that of its nearest other view (views at the same place looking the same way are skipped);
/// 0 for fewer than two views.
pub fn neighbour_angle_deg(cam_to_world: &[glace_geometry::CamToWorld]) -> f64 {
    let step = cam_to_world.len().div_ceil(RULE_VIEWS).max(1);
    let views: Vec<(nalgebra::Vector3<f64>, nalgebra::Vector3<f64>)> =
        cam_to_world.iter().step_by(step).map(|p| (p.rotation().column(2).into_owned(), p.center())).collect();
    let mut nearest: Vec<f64> = views
        .iter()
        .enumerate()
        .filter_map(|(a, (za, ca))| {
            views
                .iter()
                .enumerate()
                .filter(|(b, (_, cb))| *b != a && (ca - cb).norm() > 1e-9)
                .map(|(_, (zb, _))| za.dot(zb).clamp(-1.0, 1.0).acos().to_degrees())
                .min_by(|x, y| x.total_cmp(y))
        })
        .collect();
    if nearest.is_empty() {
        return 0.0;
    }
    let mid = nearest.len() / 2;
    *nearest.select_nth_unstable_by(mid, |x, y| x.total_cmp(y)).1
}

/// What happened while mapping (written as the JSON log).
#[derive(Clone, Debug, Serialize)]
pub struct MapReport {
    /// Options used.
    pub options: MapOptions,
    /// Training frames.
    pub frames: usize,
    /// The buffer and iterations used (the options' own unless `scene_budget` sized them).
    pub budget: Budget,
    /// Seconds decoding and encoding the mapping views upright (once, for the global
    /// descriptors and the triangulation).
    pub encode_s: f64,
    /// Seconds computing global descriptors.
    pub global_s: f64,
    /// Seconds filling the buffer.
    pub buffer_s: f64,
    /// Seconds training.
    pub train_s: f64,
    /// Buffer entries and dataset passes.
    pub buffer_entries: usize,
    /// Passes over the training images.
    pub buffer_passes: usize,
    /// Buffer memory in bytes.
    pub buffer_bytes: usize,
    /// Mean loss of the last 100 iterations.
    pub final_loss: f64,
    /// Valid fraction of the last 100 iterations.
    pub final_valid: f64,
    /// Samples per second during training.
    pub samples_per_s: f64,
    /// How the networks' products were computed (`fp32`, `bf16 (amx-bf16)`, …).
    pub precision: String,
    /// Quarter turns queries are tried in ([`query_turns`]).
    pub query_turns: Vec<u8>,
    /// Median angle between a mapping view's optical axis and its nearest neighbour's (degrees).
    pub view_spacing_deg: f64,
    /// Seconds triangulating depth targets and the map's points.
    pub triangulate_s: f64,
    /// Training cells given a triangulated depth.
    pub depth_targets: usize,
    /// Triangulated points the map keeps for refining poses by matching.
    pub structure_points: usize,
    /// Share of the buffer's samples with a depth target.
    pub depth_target_share: f64,
}

/// Progress callbacks, and the way to cancel a mapping run.
pub trait Progress {
    /// A phase starts with `total` steps.
    fn phase(&mut self, name: &str, total: usize);
    /// Step `done` of the current phase, with a short status.
    fn step(&mut self, done: usize, status: &str);
    /// Asked between steps: true stops mapping with [`MapError::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that reports nothing and never cancels.
pub struct Silent;

impl Progress for Silent {
    fn phase(&mut self, _: &str, _: usize) {}
    fn step(&mut self, _: usize, _: &str) {}
}

/// Errors of mapping.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Reading the scene failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An option that means nothing (zero, negative, NaN) or contradicts another.
    #[error("{option}: {message}")]
    Option {
        /// The field of [`MapOptions`].
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The options cannot work with this scene.
    #[error("{0}")]
    Invalid(String),
    /// The loss or the weights stopped being finite; no map is made.
    #[error(
        "training diverged at iteration {iteration} (loss {loss}); most likely to blame: {blame}; no map was written"
    )]
    Diverged {
        /// 0-based iteration where it was seen.
        iteration: usize,
        /// The loss there.
        loss: f64,
        /// The options set away from the preset that move the loss, by field, or the inputs
        /// when there are none.
        blame: String,
    },
    /// [`Progress::cancelled`] asked to stop.
    #[error("mapping cancelled")]
    Cancelled,
}

/// R2Former as the caller loaded it for [`GlobalChoice::R2Former`], with its checkpoint's
/// sha256 (recorded in the map, so that localization can check it is given the same one).
pub struct LoadedR2Former<'a> {
    /// The network.
    pub net: &'a R2Former,
    /// sha256 of its checkpoint file.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_budget_grows_with_frames_within_the_presets_bounds() {
        let o = MapOptions::preset("cpu").unwrap();
        assert!(o.scene_budget);
        let sizes = [1, 12, 15, 80, 95, 300, 600, 5000];
        for (points, rule) in [(false, COORDINATES_BUDGET), (true, REFINED_BUDGET)] {
            let budgets: Vec<Budget> = sizes.iter().map(|&n| o.budget_for(n, points)).collect();
            for (w, n) in budgets.windows(2).zip(sizes.windows(2)) {
                assert!(w[0].iterations <= w[1].iterations && w[0].buffer_size <= w[1].buffer_size, "{n:?}: {w:?}");
            }
            assert!(budgets.iter().all(|b| b.rule == Some(rule)));
            // Few frames: the floor; each frame visited as often as the rule says.
            assert_eq!(budgets[0].iterations, rule.min_samples / o.batch_size);
            assert_eq!(budgets[2].buffer_size, 15 * rule.visits_per_frame * o.samples_per_image);
            assert_eq!(
                budgets[4].iterations,
                (95 * rule.samples_per_frame).div_ceil(o.batch_size).max(budgets[0].iterations)
            );
            // Large scenes: the preset's bounds, never more.
            assert_eq!(budgets[7].buffer_size, o.buffer_size);
            assert!(budgets[7].iterations <= o.iterations);
            // Twice the batch, half the iterations for the same samples.
            let wide = MapOptions { batch_size: 2 * o.batch_size, ..o.clone() };
            assert_eq!(wide.budget_for(95, points).iterations, budgets[4].iterations.div_ceil(2));
        }
        // The 600-frame desk demo (no points) keeps the preset's budget.
        assert_eq!(
            o.budget_for(600, false),
            Budget { buffer_size: 1_000_000, iterations: 20_000, rule: Some(COORDINATES_BUDGET) }
        );
        // The shared photo collections: 12, 80 and 95 frames.
        assert_eq!(o.budget_for(12, true).iterations, 500);
        assert_eq!(o.budget_for(80, true).iterations, 640);
        assert_eq!(
            o.budget_for(95, true),
            Budget { buffer_size: 95 * 2 * 1024, iterations: 760, rule: Some(REFINED_BUDGET) }
        );
    }

    fn ring(rolls_deg: &[f64], step_deg: f64) -> Vec<glace_geometry::CamToWorld> {
        // Cameras on a horizontal ring looking at its centre, each rolled about its optical axis.
        rolls_deg
            .iter()
            .enumerate()
            .map(|(k, roll)| {
                let a = (k as f64 * step_deg).to_radians();
                let centre = nalgebra::Vector3::new(a.cos(), 0.0, a.sin());
                let z = -centre;
                let y0 = nalgebra::Vector3::new(0.0, -1.0, 0.0);
                let x0 = y0.cross(&z);
                let (s, c) = roll_deg_sin_cos(*roll);
                let (x, y) = (x0 * c + y0 * s, y0 * c - x0 * s);
                let r = nalgebra::Rotation3::from_matrix_unchecked(nalgebra::Matrix3::from_columns(&[x, y, z]));
                glace_geometry::CamToWorld(nalgebra::Isometry3::from_parts(
                    centre.into(),
                    nalgebra::UnitQuaternion::from_rotation_matrix(&r),
                ))
            })
            .collect()
    }

    fn roll_deg_sin_cos(d: f64) -> (f64, f64) {
        d.to_radians().sin_cos()
    }

    #[test]
    fn queries_are_turned_only_where_neighbouring_views_roll() {
        // A level ring, and one with small hand-held rolls: upright only.
        assert_eq!(query_turns(&ring(&[0.0; 16], 22.5)), vec![0]);
        assert_eq!(query_turns(&ring(&[5.0, -10.0, 20.0, -15.0, 0.0, 8.0, -3.0, 12.0], 22.5)), vec![0]);
        // Every other view flipped over (a gantry turned upside down): all four turns.
        let flipped: Vec<f64> = (0..16).map(|k| if k % 2 == 0 { 0.0 } else { 180.0 }).collect();
        assert_eq!(query_turns(&ring(&flipped, 22.5)), vec![0, 1, 2, 3]);
        // Portrait next to landscape.
        assert_eq!(query_turns(&ring(&[0.0, 90.0, 0.0, 0.0], 10.0)), vec![0, 1, 2, 3]);
        // Rolled views that look at the ring from far apart (90°) are not neighbours.
        assert_eq!(query_turns(&ring(&[0.0, 180.0, 0.0, 180.0], 90.0)), vec![0]);
        assert_eq!(query_turns(&[]), vec![0]);
    }

    #[test]
    fn photo_collections_are_told_from_video_by_the_spacing_of_their_views() {
        // A 16-view ring: 22.5° between neighbours; 600 views around it: 0.6°.
        assert!((neighbour_angle_deg(&ring(&[0.0; 16], 22.5)) - 22.5).abs() < 1e-6);
        let dense = neighbour_angle_deg(&ring(&[0.0; 600], 0.6));
        assert!((dense - 0.6).abs() < 1e-6 && dense < SPARSE_VIEW_DEG);
        // A duplicate view does not make the ring dense; one view has no neighbour.
        let mut twice = ring(&[0.0; 16], 22.5);
        twice.push(twice[0]);
        assert!((neighbour_angle_deg(&twice) - 22.5).abs() < 1e-6);
        assert_eq!(neighbour_angle_deg(&twice[..1]), 0.0);
    }

    #[test]
    fn a_fixed_budget_is_used_as_given() {
        let mut o = MapOptions::preset("cpu").unwrap();
        (o.iterations, o.buffer_size, o.scene_budget) = (123, 4567, false);
        assert_eq!(o.budget_for(15, true), Budget { buffer_size: 4567, iterations: 123, rule: None });
        for name in ["7scenes", "12scenes", "cambridge", "rooms", "aachen"] {
            let r = MapOptions::preset(name).unwrap();
            assert!(!r.scene_budget, "{name}: the reference presets keep the reference's budget");
            assert_eq!(
                r.budget_for(15, false),
                Budget { buffer_size: r.buffer_size, iterations: r.iterations, rule: None }
            );
        }
    }

    #[test]
    fn logs_written_before_the_scene_budget_read_as_fixed() {
        let mut v = serde_json::to_value(MapOptions::preset("cpu").unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("scene_budget");
        let o: MapOptions = serde_json::from_value(v).unwrap();
        assert!(!o.scene_budget);
    }
}
