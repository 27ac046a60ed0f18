//! Image files: cheap header probing for validation, and decoding to 8-bit RGB.

use std::path::Path;

use image::{ColorType, ImageDecoder, ImageReader, RgbImage};

use crate::DataError;

/// File extensions taken as images in `rgb/` (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// True when the file name has a PNG/JPEG extension in any case.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn open(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, DataError> {
    ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))
}

fn check_color(path: &Path, color: ColorType) -> Result<(), DataError> {
    match color {
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => Ok(()),
        other => Err(DataError::UnsupportedImage {
            path: path.to_path_buf(),
            message: format!("pixel type {other:?}; expected 8-bit grayscale or RGB"),
        }),
    }
}

/// Width and height from the file header, checking the pixel type is 8-bit gray or RGB(A).
pub fn probe(path: &Path) -> Result<(u32, u32), DataError> {
    let decoder = open(path)?
        .into_decoder()
        .map_err(|e| DataError::CorruptImage { path: path.to_path_buf(), message: e.to_string() })?;
    check_color(path, decoder.color_type())?;
    Ok(decoder.dimensions())
}

/// Decodes an image to 8-bit RGB (gray is replicated, alpha dropped).
pub fn load_rgb8(path: &Path) -> Result<RgbImage, DataError> {
    let img = open(path)?
        .decode()
        .map_err(|e| DataError::CorruptImage { path: path.to_path_buf(), message: e.to_string() })?;
    check_color(path, img.color())?;
    Ok(img.to_rgb8())
}
