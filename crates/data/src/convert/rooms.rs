//! Integrated rooms (the reference's `i12.txt`/`i19.txt`): a list of scene folders with their
//! old mean camera centre, `<folder> <mx> <my> <mz>`, placed on a grid of 5 m cells. Room i
//! (0-based) goes to (−5·row, −5·col, 0) with g = ⌈√N⌉, row = i div g, col = i mod g; every pose
//! of the room is translated by (new centre − old mean). The rooms are materialised as one scene
//! whose frame names carry the room folder as prefix; `features.npy` are concatenated when every
//! room has them.

use std::path::Path;

use glace_geometry::CamToWorld;
use nalgebra::Vector3;

use super::{read_lines, ImageOp, Plan, PlannedFrame};
use crate::scene::{Scene, SceneOptions, SplitKind};
use crate::DataError;

/// The grid cell centre of room `i` of `n`.
pub fn room_centre(i: usize, n: usize) -> Vector3<f64> {
    let g = (n as f64).sqrt().ceil() as usize;
    Vector3::new(-5.0 * (i / g) as f64, -5.0 * (i % g) as f64, 0.0)
}

/// Plans the materialisation of a rooms list file.
pub fn plan(list: &Path, options: &SceneOptions) -> Result<Plan, DataError> {
    let base = list.parent().unwrap_or(Path::new("."));
    let mut rooms = Vec::new();
    for (i, line) in read_lines(list)?.iter().enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        if t.len() != 4 {
            return Err(DataError::format(
                list,
                Some(i + 1),
                format!("{} fields; expected '<folder> <mx> <my> <mz>'", t.len()),
            ));
        }
        let v = super::numbers(list, i + 1, &t[1..])?;
        rooms.push((t[0].to_string(), Vector3::new(v[0], v[1], v[2])));
    }
    if rooms.is_empty() {
        return Err(DataError::format(list, None, "lists no room"));
    }
    let mut plan = Plan { format: "rooms".into(), ..Default::default() };
    let n = rooms.len();
    let mut feats: [Option<(Vec<(String, Vec<f32>)>, usize)>; 2] = [Some((Vec::new(), 0)), Some((Vec::new(), 0))];
    for (i, (folder, old_mean)) in rooms.iter().enumerate() {
        let scene = Scene::open(base.join(folder), options)?;
        let shift = room_centre(i, n) - old_mean;
        let prefix = Path::new(folder).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(folder.clone());
        for split in scene.splits() {
            let slot = &mut feats[split.kind as usize];
            if split.features.is_none() {
                *slot = None;
            }
            for f in &split.frames {
                let mut pose: CamToWorld = f.cam_to_world;
                pose.0.translation.vector += shift;
                let rgb_name = format!("{prefix}_{}", f.name);
                if let (Some((rows, dim)), Some(table)) = (slot.as_mut(), split.features.as_ref()) {
                    *dim = table.dim;
                    rows.push((rgb_name.clone(), table.row(f.file_index).to_vec()));
                }
                let pose_name = format!("{prefix}_{}", f.pose_path.file_name().unwrap().to_string_lossy());
                let calibration_name =
                    format!("{prefix}_{}", f.calibration_path.file_name().unwrap().to_string_lossy());
                plan.frames.push(PlannedFrame {
                    split: split.kind,
                    rgb_name,
                    pose_name,
                    calibration_name,
                    image: ImageOp::Source(f.rgb_path.clone()),
                    pose,
                    calibration: f.calibration,
                });
            }
            plan.skipped.extend(split.skipped.iter().map(|s| s.reason.clone()));
        }
    }
    for (k, slot) in feats.into_iter().enumerate() {
        if let Some((mut rows, dim)) = slot {
            if rows.is_empty() {
                continue;
            }
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let dims: Vec<usize> = rows.iter().map(|r| r.1.len()).collect();
            if dims.iter().any(|&d| d != dim) {
                return Err(DataError::format(list, None, "the rooms' features.npy have different descriptor sizes"));
            }
            let split = if k == 0 { SplitKind::Train } else { SplitKind::Test };
            plan.features.push((split, rows.into_iter().flat_map(|r| r.1).collect(), dim));
        }
    }
    plan.notes.push(format!("{n} rooms on a {0}×{0} grid of 5 m cells", (n as f64).sqrt().ceil()));
    Ok(plan)
}
