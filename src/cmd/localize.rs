//! `glace localize <scene> <map>`: localize the scene's test images and write a pose file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use glace::{localize_scene, Localizer, LocalizerOptions, Map, RansacOptions, Scene, SceneOptions, SplitKind};

use super::map::GlobalArg;

/// When a pose from the scene coordinates counts as found (the library's defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct EvidenceArgs {
    /// A pose from the scene coordinates needs at least this many inlier cells [0: no minimum].
    #[arg(long, default_value_t = glace::EvidenceRule::default().min_inliers)]
    pub min_inliers: usize,
    /// ... and this share of the image's cells as inliers (0 to 1; 0: every pose RANSAC returns,
    /// as the reference).
    #[arg(long, default_value_t = glace::EvidenceRule::default().min_inlier_ratio)]
    pub min_inlier_ratio: f64,
    /// ... spread over at least this share of the image (0 to 1).
    #[arg(long, default_value_t = glace::EvidenceRule::default().min_spread)]
    pub min_spread: f64,
}

impl EvidenceArgs {
    /// As the library's rule, checked (the error names the option).
    pub fn rule(&self) -> anyhow::Result<glace::EvidenceRule> {
        for (option, v) in [("--min-inlier-ratio", self.min_inlier_ratio), ("--min-spread", self.min_spread)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(glace::Error::usage(option, format!("{v}: expected 0 to 1")).into());
            }
        }
        Ok(glace::EvidenceRule {
            min_inliers: self.min_inliers,
            min_inlier_ratio: self.min_inlier_ratio,
            min_spread: self.min_spread,
        })
    }
}

/// How to load the networks a map needs (shared by the commands that run a map).
#[derive(clap::Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Local encoder the map was trained with: xfeat, or ace:<ace_encoder_pretrained.pt> for
    /// maps trained with the ACE encoder (official GLACE .pt heads included).
    #[arg(long, default_value = "xfeat")]
    pub encoder: String,
    /// Global descriptors of an R2Former map: r2former:<CVPR23_DeitS_Rerank.pth> [default: the
    /// checkpoint recorded in the map], or features (the split's features.npy).
    #[arg(long)]
    pub global: Option<GlobalArg>,
    /// Shorter image side [default: the one the map was trained with; reference 480].
    #[arg(long)]
    pub image_height: Option<u32>,
    /// Precision of the head's and encoders' matrix products: auto (bf16 where this CPU has a path faster
    /// than fp32: AMX, or AVX512-BF16 on AMD; else fp32), fp32, or bf16 (the reference: fp32)
    #[arg(long, default_value = "auto", value_parser = super::map::precision)]
    pub precision: glace::Precision,
    /// Orientations each image is given to the networks in: auto (as the map recommends: all four
    /// quarter turns where the mapping views are rolled against each other, else upright),
    /// upright (the reference), or all (four quarter turns, the pose with the most inliers wins)
    #[arg(long, default_value = "auto", value_parser = glace::Turns::parse)]
    pub turns: glace::Turns,
    /// Keep the pose the scene coordinates give: do not refine it by matching the image to the
    /// points the map triangulated across its mapping views, nor look for a pose among the
    /// points of the mapping views nearest by global descriptor (maps of the `cpu` preset
    /// carry them; the reference has none)
    #[arg(long)]
    pub no_structure: bool,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
}

