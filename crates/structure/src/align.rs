//! Sub-pixel alignment of a small grey patch into an image (not in the reference).
//!
//! XFeat detects a keypoint per 8×8 cell and describes it from a map eight times coarser, so two
//! views of one surface point match with keypoints a few pixels apart: good enough to find a
//! pose, not to pin it. Aligning the patch around one view's keypoint into the other image
//! (Gauss–Newton on the patch's grey levels, normalised for gain and offset, under a known
//! linear warp) finds where that same point lies to a fraction of a pixel.
//!
//! Pixels are continuous: pixel `i` spans `[i, i + 1)`, its centre is `i + 0.5`.

use glace_geometry::{Intrinsics, WorldToCam};
use nalgebra::{Matrix2, Matrix2x3, Matrix3x2, Point2, Point3, Vector2, Vector3};

/// Side of a patch, in pixels of the image it was cut from.
pub const PATCH_SIDE: usize = 11;
/// Samples of a patch.
pub const PATCH_LEN: usize = PATCH_SIDE * PATCH_SIDE;
const HALF: f64 = (PATCH_SIDE / 2) as f64;

/// A borrowed 8-bit grey image, row-major.
#[derive(Clone, Copy, Debug)]
pub struct GrayImage<'a> {
    /// `width × height` grey levels.
    pub pixels: &'a [u8],
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl GrayImage<'_> {
    /// Bilinear grey level at continuous pixel `(x, y)`; `None` where the four pixels around
    /// it are not all inside the image.
    pub fn sample(&self, x: f64, y: f64) -> Option<f32> {
        let (x0, y0, ax, ay) = self.cell(x, y, 0)?;
        Some(self.bilinear(x0, y0, ax, ay))
    }

    /// The pixel `(x0, y0)` whose centre is the nearest at or before continuous pixel `(x, y)`,
    /// and the fraction `(ax, ay)` of the way to the next ones; `None` unless `margin` more
    /// pixels lie before it and after the next ones, inside the image.
    fn cell(&self, x: f64, y: f64, margin: usize) -> Option<(usize, usize, f32, f32)> {
        let (gx, gy) = (x - 0.5, y - 0.5);
        if !(gx >= margin as f64 && gy >= margin as f64) {
            return None;
        }
        let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
        if x0 + 1 + margin >= self.width
            || y0 + 1 + margin >= self.height
            || self.pixels.len() < self.width * self.height
        {
            return None;
        }
        Some((x0, y0, (gx - x0 as f64) as f32, (gy - y0 as f64) as f32))
    }

    /// The grey level a fraction `(ax, ay)` of the way from pixel `(x0, y0)` to the next ones.
    fn bilinear(&self, x0: usize, y0: usize, ax: f32, ay: f32) -> f32 {
        let at = |x: usize, y: usize| self.pixels[y * self.width + x] as f32;
        let top = at(x0, y0) * (1.0 - ax) + at(x0 + 1, y0) * ax;
        let bottom = at(x0, y0 + 1) * (1.0 - ax) + at(x0 + 1, y0 + 1) * ax;
        top * (1.0 - ay) + bottom * ay
    }

    /// [`GrayImage::sample`] at `(x, y)` and the central differences of the samples one pixel
    /// either side along x and along y, from one lookup: the five samples share their bilinear
    /// weights. `None` where any of the five is not inside the image.
    pub fn sample_with_gradient(&self, x: f64, y: f64) -> Option<(f32, [f32; 2])> {
        let (x0, y0, ax, ay) = self.cell(x, y, 1)?;
        let bilinear = |x: usize, y: usize| self.bilinear(x, y, ax, ay);
        let value = bilinear(x0, y0);
        let dx = (bilinear(x0 + 1, y0) - bilinear(x0 - 1, y0)) / 2.0;
        let dy = (bilinear(x0, y0 + 1) - bilinear(x0, y0 - 1)) / 2.0;
        Some((value, [dx, dy]))
    }
}

/// The [`PATCH_SIDE`]² grey levels centred on `centre` (row-major, one-pixel steps along the
/// image's axes); `None` where it does not lie wholly inside the image.
pub fn cut_patch(image: &GrayImage, centre: Point2<f64>) -> Option<[u8; PATCH_LEN]> {
    let mut out = [0u8; PATCH_LEN];
    for (k, o) in out.iter_mut().enumerate() {
        let (dx, dy) = ((k % PATCH_SIDE) as f64 - HALF, (k / PATCH_SIDE) as f64 - HALF);
        *o = image.sample(centre.x + dx, centre.y + dy)?.round() as u8;
    }
    Some(out)
}

