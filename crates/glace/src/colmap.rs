//! A localization run as a COLMAP text model (`cameras.txt`, `images.txt`, `points3D.txt`), to
//! carry glace's poses and its implicit point cloud into COLMAP, nerfstudio or 3DGS tools.
//!
//! Every localized image becomes a COLMAP image with its world-to-camera pose; the scene
//! coordinates of its cells that reproject within a threshold under that pose become 3D points
//! observed by that image alone (the implicit map has no cross-image tracks). Pixel coordinates
//! follow COLMAP's convention, which is glace's: pixel k covers [k, k + 1).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use glace_data::{Scene, SplitKind};
use glace_geometry::{Camera, WorldToCam};

use crate::localizer::Localization;
use crate::{localize_scene, Error, Localizer, Result};

/// One 3D point seen by one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObservedPoint {
    /// Where the image sees it (pixels of the image as given).
    pub pixel: [f64; 2],
    /// World position.
    pub xyz: [f32; 3],
    /// Colour.
    pub rgb: [u8; 3],
    /// Reprojection error under the image's pose (pixels).
    pub error: f64,
}

/// An image of the model.
#[derive(Clone, Debug)]
pub struct ModelImage {
    /// File name.
    pub name: String,
    /// (width, height).
    pub size: (u32, u32),
    /// K and distortion of the image as given.
    pub camera: Camera,
    /// World-to-camera pose.
    pub world_to_cam: WorldToCam,
    /// The points it sees.
    pub points: Vec<ObservedPoint>,
}

/// What an export wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ColmapSummary {
    /// The model folder.
    pub path: PathBuf,
    /// Distinct cameras.
    pub cameras: usize,
    /// Localized images written.
    pub images: usize,
    /// 3D points.
    pub points: usize,
    /// Images left out because they were not localized.
    pub not_localized: Vec<String>,
}

/// The cells of a localization (asked with coordinates) that reproject within `max_error`
/// pixels under its own pose, as points for a model image. `None` when the image was not
/// localized or no coordinates were returned.
pub fn model_image(name: &str, camera: &Camera, found: &Localization, max_error: f64) -> Option<ModelImage> {
    let (w2c, coords) = (found.cam_from_world()?, found.coordinates.as_ref()?);
    // Cells behind the camera have an infinite error and are left out with the rest.
    let errors = coords.reprojection_errors(&w2c, camera);
    let points = coords
        .pixels_n2
        .iter()
        .zip(&coords.coords_n3)
        .zip(&coords.colours_n3)
        .zip(errors)
        .filter(|(_, error)| *error < max_error)
        .map(|(((px, xyz), rgb), error)| ObservedPoint { pixel: *px, xyz: *xyz, rgb: *rgb, error })
        .collect();
    Some(ModelImage { name: name.to_string(), size: coords.image_size, camera: *camera, world_to_cam: w2c, points })
}

fn camera_line(c: &Camera, size: (u32, u32)) -> String {
    let k = c.intrinsics;
    match c.distortion.filter(|d| !d.is_zero()) {
        None => format!("PINHOLE {} {} {} {} {} {}", size.0, size.1, k.fx, k.fy, k.cx, k.cy),
        Some(d) if d.k3 == 0.0 => format!(
            "OPENCV {} {} {} {} {} {} {} {} {} {}",
            size.0, size.1, k.fx, k.fy, k.cx, k.cy, d.k1, d.k2, d.p1, d.p2
        ),
        // COLMAP's OPENCV model has no k3; FULL_OPENCV with k4 = k5 = k6 = 0 is the same lens.
        Some(d) => format!(
            "FULL_OPENCV {} {} {} {} {} {} {} {} {} {} {} 0 0 0",
            size.0, size.1, k.fx, k.fy, k.cx, k.cy, d.k1, d.k2, d.p1, d.p2, d.k3
        ),
    }
}

