//! `glace bench <what>`: benchmarks that print their numbers side by side in one run.

use glace_bench::machine;

/// Arguments of `glace bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Real captures: every ACE-layout scene under ../shared/data mapped and localized with the
    /// defaults; mapping time, accuracy, fit of training and test frames, next to the SIFT +
    /// COLMAP baseline of baselines.json. Long (minutes per scene).
    Real(super::real::BenchRealArgs),
    /// Time to accuracy: each scene's accuracy (with the refinement and without) after each number
    /// of iterations and buffer size; the stages before training run once per scene. Long.
    Budget {
        /// Folder of scenes in the ACE layout [default: ../shared/data or $GLACE_SHARED/data].
        #[arg(long)]
        scenes: Option<std::path::PathBuf>,
        /// Only these scenes (comma-separated folder names).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Mapping preset.
        #[arg(long, default_value = "cpu")]
        preset: String,
        /// Changes to the preset as a JSON object named like the map log's options.
        #[arg(long, default_value = "{}")]
        options: String,
        /// Iteration counts to train for.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
        iterations: Vec<usize>,
        /// Buffer sizes, in augmented visits of every training frame.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        visits: Vec<usize>,
        /// Print the rows as one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Queries against kept maps (`bench real --keep DIR` writes them): each scene's test frames
    /// localized with the defaults on each thread count; per-stage medians and the accuracy of
    /// the same run.
    Query {
        /// Folder of maps named <scene>.glace.
        #[arg(long)]
        maps: std::path::PathBuf,
        /// Folder of scenes in the ACE layout [default: ../shared/data or $GLACE_SHARED/data].
        #[arg(long)]
        scenes: Option<std::path::PathBuf>,
        /// Thread counts to run on, one after the other.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Print one JSON object per scene and thread count.
        #[arg(long)]
        json: bool,
    },
    /// The HTTP service under load: many clients sending real frames, malformed requests of every
    /// class, throughput next to in-process localization of the same frames, latency, memory.
    Serve(super::serve::BenchServeArgs),
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
    /// Head training step (forward, backward, AdamW) at the reference's default size, next to the
    /// machine's GEMM peak measured in the same run.
    Train {
        /// Batch size (reference 5120 for 7/12-Scenes).
        #[arg(long, default_value_t = 5120)]
        batch: usize,
        /// Head width (reference 768).
        #[arg(long, default_value_t = 768)]
        channels: usize,
        /// Head input width (768 = 256 global + 512 ACE local; 320 with XFeat).
        #[arg(long, default_value_t = 768)]
        c_in: usize,
        /// Steps timed.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Encoders (XFeat; ACE with --ace <weights>) in images/s at 640×480 and head forward in patches/s.
    Encoders {
        /// ACE encoder weights (ace_encoder_pretrained.pt or the random fixture) to include ACE.
        #[arg(long)]
        ace: Option<std::path::PathBuf>,
        /// Images per encoder.
        #[arg(long, default_value_t = 5)]
        images: usize,
        /// Encode this PNG or JPEG, as it is [default: a 640x480 pattern].
        #[arg(long)]
        image: Option<std::path::PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// R2Former global encoder (DeiT-S, 12 blocks, random weights of the real size) in images/s at
    /// 480×640, preprocessing included, next to the GEMM peak of the same run.
    R2former {
        /// Transformer blocks (the real checkpoint has 12).
        #[arg(long, default_value_t = 12)]
        depth: usize,
        /// Images timed.
        #[arg(long, default_value_t = 5)]
        images: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The paper's ablation on synthetic integrated rooms: (a) ACE mode, (b) global without diffusion,
    /// (c) diffusion, (d) diffusion + K = 50 decoder; overall and per-room accuracy.
    Ablation(super::ablation::AblationArgs),
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

/// Runs `glace bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.what {
        BenchWhat::Synth { frames, json } => bench_synth(*frames, *json),
        BenchWhat::Query { maps, scenes, threads, json } => bench_query(maps, scenes.as_deref(), threads, *json),
        BenchWhat::Serve(a) => super::serve::bench(a),
        BenchWhat::Real(a) => super::real::run(a),
        BenchWhat::Budget { scenes, only, preset, options, iterations, visits, json } => {
            let grid = glace_bench::budget::BudgetGrid { iterations: iterations.clone(), visits: visits.clone() };
            bench_budget(scenes.as_deref(), only, preset, options, &grid, *json)
        }
        BenchWhat::Ablation(a) => super::ablation::run(a),
        BenchWhat::R2former { depth, images, json } => bench_r2former(*depth, *images, *json),
        BenchWhat::Ransac { fixture, runs, json } => bench_ransac(fixture, *runs, *json),
        BenchWhat::Encoders { ace, images, image, json } => {
            bench_encoders(ace.as_deref(), *images, image.as_deref(), *json)
        }
        BenchWhat::Train { batch, channels, c_in, steps, json } => bench_train(
            glace_bench::kernels::TrainStep { batch: *batch, channels: *channels, c_in: *c_in, steps: *steps },
            *json,
        ),
    }
}

/// Prints each row as one JSON object.
fn print_json<T: serde::Serialize>(rows: &[T]) -> anyhow::Result<()> {
    for r in rows {
        println!("{}", serde_json::to_string(r)?);
    }
    Ok(())
}

fn bench_query(
    maps: &std::path::Path,
    scenes: Option<&std::path::Path>,
    threads: &[usize],
    json: bool,
) -> anyhow::Result<()> {
    if threads.iter().any(|&t| t == 0 || t > 256) {
        anyhow::bail!(glace::Error::usage("--threads", format!("{threads:?}: expected 1 to 256 each")));
    }
    let (root, scenes) = super::real::select_scenes(scenes, &[])?;
    let with_maps: Vec<_> = scenes
        .iter()
        .filter_map(|d| Some((d, maps.join(format!("{}.glace", d.file_name()?.to_string_lossy())))))
        .filter(|(_, m)| m.is_file())
        .collect();
    if with_maps.is_empty() {
        anyhow::bail!(glace::Error::usage(
            "--maps",
            format!("{}: no <scene>.glace for any scene under {}", maps.display(), root.display())
        ));
    }
    if !json {
        println!("queries with the defaults, {}", machine::precision_header());
        println!(
            "{:<24} {:>3} {:>6} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>9} {:>9} {:>7} failed",
            "scene",
            "thr",
            "frames",
            "median",
            "decode",
            "encode",
            "head",
            "ransac",
            "refine",
            "rot °",
            "trans",
            "5cm/5°"
        );
    }
    for (dir, map) in with_maps {
        for &t in threads {
            let r = glace_bench::query::query(dir, &map, t)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:<24} {:>3} {:>6} {:>6.0}ms {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0} | {:>9.3} {:>9.4} {:>6.1}% {}",
                    r.scene,
                    r.threads,
                    r.frames,
                    r.median_ms,
                    r.decode_ms,
                    r.encode_ms,
                    r.head_ms,
                    r.ransac_ms,
                    r.refine_ms,
                    r.median_rot_deg,
                    r.median_trans,
                    r.pct_5cm_5deg,
                    r.failed
                );
            }
        }
    }
    Ok(())
}

