//! The GLACE head (spec §4): a per-cell MLP with residual blocks, homogeneous output and an
//! optional position decoder (softmax over K centres of the training cameras).
//!
//! Input rows are `[global | local]` features (global first); output rows are world points.

use std::path::Path;

use crate::linalg::Linear;
use crate::pt::PtTensor;
use crate::WeightsError;

/// Architecture of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadConfig {
    /// Input width (256 global + 512 local = 768 for GLACE, 512 for ACE).
    pub c_in: usize,
    /// Width C (768).
    pub channels: usize,
    /// Width inside blocks, Cb = int(C · mlp_ratio).
    pub block_channels: usize,
    /// Extra residual blocks (1 indoors, 2 Cambridge, 3 Aachen).
    pub blocks: usize,
    /// Position-decoder centres K (1: the mean camera centre).
    pub clusters: usize,
    /// Homogeneous output (4 channels).
    pub homogeneous: bool,
}

/// `ln 2 / (1 − 1/4)`: the softplus β giving h = 1 at z = 0.
pub const H_BETA: f32 = std::f32::consts::LN_2 / 0.75;
/// Lower bound of h (1 / max_scale 4).
pub const MAX_INV_SCALE: f32 = 0.25;
/// Upper bound of h (1 / min_scale 0.01).
pub const MIN_INV_SCALE: f32 = 100.0;

/// A GLACE head with its weights.
#[derive(Clone, Debug)]
pub struct Head {
    /// Architecture.
    pub config: HeadConfig,
    /// Projection for the residual when c_in ≠ C.
    pub skip: Option<Linear>,
    /// res3_conv1..3.
    pub res3: [Linear; 3],
    /// `<b>c0..c2` per block.
    pub blocks: Vec<[Linear; 3]>,
    /// fc1.
    pub fc1: Linear,
    /// fc2.
    pub fc2: Linear,
    /// Position-decoder logits (K > 1).
    pub fcc: Option<Linear>,
    /// Output layer (4 channels homogeneous, else 3).
    pub fc3: Linear,
    /// K×3 centres (K = 1: the mean camera centre).
    pub centres: Vec<[f32; 3]>,
    /// Softplus β of the homogeneous scale.
    pub h_beta: f32,
}

/// Everything a forward pass produces (the intermediate outputs serve the parity tests and the
/// training backward pass).
#[derive(Clone, Debug)]
pub struct HeadOutput {
    /// n×3 world points.
    pub coords_n3: Vec<f32>,
    /// n×(3|4) raw output layer.
    pub fc3_out: Vec<f32>,
    /// n homogeneous scales h (empty when not homogeneous).
    pub h: Vec<f32>,
    /// n×K position-decoder logits (empty when K = 1).
    pub logits: Vec<f32>,
}

/// PyTorch's softplus with β and threshold 20 (linear above).
#[inline]
pub fn softplus(x: f32, beta: f32) -> f32 {
    if beta * x > 20.0 {
        x
    } else {
        (beta * x).exp().ln_1p() / beta
    }
}

/// h = clamp(softplus_β(z) + 0.25, max 100).
#[inline]
pub fn homogeneous_scale(z: f32, beta: f32) -> f32 {
    (softplus(z, beta) + MAX_INV_SCALE).min(MIN_INV_SCALE)
}

impl Head {
    /// Parameter count (weights and biases).
    pub fn params(&self) -> usize {
        let mut n = self.res3.iter().map(Linear::params).sum::<usize>() + self.fc1.params() + self.fc2.params() + self.fc3.params();
        n += self.skip.as_ref().map_or(0, Linear::params) + self.fcc.as_ref().map_or(0, Linear::params);
        n + self.blocks.iter().flat_map(|b| b.iter()).map(Linear::params).sum::<usize>()
    }

    /// Forward pass on `n` rows of `c_in` features.
    pub fn forward(&self, x: &[f32], n: usize) -> HeadOutput {
        let c = self.config.channels;
        assert_eq!(x.len(), n * self.config.c_in, "head input must be n × c_in");
        let a = self.res3[0].forward(x, n, true);
        let a = self.res3[1].forward(&a, n, true);
        let a = self.res3[2].forward(&a, n, true);
        let mut res = match &self.skip {
            Some(s) => s.forward(x, n, false),
            None => x.to_vec(),
        };
        for (r, v) in res.iter_mut().zip(&a) {
            *r += v;
        }
        for block in &self.blocks {
            let b = block[0].forward(&res, n, true);
            let b = block[1].forward(&b, n, true);
            let b = block[2].forward(&b, n, true);
            for (r, v) in res.iter_mut().zip(&b) {
                *r += v;
            }
        }
        debug_assert_eq!(res.len(), n * c);
        let s = self.fc1.forward(&res, n, true);
        let s = self.fc2.forward(&s, n, true);
        let fc3_out = self.fc3.forward(&s, n, false);
        let logits = self.fcc.as_ref().map(|f| f.forward(&s, n, false)).unwrap_or_default();
        let out_w = self.fc3.outputs;
        let k = self.centres.len();
        let mut coords = vec![0f32; n * 3];
        let mut hs = Vec::with_capacity(if self.config.homogeneous { n } else { 0 });
        let mut w = vec![0f32; k];
        for i in 0..n {
            let z = &fc3_out[i * out_w..(i + 1) * out_w];
            let h = if self.config.homogeneous { homogeneous_scale(z[3], self.h_beta) } else { 1.0 };
            if self.config.homogeneous {
                hs.push(h);
            }
            let base = if k == 1 {
                self.centres[0]
            } else {
                let l = &logits[i * k..(i + 1) * k];
                let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for (wj, &lj) in w.iter_mut().zip(l) {
                    *wj = (lj - m).exp();
                    sum += *wj;
                }
                let mut b = [0f32; 3];
                for (wj, cj) in w.iter().zip(&self.centres) {
                    for d in 0..3 {
                        b[d] += wj / sum * cj[d];
                    }
                }
                b
            };
            for d in 0..3 {
                coords[i * 3 + d] = z[d] / h + base[d];
            }
        }
        HeadOutput { coords_n3: coords, fc3_out, h: hs, logits }
    }

