//! Localizing images held in memory with a map.

use std::path::PathBuf;
use std::time::Instant;

use glace_data::Calibration;
use glace_geometry::{CamToWorld, Camera, Distortion, Intrinsics, WorldToCam};
use glace_localize::pipeline::Prediction;
use glace_localize::query::{PipelineParts, QueryPipeline, Request};
use glace_nn::linalg::{Matmul, Precision};
use glace_nn::{LocalEncoder, R2Former};
use image::RgbImage;

pub use glace_geometry::ransac::RansacConfig as RansacOptions;
pub use glace_localize::pipeline::StageTimes;
pub use glace_localize::query::{Evidence, EvidenceRule, Failure, Found, Outcome};

use crate::{encoders, Error, Map, Result};

/// How pixels are laid out in an [`ImageView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// 3 bytes per pixel, R G B.
    Rgb8,
    /// 1 byte per pixel.
    Gray8,
}

/// An 8-bit image in memory: rows top to bottom, pixels left to right, tightly packed.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    width: u32,
    height: u32,
    format: PixelFormat,
    data: &'a [u8],
}

impl<'a> ImageView<'a> {
    /// An RGB image; `data` must hold `width × height × 3` bytes.
    ///
    /// ```
    /// let pixels = vec![0u8; 4 * 2 * 3];
    /// let view = glace::ImageView::rgb8(4, 2, &pixels)?;
    /// assert_eq!(view.size(), (4, 2));
    /// assert!(glace::ImageView::rgb8(4, 3, &pixels).is_err());
    /// # Ok::<(), glace::Error>(())
    /// ```
    pub fn rgb8(width: u32, height: u32, data: &'a [u8]) -> Result<Self> {
        Self::new(width, height, PixelFormat::Rgb8, data)
    }

    /// A grey image; `data` must hold `width × height` bytes.
    pub fn gray8(width: u32, height: u32, data: &'a [u8]) -> Result<Self> {
        Self::new(width, height, PixelFormat::Gray8, data)
    }

    fn new(width: u32, height: u32, format: PixelFormat, data: &'a [u8]) -> Result<Self> {
        let channels = if format == PixelFormat::Rgb8 { 3 } else { 1 };
        let expected = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(channels));
        if width == 0 || height == 0 {
            return Err(Error::usage("image", format!("{width}×{height}: the image is empty")));
        }
        if expected != Some(data.len()) {
            return Err(Error::usage(
                "image",
                format!("{} bytes for a {width}×{height} image with {channels} channel(s)", data.len()),
            ));
        }
        Ok(ImageView { width, height, format, data })
    }

    /// (width, height).
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The pixel layout.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// As 8-bit RGB (grey replicated, as decoding a grey file does).
    pub fn to_rgb(&self) -> RgbImage {
        let data = match self.format {
            PixelFormat::Rgb8 => self.data.to_vec(),
            PixelFormat::Gray8 => self.data.iter().flat_map(|&g| [g, g, g]).collect(),
        };
        RgbImage::from_raw(self.width, self.height, data).expect("size checked on construction")
    }
}

impl<'a> From<&'a RgbImage> for ImageView<'a> {
    fn from(img: &'a RgbImage) -> Self {
        ImageView { width: img.width(), height: img.height(), format: PixelFormat::Rgb8, data: img.as_raw() }
    }
}

/// A camera from a 3×3 K (rows) and optional OpenCV distortion `k1 k2 p1 p2 [k3]`. K must have
/// zero skew and a last row of `0 0 1`; every value must be finite.
///
/// ```
/// let cam = glace::camera_from_matrix(&[[520.9, 0.0, 325.1], [0.0, 521.0, 249.7], [0.0, 0.0, 1.0]], None)?;
/// assert_eq!(cam.intrinsics.fx, 520.9);
/// let skewed = [[520.9, 0.5, 325.1], [0.0, 521.0, 249.7], [0.0, 0.0, 1.0]];
/// assert!(glace::camera_from_matrix(&skewed, None).is_err());
/// # Ok::<(), glace::Error>(())
/// ```
pub fn camera_from_matrix(k: &[[f64; 3]; 3], distortion: Option<&[f64]>) -> Result<Camera> {
    let intrinsics = Intrinsics::from_matrix(k).map_err(|e| Error::usage("K", e.to_string()))?;
    let distortion =
        distortion.map(Distortion::from_coeffs).transpose().map_err(|e| Error::usage("distortion", e.to_string()))?;
    Ok(Camera { intrinsics, distortion })
}

