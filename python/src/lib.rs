//! `glace._glace`: the native part of the Python package, a thin layer over the `glace` crate.
//! Compute runs with the GIL released; errors become `glace.InputError` (a `ValueError`) for
//! the caller's input and `glace.Error` otherwise, with the message the command line prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

fn raise(py: Python<'_>, e: glace::Error) -> PyErr {
    if matches!(e, glace::Error::Cancelled) {
        return PyKeyboardInterrupt::new_err("mapping cancelled");
    }
    let class = if e.is_input_error() { "InputError" } else { "Error" };
    match py.import("glace._errors").and_then(|m| m.getattr(class)) {
        Ok(cls) => match cls.cast_into::<pyo3::types::PyType>() {
            Ok(t) => PyErr::from_type(t, glace::error_message(&e)),
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(glace::error_message(&e)),
        },
        Err(err) => err,
    }
}

fn input_error(py: Python<'_>, option: &str, msg: impl Into<String>) -> PyErr {
    raise(py, glace::Error::usage(option, msg))
}

fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

fn matrix4(py: Python<'_>, m: glace::nalgebra::Matrix4<f64>) -> Py<PyAny> {
    let v: Vec<f64> = (0..4).flat_map(|r| (0..4).map(move |c| m[(r, c)])).collect();
    Array2::from_shape_vec((4, 4), v).expect("16 values").into_pyarray(py).into_any().unbind()
}

/// An image as an `(H, W, 3)` or `(H, W)` uint8 array, copied (so that the caller may change it
/// while glace works).
fn image_pixels(py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<(u32, u32, bool, Vec<u8>)> {
    let Ok(arr) = image.cast::<PyUntypedArray>() else {
        return Err(input_error(py, "image", format!("expected a numpy array, got {}", image.get_type().name()?)));
    };
    let dtype = arr.dtype();
    let shape = arr.shape().to_vec();
    let Ok(arr) = image.cast::<PyArrayDyn<u8>>() else {
        return Err(input_error(py, "image", format!("dtype {dtype}, expected uint8")));
    };
    let (h, w, rgb) = match shape[..] {
        [h, w, 3] => (h, w, true),
        [h, w] => (h, w, false),
        _ => return Err(input_error(py, "image", format!("shape {shape:?}, expected (H, W, 3) RGB or (H, W) grey"))),
    };
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(input_error(py, "image", format!("shape {shape:?} is too large")));
    };
    let data = arr.readonly().as_array().iter().copied().collect();
    Ok((w32, h32, rgb, data))
}

/// K as a 3×3 float64 array (anything numpy can turn into one), and the optional distortion.
fn camera(py: Python<'_>, k: &Bound<'_, PyAny>, distortion: Option<Vec<f64>>) -> PyResult<glace::Camera> {
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float64")?;
    let arr = np
        .call_method("asarray", (k,), Some(&kwargs))
        .map_err(|e| input_error(py, "K", format!("not a 3×3 matrix of numbers ({e})")))?;
    let arr = arr.cast_into::<PyArrayDyn<f64>>().map_err(|_| input_error(py, "K", "not a numeric array"))?;
    let shape = arr.shape().to_vec();
    if shape != [3, 3] {
        return Err(input_error(py, "K", format!("shape {shape:?}, expected (3, 3)")));
    }
    let v: Vec<f64> = arr.readonly().as_array().iter().copied().collect();
    let rows = [[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], v[8]]];
    glace::camera_from_matrix(&rows, distortion.as_deref()).map_err(|e| raise(py, e))
}

/// A trained map (`Map.open(path)`): a glace map or an official GLACE `.pt` head.
#[pyclass(frozen, module = "glace")]
struct Map {
    inner: glace::Map,
}

