//! COLMAP sparse models, text (`cameras.txt`, `images.txt`) or binary (`cameras.bin`,
//! `images.bin`). Camera models PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV.
//! COLMAP's pixel convention (centre of the top-left pixel at (0.5, 0.5)) is ours; its poses are
//! world-to-camera. Distortion must be shared by all cameras (one `distortion.txt` per scene).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use glace_geometry::{Distortion, Intrinsics, WorldToCam};
use nalgebra::{Isometry3, Translation3};

use super::{read_lines, split_by_index, ImageOp, Plan, PlannedFrame};
use crate::scene::SplitKind;
use crate::text::Calibration;
use crate::DataError;

/// A COLMAP camera: model name and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapCamera {
    /// Model name.
    pub model: String,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Parameters in COLMAP's order.
    pub params: Vec<f64>,
}

/// A COLMAP image: pose and camera.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapImage {
    /// Quaternion (w, x, y, z), world-to-camera.
    pub q: [f64; 4],
    /// Translation, world-to-camera.
    pub t: [f64; 3],
    /// Camera id.
    pub camera_id: u32,
    /// Image file name relative to the images folder.
    pub name: String,
}

/// Parameter count of a model, by name.
pub fn param_count(model: &str) -> Option<usize> {
    Some(match model {
        "SIMPLE_PINHOLE" => 3,
        "PINHOLE" => 4,
        "SIMPLE_RADIAL" => 4,
        "RADIAL" => 5,
        "OPENCV" => 8,
        _ => return None,
    })
}

const SUPPORTED: &str =
    "PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV (undistort others with `colmap image_undistorter`)";

/// Why a COLMAP camera cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CameraModelError {
    /// A model glace does not read (named, with its binary id where it came from one).
    #[error("camera model {0} is not supported; supported: {SUPPORTED}")]
    Unsupported(String),
    /// Parameters that cannot describe a camera.
    #[error(transparent)]
    Invalid(#[from] glace_geometry::GeometryError),
}

/// Model name of a binary model id (supported ones; others report their id).
pub fn model_name(id: i32) -> Result<&'static str, CameraModelError> {
    let unsupported = |name: &str| Err(CameraModelError::Unsupported(format!("{name} (model id {id})")));
    Ok(match id {
        0 => "SIMPLE_PINHOLE",
        1 => "PINHOLE",
        2 => "SIMPLE_RADIAL",
        3 => "RADIAL",
        4 => "OPENCV",
        5 => return unsupported("OPENCV_FISHEYE"),
        6 => return unsupported("FULL_OPENCV"),
        7 => return unsupported("FOV"),
        8 => return unsupported("SIMPLE_RADIAL_FISHEYE"),
        9 => return unsupported("RADIAL_FISHEYE"),
        10 => return unsupported("THIN_PRISM_FISHEYE"),
        _ => return unsupported("unknown"),
    })
}

/// Intrinsics and distortion of a camera.
pub fn camera_model(c: &ColmapCamera) -> Result<(Intrinsics, Option<Distortion>), CameraModelError> {
    let p = &c.params;
    let (k, d) = match c.model.as_str() {
        "SIMPLE_PINHOLE" => ((p[0], p[0], p[1], p[2]), None),
        "PINHOLE" => ((p[0], p[1], p[2], p[3]), None),
        "SIMPLE_RADIAL" => ((p[0], p[0], p[1], p[2]), Some([p[3], 0.0, 0.0, 0.0, 0.0])),
        "RADIAL" => ((p[0], p[0], p[1], p[2]), Some([p[3], p[4], 0.0, 0.0, 0.0])),
        "OPENCV" => ((p[0], p[1], p[2], p[3]), Some([p[4], p[5], p[6], p[7], 0.0])),
        other => return Err(CameraModelError::Unsupported(other.to_string())),
    };
    let k = Intrinsics::new(k.0, k.1, k.2, k.3)?;
    let d = d.map(|d| Distortion::from_coeffs(&d)).transpose()?.filter(|d| !d.is_zero());
    Ok((k, d))
}

