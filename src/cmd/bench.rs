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
    /// PnP-RANSAC on the reference's five DSAC* fixture cases (0–90 % outliers), next to its recorded times.
    Ransac {
        /// The fixture file.
        #[arg(long, default_value = "../shared/fixtures/dsacstar_ransac.npz")]
        fixture: std::path::PathBuf,
        /// Runs per case (seeds 0..runs).
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Print one JSON object per case.
        #[arg(long)]
        json: bool,
    },
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
        BenchWhat::Ransac { fixture, runs, json } => bench_ransac(fixture, *runs, *json),
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

fn bench_ransac(fixture: &std::path::Path, runs: usize, json: bool) -> anyhow::Result<()> {
    let cases = glace_localize::dsac_fixture::load(fixture).map_err(|e| anyhow::anyhow!("{e}"))?;
    let threads = rayon::current_num_threads();
    if !json {
        println!("DSAC*-style RANSAC, 80x60 cells, 64 hypotheses, tau 10 px, {runs} runs per case, {threads} threads");
        println!("reference: the C++/OpenCV extension's recorded times (2 OpenMP threads, 2-core x86-64)");
        println!(
            "{:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8}",
            "outliers", "rot (deg)", "ref rot", "trans(cm)", "ref trans", "ms/frame", "ref ms", "speedup"
        );
    }
    for case in &cases {
        let r = glace_localize::dsac_fixture::run_case(case, runs);
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:>7.0}% {:>10.4} {:>10.4} {:>10.3} {:>10.3} {:>9.2} {:>9.1} {:>7.1}x",
                r.outlier_fraction * 100.0,
                r.median_rot_deg,
                r.reference_median_rot_deg,
                r.median_trans_cm,
                r.reference_median_trans_cm,
                r.ms_per_frame,
                r.reference_ms_per_frame,
                r.speedup
            );
        }
    }
    Ok(())
}