#[pymethods]
impl Map {
    /// Opens and verifies a map file.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Map> {
        let inner = py.detach(|| glace::Map::open(&path)).map_err(|e| raise(py, e))?;
        Ok(Map { inner })
    }
    /// Where the map was read from.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.inner.path().map(PathBuf::from)
    }
    /// `glace-map` or `reference-pt`.
    #[getter]
    fn format(&self) -> String {
        serde_json::to_value(self.inner.format()).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
    /// How the map was trained (head, encoders, training options), as a dict.
    #[getter]
    fn description<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.summary_json())
    }
    /// Width of the global descriptor the head takes (0 for ACE-style maps).
    #[getter]
    fn global_dim(&self) -> usize {
        self.inner.global_dim()
    }
    fn __repr__(&self) -> String {
        let c = self.inner.head_config();
        format!(
            "glace.Map({:?}, encoder={}, head={}x{}, parameters={})",
            self.inner.path().map(|p| p.display().to_string()).unwrap_or_else(|| "<memory>".into()),
            self.inner.description().local_encoder.kind,
            c.c_in,
            c.channels,
            self.inner.parameters()
        )
    }
}

/// What one `Localizer.localize` call found.
#[pyclass(frozen, get_all, module = "glace")]
struct Localization {
    /// True when a pose was found.
    success: bool,
    /// The pose as a 4×4 float64 array taking world points into the camera, or None.
    cam_from_world: Option<Py<PyAny>>,
    /// Its inverse, the camera's place in the world (its last column is the camera centre), or None.
    world_from_cam: Option<Py<PyAny>>,
    /// `cam_from_world`'s rotation as a quaternion (w, x, y, z, w ≥ 0), as pose files store it.
    cam_from_world_quaternion: Option<(f64, f64, f64, f64)>,
    /// `cam_from_world`'s translation (x, y, z), as pose files store it.
    cam_from_world_translation: Option<(f64, f64, f64)>,
    /// Inliers of the final solve (matches to the map's points when refined).
    inliers: usize,
    /// The pose was refined against the map's triangulated points.
    refined: bool,
    /// The refinement started from the points of the mapping views nearest by global
    /// descriptor (the scene coordinates' pose found less support in the points, or none).
    retrieved: bool,
    /// Why no pose was found.
    failure: Option<String>,
    /// Milliseconds per stage: decode, encode, head, ransac.
    times_ms: Py<PyAny>,
    /// With coordinates=True: dict of `pixels` (N, 2) float64, `points` (N, 3) float32,
    /// `colours` (N, 3) uint8 and `grid` (rows, cols).
    coordinates: Option<Py<PyAny>>,
}

#[pymethods]
impl Localization {
    fn __repr__(&self) -> String {
        match &self.cam_from_world_translation {
            Some(t) => {
                format!("glace.Localization(success=True, inliers={}, cam_from_world_translation={t:?})", self.inliers)
            }
            None => {
                format!("glace.Localization(success=False, failure={:?})", self.failure.clone().unwrap_or_default())
            }
        }
    }
}

fn localization(py: Python<'_>, found: glace::Localization) -> PyResult<Localization> {
    let times = PyDict::new(py);
    let t = &found.times;
    for (k, v) in [
        ("decode", t.decode_s),
        ("encode", t.encode_s),
        ("head", t.head_s),
        ("ransac", t.ransac_s),
        ("refine", t.refine_s),
    ] {
        times.set_item(k, 1000.0 * v)?;
    }
    let qt = found.cam_from_world().map(|p| p.quaternion_translation());
    let (success, cam_from_world, world_from_cam) = (found.success(), found.cam_from_world(), found.world_from_cam());
    let (inliers, refined, failure) = (found.inliers(), found.refined(), found.failure().map(str::to_string));
    let retrieved = found.retrieved();
    let coordinates = match found.coordinates {
        None => None,
        Some(c) => {
            let d = PyDict::new(py);
            let n = c.coords_n3.len();
            let flat = |v: Vec<f64>, cols| Array2::from_shape_vec((n, cols), v).expect("sizes agree");
            d.set_item("pixels", flat(c.pixels_n2.iter().flatten().copied().collect(), 2).into_pyarray(py))?;
            let points: Vec<f32> = c.coords_n3.iter().flatten().copied().collect();
            d.set_item("points", Array2::from_shape_vec((n, 3), points).expect("sizes agree").into_pyarray(py))?;
            let colours: Vec<u8> = c.colours_n3.iter().flatten().copied().collect();
            d.set_item("colours", Array2::from_shape_vec((n, 3), colours).expect("sizes agree").into_pyarray(py))?;
            d.set_item("grid", (c.rows, c.cols))?;
            Some(d.into_any().unbind())
        }
    };
    Ok(Localization {
        success,
        cam_from_world: cam_from_world.map(|p| matrix4(py, p.to_matrix())),
        world_from_cam: world_from_cam.map(|p| matrix4(py, p.to_matrix())),
        cam_from_world_quaternion: qt.map(|(q, _)| (q[0], q[1], q[2], q[3])),
        cam_from_world_translation: qt.map(|(_, t)| (t[0], t[1], t[2])),
        inliers,
        refined,
        retrieved,
        failure,
        times_ms: times.into_any().unbind(),
        coordinates,
    })
}

