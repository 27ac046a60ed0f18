//! Image preprocessing for the network, as the reference's `CamLocDataset` does it at test time
//! (and at training time before augmentation): resize so the shorter side is `image_height`
//! (Pillow bilinear with antialiasing), PIL 'L' luma, `(x/255 − 0.4)/0.25`.
//!
//! One deliberate difference: for portrait images the reference scales the focal length by
//! `image_height / H` (the *longer* side) although it resizes the *shorter* side, giving a focal
//! wrong by W/H. We scale by the factor actually applied to the shorter side, which equals the
//! reference for landscape and square images.

use glace_geometry::Intrinsics;
use image::RgbImage;

use crate::resize::resize_bilinear_u8;
use crate::text::Calibration;

/// Default height (shorter side) the network sees, as the reference.
pub const DEFAULT_IMAGE_HEIGHT: u32 = 480;
/// Mean and std of the grayscale normalisation.
pub const NORM_MEAN: f32 = 0.4;
/// See [`NORM_MEAN`].
pub const NORM_STD: f32 = 0.25;
/// The encoders' output stride.
pub const CELL: usize = 8;

/// Output size of torchvision's `resize(img, short)`: the shorter side becomes `short`, the
/// longer one `int(short · long / short_side)` (truncated).
pub fn resized_size(width: u32, height: u32, short: u32) -> (u32, u32) {
    let (s, l) = if width <= height { (width, height) } else { (height, width) };
    if s == short {
        return (width, height);
    }
    let new_long = (short as f64 * l as f64 / s as f64) as u32;
    if width <= height {
        (short, new_long)
    } else {
        (new_long, short)
    }
}

/// The most pixels the networks may see of one image: with the shorter side at the height a
/// map was trained at, the longer side follows the image's aspect ([`crate::imageio::MAX_ASPECT`]).
pub const MAX_NETWORK_PIXELS: u64 = 16 << 20;

/// Checks that a `width × height` image can be given to the networks at shorter side
/// `image_height`: within the file limits ([`crate::imageio::check_dimensions`]) and, resized,
/// within [`MAX_NETWORK_PIXELS`]. Returns the resized size.
pub fn check_network_size(width: u32, height: u32, image_height: u32) -> Result<(u32, u32), String> {
    crate::imageio::check_dimensions(width, height)?;
    let (w, h) = resized_size(width, height, image_height);
    if w as u64 * h as u64 > MAX_NETWORK_PIXELS {
        return Err(format!(
            "{width}×{height} becomes {w}×{h} for the network (shorter side {image_height}), more than the limit of \
             {MAX_NETWORK_PIXELS} pixels"
        ));
    }
    Ok((w, h))
}

/// Feature-grid size (rows, cols) = (ceil(H/8), ceil(W/8)).
pub fn feature_grid(width: usize, height: usize) -> (usize, usize) {
    (height.div_ceil(CELL), width.div_ceil(CELL))
}

/// Pixel (u, v) = (8j + 4, 8i + 4) of feature cell (row i, col j).
pub fn cell_center(i: usize, j: usize) -> (f64, f64) {
    ((CELL * j + CELL / 2) as f64, (CELL * i + CELL / 2) as f64)
}

/// PIL `convert('L')`: ITU-R 601-2 luma in 16-bit fixed point with rounding.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Normalises one gray level exactly as `ToTensor` + `Normalize(0.4, 0.25)` in f32.
#[inline]
pub fn normalize(g: u8) -> f32 {
    (g as f32 / 255.0 - NORM_MEAN) / NORM_STD
}

/// A preprocessed image, ready for a local encoder.
#[derive(Clone, Debug)]
pub struct Preprocessed {
    /// Width after resizing.
    pub width: usize,
    /// Height after resizing.
    pub height: usize,
    /// Resized RGB, row-major interleaved (kept for encoders that take colour and for colouring point clouds).
    pub rgb_hw3: Vec<u8>,
    /// Luma after resizing, row-major.
    pub gray_hw: Vec<u8>,
    /// Normalised grayscale `(g/255 − 0.4)/0.25`, row-major.
    pub image_hw: Vec<f32>,
    /// Intrinsics of the resized image.
    pub intrinsics: Intrinsics,
    /// Factor applied to the image (resized shorter side / original shorter side).
    pub scale: f64,
}

/// Resizes and normalises an RGB image; `calibration` is for the image as stored.
pub fn preprocess(rgb: &RgbImage, calibration: &Calibration, image_height: u32) -> Preprocessed {
    let (w0, h0) = rgb.dimensions();
    let (w, h) = resized_size(w0, h0, image_height);
    let rgb_hw3 = if (w, h) == (w0, h0) {
        rgb.as_raw().clone()
    } else {
        resize_bilinear_u8(rgb.as_raw(), w0 as usize, h0 as usize, 3, w as usize, h as usize)
    };
    let gray_hw: Vec<u8> = rgb_hw3.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect();
    let image_hw = gray_hw.iter().map(|&g| normalize(g)).collect();
    let scale = image_height as f64 / w0.min(h0) as f64;
    let scale = if (w, h) == (w0, h0) { 1.0 } else { scale };
    let intrinsics = match *calibration {
        Calibration::Focal(f) => Intrinsics { fx: f * scale, fy: f * scale, cx: w as f64 / 2.0, cy: h as f64 / 2.0 },
        Calibration::Matrix(k) => k.scaled(scale),
    };
    Preprocessed { width: w as usize, height: h as usize, rgb_hw3, gray_hw, image_hw, intrinsics, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sizes_and_grids() {
        assert_eq!(resized_size(640, 480, 480), (640, 480));
        assert_eq!(resized_size(1296, 968, 480), (642, 480));
        assert_eq!(resized_size(1920, 1080, 480), (853, 480));
        assert_eq!(resized_size(640, 480, 320), (426, 320));
        assert_eq!(resized_size(640, 480, 720), (960, 720));
        assert_eq!(resized_size(480, 640, 480), (480, 640));
        assert_eq!(feature_grid(640, 480), (60, 80));
        assert_eq!(feature_grid(642, 480), (60, 81));
        assert_eq!(feature_grid(854, 480), (60, 107));
        assert_eq!(feature_grid(426, 320), (40, 54));
        assert_eq!(cell_center(0, 0), (4.0, 4.0));
        assert_eq!(cell_center(2, 5), (44.0, 20.0));
    }

    #[test]
    fn pil_luma() {
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(10, 20, 30), 18);
        assert_eq!(luma(255, 255, 255), 255);
    }

    #[test]
    fn portrait_focal_is_geometric() {
        let img = RgbImage::new(480, 640);
        let p = preprocess(&img, &Calibration::Focal(525.0), 480);
        assert_eq!((p.width, p.height), (480, 640));
        // The reference gives 393.75 here (its portrait quirk); the image is not resized.
        assert_eq!(p.intrinsics.fx, 525.0);
        assert_eq!((p.intrinsics.cx, p.intrinsics.cy), (240.0, 320.0));
    }
}
