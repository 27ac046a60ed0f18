//! Dense kernels for the networks: GEMM through the `gemm` crate (runtime-dispatched SIMD),
//! plus the small elementwise steps fused around it.

use gemm::Parallelism;

use crate::bf16::{Bf16Kernel, Strided};

/// How the matrix products of a network are computed: fp32 through the `gemm` crate, or bf16
/// operands with fp32 accumulation through one of the [`crate::bf16`] kernels. Everything else
/// (bias, ReLU, residual sums, softmax, losses) stays fp32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Matmul {
    /// fp32 operands and accumulation.
    #[default]
    Fp32,
    /// bf16 operands, fp32 accumulation and output.
    Bf16(Bf16Kernel),
}

impl Matmul {
    /// Short name for logs and benchmarks (`fp32`, `bf16 (amx-bf16)`, …).
    pub fn name(self) -> String {
        match self {
            Matmul::Fp32 => "fp32".into(),
            Matmul::Bf16(k) => format!("bf16 ({})", k.name()),
        }
    }
}

/// The precision a user asks for; [`Precision::resolve`] turns it into a [`Matmul`] for this CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where this CPU has a path faster than fp32 (AMX, or AVX512-BF16 on AMD), else fp32.
    #[default]
    Auto,
    /// fp32 everywhere.
    Fp32,
    /// bf16 with the best kernel this CPU has, fast or not.
    Bf16,
}

impl Precision {
    /// `auto`, `fp32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses `auto`, `fp32` or `bf16`.
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "auto" => Some(Precision::Auto),
            "fp32" => Some(Precision::Fp32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    /// The kernel choice on this CPU; an error for `bf16` where the CPU has no bf16 instructions.
    pub fn resolve(self) -> Result<Matmul, String> {
        match self {
            Precision::Fp32 => Ok(Matmul::Fp32),
            Precision::Auto => Ok(crate::bf16::fast_kernel().map_or(Matmul::Fp32, Matmul::Bf16)),
            Precision::Bf16 => crate::bf16::best_kernel().map(Matmul::Bf16).ok_or_else(|| {
                format!(
                    "bf16 needs AMX-BF16 or AVX512-BF16, and this CPU ({}) has neither: use auto or fp32",
                    crate::bf16::cpu_vendor()
                )
            }),
        }
    }
}

fn parallelism(flops: usize) -> Parallelism {
    if flops > 1 << 22 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `out[m×n] = a[m×k] · wᵀ`, with `w` row-major `n×k` (a layer's weight, out × in).
pub fn matmul_wt(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    matmul_wt_with(Matmul::Fp32, a, m, k, w, n, out)
}

/// [`matmul_wt`] with the products computed as `mm` says.
pub fn matmul_wt_with(mm: Matmul, a: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(a.len() >= m * k && w.len() >= n * k && out.len() >= m * n, "matmul_wt: buffer sizes");
    if let Matmul::Bf16(kernel) = mm {
        crate::bf16::gemm(
            kernel,
            (m, n, k),
            out,
            false,
            Strided { data: a, rs: k, cs: 1 },
            Strided { data: w, rs: 1, cs: k },
        );
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above bound every index gemm reads or writes with these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
    }
}

/// General `out[m×n] (+)= A[m×k] · B[k×n]` with explicit row/column strides (element (i, t) of
/// A at `a[i * a_rs + t * a_cs]`), for the transposed products of the backward pass; the
/// products computed as `mm` says.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    mm: Matmul,
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    if let Matmul::Bf16(kernel) = mm {
        let (a, b) = (Strided { data: a, rs: a_rs, cs: a_cs }, Strided { data: b, rs: b_rs, cs: b_cs });
        crate::bf16::gemm(kernel, (m, n, k), out, accumulate, a, b);
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    assert!(out.len() >= m * n, "gemm_strided: output size");
    assert!(k == 0 || ((m - 1) * a_rs + (k - 1) * a_cs) < a.len(), "gemm_strided: lhs bounds");
    assert!(k == 0 || ((k - 1) * b_rs + (n - 1) * b_cs) < b.len(), "gemm_strided: rhs bounds");
    // SAFETY: the asserts bound every element gemm touches with these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
    }
}

/// A fully connected layer (a 1×1 convolution): weight `out × in`, bias `out`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Weight, row-major out × in.
    pub weight: Vec<f32>,
    /// Bias.
    pub bias: Vec<f32>,
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
}

impl Linear {
    /// `y = x·Wᵀ + b` for `n` rows, optionally followed by ReLU.
    pub fn forward(&self, x: &[f32], n: usize, relu: bool) -> Vec<f32> {
        self.forward_with(Matmul::Fp32, x, n, relu)
    }