/// How a `Localizer` is set up: every field's default is the library's (`glace::LocalizerOptions`
/// and the RANSAC and evidence defaults within it), so Python, the command line and the service
/// localize alike.
#[pyclass(module = "glace", get_all, set_all)]
#[derive(Clone)]
struct LocalizerOptions {
    hypotheses: usize,
    threshold: f64,
    inlier_alpha: f64,
    max_pixel_error: f64,
    max_tries: usize,
    refinement_rounds: usize,
    /// None or 0: no budget.
    time_budget_ms: Option<u64>,
    seed: u64,
    /// None: the height the map was trained at.
    image_height: Option<u32>,
    clean_global: bool,
    ace_encoder: Option<PathBuf>,
    r2former: Option<PathBuf>,
    /// "auto", "fp32" or "bf16".
    precision: String,
    /// "auto", "upright" or "all".
    turns: String,
    /// Refine poses against the map's points where it has them.
    structure: bool,
    min_inliers: usize,
    min_inlier_ratio: f64,
    min_spread: f64,
}

impl Default for LocalizerOptions {
    fn default() -> Self {
        let d = glace::LocalizerOptions::default();
        LocalizerOptions {
            hypotheses: d.ransac.hypotheses,
            threshold: d.ransac.threshold,
            inlier_alpha: d.ransac.inlier_alpha,
            max_pixel_error: d.ransac.max_pixel_error,
            max_tries: d.ransac.max_tries,
            refinement_rounds: d.ransac.refinement_rounds,
            time_budget_ms: d.ransac.time_budget.map(|t| t.as_millis() as u64),
            seed: d.ransac.seed,
            image_height: d.image_height,
            clean_global: d.clean_global,
            ace_encoder: d.ace_encoder,
            r2former: d.r2former,
            precision: d.precision.name().into(),
            turns: d.turns.name().into(),
            structure: !d.skip_structure,
            min_inliers: d.evidence.min_inliers,
            min_inlier_ratio: d.evidence.min_inlier_ratio,
            min_spread: d.evidence.min_spread,
        }
    }
}