impl NetworkArgs {
    /// Opens the map and builds its localizer.
    pub fn open(&self, map_path: &Path, clean_global: bool, ransac: RansacOptions) -> anyhow::Result<Localizer> {
        use glace::GlobalSource;
        use glace_nn::{MAX_IMAGE_HEIGHT as MAX, MIN_IMAGE_HEIGHT as MIN};
        if let Some(h) = self.image_height.filter(|h| !(MIN..=MAX).contains(h)) {
            return Err(glace::Error::usage("--image-height", format!("{h}: expected {MIN} to {MAX} pixels")).into());
        }
        self.precision.resolve().map_err(|m| glace::Error::usage("--precision", m))?;
        let map = Map::open(map_path)?;
        let ace_encoder = match self.encoder.parse::<glace::LocalEncoderChoice>() {
            Ok(glace::LocalEncoderChoice::XFeat) => None,
            Ok(glace::LocalEncoderChoice::Ace(p)) => Some(p),
            Err(e) => return Err(glace::Error::usage("--encoder", e).into()),
        };
        let want = map.description().local_encoder.kind.as_str();
        if (want == "ace") != ace_encoder.is_some() {
            let msg =
                format!("{}: the map was trained with the {want} encoder, not {}", map_path.display(), self.encoder);
            return Err(glace::Error::usage("--encoder", msg).into());
        }
        let global = &map.description().global;
        let fits = matches!(
            (&self.global, global),
            (None, _)
                | (Some(GlobalArg::None), GlobalSource::None)
                | (Some(GlobalArg::Builtin), GlobalSource::Builtin)
                | (Some(GlobalArg::Features), GlobalSource::FeaturesNpy | GlobalSource::R2Former { .. })
                | (Some(GlobalArg::R2Former(_)), GlobalSource::R2Former { .. })
        );
        if !fits {
            let msg =
                format!("the map was trained with global source {global:?}, not {:?}", self.global.as_ref().unwrap());
            return Err(glace::Error::usage("--global", msg).into());
        }
        let options = LocalizerOptions {
            ransac,
            image_height: self.image_height,
            clean_global,
            ace_encoder,
            r2former: match &self.global {
                Some(GlobalArg::R2Former(p)) => Some(p.clone()),
                _ => None,
            },
            external_descriptors: matches!(self.global, Some(GlobalArg::Features)),
            precision: self.precision,
            turns: self.turns,
            skip_structure: self.no_structure,
            evidence: self.evidence.rule()?,
        };
        Ok(Localizer::new(&map, options)?)
    }
}

