//! The paper's ablation (Tables 2–3, 6; Fig. 6) on synthetic integrated rooms: (a) ACE mode,
//! (b) global features without diffusion, (c) diffusion σ = 0.1 with K = 1, (d) full GLACE
//! (diffusion and K = 50 position decoder). Each variant is a [`MapOptions`] over the `cpu`
//! preset; every variant gets the same depth prior (valid depths up to the building's width,
//! pseudo targets at 3 m) and peak learning rate, and the global variants the place-discriminant
//! built-in descriptor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use glace::{GlobalChoice, Localizer, LocalizerOptions, MapOptions, Scene, SceneOptions, SplitKind};
use glace_localize::metrics::{summarize, FrameError, Summary};
use serde::Serialize;

/// One of the paper's variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// ACE mode: no global feature, K = 1.
    A,
    /// Global feature, no diffusion, K = 1.
    B,
    /// Global feature, diffusion 0.1, K = 1.
    C,
    /// GLACE: diffusion 0.1, K = 50 decoder.
    D,
}

impl Variant {
    /// All four, in order.
    pub const ALL: [Variant; 4] = [Variant::A, Variant::B, Variant::C, Variant::D];

    /// Its letter.
    pub fn key(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "b",
            Variant::C => "c",
            Variant::D => "d",
        }
    }

    /// `a`, `b`, `c` or `d`.
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.key() == s.trim())
    }

    /// What it is.
    pub fn label(self) -> &'static str {
        match self {
            Variant::A => "ACE mode: no global feature, K = 1",
            Variant::B => "global feature, no diffusion, K = 1",
            Variant::C => "global feature, diffusion 0.1, K = 1",
            Variant::D => "GLACE: diffusion 0.1, K = 50 decoder",
        }
    }

    /// Its mapping options over `base`.
    pub fn options(self, base: &MapOptions) -> MapOptions {
        let (global, noise_std, decoder_clusters) = match self {
            Variant::A => (GlobalChoice::None, base.noise_std, 1),
            Variant::B => (GlobalChoice::Builtin, 0.0, 1),
            Variant::C => (GlobalChoice::Builtin, 0.1, 1),
            Variant::D => (GlobalChoice::Builtin, 0.1, 50),
        };
        MapOptions {
            global,
            noise_std,
            decoder_clusters,
            place_discriminants: self != Variant::A || base.place_discriminants,
            ..base.clone()
        }
    }
}

/// The ablation's scene and shared options.
#[derive(Clone, Debug)]
pub struct AblationOptions {
    /// Rooms of the synthetic scene (the paper's i12/i19 have 12/19).
    pub rooms: usize,
    /// Training frames per room.
    pub frames: usize,
    /// Test frames per room.
    pub test_frames: usize,
    /// Rendered image size.
    pub size: (u32, u32),
    /// Training iterations and buffer entries, when stated (else the preset's scene budget).
    pub iterations: Option<usize>,
    /// Buffer entries, when stated.
    pub buffer_size: Option<usize>,
    /// Deepest valid prediction in metres [default: the building's width, 5 m × ⌈√rooms⌉].
    pub depth_max: Option<f64>,
    /// Depth in metres of the pseudo target for invalid predictions.
    pub depth_target: f64,
    /// Peak learning rate.
    pub lr_max: f64,
    /// The variants run, in order.
    pub variants: Vec<Variant>,
}

/// One variant's row.
#[derive(Clone, Debug, Serialize)]
pub struct VariantResult {
    /// Which.
    pub variant: Variant,
    /// What it is.
    pub label: &'static str,
    /// Accuracy over every test frame.
    pub summary: Summary,
    /// Share of test frames placed in the right room (within 2.5 m: rooms sit on a 5 m grid).
    pub pct_right_room: f64,
    /// Per room, the share within 5 cm / 5°.
    pub per_room_pct_5cm_5deg: BTreeMap<String, f64>,
    /// The mapping options used.
    pub options: MapOptions,
}

/// The ablation's result (written as `ablation.json`).
#[derive(Clone, Debug, Serialize)]
pub struct AblationReport {
    /// Rooms.
    pub rooms: usize,
    /// Training frames per room.
    pub frames: usize,
    /// Test frames per room.
    pub test_frames: usize,
    /// Peak learning rate.
    pub lr_max: f64,
    /// Rows, in the order run.
    pub variants: Vec<VariantResult>,
}