    /// [`Linear::forward`] with the product computed as `mm` says (bias and ReLU in fp32).
    pub fn forward_with(&self, mm: Matmul, x: &[f32], n: usize, relu: bool) -> Vec<f32> {
        let mut y = vec![0f32; n * self.outputs];
        matmul_wt_with(mm, x, n, self.inputs, &self.weight, self.outputs, &mut y);
        for row in y.chunks_exact_mut(self.outputs) {
            if relu {
                // A select (keeps NaN, as torch's ReLU does), not a branch.
                row.iter_mut().zip(&self.bias).for_each(|(v, b)| {
                    let x = *v + b;
                    *v = if x < 0.0 { 0.0 } else { x };
                });
            } else {
                row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
            }
        }
        y
    }
    /// [`Linear::forward_with`] on rows whose first `shared.len()` inputs are `shared` in every
    /// row, followed by each row's own `rest` (`n × (inputs − shared.len())`): the shared inputs'
    /// product is computed once, not once per row (a query's global descriptor, the same for
    /// every cell of the image).
    pub fn forward_shared_with(&self, mm: Matmul, shared: &[f32], rest: &[f32], n: usize, relu: bool) -> Vec<f32> {
        let g = shared.len();
        assert!(g <= self.inputs && rest.len() == n * (self.inputs - g), "shared + rest must be n × inputs");
        let l = self.inputs - g;
        let offset: Vec<f32> = self
            .weight
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .map(|(w, b)| b + w[..g].iter().zip(shared).map(|(w, x)| w * x).sum::<f32>())
            .collect();
        let w_rest: Vec<f32> = self.weight.chunks_exact(self.inputs).flat_map(|w| w[g..].iter().copied()).collect();
        let mut y = vec![0f32; n * self.outputs];
        matmul_wt_with(mm, rest, n, l, &w_rest, self.outputs, &mut y);
        for row in y.chunks_exact_mut(self.outputs) {
            row.iter_mut().zip(&offset).for_each(|(v, b)| {
                let x = *v + b;
                *v = if relu && x < 0.0 { 0.0 } else { x };
            });
        }
        y
    }

    /// Number of parameters.
    pub fn params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// Backward of `y = x·Wᵀ + b` over `n` rows: accumulates dW and db into `grad`, returns dx
    /// (when `need_dx`). `dy` must already include the ReLU mask.
    pub fn backward(&self, x: &[f32], dy: &[f32], n: usize, grad: &mut LinearGrad, need_dx: bool) -> Vec<f32> {
        self.backward_with(Matmul::Fp32, x, dy, n, grad, need_dx)
    }

    /// [`Linear::backward`] with both products computed as `mm` says (db in fp32).
    pub fn backward_with(
        &self,
        mm: Matmul,
        x: &[f32],
        dy: &[f32],
        n: usize,
        grad: &mut LinearGrad,
        need_dx: bool,
    ) -> Vec<f32> {
        // dW[out×in] += dyᵀ[out×n] · x[n×in]
        gemm_strided(
            mm,
            (self.outputs, self.inputs, n),
            &mut grad.weight,
            true,
            dy,
            (1, self.outputs),
            x,
            (self.inputs, 1),
        );
        for row in dy.chunks_exact(self.outputs) {
            for (g, d) in grad.bias.iter_mut().zip(row) {
                *g += d;
            }
        }
        if !need_dx {
            return Vec::new();
        }
        // dx[n×in] = dy[n×out] · W[out×in]
        let mut dx = vec![0f32; n * self.inputs];
        gemm_strided(
            mm,
            (n, self.inputs, self.outputs),
            &mut dx,
            false,
            dy,
            (self.outputs, 1),
            &self.weight,
            (self.inputs, 1),
        );
        dx
    }
}

/// Gradients of a [`Linear`].
#[derive(Clone, Debug)]
pub struct LinearGrad {
    /// d loss / d weight.
    pub weight: Vec<f32>,
    /// d loss / d bias.
    pub bias: Vec<f32>,
}

impl LinearGrad {
    /// Zero gradients shaped like `l`.
    pub fn zeros(l: &Linear) -> Self {
        LinearGrad { weight: vec![0.0; l.weight.len()], bias: vec![0.0; l.bias.len()] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
        let mut out = vec![0.0; m * n];
        matmul_wt(&a, m, k, &w, n, &mut out);
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum();
                assert!((out[i * n + j] - r).abs() < 1e-4);
            }
        }
    }
}