/// Limits of an alignment.
#[derive(Clone, Copy, Debug)]
pub struct AlignConfig {
    /// Farthest the aligned point may lie from where the search started (pixels).
    pub max_shift: f64,
    /// Smallest normalised cross-correlation of the aligned patch with the template.
    pub min_correlation: f32,
    /// Gauss–Newton steps at most.
    pub iterations: usize,
    /// Smallest standard deviation of the template's grey levels (a flat patch pins nothing).
    pub min_contrast: f32,
    /// Smallest ratio of the weaker to the stronger gradient direction over the patch (an edge
    /// pins only across itself).
    pub min_isotropy: f64,
}

impl Default for AlignConfig {
    fn default() -> Self {
        AlignConfig { max_shift: 4.0, min_correlation: 0.8, iterations: 12, min_contrast: 4.0, min_isotropy: 0.1 }
    }
}

/// Where `template` (a [`cut_patch`] of another image) lies in `image`: the search starts at
/// `start`, and template offset `d` (pixels of the template's image) is taken to land at
/// `centre + warp·d`. The aligned centre and the correlation there; `None` when the template
/// is flat, the patch leaves the image, the fit does not converge, or it lands farther than
/// [`AlignConfig::max_shift`] or correlates less than [`AlignConfig::min_correlation`].
pub fn align_patch(
    template: &[u8; PATCH_LEN],
    image: &GrayImage,
    start: Point2<f64>,
    warp: &Matrix2<f64>,
    cfg: &AlignConfig,
) -> Option<(Point2<f64>, f32)> {
    let t = normalised(&template.map(|v| v as f32), cfg.min_contrast)?;
    let offsets: Vec<Vector2<f64>> = (0..PATCH_LEN)
        .map(|k| warp * Vector2::new((k % PATCH_SIDE) as f64 - HALF, (k / PATCH_SIDE) as f64 - HALF))
        .collect();
    if !offsets.iter().all(|o| o.iter().all(|v| v.is_finite() && v.abs() < 4.0 * HALF)) {
        return None;
    }
    let mut centre = start;
    let mut values = [0f32; PATCH_LEN];
    let mut grads = [(0f32, 0f32); PATCH_LEN];
    for step in 0..=cfg.iterations {
        for (k, o) in offsets.iter().enumerate() {
            let (value, [dx, dy]) = image.sample_with_gradient(centre.x + o.x, centre.y + o.y)?;
            values[k] = value;
            grads[k] = (dx, dy);
        }
        let v = normalised(&values, 0.5)?;
        let sigma = std_dev(&values).max(1e-3);
        if step == cfg.iterations {
            break;
        }
        let (gx_mean, gy_mean) = grads.iter().fold((0f32, 0f32), |a, g| (a.0 + g.0, a.1 + g.1));
        let (gx_mean, gy_mean) = (gx_mean / PATCH_LEN as f32, gy_mean / PATCH_LEN as f32);
        let (mut h, mut b) = (Matrix2::<f64>::zeros(), Vector2::<f64>::zeros());
        for k in 0..PATCH_LEN {
            let j = Vector2::new(((grads[k].0 - gx_mean) / sigma) as f64, ((grads[k].1 - gy_mean) / sigma) as f64);
            h += j * j.transpose();
            b += j * (v[k] - t[k]) as f64;
        }
        let eig = h.symmetric_eigenvalues();
        let (lo, hi) = (eig.min(), eig.max());
        if hi.is_nan() || hi <= 0.0 || lo / hi < cfg.min_isotropy {
            return None;
        }
        let delta = -(h.try_inverse()? * b);
        centre += delta;
        if (centre - start).norm() > cfg.max_shift {
            return None;
        }
        if delta.norm() < 1e-3 {
            break;
        }
    }
    let v = normalised(&values, 0.5)?;
    let correlation = v.iter().zip(&t).map(|(a, b)| a * b).sum::<f32>() / PATCH_LEN as f32;
    (correlation >= cfg.min_correlation && (centre - start).norm() <= cfg.max_shift).then_some((centre, correlation))
}

/// A patch placed in the world: its grey levels (a [`cut_patch`] of its own view), the world
/// point at its centre, and the world displacement of one pixel step along its rows and columns
/// there (the surface taken to face its view).
#[derive(Clone, Copy, Debug)]
pub struct WorldPatch<'a> {
    /// Grey levels.
    pub template: &'a [u8; PATCH_LEN],
    /// World point at the centre.
    pub centre: Point3<f64>,
    /// World displacement of one pixel step along x and along y of the patch.
    pub steps: [Vector3<f64>; 2],
}