impl LocalizerOptions {
    /// Sets the field `key` (a keyword of `Localizer`); unknown names are a TypeError, as for any
    /// Python call.
    fn set(&mut self, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match key {
            "hypotheses" => self.hypotheses = v.extract()?,
            "threshold" => self.threshold = v.extract()?,
            "inlier_alpha" => self.inlier_alpha = v.extract()?,
            "max_pixel_error" => self.max_pixel_error = v.extract()?,
            "max_tries" => self.max_tries = v.extract()?,
            "refinement_rounds" => self.refinement_rounds = v.extract()?,
            "time_budget_ms" => self.time_budget_ms = v.extract()?,
            "seed" => self.seed = v.extract()?,
            "image_height" => self.image_height = v.extract()?,
            "clean_global" => self.clean_global = v.extract()?,
            "ace_encoder" => self.ace_encoder = v.extract()?,
            "r2former" => self.r2former = v.extract()?,
            "precision" => self.precision = v.extract()?,
            "turns" => self.turns = v.extract()?,
            "structure" => self.structure = v.extract()?,
            "min_inliers" => self.min_inliers = v.extract()?,
            "min_inlier_ratio" => self.min_inlier_ratio = v.extract()?,
            "min_spread" => self.min_spread = v.extract()?,
            _ => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "Localizer() got an unexpected keyword argument '{key}'"
                )))
            }
        }
        Ok(())
    }

    /// Every field named in `kwargs`.
    fn set_all(&mut self, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        for (key, value) in kwargs.into_iter().flat_map(|k| k.iter()) {
            self.set(&key.extract::<String>()?, &value)?;
        }
        Ok(())
    }

    /// The library's options; a value that cannot be parsed is an InputError naming the field.
    fn to_rust(&self, py: Python<'_>) -> PyResult<glace::LocalizerOptions> {
        let precision = glace::Precision::parse(&self.precision).ok_or_else(|| {
            input_error(py, "precision", format!("'{}': expected auto, fp32 or bf16", self.precision))
        })?;
        let turns = glace::Turns::parse(&self.turns).map_err(|m| input_error(py, "turns", m))?;
        Ok(glace::LocalizerOptions {
            ransac: glace::RansacOptions {
                hypotheses: self.hypotheses,
                threshold: self.threshold,
                inlier_alpha: self.inlier_alpha,
                max_pixel_error: self.max_pixel_error,
                max_tries: self.max_tries,
                time_budget: self.time_budget_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
                refinement_rounds: self.refinement_rounds,
                seed: self.seed,
                cancel: None,
            },
            image_height: self.image_height,
            clean_global: self.clean_global,
            ace_encoder: self.ace_encoder.clone(),
            r2former: self.r2former.clone(),
            external_descriptors: false,
            precision,
            turns,
            skip_structure: !self.structure,
            evidence: glace::EvidenceRule {
                min_inliers: self.min_inliers,
                min_inlier_ratio: self.min_inlier_ratio,
                min_spread: self.min_spread,
            },
        })
    }
}

#[pymethods]
impl LocalizerOptions {
    /// The library's defaults, with any field given as a keyword.
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<LocalizerOptions> {
        let mut o = LocalizerOptions::default();
        o.set_all(kwargs)?;
        Ok(o)
    }

    fn __repr__(&self) -> String {
        format!(
            "glace.LocalizerOptions(hypotheses={}, threshold={}, time_budget_ms={:?}, seed={}, turns={:?}, \
             structure={}, min_inliers={}, …)",
            self.hypotheses,
            self.threshold,
            self.time_budget_ms,
            self.seed,
            self.turns,
            self.structure,
            self.min_inliers
        )
    }
}

/// A map ready to localize images; thread-safe, the GIL is released while it works.
#[pyclass(frozen, module = "glace")]
struct Localizer {
    inner: Arc<glace::Localizer>,
}

