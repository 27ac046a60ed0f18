//! `glace demo`: the whole system in one command. Renders a synthetic posed scene, maps it with the
//! CPU preset, localizes its test frames, scores them and writes plots and the implicit map's point
//! cloud. Each step is an ordinary glace command, printed before it runs, so the demo doubles as
//! a walk-through of the commands a user runs on their own data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use super::synth::KindArg;

/// Arguments of `glace demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output folder (scene/, map.glace, poses, plots, point cloud).
    #[arg(default_value = "glace-demo")]
    pub out: PathBuf,
    /// Scene kind: desk (default: an orbit around a furnished room centre), room (the whole room,
    /// looking outward), rooms (8 rooms furnished alike around their tables), outdoor.
    #[arg(long, value_enum, default_value_t = KindArg::Desk)]
    pub kind: KindArg,
    /// Training frames [default: per kind].
    #[arg(long)]
    pub frames: Option<usize>,
    /// Test frames [default: per kind].
    #[arg(long)]
    pub test_frames: Option<usize>,
    /// Scene seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mapping preset.
    #[arg(long, default_value = "cpu")]
    pub preset: String,
    #[command(flatten)]
    pub budget: super::map::BudgetArgs,
    /// Precision of the networks' matrix products in mapping and localization: auto, fp32 or bf16.
    #[arg(long, default_value = "auto", value_parser = super::map::precision)]
    pub precision: glace::Precision,
    /// Image size WxH of the rendered scene.
    #[arg(long, default_value = "640x480")]
    pub size: String,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// End the output with the evaluation as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `glace demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    args.precision.resolve().map_err(|m| glace::Error::usage("--precision", m))?;
    let out = &args.out;
    let scene = out.join("scene");
    if scene.exists() && !args.force {
        bail!(glace_data::DataError::format(out, None, "already holds a demo; pass --force to replace it"));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let s = |p: PathBuf| p.display().to_string();
    let kind = clap::ValueEnum::to_possible_value(&args.kind).map(|v| v.get_name().to_string()).unwrap_or_default();
    let map = out.join("map.glace");
    let poses = out.join("poses.txt");

    let mut synth =
        vec!["synth".to_string(), kind, s(scene.clone()), "--force".into(), "--seed".into(), args.seed.to_string()];
    synth.extend(["--contact-sheet".into(), s(out.join("contact_sheet.png")), "--size".into(), args.size.clone()]);
    if let Some(n) = args.frames {
        synth.extend(["--frames".into(), n.to_string()]);
    }
    if let Some(n) = args.test_frames {
        synth.extend(["--test-frames".into(), n.to_string()]);
    }
    let mut mapping = vec![
        "map".to_string(),
        s(scene.clone()),
        s(map.clone()),
        "--force".into(),
        "--preset".into(),
        args.preset.clone(),
    ];
    args.budget.append_to(&mut mapping);
    mapping.extend(["--precision".into(), args.precision.name().into()]);
    let localize = vec![
        "localize".to_string(),
        s(scene.clone()),
        s(map.clone()),
        "--out".into(),
        s(poses.clone()),
        "--precision".into(),
        args.precision.name().into(),
    ];
    let export = vec![
        "export".to_string(),
        "pointcloud".into(),
        s(scene.clone()),
        s(map.clone()),
        s(out.join("pointcloud.ply")),
        "--force".into(),
    ];
    let mut eval =
        vec!["eval".to_string(), s(scene.clone()), s(poses.clone()), "--plot".into(), s(out.join("errors_cdf.png"))];
    if args.json {
        eval.push("--json".into());
    }

    let start = Instant::now();
    for step in [synth, mapping, localize, export, eval] {
        if !args.json || step[0] != "eval" {
            println!("\n==> glace {}", step.join(" "));
        }
        crate::run_args(&step)?;
    }
    if !args.json {
        println!(
            "\ndemo finished in {:.1} min; outputs in {} (contact_sheet.png, map.glace, poses.txt, errors_cdf.png, errors_trajectory.png, pointcloud.ply)",
            start.elapsed().as_secs_f64() / 60.0,
            out.display()
        );
    }
    Ok(())
}
