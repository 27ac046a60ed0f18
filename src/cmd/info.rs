//! `glace info <scene>`: validate a scene and print a summary.

use std::path::PathBuf;

use anyhow::Context;
use glace_data::{Scene, SceneOptions, SceneSummary};

/// Arguments of `glace info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Scene folder in the DSAC*/ACE layout (train/ and/or test/ with rgb/, poses/, calibration/),
    /// or a map file (glace map, or an official GLACE .pt head).
    pub path: PathBuf,
    /// Leave out frames whose pose is NaN/Inf or not rigid, and list them, instead of failing.
    #[arg(long)]
    pub skip_invalid_poses: bool,
    /// Tolerance on max |RᵀR − I| of pose rotations (rotations are re-orthonormalised).
    #[arg(long, default_value_t = glace_geometry::pose::ORTHONORMAL_TOLERANCE)]
    pub rotation_tolerance: f64,
    /// Decode every image in full (finds truncated or corrupt files); by default only their
    /// headers are read.
    #[arg(long)]
    pub decode_images: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn map_summary(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let map = glace::Map::open(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&map.summary_json())?);
        return Ok(());
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let is_pt = map.format() == glace::MapFormat::ReferencePt;
    let head = &map.glace_map().head;
    let c = head.config;
    println!(
        "map {} ({:.2} MB, {})",
        path.display(),
        size as f64 / 1e6,
        if is_pt { "reference .pt" } else { "glace map" }
    );
    println!(
        "  head           c_in {}, width {}, block width {}, {} extra block(s), {} parameters",
        c.c_in,
        c.channels,
        c.block_channels,
        c.blocks,
        head.params()
    );
    if c.clusters > 1 {
        println!("  position dec.  {} centres", c.clusters);
    } else {
        let m = head.centres[0];
        println!("  mean centre    ({:.3}, {:.3}, {:.3})", m[0], m[1], m[2]);
    }
    println!("  output         {}", if c.homogeneous { "homogeneous (4 channels)" } else { "3 channels" });
    if !is_pt {
        let i = map.description();
        println!(
            "  local encoder  {} ({}-d, weights sha256 {})",
            i.local_encoder.kind,
            i.local_encoder.dim,
            &i.local_encoder.weights_sha256[..12.min(i.local_encoder.weights_sha256.len())]
        );
        println!("  global         {:?}", i.global);
        if map.structure_points() > 0 {
            let at = map.structure_height().map_or(String::new(), |h| format!(", detected at {h} px"));
            println!(
                "  structure      {} triangulated points{at} (poses are refined against them)",
                map.structure_points()
            );
        }
        println!("  training       {}", serde_json::to_string(&i.training)?);
    }
    Ok(())
}

/// Runs `glace info`.
pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    if args.path.is_file() {
        return map_summary(&args.path, args.json);
    }
    let options = SceneOptions {
        skip_invalid_poses: args.skip_invalid_poses,
        orthonormal_tolerance: args.rotation_tolerance,
        probe_images: true,
        read_features: true,
    };
    let scene = Scene::open(&args.path, &options)?;
    let mut decoded = 0;
    if args.decode_images {
        let total: usize = scene.splits().map(|s| s.frames.len()).sum();
        let bar = super::progress_bar(total as u64, "decoding");
        for f in scene.splits().flat_map(|s| &s.frames) {
            f.load_rgb()?;
            decoded += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let summary = SceneSummary::of(&scene);
    let images = if args.decode_images {
        format!("all {decoded} decoded")
    } else {
        "headers read, not decoded (--decode-images decodes every image)".to_string()
    };
    if args.json {
        let mut v = serde_json::to_value(&summary).context("serialising the summary")?;
        v["images_checked"] = serde_json::json!(if args.decode_images { "decoded" } else { "headers" });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{summary}");
        println!("  images checked  {images}");
    }
    Ok(())
}