/// Reads `cameras.txt`.
pub fn read_cameras_txt(path: &Path) -> Result<BTreeMap<u32, ColmapCamera>, DataError> {
    let mut cams = BTreeMap::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t[0].starts_with('#') {
            continue;
        }
        let bad = |m: String| DataError::format(path, Some(i + 1), m);
        if t.len() < 4 {
            return Err(bad("expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]'".into()));
        }
        let id: u32 = t[0].parse().map_err(|_| bad(format!("camera id '{}' is not an integer", t[0])))?;
        let model = t[1].to_string();
        let n = param_count(&model)
            .ok_or_else(|| bad(format!("camera model {model} is not supported; supported: {SUPPORTED}")))?;
        let width = t[2].parse().map_err(|_| bad(format!("width '{}' is not an integer", t[2])))?;
        let height = t[3].parse().map_err(|_| bad(format!("height '{}' is not an integer", t[3])))?;
        let params = super::numbers(path, i + 1, &t[4..])?;
        if params.len() != n {
            return Err(bad(format!("{model} takes {n} parameters, found {}", params.len())));
        }
        cams.insert(id, ColmapCamera { model, width, height, params });
    }
    Ok(cams)
}

/// Reads `images.txt` (two lines per image; the second, the 2D points, may be empty).
pub fn read_images_txt(path: &Path) -> Result<Vec<ColmapImage>, DataError> {
    let lines = read_lines(path)?;
    let mut images = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with('#') || (line.is_empty() && images.is_empty()) {
            i += 1;
            continue;
        }
        if line.is_empty() {
            i += 1;
            continue;
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        let bad = |m: String| DataError::format(path, Some(i + 1), m);
        if t.len() < 10 {
            return Err(bad(format!("{} fields; expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'", t.len())));
        }
        let v = super::numbers(path, i + 1, &t[1..8])?;
        let camera_id = t[8].parse().map_err(|_| bad(format!("camera id '{}' is not an integer", t[8])))?;
        images.push(ColmapImage {
            q: [v[0], v[1], v[2], v[3]],
            t: [v[4], v[5], v[6]],
            camera_id,
            name: t[9..].join(" "),
        });
        i += 2; // skip the points line
    }
    Ok(images)
}

struct Bin<'a> {
    path: &'a Path,
    data: Vec<u8>,
    pos: usize,
}

impl Bin<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DataError> {
        let end = self.pos.saturating_add(N);
        let bytes = self.data.get(self.pos..end).ok_or_else(|| {
            DataError::format(self.path, None, format!("truncated at byte {} (file has {})", self.pos, self.data.len()))
        })?;
        self.pos = end;
        Ok(bytes.try_into().expect("length checked"))
    }
    fn u64(&mut self) -> Result<u64, DataError> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn i32(&mut self) -> Result<i32, DataError> {
        self.take::<4>().map(i32::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, DataError> {
        self.take::<8>().map(f64::from_le_bytes)
    }
    fn cstr(&mut self) -> Result<String, DataError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DataError::format(self.path, None, "unterminated image name"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
    fn open(path: &Path) -> Result<Bin<'_>, DataError> {
        let mut data = Vec::new();
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut data)).map_err(|e| DataError::io(path, e))?;
        Ok(Bin { path, data, pos: 0 })
    }
}

/// Reads `cameras.bin`.
pub fn read_cameras_bin(path: &Path) -> Result<BTreeMap<u32, ColmapCamera>, DataError> {
    let mut b = Bin::open(path)?;
    let n = b.u64()?;
    let mut cams = BTreeMap::new();
    for _ in 0..n {
        let id = b.i32()? as u32;
        let model_id = b.i32()?;
        let model = model_name(model_id).map_err(|m| DataError::format(path, None, format!("camera {id}: {m}")))?;
        let width = b.u64()?;
        let height = b.u64()?;
        let params = (0..param_count(model).expect("supported model")).map(|_| b.f64()).collect::<Result<_, _>>()?;
        cams.insert(id, ColmapCamera { model: model.into(), width, height, params });
    }
    Ok(cams)
}

/// Reads `images.bin`.
pub fn read_images_bin(path: &Path) -> Result<Vec<ColmapImage>, DataError> {
    let mut b = Bin::open(path)?;
    let n = b.u64()?;
    let mut images = Vec::new();
    for _ in 0..n {
        let _id = b.i32()?;
        let q = [b.f64()?, b.f64()?, b.f64()?, b.f64()?];
        let t = [b.f64()?, b.f64()?, b.f64()?];
        let camera_id = b.i32()? as u32;
        let name = b.cstr()?;
        let points = b.u64()?;
        let skip = points.checked_mul(24).and_then(|s| usize::try_from(s).ok());
        if skip.is_none_or(|s| s > b.data.len() - b.pos) {
            return Err(DataError::format(path, None, format!("truncated in the 2D points of image '{name}'")));
        }
        b.pos += skip.expect("checked above");
        images.push(ColmapImage { q, t, camera_id, name });
    }
    Ok(images)
}

