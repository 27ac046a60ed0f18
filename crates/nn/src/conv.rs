//! 2-D convolution on channels-last (HWC) feature maps: im2col in bounded row blocks, then GEMM.
//! Channels-last output is exactly the `cells × channels` layout the head consumes.

use rayon::prelude::*;

use crate::linalg::{matmul_wt_with, Matmul};
use crate::tensor::Tensor;

/// A convolution with bias, square kernel, zero padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Weight reordered to out × (ky, kx, in).
    pub weight: Vec<f32>,
    /// Bias per output channel.
    pub bias: Vec<f32>,
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
}

/// A channels-last feature map.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// height × width × channels values.
    pub data: Vec<f32>,
}

impl Conv2d {
    /// From a PyTorch weight (out, in, k, k) and bias.
    pub fn from_torch(weight: &Tensor, bias: &Tensor, stride: usize, pad: usize) -> Conv2d {
        let (o, i, k) = (weight.shape[0], weight.shape[1], weight.shape[2]);
        let mut w = vec![0f32; o * k * k * i];
        for oo in 0..o {
            for ii in 0..i {
                for ky in 0..k {
                    for kx in 0..k {
                        w[oo * k * k * i + (ky * k + kx) * i + ii] = weight.data[((oo * i + ii) * k + ky) * k + kx];
                    }
                }
            }
        }
        Conv2d { weight: w, bias: bias.data.clone(), inputs: i, outputs: o, kernel: k, stride, pad }
    }

    /// Output size for an input size.
    pub fn output_size(&self, n: usize) -> usize {
        (n + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Convolution, optionally followed by ReLU.
    pub fn forward(&self, x: &FeatureMap, relu: bool) -> FeatureMap {
        self.forward_with(Matmul::Fp32, x, relu)
    }

    /// [`Conv2d::forward`] with the im2col product computed as `mm` says (bias, ReLU in fp32).
    pub fn forward_with(&self, mm: Matmul, x: &FeatureMap, relu: bool) -> FeatureMap {
        // The bf16 kernels work on panels of 32 outputs and 32-deep slices: a layer narrower than
        // that (XFeat's first ones) would pay for the padding, so it stays fp32.
        let mm = if self.outputs < 32 || self.kernel * self.kernel * self.inputs < 32 { Matmul::Fp32 } else { mm };
        assert_eq!(x.channels, self.inputs, "conv input channels");
        let (ho, wo) = (self.output_size(x.height), self.output_size(x.width));
        let cols = self.kernel * self.kernel * self.inputs;
        let mut out = vec![0f32; ho * wo * self.outputs];
        if self.kernel == 1 && self.stride == 1 && self.pad == 0 {
            matmul_wt_with(mm, &x.data, ho * wo, cols, &self.weight, self.outputs, &mut out);
        } else {
            // Bound the im2col buffer to about 4 M values per block of output rows, and cut the
            // image into enough blocks that every thread has some (a narrow first layer would
            // otherwise be one block on one core).
            let bounded = (4 << 20) / (wo * cols).max(1);
            let shared = ho.div_ceil(4 * rayon::current_num_threads());
            let rows_per_block = bounded.min(shared).clamp(1, ho);
            out.par_chunks_mut(rows_per_block * wo * self.outputs).enumerate().for_each(|(blk, out_blk)| {
                let y0 = blk * rows_per_block;
                let rows = out_blk.len() / (wo * self.outputs);
                let mut col = vec![0f32; rows * wo * cols];
                for r in 0..rows {
                    let oy = y0 + r;
                    for ox in 0..wo {
                        let dst = &mut col[(r * wo + ox) * cols..][..cols];
                        for ky in 0..self.kernel {
                            let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                            for kx in 0..self.kernel {
                                let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                                let d = &mut dst[(ky * self.kernel + kx) * self.inputs..][..self.inputs];
                                if iy < 0 || ix < 0 || iy >= x.height as isize || ix >= x.width as isize {
                                    d.fill(0.0);
                                } else {
                                    let s = (iy as usize * x.width + ix as usize) * self.inputs;
                                    d.copy_from_slice(&x.data[s..s + self.inputs]);
                                }
                            }
                        }
                    }
                }
                matmul_wt_with(mm, &col, rows * wo, cols, &self.weight, self.outputs, out_blk);
            });
        }
        out.par_chunks_mut(self.outputs * 64).for_each(|chunk| {
            for row in chunk.chunks_exact_mut(self.outputs) {
                for (v, b) in row.iter_mut().zip(&self.bias) {
                    *v += b;
                    if relu && *v < 0.0 {
                        *v = 0.0;
                    }
                }
            }
        });
        FeatureMap { height: ho, width: wo, channels: self.outputs, data: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_convolution() {
        let (i, o, k, h, w) = (3, 5, 3, 9, 7);
        let wt = Tensor {
            shape: vec![o, i, k, k],
            data: (0..o * i * k * k).map(|v| ((v * 7 % 17) as f32 - 8.0) / 9.0).collect(),
            dtype: "float32",
        };
        let bt = Tensor { shape: vec![o], data: (0..o).map(|v| v as f32 * 0.1).collect(), dtype: "float32" };
        let conv = Conv2d::from_torch(&wt, &bt, 2, 1);
        let x = FeatureMap {
            height: h,
            width: w,
            channels: i,
            data: (0..h * w * i).map(|v| ((v * 5 % 13) as f32 - 6.0) / 4.0).collect(),
        };
        let y = conv.forward(&x, false);
        assert_eq!((y.height, y.width), (5, 4));
        for oy in 0..y.height {
            for ox in 0..y.width {
                for oo in 0..o {
                    let mut s = bt.data[oo];
                    for ii in 0..i {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += wt.data[((oo * i + ii) * k + ky) * k + kx]
                                        * x.data[(iy as usize * w + ix as usize) * i + ii];
                                }
                            }
                        }
                    }
                    assert!((y.data[(oy * y.width + ox) * o + oo] - s).abs() < 1e-4);
                }
            }
        }
    }
}
