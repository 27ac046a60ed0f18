//! Synthetic posed scenes: exact poses, exact depth, any size, byte-for-byte deterministic for a
//! seed. Used by tests, the built-in demo and the integrated-rooms ablation.
//!
//! Rendering is analytic ray casting against axis-aligned boxes with mip-mapped procedural
//! textures, Lambertian shading and mild sensor noise. Output is the DSAC*/ACE layout plus a
//! `scene.json` with the generator version and parameters, and optionally `depth/` (16-bit
//! millimetres, for verification only).

pub mod render;
pub mod rng;
pub mod scenes;
pub mod texture;
pub mod trajectory;
pub mod world;

use std::path::{Path, PathBuf};

use glace_data::resize::resize_bilinear_u8;
use glace_data::{Calibration, DataError, SceneWriter, SplitKind};
use glace_geometry::Intrinsics;
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use crate::render::{render, Rendered, View};
use crate::rng::{hash, Rng};
use crate::scenes::{Place, TextureSpec};
use crate::texture::Texture;

/// Version of the generator recorded in `scene.json`; bump when output bytes change.
pub const GENERATOR_VERSION: u32 = 4;

/// Errors of the synthetic-scene generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Writing the scene failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Parameters that cannot make a scene.
    #[error("invalid synthetic-scene parameters: {0}")]
    Config(String),
}

/// The kind of scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One furnished room of about 4 × 5 × 2.5 m.
    Room,
    /// The room with a furnished centre, cameras orbiting it looking inward (a desk clip).
    Desk,
    /// Several rooms on a 5 m grid furnished alike, told apart by walls, floor and wall furniture
    /// (like the paper's i12/i19, more repetitive).
    Rooms,
    /// A courtyard of facades with repeated windows, 90 × 60 m, buildings up to 190 m away.
    Outdoor,
}

/// Generator parameters.
#[derive(Clone, Debug, Serialize)]
pub struct SynthConfig {
    /// Kind of scene.
    pub kind: Kind,
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Training frames (per room for `rooms`).
    pub frames: usize,
    /// Test frames (per room for `rooms`).
    pub test_frames: usize,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Focal length in pixels.
    pub focal: f64,
    /// Number of rooms (`rooms` only).
    pub rooms: usize,
    /// Texture resolution (texels per side, a power of two).
    pub texture_size: usize,
    /// Sensor noise standard deviation in gray levels.
    pub noise_sigma: f32,
    /// Also write `depth/` (16-bit millimetres; 0 = nothing or beyond 65.535 m).
    pub depth: bool,
}

impl SynthConfig {
    /// Defaults for a kind: 640×480, focal 525, 1024² textures.
    pub fn new(kind: Kind) -> Self {
        let (frames, test_frames) = match kind {
            Kind::Room => (300, 100),
            Kind::Desk => (600, 60),
            Kind::Rooms => (120, 40),
            Kind::Outdoor => (400, 130),
        };
        SynthConfig {
            kind,
            seed: 1,
            frames,
            test_frames,
            width: 640,
            height: 480,
            focal: 525.0,
            rooms: 8,
            texture_size: 1024,
            noise_sigma: 1.5,
            depth: false,
        }
    }
    fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        if self.width < 16 || self.height < 16 || self.width > 8192 || self.height > 8192 {
            return bad(format!("image size {}x{} outside 16..8192", self.width, self.height));
        }
        if !(self.focal.is_finite() && self.focal > 0.0) {
            return bad(format!("focal length {} must be positive", self.focal));
        }
        if !(self.noise_sigma.is_finite() && self.noise_sigma >= 0.0) {
            return bad(format!("--noise {}: the sensor noise must be a finite σ ≥ 0", self.noise_sigma));
        }
        if self.frames == 0 {
            return bad("at least one training frame is needed".into());
        }
        if self.kind == Kind::Rooms && !(1..=400).contains(&self.rooms) {
            return bad(format!("rooms = {} outside 1..400", self.rooms));
        }
        if !self.texture_size.is_power_of_two() || !(16..=4096).contains(&self.texture_size) {
            return bad(format!("texture size {} must be a power of two in 16..4096", self.texture_size));
        }
        Ok(())
    }
}

