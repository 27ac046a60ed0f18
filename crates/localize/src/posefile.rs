//! The reference's pose file: one line per frame,
//! `frame_name qw qx qy qz tx ty tz r_err_deg t_err_m inlier_count`, where (q, t) is the
//! **world-to-camera** transform. glace writes `nan` for the pose of a frame it could not
//! localize (with inlier count 0); readers treat any non-finite pose as a failure.

use std::path::Path;

use glace_geometry::WorldToCam;

use crate::LocalizeError;

/// One line of a pose file.
#[derive(Clone, Debug, PartialEq)]
pub struct PoseRecord {
    /// The rgb file name of the frame.
    pub name: String,
    /// Estimated world-to-camera pose; `None` for a failed frame.
    pub pose: Option<WorldToCam>,
    /// Rotation error in degrees, if ground truth was known when written.
    pub rot_err_deg: f64,
    /// Translation error in metres.
    pub trans_err_m: f64,
    /// Inliers of the final refinement.
    pub inliers: usize,
}

/// Formats one record.
pub fn format_record(r: &PoseRecord) -> String {
    let (q, t) = match &r.pose {
        Some(p) => p.quaternion_translation(),
        None => ([f64::NAN; 4], [f64::NAN; 3]),
    };
    format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        r.name, q[0], q[1], q[2], q[3], t[0], t[1], t[2], r.rot_err_deg, r.trans_err_m, r.inliers
    )
}

/// Writes a pose file atomically (temporary name, then rename).
pub fn write_pose_file(path: &Path, records: &[PoseRecord]) -> Result<(), LocalizeError> {
    let text: String = records.iter().map(|r| format_record(r) + "\n").collect();
    glace_data::writer::write_file_atomically(path, text.as_bytes())
        .map_err(|e| LocalizeError::Io { path: path.to_path_buf(), source: e })
}

/// Reads a pose file. Blank lines and `#` comments are skipped; the last three columns are
/// optional; a non-finite or zero quaternion marks a failed frame.
pub fn read_pose_file(path: &Path) -> Result<Vec<PoseRecord>, LocalizeError> {
    let text = std::fs::read_to_string(path).map_err(|e| LocalizeError::Io { path: path.to_path_buf(), source: e })?;
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| LocalizeError::PoseFile { path: path.to_path_buf(), line: i + 1, message };
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 8 && cols.len() != 11 {
            return Err(bad(format!(
                "{} columns; expected 'name qw qx qy qz tx ty tz [r_err_deg t_err_m inliers]' (8 or 11)",
                cols.len()
            )));
        }
        let num = |k: usize| {
            cols[k].parse::<f64>().map_err(|_| bad(format!("column {}: '{}' is not a number", k + 1, cols[k])))
        };
        let q = [num(1)?, num(2)?, num(3)?, num(4)?];
        let t = [num(5)?, num(6)?, num(7)?];
        let pose = WorldToCam::from_quaternion_translation(q, t).ok();
        let (rot_err_deg, trans_err_m, inliers) = if cols.len() == 11 {
            let inl = cols[10].parse::<f64>().map_err(|_| bad(format!("column 11: '{}' is not a count", cols[10])))?;
            (num(8)?, num(9)?, inl.max(0.0) as usize)
        } else {
            (f64::NAN, f64::NAN, 0)
        };
        let name = cols[0].to_string();
        if !seen.insert(name.clone()) {
            return Err(bad(format!("frame '{name}' appears twice")));
        }
        records.push(PoseRecord { name, pose, rot_err_deg, trans_err_m, inliers });
    }
    Ok(records)
}