    /// Builds a head from a reference state dict (an official GLACE map file, or the `heads.`
    /// part of ours), inferring the architecture from the tensors as the reference does.
    pub fn from_state_dict(path: &Path, tensors: &[(String, PtTensor)]) -> Result<Head, WeightsError> {
        let get = |k: &str| tensors.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        let first = get("res3_conv1.weight").ok_or_else(|| WeightsError::Keys {
            path: path.to_path_buf(),
            what: "a GLACE head".into(),
            missing: vec!["res3_conv1.weight".into()],
            unexpected: Vec::new(),
        })?;
        let (channels, c_in) = (first.shape[0], *first.shape.get(1).unwrap_or(&0));
        let block_channels = get("res3_conv2.weight").map(|t| t.shape[0]).unwrap_or(channels);
        let blocks = tensors.iter().filter(|(k, _)| k.ends_with("c0.weight") && k[..k.len() - 9].chars().all(|c| c.is_ascii_digit()) && k.len() > 9).count();
        let homogeneous = get("fc3.weight").map(|t| t.shape[0] == 4).unwrap_or(true);
        let clusters = get("centers").map(|t| t.shape.get(1).copied().unwrap_or(1)).unwrap_or(1);
        let config = HeadConfig { c_in, channels, block_channels, blocks, clusters, homogeneous };
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        let mut layer = |name: &str, o: usize, i: usize| {
            expected.push((format!("{name}.weight"), vec![o, i, 1, 1]));
            expected.push((format!("{name}.bias"), vec![o]));
        };
        if c_in != channels {
            layer("head_skip", channels, c_in);
        }
        layer("res3_conv1", channels, c_in);
        layer("res3_conv2", block_channels, channels);
        layer("res3_conv3", channels, block_channels);
        for b in 0..blocks {
            layer(&format!("{b}c0"), channels, channels);
            layer(&format!("{b}c1"), block_channels, channels);
            layer(&format!("{b}c2"), channels, block_channels);
        }
        layer("fc1", channels, channels);
        layer("fc2", block_channels, channels);
        if clusters > 1 {
            layer("fcc", clusters, block_channels);
        }
        layer("fc3", if homogeneous { 4 } else { 3 }, block_channels);
        let buffers: &[&str] = &["max_scale", "min_scale", "max_inv_scale", "h_beta", "min_inv_scale", "mean", "centers"];
        let missing: Vec<String> = expected.iter().filter(|(k, _)| get(k).is_none()).map(|(k, _)| k.clone()).collect();
        let unexpected: Vec<String> = tensors
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !expected.iter().any(|(e, _)| e == k) && !buffers.contains(&k.as_str()))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(WeightsError::Keys { path: path.to_path_buf(), what: format!("a GLACE head {config:?}"), missing, unexpected });
        }
        for (k, shape) in &expected {
            let t = get(k).expect("checked above");
            // 1×1 conv weights may also come as plain matrices.
            let ok = t.shape == *shape || (shape.len() == 4 && t.shape == shape[..2]);
            if !ok {
                return Err(WeightsError::Shape { path: path.to_path_buf(), key: k.clone(), expected: shape.clone(), found: t.shape.clone() });
            }
        }
        let lin = |name: &str| {
            let w = get(&format!("{name}.weight")).expect("checked");
            let b = get(&format!("{name}.bias")).expect("checked");
            Linear { weight: w.data.clone(), bias: b.data.clone(), inputs: w.shape[1], outputs: w.shape[0] }
        };
        let centres: Vec<[f32; 3]> = match (clusters, get("centers"), get("mean")) {
            (k, Some(c), _) if k > 1 => c.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
            (_, _, Some(m)) if m.data.len() == 3 => vec![[m.data[0], m.data[1], m.data[2]]],
            _ => return Err(WeightsError::format(path, "the head has neither 'mean' (3 values) nor 'centers' (1×K×3)")),
        };
        if centres.len() != clusters {
            return Err(WeightsError::format(path, format!("'centers' holds {} points, expected {clusters}", centres.len())));
        }
        let h_beta = get("h_beta").and_then(|t| t.data.first().copied()).unwrap_or(H_BETA);
        Ok(Head {
            config,
            skip: (c_in != channels).then(|| lin("head_skip")),
            res3: [lin("res3_conv1"), lin("res3_conv2"), lin("res3_conv3")],
            blocks: (0..blocks).map(|b| [lin(&format!("{b}c0")), lin(&format!("{b}c1")), lin(&format!("{b}c2"))]).collect(),
            fc1: lin("fc1"),
            fc2: lin("fc2"),
            fcc: (clusters > 1).then(|| lin("fcc")),
            fc3: lin("fc3"),
            centres,
            h_beta,
        })
    }
}
