//! `glace convert <format> <input> <output_scene>`: public datasets and captures → scene layout.

use std::path::PathBuf;

/// Options shared by every format.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Output scene folder.
    pub output: PathBuf,
    /// Print what would be converted and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace a non-empty output folder.
    #[arg(long)]
    pub force: bool,
    /// Copy source images instead of symlinking them (images that are resized are always written).
    #[arg(long)]
    pub copy: bool,
}

/// Pose variants of 7-Scenes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SevenPoses {
    /// Depth-sensor poses mapped to the RGB sensor ("D-SLAM", the reference's default).
    Calibrated,
    /// Raw depth-sensor poses.
    Original,
    /// SfM pseudo ground truth (needs --pgt-dir).
    Pgt,
}

/// The formats.
#[derive(clap::Subcommand, Debug)]
pub enum Format {
    /// Microsoft 7-Scenes, raw download of one scene (TrainSplit.txt, TestSplit.txt, seq-XX/); focal 525.
    #[command(name = "7scenes")]
    SevenScenes {
        /// The scene folder, e.g. 7scenes_source/chess.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Which poses to write.
        #[arg(long, value_enum, default_value_t = SevenPoses::Calibrated)]
        poses: SevenPoses,
        /// Folder with the pseudo-GT files `<scene>_<train|test>.txt` (for --poses pgt).
        #[arg(long)]
        pgt_dir: Option<PathBuf>,
        /// Leave out frames with NaN/Inf or non-rigid poses instead of failing.
        #[arg(long)]
        skip_invalid_poses: bool,
    },
    /// Stanford 12-Scenes, raw download of one room (info.txt, split.txt, data/); INF poses are skipped.
    #[command(name = "12scenes")]
    TwelveScenes {
        /// The room folder, e.g. apt1/kitchen.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Folder with pseudo-GT files `<apt>_<room>_<train|test>.txt`.
        #[arg(long)]
        pgt_dir: Option<PathBuf>,
        /// Write info.txt's full K instead of the reference's mean focal length.
        #[arg(long)]
        full_k: bool,
    },
    /// Cambridge Landmarks, raw download of one scene (dataset_train.txt, dataset_test.txt, reconstruction.nvm).
    Cambridge {
        /// The scene folder, e.g. KingsCollege.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Shorter image side after resizing.
        #[arg(long, default_value_t = 480)]
        height: u32,
    },
    /// Aachen Day-Night (images_upright/, aachen_cvpr2018_db.nvm/.list.txt, query lists); test poses are placeholders.
    Aachen {
        /// The folder with the downloaded files.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Shorter image side after resizing.
        #[arg(long, default_value_t = 480)]
        height: u32,
    },
    /// Integrated rooms list (`<folder> <mx> <my> <mz>` per line, as i12.txt/i19.txt), materialised as one scene.
    Rooms {
        /// The list file.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// COLMAP sparse model (text or binary): PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV.
    Colmap {
        /// The model folder (e.g. sparse/0).
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Image folder [default: the nearest `images/` beside or above the model].
        #[arg(long)]
        images: Option<PathBuf>,
        /// Every n-th image (sorted by name) is a test image.
        #[arg(long, default_value_t = 8)]
        test_every: usize,
        /// Index of the first test image.
        #[arg(long, default_value_t = 0)]
        test_offset: usize,
        /// File listing the test images by name (overrides --test-every).
        #[arg(long)]
        test_list: Option<PathBuf>,
    },
    /// TUM RGB-D sequence (rgb.txt, groundtruth.txt), poses interpolated at image timestamps.
    Tum {
        /// The sequence folder.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Camera preset fr1, fr2 or fr3 [default: from the folder name].
        #[arg(long)]
        camera: Option<String>,
        /// Intrinsics "fx,fy,cx,cy" (overrides --camera; no distortion).
        #[arg(long)]
        intrinsics: Option<String>,
        /// Every n-th image is a test image.
        #[arg(long, default_value_t = 4)]
        test_every: usize,
        /// Index of the first test image.
        #[arg(long, default_value_t = 2)]
        test_offset: usize,
        /// Largest gap between bracketing ground-truth samples (seconds).
        #[arg(long, default_value_t = 0.05)]
        max_gap: f64,
    },
    /// NeRF transforms.json (instant-ngp, nerfstudio).
    Transforms {
        /// The transforms.json file.
        input: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Every n-th frame (sorted by file) is a test frame.
        #[arg(long, default_value_t = 8)]
        test_every: usize,
        /// Index of the first test frame.
        #[arg(long, default_value_t = 0)]
        test_offset: usize,
    },
}

/// Arguments of `glace convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub format: Format,
}

