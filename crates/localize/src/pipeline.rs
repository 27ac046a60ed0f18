//! Localizing one query image with a map: encode (local + global), predict a scene coordinate
//! per cell, undistort the cell pixels when the scene has lens distortion, PnP-RANSAC.

use std::time::Instant;

use glace_data::imageio::load_rgb8;
use glace_data::{preprocess, DataError, Frame, Preprocessed};
use glace_geometry::ransac::{ransac_pnp, RansacConfig, RansacResult};
use glace_geometry::{Camera, Distortion};
use glace_nn::global::{colour_layout, GlobalInput};
use glace_nn::map::GlobalSource;
use glace_nn::{Encoded, GlaceMap, LocalEncoder, R2Former};
use serde::Serialize;

/// Seconds spent per stage for one frame.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StageTimes {
    /// Image decoding and preprocessing.
    pub decode_s: f64,
    /// Local and global encoding.
    pub encode_s: f64,
    /// Head forward.
    pub head_s: f64,
    /// RANSAC.
    pub ransac_s: f64,
}

/// The outcome for one frame.
pub struct FrameResult {
    /// RANSAC result, or why it failed.
    pub result: Result<RansacResult, String>,
    /// Timings.
    pub times: StageTimes,
}

/// The networks a map needs besides its head: the local encoder it was trained with, and
/// R2Former when its global descriptors come from R2Former.
#[derive(Clone, Copy)]
pub struct Encoders<'a> {
    /// Local encoder.
    pub local: &'a LocalEncoder,
    /// R2Former global encoder.
    pub r2former: Option<&'a R2Former>,
}

/// A frame's scene-coordinate prediction: the preprocessed image, its encoding and one world
/// point per cell (row-major over the feature grid).
pub struct Prediction {
    /// The image the network saw.
    pub image: Preprocessed,
    /// Local features and the cell ↔ pixel mapping.
    pub encoded: Encoded,
    /// Cells × 3 world points.
    pub coords_n3: Vec<f32>,
}

impl Prediction {
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
                let (u, v) = self.encoded.cell_pixel(cell / f.width, cell % f.width);
                match camera.project(&w2c.transform_point(&world)) {
                    Some(uv) => ((uv.x - u).powi(2) + (uv.y - v).powi(2)).sqrt(),
                    None => f64::INFINITY,
                }
            })
            .collect()
    }
}

/// Decodes, encodes (local + global) and runs the head on one frame, adding stage times to
/// `times`. `global_row` is its `features.npy` row when the map expects one.
pub fn predict_frame(
    map: &GlaceMap,
    encoders: &Encoders,
    frame: &Frame,
    global_row: Option<&[f32]>,
    image_height: u32,
    times: &mut StageTimes,
) -> Result<Prediction, DataError> {
    let t = Instant::now();
    let rgb = load_rgb8(&frame.rgb_path)?;
    let p = preprocess(&rgb, &frame.calibration, image_height);
    times.decode_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let enc = encoders.local.encode(&p.rgb_hw3, &p.image_hw, p.width, p.height);
    let mut global: Vec<f32> = match &map.info.global {
        GlobalSource::None => Vec::new(),
        GlobalSource::Builtin => {
            let g = map.global.as_ref().expect("maps with a built-in global encoder carry it");
            g.encode(&GlobalInput {
                descriptors: enc.features.data.clone(),
                colour: colour_layout(&p.rgb_hw3, p.width, p.height),
            })
        }
        GlobalSource::R2Former { .. } => match encoders.r2former {
            Some(net) => net.encode(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize),
            None => {
                return Err(DataError::format(
                    &frame.rgb_path,
                    None,
                    "the map expects R2Former global descriptors, but no R2Former checkpoint was loaded",
                ))
            }
        },
        GlobalSource::FeaturesNpy => global_row.map(<[f32]>::to_vec).ok_or_else(|| {
            DataError::format(
                &frame.rgb_path,
                None,
                "the map expects a global descriptor from features.npy, but this split has none",
            )
        })?,
    };
    global.iter_mut().for_each(|v| *v *= map.global_scale);
    times.encode_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let f = &enc.features;
    let cells = f.height * f.width;
    let mut x = Vec::with_capacity(cells * (global.len() + f.channels));
    for c in 0..cells {
        x.extend_from_slice(&global);
        x.extend_from_slice(&f.data[c * f.channels..(c + 1) * f.channels]);
    }
    let coords_n3 = map.head.forward(&x, cells).coords_n3;
    times.head_s += t.elapsed().as_secs_f64();
    Ok(Prediction { image: p, encoded: enc, coords_n3 })
}

/// Localizes one frame. `global_row` is its `features.npy` row when the map expects one.
pub fn localize_frame(
    map: &GlaceMap,
    encoders: &Encoders,
    frame: &Frame,
    distortion: Option<Distortion>,
    global_row: Option<&[f32]>,
    image_height: u32,
    ransac: &RansacConfig,
) -> Result<FrameResult, DataError> {
    let mut times = StageTimes::default();
    let Prediction { image: p, encoded: enc, coords_n3: coords } =
        predict_frame(map, encoders, frame, global_row, image_height, &mut times)?;
    let f = &enc.features;
    let cells = f.height * f.width;

    let t = Instant::now();
    let camera = Camera { intrinsics: p.intrinsics, distortion };
    let mut pixels = Vec::with_capacity(cells);
    let mut points = Vec::with_capacity(cells);
    for i in 0..f.height {
        for j in 0..f.width {
            let (u, v) = enc.cell_pixel(i, j);
            let ideal = camera.undistort_pixel(&nalgebra::Point2::new(u, v));
            pixels.push([ideal.x, ideal.y]);
            let k = (i * f.width + j) * 3;
            points.push([coords[k] as f64, coords[k + 1] as f64, coords[k + 2] as f64]);
        }
    }
    let result = ransac_pnp(&pixels, &points, &p.intrinsics, ransac).map_err(|e| e.to_string());
    times.ransac_s = t.elapsed().as_secs_f64();
    Ok(FrameResult { result, times })
}
