//! Localizing one query image with a map: encode (local + global), predict a scene coordinate
//! per cell, undistort the cell pixels when the scene has lens distortion, PnP-RANSAC.

use std::time::Instant;

use glace_data::{preprocess, Calibration, DataError, Frame, Preprocessed};
use glace_geometry::ransac::{ransac_pnp, RansacConfig, RansacError, RansacResult};
use glace_geometry::{Camera, Distortion};
use glace_nn::global::{colour_layout, GlobalInput};
use glace_nn::linalg::Matmul;
use glace_nn::map::GlobalSource;
use glace_nn::{Encoded, GlaceMap, LocalEncoder, R2Former};
use image::RgbImage;
use serde::Serialize;

use crate::LocalizeError;

/// Seconds spent per stage for one frame.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StageTimes {
    /// Image decoding and preprocessing.
    pub decode_s: f64,
    /// Local and global encoding.
    pub encode_s: f64,
    /// Head forward.
    pub head_s: f64,
    /// RANSAC on the scene coordinates (every orientation tried).
    pub ransac_s: f64,
    /// The refinement against the map's structure, where it runs (its second encoding, at the
    /// structure's own resolution, counts as encoding).
    pub refine_s: f64,
}

/// Why a frame got no pose.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PoseFailure {
    /// RANSAC found no hypothesis.
    #[error(transparent)]
    Ransac(#[from] RansacError),
    /// The estimate holds NaN or infinite values (counted as a failure, never reported as a pose).
    #[error("the pose estimate is not finite")]
    NotFinite,
}

/// The networks a map needs besides its head: the local encoder it was trained with, and
/// R2Former when its global descriptors come from R2Former.
#[derive(Clone, Copy)]
pub struct Encoders<'a> {
    /// Local encoder.
    pub local: &'a LocalEncoder,
    /// R2Former global encoder.
    pub r2former: Option<&'a R2Former>,
    /// How the head's and the local encoder's products are computed.
    pub matmul: Matmul,
    /// Also detect each cell's keypoint ([`Encoded::keypoints`]), for refining against a
    /// map's structure.
    pub keypoints: bool,
}

/// A frame's scene-coordinate prediction: the preprocessed image, its encoding and one world
/// point per cell (row-major over the feature grid).
pub struct Prediction {
    /// The preprocessed image, upright (as given).
    pub image: Preprocessed,
    /// Local features of the image the network saw (turned by `quarter_turns`).
    pub encoded: Encoded,
    /// Cells × 3 world points.
    pub coords_n3: Vec<f32>,
    /// Quarter turns clockwise the image was given to the networks with (0–3).
    pub quarter_turns: u8,
    /// The global descriptor the head was given (empty for maps without one).
    pub global: Vec<f32>,
}

/// Turns an interleaved `width × height × channels` image `turns` quarter turns clockwise;
/// returns it with its new width and height.
pub fn turn_image<T: Copy>(
    data: &[T],
    width: usize,
    height: usize,
    channels: usize,
    turns: u8,
) -> (Vec<T>, usize, usize) {
    assert_eq!(data.len(), width * height * channels, "image size");
    let turns = turns % 4;
    let (w2, h2) = if turns % 2 == 1 { (height, width) } else { (width, height) };
    if turns == 0 {
        return (data.to_vec(), w2, h2);
    }
    let mut out = Vec::with_capacity(data.len());
    for y2 in 0..h2 {
        for x2 in 0..w2 {
            // Source pixel of (x2, y2) in the turned image.
            let (x, y) = match turns {
                1 => (y2, height - 1 - x2),
                2 => (width - 1 - x2, height - 1 - y2),
                _ => (width - 1 - y2, x2),
            };
            out.extend_from_slice(&data[(y * width + x) * channels..][..channels]);
        }
    }
    (out, w2, h2)
}

/// Where a point `(u, v)` of an image turned `turns` quarter turns clockwise lies in the upright
/// `width × height` image (continuous coordinates: pixel x spans [x, x + 1)).
pub fn upright_point(u: f64, v: f64, width: usize, height: usize, turns: u8) -> (f64, f64) {
    let (w, h) = (width as f64, height as f64);
    match turns % 4 {
        0 => (u, v),
        1 => (v, h - u),
        2 => (w - u, h - v),
        _ => (w - v, u),
    }
}