fn room_of(name: &str) -> String {
    name.split("-frame").next().unwrap_or(name).to_string()
}

/// The `cpu` preset with the ablation's shared options (every variant starts here).
pub fn base_options(o: &AblationOptions) -> crate::Result<MapOptions> {
    let mut base = glace::preset("cpu")?;
    base.depth_max = o.depth_max.unwrap_or(glace_synth::scenes::rooms_width(o.rooms));
    base.depth_target = o.depth_target;
    base.lr_max = o.lr_max;
    if let Some(n) = o.iterations {
        base.iterations = n;
    }
    if let Some(n) = o.buffer_size {
        base.buffer_size = n;
    }
    // A budget stated is the budget used.
    if o.iterations.is_some() || o.buffer_size.is_some() {
        base.scene_budget = false;
    }
    Ok(base)
}

/// Renders the rooms into `out/scene`, maps each variant (`out/<variant>.glace`, pose file
/// `out/poses_<variant>.txt`) and scores its test frames; `on_step` hears what starts.
pub fn ablation(out: &Path, o: &AblationOptions, on_step: &mut dyn FnMut(&str)) -> crate::Result<AblationReport> {
    let scene_dir = out.join("scene");
    let mut cfg = glace_synth::SynthConfig::new(glace_synth::Kind::Rooms);
    (cfg.rooms, cfg.frames, cfg.test_frames) = (o.rooms, o.frames, o.test_frames);
    (cfg.width, cfg.height) = o.size;
    cfg.focal = 525.0 * cfg.width as f64 / 640.0;
    on_step(&format!("rendering {} rooms into {}", o.rooms, scene_dir.display()));
    // The rooms are checked (size, counts) before anything is written.
    let synth = glace_synth::build(&cfg).map_err(|e| glace::Error::Input(format!("the rooms to render: {e}")))?;
    std::fs::create_dir_all(out).map_err(|e| glace::Error::Write { path: out.to_path_buf(), source: e })?;
    synth.write(&scene_dir, true, 0, &|| {}).map_err(|e| glace::Error::Input(e.to_string()))?;
    let scene = Scene::open(&scene_dir, &SceneOptions { probe_images: false, ..Default::default() })?;
    let gt: BTreeMap<String, glace::CamToWorld> =
        scene.split(SplitKind::Test)?.frames.iter().map(|f| (f.name.clone(), f.cam_to_world)).collect();
    let rooms: BTreeSet<String> = gt.keys().map(|n| room_of(n)).collect();
    let base = base_options(o)?;
    let mut variants = Vec::new();
    for &variant in &o.variants {
        let options = variant.options(&base);
        on_step(&format!("({}) {}: mapping", variant.key(), variant.label()));
        let mapped = glace::map_scene(&scene, &options, &glace::LocalEncoderChoice::XFeat, &mut glace::Silent)?;
        let map_path = out.join(format!("{}.glace", variant.key()));
        mapped.save(&map_path, None)?;
        on_step(&format!("({}) {}: localizing", variant.key(), variant.label()));
        let localizer = Localizer::new(&mapped.map, LocalizerOptions::default())?;
        let run = glace::localize_scene(&localizer, &scene, SplitKind::Test, false, &mut |_, _, _, _| {})?;
        glace::write_pose_file(&out.join(format!("poses_{}.txt", variant.key())), &run.pose_records())?;
        let errors: Vec<FrameError> = run.frames.iter().map(glace::FrameOutcome::frame_error).collect();
        let mut per_room: BTreeMap<String, Vec<FrameError>> = BTreeMap::new();
        for e in &errors {
            per_room.entry(room_of(&e.name)).or_default().push(e.clone());
        }
        let per_room_pct_5cm_5deg = rooms
            .iter()
            .map(|r| (r.clone(), summarize(per_room.get(r).map(Vec::as_slice).unwrap_or(&[])).pct_5cm_5deg))
            .collect();
        let right = errors.iter().filter(|e| e.trans_m < 2.5).count();
        variants.push(VariantResult {
            variant,
            label: variant.label(),
            summary: summarize(&errors),
            pct_right_room: 100.0 * right as f64 / errors.len().max(1) as f64,
            per_room_pct_5cm_5deg,
            options,
        });
    }
    Ok(AblationReport { rooms: o.rooms, frames: o.frames, test_frames: o.test_frames, lr_max: o.lr_max, variants })
}
