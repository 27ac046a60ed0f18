//! Microsoft 7-Scenes from the raw download: `<scene>/{TrainSplit,TestSplit}.txt` naming
//! `sequenceN`, and `seq-0N/frame-XXXXXX.{color.png|color.jpg, pose.txt}` (depth-sensor poses).

use std::path::Path;

use glace_geometry::CamToWorld;
use nalgebra::Matrix4;

use super::{read_lines, ImageOp, Plan, PlannedFrame};
use crate::scene::SplitKind;
use crate::text::{read_pose, Calibration};
use crate::DataError;

/// Focal length ACE/DSAC* use for the colour images.
pub const FOCAL: f64 = 525.0;

/// The Kinect depth-to-RGB extrinsic the reference's setup script uses for the calibrated
/// ("D-SLAM") poses, from the LIRIS Kinect calibration.
pub const DEPTH_TO_RGB: [[f64; 4]; 4] = [
    [9.9996518012567637e-01, 2.6765126468950343e-03, -7.9041012313000904e-03, -2.5558943178152542e-02],
    [-2.7409311281316700e-03, 9.9996302803027592e-01, -8.1504520778013286e-03, 1.0109636268061706e-04],
    [7.8819942130445332e-03, 8.1718328771890631e-03, 9.9993554558014031e-01, 2.0318321729487039e-03],
    [0.0, 0.0, 0.0, 1.0],
];

/// Which poses to write.
#[derive(Clone, Debug, PartialEq)]
pub enum PoseVariant {
    /// RGB-sensor poses: P_depth · (depth→RGB)⁻¹ (the reference's default, "D-SLAM").
    Calibrated,
    /// The raw depth-sensor poses.
    Original,
    /// SfM pseudo ground truth from `<dir>/<scene>_<train|test>.txt` (`name qw qx qy qz tx ty tz f`,
    /// world-to-camera), with its per-frame focal length.
    Pgt(std::path::PathBuf),
}

/// Reads a split file: `sequenceN` per line → `seq-0N`.
pub fn read_split(path: &Path) -> Result<Vec<String>, DataError> {
    let mut seqs = Vec::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let n = l
            .strip_prefix("sequence")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(|| DataError::format(path, Some(i + 1), format!("'{l}' is not 'sequenceN'")))?;
        seqs.push(format!("seq-{n:02}"));
    }
    if seqs.is_empty() {
        return Err(DataError::format(path, None, "lists no sequence"));
    }
    Ok(seqs)
}

/// Camera-to-world with the depth→RGB correction applied.
pub fn depth_pose_to_rgb(p_depth: &CamToWorld) -> CamToWorld {
    let d_to_rgb = Matrix4::from_fn(|r, c| DEPTH_TO_RGB[r][c]);
    let inv = d_to_rgb.try_inverse().expect("the extrinsic is invertible");
    let m = p_depth.to_matrix() * inv;
    CamToWorld::from_matrix(&m, 1e-3).expect("product of rigid transforms is rigid")
}

/// PGT file: `name qw qx qy qz tx ty tz [f]`, world-to-camera, keyed by `seq-01/frame-000000`.
pub(crate) fn read_pgt(path: &Path) -> Result<std::collections::HashMap<String, (CamToWorld, Option<f64>)>, DataError> {
    let mut map = std::collections::HashMap::new();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t[0].starts_with('#') {
            continue;
        }
        if t.len() != 8 && t.len() != 9 {
            return Err(DataError::format(
                path,
                Some(i + 1),
                format!("{} columns, expected 'name qw qx qy qz tx ty tz [f]'", t.len()),
            ));
        }
        let v = super::numbers(path, i + 1, &t[1..])?;
        let q = super::quaternion([v[0], v[1], v[2], v[3]])
            .ok_or_else(|| DataError::format(path, Some(i + 1), "invalid quaternion"))?;
        let w2c = glace_geometry::WorldToCam(nalgebra::Isometry3::from_parts(
            nalgebra::Translation3::new(v[4], v[5], v[6]),
            q,
        ));
        let key = t[0].split('.').next().unwrap_or(t[0]).to_string();
        map.insert(key, (w2c.inverse(), v.get(7).copied()));
    }
    Ok(map)
}

/// Plans the conversion of one raw 7-Scenes scene folder.
pub fn plan(input: &Path, variant: &PoseVariant, skip_invalid: bool) -> Result<Plan, DataError> {
    let scene_name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut plan = Plan { format: "7scenes".into(), ..Default::default() };
    for (split, file) in [(SplitKind::Train, "TrainSplit.txt"), (SplitKind::Test, "TestSplit.txt")] {
        let split_path = input.join(file);
        let seqs = read_split(&split_path)?;
        let pgt = match variant {
            PoseVariant::Pgt(dir) => Some(read_pgt(&dir.join(format!("{scene_name}_{}.txt", split.name())))?),
            _ => None,
        };
        for seq in seqs {
            let dir = input.join(&seq);
            if !dir.is_dir() {
                return Err(DataError::format(
                    &split_path,
                    None,
                    format!("names {seq}, but {} does not exist", dir.display()),
                ));
            }
            for img in super::color_frames(&dir)? {
                let base = img.split(".color.").next().unwrap_or(&img).to_string();
                let pose_path = dir.join(format!("{base}.pose.txt"));
                let (pose, focal) = match (&pgt, variant) {
                    (Some(map), _) => match map.get(&format!("{seq}/{base}")) {
                        Some((p, f)) => (*p, f.unwrap_or(FOCAL)),
                        None => {
                            plan.skipped.push(format!("{seq}/{base}: not in the PGT file"));
                            continue;
                        }
                    },
                    (None, v) => {
                        let raw = match read_pose(&pose_path, 1e-3) {
                            Ok(p) => p,
                            Err(e @ (DataError::NonFinitePose { .. } | DataError::InvalidPose { .. }))
                                if skip_invalid =>
                            {
                                plan.skipped.push(e.to_string());
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        let p = if *v == PoseVariant::Calibrated { depth_pose_to_rgb(&raw) } else { raw };
                        (p, FOCAL)
                    }
                };
                let stem = format!("{seq}-{base}");
                let ext = if img.ends_with(".jpg") { "jpg" } else { "png" };
                plan.frames.push(PlannedFrame {
                    split,
                    rgb_name: format!("{stem}.color.{ext}"),
                    pose_name: format!("{stem}.pose.txt"),
                    calibration_name: format!("{stem}.calibration.txt"),
                    image: ImageOp::Source(dir.join(&img)),
                    pose,
                    calibration: Calibration::Focal(focal),
                });
            }
        }
    }
    if let PoseVariant::Calibrated = variant {
        plan.notes.push("poses mapped from the depth sensor to the RGB sensor (D-SLAM variant)".into());
    }
    Ok(plan)
}