impl Prediction {
    /// Centre of cell `(i, j)` in the upright preprocessed image's pixels.
    pub fn cell_pixel(&self, i: usize, j: usize) -> (f64, f64) {
        let (u, v) = self.encoded.cell_pixel(i, j);
        upright_point(u, v, self.image.width, self.image.height, self.quarter_turns)
    }

    /// The image and its local features, as the refinement against a structure reads them.
    pub fn keypoints(&self) -> KeypointImage<'_> {
        KeypointImage { image: &self.image, encoded: &self.encoded, quarter_turns: self.quarter_turns }
    }

    /// Per cell (row-major), the pixel distance between the cell's centre and its predicted point
    /// projected with the pose `cam_to_world`; infinite where the point is behind the camera.
    pub fn reprojection_errors(
        &self,
        cam_to_world: &glace_geometry::CamToWorld,
        distortion: Option<Distortion>,
    ) -> Vec<f64> {
        let f = &self.encoded.features;
        let camera = Camera { intrinsics: self.image.intrinsics, distortion };
        let w2c = cam_to_world.inverse();
        self.coords_n3
            .chunks_exact(3)
            .enumerate()
            .map(|(cell, xyz)| {
                let world = nalgebra::Point3::new(xyz[0] as f64, xyz[1] as f64, xyz[2] as f64);
                let (u, v) = self.cell_pixel(cell / f.width, cell % f.width);
                match camera.project(&w2c.transform_point(&world)) {
                    Some(uv) => ((uv.x - u).powi(2) + (uv.y - v).powi(2)).sqrt(),
                    None => f64::INFINITY,
                }
            })
            .collect()
    }
}

/// A preprocessed image and the local features of it turned `quarter_turns` quarter turns
/// clockwise: what the refinement (`glace_structure::refine`) matches against a map's points.
#[derive(Clone, Copy)]
pub struct KeypointImage<'a> {
    /// The preprocessed image, upright (as given).
    pub image: &'a Preprocessed,
    /// Its local features, with keypoints.
    pub encoded: &'a Encoded,
    /// Quarter turns clockwise the image was encoded in.
    pub quarter_turns: u8,
}

impl KeypointImage<'_> {
    /// Keypoint of cell `(i, j)` in the upright preprocessed image's pixels (its centre for
    /// encoders without keypoints).
    pub fn keypoint_pixel(&self, i: usize, j: usize) -> (f64, f64) {
        let (u, v) = self.encoded.keypoint_pixel(i, j);
        upright_point(u, v, self.image.width, self.image.height, self.quarter_turns)
    }
}

/// Preprocesses `rgb` (seen with `calibration`) at shorter side `image_height` and encodes it
/// turned `quarter_turns` quarter turns clockwise with keypoints: the image of a query at the
/// resolution a map's structure was detected at. The times count as decoding and encoding.
pub fn encode_keypoints(
    encoders: &Encoders,
    rgb: &RgbImage,
    calibration: &Calibration,
    image_height: u32,
    quarter_turns: u8,
    times: &mut StageTimes,
) -> Result<(Preprocessed, Encoded), LocalizeError> {
    let t = Instant::now();
    let (p, turned) = preprocess_turned(rgb, calibration, image_height, quarter_turns)?;
    times.decode_s += t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (rgb_hw3, image_hw, width, height) = planes(&p, &turned);
    let enc = encoders.local.encode_keypoints_with(encoders.matmul, rgb_hw3, image_hw, width, height);
    times.encode_s += t.elapsed().as_secs_f64();
    Ok((p, enc))
}

/// A preprocessed image's colour and grey planes turned some quarter turns clockwise, with
/// their width and height.
type Turned = (Vec<u8>, Vec<f32>, usize, usize);

