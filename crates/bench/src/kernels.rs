//! The compute kernels, each in every precision this CPU has and against the GEMM peak of the same
//! run: the head's training step, the local encoders and the head's forward at localization,
//! R2Former.

use std::time::Instant;

use glace_mapping::buffer::Buffer;
use glace_mapping::loss::LossConfig;
use glace_mapping::rng::Rng;
use glace_mapping::train::{train, TrainConfig};
use glace_nn::linalg::Matmul;
use glace_nn::{Head, HeadConfig, LocalEncoder};
use serde::Serialize;

use crate::machine::{gemm_peak_gflops, matmul_choices, threads};

/// The training step's size.
#[derive(Clone, Copy, Debug)]
pub struct TrainStep {
    /// Batch size (the reference's 5120 for 7/12-Scenes).
    pub batch: usize,
    /// Head width (the reference's 768).
    pub channels: usize,
    /// Head input width (768 = 256 global + 512 ACE local; 320 with XFeat).
    pub c_in: usize,
    /// Steps timed (after one untimed).
    pub steps: usize,
}

/// One precision's training step.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRow {
    /// Precision of the products.
    pub precision: String,
    /// Batch.
    pub batch: usize,
    /// Head width.
    pub channels: usize,
    /// Head input width.
    pub c_in: usize,
    /// Threads.
    pub threads: usize,
    /// Milliseconds per step.
    pub step_ms: f64,
    /// Samples per second.
    pub samples_per_s: f64,
    /// fp32's step time over this one's.
    pub speedup_vs_fp32: f64,
    /// Weight GFLOP/s of forward and backward.
    pub train_gflops: f64,
    /// This precision's GEMM peak in the same run.
    pub peak_gemm_gflops: f64,
    /// `train_gflops / peak_gemm_gflops`.
    pub ratio_to_peak: f64,
}

/// The head's training step (forward, backward, AdamW) on a random buffer.
pub fn train_step(size: TrainStep) -> Vec<TrainRow> {
    let TrainStep { batch, channels, c_in, steps } = size;
    let local = c_in.saturating_sub(256).max(1);
    let global = c_in - local;
    let buf = Buffer::random(local, batch * 2, 1);
    let globals = vec![(0..global).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect::<Vec<f32>>()];
    let config = HeadConfig { c_in, channels, block_channels: channels, blocks: 1, clusters: 1, homogeneous: true };
    let init = Head::init(config, vec![[0.0, 0.0, 2.0]], 0);
    // Weight FLOPs per sample: forward 2·Σ in·out, backward twice that.
    let macs: usize = init.clone().layers_mut().iter().map(|l| l.inputs * l.outputs).sum();
    let mut fp32_ms = None;
    let mut rows = Vec::new();
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
        train(&mut head, &buf, &globals, global, &cfg, &mut Rng::new(2), &mut |_| {
            times.push(last.elapsed().as_secs_f64());
            last = Instant::now();
            true
        });
        let step_s = times[1..].iter().sum::<f64>() / (times.len() - 1).max(1) as f64;
        let gflops = 6.0 * macs as f64 * batch as f64 / step_s / 1e9;
        let base = *fp32_ms.get_or_insert(step_s * 1000.0);
        rows.push(TrainRow {
            precision: mm.name(),
            batch,
            channels,
            c_in,
            threads: threads(),
            step_ms: step_s * 1000.0,
            samples_per_s: batch as f64 / step_s,
            speedup_vs_fp32: base / (step_s * 1000.0),
            train_gflops: gflops,
            peak_gemm_gflops: peak,
            ratio_to_peak: gflops / peak,
        });
    }
    rows
}

/// One network in one precision.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    /// The network.
    pub what: String,
    /// Precision of the products.
    pub precision: String,
    /// Items per second.
    pub rate: f64,
    /// What an item is (`images/s`, `cells/s`).
    pub unit: String,
    /// This rate over fp32's.
    pub speedup_vs_fp32: f64,
    /// The worst cosine between an output row here and in fp32.
    pub min_cosine_vs_fp32: f64,
    /// The mean cosine.
    pub mean_cosine_vs_fp32: f64,
    /// Threads.
    pub threads: usize,
}

/// The worst and the mean cosine between rows of `a` and `b` (`dim` wide).
fn cosines(a: &[f32], b: &[f32], dim: usize) -> (f64, f64) {
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
}

fn row(what: &str, mm: Matmul, rate: f64, unit: &str, base: f64, agree: (f64, f64)) -> KernelRow {
    KernelRow {
        what: what.into(),
        precision: mm.name(),
        rate,
        unit: unit.into(),
        speedup_vs_fp32: rate / base,
        min_cosine_vs_fp32: agree.0,
        mean_cosine_vs_fp32: agree.1,
        threads: threads(),
    }
}

/// Each encoder (named) `images` times on `image` (as given; default a 640×480 pattern), then the
/// heads' forward (the reference's 768 wide on 256 + 512 inputs, the cpu preset's 256 wide on
/// 256 + 64) on one 640×480 image's 4800 cells.
pub fn encoders(encoders: &[(&str, LocalEncoder)], images: usize, image: Option<&image::RgbImage>) -> Vec<KernelRow> {
    let (w, h, rgb) = match image {
        Some(img) => (img.width() as usize, img.height() as usize, img.as_raw().clone()),
        None => (640usize, 480usize, (0..640 * 480 * 3).map(|i| ((i * 2654435761usize) >> 13) as u8).collect()),
    };
    let gray: Vec<f32> = rgb.chunks_exact(3).map(|p| (p[0] as f32 / 255.0 - 0.4) / 0.25).collect();
    let mut rows = Vec::new();
    for (name, enc) in encoders {
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
            rows.push(row(name, mm, rate, "images/s", b, cosines(&out.data, &reference.data, out.channels)));
        }
    }
    for (label, c_in, channels) in [("head 768 (reference)", 768, 768), ("head 256 (cpu preset)", 320, 256)] {
        let config = HeadConfig { c_in, channels, block_channels: channels, blocks: 1, clusters: 1, homogeneous: true };
        let head = Head::init(config, vec![[0.0; 3]], 0);
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
            rows.push(row(label, mm, rate, "cells/s", b, cosines(&out, &reference, 4)));
        }
    }
    rows
}

/// R2Former on 640×480 images.
#[derive(Clone, Debug, Serialize)]
pub struct R2FormerRow {
    /// Transformer blocks.
    pub depth: usize,
    /// Parameters.
    pub params: usize,
    /// Threads.
    pub threads: usize,
    /// Milliseconds per image, preprocessing included.
    pub ms_per_image: f64,
    /// Images per second.
    pub images_per_s: f64,
    /// GFLOP per image.
    pub gflop_per_image: f64,
    /// GFLOP/s.
    pub gflops: f64,
    /// The fp32 GEMM peak of the same run.
    pub gemm_peak_gflops: f64,
    /// `gflops / gemm_peak_gflops`.
    pub ratio_to_peak: f64,
}

/// R2Former (DeiT-S, `depth` blocks, random weights of the real size) on `images` images.
pub fn r2former(depth: usize, images: usize) -> R2FormerRow {
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
    let peak = gemm_peak_gflops(Matmul::Fp32);
    R2FormerRow {
        depth,
        params: net.params(),
        threads: threads(),
        ms_per_image: 1000.0 * per_image,
        images_per_s: 1.0 / per_image,
        gflop_per_image: net.flops() / 1e9,
        gflops,
        gemm_peak_gflops: peak,
        ratio_to_peak: gflops / peak,
    }
}
