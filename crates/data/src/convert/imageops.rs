//! Image operations of the reference's dataset scripts (OpenCV semantics, not bit-exact):
//! bilinear resize without antialiasing and radial undistortion keeping K.

use glace_geometry::Intrinsics;
use image::RgbImage;

fn sample_bilinear(img: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |xx: i64, yy: i64| img.get_pixel(xx as u32, yy as u32).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0u8; 3];
    for k in 0..3 {
        let top = a[k] as f64 + (b[k] as f64 - a[k] as f64) * fx;
        let bottom = c[k] as f64 + (d[k] as f64 - c[k] as f64) * fx;
        out[k] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// OpenCV `resize(..., INTER_LINEAR)`: half-pixel centres, edge clamping, no antialiasing.
pub fn resize_linear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    let sx = img.width() as f64 / width as f64;
    let sy = img.height() as f64 / height as f64;
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb(sample_bilinear(img, (x as f64 + 0.5) * sx - 0.5, (y as f64 + 0.5) * sy - 0.5))
    })
}

/// OpenCV `undistort(img, K, (k1, 0, 0, 0))`: each output (ideal) pixel samples the input where
/// the distortion model maps it; the intrinsics stay the same.
pub fn undistort_radial(img: &RgbImage, k: &Intrinsics, k1: f64) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |u, v| {
        let x = (u as f64 - k.cx) / k.fx;
        let y = (v as f64 - k.cy) / k.fy;
        let r2 = x * x + y * y;
        let f = 1.0 + k1 * r2;
        image::Rgb(sample_bilinear(img, x * f * k.fx + k.cx, y * f * k.fy + k.cy))
    })
}
