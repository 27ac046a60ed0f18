//! Cambridge Landmarks from the raw download: `dataset_{train,test}.txt` (3 header lines, then
//! `seqX/frameNNNNN.png X Y Z W P Q R`: camera centre and world-to-camera quaternion), focal
//! lengths from `reconstruction.nvm` (names there end in `.jpg`). Images are resized as the
//! reference's setup does: shorter side 480, the other `ceil(480·aspect)`, bilinear without
//! antialiasing; the focal is scaled by the width factor.

use std::path::Path;

use nalgebra::Vector3;

use super::{nvm, read_lines, setup_resize, ImageOp, Plan, PlannedFrame};
use crate::scene::SplitKind;
use crate::text::Calibration;
use crate::DataError;

/// Plans one Cambridge scene folder (e.g. `KingsCollege/`).
pub fn plan(input: &Path, target_height: u32) -> Result<Plan, DataError> {
    let nvm_path = input.join("reconstruction.nvm");
    let cams = nvm::read_cameras(&nvm_path)?;
    let focal_by_png: std::collections::HashMap<String, f64> = cams
        .iter()
        .map(|c| {
            let stem = c.name.strip_suffix(".jpg").unwrap_or(&c.name);
            (format!("{stem}.png"), c.focal)
        })
        .collect();
    let mut plan = Plan { format: "cambridge".into(), ..Default::default() };
    for (split, file) in [(SplitKind::Train, "dataset_train.txt"), (SplitKind::Test, "dataset_test.txt")] {
        let path = input.join(file);
        for (i, line) in read_lines(&path)?.iter().enumerate().skip(3) {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.is_empty() {
                continue;
            }
            if t.len() != 8 {
                return Err(DataError::format(
                    &path,
                    Some(i + 1),
                    format!("{} fields; expected 'seqX/frameNNNNN.png X Y Z W P Q R'", t.len()),
                ));
            }
            let v = super::numbers(&path, i + 1, &t[1..])?;
            let q = super::quaternion([v[3], v[4], v[5], v[6]])
                .ok_or_else(|| DataError::format(&path, Some(i + 1), "invalid quaternion"))?;
            let centre = Vector3::new(v[0], v[1], v[2]);
            let t_w2c = -(q * centre);
            if t_w2c.abs().max() > 10000.0 || !t_w2c.iter().all(|x| x.is_finite()) {
                plan.skipped.push(format!(
                    "{}: translation {:.0} (an outlier, as the reference skips it)",
                    t[0],
                    t_w2c.abs().max()
                ));
                continue;
            }
            let Some(&focal) = focal_by_png.get(t[0]) else {
                plan.skipped.push(format!("{}: not in reconstruction.nvm", t[0]));
                continue;
            };
            let src = input.join(t[0]);
            let (w0, h0) = super::image_size(&src)?;
            let (w, h) = setup_resize(w0, h0, target_height);
            let stem = t[0].trim_end_matches(".png").replace('/', "_");
            plan.frames.push(PlannedFrame {
                split,
                rgb_name: format!("{stem}.png"),
                pose_name: format!("{stem}.txt"),
                calibration_name: format!("{stem}.txt"),
                image: if (w, h) == (w0, h0) {
                    ImageOp::Source(src)
                } else {
                    ImageOp::Resize { src, width: w, height: h }
                },
                pose: super::pose_from_rotation_and_centre(q, centre),
                calibration: Calibration::Focal(focal * w as f64 / w0 as f64),
            });
        }
    }
    Ok(plan)
}