/// Reads a model folder, text or binary.
pub fn read_model(dir: &Path) -> Result<(BTreeMap<u32, ColmapCamera>, Vec<ColmapImage>), DataError> {
    if dir.join("cameras.bin").exists() && dir.join("images.bin").exists() {
        Ok((read_cameras_bin(&dir.join("cameras.bin"))?, read_images_bin(&dir.join("images.bin"))?))
    } else if dir.join("cameras.txt").exists() {
        Ok((read_cameras_txt(&dir.join("cameras.txt"))?, read_images_txt(&dir.join("images.txt"))?))
    } else {
        Err(DataError::format(
            dir,
            None,
            "not a COLMAP model: expected cameras.bin + images.bin or cameras.txt + images.txt",
        ))
    }
}

/// How to split a COLMAP model.
#[derive(Clone, Debug)]
pub enum ColmapSplit {
    /// Every n-th image by sorted name (from `offset`) is a test image.
    Every {
        /// Period.
        every: usize,
        /// Offset.
        offset: usize,
    },
    /// The images named in this file (one per line) are test images.
    List(PathBuf),
}

/// Plans a COLMAP conversion: `model` holds the sparse model, `images` the image files.
pub fn plan(model: &Path, images: &Path, split: &ColmapSplit) -> Result<Plan, DataError> {
    let (cams, mut imgs) = read_model(model)?;
    imgs.sort_by(|a, b| a.name.cmp(&b.name));
    let test_names: Option<HashSet<String>> = match split {
        ColmapSplit::List(p) => {
            Some(read_lines(p)?.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
        }
        ColmapSplit::Every { .. } => None,
    };
    let mut plan = Plan { format: "colmap".into(), ..Default::default() };
    let mut distortion: Option<Option<Distortion>> = None;
    for (i, im) in imgs.iter().enumerate() {
        let cam = cams.get(&im.camera_id).ok_or_else(|| {
            DataError::format(
                model,
                None,
                format!("image '{}' uses camera {} which the model lacks", im.name, im.camera_id),
            )
        })?;
        let (k, d) =
            camera_model(cam).map_err(|m| DataError::format(model, None, format!("camera {}: {m}", im.camera_id)))?;
        match &distortion {
            None => distortion = Some(d),
            Some(prev) if *prev != d => {
                return Err(DataError::format(
                    model,
                    None,
                    "cameras have different lens distortion, but a scene holds one distortion.txt; undistort first with `colmap image_undistorter`",
                ))
            }
            _ => {}
        }
        let q = super::quaternion(im.q)
            .ok_or_else(|| DataError::format(model, None, format!("image '{}': invalid quaternion", im.name)))?;
        let w2c = WorldToCam(Isometry3::from_parts(Translation3::new(im.t[0], im.t[1], im.t[2]), q));
        let split_kind = match (&test_names, split) {
            (Some(names), _) => {
                if names.contains(&im.name) {
                    SplitKind::Test
                } else {
                    SplitKind::Train
                }
            }
            (None, ColmapSplit::Every { every, offset }) => split_by_index(i, *every, *offset),
            (None, ColmapSplit::List(_)) => unreachable!("list read above"),
        };
        let src = images.join(&im.name);
        if !src.is_file() {
            return Err(DataError::format(images, None, format!("image '{}' of the model is missing", im.name)));
        }
        let flat = im.name.replace(['/', '\\'], "_");
        let stem = flat.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(flat.clone());
        plan.frames.push(PlannedFrame {
            split: split_kind,
            rgb_name: flat.clone(),
            pose_name: format!("{stem}.txt"),
            calibration_name: format!("{stem}.txt"),
            image: ImageOp::Source(src),
            pose: w2c.inverse(),
            calibration: Calibration::Matrix(k),
        });
    }
    plan.distortion = distortion.flatten();
    Ok(plan)
}