fn bench_synth(frames: usize, json: bool) -> anyhow::Result<()> {
    if !json {
        println!("synthetic rendering, 640x480, {} threads, {frames} frames per kind", machine::threads());
    }
    let rows = glace_bench::synth::synth(frames)?;
    if json {
        return print_json(&rows);
    }
    println!("{:<8} {:>14} {:>12} {:>16}", "kind", "textures (s)", "render fps", "render+png fps");
    for r in &rows {
        println!(
            "{:<8} {:>14.2} {:>12.1} {:>16.1}",
            format!("{:?}", r.kind).to_lowercase(),
            r.texture_build_s,
            r.render_fps,
            r.render_and_png_fps
        );
    }
    Ok(())
}

fn bench_ransac(fixture: &std::path::Path, runs: usize, json: bool) -> anyhow::Result<()> {
    let rows = glace_bench::ransac::ransac(fixture, runs)?;
    if json {
        return print_json(&rows);
    }
    println!(
        "DSAC*-style RANSAC, 80x60 cells, 64 hypotheses, tau 10 px, {runs} runs per case, {} threads",
        machine::threads()
    );
    println!("reference: the C++/OpenCV extension's recorded times (2 OpenMP threads, 2-core x86-64)");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "outliers", "rot (deg)", "ref rot", "trans(cm)", "ref trans", "ms/frame", "ref ms", "speedup"
    );
    for r in &rows {
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
    Ok(())
}