/// In which orientations a query is given to the networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Turns {
    /// As the map recommends ([`Map::query_turns`]): all four quarter turns for scenes whose
    /// mapping views are rolled against each other, else upright.
    #[default]
    Auto,
    /// Upright only (the reference).
    Upright,
    /// All four quarter turns; the pose with the most inliers wins.
    All,
}

impl Turns {
    /// `auto`, `upright` or `all`: what [`Turns::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Turns::Auto => "auto",
            Turns::Upright => "upright",
            Turns::All => "all",
        }
    }

    /// `auto`, `upright` or `all`.
    pub fn parse(s: &str) -> std::result::Result<Turns, String> {
        match s {
            "auto" => Ok(Turns::Auto),
            "upright" => Ok(Turns::Upright),
            "all" => Ok(Turns::All),
            _ => Err(format!("'{s}': expected auto, upright or all")),
        }
    }
}

/// How a [`Localizer`] is set up. The defaults are the reference's.
#[derive(Clone, Debug, Default)]
pub struct LocalizerOptions {
    /// RANSAC parameters used when a query gives none.
    pub ransac: RansacOptions,
    /// Shorter image side the networks see [default: the one the map was trained with].
    pub image_height: Option<u32>,
    /// Feed the head the global descriptor as computed, as the reference does (default: scaled
    /// to its mean under the map's feature diffusion, as in training).
    pub clean_global: bool,
    /// The ACE encoder's weights, for maps trained with the ACE encoder.
    pub ace_encoder: Option<PathBuf>,
    /// R2Former checkpoint for maps that take R2Former descriptors [default: the one recorded in
    /// the map, when it exists]; without one, each query must bring its descriptor.
    pub r2former: Option<PathBuf>,
    /// Never load R2Former: every query brings its global descriptor (from `features.npy`, say).
    pub external_descriptors: bool,
    /// Precision of the head's and the local encoder's products (`Auto`: bf16 where this CPU has
    /// a path faster than fp32, else fp32).
    pub precision: Precision,
    /// Orientations each query is tried in (default: as the map recommends; the reference:
    /// upright).
    pub turns: Turns,
    /// Keep the pose the scene coordinates give, without refining it against the map's
    /// triangulated points (maps of the `cpu` preset carry them; the reference has none).
    pub skip_structure: bool,
    /// When a pose counts as found (the reference: whenever RANSAC returns one).
    pub evidence: EvidenceRule,
}

/// What one query asks for besides the image and the camera.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<'a> {
    /// The image's global descriptor, for maps that take it from outside (`features.npy`, or
    /// R2Former without a loaded checkpoint).
    pub descriptor: Option<&'a [f32]>,
    /// Return the per-cell scene coordinates.
    pub coordinates: bool,
    /// RANSAC parameters for this query (default: the localizer's).
    pub ransac: Option<&'a RansacOptions>,
    /// Stops the query between its stages and inside RANSAC once raised ([`Error::Cancelled`]):
    /// a service whose client gave up frees its worker.
    pub cancel: Option<&'a crate::CancelToken>,
}

/// Predicted scene coordinates of one query: one world point per 8×8 cell, row-major over the
/// `rows × cols` grid, with the cell's centre in the caller's image pixels.
#[derive(Clone, Debug)]
pub struct SceneCoordinates {
    /// (width, height) of the image as given.
    pub image_size: (u32, u32),
    /// Grid rows.
    pub rows: usize,
    /// Grid columns.
    pub cols: usize,
    /// Cell centres in the given image's pixel coordinates.
    pub pixels_n2: Vec<[f64; 2]>,
    /// World points.
    pub coords_n3: Vec<[f32; 3]>,
    /// The cell centre's colour (from the resized image the network saw).
    pub colours_n3: Vec<[u8; 3]>,
}

impl SceneCoordinates {
    /// Per cell (row-major), the distance in the given image's pixels between the cell's centre
    /// and its world point projected with `world_to_cam` through `camera`; infinite where the
    /// point falls behind the camera. Under the estimated pose it picks the inliers; under the
    /// ground truth it tells how well the map fits a frame, apart from what RANSAC makes of it.
    pub fn reprojection_errors(&self, world_to_cam: &WorldToCam, camera: &Camera) -> Vec<f64> {
        self.coords_n3
            .iter()
            .zip(&self.pixels_n2)
            .map(|(p, uv)| {
                let world = nalgebra::Point3::new(p[0] as f64, p[1] as f64, p[2] as f64);
                match camera.project(&world_to_cam.transform_point(&world)) {
                    Some(q) => ((q.x - uv[0]).powi(2) + (q.y - uv[1]).powi(2)).sqrt(),
                    None => f64::INFINITY,
                }
            })
            .collect()
    }
}