#[pymethods]
impl Localizer {
    /// `options` (default: `LocalizerOptions()`, the library's defaults) with any of its fields
    /// given as keywords on top.
    #[new]
    #[pyo3(signature = (map, options=None, **kwargs))]
    fn new(
        py: Python<'_>,
        map: &Map,
        options: Option<&LocalizerOptions>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Localizer> {
        let mut o = options.cloned().unwrap_or_default();
        o.set_all(kwargs)?;
        let options = o.to_rust(py)?;
        let map = map.inner.clone();
        let inner = py.detach(|| glace::Localizer::new(&map, options)).map_err(|e| raise(py, e))?;
        Ok(Localizer { inner: Arc::new(inner) })
    }

    /// Localizes one image: `image` (H, W, 3) or (H, W) uint8, `K` 3×3, optional OpenCV
    /// distortion k1 k2 p1 p2 [k3], optional global descriptor for maps that need one.
    #[pyo3(signature = (image, K, distortion=None, *, descriptor=None, coordinates=false))]
    #[allow(non_snake_case)]
    fn localize(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        K: &Bound<'_, PyAny>,
        distortion: Option<Vec<f64>>,
        descriptor: Option<Vec<f32>>,
        coordinates: bool,
    ) -> PyResult<Localization> {
        let camera = camera(py, K, distortion)?;
        let (w, h, rgb, data) = image_pixels(py, image)?;
        let inner = self.inner.clone();
        let found = py
            .detach(move || {
                let view =
                    if rgb { glace::ImageView::rgb8(w, h, &data) } else { glace::ImageView::gray8(w, h, &data) }?;
                let query = glace::Query { descriptor: descriptor.as_deref(), coordinates, ransac: None, cancel: None };
                inner.localize_with(view, &camera, &query)
            })
            .map_err(|e| raise(py, e))?;
        localization(py, found)
    }

    /// The map.
    #[getter]
    fn map(&self) -> Map {
        Map { inner: self.inner.map().clone() }
    }
    /// Shorter image side the networks see.
    #[getter]
    fn image_height(&self) -> u32 {
        self.inner.image_height()
    }
    /// True when each query must bring its global descriptor.
    #[getter]
    fn needs_descriptor(&self) -> bool {
        self.inner.needs_descriptor()
    }
}

/// A scene folder in the DSAC*/ACE layout.
#[pyclass(frozen, module = "glace")]
struct Scene {
    inner: glace::Scene,
}

#[pymethods]
impl Scene {
    /// Reads and validates a scene (every image header is checked).
    #[staticmethod]
    #[pyo3(signature = (path, *, skip_invalid_poses=false))]
    fn open(py: Python<'_>, path: PathBuf, skip_invalid_poses: bool) -> PyResult<Scene> {
        let options = glace::SceneOptions { skip_invalid_poses, ..Default::default() };
        let inner = py.detach(|| glace::Scene::open(&path, &options)).map_err(|e| raise(py, e.into()))?;
        Ok(Scene { inner })
    }
    /// The scene folder.
    #[getter]
    fn root(&self) -> PathBuf {
        self.inner.root.clone()
    }
    /// The scene's OpenCV distortion [k1, k2, p1, p2, k3], or None.
    #[getter]
    fn distortion(&self) -> Option<Vec<f64>> {
        self.inner.distortion.map(|d| vec![d.k1, d.k2, d.p1, d.p2, d.k3])
    }
    /// The frames of a split ("train" or "test"): dicts of `name`, `image_path`, `K` (3×3 for
    /// the stored image) and `world_from_cam` (4×4: the camera's place in the world).
    #[pyo3(signature = (split="test"))]
    fn frames<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyList>> {
        let kind = match split {
            "train" => glace::SplitKind::Train,
            "test" => glace::SplitKind::Test,
            _ => return Err(input_error(py, "split", format!("'{split}': expected train or test"))),
        };
        let data = self.inner.split(kind).map_err(|e| raise(py, e.into()))?;
        let out = PyList::empty(py);
        for f in &data.frames {
            let d = PyDict::new(py);
            d.set_item("name", &f.name)?;
            d.set_item("image_path", &f.rgb_path)?;
            let (w, h) = f.image_size.unwrap_or((0, 0));
            let k = f.calibration.intrinsics(w, h);
            let km = Array2::from_shape_vec((3, 3), vec![k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0])
                .expect("9 values");
            d.set_item("K", km.into_pyarray(py))?;
            d.set_item("world_from_cam", matrix4(py, f.cam_to_world.to_matrix()))?;
            out.append(d)?;
        }
        Ok(out)
    }
}

/// Decodes a PNG or JPEG file to an (H, W, 3) uint8 array.
#[pyfunction]
fn read_image<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let img = py.detach(|| glace::read_image(&path)).map_err(|e| raise(py, e))?;
    let (w, h) = img.dimensions();
    let arr = numpy::ndarray::Array3::from_shape_vec((h as usize, w as usize, 3), img.into_raw()).expect("sizes agree");
    Ok(arr.into_pyarray(py).into_any())
}

/// Reports mapping progress to a Python callable `callback(event, a, b)` (`("phase", name,
/// total)` and `("step", done, status)`, at most every 0.2 s) and stops on Ctrl-C or when the
/// callable raises.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    last: Instant,
    stop: bool,
    error: Option<PyErr>,
}

