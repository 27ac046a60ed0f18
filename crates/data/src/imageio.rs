//! Image files: cheap header probing for validation, and decoding to 8-bit RGB — one policy
//! for every way an image arrives (a scene's files, `glace::read_image`, the service's bodies):
//! PNG or JPEG, 8-bit grey or RGB(A), whole, and within [`check_dimensions`], which is checked
//! from the header before any pixel is allocated.

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

/// The most pixels an image may have: decoded, it takes 3 bytes a pixel (192 MiB here).
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;

/// The most an image's longer side may be of its shorter side. The network sees the shorter
/// side at a fixed height, so the longer side sets its work: a 1000×7 strip would become
/// 68571×480 (gigabytes). Panoramas (2:1) and cinema frames (2.4:1) pass.
pub const MAX_ASPECT: u32 = 4;

/// Checks an image's size as its header gives it against [`MAX_IMAGE_PIXELS`] and
/// [`MAX_ASPECT`]; the message says which limit and by how much.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("{width}×{height}: the image is empty"));
    }
    let pixels = width as u64 * height as u64;
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!("{width}×{height} is {pixels} pixels, more than the limit of {MAX_IMAGE_PIXELS}"));
    }
    let (short, long) = (width.min(height), width.max(height));
    if long as u64 > MAX_ASPECT as u64 * short as u64 {
        return Err(format!(
            "{width}×{height}: its longer side is {:.1} times its shorter one, more than the limit of {MAX_ASPECT} \
             (the network sees the shorter side at a fixed height, so such a strip would take gigabytes)",
            long as f64 / short as f64
        ));
    }
    Ok(())
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

fn check_header(path: &Path, decoder: &impl ImageDecoder) -> Result<(u32, u32), DataError> {
    check_color(path, decoder.color_type())?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h).map_err(|message| DataError::UnsupportedImage { path: path.to_path_buf(), message })?;
    Ok((w, h))
}

/// Width and height from the file header, checking the pixel type is 8-bit gray or RGB(A) and
/// the size is within [`check_dimensions`].
pub fn probe(path: &Path) -> Result<(u32, u32), DataError> {
    let decoder = open(path)?
        .into_decoder()
        .map_err(|e| DataError::CorruptImage { path: path.to_path_buf(), message: e.to_string() })?;
    check_header(path, &decoder)
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

/// Decodes an image file to 8-bit RGB (gray is replicated, alpha dropped). Truncated files are
/// errors; see [`decode_rgb8`].
pub fn load_rgb8(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb8(&bytes, path)
}

/// The checked decoder of a PNG or JPEG held in memory: whole, 8-bit grey or RGB(A), within
/// [`check_dimensions`], all from the header; `name` is what errors name.
fn checked_decoder<'a>(bytes: &'a [u8], name: &Path) -> Result<impl ImageDecoder + 'a, DataError> {
    let corrupt = |message: String| DataError::CorruptImage { path: name.to_path_buf(), message };
    if let Some(message) = jpeg_truncation(bytes) {
        return Err(corrupt(message));
    }
    let reader =
        ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| corrupt(e.to_string()))?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        return Err(DataError::UnsupportedImage {
            path: name.to_path_buf(),
            message: "not a PNG or JPEG image".into(),
        });
    }
    let decoder = reader.into_decoder().map_err(|e| corrupt(e.to_string()))?;
    check_header(name, &decoder)?;
    Ok(decoder)
}

/// Width and height of a PNG or JPEG held in memory under the policy of [`decode_rgb8`], from
/// its header alone (a service refuses a bad image before queueing its work).
pub fn probe_bytes(bytes: &[u8], name: &Path) -> Result<(u32, u32), DataError> {
    Ok(checked_decoder(bytes, name)?.dimensions())
}

/// Decodes a PNG or JPEG held in memory to 8-bit RGB; `name` (a file, or what the bytes are)
/// is what errors name. Truncated data, other formats and pixel types, and sizes beyond
/// [`check_dimensions`] are refused, the size from the header before pixels are allocated.
pub fn decode_rgb8(bytes: &[u8], name: &Path) -> Result<RgbImage, DataError> {
    let decoder = checked_decoder(bytes, name)?;
    let img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| DataError::CorruptImage { path: name.to_path_buf(), message: e.to_string() })?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_the_limits_are_refused_from_the_header() {
        assert!(check_dimensions(640, 480).is_ok() && check_dimensions(1080, 1920).is_ok());
        assert!(check_dimensions(4000, 1000).is_ok() && check_dimensions(1, 1).is_ok());
        for (w, h) in [(1000, 7), (7, 1000), (4001, 1000), (0, 5), (9000, 9000)] {
            assert!(check_dimensions(w, h).is_err(), "{w}×{h}");
        }
        let mut png = Vec::new();
        image::RgbImage::new(1000, 7).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let e = decode_rgb8(&png, Path::new("thin.png")).unwrap_err().to_string();
        assert!(e.contains("thin.png") && e.contains("1000×7"), "{e}");
        let mut deep = Vec::new();
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(8, 8)
            .write_to(&mut std::io::Cursor::new(&mut deep), image::ImageFormat::Png)
            .unwrap();
        let e = decode_rgb8(&deep, Path::new("deep.png")).unwrap_err().to_string();
        assert!(e.contains("8-bit"), "{e}");
        assert!(decode_rgb8(b"GIF89a....", Path::new("x")).is_err());
    }

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
