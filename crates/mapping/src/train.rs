//! The training loop (spec §5.3–5.6): shuffled buffer epochs, batches of `[global | local]`
//! features with feature diffusion on the global part, the reprojection loss, the head's
//! backward pass and AdamW under the one-cycle schedule.

use glace_nn::linalg::LinearGrad;
use glace_nn::Head;
use rayon::prelude::*;

use crate::buffer::Buffer;
use crate::loss::{reprojection_loss, tau, LossConfig, SampleGeometry};
use crate::optim::{AdamW, AdamWState, OneCycle};
use crate::rng::Rng;

/// Training parameters.
#[derive(Clone, Copy, Debug)]
pub struct TrainConfig {
    /// Samples per step (the reference: 5120 per GPU; a multiple of 512 there).
    pub batch_size: usize,
    /// Steps.
    pub iterations: usize,
    /// Peak learning rate.
    pub lr_max: f64,
    /// Feature-diffusion σ on the global part (0 disables).
    pub noise_std: f32,
    /// Loss constants.
    pub loss: LossConfig,
}

/// Progress of one iteration.
#[derive(Clone, Copy, Debug)]
pub struct IterStats {
    /// 0-based iteration.
    pub iteration: usize,
    /// Loss.
    pub loss: f64,
    /// Fraction of valid samples.
    pub valid: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Median L1 reprojection error of the valid samples (pixels).
    pub median_error: f64,
}

/// Trains `head` on `buffer`; `globals[image]` is the global descriptor of a training image
/// (empty rows when the head has no global input). `on_iter` sees every iteration and returns
/// false to stop training there.
pub fn train(
    head: &mut Head,
    buffer: &Buffer,
    globals: &[Vec<f32>],
    global_dim: usize,
    cfg: &TrainConfig,
    rng: &mut Rng,
    on_iter: &mut dyn FnMut(&IterStats) -> bool,
) -> Vec<IterStats> {
    let dim = buffer.dim;
    let c_in = global_dim + dim;
    assert_eq!(head.config.c_in, c_in, "head input must be global + local width");
    let b = cfg.batch_size.min(buffer.len());
    let schedule = OneCycle { max_lr: cfg.lr_max, ..OneCycle::reference(cfg.iterations) };
    let opt = AdamW::default();
    let mut states: Vec<(AdamWState, AdamWState)> =
        head.layers_mut().iter().map(|l| (AdamWState::new(l.weight.len()), AdamWState::new(l.bias.len()))).collect();
    let mut history = Vec::with_capacity(cfg.iterations);
    let mut order: Vec<usize> = Vec::new();
    let mut cursor = usize::MAX;
    let mut x = vec![0f32; b * c_in];
    for it in 0..cfg.iterations {
        if cursor == usize::MAX || cursor + b > order.len() {
            order = rng.permutation(buffer.len());
            cursor = 0;
        }
        let batch = &order[cursor..cursor + b];
        cursor += b;
        // Diffusion noise is drawn per row from its own stream (seeded from this iteration's
        // draw), in parallel: one serial stream of b × 256 normals was a large share of a step.
        let noisy = cfg.noise_std > 0.0 && global_dim > 0;
        let noise_seed = if noisy { rng.next_u64() } else { 0 };
        x.par_chunks_mut(c_in).enumerate().for_each(|(r, row)| {
            let s = batch[r];
            if global_dim > 0 {
                let g = &globals[buffer.image[s] as usize];
                let gr = &mut row[..global_dim];
                gr.copy_from_slice(g);
                if noisy {
                    let mut stream = Rng::new(noise_seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    for pair in gr.chunks_mut(2) {
                        let (a, b) = stream.normal_pair_f32();
                        pair[0] += a * cfg.noise_std;
                        if let Some(v) = pair.get_mut(1) {
                            *v += b * cfg.noise_std;
                        }
                    }
                    let n = gr.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    gr.iter_mut().for_each(|v| *v /= n);
                }
            }
            for (v, h) in row[global_dim..].iter_mut().zip(&buffer.features[s * dim..(s + 1) * dim]) {
                *v = h.to_f32();
            }
        });
        let geo: Vec<SampleGeometry> = batch.iter().map(|&s| buffer.geometry(s)).collect();
        let cache = head.forward_train(&x, b);
        let t = tau(&cfg.loss, it, cfg.iterations);
        let out = reprojection_loss(&cfg.loss, &cache.output().coords_n3, &geo, t);
        let mut grads = head.zero_grads();
        head.backward(&cache, &out.grad, &mut grads);
        let lr = schedule.lr(it);
        for ((layer, g), (sw, sb)) in head.layers_mut().into_iter().zip(&grads.layers).zip(states.iter_mut()) {
            let LinearGrad { weight, bias } = g;
            opt.step(&mut layer.weight, weight, sw, lr, it + 1);
            opt.step(&mut layer.bias, bias, sb, lr, it + 1);
        }
        let mut errs: Vec<f32> = out.errors.iter().zip(&out.valid).filter(|(_, v)| **v).map(|(e, _)| *e).collect();
        let median_error = if errs.is_empty() {
            f64::INFINITY
        } else {
            let mid = errs.len() / 2;
            *errs.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1 as f64
        };
        let stats = IterStats {
            iteration: it,
            loss: out.loss,
            valid: out.valid.iter().filter(|v| **v).count() as f64 / b as f64,
            lr,
            median_error,
        };
        if it % 100 == 0 || it + 1 == cfg.iterations {
            tracing::info!(
                "iteration {it}: loss {:.3}, valid {:.1} %, median error {:.1} px, lr {:.2e}",
                stats.loss,
                100.0 * stats.valid,
                median_error,
                lr
            );
        }
        history.push(stats);
        if !on_iter(&stats) {
            break;
        }
    }
    history
}
