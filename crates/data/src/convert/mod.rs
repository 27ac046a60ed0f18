//! Converters from public datasets and users' captures to the DSAC*/ACE layout.
//!
//! Every converter only *reads* its input and returns a [`Plan`]: the frames with their poses,
//! calibrations and how to produce each image. [`Plan::summary`] is the `--dry-run` output;
//! [`Plan::execute`] writes the scene into a temporary folder and renames it into place when
//! complete, so a failed conversion leaves nothing behind.

pub mod aachen;
pub mod cambridge;
pub mod colmap;
pub mod imageops;
pub mod nvm;
pub mod rooms;
pub mod sevenscenes;
pub mod transforms;
pub mod tum;
pub mod twelvescenes;

use std::path::{Path, PathBuf};

use glace_geometry::{CamToWorld, Distortion, Intrinsics, WorldToCam};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rayon::prelude::*;

use crate::features::write_features;
use crate::scene::{SplitKind, DISTORTION_FILE, DUMMY_POSES_MARKER, FEATURES_FILE};
use crate::text::Calibration;
use crate::writer::{format_calibration, format_pose, SceneWriter};
use crate::DataError;

/// How to produce one output image.
#[derive(Clone, Debug)]
pub enum ImageOp {
    /// Use the source file as it is (symbolic link, or copy with `--copy`).
    Source(PathBuf),
    /// Resize with OpenCV-style bilinear interpolation (no antialiasing) and save as PNG.
    Resize {
        /// Source image.
        src: PathBuf,
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
    /// Remove radial distortion k1 (OpenCV `undistort`, same K), then resize; saved as JPEG.
    UndistortResize {
        /// Source image.
        src: PathBuf,
        /// Intrinsics of the source image.
        k: Intrinsics,
        /// Radial coefficient.
        k1: f64,
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
}

/// One frame of the output scene.
#[derive(Clone, Debug)]
pub struct PlannedFrame {
    /// Train or test.
    pub split: SplitKind,
    /// File name in rgb/.
    pub rgb_name: String,
    /// File name in poses/.
    pub pose_name: String,
    /// File name in calibration/.
    pub calibration_name: String,
    /// How to make the image.
    pub image: ImageOp,
    /// Camera-to-world pose.
    pub pose: CamToWorld,
    /// Calibration of the output image.
    pub calibration: Calibration,
}

/// A conversion, ready to be summarised or executed.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Input format name.
    pub format: String,
    /// Output frames.
    pub frames: Vec<PlannedFrame>,
    /// Lens distortion shared by all frames.
    pub distortion: Option<Distortion>,
    /// Global features per split (rows in output rgb order, dimension).
    pub features: Vec<(SplitKind, Vec<f32>, usize)>,
    /// Test poses are placeholders (Aachen): mark the split so `eval` refuses it.
    pub dummy_test_poses: bool,
    /// Frames left out, with reasons.
    pub skipped: Vec<String>,
    /// Remarks for the user.
    pub notes: Vec<String>,
}

impl Plan {
    /// Frames per split.
    pub fn count(&self, split: SplitKind) -> usize {
        self.frames.iter().filter(|f| f.split == split).count()
    }

    /// Human-readable summary (`--dry-run`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} train / {} test frames",
            self.format,
            self.count(SplitKind::Train),
            self.count(SplitKind::Test)
        );
        if let Some(d) = &self.distortion {
            s.push_str(&format!("\ndistortion k1 {} k2 {} p1 {} p2 {} k3 {}", d.k1, d.k2, d.p1, d.p2, d.k3));
        }
        if self.dummy_test_poses {
            s.push_str("\ntest poses are placeholders (identity): `glace eval` will refuse to score them");
        }
        for n in &self.notes {
            s.push_str(&format!("\nnote: {n}"));
        }
        if !self.skipped.is_empty() {
            s.push_str(&format!("\nskipped {} frame(s):", self.skipped.len()));
            for k in self.skipped.iter().take(20) {
                s.push_str(&format!("\n  {k}"));
            }
            if self.skipped.len() > 20 {
                s.push_str(&format!("\n  … and {} more", self.skipped.len() - 20));
            }
        }
        s
    }

    /// Writes the scene. `copy` copies source images instead of linking them.
    pub fn execute(
        &self,
        out: &Path,
        force: bool,
        copy: bool,
        on_frame: &(dyn Fn() + Sync),
    ) -> Result<PathBuf, DataError> {
        if self.frames.is_empty() {
            return Err(DataError::format(out, None, "the conversion found no frames to write"));
        }
        let writer = SceneWriter::create(out, force)?;
        self.frames.par_iter().try_for_each(|f| -> Result<(), DataError> {
            let split = f.split.name();
            writer.write_text(&format!("{split}/poses/{}", f.pose_name), &format_pose(&f.pose))?;
            writer.write_text(
                &format!("{split}/calibration/{}", f.calibration_name),
                &format_calibration(&f.calibration),
            )?;
            let dst = writer.dir().join(split).join("rgb").join(&f.rgb_name);
            produce_image(&f.image, &dst, copy)?;
            on_frame();
            Ok(())
        })?;
        if let Some(d) = &self.distortion {
            let text = format!(
                "# OpenCV radial-tangential model on normalised coordinates: k1 k2 p1 p2 k3\n{} {} {} {} {}\n",
                d.k1, d.k2, d.p1, d.p2, d.k3
            );
            writer.write_text(DISTORTION_FILE, &text)?;
        }
        for (split, data, dim) in &self.features {
            let p = writer.dir().join(split.name()).join(FEATURES_FILE);
            write_features(&p, data.len() / dim, *dim, data).map_err(|e| DataError::io(&p, e))?;
        }
        if self.dummy_test_poses {
            writer.write_text(
                &format!("test/{DUMMY_POSES_MARKER}"),
                "The test poses of this scene are identity placeholders (no public ground truth).\n",
            )?;
        }
        writer.finish()
    }
}

