//! Mapping: training a scene's map from posed images, on disk or in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use glace_data::{Calibration, Frame, Scene};
use glace_geometry::{CamToWorld, Camera};
use image::RgbImage;

use glace_mapping::pipeline::LoadedR2Former;
pub use glace_mapping::pipeline::{GlobalChoice, MapOptions, MapReport, Progress, Silent};

use crate::{Error, LocalEncoderChoice, Map, Result};

/// A posed, calibrated image for [`map_frames`].
#[derive(Clone, Debug)]
pub struct MappingFrame {
    /// A name for logs (a file name, a timestamp).
    pub name: String,
    /// The pixels.
    pub image: RgbImage,
    /// Camera-to-world pose, OpenCV camera axes.
    pub world_from_cam: CamToWorld,
    /// K and lens distortion of the image as given (one lens for all frames of a map).
    pub camera: Camera,
}

/// A map just trained, with the log of how.
pub struct Mapped {
    /// The map (save it with [`Map::save`]).
    pub map: Map,
    /// Timings, buffer and loss statistics, options used.
    pub report: MapReport,
}

impl Mapped {
    /// Writes the map and its JSON log (by default `<map>.json`), each under a temporary name
    /// renamed into place when complete. Returns the log's path.
    pub fn save(&self, map: &std::path::Path, log: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
        let log = log.map(std::path::Path::to_path_buf).unwrap_or_else(|| map.with_extension("json"));
        if log == map {
            return Err(Error::usage("log", format!("{}: the log would overwrite the map", log.display())));
        }
        self.map.save(map)?;
        let text = serde_json::to_string_pretty(&self.report).map_err(|e| Error::Internal(e.to_string()))?;
        glace_outputs::write_file(&log, text.as_bytes()).map_err(|e| Error::Write { path: log.clone(), source: e })?;
        Ok(log)
    }
}

/// The options of a preset with changes given as JSON object fields named as [`MapOptions`]'
/// fields (`{"iterations": 5000}`): how the Python package passes keyword arguments. Unknown
/// names and wrong types are usage errors naming the field.
pub fn options_from_json(preset_name: &str, changes: &serde_json::Value) -> Result<MapOptions> {
    let mut value = serde_json::to_value(preset(preset_name)?).map_err(|e| Error::Internal(e.to_string()))?;
    let Some(changes) = changes.as_object() else {
        return Err(Error::usage("options", "expected named options"));
    };
    // A budget the caller states is the budget used (as on the command line).
    if (changes.contains_key("iterations") || changes.contains_key("buffer_size"))
        && !changes.contains_key("scene_budget")
    {
        value["scene_budget"] = serde_json::Value::Bool(false);
    }
    for (k, v) in changes {
        if k == "preset" || value.get(k).is_none() {
            return Err(Error::usage(k.as_str(), "unknown mapping option"));
        }
        value[k] = v.clone();
        serde_json::from_value::<MapOptions>(value.clone()).map_err(|e| Error::usage(k.as_str(), e.to_string()))?;
    }
    let options: MapOptions = serde_json::from_value(value).map_err(|e| Error::usage("options", e.to_string()))?;
    options.validate().map_err(|(option, message)| Error::usage(option, message))?;
    Ok(options)
}

/// A flag another thread can raise to stop a mapping run or a query ([`Error::Cancelled`]).
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A new, lowered flag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the run to stop at its next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// The flag itself, for the solvers that check it inside their loops.
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// A [`Progress`] from two closures: `on_phase(name, total)` and `on_step(done, status)`, and a
/// [`CancelToken`].
pub struct Observer<P, S> {
    /// Called when a phase starts.
    pub on_phase: P,
    /// Called after each step.
    pub on_step: S,
    /// Raised to stop.
    pub cancel: CancelToken,
}