impl PyProgress {
    fn call(&mut self, args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>>) {
        Python::attach(|py| {
            let result = py.check_signals().and_then(|_| match &self.callback {
                Some(cb) => cb.call1(py, args(py)?).map(|_| ()),
                None => Ok(()),
            });
            if let Err(e) = result {
                self.stop = true;
                self.error.get_or_insert(e);
            }
        });
    }
}

impl glace::Progress for PyProgress {
    fn phase(&mut self, name: &str, total: usize) {
        self.last = Instant::now();
        let name = name.to_string();
        self.call(move |py| {
            pyo3::types::PyTuple::new(
                py,
                [
                    "phase".into_pyobject(py)?.into_any(),
                    name.into_pyobject(py)?.into_any(),
                    total.into_pyobject(py)?.into_any(),
                ],
            )
        });
    }
    fn step(&mut self, done: usize, status: &str) {
        if self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let status = status.to_string();
        self.call(move |py| {
            pyo3::types::PyTuple::new(
                py,
                [
                    "step".into_pyobject(py)?.into_any(),
                    done.into_pyobject(py)?.into_any(),
                    status.into_pyobject(py)?.into_any(),
                ],
            )
        });
    }
    fn cancelled(&self) -> bool {
        self.stop
    }
}

/// Maps a scene folder's training split and writes the map (and its JSON log, `<map>.json`
/// unless `log` names another file). `options` is a JSON object of mapping options over the
/// preset. Returns the log as a dict.
#[pyfunction]
#[pyo3(signature = (scene_dir, map_path, preset, encoder, global_source, options, skip_invalid_poses, progress, log, force))]
#[allow(clippy::too_many_arguments)]
fn map_scene<'py>(
    py: Python<'py>,
    scene_dir: PathBuf,
    map_path: PathBuf,
    preset: &str,
    encoder: &str,
    global_source: Option<&str>,
    options: &str,
    skip_invalid_poses: bool,
    progress: Option<Py<PyAny>>,
    log: Option<PathBuf>,
    force: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let changes: serde_json::Value =
        serde_json::from_str(options).map_err(|e| input_error(py, "options", e.to_string()))?;
    let mut o = glace::options_from_json(preset, &changes).map_err(|e| raise(py, e))?;
    if let Some(g) = global_source {
        o.global = g.parse().map_err(|e: String| input_error(py, "global_source", e))?;
    }
    let encoder: glace::LocalEncoderChoice = encoder.parse().map_err(|e: String| input_error(py, "encoder", e))?;
    use glace::outputs::Kind;
    let log = log.unwrap_or_else(|| map_path.with_extension("json"));
    glace::plan()
        .input("scene_dir", &scene_dir)
        .output("map_path", &map_path, Kind::File, force)
        .output("log", &log, Kind::File, force)
        .check()
        .map_err(|e| raise(py, e.into()))?;
    let mut observer = PyProgress { callback: progress, last: Instant::now(), stop: false, error: None };
    let result = py.detach(|| -> glace::Result<serde_json::Value> {
        let scene = glace::Scene::open(&scene_dir, &glace::SceneOptions { skip_invalid_poses, ..Default::default() })?;
        let mapped = glace::map_scene(&scene, &o, &encoder, &mut observer)?;
        mapped.save(&map_path, Some(&log))?;
        serde_json::to_value(&mapped.report).map_err(|e| glace::Error::Internal(e.to_string()))
    });
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    json_to_py(py, &result.map_err(|e| raise(py, e))?)
}

