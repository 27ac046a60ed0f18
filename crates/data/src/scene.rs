//! Scenes in the DSAC*/ACE layout:
//! `<scene>/{train,test}/{rgb,poses,calibration}/`, optional `features.npy` per split and an
//! optional `distortion.txt` at the root.
//!
//! Unlike the reference, which pairs the three folders by sorted position, frames are paired by
//! name (file name without extension and without a `.color`/`.pose`/`.calibration` modality
//! suffix, so 7-Scenes' `frame-000000.color.png` pairs with `frame-000000.pose.txt`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glace_geometry::pose::ORTHONORMAL_TOLERANCE;
use glace_geometry::{CamToWorld, Camera, Distortion};

use crate::features::GlobalFeatures;
use crate::imageio::{has_image_extension, load_rgb8, probe};
use crate::text::{read_calibration, read_distortion, read_pose, Calibration};
use crate::DataError;

/// Modality suffixes stripped before pairing (7-Scenes and 12-Scenes naming).
const MODALITY_SUFFIXES: [&str; 5] = [".color", ".pose", ".calibration", ".depth", ".rgb"];

/// Name of the global-feature file inside a split.
pub const FEATURES_FILE: &str = "features.npy";
/// A file in a split folder marking its poses as placeholders (Aachen's test identities):
/// evaluation refuses to score such a split.
pub const DUMMY_POSES_MARKER: &str = "DUMMY_POSES";
/// Name of the optional distortion file at the scene root.
pub const DISTORTION_FILE: &str = "distortion.txt";

/// How strictly to read a scene.
#[derive(Clone, Debug)]
pub struct SceneOptions {
    /// Leave out frames whose pose is NaN/Inf or not rigid (reported in [`Split::skipped`]) instead of failing.
    pub skip_invalid_poses: bool,
    /// Tolerance on max |RᵀR − I| of pose rotations.
    pub orthonormal_tolerance: f64,
    /// Read every image header (size, pixel type, corrupt files) while opening.
    pub probe_images: bool,
    /// Read and check `features.npy` (off when it is about to be rewritten).
    pub read_features: bool,
}

impl Default for SceneOptions {
    fn default() -> Self {
        SceneOptions {
            skip_invalid_poses: false,
            orthonormal_tolerance: ORTHONORMAL_TOLERANCE,
            probe_images: true,
            read_features: true,
        }
    }
}

/// Which half of a scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Mapping images.
    Train,
    /// Query images with ground truth.
    Test,
}

impl SplitKind {
    /// Folder name.
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::Train => "train",
            SplitKind::Test => "test",
        }
    }
}

impl std::fmt::Display for SplitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One posed, calibrated image.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The rgb file name (what pose files report).
    pub name: String,
    /// The pairing key shared by the three files.
    pub stem: String,
    /// Position in the sorted rgb/ listing, i.e. the row in `features.npy`.
    pub file_index: usize,
    /// The image file.
    pub rgb_path: PathBuf,
    /// The pose file.
    pub pose_path: PathBuf,
    /// The calibration file.
    pub calibration_path: PathBuf,
    /// Ground-truth pose.
    pub cam_to_world: CamToWorld,
    /// Calibration of the stored image.
    pub calibration: Calibration,
    /// (width, height) of the stored image, when probed.
    pub image_size: Option<(u32, u32)>,
    /// The pixels, for frames that live in memory rather than in `rgb_path`.
    pub pixels: Option<Arc<image::RgbImage>>,
}

impl Frame {
    /// A frame whose image is held in memory (mapping from frames a program already has).
    /// `name` stands in for the file name in logs and pose files; `index` is its row in a
    /// descriptor table.
    pub fn in_memory(
        name: impl Into<String>,
        index: usize,
        image: image::RgbImage,
        cam_to_world: CamToWorld,
        calibration: Calibration,
    ) -> Frame {
        let name = name.into();
        let size = image.dimensions();
        Frame {
            stem: name.clone(),
            rgb_path: PathBuf::from(&name),
            pose_path: PathBuf::new(),
            calibration_path: PathBuf::new(),
            name,
            file_index: index,
            cam_to_world,
            calibration,
            image_size: Some(size),
            pixels: Some(Arc::new(image)),
        }
    }

    /// The frame's image as 8-bit RGB: decoded from `rgb_path`, or a copy of the pixels held in memory.
    pub fn load_rgb(&self) -> Result<image::RgbImage, DataError> {
        match &self.pixels {
            Some(p) => Ok(p.as_ref().clone()),
            None => load_rgb8(&self.rgb_path),
        }
    }
}