/// One image to render.
#[derive(Clone, Debug)]
pub struct Shot {
    /// Train or test.
    pub split: SplitKind,
    /// File stem.
    pub name: String,
    /// Index of the place (room) it is in.
    pub place: usize,
    /// Camera.
    pub view: View,
}

/// A scene ready to render.
pub struct SynthScene {
    /// Parameters.
    pub config: SynthConfig,
    /// Texture recipes.
    pub texture_specs: Vec<TextureSpec>,
    /// Generated textures.
    pub textures: Vec<Texture>,
    /// Places (rooms, or the one courtyard).
    pub places: Vec<Place>,
    /// All images, train then test.
    pub shots: Vec<Shot>,
}

#[derive(Serialize)]
struct SceneJson<'a> {
    generator: &'static str,
    version: u32,
    config: &'a SynthConfig,
    textures: &'a [TextureSpec],
    places: Vec<PlaceJson<'a>>,
}

#[derive(Serialize)]
struct PlaceJson<'a> {
    index: usize,
    train_loop: &'a trajectory::LoopSpec,
    test_loop: &'a trajectory::LoopSpec,
    material_keys: &'a [String],
    furniture: &'a [usize],
    objects: usize,
}

/// Builds a scene (textures, geometry, camera paths) without rendering.
pub fn build(config: &SynthConfig) -> Result<SynthScene, SynthError> {
    config.validate()?;
    let (texture_specs, places) = match config.kind {
        Kind::Room => scenes::room(config.seed),
        Kind::Desk => scenes::desk(config.seed),
        Kind::Rooms => scenes::rooms(config.seed, config.rooms),
        Kind::Outdoor => scenes::outdoor(config.seed),
    };
    let textures =
        texture_specs.par_iter().map(|t| Texture::generate(t.pattern, t.seed, config.texture_size, t.scale)).collect();
    let intrinsics = Intrinsics::new(config.focal, config.focal, config.width as f64 / 2.0, config.height as f64 / 2.0)
        .map_err(|e| SynthError::Config(e.to_string()))?;
    let mut shots = Vec::new();
    let multi = places.len() > 1;
    for (split, n) in [(SplitKind::Train, config.frames), (SplitKind::Test, config.test_frames)] {
        for (p, place) in places.iter().enumerate() {
            let spec = if split == SplitKind::Train { &place.train_loop } else { &place.test_loop };
            let mut rng = Rng::new(config.seed).fork(hash(&[p as u64, split as u64, 77]));
            for (i, pose) in trajectory::loop_poses(spec, n, &mut rng).into_iter().enumerate() {
                let name = if multi { format!("room{p:03}-frame-{i:05}") } else { format!("frame-{i:05}") };
                let view = View { pose, intrinsics, width: config.width, height: config.height };
                shots.push(Shot { split, name, place: p, view });
            }
        }
    }
    Ok(SynthScene { config: config.clone(), texture_specs, textures, places, shots })
}

impl SynthScene {
    /// Renders one shot.
    pub fn render(&self, shot: &Shot) -> Rendered {
        let seed =
            hash(&[self.config.seed, shot.split as u64, shot.place as u64, shot.name.len() as u64, fnv(&shot.name)]);
        render(&self.places[shot.place].world, &self.textures, &shot.view, seed, self.config.noise_sigma)
    }