impl<P: FnMut(&str, usize), S: FnMut(usize, &str)> Progress for Observer<P, S> {
    fn phase(&mut self, name: &str, total: usize) {
        (self.on_phase)(name, total)
    }
    fn step(&mut self, done: usize, status: &str) {
        (self.on_step)(done, status)
    }
    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// The options of a named preset: `cpu` (the default on a machine without a GPU) or the
/// reference's `7scenes`, `12scenes`, `cambridge`, `rooms`, `aachen`.
///
/// ```
/// let o = glace::preset("cpu")?;
/// assert_eq!((o.head_channels, o.batch_size), (256, 1024));
/// assert!(glace::preset("gpu-someday").is_err());
/// # Ok::<(), glace::Error>(())
/// ```
pub fn preset(name: &str) -> Result<MapOptions> {
    MapOptions::preset(name).ok_or_else(|| {
        Error::usage("preset", format!("unknown preset '{name}' (cpu, 7scenes, 12scenes, cambridge, rooms, aachen)"))
    })
}

/// Trains a map for the scene's training split (see `glace map --help` for what each option
/// does). Options are checked before any work; `progress` sees each phase and can cancel.
///
/// ```no_run
/// use glace::{map_scene, preset, LocalEncoderChoice, Scene, SceneOptions, Silent};
/// let scene = Scene::open("scenes/desk", &SceneOptions::default())?;
/// let mut options = preset("cpu")?;
/// (options.iterations, options.scene_budget) = (5000, false);
/// let mapped = map_scene(&scene, &options, &LocalEncoderChoice::XFeat, &mut Silent)?;
/// mapped.map.save("maps/desk.glace")?;
/// # Ok::<(), glace::Error>(())
/// ```
pub fn map_scene(
    scene: &Scene,
    options: &MapOptions,
    encoder: &LocalEncoderChoice,
    progress: &mut dyn Progress,
) -> Result<Mapped> {
    options.validate().map_err(|(option, message)| Error::usage(option, message))?;
    let encoder = encoder.load()?;
    // R2Former is loaded (and its checkpoint hashed) before any long work.
    let r2former = match &options.global {
        GlobalChoice::R2Former(checkpoint) => {
            Some((glace_formats::load_r2former(checkpoint)?, glace_formats::weights::sha256_file(checkpoint)?))
        }
        _ => None,
    };
    let loaded = r2former.as_ref().map(|(net, sha256)| LoadedR2Former { net, sha256: sha256.clone() });
    let (map, report) = glace_mapping::map_scene(scene, &encoder, options, loaded.as_ref(), progress)?;
    // The map as its file will hold it (fp16 weights), so that localizing with the returned map
    // and with the saved one give the same poses.
    let bytes = glace_formats::map_file::to_bytes(&map)?;
    let map = glace_formats::map_file::from_bytes(&bytes, std::path::Path::new("<memory>"))?;
    Ok(Mapped { map: Map::from_glace_map(map), report })
}

/// Trains a map from frames held in memory. They must share one lens: every frame's
/// `camera.distortion` equal to the first's (a frame whose lens differs is refused by index, as
/// the map's training undistorts all views alike).
pub fn map_frames(
    frames: Vec<MappingFrame>,
    options: &MapOptions,
    encoder: &LocalEncoderChoice,
    progress: &mut dyn Progress,
) -> Result<Mapped> {
    let Some(distortion) = frames.first().map(|f| f.camera.distortion) else {
        return Err(Error::usage("frames", "no frames to map"));
    };
    let frames: Vec<Frame> = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            if f.image.width() == 0 || f.image.height() == 0 {
                return Err(Error::usage("frames", format!("frame {i} ('{}') has an empty image", f.name)));
            }
            if f.camera.distortion != distortion {
                return Err(Error::usage(
                    "frames",
                    format!(
                        "frame {i} ('{}') has lens distortion {:?}, frame 0 {:?}: a map is made from one lens",
                        f.name, f.camera.distortion, distortion
                    ),
                ));
            }
            Ok(Frame::in_memory(f.name, i, f.image, f.world_from_cam, Calibration::Matrix(f.camera.intrinsics)))
        })
        .collect::<Result<_>>()?;
    let scene = Scene::in_memory("<memory>", frames, Vec::new(), distortion);
    map_scene(&scene, options, encoder, progress)
}