/// The outcome of one query, with its stage times and (when asked for) its scene coordinates.
#[derive(Clone, Debug)]
pub struct Localization {
    /// A pose with its evidence, or why there is none.
    pub outcome: Outcome,
    /// Seconds per stage.
    pub times: StageTimes,
    /// The per-cell scene coordinates, when asked for.
    pub coordinates: Option<SceneCoordinates>,
}

impl Localization {
    /// True when a pose was found.
    pub fn success(&self) -> bool {
        self.outcome.found().is_some()
    }
    /// The pose found, world points into camera coordinates (what pose files and COLMAP store).
    pub fn cam_from_world(&self) -> Option<WorldToCam> {
        self.outcome.found().map(|f| f.cam_from_world)
    }
    /// The pose found, camera into world: the camera's place and orientation in the scene.
    pub fn world_from_cam(&self) -> Option<CamToWorld> {
        self.cam_from_world().map(|p| p.inverse())
    }
    /// Inliers of the final solve (matches to the map's points when refined); 0 without a pose.
    pub fn inliers(&self) -> usize {
        self.outcome.found().map_or(0, |f| f.inliers)
    }
    /// The pose was refined against the map's triangulated points.
    pub fn refined(&self) -> bool {
        self.outcome.found().is_some_and(|f| f.refined)
    }
    /// The refinement started from the points of the mapping views nearest by global
    /// descriptor: the scene coordinates' pose found less support in the points, or none.
    pub fn retrieved(&self) -> bool {
        self.outcome.found().is_some_and(|f| f.retrieved)
    }
    /// Why no pose was found.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Failed(f) => Some(&f.reason),
            Outcome::Found(_) => None,
        }
    }
    /// What the scene coordinates' pose rested on (before any refinement), when RANSAC found one.
    pub fn evidence(&self) -> Option<&Evidence> {
        self.outcome.evidence()
    }
}

/// A map ready to localize images: its head and the encoders it needs, loaded and checked once.
/// `Send + Sync`: share one across threads; each call is independent and deterministic for
/// its seed.
///
/// ```no_run
/// use glace::{camera_from_matrix, read_image, Localizer, LocalizerOptions, Map};
/// let map = Map::open("maps/desk.glace")?;
/// let localizer = Localizer::new(&map, LocalizerOptions::default())?;
/// let image = read_image("query.png")?;
/// let k = [[520.9, 0.0, 325.1], [0.0, 521.0, 249.7], [0.0, 0.0, 1.0]];
/// let camera = camera_from_matrix(&k, None)?;
/// let found = localizer.localize((&image).into(), &camera)?;
/// match found.world_from_cam() {
///     Some(pose) => println!("camera at {:?}, {} inliers", pose.center(), found.inliers()),
///     None => println!("not localized: {}", found.failure().unwrap_or_default()),
/// }
/// # Ok::<(), glace::Error>(())
/// ```
pub struct Localizer {
    map: Map,
    pipeline: QueryPipeline,
    ransac: RansacOptions,
}

impl Localizer {
    /// Loads the encoders `map` needs and checks them against it.
    pub fn new(map: &Map, options: LocalizerOptions) -> Result<Localizer> {
        options.ransac.validate().map_err(|(option, message)| Error::usage(option, message))?;
        options.evidence.validate().map_err(|(field, message)| Error::usage(format!("evidence.{field}"), message))?;
        let matmul = options.precision.resolve().map_err(|m| Error::usage("precision", m))?;
        if let Some(h) = options.image_height {
            use glace_nn::{MAX_IMAGE_HEIGHT as MAX, MIN_IMAGE_HEIGHT as MIN};
            if !(MIN..=MAX).contains(&h) {
                return Err(Error::usage("image_height", format!("{h}: expected {MIN} to {MAX} pixels")));
            }
        }
        let local = encoders::local_encoder_for(map, options.ace_encoder.as_deref())?;
        let r2former =
            if options.external_descriptors { None } else { encoders::r2former_for(map, options.r2former.as_deref())? };
        let mut map = map.clone();
        if options.clean_global {
            let mut m = map.inner.as_ref().clone();
            m.global_scale = 1.0;
            map = Map::from_glace_map_at(m, &map);
        }
        let image_height = options.image_height.unwrap_or_else(|| map.trained_image_height());
        let turns = match options.turns {
            Turns::Auto => map.query_turns(),
            Turns::Upright => vec![0],
            Turns::All => vec![0, 1, 2, 3],
        };
        let pipeline = QueryPipeline::new(PipelineParts {
            map: map.inner.clone(),
            local,
            r2former,
            matmul,
            image_height,
            turns,
            refine: !options.skip_structure,
            evidence: options.evidence,
        });
        Ok(Localizer { map, pipeline, ransac: options.ransac })
    }

