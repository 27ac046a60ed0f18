//! Dense kernels for the networks: GEMM through the `gemm` crate (runtime-dispatched SIMD),
//! plus the small elementwise steps fused around it.

use gemm::Parallelism;

fn parallelism(flops: usize) -> Parallelism {
    if flops > 1 << 22 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `out[m×n] = a[m×k] · wᵀ`, with `w` row-major `n×k` (a layer's weight, out × in).
pub fn matmul_wt(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(a.len() >= m * k && w.len() >= n * k && out.len() >= m * n, "matmul_wt: buffer sizes");
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
        let mut y = vec![0f32; n * self.outputs];
        matmul_wt(x, n, self.inputs, &self.weight, self.outputs, &mut y);
        for row in y.chunks_exact_mut(self.outputs) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
                if relu && *v < 0.0 {
                    *v = 0.0;
                }
            }
        }
        y
    }
    /// Number of parameters.
    pub fn params(&self) -> usize {
        self.weight.len() + self.bias.len()
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
