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

/// Why a JPEG's bytes are incomplete, if they are: the decoder fills a cut-off scan with grey
/// without a word, so the end-of-image marker is checked here. It must come after the last
/// start-of-scan (an embedded EXIF thumbnail has its own, earlier one); bytes after it (trailers
/// some cameras append) are fine.
pub fn jpeg_truncation(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None; // not a JPEG
    }
    let last = |marker: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == marker);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) if eoi > sos => None,
        (None, _) => Some("JPEG without image data (no start-of-scan marker): truncated?".into()),
        _ => Some(format!("JPEG cut off after {} bytes (no end-of-image marker after its image data)", bytes.len())),
    }
}

/// Decodes an image to 8-bit RGB (gray is replicated, alpha dropped). Truncated files are errors.
pub fn load_rgb8(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if let Some(message) = jpeg_truncation(&bytes) {
        return Err(DataError::CorruptImage { path: path.to_path_buf(), message });
    }
    let img = ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| DataError::CorruptImage { path: path.to_path_buf(), message: e.to_string() })?;
    check_color(path, img.color())?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::jpeg_truncation;

    #[test]
    fn cut_jpegs_are_told_from_whole_ones() {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 128]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        assert_eq!(jpeg_truncation(&jpeg), None);
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"vendor trailer after the image");
        assert_eq!(jpeg_truncation(&trailer), None);
        for cut in [jpeg.len() - 2, jpeg.len() / 2, 200] {
            assert!(jpeg_truncation(&jpeg[..cut]).is_some(), "cut at {cut}");
        }
        // The decoder itself accepts the half file: that is why the check exists.
        assert!(image::load_from_memory(&jpeg[..jpeg.len() / 2]).is_ok());
        assert_eq!(jpeg_truncation(b"\\x89PNG not a jpeg"), None);
    }
}