/// Arguments of `glace localize`.
#[derive(clap::Args, Debug)]
pub struct LocalizeArgs {
    /// Scene folder (its test/ split is localized).
    pub scene: PathBuf,
    /// Map file written by `glace map`, or an official GLACE .pt head.
    pub map: PathBuf,
    /// Pose file to write [default: poses_<scene>.txt next to the map].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON report with metrics and per-stage timings [default: <out>.json].
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub networks: NetworkArgs,
    #[command(flatten)]
    pub ransac: RansacArgs,
    /// Feed the head the global descriptor as computed, as the reference does [default: shrunk
    /// to its mean under the map's feature diffusion: ×0.53 for σ = 0.1, as in training].
    #[arg(long)]
    pub clean_global: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// RANSAC options; every default is the library's ([`RansacOptions::default`]: the reference's,
/// and a time budget).
#[derive(clap::Args, Debug, Clone)]
pub struct RansacArgs {
    /// RANSAC hypotheses (reference 64; 3200 for Aachen).
    #[arg(long, default_value_t = RansacOptions::default().hypotheses)]
    pub hypotheses: usize,
    /// Inlier threshold in pixels (reference 10).
    #[arg(long, default_value_t = RansacOptions::default().threshold)]
    pub threshold: f64,
    /// Soft-inlier score scale α (reference 100).
    #[arg(long, default_value_t = RansacOptions::default().inlier_alpha)]
    pub inlier_alpha: f64,
    /// Reprojection-error clamp in pixels (reference 100).
    #[arg(long, default_value_t = RansacOptions::default().max_pixel_error)]
    pub max_pixel_error: f64,
    /// Cap on 4-point draws per hypothesis (reference 1,000,000).
    #[arg(long, default_value_t = RansacOptions::default().max_tries)]
    pub max_tries: usize,
    /// Wall-time budget for hypothesis drawing per frame in ms (0: none); a frame that runs out fails.
    #[arg(long, default_value_t = default_time_budget_ms())]
    pub time_budget_ms: u64,
    /// RANSAC seed.
    #[arg(long, default_value_t = RansacOptions::default().seed)]
    pub seed: u64,
}

fn default_time_budget_ms() -> u64 {
    RansacOptions::default().time_budget.map_or(0, |d| d.as_millis() as u64)
}

impl Default for RansacArgs {
    /// The library's defaults, as the command line's are.
    fn default() -> Self {
        let d = RansacOptions::default();
        RansacArgs {
            hypotheses: d.hypotheses,
            threshold: d.threshold,
            inlier_alpha: d.inlier_alpha,
            max_pixel_error: d.max_pixel_error,
            max_tries: d.max_tries,
            time_budget_ms: default_time_budget_ms(),
            seed: d.seed,
        }
    }
}

impl RansacArgs {
    /// As the library's options, checked (the error names the command-line option).
    pub fn options(&self) -> anyhow::Result<RansacOptions> {
        let o = RansacOptions {
            hypotheses: self.hypotheses,
            threshold: self.threshold,
            inlier_alpha: self.inlier_alpha,
            max_pixel_error: self.max_pixel_error,
            max_tries: self.max_tries,
            time_budget: (self.time_budget_ms > 0).then(|| std::time::Duration::from_millis(self.time_budget_ms)),
            seed: self.seed,
            ..Default::default()
        };
        o.validate()
            .map_err(|(field, message)| glace::Error::usage(format!("--{}", field.replace('_', "-")), message))?;
        Ok(o)
    }
}

/// Runs `glace localize`.
pub fn run(args: &LocalizeArgs) -> anyhow::Result<()> {
    let ransac = args.ransac.options()?;
    let scene = Scene::open(&args.scene, &SceneOptions::default())?;
    scene.split(SplitKind::Test)?;
    let scene_name = scene.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "scene".into());
    let out = args.out.clone().unwrap_or_else(|| args.map.with_file_name(format!("poses_{scene_name}.txt")));
    let report_path = args.report.clone().unwrap_or_else(|| out.with_extension("json"));
    let mut plan = glace::plan().input("<scene>", &args.scene).input("<map>", &args.map);
    // The map's training log sits beside it under the derived name a report could take.
    let map_log = args.map.with_extension("json");
    if map_log.is_file() && map_log != args.map {
        plan = plan.input("<map>'s log", &map_log);
    }
    use glace::outputs::Kind;
    // The pose file and report are this run's results: an existing one is replaced.
    plan.output("--out", &out, Kind::File, true)
        .output("--report", &report_path, Kind::File, true)
        .check()
        .map_err(glace::Error::from)?;
    let localizer = args.networks.open(&args.map, args.clean_global, ransac)?;
    let bar = super::progress_bar(scene.split(SplitKind::Test)?.frames.len() as u64, "localizing");
    let run = localize_scene(&localizer, &scene, SplitKind::Test, false, &mut |_, _, _, _| bar.inc(1))?;
    bar.finish_and_clear();
    glace::write_pose_file(&out, &run.pose_records())?;
    let mut report = run.report_json();
    report["pose_file"] = serde_json::json!(out.display().to_string());
    glace::outputs::write_file(&report_path, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("writing {}", report_path.display()))?;
    let (s, ms) = (&run.summary, run.stage_ms());
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "localized {} test frames ({} failed) in {:.1} s, {:.0} ms per frame (decode {:.0}, encode {:.0}, head {:.0}, RANSAC {:.0}, refinement {:.0})",
            s.frames, s.failed, run.wall_s, run.ms_per_frame(), ms.decode, ms.encode, ms.head, ms.ransac, ms.refine
        );
        println!(
            "median error {:.3}° {:.2} cm; 5cm/5° {:.1} %, 10cm/5° {:.1} %, 2cm/2° {:.1} %",
            s.median_rot_deg,
            s.median_trans_m * 100.0,
            s.pct_5cm_5deg,
            s.pct_10cm_5deg,
            s.pct_2cm_2deg
        );
        println!("poses {}, report {}", out.display(), report_path.display());
    }
    Ok(())
}
