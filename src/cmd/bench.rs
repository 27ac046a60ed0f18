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
    /// Real captures: every ACE-layout scene under ../shared/data mapped and localized with the
    /// defaults; mapping time, accuracy, fit of training and test frames, next to the SIFT +
    /// COLMAP baseline of baselines.json. Long (minutes per scene).
    Real(super::real::BenchRealArgs),
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
        BenchWhat::Serve(a) => super::serve::bench(a),
        BenchWhat::Real(a) => super::real::run(a),
        BenchWhat::Ablation(a) => super::ablation::run(a),
        BenchWhat::R2former { depth, images, json } => bench_r2former(*depth, *images, *json),
        BenchWhat::Ransac { fixture, runs, json } => bench_ransac(fixture, *runs, *json),
        BenchWhat::Encoders { ace, images, json } => bench_encoders(ace.as_deref(), *images, *json),
        BenchWhat::Train { batch, channels, c_in, steps, json } => bench_train(*batch, *channels, *c_in, *steps, *json),
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
    let cases = glace_localize::dsac_fixture::load(fixture)?;
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

/// The matrix-product choices a side-by-side benchmark compares on this CPU: fp32 and every
/// bf16 kernel the CPU has.
fn matmul_choices() -> Vec<glace_nn::linalg::Matmul> {
    use glace_nn::bf16::Bf16Kernel;
    use glace_nn::linalg::Matmul;
    let mut v = vec![Matmul::Fp32];
    for k in [Bf16Kernel::Avx512, Bf16Kernel::Amx] {
        if k.available() {
            v.push(Matmul::Bf16(k));
        }
    }
    v
}

