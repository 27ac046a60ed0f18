//! Training-image augmentation as the reference (spec §1.3): scale via the resize height
//! (uniform 2/3..3/2), brightness and contrast ±10 % in random order on 8-bit values, rotation
//! ±15° about the image centre with reflect padding and the pose updated by P·Rz(θ); the
//! intrinsics are scaled with the resize and untouched by the rotation.

use glace_data::preprocess::{luma, normalize};
use glace_data::{preprocess, Calibration, Preprocessed};
use glace_geometry::CamToWorld;
use image::RgbImage;
use nalgebra::{Rotation3, Vector3};

use crate::rng::Rng;

/// Augmentation ranges (the reference's defaults).
#[derive(Clone, Copy, Debug)]
pub struct AugmentConfig {
    /// Enable augmentation.
    pub enabled: bool,
    /// Minimum scale.
    pub scale_min: f64,
    /// Maximum scale.
    pub scale_max: f64,
    /// Rotation range in degrees (±).
    pub rotation_deg: f64,
    /// Brightness and contrast range (±).
    pub jitter: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig { enabled: true, scale_min: 2.0 / 3.0, scale_max: 1.5, rotation_deg: 15.0, jitter: 0.1 }
    }
}

/// An augmented training view.
pub struct View {
    /// Preprocessed (resized, jittered, rotated) image.
    pub image: Preprocessed,
    /// Camera-to-world after the rotation.
    pub pose: CamToWorld,
    /// Per-pixel validity after rotation (true = inside the original image).
    pub valid: Vec<bool>,
    /// Rotation applied about the image centre (radians).
    pub theta: f64,
}

fn reflect(x: f64, n: usize) -> f64 {
    // numpy "reflect" on pixel centres: mirror without repeating the edge, period 2(n−1).
    if n <= 1 {
        return 0.0;
    }
    let period = 2.0 * (n as f64 - 1.0);
    let mut t = x.rem_euclid(period);
    if t > n as f64 - 1.0 {
        t = period - t;
    }
    t
}

/// Produces one augmented view of an image.
pub fn augment(
    rgb: &RgbImage,
    calibration: &Calibration,
    pose: &CamToWorld,
    image_height: u32,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> View {
    if !cfg.enabled {
        let image = preprocess(rgb, calibration, image_height);
        let valid = vec![true; image.width * image.height];
        return View { image, pose: *pose, valid, theta: 0.0 };
    }
    let s = rng.range(cfg.scale_min, cfg.scale_max);
    let target = ((image_height as f64 * s) as u32).max(16);
    let mut image = preprocess(rgb, calibration, target);
    let (w, h) = (image.width, image.height);

    // Brightness and contrast, in random order, on 8-bit values.
    let b = rng.range(1.0 - cfg.jitter, 1.0 + cfg.jitter);
    let c = rng.range(1.0 - cfg.jitter, 1.0 + cfg.jitter);
    let brightness_first = rng.f64() < 0.5;
    let mean_gray =
        |px: &[u8]| px.chunks_exact(3).map(|p| luma(p[0], p[1], p[2]) as f64).sum::<f64>() / (px.len() / 3) as f64;
    for step in 0..2 {
        if (step == 0) == brightness_first {
            image.rgb_hw3.iter_mut().for_each(|v| *v = (*v as f64 * b).round().clamp(0.0, 255.0) as u8);
        } else {
            let m = mean_gray(&image.rgb_hw3).round();
            image.rgb_hw3.iter_mut().for_each(|v| *v = ((*v as f64 - m) * c + m).round().clamp(0.0, 255.0) as u8);
        }
    }

    // Rotation about the centre: output p samples input at c + R(θ)(p − c) (pixel centres).
    let theta = rng.range(-cfg.rotation_deg, cfg.rotation_deg).to_radians();
    let (sn, cs) = theta.sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let src = image.rgb_hw3.clone();
    let mut valid = vec![true; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let (sx, sy) = (cx + cs * dx - sn * dy, cy + sn * dx + cs * dy);
            valid[y * w + x] = sx > -1.0 && sy > -1.0 && sx < w as f64 && sy < h as f64;
            let (rx, ry) = (reflect(sx, w), reflect(sy, h));
            let (x0, y0) = (rx.floor() as usize, ry.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (rx - x0 as f64, ry - y0 as f64);
            for ch in 0..3 {
                let p = |xx: usize, yy: usize| src[(yy * w + xx) * 3 + ch] as f64;
                let v = (1.0 - fy) * ((1.0 - fx) * p(x0, y0) + fx * p(x1, y0))
                    + fy * ((1.0 - fx) * p(x0, y1) + fx * p(x1, y1));
                image.rgb_hw3[(y * w + x) * 3 + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    image.gray_hw = image.rgb_hw3.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect();
    image.image_hw = image.gray_hw.iter().map(|&g| normalize(g)).collect();
    let rz = Rotation3::from_axis_angle(&Vector3::z_axis(), theta);
    let mut new_pose = *pose;
    new_pose.0.rotation = pose.0.rotation * nalgebra::UnitQuaternion::from_rotation_matrix(&rz);
    View { image, pose: new_pose, valid, theta }
}
