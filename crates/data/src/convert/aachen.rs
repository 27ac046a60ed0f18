//! Aachen Day-Night from its raw layout: database images (`aachen_cvpr2018_db.list.txt`) posed by
//! `aachen_cvpr2018_db.nvm`, queries from `{day,night}_time_queries_with_intrinsics.txt`
//! (`name SIMPLE_RADIAL w h f cx cy k`), images under `images_upright/`. As the reference: images
//! are undistorted (database with −k, the NVM's approximate inverse; queries with +k; principal
//! point at the image centre), resized to shorter side 480 and saved as JPEG; test poses are
//! identity placeholders, and the split is marked so `glace eval` refuses to score it.
//!
//! One deliberate difference: database cameras are matched to NVM rows by name, not by position
//! in the list file (which the reference assumes to agree).

use std::path::Path;

use glace_geometry::{CamToWorld, Intrinsics};

use super::{nvm, read_lines, setup_resize, ImageOp, Plan, PlannedFrame};
use crate::scene::SplitKind;
use crate::text::Calibration;
use crate::DataError;

fn frame(
    split: SplitKind,
    name: &str,
    src: &Path,
    f: f64,
    k1: f64,
    pose: CamToWorld,
    target: u32,
) -> Result<PlannedFrame, DataError> {
    let (w0, h0) = super::image_size(src)?;
    let (w, h) = setup_resize(w0, h0, target);
    let k = Intrinsics { fx: f, fy: f, cx: w0 as f64 / 2.0, cy: h0 as f64 / 2.0 };
    let flat = name.replace('/', "_");
    let stem = flat.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap_or(flat.clone());
    Ok(PlannedFrame {
        split,
        rgb_name: format!("{stem}.jpg"),
        pose_name: format!("{stem}.txt"),
        calibration_name: format!("{stem}.txt"),
        image: ImageOp::UndistortResize { src: src.to_path_buf(), k, k1, width: w, height: h },
        pose,
        calibration: Calibration::Focal(f * w as f64 / w0 as f64),
    })
}

/// Plans the Aachen conversion from the folder holding the downloaded files.
pub fn plan(input: &Path, target_height: u32) -> Result<Plan, DataError> {
    let images = input.join("images_upright");
    let cams = nvm::read_cameras(&input.join("aachen_cvpr2018_db.nvm"))?;
    let by_name = nvm::by_name(&cams);
    let list = input.join("aachen_cvpr2018_db.list.txt");
    let mut plan = Plan { format: "aachen".into(), dummy_test_poses: true, ..Default::default() };
    for (i, line) in read_lines(&list)?.iter().enumerate() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(cam) = by_name.get(name) else {
            return Err(DataError::format(
                &list,
                Some(i + 1),
                format!("'{name}' is not a camera of aachen_cvpr2018_db.nvm"),
            ));
        };
        let pose = super::pose_from_rotation_and_centre(cam.rotation, cam.centre);
        plan.frames.push(frame(
            SplitKind::Train,
            name,
            &images.join(name),
            cam.focal,
            -cam.radial,
            pose,
            target_height,
        )?);
    }
    for file in ["day_time_queries_with_intrinsics.txt", "night_time_queries_with_intrinsics.txt"] {
        let path = input.join(file);
        for (i, line) in read_lines(&path)?.iter().enumerate() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.is_empty() {
                continue;
            }
            if t.len() != 8 || t[1] != "SIMPLE_RADIAL" {
                return Err(DataError::format(&path, Some(i + 1), "expected 'name SIMPLE_RADIAL w h f cx cy k'"));
            }
            let v = super::numbers(&path, i + 1, &t[2..])?;
            let identity = CamToWorld(nalgebra::Isometry3::identity());
            plan.frames.push(frame(SplitKind::Test, t[0], &images.join(t[0]), v[2], v[5], identity, target_height)?);
        }
    }
    plan.notes.push("database cameras matched to NVM rows by name (the reference uses list position)".into());
    Ok(plan)
}
