//! The training loop (spec §5.3–5.6): shuffled buffer epochs, batches of `[global | local]`
//! features with feature diffusion on the global part, the reprojection loss, the head's
//! backward pass and AdamW under the one-cycle schedule.

use glace_nn::linalg::{LinearGrad, Matmul};
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
    /// How the head's products are computed.
    pub matmul: Matmul,
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

/// What one optimizer step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    /// Loss.
    pub loss: f64,
    /// Fraction of valid samples.
    pub valid: f64,
    /// Median L1 reprojection error of the valid samples (pixels); NaN when not asked for.
    pub median_error: f64,
}

/// The training-backend seam: one implementation owns a head, its optimizer state and its
/// working buffers and performs one optimizer step at a time. Everything around a step (buffer
/// order, schedules, logging, stopping) is [`train_with`]'s, so a backend (fp32 or bf16 on the
/// CPU, a GPU later) changes nothing else.
pub trait HeadTrainer {
    /// One step on the buffer rows `batch`: forward, loss at soft clamp `tau`, backward and AdamW
    /// at learning rate `lr`; `noise_seed` seeds the feature diffusion of this step. The median
    /// error is computed only when `want_stats`.
    fn step(&mut self, batch: &[usize], lr: f64, tau: f64, noise_seed: u64, want_stats: bool) -> StepStats;
    /// Width of the global part of the head's input (0: no global input, no diffusion).
    fn global_dim(&self) -> usize;
    /// Ends training and hands back the head.
    fn finish(self: Box<Self>) -> Head;
}

/// The CPU backend: the head's products in fp32 or bf16 ([`Matmul`]), everything else fp32
/// (bias, masks, residual sums, the decoder, the loss and AdamW's master weights).
pub struct CpuTrainer<'a> {
    head: Head,
    matmul: Matmul,
    buffer: &'a Buffer,
    globals: &'a [Vec<f32>],
    global_dim: usize,
    noise_std: f32,
    loss: LossConfig,
    opt: AdamW,
    states: Vec<(AdamWState, AdamWState)>,
    steps: usize,
    x: Vec<f32>,
}

