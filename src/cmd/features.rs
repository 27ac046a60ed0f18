//! `glace features <scene> --global r2former:<ckpt>`: the reference's `extract_features.py` in
//! Rust: one R2Former descriptor per image of each split, written as `<split>/features.npy`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use glace_data::features::write_features;
use glace_data::imageio::load_rgb8;
use glace_data::scene::FEATURES_FILE;
use glace_data::{Scene, SceneOptions};
use glace_nn::r2former::OUT_DIM;

use super::map::GlobalArg;

/// Arguments of `glace features`.
#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// Scene folder: every split present (train, test) gets a features.npy.
    pub scene: PathBuf,
    /// Descriptor source; only r2former:<CVPR23_DeitS_Rerank.pth> writes files.
    #[arg(long)]
    pub global: GlobalArg,
    /// Replace existing features.npy files.
    #[arg(long)]
    pub force: bool,
}

/// Runs `glace features`.
pub fn run(args: &FeaturesArgs) -> anyhow::Result<()> {
    let GlobalArg::R2Former(checkpoint) = &args.global else {
        bail!(glace::Error::usage(
            "--global",
            "only r2former:<checkpoint> descriptors are written to features.npy (builtin ones live in the map)"
        ));
    };
    let scene = Scene::open(
        &args.scene,
        &SceneOptions { probe_images: false, read_features: false, skip_invalid_poses: true, ..Default::default() },
    )?;
    // features.npy is written into the scene it describes; the checkpoint must not be one of them.
    let mut plan = glace::plan().input("--global", checkpoint);
    for split in scene.splits() {
        plan = plan.output("<scene>", &split.dir.join(FEATURES_FILE), glace::outputs::Kind::File, args.force);
    }
    plan.check().map_err(glace::Error::from)?;
    let net = glace_formats::load_r2former(checkpoint)?;
    for split in scene.splits() {
        // One row per rgb file in sorted order, skipped frames included, as the reference.
        let images = split.image_paths()?;
        let bar = super::progress_bar(images.len() as u64, &format!("R2Former {}", split.kind.name()));
        let start = Instant::now();
        let mut data = Vec::with_capacity(images.len() * OUT_DIM);
        for path in &images {
            let rgb = load_rgb8(path)?;
            data.extend(net.encode(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let out = split.dir.join(FEATURES_FILE);
        write_features(&out, images.len(), OUT_DIM, &data).with_context(|| format!("writing {}", out.display()))?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{}: {} descriptors ({} blocks) in {:.1} s ({:.2} images/s)",
            out.display(),
            images.len(),
            net.depth(),
            secs,
            images.len() as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
