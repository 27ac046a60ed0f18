//! Converters from public datasets and users' captures to the scene layout, as library calls.
//!
//! [`plan`] only reads its input; [`Plan::summary`] says what would be written and
//! [`Plan::execute`] writes the scene under a temporary name, renamed into place when complete.

use std::path::{Path, PathBuf};

pub use glace_data::convert::colmap::ColmapSplit;
pub use glace_data::convert::sevenscenes::PoseVariant;
pub use glace_data::convert::Plan;
use glace_data::convert::{self as dc};
use glace_data::SceneOptions;
use glace_geometry::Intrinsics;

use crate::{Error, Result};

/// The camera of a TUM RGB-D sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum TumCamera {
    /// From the folder name (`freiburg1`, `freiburg2`, `freiburg3`).
    FromName,
    /// A named preset: `fr1`, `fr2` or `fr3` (TUM's calibrated colour cameras with distortion).
    Preset(String),
    /// Given intrinsics, no distortion.
    Intrinsics(Intrinsics),
}

/// What to convert, with each format's options (the reference's defaults in `glace convert --help`).
#[derive(Clone, Debug)]
pub enum Source {
    /// Microsoft 7-Scenes, one raw scene folder.
    SevenScenes {
        /// The scene folder (`TrainSplit.txt`, `TestSplit.txt`, `seq-XX/`).
        input: PathBuf,
        /// Which poses to write.
        poses: PoseVariant,
        /// Leave out frames with invalid poses instead of failing.
        skip_invalid_poses: bool,
    },
    /// Stanford 12-Scenes, one raw room.
    TwelveScenes {
        /// The room folder (`info.txt`, `split.txt`, `data/`).
        input: PathBuf,
        /// Folder of pseudo ground truth.
        pgt_dir: Option<PathBuf>,
        /// Write info.txt's full K instead of the mean focal length.
        full_k: bool,
    },
    /// Cambridge Landmarks, one raw scene.
    Cambridge {
        /// The scene folder.
        input: PathBuf,
        /// Shorter image side after resizing (480).
        height: u32,
    },
    /// Aachen Day-Night.
    Aachen {
        /// The download folder.
        input: PathBuf,
        /// Shorter image side after resizing (480).
        height: u32,
    },
    /// An integrated-rooms list file.
    Rooms {
        /// The list (`<folder> <mx> <my> <mz>` per line).
        input: PathBuf,
    },
    /// A COLMAP sparse model (text or binary).
    Colmap {
        /// The model folder (`sparse/0`).
        input: PathBuf,
        /// The image folder [default: the nearest `images/` beside or above the model].
        images: Option<PathBuf>,
        /// Which images are test images.
        split: ColmapSplit,
    },
    /// A TUM RGB-D sequence.
    Tum {
        /// The sequence folder (`rgb.txt`, `groundtruth.txt`).
        input: PathBuf,
        /// The camera.
        camera: TumCamera,
        /// Every n-th image is a test image (4).
        test_every: usize,
        /// Index of the first test image (2).
        test_offset: usize,
        /// Largest gap between bracketing ground-truth samples, seconds (0.05).
        max_gap: f64,
    },
    /// A NeRF `transforms.json` (instant-ngp, nerfstudio).
    Transforms {
        /// The file.
        input: PathBuf,
        /// Every n-th frame is a test frame (8).
        test_every: usize,
        /// Index of the first test frame (0).
        test_offset: usize,
    },
}

impl Source {
    /// What the conversion reads, by option: the input and any folder or list it names. A
    /// COLMAP model's images folder is included when found next to the model.
    pub fn inputs(&self) -> Vec<(&'static str, PathBuf)> {
        let mut v = Vec::new();
        match self {
            Source::SevenScenes { input, poses, .. } => {
                v.push(("<input>", input.clone()));
                if let PoseVariant::Pgt(d) = poses {
                    v.push(("--pgt-dir", d.clone()));
                }
            }
            Source::TwelveScenes { input, pgt_dir, .. } => {
                v.push(("<input>", input.clone()));
                v.extend(pgt_dir.iter().map(|d| ("--pgt-dir", d.clone())));
            }
            Source::Cambridge { input, .. }
            | Source::Aachen { input, .. }
            | Source::Rooms { input }
            | Source::Tum { input, .. }
            | Source::Transforms { input, .. } => v.push(("<input>", input.clone())),
            Source::Colmap { input, images, split } => {
                v.push(("<input>", input.clone()));
                v.extend(images.clone().or_else(|| find_images(input)).map(|d| ("--images", d)));
                if let ColmapSplit::List(l) = split {
                    v.push(("--test-list", l.clone()));
                }
            }
        }
        v
    }
}