impl<'a> WorldPatch<'a> {
    /// The patch its view saw `centre` in at `depth`, one pixel step of that view being
    /// `pixel_axes` × depth in the world; `None` for a depth that is not positive.
    pub fn new(
        template: &'a [u8; PATCH_LEN],
        centre: Point3<f64>,
        pixel_axes: [Vector3<f64>; 2],
        depth: f64,
    ) -> Option<WorldPatch<'a>> {
        (depth > 0.0).then(|| WorldPatch { template, centre, steps: pixel_axes.map(|a| a * depth) })
    }

    /// How the patch lands in a camera seen from `pose` with `intrinsics`: the linear warp of
    /// its pixel steps. `None` behind the camera.
    pub fn warp(&self, pose: &WorldToCam, intrinsics: &Intrinsics) -> Option<Matrix2<f64>> {
        let p = pose.transform_point(&self.centre);
        if p.z.is_nan() || p.z <= 0.0 {
            return None;
        }
        let r = pose.0.rotation.to_rotation_matrix().into_inner();
        let (fx, fy) = (intrinsics.fx / p.z, intrinsics.fy / p.z);
        let jacobian = Matrix2x3::new(fx, 0.0, -fx * p.x / p.z, 0.0, fy, -fy * p.y / p.z) * r;
        let warp = jacobian * Matrix3x2::from_columns(&self.steps);
        warp.iter().all(|v| v.is_finite()).then_some(warp)
    }

    /// Where the patch lies in `image`, taken by a camera at `pose` with `intrinsics` (the
    /// warp ignores lens distortion): [`align_patch`] from `start`, in the image's pixels.
    pub fn find_in(
        &self,
        image: &GrayImage,
        pose: &WorldToCam,
        intrinsics: &Intrinsics,
        start: Point2<f64>,
        cfg: &AlignConfig,
    ) -> Option<Point2<f64>> {
        let warp = self.warp(pose, intrinsics)?;
        align_patch(self.template, image, start, &warp, cfg).map(|(at, _)| at)
    }
}

fn std_dev(v: &[f32]) -> f32 {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32).sqrt()
}

