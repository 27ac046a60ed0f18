//! `glace bench real`: every posed real-capture scene mapped and localized with the defaults, next
//! to what a structure-based localizer (SIFT + COLMAP) achieved on the same splits.

use std::path::{Path, PathBuf};
use std::time::Instant;

use glace::{localize_scene, Localizer, LocalizerOptions, Scene, SceneOptions, SceneRun, SplitKind};
use serde::Serialize;

/// Arguments of `glace bench real`.
#[derive(clap::Args, Debug)]
pub struct BenchRealArgs {
    /// Folder of scenes in the ACE layout (`<scene>/{train,test}/…`); each is mapped and localized
    /// [default: ../shared/data or $GLACE_SHARED/data].
    #[arg(long)]
    pub scenes: Option<PathBuf>,
    /// Only these scenes (comma-separated folder names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The structure-based baseline to compare with [default: <scenes>/baselines.json when present].
    #[arg(long)]
    pub baselines: Option<PathBuf>,
    /// Mapping preset.
    #[arg(long, default_value = "cpu")]
    pub preset: String,
    /// Changes to the preset as a JSON object named like the map log's options, e.g.
    /// '{"iterations": 20000, "buffer_size": 1000000}' (a stated budget is used as given).
    #[arg(long, default_value = "{}")]
    pub options: String,
    /// Keep each scene's map as <DIR>/<scene>.glace (and its log <scene>.json) in this existing
    /// folder, outside the scenes.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Replace maps and logs already in the --keep folder.
    #[arg(long)]
    pub force: bool,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A baseline's figures for one scene (`baselines.json`).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct Baseline {
    median_rot_deg: f64,
    median_trans: f64,
    pct_5cm_5deg: f64,
    mapping_s: f64,
}

/// How the map fits a split's frames under their ground-truth poses.
#[derive(Clone, Debug, Serialize)]
struct Fit {
    /// Median reprojection error of all cells, in the network's pixels.
    median_px: f64,
    /// Share of cells within 2 px.
    pct_2px: f64,
    /// Share of cells within 10 px.
    pct_10px: f64,
}

#[derive(Clone, Debug, Serialize)]
struct SceneResult {
    scene: String,
    train_frames: usize,
    test_frames: usize,
    iterations: usize,
    buffer_size: usize,
    mapping_s: f64,
    /// Of which: global descriptors, filling the buffer, training.
    global_s: f64,
    buffer_s: f64,
    train_s: f64,
    localize_ms_per_frame: f64,
    failed: usize,
    median_rot_deg: f64,
    /// In the scene's units.
    median_trans: f64,
    pct_10cm_5deg: f64,
    pct_5cm_5deg: f64,
    pct_2cm_2deg: f64,
    train_fit: Fit,
    test_fit: Fit,
    baseline: Option<Baseline>,
    /// glace ÷ baseline.
    rot_ratio: Option<f64>,
    trans_ratio: Option<f64>,
}