fn find_images(model: &Path) -> Option<PathBuf> {
    model.ancestors().skip(1).take(3).map(|a| a.join("images")).find(|p| p.is_dir())
}

fn every(option: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::usage(option, "0: must be at least 1"));
    }
    Ok(())
}

/// Reads the input and plans the conversion; nothing is written.
pub fn plan(source: &Source) -> Result<Plan> {
    Ok(match source {
        Source::SevenScenes { input, poses, skip_invalid_poses } => {
            dc::sevenscenes::plan(input, poses, *skip_invalid_poses)?
        }
        Source::TwelveScenes { input, pgt_dir, full_k } => dc::twelvescenes::plan(input, pgt_dir.as_deref(), *full_k)?,
        Source::Cambridge { input, height } | Source::Aachen { input, height } => {
            if *height < 16 {
                return Err(Error::usage("--height", format!("{height}: expected at least 16 pixels")));
            }
            if matches!(source, Source::Cambridge { .. }) {
                dc::cambridge::plan(input, *height)?
            } else {
                dc::aachen::plan(input, *height)?
            }
        }
        Source::Rooms { input } => dc::rooms::plan(input, &SceneOptions::default())?,
        Source::Colmap { input, images, split } => {
            if let ColmapSplit::Every { every: n, .. } = split {
                every("--test-every", *n)?;
            }
            let images = images.clone().or_else(|| find_images(input)).ok_or_else(|| {
                Error::usage("--images", format!("no images/ folder found near {}; name it", input.display()))
            })?;
            dc::colmap::plan(input, &images, split)?
        }
        Source::Tum { input, camera, test_every, test_offset, max_gap } => {
            every("--test-every", *test_every)?;
            if !(max_gap.is_finite() && *max_gap > 0.0) {
                return Err(Error::usage("--max-gap", format!("{max_gap}: expected a positive number of seconds")));
            }
            let cam = match camera {
                TumCamera::Intrinsics(k) => (*k, None),
                TumCamera::Preset(c) => dc::tum::preset(c)
                    .ok_or_else(|| Error::usage("--camera", format!("unknown camera '{c}' (fr1, fr2, fr3)")))?,
                TumCamera::FromName => {
                    let name = input.canonicalize().unwrap_or(input.clone()).to_string_lossy().to_lowercase();
                    let preset = ["freiburg1", "freiburg2", "freiburg3"].into_iter().find(|p| name.contains(p));
                    let p = preset.ok_or_else(|| {
                        Error::usage(
                            "--camera",
                            "cannot tell the camera from the folder name: name fr1, fr2 or fr3, or give the intrinsics",
                        )
                    })?;
                    dc::tum::preset(p).expect("known preset")
                }
            };
            dc::tum::plan(input, cam, *test_every, *test_offset, *max_gap)?
        }
        Source::Transforms { input, test_every, test_offset } => {
            every("--test-every", *test_every)?;
            dc::transforms::plan(input, *test_every, *test_offset)?
        }
    })
}

/// Plans and writes the scene to `output` (`force` replaces a non-empty output, `copy` copies
/// source images instead of linking them); `on_frame` runs after each frame is written.
pub fn convert(
    source: &Source,
    output: &Path,
    force: bool,
    copy: bool,
    on_frame: &(dyn Fn() + Sync),
) -> Result<(Plan, PathBuf)> {
    let plan = plan(source)?;
    let out = plan.execute(output, force, copy, on_frame)?;
    Ok((plan, out))
}