impl<'a> CpuTrainer<'a> {
    /// A backend training `head` on `buffer`; `globals[image]` is the global descriptor of a
    /// training image (empty rows when the head has no global input).
    pub fn new(
        mut head: Head,
        matmul: Matmul,
        buffer: &'a Buffer,
        globals: &'a [Vec<f32>],
        global_dim: usize,
        cfg: &TrainConfig,
    ) -> CpuTrainer<'a> {
        assert_eq!(head.config.c_in, global_dim + buffer.dim, "head input must be global + local width");
        let states = head
            .layers_mut()
            .iter()
            .map(|l| (AdamWState::new(l.weight.len()), AdamWState::new(l.bias.len())))
            .collect();
        CpuTrainer {
            head,
            matmul,
            buffer,
            globals,
            global_dim,
            noise_std: cfg.noise_std,
            loss: cfg.loss,
            opt: AdamW::default(),
            states,
            steps: 0,
            x: Vec::new(),
        }
    }

    /// `[global | local]` rows of the batch, diffusion noise on the global part.
    fn assemble(&mut self, batch: &[usize], noise_seed: u64) {
        let (buffer, globals, global_dim, noise_std) = (self.buffer, self.globals, self.global_dim, self.noise_std);
        let dim = buffer.dim;
        let c_in = global_dim + dim;
        self.x.resize(batch.len() * c_in, 0.0);
        // Diffusion noise is drawn per row from its own stream (seeded from this step's seed), in
        // parallel: one serial stream of b × 256 normals was a large share of a step.
        let noisy = noise_std > 0.0 && global_dim > 0;
        self.x.par_chunks_mut(c_in).enumerate().for_each(|(r, row)| {
            let s = batch[r];
            if global_dim > 0 {
                let g = &globals[buffer.image[s] as usize];
                let gr = &mut row[..global_dim];
                gr.copy_from_slice(g);
                if noisy {
                    let mut stream = Rng::new(noise_seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    for pair in gr.chunks_mut(2) {
                        let (a, b) = stream.normal_pair_f32();
                        pair[0] += a * noise_std;
                        if let Some(v) = pair.get_mut(1) {
                            *v += b * noise_std;
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
    }
}

impl HeadTrainer for CpuTrainer<'_> {
    fn step(&mut self, batch: &[usize], lr: f64, tau: f64, noise_seed: u64, want_stats: bool) -> StepStats {
        let b = batch.len();
        self.assemble(batch, noise_seed);
        let geo: Vec<SampleGeometry> = batch.iter().map(|&s| self.buffer.geometry(s)).collect();
        let cache = self.head.forward_train_with(self.matmul, &self.x, b);
        let out = reprojection_loss(&self.loss, &cache.output().coords_n3, &geo, tau);
        let mut grads = self.head.zero_grads();
        self.head.backward_with(self.matmul, &cache, &out.grad, &mut grads);
        self.steps += 1;
        for ((layer, g), (sw, sb)) in self.head.layers_mut().into_iter().zip(&grads.layers).zip(self.states.iter_mut())
        {
            let LinearGrad { weight, bias } = g;
            self.opt.step(&mut layer.weight, weight, sw, lr, self.steps);
            self.opt.step(&mut layer.bias, bias, sb, lr, self.steps);
        }
        let median_error = if !want_stats {
            f64::NAN
        } else {
            let mut errs: Vec<f32> = out.errors.iter().zip(&out.valid).filter(|(_, v)| **v).map(|(e, _)| *e).collect();
            if errs.is_empty() {
                f64::INFINITY
            } else {
                let mid = errs.len() / 2;
                *errs.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1 as f64
            }
        };
        StepStats { loss: out.loss, valid: out.valid.iter().filter(|v| **v).count() as f64 / b as f64, median_error }
    }

    fn global_dim(&self) -> usize {
        self.global_dim
    }

    fn finish(self: Box<Self>) -> Head {
        self.head
    }
}

/// Trains `head` on `buffer` with the CPU backend ([`TrainConfig::matmul`]); `globals[image]`
/// is the global descriptor of a training image (empty rows when the head has no global input).
/// `on_iter` sees every iteration and returns false to stop training there.
pub fn train(
    head: &mut Head,
    buffer: &Buffer,
    globals: &[Vec<f32>],
    global_dim: usize,
    cfg: &TrainConfig,
    rng: &mut Rng,
    on_iter: &mut dyn FnMut(&IterStats) -> bool,
) -> Vec<IterStats> {
    let mut trainer = Box::new(CpuTrainer::new(head.clone(), cfg.matmul, buffer, globals, global_dim, cfg));
    let history = train_with(trainer.as_mut(), buffer.len(), cfg, rng, on_iter);
    *head = trainer.finish();
    history
}

/// The training loop over any backend: shuffled epochs over the `rows` buffer rows, the
/// one-cycle learning rate and the soft-clamp schedule, a diffusion seed per step, logging.
pub fn train_with(
    trainer: &mut dyn HeadTrainer,
    rows: usize,
    cfg: &TrainConfig,
    rng: &mut Rng,
    on_iter: &mut dyn FnMut(&IterStats) -> bool,
) -> Vec<IterStats> {
    let b = cfg.batch_size.min(rows);
    let schedule = OneCycle { max_lr: cfg.lr_max, ..OneCycle::reference(cfg.iterations) };
    let mut history = Vec::with_capacity(cfg.iterations);
    let mut order: Vec<usize> = Vec::new();
    let mut cursor = usize::MAX;
    let noisy = cfg.noise_std > 0.0 && trainer.global_dim() > 0;
    for it in 0..cfg.iterations {
        if cursor == usize::MAX || cursor + b > order.len() {
            order = rng.permutation(rows);
            cursor = 0;
        }
        let batch = &order[cursor..cursor + b];
        cursor += b;
        let noise_seed = if noisy { rng.next_u64() } else { 0 };
        let t = tau(&cfg.loss, it, cfg.iterations);
        let lr = schedule.lr(it);
        let s = trainer.step(batch, lr, t, noise_seed, true);
        let stats = IterStats { iteration: it, loss: s.loss, valid: s.valid, lr, median_error: s.median_error };
        if it % 100 == 0 || it + 1 == cfg.iterations {
            tracing::info!(
                "iteration {it}: loss {:.3}, valid {:.1} %, median error {:.1} px, lr {:.2e}",
                stats.loss,
                100.0 * stats.valid,
                stats.median_error,
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