/// A frame left out because of an invalid pose.
#[derive(Clone, Debug)]
pub struct SkippedFrame {
    /// The pose file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// One split (train or test) of a scene.
#[derive(Clone, Debug)]
pub struct Split {
    /// Train or test.
    pub kind: SplitKind,
    /// The split folder.
    pub dir: PathBuf,
    /// Valid frames in sorted rgb order.
    pub frames: Vec<Frame>,
    /// Number of images in rgb/ (frames plus skipped ones).
    pub image_count: usize,
    /// `features.npy`, if present.
    pub features: Option<GlobalFeatures>,
    /// Frames left out by `skip_invalid_poses`.
    pub skipped: Vec<SkippedFrame>,
}

impl Split {
    /// Every image of `rgb/` in the sorted order that `features.npy` rows follow (skipped
    /// frames included).
    pub fn image_paths(&self) -> Result<Vec<PathBuf>, DataError> {
        let rgb = self.dir.join("rgb");
        Ok(list_files(&rgb)?.into_iter().map(|n| rgb.join(n)).collect())
    }

    /// Global descriptor of a frame, if the split has `features.npy`.
    pub fn global_feature(&self, frame: &Frame) -> Option<&[f32]> {
        self.features.as_ref().map(|f| f.row(frame.file_index))
    }
}

/// A scene: its splits and optional lens distortion.
#[derive(Clone, Debug)]
pub struct Scene {
    /// The scene folder.
    pub root: PathBuf,
    /// Mapping split.
    pub train: Option<Split>,
    /// Query split.
    pub test: Option<Split>,
    /// Distortion shared by all frames (`distortion.txt`).
    pub distortion: Option<Distortion>,
}

impl Scene {
    /// A scene of frames held in memory: `train` becomes the training split (and `test` the
    /// test split when not empty); `root` names it in messages and map descriptions.
    pub fn in_memory(
        root: impl Into<PathBuf>,
        train: Vec<Frame>,
        test: Vec<Frame>,
        distortion: Option<Distortion>,
    ) -> Scene {
        let root = root.into();
        let split = |kind: SplitKind, frames: Vec<Frame>| {
            (!frames.is_empty()).then(|| Split {
                kind,
                dir: root.join(kind.name()),
                image_count: frames.iter().map(|f| f.file_index + 1).max().unwrap_or(0),
                frames,
                features: None,
                skipped: Vec::new(),
            })
        };
        Scene { train: split(SplitKind::Train, train), test: split(SplitKind::Test, test), root, distortion }
    }

    /// Reads and validates a scene (see [`SceneOptions`]).
    pub fn open(root: impl AsRef<Path>, options: &SceneOptions) -> Result<Scene, DataError> {
        let root = root.as_ref().to_path_buf();
        let meta = std::fs::metadata(&root).map_err(|e| DataError::io(&root, e))?;
        if !meta.is_dir() {
            return Err(DataError::NotAScene { path: root });
        }
        let mut splits = [None, None];
        for (slot, kind) in splits.iter_mut().zip([SplitKind::Train, SplitKind::Test]) {
            let dir = root.join(kind.name());
            if dir.is_dir() {
                *slot = Some(read_split(&dir, kind, options)?);
            }
        }
        let [train, test] = splits;
        if train.is_none() && test.is_none() {
            return Err(DataError::NotAScene { path: root });
        }
        let distortion_path = root.join(DISTORTION_FILE);
        let distortion = if distortion_path.exists() { Some(read_distortion(&distortion_path)?) } else { None };
        Ok(Scene { root, train, test, distortion })
    }

    /// A split, or an error naming the scene if it has none of that kind.
    pub fn split(&self, kind: SplitKind) -> Result<&Split, DataError> {
        match kind {
            SplitKind::Train => self.train.as_ref(),
            SplitKind::Test => self.test.as_ref(),
        }
        .ok_or_else(|| DataError::MissingSplit { path: self.root.clone(), split: kind.name().into() })
    }

    /// The splits present, train first.
    pub fn splits(&self) -> impl Iterator<Item = &Split> {
        self.train.iter().chain(self.test.iter())
    }

    /// Camera of a frame as stored on disk (before any resize), with the scene's distortion.
    pub fn camera(&self, frame: &Frame, width: u32, height: u32) -> Camera {
        Camera { intrinsics: frame.calibration.intrinsics(width, height), distortion: self.distortion }
    }
}

/// The pairing key of a file name: extension and modality suffix removed.
pub fn frame_key(file_name: &str) -> &str {
    let base = match file_name.rfind('.') {
        Some(i) if i > 0 => &file_name[..i],
        _ => file_name,
    };
    MODALITY_SUFFIXES.iter().find_map(|s| base.strip_suffix(s).filter(|b| !b.is_empty())).unwrap_or(base)
}

/// Visible plain files of a folder, sorted by name (byte order, as Python sorts paths).
fn list_files(dir: &Path) -> Result<Vec<String>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingFolder { path: dir.to_path_buf() });
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => names.push(name),
            Ok(_) => {}
            // A link to nothing is a file the user meant to be there: say so, not "missing".
            Err(e) => {
                return Err(DataError::io(
                    entry.path(),
                    std::io::Error::new(e.kind(), format!("{e} (a broken symbolic link?)")),
                ))
            }
        }
    }
    names.sort();
    Ok(names)
}