    /// The map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// Factor applied to the global descriptor before the head.
    pub fn global_scale(&self) -> f32 {
        self.map.inner.global_scale
    }

    /// Shorter image side the networks see.
    pub fn image_height(&self) -> u32 {
        self.pipeline.image_height()
    }

    /// True when queries need to bring their own global descriptor.
    pub fn needs_descriptor(&self) -> bool {
        use glace_nn::map::GlobalSource;
        match &self.map.description().global {
            GlobalSource::FeaturesNpy => true,
            GlobalSource::R2Former { .. } => self.pipeline.r2former().is_none(),
            _ => false,
        }
    }

    /// The local encoder, loaded and checked against the map.
    pub fn local_encoder(&self) -> &LocalEncoder {
        self.pipeline.local_encoder()
    }

    /// R2Former, when the map takes its descriptors and its checkpoint was loaded.
    pub fn r2former(&self) -> Option<&R2Former> {
        self.pipeline.r2former()
    }

    /// The default RANSAC parameters.
    pub fn ransac(&self) -> &RansacOptions {
        &self.ransac
    }

    /// How the head's and the local encoder's products are computed.
    pub fn matmul(&self) -> Matmul {
        self.pipeline.matmul()
    }

    /// The quarter turns (clockwise) each query is tried in.
    pub fn turns(&self) -> &[u8] {
        self.pipeline.turns()
    }

    /// Whether a `width × height` image can be localized: within the size and aspect limits, at
    /// every resolution a query is encoded at. Bounded work per image, whatever brings it (a
    /// file, a request, an array); every query checks it before anything is resized.
    pub fn check_image_size(&self, width: u32, height: u32) -> Result<()> {
        for h in self.pipeline.encode_heights() {
            glace_data::check_network_size(width, height, h).map_err(|m| Error::usage("image", m))?;
        }
        Ok(())
    }

    /// Localizes an image seen by `camera` (K for the image as given, any size).
    pub fn localize(&self, image: ImageView, camera: &Camera) -> Result<Localization> {
        self.localize_with(image, camera, &Query::default())
    }

    /// [`Localizer::localize`] with a descriptor, per-query RANSAC options or coordinates.
    pub fn localize_with(&self, image: ImageView, camera: &Camera, query: &Query) -> Result<Localization> {
        let t = Instant::now();
        let rgb = image.to_rgb();
        let copy_s = t.elapsed().as_secs_f64();
        let mut found = self.localize_rgb(&rgb, &Calibration::Matrix(camera.intrinsics), camera.distortion, query)?;
        found.times.decode_s += copy_s;
        Ok(found)
    }

    /// The core of every query: `calibration` is for `rgb` as given.
    pub(crate) fn localize_rgb(
        &self,
        rgb: &RgbImage,
        calibration: &Calibration,
        distortion: Option<Distortion>,
        query: &Query,
    ) -> Result<Localization> {
        let ransac = query.ransac.unwrap_or(&self.ransac);
        if query.ransac.is_some() {
            ransac.validate().map_err(|(option, message)| Error::usage(option, message))?;
        }
        let (w, h) = rgb.dimensions();
        self.check_image_size(w, h)?;
        let flag = query.cancel.map(|c| c.flag());
        let request = Request { calibration, distortion, descriptor: query.descriptor, ransac, cancel: flag.as_ref() };
        let answer = self.pipeline.run(rgb, &request).map_err(|e| match e {
            glace_localize::LocalizeError::Cancelled => Error::Cancelled,
            other => other.into(),
        })?;
        let coordinates = query.coordinates.then(|| coordinates(&answer.prediction, rgb.dimensions()));
        Ok(Localization { outcome: answer.outcome, times: answer.times, coordinates })
    }
}

fn coordinates(p: &Prediction, image_size: (u32, u32)) -> SceneCoordinates {
    let f = &p.encoded.features;
    let img = &p.image;
    let mut out = SceneCoordinates {
        image_size,
        rows: f.height,
        cols: f.width,
        pixels_n2: Vec::with_capacity(f.height * f.width),
        coords_n3: p.coords_n3.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
        colours_n3: Vec::with_capacity(f.height * f.width),
    };
    for i in 0..f.height {
        for j in 0..f.width {
            let (u, v) = p.cell_pixel(i, j);
            out.pixels_n2.push([u / img.scale, v / img.scale]);
            let (pu, pv) = ((u as usize).min(img.width - 1), (v as usize).min(img.height - 1));
            let c = &img.rgb_hw3[(pv * img.width + pu) * 3..][..3];
            out.colours_n3.push([c[0], c[1], c[2]]);
        }
    }
    out
}
