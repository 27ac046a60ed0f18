//! NeRF-style `transforms.json` (instant-ngp, nerfstudio): `frames[].file_path` and
//! `transform_matrix` (camera-to-world with OpenGL axes: x right, y up, z backwards), intrinsics
//! `fl_x fl_y cx cy w h` (or `camera_angle_x`) at the top level or per frame, optional `k1 k2 p1 p2`.
//! Axes are converted to OpenCV (x right, y down, z forward): c2w · diag(1, −1, −1, 1).

use std::path::Path;

use glace_geometry::{Distortion, Intrinsics};
use serde_json::Value;

use super::{split_by_index, ImageOp, Plan, PlannedFrame};
use crate::text::Calibration;
use crate::DataError;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// Why a frame's camera cannot be read.
#[derive(Debug, thiserror::Error)]
enum CameraError {
    #[error("{0}")]
    Missing(&'static str),
    #[error(transparent)]
    Invalid(#[from] glace_geometry::GeometryError),
}

fn intrinsics(top: &Value, frame: &Value, size: Option<(u32, u32)>) -> Result<Intrinsics, CameraError> {
    let get = |k: &str| num(frame, k).or_else(|| num(top, k));
    let missing = CameraError::Missing;
    let w = get("w").or(size.map(|s| s.0 as f64)).ok_or(missing("no image width (w)"))?;
    let h = get("h").or(size.map(|s| s.1 as f64)).ok_or(missing("no image height (h)"))?;
    let fx = match get("fl_x") {
        Some(f) => f,
        None => 0.5 * w / (0.5 * get("camera_angle_x").ok_or(missing("neither fl_x nor camera_angle_x"))?).tan(),
    };
    let fy = match get("fl_y") {
        Some(f) => f,
        None => match get("camera_angle_y") {
            Some(a) => 0.5 * h / (0.5 * a).tan(),
            None => fx,
        },
    };
    Ok(Intrinsics::new(fx, fy, get("cx").unwrap_or(w / 2.0), get("cy").unwrap_or(h / 2.0))?)
}

fn distortion(top: &Value, frame: &Value) -> Option<Distortion> {
    let get = |k: &str| num(frame, k).or_else(|| num(top, k)).unwrap_or(0.0);
    let d = Distortion { k1: get("k1"), k2: get("k2"), p1: get("p1"), p2: get("p2"), k3: get("k3") };
    (!d.is_zero()).then_some(d)
}

/// Plans a conversion of `transforms.json` (images relative to its folder).
pub fn plan(json_path: &Path, test_every: usize, test_offset: usize) -> Result<Plan, DataError> {
    let bytes = std::fs::read(json_path).map_err(|e| DataError::io(json_path, e))?;
    let top: Value = serde_json::from_slice(&bytes)
        .map_err(|e| DataError::format(json_path, Some(e.line()), format!("invalid JSON: {e}")))?;
    let frames = top
        .get("frames")
        .and_then(Value::as_array)
        .ok_or_else(|| DataError::format(json_path, None, "no 'frames' array"))?;
    let base = json_path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let bad = |m: String| DataError::format(json_path, None, format!("frames[{i}]: {m}"));
        let file = f.get("file_path").and_then(Value::as_str).ok_or_else(|| bad("no file_path".into()))?;
        let mut src = base.join(file);
        if !src.exists() {
            // Blender-style paths omit the extension.
            for ext in ["png", "jpg", "jpeg"] {
                let cand = base.join(format!("{file}.{ext}"));
                if cand.exists() {
                    src = cand;
                    break;
                }
            }
        }
        if !src.is_file() {
            return Err(bad(format!("image '{}' not found", src.display())));
        }
        let m = f.get("transform_matrix").and_then(Value::as_array).ok_or_else(|| bad("no transform_matrix".into()))?;
        let rows: Vec<Vec<f64>> = m
            .iter()
            .map(|r| r.as_array().map(|r| r.iter().filter_map(Value::as_f64).collect()).unwrap_or_default())
            .collect();
        if rows.len() != 4 || rows.iter().any(|r| r.len() != 4) {
            return Err(bad("transform_matrix must be 4×4 numbers".into()));
        }
        let mut gl = [[0.0; 4]; 4];
        for r in 0..4 {
            for c in 0..4 {
                // OpenGL → OpenCV camera axes: negate the y and z columns.
                gl[r][c] = if c == 1 || c == 2 { -rows[r][c] } else { rows[r][c] };
            }
        }
        let pose = super::c2w_from_rows(json_path, None, gl).map_err(|e| bad(e.to_string()))?;
        let size = super::image_size(&src).ok();
        let k = intrinsics(&top, f, size).map_err(|e| bad(e.to_string()))?;
        items.push((src, pose, k, distortion(&top, f)));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let dist = items.first().and_then(|i| i.3);
    if items.iter().any(|i| i.3 != dist) {
        return Err(DataError::format(
            json_path,
            None,
            "frames have different lens distortion; a scene holds one distortion.txt",
        ));
    }
    let mut plan = Plan { format: "transforms".into(), distortion: dist, ..Default::default() };
    for (i, (src, pose, k, _)) in items.into_iter().enumerate() {
        let rel = src.strip_prefix(base).unwrap_or(&src).to_string_lossy().replace(['/', '\\'], "_");
        let stem = rel.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(rel.clone());
        plan.frames.push(PlannedFrame {
            split: split_by_index(i, test_every, test_offset),
            rgb_name: rel.clone(),
            pose_name: format!("{stem}.txt"),
            calibration_name: format!("{stem}.txt"),
            image: ImageOp::Source(src),
            pose,
            calibration: Calibration::Matrix(k),
        });
    }
    Ok(plan)
}