fn bench_train(size: glace_bench::kernels::TrainStep, json: bool) -> anyhow::Result<()> {
    if !json {
        println!(
            "head training step: batch {}, width {}, input {}, {} threads",
            size.batch,
            size.channels,
            size.c_in,
            machine::threads()
        );
        println!("  {}", machine::precision_header());
    }
    let rows = glace_bench::kernels::train_step(size);
    if json {
        return print_json(&rows);
    }
    for r in &rows {
        println!(
            "  {:<20} {:>7.0} ms per step, {:>7.0} samples/s, {:>5.0} GFLOP/s = {:>3.0} % of its GEMM peak ({:.0} GFLOP/s), {:.2}x fp32",
            r.precision,
            r.step_ms,
            r.samples_per_s,
            r.train_gflops,
            100.0 * r.ratio_to_peak,
            r.peak_gemm_gflops,
            r.speedup_vs_fp32
        );
    }
    Ok(())
}

fn bench_r2former(depth: usize, images: usize, json: bool) -> anyhow::Result<()> {
    let r = glace_bench::kernels::r2former(depth, images);
    if json {
        return print_json(&[r]);
    }
    println!(
        "R2Former DeiT-S ({depth} blocks, {:.1} M parameters) at 480x640, {} threads:",
        r.params as f64 / 1e6,
        r.threads
    );
    println!(
        "  {:.0} ms/image ({:.2} images/s), {:.1} GFLOP/image, {:.0} GFLOP/s = {:.0} % of the {:.0} GFLOP/s GEMM peak",
        r.ms_per_image,
        r.images_per_s,
        r.gflop_per_image,
        r.gflops,
        100.0 * r.ratio_to_peak,
        r.gemm_peak_gflops
    );
    Ok(())
}

fn bench_encoders(
    ace: Option<&std::path::Path>,
    images: usize,
    image: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<()> {
    let image = image.map(glace::read_image).transpose()?;
    let mut encoders = vec![("xfeat", super::map::load_encoder("xfeat")?)];
    if let Some(p) = ace {
        encoders.push(("ace", glace_formats::load_ace(p)?));
    }
    if !json {
        let (w, h) = image.as_ref().map_or((640, 480), |i| i.dimensions());
        println!("encoders at {w}x{h} and head forward at localization, {} threads", machine::threads());
        println!("  {}", machine::precision_header());
    }
    let rows = glace_bench::kernels::encoders(&encoders, images, image.as_ref());
    if json {
        return print_json(&rows);
    }
    for r in &rows {
        println!(
            "  {:<28} {:<20} {:>9.1} {}, {:.2}x fp32, cosine to fp32 min {:.5} mean {:.6}",
            r.what, r.precision, r.rate, r.unit, r.speedup_vs_fp32, r.min_cosine_vs_fp32, r.mean_cosine_vs_fp32
        );
    }
    Ok(())
}

fn bench_budget(
    scenes: Option<&std::path::Path>,
    only: &[String],
    preset: &str,
    options: &str,
    grid: &glace_bench::budget::BudgetGrid,
    json: bool,
) -> anyhow::Result<()> {
    for (flag, counts) in [("--iterations", &grid.iterations), ("--visits", &grid.visits)] {
        if counts.is_empty() || counts.contains(&0) {
            anyhow::bail!(glace::Error::usage(flag, "expected one or more counts, each at least 1"));
        }
    }
    let (_, dirs) = super::real::select_scenes(scenes, only)?;
    let options = super::real::parse_options(preset, options)?;
    let mut rows = Vec::new();
    for dir in &dirs {
        eprintln!("{}: stages before training…", dir.display());
        rows.extend(glace_bench::budget::time_to_accuracy(dir, &options, grid, &mut |r| {
            let acc = |a: &glace_bench::budget::Accuracy| {
                format!(
                    "{:.3}° / {:.2} cm, 5cm/5° {:5.1} %, failed {}",
                    a.median_rot_deg,
                    100.0 * a.median_trans,
                    a.pct_5cm_5deg,
                    a.failed
                )
            };
            let line = format!(
                "{:<24} {:>2} visits {:>6} buf {:>5} it ({:>6} samples/frame) map {:>5.1} s (train {:>5.1}) | fit {:>5.1} px | refined {} | unrefined {}",
                r.scene,
                r.visits,
                r.buffer_size,
                r.iterations,
                r.samples_per_frame,
                r.mapping_s,
                r.train_s,
                r.test_fit_px,
                if r.points { acc(&r.refined) } else { "(no points)".into() },
                acc(&r.unrefined)
            );
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        })?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
