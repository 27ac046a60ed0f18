//! # glace
//!
//! Visual relocalization by scene coordinate regression (GLACE, CVPR 2024) as a library: train a
//! small network for a scene from posed images ([`map_scene`], [`map_frames`]), then hand it
//! camera frames and get their 6-DoF poses back ([`Localizer::localize`]), in memory, from any
//! number of threads.
//!
//! The command line, the Python package and the HTTP service are thin layers over these calls.
//!
//! ```no_run
//! use glace::{camera_from_matrix, read_image, Localizer, LocalizerOptions, Map};
//!
//! let map = Map::open("maps/desk.glace")?;
//! let localizer = Localizer::new(&map, LocalizerOptions::default())?;
//! let camera = camera_from_matrix(&[[520.9, 0.0, 325.1], [0.0, 521.0, 249.7], [0.0, 0.0, 1.0]], None)?;
//! let image = read_image("frame.png")?;
//! let found = localizer.localize((&image).into(), &camera)?;
//! if let Some(pose) = found.cam_to_world {
//!     println!("{}", pose.to_matrix());
//! }
//! # Ok::<(), glace::Error>(())
//! ```
//!
//! Conventions: poses are camera-to-world ([`CamToWorld`]) with OpenCV camera axes (x right,
//! y down, z forward) unless a name says world-to-camera; K is for the image as given; pixel k
//! covers [k, k + 1).

#![warn(missing_docs)]

mod colmap;
pub mod convert;
mod encoders;
mod error;
mod localizer;
mod map;
mod mapping;
mod pointcloud;
mod run;

pub use colmap::{export_colmap, model_image, model_text, write_model, ColmapSummary, ModelImage, ObservedPoint};
pub use encoders::LocalEncoderChoice;
pub use error::{chain_message, error_message, Error, Result};
pub use localizer::{
    camera_from_matrix, ImageView, Localization, Localizer, LocalizerOptions, PixelFormat, Query, RansacOptions,
    SceneCoordinates, StageTimes, Turns,
};
pub use map::{Map, MapFormat};
pub use mapping::{
    map_frames, map_scene, options_from_json, preset, CancelToken, GlobalChoice, MapOptions, MapReport, Mapped,
    MappingFrame, Observer, Progress, Silent,
};
pub use pointcloud::{export_pointcloud, ColouredPoint};
pub use run::{localize_scene, FrameOutcome, SceneRun, StageMs};

/// How outputs are checked against inputs and written ([`outputs::Plan`], [`outputs::write_file`]).
pub use glace_outputs as outputs;

pub use glace_data::{Calibration, Frame, Scene, SceneOptions, SceneSummary, Split, SplitKind};
pub use glace_geometry::{CamToWorld, Camera, Distortion, Intrinsics, PoseError, WorldToCam};
pub use glace_localize::metrics::Summary;
pub use glace_localize::posefile::{read_pose_file, write_pose_file, PoseRecord};
pub use glace_nn::bf16::Bf16Kernel;
pub use glace_nn::linalg::{Matmul, Precision};
pub use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
pub use image::RgbImage;
/// The linear algebra of poses ([`CamToWorld`] wraps an `nalgebra::Isometry3<f64>`).
pub use nalgebra;

/// Hex sha256 of a file (how maps and weights are identified).
pub fn file_sha256(path: impl AsRef<std::path::Path>) -> Result<String> {
    Ok(glace_formats::weights::sha256_file(path.as_ref())?)
}

/// Decodes a PNG or JPEG file to 8-bit RGB (grey replicated, alpha dropped).
pub fn read_image(path: impl AsRef<std::path::Path>) -> Result<RgbImage> {
    Ok(glace_data::imageio::load_rgb8(path.as_ref())?)
}

/// Decodes a PNG or JPEG held in memory to 8-bit RGB; truncated or corrupt data is an error.
/// Images over `max_pixels` are refused before their pixels are allocated.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    use image::ImageDecoder;
    if let Some(why) = glace_data::imageio::jpeg_truncation(bytes) {
        return Err(Error::usage("image", why));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::usage("image", e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::usage("image", "not a PNG or JPEG image"));
    }
    let decoder = reader.into_decoder().map_err(|e| Error::usage("image", e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if (w as u64) * (h as u64) > max_pixels {
        return Err(Error::usage("image", format!("{w}×{h} is more than {max_pixels} pixels")));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| Error::usage("image", e.to_string()))?;
    Ok(img.to_rgb8())
}