/// `rgb` preprocessed at `image_height` (refused beyond [`MAX_NETWORK_PIXELS`]), and its planes
/// turned `quarter_turns` quarter turns clockwise when that is not 0.
fn preprocess_turned(
    rgb: &RgbImage,
    calibration: &Calibration,
    image_height: u32,
    quarter_turns: u8,
) -> Result<(Preprocessed, Option<Turned>), LocalizeError> {
    let (w0, h0) = rgb.dimensions();
    if w0 == 0 || h0 == 0 {
        return Err(LocalizeError::Input(format!("the image is empty ({w0}×{h0} pixels)")));
    }
    let (w, h) = glace_data::preprocess::resized_size(w0, h0, image_height);
    if (w as usize).saturating_mul(h as usize) > MAX_NETWORK_PIXELS {
        return Err(LocalizeError::Input(format!(
            "a {w0}×{h0} image becomes {w}×{h} at shorter side {image_height}: more than {MAX_NETWORK_PIXELS} pixels"
        )));
    }
    let p = preprocess(rgb, calibration, image_height);
    let turns = quarter_turns % 4;
    let turned = (turns > 0).then(|| {
        let (rgb_hw3, width, height) = turn_image(&p.rgb_hw3, p.width, p.height, 3, turns);
        let (image_hw, ..) = turn_image(&p.image_hw, p.width, p.height, 1, turns);
        (rgb_hw3, image_hw, width, height)
    });
    Ok((p, turned))
}

/// The planes the networks see: the turned ones, else the image's own.
fn planes<'a>(p: &'a Preprocessed, turned: &'a Option<Turned>) -> (&'a [u8], &'a [f32], usize, usize) {
    match turned {
        Some((rgb, grey, w, h)) => (rgb, grey, *w, *h),
        None => (&p.rgb_hw3, &p.image_hw, p.width, p.height),
    }
}

/// Largest image the networks are given after resizing (pixels): bounds the memory one query
/// can take (a 1 × 10⁵ strip would otherwise become 480 × 4.8·10⁷).
pub const MAX_NETWORK_PIXELS: usize = 1 << 26;

/// Encodes (local + global) and runs the head on one image held in memory, adding stage times
/// to `times` (the caller's decoding counts as `decode_s` if it adds it). `calibration` is for
/// the image as given; `descriptor` is the global descriptor for maps that take one from
/// outside (`features.npy`, or R2Former when no R2Former network is loaded). The networks see
/// the image turned `quarter_turns` quarter turns clockwise (0: as given; the local encoder is
/// not rotation-invariant, so a query held upside down next to upright mapping views is
/// recognised once turned back); the cells' pixels are reported in the image as given
/// ([`Prediction::cell_pixel`]), so the pose needs no change.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    map: &GlaceMap,
    encoders: &Encoders,
    rgb: &RgbImage,
    calibration: &Calibration,
    descriptor: Option<&[f32]>,
    image_height: u32,
    quarter_turns: u8,
    times: &mut StageTimes,
) -> Result<Prediction, LocalizeError> {
    let quarter_turns = quarter_turns % 4;
    let t = Instant::now();
    let (w0, h0) = rgb.dimensions();
    let (p, turned) = preprocess_turned(rgb, calibration, image_height, quarter_turns)?;
    let (rgb_hw3, image_hw, width, height) = planes(&p, &turned);
    times.decode_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let global_dim = map.head.config.c_in.saturating_sub(encoders.local.dim());
    let enc = if encoders.keypoints {
        encoders.local.encode_keypoints_with(encoders.matmul, rgb_hw3, image_hw, width, height)
    } else {
        encoders.local.encode_with(encoders.matmul, rgb_hw3, image_hw, width, height)
    };
    let mut global: Vec<f32> =
        match (&map.info.global, descriptor) {
            (GlobalSource::None, _) => Vec::new(),
            (GlobalSource::Builtin, _) => {
                let g = map.global.as_ref().ok_or_else(|| {
                    LocalizeError::Input("the map names its built-in global encoder but does not carry it".into())
                })?;
                g.encode(&GlobalInput {
                    descriptors: enc.features.data.clone(),
                    colour: colour_layout(rgb_hw3, width, height),
                })
            }
            (GlobalSource::R2Former { .. } | GlobalSource::FeaturesNpy, Some(d)) => d.to_vec(),
            (GlobalSource::R2Former { .. }, None) => match encoders.r2former {
                Some(net) if quarter_turns == 0 => net.encode(rgb.as_raw(), w0 as usize, h0 as usize),
                Some(net) => {
                    let (turned, w, h) = turn_image(rgb.as_raw(), w0 as usize, h0 as usize, 3, quarter_turns);
                    net.encode(&turned, w, h)
                }
                None => return Err(LocalizeError::Input(
                    "the map expects R2Former global descriptors: load its R2Former checkpoint or pass the descriptor"
                        .into(),
                )),
            },
            (GlobalSource::FeaturesNpy, None) => {
                return Err(LocalizeError::Input(
                    "the map expects a global descriptor from features.npy, but none was given for this image".into(),
                ))
            }
        };
    if global.len() != global_dim {
        return Err(LocalizeError::Input(format!(
            "the global descriptor has {} values; the map's head takes {global_dim}",
            global.len()
        )));
    }
    if global.iter().any(|v| !v.is_finite()) {
        return Err(LocalizeError::Input("the global descriptor holds NaN or infinite values".into()));
    }
    global.iter_mut().for_each(|v| *v *= map.global_scale);
    times.encode_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let f = &enc.features;
    let cells = f.height * f.width;
    // The global descriptor is the same for every cell: its share of the first layers once.
    let coords_n3 =
        map.head.forward_shared_with(encoders.matmul, &global, &f.data[..cells * f.channels], cells).coords_n3;
    times.head_s += t.elapsed().as_secs_f64();
    Ok(Prediction { image: p, encoded: enc, coords_n3, quarter_turns, global })
}