/// Plans (and unless `dry_run`, writes) a conversion: `format` names the converter, `options`
/// is a JSON object of its options. Returns the plan's summary.
#[pyfunction]
#[pyo3(signature = (format, input, output, options, force, copy, dry_run))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    format: &str,
    input: PathBuf,
    output: PathBuf,
    options: &str,
    force: bool,
    copy: bool,
    dry_run: bool,
) -> PyResult<String> {
    use glace::convert::{ColmapSplit, PoseVariant, Source, TumCamera};
    let o: serde_json::Value = serde_json::from_str(options).map_err(|e| input_error(py, "options", e.to_string()))?;
    let num = |k: &str, d: u64| -> PyResult<usize> {
        match o.get(k) {
            None => Ok(d as usize),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| input_error(py, k, format!("{v}: expected a whole number ≥ 0"))),
        }
    };
    let path = |k: &str| o.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
    let source = match format {
        "7scenes" => Source::SevenScenes {
            input,
            poses: match o.get("poses").and_then(|v| v.as_str()).unwrap_or("calibrated") {
                "calibrated" => PoseVariant::Calibrated,
                "original" => PoseVariant::Original,
                "pgt" => PoseVariant::Pgt(
                    path("pgt_dir").ok_or_else(|| input_error(py, "pgt_dir", "poses='pgt' needs pgt_dir"))?,
                ),
                other => {
                    return Err(input_error(py, "poses", format!("'{other}': expected calibrated, original or pgt")))
                }
            },
            skip_invalid_poses: o.get("skip_invalid_poses").and_then(|v| v.as_bool()).unwrap_or(false),
        },
        "12scenes" => Source::TwelveScenes {
            input,
            pgt_dir: path("pgt_dir"),
            full_k: o.get("full_k").and_then(|v| v.as_bool()).unwrap_or(false),
        },
        "cambridge" => Source::Cambridge { input, height: num("height", 480)? as u32 },
        "aachen" => Source::Aachen { input, height: num("height", 480)? as u32 },
        "rooms" => Source::Rooms { input },
        "colmap" => Source::Colmap {
            input,
            images: path("images"),
            split: match path("test_list") {
                Some(l) => ColmapSplit::List(l),
                None => ColmapSplit::Every { every: num("test_every", 8)?, offset: num("test_offset", 0)? },
            },
        },
        "tum" => Source::Tum {
            input,
            camera: match (o.get("intrinsics").and_then(|v| v.as_array()), o.get("camera").and_then(|v| v.as_str())) {
                (Some(k), _) => {
                    let k: Vec<f64> = k.iter().filter_map(|v| v.as_f64()).collect();
                    let [fx, fy, cx, cy] = k[..] else {
                        return Err(input_error(py, "intrinsics", "expected (fx, fy, cx, cy)"));
                    };
                    TumCamera::Intrinsics(
                        glace::Intrinsics::new(fx, fy, cx, cy)
                            .map_err(|e| input_error(py, "intrinsics", e.to_string()))?,
                    )
                }
                (None, Some(c)) => TumCamera::Preset(c.to_string()),
                (None, None) => TumCamera::FromName,
            },
            test_every: num("test_every", 4)?,
            test_offset: num("test_offset", 2)?,
            max_gap: o.get("max_gap").and_then(|v| v.as_f64()).unwrap_or(0.05),
        },
        "transforms" => {
            Source::Transforms { input, test_every: num("test_every", 8)?, test_offset: num("test_offset", 0)? }
        }
        other => return Err(input_error(py, "format", format!("unknown format '{other}'"))),
    };
    let mut io = glace::outputs::Plan::new();
    for (option, path) in source.inputs() {
        io = io.input(option, &path);
    }
    if !dry_run {
        io = io.output("output", &output, glace::outputs::Kind::Dir, force);
    }
    io.check().map_err(|e| raise(py, e.into()))?;
    py.detach(|| -> glace::Result<String> {
        let plan = glace::convert::plan(&source)?;
        let summary = plan.summary();
        if !dry_run {
            plan.execute(&output, force, copy, &|| {})?;
        }
        Ok(summary)
    })
    .map_err(|e| raise(py, e))
}

#[pymodule]
fn _glace(m: &Bound<'_, PyModule>) -> PyResult<()> {
    glace::keep_freed_memory();
    m.add_class::<Map>()?;
    m.add_class::<Localizer>()?;
    m.add_class::<LocalizerOptions>()?;
    m.add_class::<Localization>()?;
    m.add_class::<Scene>()?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    m.add_function(wrap_pyfunction!(map_scene, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    Ok(())
}