/// Runs `glace convert`.
pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    use glace::convert::{ColmapSplit, PoseVariant, Source, TumCamera};
    let (source, common): (Source, &Common) = match &args.format {
        Format::SevenScenes { input, common, poses, pgt_dir, skip_invalid_poses } => {
            let poses = match poses {
                SevenPoses::Calibrated => PoseVariant::Calibrated,
                SevenPoses::Original => PoseVariant::Original,
                SevenPoses::Pgt => PoseVariant::Pgt(
                    pgt_dir.clone().ok_or_else(|| glace::Error::usage("--pgt-dir", "--poses pgt needs --pgt-dir"))?,
                ),
            };
            (Source::SevenScenes { input: input.clone(), poses, skip_invalid_poses: *skip_invalid_poses }, common)
        }
        Format::TwelveScenes { input, common, pgt_dir, full_k } => {
            (Source::TwelveScenes { input: input.clone(), pgt_dir: pgt_dir.clone(), full_k: *full_k }, common)
        }
        Format::Cambridge { input, common, height } => {
            (Source::Cambridge { input: input.clone(), height: *height }, common)
        }
        Format::Aachen { input, common, height } => (Source::Aachen { input: input.clone(), height: *height }, common),
        Format::Rooms { input, common } => (Source::Rooms { input: input.clone() }, common),
        Format::Colmap { input, common, images, test_every, test_offset, test_list } => {
            let split = match test_list {
                Some(l) => ColmapSplit::List(l.clone()),
                None => ColmapSplit::Every { every: *test_every, offset: *test_offset },
            };
            (Source::Colmap { input: input.clone(), images: images.clone(), split }, common)
        }
        Format::Tum { input, common, camera, intrinsics, test_every, test_offset, max_gap } => {
            let camera = match (intrinsics, camera) {
                (Some(s), _) => {
                    let bad = |m: String| glace::Error::usage("--intrinsics", m);
                    let v: Vec<f64> = s
                        .split(',')
                        .map(|x| x.trim().parse::<f64>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| bad(format!("'{s}' is not fx,fy,cx,cy")))?;
                    let [fx, fy, cx, cy] = v[..] else {
                        return Err(bad(format!("'{s}' needs 4 numbers")).into());
                    };
                    TumCamera::Intrinsics(glace::Intrinsics::new(fx, fy, cx, cy).map_err(|e| bad(e.to_string()))?)
                }
                (None, Some(c)) => TumCamera::Preset(c.clone()),
                (None, None) => TumCamera::FromName,
            };
            let source = Source::Tum {
                input: input.clone(),
                camera,
                test_every: *test_every,
                test_offset: *test_offset,
                max_gap: *max_gap,
            };
            (source, common)
        }
        Format::Transforms { input, common, test_every, test_offset } => {
            (Source::Transforms { input: input.clone(), test_every: *test_every, test_offset: *test_offset }, common)
        }
    };
    let mut io = glace::outputs::Plan::new();
    for (option, path) in source.inputs() {
        io = io.input(option, &path);
    }
    if !common.dry_run {
        io = io.output("<output>", &common.output, glace::outputs::Kind::Dir, common.force);
    }
    io.check().map_err(glace::Error::from)?;
    let plan = glace::convert::plan(&source)?;
    println!("{}", plan.summary());
    if common.dry_run {
        return Ok(());
    }
    let bar = super::progress_bar(plan.frames.len() as u64, "converting");
    let out = plan.execute(&common.output, common.force, common.copy, &|| bar.inc(1))?;
    bar.finish_and_clear();
    println!("wrote {}", out.display());
    Ok(())
}