/// The fit of a localized split: every cell's reprojection under the ground truth, in the pixels
/// the network saw (the map's image height over the image's shorter side).
fn fit(run: &SceneRun, scene: &Scene, image_height: u32) -> anyhow::Result<Fit> {
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

fn is_ace_scene(dir: &Path) -> bool {
    ["train", "test"].iter().all(|s| dir.join(s).join("rgb").is_dir() && dir.join(s).join("poses").is_dir())
}

/// Runs `glace bench real`.
pub fn run(args: &BenchRealArgs) -> anyhow::Result<()> {
    let root = match &args.scenes {
        Some(d) => d.clone(),
        None => glace_data::testing::shared_dir()
            .map(|d| d.join("data"))
            .filter(|p| p.is_dir())
            .ok_or_else(|| glace::Error::usage("--scenes", "../shared/data is not here: name a folder of scenes"))?,
    };
    let changes: serde_json::Value =
        serde_json::from_str(&args.options).map_err(|e| glace::Error::usage("--options", e.to_string()))?;
    let options = glace::options_from_json(&args.preset, &changes)?;
    let entries =
        std::fs::read_dir(&root).map_err(|e| glace::Error::usage("--scenes", format!("{}: {e}", root.display())))?;
    let mut scenes: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_ace_scene(p)).collect();
    scenes.sort();
    if !args.only.is_empty() {
        for name in &args.only {
            if !scenes.iter().any(|p| p.file_name().is_some_and(|n| n == name.as_str())) {
                anyhow::bail!(glace::Error::usage("--only", format!("{name}: no such scene under {}", root.display())));
            }
        }
        scenes.retain(|p| args.only.iter().any(|n| p.file_name().is_some_and(|f| f == n.as_str())));
    }
    if scenes.is_empty() {
        anyhow::bail!(glace::Error::usage("--scenes", format!("{}: no scene in the ACE layout", root.display())));
    }
    let baselines_path = args.baselines.clone().or_else(|| Some(root.join("baselines.json")).filter(|p| p.is_file()));
    let baselines: serde_json::Value = match &baselines_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| glace::Error::usage("--baselines", format!("{}: {e}", p.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| glace::Error::usage("--baselines", format!("{}: {e}", p.display())))?
        }
        None => serde_json::Value::Null,
    };
    // Kept maps must not land in the scenes or overwrite earlier ones: checked before any mapping.
    let kept = |name: &str| args.keep.as_ref().map(|dir| dir.join(format!("{name}.glace")));
    let mut plan = glace::plan().input("--scenes", &root);
    if let Some(p) = &baselines_path {
        plan = plan.input("--baselines", p);
    }
    for map in scenes.iter().filter_map(|d| d.file_name()).filter_map(|n| kept(&n.to_string_lossy())) {
        plan = plan.output("--keep", &map, glace::outputs::Kind::File, args.force).output(
            "--keep",
            &map.with_extension("json"),
            glace::outputs::Kind::File,
            args.force,
        );
    }
    plan.check().map_err(glace::Error::from)?;

    let mut results = Vec::new();
    for dir in &scenes {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let scene = Scene::open(dir, &SceneOptions::default())?;
        eprintln!("{name}: mapping…");
        let t = Instant::now();
        let mapped = glace::map_scene(&scene, &options, &glace::LocalEncoderChoice::XFeat, &mut glace::Silent)?;
        let mapping_s = t.elapsed().as_secs_f64();
        if let Some(map) = kept(&name) {
            mapped.save(&map, None)?;
        }
        let image_height = mapped.report.options.image_height;
        let localizer = Localizer::new(&mapped.map, LocalizerOptions::default())?;
        eprintln!("{name}: mapped in {mapping_s:.0} s; localizing…");
        let test = localize_scene(&localizer, &scene, SplitKind::Test, true, &mut |_, _, _, _| {})?;
        let train = localize_scene(&localizer, &scene, SplitKind::Train, true, &mut |_, _, _, _| {})?;
        let baseline: Option<Baseline> =
            baselines.get("scenes").and_then(|s| s.get(&name)).and_then(|b| serde_json::from_value(b.clone()).ok());
        let s = &test.summary;
        let result = SceneResult {
            scene: name,
            train_frames: mapped.report.frames,
            test_frames: s.frames,
            iterations: mapped.report.budget.iterations,
            buffer_size: mapped.report.budget.buffer_size,
            mapping_s,
            global_s: mapped.report.global_s,
            buffer_s: mapped.report.buffer_s,
            train_s: mapped.report.train_s,
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
        };
        // With --json the rows still show as each scene finishes (the run is long).
        let row = row(&result);
        if args.json {
            eprintln!("{row}");
        } else {
            println!("{row}");
        }
        results.push(result);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "preset": args.preset,
                "options": options,
                "scenes": results,
            }))?
        );
    } else {
        println!(
            "(translations in the scene's units ×100: cm for metric scenes; fit = median reprojection of all cells \
             under the ground truth, network pixels; ratio = glace ÷ baseline)"
        );
    }
    Ok(())
}

fn row(r: &SceneResult) -> String {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "—".into());
    format!(
        "{:<24} {:>3}/{:<3} map {:>5.0} s ({} it, {} buf) | median {:.3}° / {:.3} | 5cm/5° {:5.1} % 2cm/2° {:5.1} % failed {} | \
         fit train {:.1} px ({:.0} % <2 px) test {:.1} px ({:.0} % <2 px) | baseline {} / {} map {} | ratio {} / {}",
        r.scene,
        r.train_frames,
        r.test_frames,
        r.mapping_s,
        r.iterations,
        r.buffer_size,
        r.median_rot_deg,
        100.0 * r.median_trans,
        r.pct_5cm_5deg,
        r.pct_2cm_2deg,
        r.failed,
        r.train_fit.median_px,
        r.train_fit.pct_2px,
        r.test_fit.median_px,
        r.test_fit.pct_2px,
        opt(r.baseline.as_ref().map(|b| b.median_rot_deg), &|v| format!("{v:.3}°")),
        opt(r.baseline.as_ref().map(|b| b.median_trans), &|v| format!("{:.3}", 100.0 * v)),
        opt(r.baseline.as_ref().map(|b| b.mapping_s), &|v| format!("{v:.0} s")),
        opt(r.rot_ratio, &|v| format!("{v:.1}×")),
        opt(r.trans_ratio, &|v| format!("{v:.1}×")),
    )
}
