//! `glace localize <scene> <map>`: localize the scene's test images and write a pose file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use glace_data::{Scene, SceneOptions, SplitKind};
use glace_geometry::ransac::RansacConfig;
use glace_geometry::PoseError;
use glace_localize::metrics::{summarize, FrameError};
use glace_localize::pipeline::{localize_frame, Encoders, StageTimes};
use glace_localize::posefile::{write_pose_file, PoseRecord};
use glace_nn::GlaceMap;

/// Arguments of `glace localize`.
#[derive(clap::Args, Debug)]
pub struct LocalizeArgs {
    /// Scene folder (its test/ split is localized).
    pub scene: PathBuf,
    /// Map file written by `glace map`.
    pub map: PathBuf,
    /// Pose file to write [default: poses_<scene>.txt next to the map].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON report with metrics and per-stage timings [default: <out>.json].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Local encoder the map was trained with: xfeat or ace:<path>.
    #[arg(long, default_value = "xfeat")]
    pub encoder: String,
    /// Global descriptor source, only needed to name the R2Former checkpoint of an R2Former
    /// map (r2former:<path>; default: the path recorded in the map)
    #[arg(long)]
    pub global: Option<super::map::GlobalArg>,
    /// RANSAC hypotheses (reference 64; 3200 for Aachen).
    #[arg(long, default_value_t = 64)]
    pub hypotheses: usize,
    /// Inlier threshold in pixels (reference 10).
    #[arg(long, default_value_t = 10.0)]
    pub threshold: f64,
    /// Soft-inlier score scale α (reference 100).
    #[arg(long, default_value_t = 100.0)]
    pub inlier_alpha: f64,
    /// Reprojection-error clamp in pixels (reference 100).
    #[arg(long, default_value_t = 100.0)]
    pub max_pixel_error: f64,
    /// Cap on 4-point draws per hypothesis (reference 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_tries: usize,
    /// Wall-time budget for hypothesis drawing per frame in ms (0: none); a frame that runs out fails.
    #[arg(long, default_value_t = 2000)]
    pub time_budget_ms: u64,
    /// Shorter image side [default: the one the map was trained with; reference 480].
    #[arg(long)]
    pub image_height: Option<u32>,
    /// RANSAC seed.
    #[arg(long, default_value_t = 1305)]
    pub seed: u64,
    /// Feed the head the global descriptor as computed, as the reference does [default: shrunk
    /// to its mean under the map's feature diffusion: ×0.53 for σ = 0.1, as in training].
    #[arg(long)]
    pub clean_global: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `glace localize`.
pub fn run(args: &LocalizeArgs) -> anyhow::Result<()> {
    let scene = Scene::open(&args.scene, &SceneOptions { probe_images: false, ..Default::default() })?;
    let test = scene.split(SplitKind::Test)?;
    let mut map = GlaceMap::load(&args.map)?;
    if args.clean_global {
        map.global_scale = 1.0;
    }
    let encoder = super::map::load_encoder(&args.encoder)?;
    if encoder.identity().weights_sha256 != map.info.local_encoder.weights_sha256 {
        anyhow::bail!(glace_data::DataError::format(
            &args.map,
            None,
            format!(
                "the map was trained with the {} encoder (weights sha256 {}), not the one given",
                map.info.local_encoder.kind, map.info.local_encoder.weights_sha256
            )
        ));
    }
    let r2former = super::map::r2former_for_map(&map, args.global.as_ref())?;
    let image_height = args.image_height.unwrap_or_else(|| map.trained_image_height());
    let encoders = Encoders { local: &encoder, r2former: r2former.as_ref() };
    let ransac = RansacConfig {
        hypotheses: args.hypotheses,
        threshold: args.threshold,
        inlier_alpha: args.inlier_alpha,
        max_pixel_error: args.max_pixel_error,
        max_tries: args.max_tries,
        time_budget: (args.time_budget_ms > 0).then(|| std::time::Duration::from_millis(args.time_budget_ms)),
        seed: args.seed,
        ..Default::default()
    };
    let bar = super::progress_bar(test.frames.len() as u64, "localizing");
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut total = StageTimes::default();
    let start = Instant::now();
    for frame in &test.frames {
        let row = test.global_feature(frame);
        let r = localize_frame(&map, &encoders, frame, scene.distortion, row, image_height, &ransac)?;
        total.decode_s += r.times.decode_s;
        total.encode_s += r.times.encode_s;
        total.head_s += r.times.head_s;
        total.ransac_s += r.times.ransac_s;
        let (pose, inliers) = match &r.result {
            Ok(res) => (Some(res.pose), res.inliers),
            Err(e) => {
                tracing::warn!("{}: {e}", frame.name);
                (None, 0)
            }
        };
        let err = pose.map(|p| PoseError::between(&p.inverse(), &frame.cam_to_world));
        records.push(PoseRecord {
            name: frame.name.clone(),
            pose,
            rot_err_deg: err.map_or(f64::INFINITY, |e| e.rot_deg),
            trans_err_m: err.map_or(f64::INFINITY, |e| e.trans),
            inliers,
        });
        errors.push(FrameError {
            name: frame.name.clone(),
            rot_deg: err.map_or(f64::INFINITY, |e| e.rot_deg),
            trans_m: err.map_or(f64::INFINITY, |e| e.trans),
            ok: pose.is_some(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    let scene_name = scene.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "scene".into());
    let out = args.out.clone().unwrap_or_else(|| args.map.with_file_name(format!("poses_{scene_name}.txt")));
    write_pose_file(&out, &records)?;
    let summary = summarize(&errors);
    let n = records.len().max(1) as f64;
    let mut report = serde_json::to_value(&summary)?;
    report["pose_file"] = serde_json::json!(out.display().to_string());
    report["ms_per_frame"] = serde_json::json!(1000.0 * wall / n);
    report["global_scale"] = serde_json::json!(map.global_scale);
    report["stage_ms_per_frame"] = serde_json::json!({
        "decode": 1000.0 * total.decode_s / n,
        "encode": 1000.0 * total.encode_s / n,
        "head": 1000.0 * total.head_s / n,
        "ransac": 1000.0 * total.ransac_s / n,
    });
    let report_path = args.report.clone().unwrap_or_else(|| out.with_extension("json"));
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("localized {} test frames ({} failed) in {:.1} s, {:.0} ms per frame (decode {:.0}, encode {:.0}, head {:.0}, RANSAC {:.0})",
            summary.frames, summary.failed, wall, 1000.0 * wall / n, 1000.0 * total.decode_s / n, 1000.0 * total.encode_s / n, 1000.0 * total.head_s / n, 1000.0 * total.ransac_s / n);
        println!(
            "median error {:.3}° {:.2} cm; 5cm/5° {:.1} %, 10cm/5° {:.1} %, 2cm/2° {:.1} %",
            summary.median_rot_deg,
            summary.median_trans_m * 100.0,
            summary.pct_5cm_5deg,
            summary.pct_10cm_5deg,
            summary.pct_2cm_2deg
        );
        println!("poses {}, report {}", out.display(), report_path.display());
    }
    Ok(())
}
