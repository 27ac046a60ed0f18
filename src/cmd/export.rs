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
        /// Shorter image side [default: the one the map was trained with].
        #[arg(long)]
        image_height: Option<u32>,
        /// R2Former checkpoint of an R2Former map (r2former:<path>; default: recorded in the map).
        #[arg(long)]
        global: Option<super::map::GlobalArg>,
    },
    /// The head as an official GLACE map file (fp16 state dict, torch.save zip) for the
    /// reference's test_ace.py; needs a map trained with the ACE encoder and R2Former descriptors.
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
            let image_height = image_height.unwrap_or_else(|| map.trained_image_height());
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
                    image_height,
                    *max_error,
                )?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            write_ply(out, &points).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} points to {}", points.len(), out.display());
            Ok(())
        }
        ExportWhat::OfficialPt { map, out } => {
            use glace_nn::map::GlobalSource;
            let m = GlaceMap::load(map)?;
            if m.info.local_encoder.kind != "ace" {
                bail!(glace_data::DataError::format(
                    map,
                    None,
                    format!(
                        "was trained with the {} local encoder; the reference's test_ace.py runs the ACE encoder, so only maps trained with --encoder ace:<ace_encoder_pretrained.pt> can be exported",
                        m.info.local_encoder.kind
                    )
                ));
            }
            if m.info.global == GlobalSource::Builtin {
                bail!(glace_data::DataError::format(
                    map,
                    None,
                    "uses glace's built-in global encoder, which the reference cannot compute; map with --global features (R2Former features.npy) or --global r2former:<ckpt>"
                ));
            }
            let sd = m.head.reference_state_dict();
            let tensors: Vec<glace_nn::pt_write::SaveTensor> = sd
                .iter()
                .map(|(name, shape, data)| glace_nn::pt_write::SaveTensor {
                    name: name.clone(),
                    shape: shape.clone(),
                    data,
                })
                .collect();
            glace_nn::pt_write::save_fp16_state_dict(out, &tensors)?;
            let params: usize = sd
                .iter()
                .filter(|(n, _, _)| n.ends_with("weight") || n.ends_with("bias"))
                .map(|(_, _, d)| d.len())
                .sum();
            println!(
                "wrote {} ({} tensors, {} parameters, fp16 as the reference saves maps; centres rounded to fp16 there)",
                out.display(),
                sd.len(),
                params
            );
            Ok(())
        }
    }
}
