//! `glace export`: the implicit map as a point cloud; reference-format maps later.

use std::path::PathBuf;

use anyhow::{bail, Context};
use glace_data::{Scene, SceneOptions, SplitKind};
use glace_localize::pipeline::Encoders;
use glace_localize::pointcloud::{frame_points, write_ply};
use glace_nn::GlaceMap;

/// Arguments of `glace export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

/// What to export.
#[derive(clap::Subcommand, Debug)]
pub enum ExportWhat {
    /// Predicted scene coordinates of the training images that reproject within --max-error px under
    /// the ground-truth pose, coloured by the cell's centre pixel, as binary PLY (GLACE supplement §4).
    Pointcloud {
        /// Scene folder.
        scene: PathBuf,
        /// Map file.
        map: PathBuf,
        /// Output .ply file.
        out: PathBuf,
        /// Reprojection threshold in pixels.
        #[arg(long, default_value_t = 5.0)]
        max_error: f64,
        /// Use the test split instead of the training split.
        #[arg(long)]
        test: bool,
        /// Local encoder the map was trained with: xfeat or ace:<path>.
        #[arg(long, default_value = "xfeat")]
        encoder: String,
        /// Shorter image side (reference 480).
        #[arg(long, default_value_t = 480)]
        image_height: u32,
        /// R2Former checkpoint of an R2Former map (r2former:<path>; default: recorded in the map).
        #[arg(long)]
        global: Option<super::map::GlobalArg>,
    },
    /// A map file the reference's test_ace.py can load (not available yet).
    OfficialPt {
        /// Map file.
        map: PathBuf,
        /// Output .pt file.
        out: PathBuf,
    },
}

/// Runs `glace export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    match &args.what {
        ExportWhat::Pointcloud { scene, map, out, max_error, test, encoder, image_height, global } => {
            let scene = Scene::open(scene, &SceneOptions { probe_images: false, ..Default::default() })?;
            let split = scene.split(if *test { SplitKind::Test } else { SplitKind::Train })?;
            let map = GlaceMap::load(map)?;
            let encoder = super::map::load_encoder(encoder)?;
            let r2former = super::map::r2former_for_map(&map, global.as_ref())?;
            let encoders = Encoders { local: &encoder, r2former: r2former.as_ref() };
            let bar = super::progress_bar(split.frames.len() as u64, "exporting");
            let mut points = Vec::new();
            for f in &split.frames {
                points.extend(frame_points(
                    &map,
                    &encoders,
                    f,
                    scene.distortion,
                    split.global_feature(f),
                    *image_height,
                    *max_error,
                )?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            write_ply(out, &points).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} points to {}", points.len(), out.display());
            Ok(())
        }
        ExportWhat::OfficialPt { .. } => bail!("`glace export official-pt` is not available in this build yet"),
    }
}
