//! VisualSfM `.nvm` models (Cambridge Landmarks, Aachen): the camera block
//! `name focal qw qx qy qz cx cy cz radial 0`, quaternion = world-to-camera rotation, c = centre.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{UnitQuaternion, Vector3};

use super::read_lines;
use crate::DataError;

/// One NVM camera.
#[derive(Clone, Debug)]
pub struct NvmCamera {
    /// Image name as stored.
    pub name: String,
    /// Focal length in pixels of the original image.
    pub focal: f64,
    /// World-to-camera rotation.
    pub rotation: UnitQuaternion<f64>,
    /// Camera centre.
    pub centre: Vector3<f64>,
    /// Radial distortion coefficient.
    pub radial: f64,
}

/// Reads the cameras of an NVM file (the point block is not needed).
pub fn read_cameras(path: &Path) -> Result<Vec<NvmCamera>, DataError> {
    let lines = read_lines(path)?;
    let mut i = 0;
    while i < lines.len() && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with("NVM")) {
        i += 1;
    }
    let count: usize = lines.get(i).and_then(|l| l.trim().parse().ok()).ok_or_else(|| {
        DataError::format(path, Some(i + 1), "expected the number of cameras after the NVM_V3 header")
    })?;
    // Each camera takes a line: a count beyond the file's lines is caught below, before memory is.
    let mut cams = Vec::with_capacity(count.min(lines.len()));
    for k in 0..count {
        let ln = i + 1 + k;
        let line =
            lines.get(ln).ok_or_else(|| DataError::format(path, None, format!("ends after {k} of {count} cameras")))?;
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 10 {
            return Err(DataError::format(
                path,
                Some(ln + 1),
                format!("{} fields; expected 'name f qw qx qy qz cx cy cz k 0'", t.len()),
            ));
        }
        let v = super::numbers(path, ln + 1, &t[1..10])?;
        let rotation = super::quaternion([v[1], v[2], v[3], v[4]])
            .ok_or_else(|| DataError::format(path, Some(ln + 1), "invalid quaternion"))?;
        cams.push(NvmCamera {
            name: t[0].to_string(),
            focal: v[0],
            rotation,
            centre: Vector3::new(v[5], v[6], v[7]),
            radial: v[8],
        });
    }
    Ok(cams)
}

/// Cameras by name.
pub fn by_name(cams: &[NvmCamera]) -> HashMap<&str, &NvmCamera> {
    cams.iter().map(|c| (c.name.as_str(), c)).collect()
}
