//! `glace synth <kind> <out_dir>`: render a synthetic posed scene.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use glace_synth::{build, contact_sheet, Kind, SynthConfig};

/// Scene kinds on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    /// One furnished room, about 4 × 5 × 2.5 m (defaults: 300 train / 100 test frames).
    Room,
    /// The room with a table and objects in its centre, cameras orbiting them looking inward, as a
    /// hand-held desk clip (defaults: 600 train / 60 test frames)
    Desk,
    /// Rooms on a 5 m grid furnished alike (defaults: 8 rooms, 120/40 frames each).
    Rooms,
    /// A courtyard of facades with repeated windows (defaults: 400/130 frames).
    Outdoor,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Room => Kind::Room,
            KindArg::Desk => Kind::Desk,
            KindArg::Rooms => Kind::Rooms,
            KindArg::Outdoor => Kind::Outdoor,
        }
    }
}

/// Arguments of `glace synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Kind of scene.
    #[arg(value_enum)]
    pub kind: KindArg,
    /// Output scene folder (DSAC*/ACE layout).
    pub out_dir: PathBuf,
    /// Seed; the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training frames (per room for `rooms`) [default: per kind].
    #[arg(long)]
    pub frames: Option<usize>,
    /// Test frames (per room for `rooms`) [default: per kind].
    #[arg(long)]
    pub test_frames: Option<usize>,
    /// Image size WxH.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Focal length in pixels [default: 525 × width / 640].
    #[arg(long)]
    pub focal: Option<f64>,
    /// Number of rooms for `rooms`.
    #[arg(long, default_value_t = 8)]
    pub rooms: usize,
    /// Texture resolution (texels per side, power of two).
    #[arg(long, default_value_t = 1024)]
    pub texture_size: usize,
    /// Sensor noise in gray levels (standard deviation).
    #[arg(long, default_value_t = 1.5)]
    pub noise: f32,
    /// Also write depth/ (16-bit millimetres; verification only, never used by mapping).
    #[arg(long)]
    pub depth: bool,
    /// Write a PNG grid of thumbnails here.
    #[arg(long)]
    pub contact_sheet: Option<PathBuf>,
    /// Replace a non-empty output folder.
    #[arg(long)]
    pub force: bool,
}

/// Parses "640x480".
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("'{s}' is not WxH, e.g. 640x480"))?;
    let w = w.trim().parse().map_err(|_| format!("bad width in '{s}'"))?;
    let h = h.trim().parse().map_err(|_| format!("bad height in '{s}'"))?;
    Ok((w, h))
}

/// Builds the generator configuration from the arguments.
pub fn config(args: &SynthArgs) -> SynthConfig {
    let mut c = SynthConfig::new(args.kind.into());
    c.seed = args.seed;
    c.frames = args.frames.unwrap_or(c.frames);
    c.test_frames = args.test_frames.unwrap_or(c.test_frames);
    (c.width, c.height) = args.size;
    c.focal = args.focal.unwrap_or(525.0 * c.width as f64 / 640.0);
    c.rooms = args.rooms;
    c.texture_size = args.texture_size;
    c.noise_sigma = args.noise;
    c.depth = args.depth;
    c
}

/// Runs `glace synth`.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    use glace::outputs::{Kind, Plan};
    let mut plan = Plan::new().output("<out_dir>", &args.out_dir, Kind::Dir, args.force);
    if let Some(sheet) = &args.contact_sheet {
        plan = plan.output("--contact-sheet", sheet, Kind::File, args.force);
    }
    plan.check().map_err(glace::Error::from)?;
    let cfg = config(args);
    let t0 = Instant::now();
    let scene = build(&cfg)?;
    tracing::info!("built {} textures and {} places in {:.2?}", scene.textures.len(), scene.places.len(), t0.elapsed());
    let bar = super::progress_bar(scene.shots.len() as u64, "rendering");
    let sheet = if args.contact_sheet.is_some() { 24 } else { 0 };
    let t1 = Instant::now();
    let (path, thumbs) = scene.write(&args.out_dir, args.force, sheet, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let secs = t1.elapsed().as_secs_f64();
    let n_train = scene.shots.iter().filter(|s| s.split == glace_data::SplitKind::Train).count();
    println!(
        "wrote {} ({} train, {} test frames, {}x{}) in {:.1} s ({:.1} frames/s)",
        path.display(),
        n_train,
        scene.shots.len() - n_train,
        cfg.width,
        cfg.height,
        secs,
        scene.shots.len() as f64 / secs
    );
    if let Some(sheet_path) = &args.contact_sheet {
        let img = contact_sheet(&thumbs, 6);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        glace::outputs::write_file(sheet_path, &png).with_context(|| format!("writing {}", sheet_path.display()))?;
        println!("contact sheet {}", sheet_path.display());
    }
    Ok(())
}
