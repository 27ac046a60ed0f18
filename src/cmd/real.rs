//! `glace bench real`: every posed real-capture scene mapped and localized with the defaults, next
//! to what a structure-based localizer (SIFT + COLMAP) achieved on the same splits.

use std::path::PathBuf;

use glace_bench::real::{ace_scenes, baselines, real_scene, SceneResult};

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
    /// Also the synthetic courtyard of repeated facades (`glace synth outdoor` at its default size
    /// and seed: 400 / 130 frames, 90 × 60 m), rendered once into <cache>/synth/ and kept there
    /// (about 1 min); alone with `--only courtyard`.
    #[arg(long)]
    pub courtyard: bool,
}

/// The default courtyard (`glace synth outdoor`, seed 1, default size) as `bench real --courtyard`
/// runs it: rendered into the cache the first time, reused after (a folder whose scene.json
/// differs from the generator's is refused rather than replaced).
fn courtyard_scene() -> anyhow::Result<PathBuf> {
    let config = glace_synth::SynthConfig::new(glace_synth::Kind::Outdoor);
    let scene = glace_synth::build(&config)?;
    let dir = glace_formats::weights::cache_dir().join("synth").join("courtyard");
    let expected = scene.scene_json();
    match std::fs::read_to_string(dir.join("scene.json")) {
        Ok(found) if found == expected => return Ok(dir),
        Ok(_) => anyhow::bail!(glace::Error::usage(
            "--courtyard",
            format!("{}: a scene of another generator or size; move it away to render the default anew", dir.display())
        )),
        Err(_) => {}
    }
    eprintln!("courtyard: rendering {} frames into {}…", scene.shots.len(), dir.display());
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    scene.write(&dir, false, 0, &|| {})?;
    Ok(dir)
}

/// The scenes in the ACE layout under `--scenes` (default ../shared/data), `--only` those named;
/// the folder and the scenes.
pub fn select_scenes(scenes: Option<&std::path::Path>, only: &[String]) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let root = match scenes {
        Some(d) => d.to_path_buf(),
        None => glace_data::testing::shared_dir()
            .map(|d| d.join("data"))
            .filter(|p| p.is_dir())
            .ok_or_else(|| glace::Error::usage("--scenes", "../shared/data is not here: name a folder of scenes"))?,
    };
    let mut scenes =
        ace_scenes(&root).map_err(|e| glace::Error::usage("--scenes", format!("{}: {e}", root.display())))?;
    if !only.is_empty() {
        for name in only {
            if !scenes.iter().any(|p| p.file_name().is_some_and(|n| n == name.as_str())) {
                anyhow::bail!(glace::Error::usage("--only", format!("{name}: no such scene under {}", root.display())));
            }
        }
        scenes.retain(|p| only.iter().any(|n| p.file_name().is_some_and(|f| f == n.as_str())));
    }
    if scenes.is_empty() {
        anyhow::bail!(glace::Error::usage("--scenes", format!("{}: no scene in the ACE layout", root.display())));
    }
    Ok((root, scenes))
}

/// `--preset` with the `--options` JSON's changes.
pub fn parse_options(preset: &str, options: &str) -> anyhow::Result<glace::MapOptions> {
    let changes: serde_json::Value =
        serde_json::from_str(options).map_err(|e| glace::Error::usage("--options", e.to_string()))?;
    // The JSON names fields; the option that carried them is --options.
    Ok(glace::options_from_json(preset, &changes).map_err(|e| match e {
        glace::Error::Usage { option, message } => glace::Error::usage("--options", format!("{option}: {message}")),
        other => other,
    })?)
}

/// Runs `glace bench real`.
pub fn run(args: &BenchRealArgs) -> anyhow::Result<()> {
    let options = parse_options(&args.preset, &args.options)?;
    let courtyard_only = args.courtyard && args.only.iter().all(|n| n == "courtyard");
    let only: Vec<String> = args.only.iter().filter(|n| n.as_str() != "courtyard").cloned().collect();
    // Scenes and flags are checked before the courtyard is rendered (a minute).
    let (root, mut scenes) = if courtyard_only && !args.only.is_empty() {
        (None, Vec::new())
    } else {
        let (root, scenes) = select_scenes(args.scenes.as_deref(), &only)?;
        (Some(root), scenes)
    };
    let courtyard = args.courtyard.then(courtyard_scene).transpose()?;
    let root =
        root.or_else(|| courtyard.as_ref().and_then(|d| d.parent()).map(|p| p.to_path_buf())).unwrap_or_default();
    scenes.extend(courtyard);
    let baselines_path = args.baselines.clone().or_else(|| Some(root.join("baselines.json")).filter(|p| p.is_file()));
    let baselines_json: serde_json::Value = match &baselines_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| glace::Error::usage("--baselines", format!("{}: {e}", p.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| glace::Error::usage("--baselines", format!("{}: {e}", p.display())))?
        }
        None => serde_json::Value::Null,
    };
    let mut baselines = baselines(&baselines_json);
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
        eprintln!("{name}: mapping and localizing…");
        let result = real_scene(dir, &options, baselines.remove(&name), kept(&name).as_deref())?;
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