fn produce_image(op: &ImageOp, dst: &Path, copy: bool) -> Result<(), DataError> {
    match op {
        ImageOp::Source(src) => {
            let abs = src.canonicalize().map_err(|e| DataError::io(src, e))?;
            if copy {
                std::fs::copy(&abs, dst).map(|_| ()).map_err(|e| DataError::io(src, e))
            } else {
                symlink(&abs, dst)
            }
        }
        ImageOp::Resize { src, width, height } => {
            let img = crate::imageio::load_rgb8(src)?;
            let out = imageops::resize_linear(&img, *width, *height);
            out.save_with_format(dst, image::ImageFormat::Png).map_err(|e| DataError::io(dst, std::io::Error::other(e)))
        }
        ImageOp::UndistortResize { src, k, k1, width, height } => {
            let img = crate::imageio::load_rgb8(src)?;
            let und = imageops::undistort_radial(&img, k, *k1);
            let out = imageops::resize_linear(&und, *width, *height);
            let mut file = std::io::BufWriter::new(std::fs::File::create(dst).map_err(|e| DataError::io(dst, e))?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95)
                .encode_image(&out)
                .map_err(|e| DataError::io(dst, std::io::Error::other(e)))
        }
    }
}

#[cfg(unix)]
fn symlink(src: &Path, dst: &Path) -> Result<(), DataError> {
    std::os::unix::fs::symlink(src, dst).map_err(|e| DataError::io(dst, e))
}

#[cfg(not(unix))]
fn symlink(src: &Path, dst: &Path) -> Result<(), DataError> {
    std::fs::copy(src, dst).map(|_| ()).map_err(|e| DataError::io(dst, e))
}

pub(crate) use sevenscenes::read_pgt as sevenscenes_pgt;

/// The sorted `frame-XXXXXX.color.{png,jpg}` files of a 7-/12-Scenes folder (at least one).
pub(crate) fn color_frames(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".color.png") || n.ends_with(".color.jpg"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DataError::format(dir, None, "no frame-XXXXXX.color.png/.jpg images"));
    }
    Ok(names)
}

/// Reads a text file as lines (CRLF tolerated).
pub(crate) fn read_lines(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

/// Parses whitespace-separated numbers of a line, naming the line on failure.
pub(crate) fn numbers(path: &Path, line: usize, tokens: &[&str]) -> Result<Vec<f64>, DataError> {
    tokens
        .iter()
        .map(|t| t.parse::<f64>().map_err(|_| DataError::format(path, Some(line), format!("'{t}' is not a number"))))
        .collect()
}

/// A rotation from a quaternion (w, x, y, z), normalised; error if zero or non-finite.
pub(crate) fn quaternion(q: [f64; 4]) -> Option<UnitQuaternion<f64>> {
    let quat = nalgebra::Quaternion::new(q[0], q[1], q[2], q[3]);
    let n = quat.norm();
    (n.is_finite() && n > 1e-12).then(|| UnitQuaternion::from_quaternion(quat))
}

/// World-to-camera pose [R | −R·c] from a world-to-camera rotation and a camera centre.
pub(crate) fn pose_from_rotation_and_centre(r_w2c: UnitQuaternion<f64>, centre: Vector3<f64>) -> CamToWorld {
    let t = -(r_w2c * centre);
    WorldToCam(Isometry3::from_parts(Translation3::from(t), r_w2c)).inverse()
}

/// Camera-to-world from a validated 4×4 (rows) matrix.
pub(crate) fn c2w_from_rows(path: &Path, line: Option<usize>, m: [[f64; 4]; 4]) -> Result<CamToWorld, DataError> {
    let mm = nalgebra::Matrix4::from_fn(|r, c| m[r][c]);
    CamToWorld::from_matrix(&mm, 1e-3).map_err(|e| DataError::format(path, line, format!("not a rigid pose: {e}")))
}

/// Every `every`-th frame (starting at `offset`) goes to test; `every == 0` puts all in train.
pub fn split_by_index(index: usize, every: usize, offset: usize) -> SplitKind {
    if every > 0 && index % every == offset % every {
        SplitKind::Test
    } else {
        SplitKind::Train
    }
}

/// The image size of a file (header only).
pub(crate) fn image_size(path: &Path) -> Result<(u32, u32), DataError> {
    crate::imageio::probe(path)
}

/// Output size of the reference's Cambridge/Aachen resizing: shorter side 480, the other
/// `ceil(480 · aspect)`.
pub fn setup_resize(w: u32, h: u32, target: u32) -> (u32, u32) {
    let aspect = h as f64 / w as f64;
    if aspect > 1.0 {
        (target, (target as f64 * aspect).ceil() as u32)
    } else {
        ((target as f64 / aspect).ceil() as u32, target)
    }
}