/// Zero mean, unit standard deviation; `None` below `min_contrast`.
fn normalised(v: &[f32; PATCH_LEN], min_contrast: f32) -> Option<[f32; PATCH_LEN]> {
    let mean = v.iter().sum::<f32>() / PATCH_LEN as f32;
    let sigma = std_dev(v);
    (sigma >= min_contrast).then(|| v.map(|x| (x - mean) / sigma))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth random texture: a sum of sinusoids, continuous in x and y.
    fn texture(x: f64, y: f64) -> f64 {
        let waves = [(0.31, 0.17, 0.0), (-0.13, 0.41, 1.0), (0.52, -0.23, 2.0), (0.07, 0.09, 0.5), (0.23, 0.29, 4.0)];
        128.0 + waves.iter().map(|&(a, b, p)| 24.0 * (a * x + b * y + p).sin()).sum::<f64>()
    }

    /// The texture rendered with `image(x, y) = texture(m⁻¹·(x − c, y − c) + c)`.
    fn render(m: &Matrix2<f64>, shift: Vector2<f64>) -> Vec<u8> {
        let inv = m.try_inverse().unwrap();
        let c = Vector2::new(32.0, 32.0);
        (0..64 * 64)
            .map(|k| {
                let p = Vector2::new((k % 64) as f64 + 0.5, (k / 64) as f64 + 0.5);
                let q = inv * (p - c - shift) + c;
                texture(q.x, q.y).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    #[test]
    fn one_lookup_gives_the_five_samples() {
        let plain = render(&Matrix2::identity(), Vector2::zeros());
        let image = GrayImage { pixels: &plain, width: 64, height: 64 };
        for &(x, y) in &[(1.5, 1.5), (10.25, 20.75), (62.49, 30.1), (33.0, 62.49), (7.9, 8.1)] {
            let (v, [dx, dy]) = image.sample_with_gradient(x, y).unwrap();
            let s = |x: f64, y: f64| image.sample(x, y).unwrap();
            assert!((v - s(x, y)).abs() < 1e-4);
            assert!((dx - (s(x + 1.0, y) - s(x - 1.0, y)) / 2.0).abs() < 1e-4, "{x} {y}");
            assert!((dy - (s(x, y + 1.0) - s(x, y - 1.0)) / 2.0).abs() < 1e-4, "{x} {y}");
        }
        // Where one of the five leaves the image, none.
        for &(x, y) in &[(1.49, 10.0), (10.0, 1.49), (62.51, 10.0), (10.0, 62.51), (f64::NAN, 3.0)] {
            let five = [(x, y), (x + 1.0, y), (x - 1.0, y), (x, y + 1.0), (x, y - 1.0)];
            assert_eq!(
                image.sample_with_gradient(x, y).is_some(),
                five.iter().all(|&(x, y)| image.sample(x, y).is_some())
            );
        }
    }

    #[test]
    fn a_shifted_and_turned_patch_is_found_to_a_tenth_of_a_pixel() {
        let plain = render(&Matrix2::identity(), Vector2::zeros());
        let reference = GrayImage { pixels: &plain, width: 64, height: 64 };
        let template = cut_patch(&reference, Point2::new(32.0, 32.0)).unwrap();
        let (a, s) = (0.3f64, 1.1f64);
        let m = Matrix2::new(a.cos(), -a.sin(), a.sin(), a.cos()) * s;
        let shift = Vector2::new(1.37, -0.82);
        let moved = render(&m, shift);
        let image = GrayImage { pixels: &moved, width: 64, height: 64 };
        // The point lies at c + shift; the search starts 2 px away from it.
        let truth = Point2::new(32.0, 32.0) + shift;
        let (found, corr) =
            align_patch(&template, &image, truth + Vector2::new(-1.2, 1.5), &m, &AlignConfig::default()).unwrap();
        assert!((found - truth).norm() < 0.1, "found {found}, truth {truth}");
        assert!(corr > 0.95, "{corr}");
    }

    #[test]
    fn a_patch_lands_scaled_and_turned_as_the_cameras_see_it() {
        use nalgebra::{Isometry3, Translation3, UnitQuaternion};
        let k = Intrinsics { fx: 500.0, fy: 500.0, cx: 320.0, cy: 240.0 };
        // Its own view at the origin sees the point at depth 2; pixel steps are 1/f at unit depth.
        let axes = [Vector3::new(1.0 / 500.0, 0.0, 0.0), Vector3::new(0.0, 1.0 / 500.0, 0.0)];
        let template = [0u8; PATCH_LEN];
        let patch = WorldPatch::new(&template, Point3::new(0.0, 0.0, 2.0), axes, 2.0).unwrap();
        let own = WorldToCam(Isometry3::identity());
        let w = patch.warp(&own, &k).unwrap();
        assert!((w - Matrix2::identity()).norm() < 1e-12, "{w}");
        // From twice as far, rolled a quarter turn about its optical axis.
        let roll = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), std::f64::consts::FRAC_PI_2);
        let far = WorldToCam(Isometry3::from_parts(Translation3::new(0.0, 0.0, 2.0), roll));
        let w = patch.warp(&far, &k).unwrap();
        assert!((w - Matrix2::new(0.0, -0.5, 0.5, 0.0)).norm() < 1e-9, "{w}");
        // Behind the camera, or seen at no depth: no warp.
        let behind = WorldToCam(Isometry3::translation(0.0, 0.0, -3.0));
        assert!(patch.warp(&behind, &k).is_none());
        assert!(WorldPatch::new(&template, Point3::new(0.0, 0.0, 2.0), axes, 0.0).is_none());
    }

    #[test]
    fn flat_edges_and_unrelated_patches_are_refused() {
        let plain = render(&Matrix2::identity(), Vector2::zeros());
        let image = GrayImage { pixels: &plain, width: 64, height: 64 };
        let cfg = AlignConfig::default();
        let at = Point2::new(32.0, 32.0);
        assert!(align_patch(&[90; PATCH_LEN], &image, at, &Matrix2::identity(), &cfg).is_none());
        // An edge: grey levels vary along x only.
        let edge: [u8; PATCH_LEN] = std::array::from_fn(|k| (100 + 10 * (k % PATCH_SIDE)) as u8);
        let stripes: Vec<u8> = (0..64 * 64).map(|k| (100 + 10 * ((k % 64) % 11)) as u8).collect();
        let striped = GrayImage { pixels: &stripes, width: 64, height: 64 };
        assert!(align_patch(&edge, &striped, Point2::new(38.5, 32.0), &Matrix2::identity(), &cfg).is_none());
        // A template of another texture correlates poorly wherever it lands.
        let other: [u8; PATCH_LEN] = std::array::from_fn(|k| ((k * 7919) % 251) as u8);
        assert!(align_patch(&other, &image, at, &Matrix2::identity(), &cfg).is_none());
        // Outside the image, and with a warp that means nothing.
        let template = cut_patch(&image, at).unwrap();
        assert!(cut_patch(&image, Point2::new(2.0, 32.0)).is_none());
        assert!(align_patch(&template, &image, Point2::new(1.0, 1.0), &Matrix2::identity(), &cfg).is_none());
        assert!(align_patch(&template, &image, at, &Matrix2::from_element(f64::NAN), &cfg).is_none());
        let (found, _) = align_patch(&template, &image, at, &Matrix2::identity(), &cfg).unwrap();
        assert!((found - at).norm() < 0.05, "{found}");
    }
}
