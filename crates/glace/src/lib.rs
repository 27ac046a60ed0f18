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
//! if let Some(pose) = found.world_from_cam() {
//!     println!("camera at {}", pose.center());
//! }
//! # Ok::<(), glace::Error>(())
//! ```
//!
//! Conventions: a pose's direction is in its type and its name, as pycolmap names them:
//! `cam_from_world` ([`WorldToCam`]) takes world points into the camera (pose files and COLMAP
//! store it), `world_from_cam` ([`CamToWorld`]) is the camera's place in the world; OpenCV camera
//! axes (x right, y down, z forward); K is for the image as given; pixel k covers [k, k + 1).

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
    camera_from_matrix, Evidence, EvidenceRule, Failure, Found, ImageView, Localization, Localizer, LocalizerOptions,
    Outcome, PixelFormat, Query, RansacOptions, SceneCoordinates, StageTimes, Turns,
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
pub use glace_nn::memory::keep_freed_memory;
pub use image::RgbImage;
/// The linear algebra of poses ([`CamToWorld`] wraps an `nalgebra::Isometry3<f64>`).
pub use nalgebra;

/// An [`outputs::Plan`] that already reads the networks' weights (the XFeat cache and
/// `GLACE_WEIGHTS`): every command that loads a network starts its plan here, so that no output
/// can replace the weights it is about to read.
pub fn plan() -> outputs::Plan {
    let mut plan = outputs::Plan::new().input("the weights cache (GLACE_CACHE)", &glace_formats::weights::cache_dir());
    if let Some(dir) = std::env::var_os("GLACE_WEIGHTS") {
        plan = plan.input("GLACE_WEIGHTS", std::path::Path::new(&dir));
    }
    plan
}

/// Refuses, before any work, an export `out` that would replace the scene, the map or anything
/// either links to ([`plan`]); library callers get the command line's protection.
pub(crate) fn check_export(
    localizer: &Localizer,
    scene: &Scene,
    out: &std::path::Path,
    kind: outputs::Kind,
    force: bool,
) -> Result<()> {
    let mut plan = plan();
    if !scene.root.as_os_str().is_empty() && scene.root.exists() {
        plan = plan.input("scene", &scene.root);
    }
    if let Some(p) = localizer.map().path() {
        plan = plan.input("map", p);
    }
    Ok(plan.output("out", out, kind, force).check()?)
}

/// Hex sha256 of a file (how maps and weights are identified).
pub fn file_sha256(path: impl AsRef<std::path::Path>) -> Result<String> {
    Ok(glace_formats::weights::sha256_file(path.as_ref())?)
}

/// Decodes a PNG or JPEG file to 8-bit RGB (grey replicated, alpha dropped).
pub fn read_image(path: impl AsRef<std::path::Path>) -> Result<RgbImage> {
    Ok(glace_data::imageio::load_rgb8(path.as_ref())?)
}

/// Decodes a PNG or JPEG held in memory to 8-bit RGB, under the same policy as image files
/// ([`glace_data::imageio::decode_rgb8`]: whole, 8-bit, within the size and aspect limits);
/// images over `max_pixels` are also refused, all from the header before pixels are allocated.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let (w, h) = probe_image(bytes)?;
    if (w as u64) * (h as u64) > max_pixels {
        return Err(Error::usage("image", format!("{w}×{h} is more than {max_pixels} pixels")));
    }
    glace_data::imageio::decode_rgb8(bytes, std::path::Path::new("image"))
        .map_err(|e| Error::usage("image", strip_name(&e.to_string())))
}

/// Width and height of a PNG or JPEG held in memory, checked as [`decode_image`] checks it,
/// from the header alone (a service refuses a bad image before queueing its work).
pub fn probe_image(bytes: &[u8]) -> Result<(u32, u32)> {
    glace_data::imageio::probe_bytes(bytes, std::path::Path::new("image"))
        .map_err(|e| Error::usage("image", strip_name(&e.to_string())))
}

/// A data error's message without the leading "image: " the name adds (the usage error adds it).
fn strip_name(message: &str) -> String {
    message.strip_prefix("image: ").unwrap_or(message).to_string()
}