/// The three files of the model, as text.
pub fn model_text(images: &[ModelImage]) -> (String, String, String) {
    let mut cameras: Vec<String> = Vec::new();
    let mut cams = String::new();
    let mut imgs = String::new();
    let mut pts = String::new();
    let observations: usize = images.iter().map(|i| i.points.len()).sum();
    let _ = writeln!(imgs, "# Image list with two lines of data per image:\n#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)");
    let _ = writeln!(
        imgs,
        "# Number of images: {}, mean observations per image: {}",
        images.len(),
        observations as f64 / images.len().max(1) as f64
    );
    let _ = writeln!(pts, "# 3D point list with one line of data per point:\n#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)");
    let _ = writeln!(pts, "# Number of points: {observations}, mean track length: 1");
    let mut point_id = 0usize;
    for (i, img) in images.iter().enumerate() {
        let line = camera_line(&img.camera, img.size);
        let camera_id = match cameras.iter().position(|c| *c == line) {
            Some(k) => k + 1,
            None => {
                cameras.push(line);
                cameras.len()
            }
        };
        let (q, t) = img.world_to_cam.quaternion_translation();
        let image_id = i + 1;
        let _ = writeln!(
            imgs,
            "{image_id} {} {} {} {} {} {} {} {camera_id} {}",
            q[0], q[1], q[2], q[3], t[0], t[1], t[2], img.name
        );
        let mut row = String::new();
        for (k, p) in img.points.iter().enumerate() {
            point_id += 1;
            if k > 0 {
                row.push(' ');
            }
            let _ = write!(row, "{} {} {point_id}", p.pixel[0], p.pixel[1]);
            let _ = writeln!(
                pts,
                "{point_id} {} {} {} {} {} {} {} {image_id} {k}",
                p.xyz[0], p.xyz[1], p.xyz[2], p.rgb[0], p.rgb[1], p.rgb[2], p.error
            );
        }
        let _ = writeln!(imgs, "{row}");
    }
    let _ = writeln!(
        cams,
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"
    );
    let _ = writeln!(cams, "# Number of cameras: {}", cameras.len());
    for (k, c) in cameras.iter().enumerate() {
        let _ = writeln!(cams, "{} {c}", k + 1);
    }
    (cams, imgs, pts)
}

/// Writes the model into the folder `out`: built beside it under a temporary name, then renamed
/// into place. An existing `out` is refused unless `force`; then it is moved aside, the new one
/// renamed in and only then the old one deleted, so that one of them is always complete.
pub fn write_model(out: &Path, images: &[ModelImage], force: bool) -> Result<(usize, usize)> {
    if out.exists() && !force {
        return Err(Error::usage("force", format!("{} exists: replace it with force", out.display())));
    }
    glace_outputs::remove_stale(out);
    let tmp = glace_outputs::temp_sibling(out);
    let write =
        |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| Error::Write { path: p.to_path_buf(), source: e });
    std::fs::create_dir(&tmp).map_err(|e| Error::Write { path: tmp.clone(), source: e })?;
    let (cams, imgs, pts) = model_text(images);
    let done = write(&tmp.join("cameras.txt"), &cams)
        .and_then(|_| write(&tmp.join("images.txt"), &imgs))
        .and_then(|_| write(&tmp.join("points3D.txt"), &pts))
        .and_then(|_| {
            glace_outputs::replace(&tmp, out).map_err(|e| Error::Write { path: out.to_path_buf(), source: e })
        });
    if done.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    done?;
    let cameras = cams.lines().filter(|l| !l.starts_with('#')).count();
    Ok((cameras, images.iter().map(|i| i.points.len()).sum()))
}

/// Localizes the frames of `split` and writes them as a COLMAP text model into `out`, with the
/// cells that reproject within `max_error` pixels as points. `on_frame(done, total)` reports
/// progress.
pub fn export_colmap(
    localizer: &Localizer,
    scene: &Scene,
    split: SplitKind,
    out: &Path,
    max_error: f64,
    force: bool,
    on_frame: &mut dyn FnMut(usize, usize),
) -> Result<ColmapSummary> {
    if !(max_error.is_finite() && max_error > 0.0) {
        return Err(Error::usage("max_error", format!("{max_error}: expected a positive number of pixels")));
    }
    if out.exists() && !force {
        return Err(Error::usage("force", format!("{} exists: replace it with force", out.display())));
    }
    crate::check_export(localizer, scene, out, glace_outputs::Kind::Dir, force)?;
    let mut images = Vec::new();
    let mut not_localized = Vec::new();
    localize_scene(localizer, scene, split, true, &mut |done, total, frame, outcome| {
        let size = outcome.localization.coordinates.as_ref().map(|c| c.image_size).unwrap_or((0, 0));
        let camera = scene.camera(frame, size.0, size.1);
        match model_image(&frame.name, &camera, &outcome.localization, max_error) {
            Some(img) => images.push(img),
            None => not_localized.push(frame.name.clone()),
        }
        outcome.localization.coordinates = None;
        on_frame(done, total);
    })?;
    let (cameras, points) = write_model(out, &images, force)?;
    Ok(ColmapSummary { path: out.to_path_buf(), cameras, images: images.len(), points, not_localized })
}
