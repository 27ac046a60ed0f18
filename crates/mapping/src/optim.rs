//! AdamW and the one-cycle learning-rate schedule, as PyTorch defines them and the reference
//! uses them (spec §5.6): AdamW(β 0.9/0.999, ε 1e-8, weight decay 0.01, decoupled), OneCycleLR
//! (max 5e-3, pct_start 0.3, cosine annealing, div 25, final div 1e4) → 2e-4 → 5e-3 → 2e-8.

/// PyTorch's `OneCycleLR` (two phases, cosine annealing).
#[derive(Clone, Copy, Debug)]
pub struct OneCycle {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Steps in all.
    pub total_steps: usize,
    /// Fraction of steps rising.
    pub pct_start: f64,
    /// initial = max / div_factor.
    pub div_factor: f64,
    /// final = initial / final_div_factor.
    pub final_div_factor: f64,
}

impl OneCycle {
    /// The reference's schedule for `total_steps`.
    pub fn reference(total_steps: usize) -> Self {
        OneCycle { max_lr: 5e-3, total_steps, pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 }
    }

    fn anneal_cos(start: f64, end: f64, pct: f64) -> f64 {
        let cos_out = (std::f64::consts::PI * pct).cos() + 1.0;
        end + (start - end) / 2.0 * cos_out
    }

    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let end1 = self.pct_start * self.total_steps as f64 - 1.0;
        let end2 = self.total_steps as f64 - 1.0;
        let s = step as f64;
        if s <= end1 {
            Self::anneal_cos(initial, self.max_lr, s / end1)
        } else {
            Self::anneal_cos(self.max_lr, min, (s - end1) / (end2 - end1))
        }
    }
}

/// AdamW state for one parameter tensor.
#[derive(Clone, Debug)]
pub struct AdamWState {
    /// First moment.
    pub exp_avg: Vec<f32>,
    /// Second moment.
    pub exp_avg_sq: Vec<f32>,
}

/// AdamW hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

impl AdamWState {
    /// Zero state for `n` parameters.
    pub fn new(n: usize) -> Self {
        AdamWState { exp_avg: vec![0.0; n], exp_avg_sq: vec![0.0; n] }
    }
}

impl AdamW {
    /// One step (`step` counts from 1) on `param` with gradient `grad` at learning rate `lr`,
    /// in PyTorch's operation order.
    pub fn step(&self, param: &mut [f32], grad: &[f32], state: &mut AdamWState, lr: f64, step: usize) {
        let decay = (1.0 - lr * self.weight_decay) as f32;
        let bc1 = 1.0 - self.beta1.powi(step as i32);
        let bc2_sqrt = (1.0 - self.beta2.powi(step as i32)).sqrt();
        let step_size = (lr / bc1) as f32;
        let (w1, b2) = ((1.0 - self.beta1) as f32, self.beta2 as f32);
        let (w2, eps, bc2s) = ((1.0 - self.beta2) as f32, self.eps as f32, bc2_sqrt as f32);
        for (((p, g), m), v) in param.iter_mut().zip(grad).zip(&mut state.exp_avg).zip(&mut state.exp_avg_sq) {
            *p *= decay;
            *m += w1 * (g - *m);
            *v = *v * b2 + w2 * g * g;
            let denom = v.sqrt() / bc2s + eps;
            *p -= step_size * *m / denom;
        }
    }
}