fn keyed(dir: &Path, names: &[String]) -> Result<BTreeMap<String, String>, DataError> {
    let mut map = BTreeMap::new();
    for name in names {
        let key = frame_key(name).to_string();
        if let Some(first) = map.insert(key.clone(), name.clone()) {
            return Err(DataError::DuplicateStem { dir: dir.to_path_buf(), stem: key, first, second: name.clone() });
        }
    }
    Ok(map)
}

fn only_in(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.iter().filter(|(k, _)| !b.contains_key(*k)).map(|(_, name)| name.clone()).collect()
}

fn read_split(dir: &Path, kind: SplitKind, options: &SceneOptions) -> Result<Split, DataError> {
    let (rgb_dir, pose_dir, calib_dir) = (dir.join("rgb"), dir.join("poses"), dir.join("calibration"));
    let rgb_names = list_files(&rgb_dir)?;
    let pose_names = list_files(&pose_dir)?;
    let calib_names = list_files(&calib_dir)?;
    if let Some(bad) = rgb_names.iter().find(|n| !has_image_extension(Path::new(n))) {
        return Err(DataError::UnsupportedImageFile { path: rgb_dir.join(bad) });
    }
    if rgb_names.is_empty() {
        return Err(DataError::EmptySplit { path: rgb_dir });
    }
    let rgb = keyed(&rgb_dir, &rgb_names)?;
    let poses = keyed(&pose_dir, &pose_names)?;
    let calibs = keyed(&calib_dir, &calib_names)?;
    let unpaired = DataError::UnpairedFrames {
        split: dir.to_path_buf(),
        missing_pose: only_in(&rgb, &poses),
        missing_calibration: only_in(&rgb, &calibs),
        orphan_poses: only_in(&poses, &rgb),
        orphan_calibrations: only_in(&calibs, &rgb),
    };
    if let DataError::UnpairedFrames { missing_pose, missing_calibration, orphan_poses, orphan_calibrations, .. } =
        &unpaired
    {
        if !(missing_pose.is_empty()
            && missing_calibration.is_empty()
            && orphan_poses.is_empty()
            && orphan_calibrations.is_empty())
        {
            return Err(unpaired);
        }
    }

    let mut frames = Vec::with_capacity(rgb_names.len());
    let mut skipped = Vec::new();
    for (file_index, name) in rgb_names.iter().enumerate() {
        let stem = frame_key(name).to_string();
        let pose_path = pose_dir.join(&poses[&stem]);
        let calibration_path = calib_dir.join(&calibs[&stem]);
        let rgb_path = rgb_dir.join(name);
        let cam_to_world = match read_pose(&pose_path, options.orthonormal_tolerance) {
            Ok(p) => p,
            Err(e @ (DataError::NonFinitePose { .. } | DataError::InvalidPose { .. }))
                if options.skip_invalid_poses =>
            {
                tracing::warn!("skipping frame {name}: {e}");
                skipped.push(SkippedFrame { path: pose_path, reason: e.to_string() });
                continue;
            }
            Err(e) => return Err(e),
        };
        let calibration = read_calibration(&calibration_path)?;
        let image_size = if options.probe_images { Some(probe(&rgb_path)?) } else { None };
        frames.push(Frame {
            name: name.clone(),
            stem,
            file_index,
            rgb_path,
            pose_path,
            calibration_path,
            cam_to_world,
            calibration,
            image_size,
            pixels: None,
        });
    }
    let features_path = dir.join(FEATURES_FILE);
    let features = if options.read_features && features_path.exists() {
        Some(GlobalFeatures::read(&features_path, rgb_names.len())?)
    } else {
        None
    };
    Ok(Split { kind, dir: dir.to_path_buf(), frames, image_count: rgb_names.len(), features, skipped })
}

#[cfg(test)]
mod tests {
    use super::frame_key;

    #[test]
    fn pairing_keys() {
        assert_eq!(frame_key("seq-01-frame-000000.color.png"), "seq-01-frame-000000");
        assert_eq!(frame_key("seq-01-frame-000000.pose.txt"), "seq-01-frame-000000");
        assert_eq!(frame_key("frame-000012.calibration.txt"), "frame-000012");
        assert_eq!(frame_key("1311868169_163498.png"), "1311868169_163498");
        assert_eq!(frame_key("img.001.JPG"), "img.001");
        assert_eq!(frame_key("noext"), "noext");
    }
}
