//! `glace info <scene>`: validate a scene and print a summary.

use std::path::PathBuf;

use anyhow::Context;
use glace_data::{Scene, SceneOptions, SceneSummary};

/// Arguments of `glace info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Scene folder in the DSAC*/ACE layout (train/ and/or test/ with rgb/, poses/, calibration/).
    pub path: PathBuf,
    /// Leave out frames whose pose is NaN/Inf or not rigid, and list them, instead of failing.
    #[arg(long)]
    pub skip_invalid_poses: bool,
    /// Tolerance on max |RᵀR − I| of pose rotations (rotations are re-orthonormalised).
    #[arg(long, default_value_t = glace_geometry::pose::ORTHONORMAL_TOLERANCE)]
    pub rotation_tolerance: f64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `glace info`.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let options = SceneOptions {
        skip_invalid_poses: args.skip_invalid_poses,
        orthonormal_tolerance: args.rotation_tolerance,
        probe_images: true,
    };
    let scene = Scene::open(&args.path, &options)?;
    let summary = SceneSummary::of(&scene);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).context("serialising the summary")?);
    } else {
        print!("{summary}");
    }
    Ok(())
}