/// [`predict`] for a scene frame, upright: decodes its image (counted as `decode_s`); errors name its file.
pub fn predict_frame(
    map: &GlaceMap,
    encoders: &Encoders,
    frame: &Frame,
    global_row: Option<&[f32]>,
    image_height: u32,
    times: &mut StageTimes,
) -> Result<Prediction, LocalizeError> {
    let t = Instant::now();
    let rgb = frame.load_rgb()?;
    times.decode_s += t.elapsed().as_secs_f64();
    predict(map, encoders, &rgb, &frame.calibration, global_row, image_height, 0, times).map_err(|e| match e {
        LocalizeError::Input(m) => LocalizeError::Data(DataError::format(&frame.rgb_path, None, m)),
        other => other,
    })
}

/// PnP-RANSAC on a prediction: one correspondence per cell, the cell's pixel undistorted when
/// the camera has lens distortion. A pose that is not finite counts as a failure.
pub fn solve(
    prediction: &Prediction,
    distortion: Option<Distortion>,
    ransac: &RansacConfig,
) -> Result<RansacResult, PoseFailure> {
    let (p, enc, coords) = (&prediction.image, &prediction.encoded, &prediction.coords_n3);
    let f = &enc.features;
    let cells = f.height * f.width;
    let camera = Camera { intrinsics: p.intrinsics, distortion };
    let mut pixels = Vec::with_capacity(cells);
    let mut points = Vec::with_capacity(cells);
    for i in 0..f.height {
        for j in 0..f.width {
            let (u, v) = prediction.cell_pixel(i, j);
            let ideal = camera.undistort_pixel(&nalgebra::Point2::new(u, v));
            pixels.push([ideal.x, ideal.y]);
            let k = (i * f.width + j) * 3;
            points.push([coords[k] as f64, coords[k + 1] as f64, coords[k + 2] as f64]);
        }
    }
    let result = ransac_pnp(&pixels, &points, &p.intrinsics, ransac)?;
    if result.pose.to_matrix().iter().any(|v| !v.is_finite()) {
        return Err(PoseFailure::NotFinite);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turned_pixels_map_back_to_their_source() {
        let (w, h) = (5, 3);
        let image: Vec<u32> = (0..(w * h) as u32).collect();
        for turns in 0..4u8 {
            let (turned, w2, h2) = turn_image(&image, w, h, 1, turns);
            assert_eq!((w2, h2), if turns % 2 == 1 { (h, w) } else { (w, h) });
            for y2 in 0..h2 {
                for x2 in 0..w2 {
                    let (u, v) = upright_point(x2 as f64 + 0.5, y2 as f64 + 0.5, w, h, turns);
                    let source = (v.floor() as usize) * w + u.floor() as usize;
                    assert_eq!(turned[y2 * w2 + x2], image[source], "turns {turns} at ({x2}, {y2})");
                }
            }
        }
        // Clockwise: the upright top-left corner goes to the turned image's top right.
        let (once, ..) = turn_image(&image, w, h, 1, 1);
        assert_eq!(once[h - 1], image[0]);
        // Channels move together; four turns are the identity.
        let rgb: Vec<u8> = (0..(w * h * 3) as u8).collect();
        let (mut back, mut cw, mut ch) = (rgb.clone(), w, h);
        for _ in 0..4 {
            (back, cw, ch) = turn_image(&back, cw, ch, 3, 1);
        }
        assert_eq!((back, cw, ch), (rgb, w, h));
    }
}
