//! Stanford 12-Scenes from the raw download: `<room>/info.txt` (colour intrinsics),
//! `<room>/split.txt` (the first `frames=N` frames are test), `<room>/data/frame-XXXXXX.{color.jpg,
//! pose.txt}`. Frames whose pose holds `INF` are reported and skipped, as the reference does.

use std::path::Path;

use glace_geometry::Intrinsics;

use super::{read_lines, ImageOp, Plan, PlannedFrame};
use crate::scene::SplitKind;
use crate::text::{read_pose, Calibration};
use crate::DataError;

/// The colour intrinsics of `info.txt` (`m_calibrationColorIntrinsic`, a row-major 4×4).
pub fn read_info(path: &Path) -> Result<Intrinsics, DataError> {
    for (i, line) in read_lines(path)?.iter().enumerate() {
        if let Some(rest) = line.trim().strip_prefix("m_calibrationColorIntrinsic") {
            let rest = rest.trim_start().trim_start_matches('=');
            let tokens: Vec<&str> = rest.split_whitespace().collect();
            let v = super::numbers(path, i + 1, &tokens)?;
            if v.len() != 16 {
                return Err(DataError::format(
                    path,
                    Some(i + 1),
                    format!("m_calibrationColorIntrinsic has {} numbers, expected 16", v.len()),
                ));
            }
            return Intrinsics::new(v[0], v[5], v[2], v[6])
                .map_err(|e| DataError::format(path, Some(i + 1), e.to_string()));
        }
    }
    Err(DataError::format(path, None, "no m_calibrationColorIntrinsic line"))
}

/// The number of test frames from `split.txt` (`sequence0 [frames=N] ...` on the first line).
pub fn read_split(path: &Path) -> Result<usize, DataError> {
    let lines = read_lines(path)?;
    let first = lines.first().map(String::as_str).unwrap_or("");
    first
        .split_once("frames=")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            DataError::format(path, Some(1), format!("expected 'sequence0 [frames=N] ...', found '{first}'"))
        })
}

/// Plans one 12-Scenes room (`input` = e.g. `apt1/kitchen`). `pgt`: folder with
/// `<apt>_<room>_<train|test>.txt`. `full_k`: write info.txt's K instead of the reference's mean focal.
pub fn plan(input: &Path, pgt: Option<&Path>, full_k: bool) -> Result<Plan, DataError> {
    let k = read_info(&input.join("info.txt"))?;
    let n_test = read_split(&input.join("split.txt"))?;
    let data = input.join("data");
    let images = super::color_frames(&data)?;
    let pgt_maps = match pgt {
        Some(dir) => {
            let room = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let apt = input
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let load = |s: &str| super::sevenscenes_pgt(&dir.join(format!("{apt}_{room}_{s}.txt")));
            Some((load("train")?, load("test")?))
        }
        None => None,
    };
    let calibration = if full_k { Calibration::Matrix(k) } else { Calibration::Focal((k.fx + k.fy) / 2.0) };
    let mut plan = Plan { format: "12scenes".into(), ..Default::default() };
    if pgt.is_some() && !full_k {
        plan.notes.push("calibration is info.txt's mean focal, as the reference writes it also for PGT poses".into());
    }
    for (i, img) in images.iter().enumerate() {
        let split = if i < n_test { SplitKind::Test } else { SplitKind::Train };
        let base = img.split(".color.").next().unwrap_or(img).to_string();
        let pose = match &pgt_maps {
            Some((train, test)) => {
                let map = if split == SplitKind::Test { test } else { train };
                match map.get(&format!("data/{base}")) {
                    Some((p, _)) => *p,
                    None => {
                        plan.skipped.push(format!("{base}: not in the PGT file"));
                        continue;
                    }
                }
            }
            None => match read_pose(&data.join(format!("{base}.pose.txt")), 1e-3) {
                Ok(p) => p,
                Err(e @ (DataError::NonFinitePose { .. } | DataError::InvalidPose { .. })) => {
                    plan.skipped.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        plan.frames.push(PlannedFrame {
            split,
            rgb_name: img.clone(),
            pose_name: format!("{base}.pose.txt"),
            calibration_name: format!("{base}.calibration.txt"),
            image: ImageOp::Source(data.join(img)),
            pose,
            calibration,
        });
    }
    Ok(plan)
}
