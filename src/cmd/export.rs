//! `glace export`: the implicit map as a point cloud; reference-format maps later.

use std::path::PathBuf;

use anyhow::bail;
use glace::{Scene, SceneOptions, SplitKind};

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
        #[arg(long, default_value_t = 5.0, value_parser = super::positive_number)]
        max_error: f64,
        /// Use the test split instead of the training split.
        #[arg(long)]
        test: bool,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        networks: super::localize::NetworkArgs,
    },
    /// Localize a split (test by default) and write it as a COLMAP text model (cameras.txt,
    /// images.txt, points3D.txt): the estimated poses, and as points the cells that reproject
    /// within --max-error px under them. For COLMAP, nerfstudio and 3DGS tools.
    Colmap {
        /// Scene folder.
        scene: PathBuf,
        /// Map file.
        map: PathBuf,
        /// Output model folder (created; replaced only with --force).
        out: PathBuf,
        /// Reprojection threshold in pixels for the points.
        #[arg(long, default_value_t = 5.0, value_parser = super::positive_number)]
        max_error: f64,
        /// Use the training split instead of the test split.
        #[arg(long)]
        train: bool,
        /// Replace an existing output folder.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        networks: super::localize::NetworkArgs,
        #[command(flatten)]
        ransac: super::localize::RansacArgs,
    },
    /// The head as an official GLACE map file (fp16 state dict, torch.save zip) for the
    /// reference's test_ace.py; needs a map trained with the ACE encoder and R2Former descriptors.
    OfficialPt {
        /// Map file.
        map: PathBuf,
        /// Output .pt file.
        out: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `glace export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    match &args.what {
        ExportWhat::Pointcloud { scene, map, out, max_error, test, force, networks } => {
            let plan = glace::plan().input("<scene>", scene).input("<map>", map);
            plan.output("<out>", out, glace::outputs::Kind::File, *force).check().map_err(glace::Error::from)?;
            let scene = Scene::open(scene, &SceneOptions::default())?;
            let split = if *test { SplitKind::Test } else { SplitKind::Train };
            let frames = scene.split(split)?.frames.len();
            let localizer = networks.open(map, false, glace::RansacOptions::default())?;
            let bar = super::progress_bar(frames as u64, "exporting");
            let n = glace::export_pointcloud(&localizer, &scene, split, out, *max_error, &mut |_, _| bar.inc(1))
                .map_err(super::as_flags)?;
            bar.finish_and_clear();
            println!("wrote {n} points to {}", out.display());
            Ok(())
        }
        ExportWhat::Colmap { scene, map, out, max_error, train, force, networks, ransac } => {
            let plan = glace::plan().input("<scene>", scene).input("<map>", map);
            plan.output("<out>", out, glace::outputs::Kind::Dir, *force).check().map_err(glace::Error::from)?;
            let ransac = ransac.options()?;
            let scene = Scene::open(scene, &SceneOptions::default())?;
            let split = if *train { SplitKind::Train } else { SplitKind::Test };
            let frames = scene.split(split)?.frames.len();
            let localizer = networks.open(map, false, ransac)?;
            let bar = super::progress_bar(frames as u64, "localizing");
            let s = glace::export_colmap(&localizer, &scene, split, out, *max_error, *force, &mut |_, _| bar.inc(1))
                .map_err(super::as_flags)?;
            bar.finish_and_clear();
            println!(
                "wrote a COLMAP text model to {}: {} camera(s), {} image(s), {} points{}",
                s.path.display(),
                s.cameras,
                s.images,
                s.points,
                if s.not_localized.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} frame(s) not localized and left out: {}",
                        s.not_localized.len(),
                        s.not_localized.join(", ")
                    )
                }
            );
            Ok(())
        }
        ExportWhat::OfficialPt { map, out, force } => {
            let plan = glace::outputs::Plan::new().input("<map>", map);
            plan.output("<out>", out, glace::outputs::Kind::File, *force).check().map_err(glace::Error::from)?;
            use glace_nn::map::GlobalSource;
            let opened = glace::Map::open(map)?;
            let m = opened.glace_map();
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
            let tensors = glace_formats::pt_write::SaveTensor::from_state_dict(&sd);
            glace_formats::pt_write::save_fp16_state_dict(out, &tensors)?;
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
