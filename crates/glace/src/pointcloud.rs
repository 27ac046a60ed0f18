//! The implicit map as a coloured point cloud (GLACE supplement §4).

use std::path::Path;

use glace_data::{Frame, Scene, SplitKind};
use glace_geometry::Distortion;
use glace_localize::pipeline::Encoders;

pub use glace_localize::pointcloud::ColouredPoint;

use crate::{Error, Localizer, Result};

impl Localizer {
    /// The scene coordinates of a posed frame's cells that reproject within `max_error` pixels
    /// under its ground-truth pose, coloured by the cell's centre pixel.
    pub fn frame_points(
        &self,
        frame: &Frame,
        distortion: Option<Distortion>,
        descriptor: Option<&[f32]>,
        max_error: f64,
    ) -> Result<Vec<ColouredPoint>> {
        let encoders = Encoders {
            local: self.local_encoder(),
            r2former: self.r2former(),
            matmul: self.matmul(),
            keypoints: false,
        };
        Ok(glace_localize::pointcloud::frame_points(
            self.map().glace_map(),
            &encoders,
            frame,
            distortion,
            if self.needs_descriptor() { descriptor } else { None },
            self.image_height(),
            max_error,
        )?)
    }
}

/// Writes the implicit map of a split's frames as binary little-endian PLY (x y z float, red
/// green blue uchar), under a temporary name renamed into place. Returns the number of points.
pub fn export_pointcloud(
    localizer: &Localizer,
    scene: &Scene,
    split: SplitKind,
    out: &Path,
    max_error: f64,
    on_frame: &mut dyn FnMut(usize, usize),
) -> Result<usize> {
    if !(max_error.is_finite() && max_error > 0.0) {
        return Err(Error::usage("max_error", format!("{max_error}: expected a positive number of pixels")));
    }
    // The command line replaces with --force; a library caller names the file it wants replaced.
    crate::check_export(localizer, scene, out, glace_outputs::Kind::File, true)?;
    let data = scene.split(split)?;
    let mut points = Vec::new();
    for (k, f) in data.frames.iter().enumerate() {
        points.extend(localizer.frame_points(f, scene.distortion, data.global_feature(f), max_error)?);
        on_frame(k + 1, data.frames.len());
    }
    glace_localize::pointcloud::write_ply(out, &points)
        .map_err(|e| Error::Write { path: out.to_path_buf(), source: e })?;
    Ok(points.len())
}
