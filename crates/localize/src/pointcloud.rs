//! The implicit map as a point cloud (GLACE supplement §4): the head's scene coordinates for the
//! cells of posed images, kept where they reproject within a threshold under the ground-truth
//! pose, coloured by the cell's centre pixel; written as binary little-endian PLY.

use std::io::Write;
use std::path::Path;

use glace_data::Frame;
use glace_geometry::Distortion;
use glace_nn::GlaceMap;

use crate::pipeline::{predict_frame, Encoders, StageTimes};

/// A coloured point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColouredPoint {
    /// World position.
    pub xyz: [f32; 3],
    /// Colour.
    pub rgb: [u8; 3],
}

/// Scene coordinates of one frame's cells that reproject within `max_error` px under its pose.
pub fn frame_points(
    map: &GlaceMap,
    encoders: &Encoders,
    frame: &Frame,
    distortion: Option<Distortion>,
    global_row: Option<&[f32]>,
    image_height: u32,
    max_error: f64,
) -> Result<Vec<ColouredPoint>, crate::LocalizeError> {
    let pred = predict_frame(map, encoders, frame, global_row, image_height, &mut StageTimes::default())?;
    let errors = pred.reprojection_errors(&frame.cam_to_world, distortion);
    let (p, enc, coords) = (&pred.image, &pred.encoded, &pred.coords_n3);
    let f = &enc.features;
    let mut out = Vec::new();
    for i in 0..f.height {
        for j in 0..f.width {
            let k = (i * f.width + j) * 3;
            if errors[i * f.width + j] >= max_error {
                continue;
            }
            let (u, v) = pred.cell_pixel(i, j);
            let (pu, pv) = ((u as usize).min(p.width - 1), (v as usize).min(p.height - 1));
            let c = &p.rgb_hw3[(pv * p.width + pu) * 3..][..3];
            out.push(ColouredPoint { xyz: [coords[k], coords[k + 1], coords[k + 2]], rgb: [c[0], c[1], c[2]] });
        }
    }
    Ok(out)
}

/// Writes a binary little-endian PLY (x y z float, red green blue uchar) atomically.
pub fn write_ply(path: &Path, points: &[ColouredPoint]) -> std::io::Result<()> {
    glace_outputs::remove_stale(path);
    let tmp = glace_outputs::temp_sibling(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write!(
            f,
            "ply\nformat binary_little_endian 1.0\ncomment glace implicit map\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n",
            points.len()
        )?;
        for p in points {
            for v in p.xyz {
                f.write_all(&v.to_le_bytes())?;
            }
            f.write_all(&p.rgb)?;
        }
        f.flush()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    glace_outputs::replace(&tmp, path)
}
