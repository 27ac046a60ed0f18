//! TUM RGB-D sequences: `rgb.txt` (`timestamp rgb/<file>.png`) and `groundtruth.txt`
//! (`timestamp tx ty tz qx qy qz qw`, camera-to-world of the colour camera's optical centre).
//! Each image gets the pose interpolated at its timestamp (linear position, slerp rotation)
//! between the two bracketing ground-truth samples.

use std::path::Path;

use glace_geometry::{CamToWorld, Distortion, Intrinsics};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use super::{read_lines, split_by_index, ImageOp, Plan, PlannedFrame};
use crate::text::Calibration;
use crate::DataError;

/// TUM's published calibration of the freiburg colour cameras: (fx, fy, cx, cy, k1 k2 p1 p2 k3).
pub fn preset(name: &str) -> Option<(Intrinsics, Option<Distortion>)> {
    let (k, d) = match name {
        "fr1" | "freiburg1" => ((517.3, 516.5, 318.6, 255.3), Some([0.2624, -0.9531, -0.0054, 0.0026, 1.1633])),
        "fr2" | "freiburg2" => ((520.9, 521.0, 325.1, 249.7), Some([0.2312, -0.7849, -0.0033, -0.0001, 0.9172])),
        "fr3" | "freiburg3" => ((535.4, 539.2, 320.1, 247.6), None),
        _ => return None,
    };
    Some((Intrinsics { fx: k.0, fy: k.1, cx: k.2, cy: k.3 }, d.map(|d| Distortion::from_coeffs(&d).expect("5 finite"))))
}

struct Sample {
    t: f64,
    pos: Vector3<f64>,
    rot: UnitQuaternion<f64>,
}

fn read_groundtruth(path: &Path) -> Result<Vec<Sample>, DataError> {
    let mut out = Vec::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t[0].starts_with('#') {
            continue;
        }
        if t.len() != 8 {
            return Err(DataError::format(
                path,
                Some(i + 1),
                format!("{} fields; expected 'timestamp tx ty tz qx qy qz qw'", t.len()),
            ));
        }
        let v = super::numbers(path, i + 1, &t)?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(DataError::format(path, Some(i + 1), "NaN or infinite value"));
        }
        let rot = super::quaternion([v[7], v[4], v[5], v[6]])
            .ok_or_else(|| DataError::format(path, Some(i + 1), "zero quaternion"))?;
        out.push(Sample { t: v[0], pos: Vector3::new(v[1], v[2], v[3]), rot });
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    if out.len() < 2 {
        return Err(DataError::format(path, None, "fewer than 2 ground-truth samples"));
    }
    Ok(out)
}

/// Interpolated pose at `t`, if bracketing samples lie within `max_gap` seconds.
fn interpolate(gt: &[Sample], t: f64, max_gap: f64) -> Option<CamToWorld> {
    let j = gt.partition_point(|s| s.t <= t);
    if j == 0 || j == gt.len() {
        // Outside the range: accept only an exact end sample.
        let s = if j == 0 { &gt[0] } else { &gt[gt.len() - 1] };
        return ((s.t - t).abs() < 1e-9).then(|| CamToWorld(Isometry3::from_parts(Translation3::from(s.pos), s.rot)));
    }
    let (a, b) = (&gt[j - 1], &gt[j]);
    if b.t - a.t > max_gap {
        return None;
    }
    let w = if b.t > a.t { (t - a.t) / (b.t - a.t) } else { 0.0 };
    let pos = a.pos + (b.pos - a.pos) * w;
    let rot = a.rot.slerp(&b.rot, w);
    Some(CamToWorld(Isometry3::from_parts(Translation3::from(pos), rot)))
}

/// Plans a TUM sequence folder. Every `test_every`-th image (from `test_offset`) is a test image.
pub fn plan(
    input: &Path,
    camera: (Intrinsics, Option<Distortion>),
    test_every: usize,
    test_offset: usize,
    max_gap: f64,
) -> Result<Plan, DataError> {
    let gt = read_groundtruth(&input.join("groundtruth.txt"))?;
    let rgb_list = input.join("rgb.txt");
    let mut plan = Plan { format: "tum".into(), distortion: camera.1, ..Default::default() };
    let mut index = 0;
    for (i, line) in read_lines(&rgb_list)?.iter().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t[0].starts_with('#') {
            continue;
        }
        if t.len() != 2 {
            return Err(DataError::format(&rgb_list, Some(i + 1), "expected 'timestamp filename'"));
        }
        let ts: f64 = t[0]
            .parse()
            .map_err(|_| DataError::format(&rgb_list, Some(i + 1), format!("'{}' is not a timestamp", t[0])))?;
        let Some(pose) = interpolate(&gt, ts, max_gap) else {
            plan.skipped.push(format!("{}: no ground truth within {max_gap} s", t[1]));
            continue;
        };
        let src = input.join(t[1]);
        let ext = src.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "png".into());
        let stem = t[0].replace('.', "_");
        plan.frames.push(PlannedFrame {
            split: split_by_index(index, test_every, test_offset),
            rgb_name: format!("{stem}.{ext}"),
            pose_name: format!("{stem}.txt"),
            calibration_name: format!("{stem}.txt"),
            image: ImageOp::Source(src),
            pose,
            calibration: Calibration::Matrix(camera.0),
        });
        index += 1;
    }
    Ok(plan)
}
