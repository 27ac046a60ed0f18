//! The data crate's error type. Every message names the file (and line, where one applies) and
//! says what was expected, because users meet these errors on their own captures.

use std::path::PathBuf;

use glace_geometry::GeometryError;

/// Errors reading or validating a scene, an image or a features file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file system refused (missing file, permissions).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Neither `train/` nor `test/` exists.
    #[error("{}: not a scene: expected train/ and/or test/ folders, each with rgb/, poses/ and calibration/", path.display())]
    NotAScene {
        /// The scene root given.
        path: PathBuf,
    },
    /// A split asked for does not exist in the scene.
    #[error("{}: the scene has no {split} split", path.display())]
    MissingSplit {
        /// The scene root.
        path: PathBuf,
        /// "train" or "test".
        split: String,
    },
    /// A split lacks one of rgb/, poses/, calibration/.
    #[error("{}: missing folder (every split needs rgb/, poses/ and calibration/)", path.display())]
    MissingFolder {
        /// The missing folder.
        path: PathBuf,
    },
    /// rgb/ holds no image.
    #[error("{}: no images (expected .png, .jpg or .jpeg files)", path.display())]
    EmptySplit {
        /// The rgb folder.
        path: PathBuf,
    },
    /// A file in rgb/ that is not a PNG or JPEG by its extension.
    #[error("{}: unsupported file in rgb/ (expected .png, .jpg or .jpeg)", path.display())]
    UnsupportedImageFile {
        /// The file.
        path: PathBuf,
    },
    /// Two files of one folder map to the same frame name.
    #[error("{}: '{first}' and '{second}' both give the frame name '{stem}'", dir.display())]
    DuplicateStem {
        /// The folder.
        dir: PathBuf,
        /// The shared frame name.
        stem: String,
        /// First file name.
        first: String,
        /// Second file name.
        second: String,
    },
    /// rgb/, poses/ and calibration/ do not hold the same frame names.
    #[error("{}: rgb/, poses/ and calibration/ do not pair up by frame name{}", split.display(), unpaired_details(.missing_pose, .missing_calibration, .orphan_poses, .orphan_calibrations))]
    UnpairedFrames {
        /// The split folder.
        split: PathBuf,
        /// Images with no pose file.
        missing_pose: Vec<String>,
        /// Images with no calibration file.
        missing_calibration: Vec<String>,
        /// Pose files with no image.
        orphan_poses: Vec<String>,
        /// Calibration files with no image.
        orphan_calibrations: Vec<String>,
    },
    /// A token that does not parse as a number.
    #[error("{}:{line}: '{token}' is not a number", path.display())]
    BadNumber {
        /// The text file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The offending token.
        token: String,
    },
    /// A pose file without 4×4 numbers.
    #[error("{}: {message}", path.display())]
    PoseShape {
        /// The pose file.
        path: PathBuf,
        /// What was found.
        message: String,
    },
    /// A pose with NaN or infinite entries.
    #[error("{}:{line}: pose holds NaN or infinite values (use --skip-invalid-poses to leave such frames out)", path.display())]
    NonFinitePose {
        /// The pose file.
        path: PathBuf,
        /// 1-based line of the first non-finite value.
        line: usize,
    },
    /// A pose that is not a rigid camera-to-world transform.
    #[error("{}: not a rigid camera-to-world pose: {source}", path.display())]
    InvalidPose {
        /// The pose file.
        path: PathBuf,
        /// What is wrong with the matrix.
        #[source]
        source: GeometryError,
    },
    /// A calibration file with neither 1 nor 9 numbers.
    #[error("{}: calibration must be a single focal length or a 3×3 K (9 numbers), found {count} numbers", path.display())]
    CalibrationShape {
        /// The calibration file.
        path: PathBuf,
        /// How many numbers it holds.
        count: usize,
    },
    /// A calibration with impossible values.
    #[error("{}: {source}", path.display())]
    InvalidCalibration {
        /// The calibration file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: GeometryError,
    },
    /// An image that cannot be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    CorruptImage {
        /// The image.
        path: PathBuf,
        /// Decoder message.
        message: String,
    },
    /// An image that decodes but is not 8-bit gray/RGB.
    #[error("{}: unsupported image: {message}", path.display())]
    UnsupportedImage {
        /// The image.
        path: PathBuf,
        /// What it is.
        message: String,
    },
    /// A features.npy of the wrong type or shape.
    #[error("{}: {message}", path.display())]
    BadFeatures {
        /// The features file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A features.npy whose row count differs from the image count.
    #[error("{}: {rows} rows, but the split has {frames} images in rgb/ (one row per image, in sorted file-name order)", path.display())]
    FeatureCount {
        /// The features file.
        path: PathBuf,
        /// Rows found.
        rows: usize,
        /// Images in rgb/.
        frames: usize,
    },
    /// A features.npy row that is not unit-norm.
    #[error("{}: row {row} has L2 norm {norm}, expected 1 (±1e-3): global descriptors must be L2-normalised", path.display())]
    FeatureNorm {
        /// The features file.
        path: PathBuf,
        /// 0-based row.
        row: usize,
        /// Its norm.
        norm: f32,
    },
    /// A source file of a dataset converter that cannot be read as its format says.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line, where one applies.
        line: Option<usize>,
        /// What was expected and found.
        message: String,
    },
    /// An output folder that already holds files.
    #[error("{}: exists and is not empty (use --force to replace it)", path.display())]
    TargetNotEmpty {
        /// The output folder.
        path: PathBuf,
    },
    /// A distortion.txt that does not hold 4 or 5 coefficients.
    #[error("{}: {message}", path.display())]
    BadDistortion {
        /// The distortion file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn list(names: &[String]) -> String {
    const SHOW: usize = 8;
    let mut s = names.iter().take(SHOW).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(", … ({} in all)", names.len()));
    }
    s
}

fn unpaired_details(mp: &[String], mc: &[String], op: &[String], oc: &[String]) -> String {
    let mut s = String::new();
    for (what, names) in [
        ("images without a pose file", mp),
        ("images without a calibration file", mc),
        ("pose files without an image", op),
        ("calibration files without an image", oc),
    ] {
        if !names.is_empty() {
            s.push_str(&format!("; {what}: {}", list(names)));
        }
    }
    s
}

impl DataError {
    /// A format error at a line of a file.
    pub fn format(path: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        DataError::Format { path: path.into(), line, message: message.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
