//! `glace bench <what>`: benchmarks that print their numbers side by side in one run.

use std::time::Instant;

use glace_synth::{build, Kind, SynthConfig};
use serde::Serialize;

/// Arguments of `glace bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Synthetic-scene rendering: frames/s per kind at 640×480 on all threads.
    Synth {
        /// Frames rendered per kind.
        #[arg(long, default_value_t = 60)]
        frames: usize,
        /// Print one JSON object per kind.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct SynthResult {
    kind: Kind,
    frames: usize,
    threads: usize,
    texture_build_s: f64,
    render_fps: f64,
    render_and_png_fps: f64,
}

/// Runs `glace bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.what {
        BenchWhat::Synth { frames, json } => bench_synth(*frames, *json),
    }
}

fn bench_synth(frames: usize, json: bool) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    if !json {
        println!("synthetic rendering, 640x480, {threads} threads, {frames} frames per kind");
        println!("{:<8} {:>14} {:>12} {:>16}", "kind", "textures (s)", "render fps", "render+png fps");
    }
    for kind in [Kind::Room, Kind::Rooms, Kind::Outdoor] {
        let mut c = SynthConfig::new(kind);
        c.frames = frames.div_ceil(if kind == Kind::Rooms { c.rooms } else { 1 });
        c.test_frames = 0;
        let t0 = Instant::now();
        let scene = build(&c)?;
        let texture_build_s = t0.elapsed().as_secs_f64();
        let shots = &scene.shots[..frames.min(scene.shots.len())];
        let t1 = Instant::now();
        let rendered: Vec<_> = shots.iter().map(|s| scene.render(s)).collect();
        let render_s = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        for r in &rendered {
            let mut buf = std::io::Cursor::new(Vec::new());
            r.rgb.write_to(&mut buf, image::ImageFormat::Png)?;
        }
        let png_s = t2.elapsed().as_secs_f64();
        let res = SynthResult {
            kind,
            frames: shots.len(),
            threads,
            texture_build_s,
            render_fps: shots.len() as f64 / render_s,
            render_and_png_fps: shots.len() as f64 / (render_s + png_s),
        };
        if json {
            println!("{}", serde_json::to_string(&res)?);
        } else {
            println!(
                "{:<8} {:>14.2} {:>12.1} {:>16.1}",
                format!("{kind:?}").to_lowercase(),
                res.texture_build_s,
                res.render_fps,
                res.render_and_png_fps
            );
        }
    }
    Ok(())
}
