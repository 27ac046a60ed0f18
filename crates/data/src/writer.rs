//! Writing scenes in the DSAC*/ACE layout, atomically: everything goes to a temporary sibling
//! folder that is renamed onto the target only when complete, so a failure or Ctrl-C never leaves
//! a half-written scene behind.

use std::fs;
use std::path::{Path, PathBuf};

use glace_geometry::CamToWorld;
use image::RgbImage;

use crate::scene::SplitKind;
use crate::text::Calibration;
use crate::DataError;

/// Writes `bytes` to `path` under a temporary sibling name first, then swaps it into place
/// ([`glace_outputs::write_file`]), so that a failure never leaves a truncated file where a
/// complete one is expected.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    glace_outputs::write_file(path, bytes)
}

/// Formats a 4×4 camera-to-world pose as four lines of four numbers (12 decimals, as the shared data).
pub fn format_pose(pose: &CamToWorld) -> String {
    let m = pose.to_matrix();
    let mut s = String::new();
    for r in 0..4 {
        let row: Vec<String> = (0..4).map(|c| format!("{:.12}", m[(r, c)] + 0.0)).collect();
        s.push_str(&row.join(" "));
        s.push('\n');
    }
    s
}

/// Formats a calibration file: one focal length, or a 3×3 K.
pub fn format_calibration(c: &Calibration) -> String {
    match c {
        Calibration::Focal(f) => format!("{f}\n"),
        Calibration::Matrix(k) => format!("{} 0 {}\n0 {} {}\n0 0 1\n", k.fx, k.cx, k.fy, k.cy),
    }
}

/// An in-progress scene in a temporary folder.
#[derive(Debug)]
pub struct SceneWriter {
    target: PathBuf,
    tmp: PathBuf,
    force: bool,
    done: bool,
}

impl SceneWriter {
    /// Starts a scene at `target`. Refuses an existing non-empty target unless `force`.
    pub fn create(target: &Path, force: bool) -> Result<Self, DataError> {
        if let Ok(mut entries) = fs::read_dir(target) {
            if entries.next().is_some() && !force {
                return Err(DataError::TargetNotEmpty { path: target.to_path_buf() });
            }
        } else if target.exists() {
            return Err(DataError::TargetNotEmpty { path: target.to_path_buf() });
        }
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        glace_outputs::remove_stale(target);
        let tmp = glace_outputs::temp_sibling(target);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        }
        for split in [SplitKind::Train, SplitKind::Test] {
            for sub in ["rgb", "poses", "calibration"] {
                let d = tmp.join(split.name()).join(sub);
                fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
            }
        }
        Ok(SceneWriter { target: target.to_path_buf(), tmp, force, done: false })
    }

    /// The temporary folder (for extra files such as `scene.json` or `depth/`).
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// Writes a text file relative to the scene root.
    pub fn write_text(&self, relative: &str, text: &str) -> Result<(), DataError> {
        let p = self.tmp.join(relative);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        fs::write(&p, text).map_err(|e| DataError::io(&p, e))
    }

    /// Writes pose and calibration of a frame (`stem.txt`); the image is written separately.
    pub fn write_frame_meta(
        &self,
        split: SplitKind,
        stem: &str,
        pose: &CamToWorld,
        calibration: &Calibration,
    ) -> Result<(), DataError> {
        self.write_text(&format!("{}/poses/{stem}.txt", split.name()), &format_pose(pose))?;
        self.write_text(&format!("{}/calibration/{stem}.txt", split.name()), &format_calibration(calibration))
    }

    /// Writes a PNG image into `rgb/`.
    pub fn write_rgb_png(&self, split: SplitKind, stem: &str, img: &RgbImage) -> Result<(), DataError> {
        let p = self.tmp.join(split.name()).join("rgb").join(format!("{stem}.png"));
        img.save(&p).map_err(|e| DataError::io(&p, std::io::Error::other(e)))
    }

    /// Moves the finished scene onto the target (a split that received no image is removed).
    pub fn finish(mut self) -> Result<PathBuf, DataError> {
        for split in [SplitKind::Train, SplitKind::Test] {
            let dir = self.tmp.join(split.name());
            let empty = fs::read_dir(dir.join("rgb")).map(|mut d| d.next().is_none()).unwrap_or(false);
            if empty {
                fs::remove_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            }
        }
        let occupied = fs::read_dir(&self.target).map(|mut d| d.next().is_some()).unwrap_or(self.target.exists());
        if occupied && !self.force {
            return Err(DataError::TargetNotEmpty { path: self.target.clone() });
        }
        // The old scene is renamed aside and removed only once the new one is in place.
        glace_outputs::replace(&self.tmp, &self.target).map_err(|e| DataError::io(&self.target, e))?;
        self.done = true;
        Ok(self.target.clone())
    }
}

impl Drop for SceneWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}