    /// `scene.json`: generator version, parameters, textures and per-place materials.
    pub fn scene_json(&self) -> String {
        let places = self
            .places
            .iter()
            .enumerate()
            .map(|(index, p)| PlaceJson {
                index,
                train_loop: &p.train_loop,
                test_loop: &p.test_loop,
                material_keys: &p.material_keys,
                furniture: &p.furniture,
                objects: p.world.objects.len(),
            })
            .collect();
        let json = SceneJson {
            generator: "glace-synth",
            version: GENERATOR_VERSION,
            config: &self.config,
            textures: &self.texture_specs,
            places,
        };
        serde_json::to_string_pretty(&json).expect("serialisable") + "\n"
    }

    /// Renders every shot and writes the scene to `out` atomically; `on_frame` is called after
    /// each frame (for progress). Returns the thumbnails of up to `sheet` frames for a contact sheet.
    pub fn write(
        &self,
        out: &Path,
        force: bool,
        sheet: usize,
        on_frame: &(dyn Fn() + Sync),
    ) -> Result<(PathBuf, Vec<RgbImage>), SynthError> {
        let writer = SceneWriter::create(out, force)?;
        writer.write_text("scene.json", &self.scene_json())?;
        let calibration = Calibration::Focal(self.config.focal);
        let step = (self.shots.len() / sheet.max(1)).max(1);
        let thumbs: Vec<Option<RgbImage>> = self
            .shots
            .par_iter()
            .enumerate()
            .map(|(i, shot)| -> Result<Option<RgbImage>, SynthError> {
                let r = self.render(shot);
                writer.write_frame_meta(shot.split, &shot.name, &shot.view.pose, &calibration)?;
                writer.write_rgb_png(shot.split, &shot.name, &r.rgb)?;
                if self.config.depth {
                    write_depth(&writer, shot, &r)?;
                }
                on_frame();
                Ok((sheet > 0 && i % step == 0 && i / step < sheet).then(|| thumbnail(&r.rgb, 160)))
            })
            .collect::<Result<_, _>>()?;
        let path = writer.finish()?;
        Ok((path, thumbs.into_iter().flatten().collect()))
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn write_depth(writer: &SceneWriter, shot: &Shot, r: &Rendered) -> Result<(), SynthError> {
    let mm: Vec<u16> =
        r.depth.iter().map(|&z| if z > 0.0 && z < 65.5349 { (z * 1000.0).round() as u16 } else { 0 }).collect();
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(shot.view.width, shot.view.height, mm).expect("size");
    let dir = writer.dir().join(shot.split.name()).join("depth");
    std::fs::create_dir_all(&dir).map_err(|e| DataError::Io { path: dir.clone(), source: e })?;
    let p = dir.join(format!("{}.png", shot.name));
    img.save(&p).map_err(|e| DataError::Io { path: p, source: std::io::Error::other(e) })?;
    Ok(())
}

/// Downscales an image to `width` pixels wide (Pillow-exact antialiased bilinear).
pub fn thumbnail(img: &RgbImage, width: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let th = ((h as u64 * width as u64) / w as u64).max(1) as u32;
    let data = resize_bilinear_u8(img.as_raw(), w as usize, h as usize, 3, width as usize, th as usize);
    RgbImage::from_raw(width, th, data).expect("size")
}

/// Lays thumbnails out on a grid with a 4-pixel gutter.
pub fn contact_sheet(thumbs: &[RgbImage], columns: usize) -> RgbImage {
    let columns = columns.max(1).min(thumbs.len().max(1));
    let (tw, th) = thumbs.first().map(|t| t.dimensions()).unwrap_or((1, 1));
    let rows = thumbs.len().div_ceil(columns).max(1);
    let gap = 4;
    let mut sheet = RgbImage::from_pixel(
        columns as u32 * (tw + gap) + gap,
        rows as u32 * (th + gap) + gap,
        image::Rgb([32, 32, 32]),
    );
    for (i, t) in thumbs.iter().enumerate() {
        let (x, y) = ((i % columns) as u32 * (tw + gap) + gap, (i / columns) as u32 * (th + gap) + gap);
        image::imageops::replace(&mut sheet, t, x as i64, y as i64);
    }
    sheet
}