/// What this CPU has and what `--precision auto` picks, for benchmark headers.
fn precision_header() -> String {
    use glace_nn::linalg::Precision;
    let auto = Precision::Auto.resolve().map(|m| m.name()).unwrap_or_else(|e| e);
    format!(
        "CPU {} ({}), AVX512-BF16 {}, AMX-BF16 {}; --precision auto picks {auto}",
        cpu_model(),
        glace_nn::bf16::cpu_vendor(),
        if glace_nn::bf16::avx512_bf16_available() { "yes" } else { "no" },
        if glace_nn::bf16::amx_available() { "yes" } else { "no" },
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn bench_train(batch: usize, channels: usize, c_in: usize, steps: usize, json: bool) -> anyhow::Result<()> {
    use glace_mapping::buffer::{Buffer, ViewGeometry};
    use glace_mapping::loss::LossConfig;
    use glace_mapping::rng::Rng;
    use glace_mapping::train::{train, TrainConfig};
    use glace_nn::{Head, HeadConfig};
    let threads = rayon::current_num_threads();
    // A buffer of random features and consistent geometry.
    let mut rng = Rng::new(1);
    let local = c_in.saturating_sub(256).max(1);
    let global = c_in - local;
    let size = batch * 2;
    let mut buf = Buffer { dim: local, ..Default::default() };
    buf.views.push(ViewGeometry {
        w2c: [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        k: [525.0, 525.0, 320.0, 240.0],
    });
    for _ in 0..size {
        buf.features.extend((0..local).map(|_| half::f16::from_f32(rng.normal() as f32 * 0.1)));
        buf.pixels.push([rng.range(0.0, 640.0) as f32, rng.range(0.0, 480.0) as f32]);
        buf.view.push(0);
        buf.image.push(0);
    }
    let globals = vec![(0..global).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect::<Vec<f32>>()];
    let config = HeadConfig { c_in, channels, block_channels: channels, blocks: 1, clusters: 1, homogeneous: true };
    let init = Head::init(config, vec![[0.0, 0.0, 2.0]], 0);
    // Weight FLOPs per sample: forward 2·Σ in·out, backward twice that.
    let macs: usize = init.clone().layers_mut().iter().map(|l| l.inputs * l.outputs).sum();
    if !json {
        println!("head training step: batch {batch}, width {channels}, input {c_in}, {threads} threads");
        println!("  {}", precision_header());
    }
    let mut fp32_ms = None;
    for mm in matmul_choices() {
        let peak = gemm_peak_gflops(mm);
        let mut head = init.clone();
        let cfg = TrainConfig {
            batch_size: batch,
            iterations: steps + 1,
            lr_max: 5e-3,
            noise_std: 0.1,
            loss: LossConfig::default(),
            matmul: mm,
        };
        let mut times = Vec::new();
        let mut last = Instant::now();
        let mut r = Rng::new(2);
        train(&mut head, &buf, &globals, global, &cfg, &mut r, &mut |_| {
            times.push(last.elapsed().as_secs_f64());
            last = Instant::now();
            true
        });
        let step_s = times[1..].iter().sum::<f64>() / (times.len() - 1) as f64;
        let gflops = 6.0 * macs as f64 * batch as f64 / step_s / 1e9;
        let base = *fp32_ms.get_or_insert(step_s * 1000.0);
        let v = serde_json::json!({
            "precision": mm.name(), "batch": batch, "channels": channels, "c_in": c_in, "threads": threads,
            "step_ms": step_s * 1000.0, "samples_per_s": batch as f64 / step_s, "speedup_vs_fp32": base / (step_s * 1000.0),
            "train_gflops": gflops, "peak_gemm_gflops": peak, "ratio_to_peak": gflops / peak,
        });
        if json {
            println!("{v}");
        } else {
            println!(
                "  {:<20} {:>7.0} ms per step, {:>7.0} samples/s, {:>5.0} GFLOP/s = {:>3.0} % of its GEMM peak ({:.0} GFLOP/s), {:.2}x fp32",
                mm.name(),
                step_s * 1000.0,
                batch as f64 / step_s,
                gflops,
                100.0 * gflops / peak,
                peak,
                base / (step_s * 1000.0)
            );
        }
    }
    Ok(())
}

/// Peak GFLOP/s of one way of computing products: a large square GEMM on the same threads.
fn gemm_peak_gflops(mm: glace_nn::linalg::Matmul) -> f64 {
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    glace_nn::linalg::matmul_wt_with(mm, &a, n, n, &a, n, &mut c);
    let t = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        glace_nn::linalg::matmul_wt_with(mm, &a, n, n, &a, n, &mut c);
    }
    2.0 * (n * n * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn bench_r2former(depth: usize, images: usize, json: bool) -> anyhow::Result<()> {
    let net = glace_nn::R2Former::random(depth, 7);
    // A 640×480 photo-sized input: the usual case (no resize) as in the reference's scenes.
    let (w, h) = (640usize, 480usize);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 2654435761usize) >> 13) as u8).collect();
    net.encode(&rgb, w, h);
    let t = Instant::now();
    for _ in 0..images.max(1) {
        net.encode(&rgb, w, h);
    }
    let per_image = t.elapsed().as_secs_f64() / images.max(1) as f64;
    let gflops = net.flops() / per_image / 1e9;
    let peak = gemm_peak_gflops(glace_nn::linalg::Matmul::Fp32);
    let threads = rayon::current_num_threads();
    if json {
        let v = serde_json::json!({"depth": depth, "params": net.params(), "threads": threads, "ms_per_image": 1000.0 * per_image, "images_per_s": 1.0 / per_image, "gflops": gflops, "gemm_peak_gflops": peak, "ratio_to_peak": gflops / peak});
        println!("{v}");
    } else {
        println!(
            "R2Former DeiT-S ({depth} blocks, {:.1} M parameters) at 480x640, {threads} threads:",
            net.params() as f64 / 1e6
        );
        println!(
            "  {:.0} ms/image ({:.2} images/s), {:.1} GFLOP/image, {gflops:.0} GFLOP/s = {:.0} % of the {peak:.0} GFLOP/s GEMM peak",
            1000.0 * per_image,
            1.0 / per_image,
            net.flops() / 1e9,
            100.0 * gflops / peak
        );
    }
    Ok(())
}

fn bench_encoders(ace: Option<&std::path::Path>, images: usize, json: bool) -> anyhow::Result<()> {
    let (w, h) = (640usize, 480usize);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 2654435761usize) >> 13) as u8).collect();
    let gray: Vec<f32> = rgb.chunks_exact(3).map(|p| (p[0] as f32 / 255.0 - 0.4) / 0.25).collect();
    let mut encoders = vec![("xfeat", super::map::load_encoder("xfeat")?)];
    if let Some(p) = ace {
        encoders.push(("ace", glace_formats::load_ace(p)?));
    }
    let threads = rayon::current_num_threads();
    if !json {
        println!("encoders at 640x480 and head forward at localization, {threads} threads");
        println!("  {}", precision_header());
    }
    // Agreement with fp32: the worst and the mean cosine between a cell's features in fp32 and
    // in the other precision.
    let cosines = |a: &[f32], b: &[f32], dim: usize| -> (f64, f64) {
        let c: Vec<f64> = a
            .chunks_exact(dim)
            .zip(b.chunks_exact(dim))
            .map(|(x, y)| {
                let d: f64 = x.iter().zip(y).map(|(p, q)| (*p as f64) * (*q as f64)).sum();
                let n = |v: &[f32]| v.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt().max(1e-30);
                d / (n(x) * n(y))
            })
            .collect();
        (c.iter().cloned().fold(f64::INFINITY, f64::min), c.iter().sum::<f64>() / c.len().max(1) as f64)
    };
    let report = |what: String, mm: glace_nn::linalg::Matmul, rate: f64, unit: &str, base: f64, agree: (f64, f64)| {
        if json {
            let v = serde_json::json!({"what": what, "precision": mm.name(), "rate": rate, "unit": unit,
                "speedup_vs_fp32": rate / base, "min_cosine_vs_fp32": agree.0, "mean_cosine_vs_fp32": agree.1, "threads": threads});
            println!("{v}");
        } else {
            println!(
                "  {what:<28} {:<20} {rate:>9.1} {unit}, {:.2}x fp32, cosine to fp32 min {:.5} mean {:.6}",
                mm.name(),
                rate / base,
                agree.0,
                agree.1
            );
        }
    };
    for (name, enc) in &encoders {
        let reference = enc.encode(&rgb, &gray, w, h).features;
        let mut base = None;
        for mm in matmul_choices() {
            let out = enc.encode_with(mm, &rgb, &gray, w, h).features;
            let t = Instant::now();
            for _ in 0..images.max(1) {
                enc.encode_with(mm, &rgb, &gray, w, h);
            }
            let rate = images.max(1) as f64 / t.elapsed().as_secs_f64();
            let b = *base.get_or_insert(rate);
            report(name.to_string(), mm, rate, "images/s", b, cosines(&out.data, &reference.data, out.channels));
        }
    }
    // Heads: the reference's default (768 wide, 256 + 512 input) and the cpu preset's (256 wide,
    // 256 + 64 XFeat input), on one 640×480 image's 4800 cells.
    for (label, c_in, channels) in [("head 768 (reference)", 768, 768), ("head 256 (cpu preset)", 320, 256)] {
        let config = glace_nn::HeadConfig {
            c_in,
            channels,
            block_channels: channels,
            blocks: 1,
            clusters: 1,
            homogeneous: true,
        };
        let head = glace_nn::Head::init(config, vec![[0.0; 3]], 0);
        let cells = 4800;
        let x: Vec<f32> = (0..cells * c_in).map(|i| ((i * 7919) % 101) as f32 * 0.02 - 1.0).collect();
        let reference = head.forward(&x, cells).fc3_out;
        let mut base = None;
        for mm in matmul_choices() {
            let out = head.forward_with(mm, &x, cells).fc3_out;
            let t = Instant::now();
            let reps = 5;
            for _ in 0..reps {
                head.forward_with(mm, &x, cells);
            }
            let rate = (cells * reps) as f64 / t.elapsed().as_secs_f64();
            let b = *base.get_or_insert(rate);
            report(label.to_string(), mm, rate, "cells/s", b, cosines(&out, &reference, 4));
        }
    }
    Ok(())
}
