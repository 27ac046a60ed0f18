//! The GLACE head (spec §4): a per-cell MLP with residual blocks, homogeneous output and an
//! optional position decoder (softmax over K centres of the training cameras).
//!
//! Input rows are `[global | local]` features (global first); output rows are world points.

use std::path::Path;

use crate::linalg::{Linear, Matmul};
use crate::tensor::Tensor;
use crate::WeightsError;

/// Architecture of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// A freshly initialised head (PyTorch's default: weights and biases ~ U(±1/√fan_in)),
    /// deterministic for a seed.
    pub fn init(config: HeadConfig, centres: Vec<[f32; 3]>, seed: u64) -> Head {
        let mut rng = glace_rng::SplitMix64::from_state(seed ^ 0x4EAD_0000_0000_0001);
        let mut lin = |o: usize, i: usize| {
            let bound = 1.0 / (i as f64).sqrt();
            let mut u = || ((rng.f64() * 2.0 - 1.0) * bound) as f32;
            Linear {
                weight: (0..o * i).map(|_| u()).collect(),
                bias: (0..o).map(|_| u()).collect(),
                inputs: i,
                outputs: o,
            }
        };
        let (c_in, c, cb) = (config.c_in, config.channels, config.block_channels);
        let skip = (c_in != c).then(|| lin(c, c_in));
        let res3 = [lin(c, c_in), lin(cb, c), lin(c, cb)];
        let blocks = (0..config.blocks).map(|_| [lin(c, c), lin(cb, c), lin(c, cb)]).collect();
        let fc1 = lin(c, c);
        let fc2 = lin(cb, c);
        let fcc = (config.clusters > 1).then(|| lin(config.clusters, cb));
        let fc3 = lin(if config.homogeneous { 4 } else { 3 }, cb);
        assert_eq!(centres.len(), config.clusters, "one centre per cluster");
        Head { config, skip, res3, blocks, fc1, fc2, fcc, fc3, centres, h_beta: H_BETA }
    }

    /// Parameter count (weights and biases).
    pub fn params(&self) -> usize {
        let mut n = self.res3.iter().map(Linear::params).sum::<usize>()
            + self.fc1.params()
            + self.fc2.params()
            + self.fc3.params();
        n += self.skip.as_ref().map_or(0, Linear::params) + self.fcc.as_ref().map_or(0, Linear::params);
        n + self.blocks.iter().flat_map(|b| b.iter()).map(Linear::params).sum::<usize>()
    }

    /// Forward pass on `n` rows of `c_in` features.
    pub fn forward(&self, x: &[f32], n: usize) -> HeadOutput {
        self.forward_with(Matmul::Fp32, x, n)
    }

    /// [`Head::forward`] with the layers' products computed as `mm` says; bias, ReLU, residual
    /// sums, the position decoder's softmax and the homogeneous output stay fp32.
    pub fn forward_with(&self, mm: Matmul, x: &[f32], n: usize) -> HeadOutput {
        assert_eq!(x.len(), n * self.config.c_in, "head input must be n × c_in");
        let s2 = self.trunk(mm, x, n, None);
        self.decode(mm, &s2, n)
    }

    /// [`Head::forward_with`] on inputs whose first `shared.len()` values are `shared` for every
    /// row (a query's global descriptor), followed by each row's `local_nc`: the first layers'
    /// product with the shared part is computed once per call. Equal to `forward_with` on the
    /// concatenated rows up to the order of fp32 sums.
    pub fn forward_shared_with(&self, mm: Matmul, shared: &[f32], local_nc: &[f32], n: usize) -> HeadOutput {
        assert_eq!(shared.len() + local_nc.len() / n.max(1), self.config.c_in, "head input must be n × c_in");
        let Some(skip) = &self.skip else {
            // The identity skip adds the input itself: the rows are needed whole.
            let mut x = Vec::with_capacity(n * self.config.c_in);
            let l = self.config.c_in - shared.len();
            for row in local_nc.chunks_exact(l.max(1)).take(n) {
                x.extend_from_slice(shared);
                x.extend_from_slice(row);
            }
            return self.forward_with(mm, &x, n);
        };
        let a1 = self.res3[0].forward_shared_with(mm, shared, local_nc, n, true);
        let a2 = self.res3[1].forward_with(mm, &a1, n, true);
        let a3 = self.res3[2].forward_with(mm, &a2, n, true);
        let mut res = skip.forward_shared_with(mm, shared, local_nc, n, false);
        for (r, v) in res.iter_mut().zip(&a3) {
            *r += v;
        }
        let s2 = self.rest_of_trunk(mm, res, n, None);
        self.decode(mm, &s2, n)
    }

    /// A residual branch: three layers, each followed by ReLU.
    fn branch(mm: Matmul, layers: &[Linear; 3], x: &[f32], n: usize) -> [Vec<f32>; 3] {
        let a1 = layers[0].forward_with(mm, x, n, true);
        let a2 = layers[1].forward_with(mm, &a1, n, true);
        let a3 = layers[2].forward_with(mm, &a2, n, true);
        [a1, a2, a3]
    }

    /// Everything up to fc2 (the input of the output layers); records the activations the
    /// backward pass needs when `trace` is given.
    fn trunk(&self, mm: Matmul, x: &[f32], n: usize, mut trace: Option<&mut Trace>) -> Vec<f32> {
        let a = Self::branch(mm, &self.res3, x, n);
        let mut res = match &self.skip {
            Some(s) => s.forward_with(mm, x, n, false),
            None => x.to_vec(),
        };
        for (r, v) in res.iter_mut().zip(&a[2]) {
            *r += v;
        }
        if let Some(t) = trace.as_deref_mut() {
            t.res3 = Some(a);
            t.res.push(res.clone());
        }
        self.rest_of_trunk(mm, res, n, trace)
    }

    /// The trunk after its first residual branch: the blocks, fc1 and fc2.
    fn rest_of_trunk(&self, mm: Matmul, mut res: Vec<f32>, n: usize, mut trace: Option<&mut Trace>) -> Vec<f32> {
        for block in &self.blocks {
            let b = Self::branch(mm, block, &res, n);
            for (r, v) in res.iter_mut().zip(&b[2]) {
                *r += v;
            }
            if let Some(t) = trace.as_deref_mut() {
                t.blocks.push(b);
                t.res.push(res.clone());
            }
        }
        let s1 = self.fc1.forward_with(mm, &res, n, true);
        let s2 = self.fc2.forward_with(mm, &s1, n, true);
        if let Some(t) = trace {
            t.s1 = s1;
        }
        s2
    }

    /// The reference's state dict for this head, in its serialisation order (spec §4.6): the
    /// homogeneous-scale buffers, `mean` or `centers`, then every 1×1 convolution.
    pub fn reference_state_dict(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        if self.config.homogeneous {
            for (k, v) in [
                ("max_scale", 4.0),
                ("min_scale", 0.01),
                ("max_inv_scale", MAX_INV_SCALE),
                ("h_beta", self.h_beta),
                ("min_inv_scale", MIN_INV_SCALE),
            ] {
                out.push((k.into(), vec![1], vec![v]));
            }
        }
        let flat: Vec<f32> = self.centres.iter().flatten().copied().collect();
        if self.config.clusters > 1 {
            out.push(("centers".into(), vec![1, self.centres.len(), 3, 1, 1], flat));
        } else {
            out.push(("mean".into(), vec![1, 3, 1, 1], flat));
        }
        let mut layer = |name: String, l: &Linear| {
            out.push((format!("{name}.weight"), vec![l.outputs, l.inputs, 1, 1], l.weight.clone()));
            out.push((format!("{name}.bias"), vec![l.outputs], l.bias.clone()));
        };
        if let Some(skip) = &self.skip {
            layer("head_skip".into(), skip);
        }
        for (k, l) in self.res3.iter().enumerate() {
            layer(format!("res3_conv{}", k + 1), l);
        }
        for (b, block) in self.blocks.iter().enumerate() {
            for (k, l) in block.iter().enumerate() {
                layer(format!("{b}c{k}"), l);
            }
        }
        layer("fc1".into(), &self.fc1);
        layer("fc2".into(), &self.fc2);
        if let Some(fcc) = &self.fcc {
            layer("fcc".into(), fcc);
        }
        layer("fc3".into(), &self.fc3);
        out
    }

    /// Builds a head from a reference state dict (an official GLACE map file, or the `heads.`
    /// part of ours), inferring the architecture from the tensors as the reference does.
    pub fn from_state_dict(path: &Path, tensors: &[(String, Tensor)]) -> Result<Head, WeightsError> {
        let get = |k: &str| tensors.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        let first = get("res3_conv1.weight").ok_or_else(|| WeightsError::Keys {
            path: path.to_path_buf(),
            what: "a GLACE head".into(),
            missing: vec!["res3_conv1.weight".into()],
            unexpected: Vec::new(),
        })?;
        let (channels, c_in) = (*first.shape.first().unwrap_or(&0), *first.shape.get(1).unwrap_or(&0));
        let block_channels = get("res3_conv2.weight").and_then(|t| t.shape.first().copied()).unwrap_or(channels);
        if channels == 0 || c_in == 0 || block_channels == 0 {
            return Err(WeightsError::format(
                path,
                format!("res3_conv1/2 have shapes without width ({channels}, {c_in}, {block_channels})"),
            ));
        }
        let blocks = tensors
            .iter()
            .filter(|(k, _)| {
                k.ends_with("c0.weight") && k[..k.len() - 9].chars().all(|c| c.is_ascii_digit()) && k.len() > 9
            })
            .count();
        let homogeneous = get("fc3.weight").map(|t| t.shape.first() == Some(&4)).unwrap_or(true);
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
        let buffers: &[&str] =
            &["max_scale", "min_scale", "max_inv_scale", "h_beta", "min_inv_scale", "mean", "centers"];
        let missing: Vec<String> = expected.iter().filter(|(k, _)| get(k).is_none()).map(|(k, _)| k.clone()).collect();
        let unexpected: Vec<String> = tensors
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !expected.iter().any(|(e, _)| e == k) && !buffers.contains(&k.as_str()))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(WeightsError::Keys {
                path: path.to_path_buf(),
                what: format!("a GLACE head {config:?}"),
                missing,
                unexpected,
            });
        }
        for (k, shape) in &expected {
            let t = get(k).expect("checked above");
            // 1×1 conv weights may also come as plain matrices.
            let ok = t.shape == *shape || (shape.len() == 4 && t.shape == shape[..2]);
            if !ok || t.data.len() != shape.iter().product::<usize>() {
                return Err(WeightsError::Shape {
                    path: path.to_path_buf(),
                    key: k.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
        }
        let lin = |name: &str| {
            let w = get(&format!("{name}.weight")).expect("checked");
            let b = get(&format!("{name}.bias")).expect("checked");
            Linear { weight: w.data.clone(), bias: b.data.clone(), inputs: w.shape[1], outputs: w.shape[0] }
        };
        let centres: Vec<[f32; 3]> = match (clusters, get("centers"), get("mean")) {
            (k, Some(c), _) if k > 1 && c.data.len() % 3 == 0 => {
                c.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
            }
            (_, _, Some(m)) if m.data.len() == 3 => vec![[m.data[0], m.data[1], m.data[2]]],
            _ => {
                return Err(WeightsError::format(path, "the head has neither 'mean' (3 values) nor 'centers' (1×K×3)"))
            }
        };
        if centres.len() != clusters {
            return Err(WeightsError::format(
                path,
                format!("'centers' holds {} points, expected {clusters}", centres.len()),
            ));
        }
        let h_beta = get("h_beta").and_then(|t| t.data.first().copied()).unwrap_or(H_BETA);
        Ok(Head {
            config,
            skip: (c_in != channels).then(|| lin("head_skip")),
            res3: [lin("res3_conv1"), lin("res3_conv2"), lin("res3_conv3")],
            blocks: (0..blocks)
                .map(|b| [lin(&format!("{b}c0")), lin(&format!("{b}c1")), lin(&format!("{b}c2"))])
                .collect(),
            fc1: lin("fc1"),
            fc2: lin("fc2"),
            fcc: (clusters > 1).then(|| lin("fcc")),
            fc3: lin("fc3"),
            centres,
            h_beta,
        })
    }
}

/// Activations recorded by the trunk during a training forward pass.
#[derive(Default)]
struct Trace {
    res3: Option<[Vec<f32>; 3]>,
    res: Vec<Vec<f32>>,
    blocks: Vec<[Vec<f32>; 3]>,
    s1: Vec<f32>,
}

/// Activations kept by [`Head::forward_train`] for the backward pass.
#[derive(Clone, Debug)]
pub struct HeadCache {
    n: usize,
    x: Vec<f32>,
    res3: [Vec<f32>; 3],
    res: Vec<Vec<f32>>,
    blocks: Vec<[Vec<f32>; 3]>,
    s1: Vec<f32>,
    s2: Vec<f32>,
    out: HeadOutput,
}

/// Gradients of every layer of a head, in [`Head::layers_mut`] order.
#[derive(Clone, Debug)]
pub struct HeadGrads {
    /// One per layer.
    pub layers: Vec<crate::linalg::LinearGrad>,
}

fn relu_mask(dy: &mut [f32], y: &[f32]) {
    // A select, not a branch: the signs of trained activations are unpredictable, and the
    // branchy loop lost a noticeable share of a training step to mispredictions.
    for (d, v) in dy.iter_mut().zip(y) {
        *d = if *v > 0.0 { *d } else { 0.0 };
    }
}

impl Head {
    /// Every trainable layer, in a fixed order (skip, res3 ×3, blocks, fc1, fc2, fcc, fc3).
    pub fn layers_mut(&mut self) -> Vec<&mut Linear> {
        let mut v: Vec<&mut Linear> = Vec::new();
        if let Some(s) = self.skip.as_mut() {
            v.push(s);
        }
        v.extend(self.res3.iter_mut());
        for b in self.blocks.iter_mut() {
            v.extend(b.iter_mut());
        }
        v.push(&mut self.fc1);
        v.push(&mut self.fc2);
        if let Some(f) = self.fcc.as_mut() {
            v.push(f);
        }
        v.push(&mut self.fc3);
        v
    }

    /// Zero gradients for every layer.
    pub fn zero_grads(&mut self) -> HeadGrads {
        HeadGrads { layers: self.layers_mut().into_iter().map(|l| crate::linalg::LinearGrad::zeros(l)).collect() }
    }

    /// Forward pass that keeps what the backward pass needs.
    pub fn forward_train(&self, x: &[f32], n: usize) -> HeadCache {
        self.forward_train_with(Matmul::Fp32, x, n)
    }

    /// [`Head::forward_train`] with the products computed as `mm` says.
    pub fn forward_train_with(&self, mm: Matmul, x: &[f32], n: usize) -> HeadCache {
        let mut t = Trace::default();
        let s2 = self.trunk(mm, x, n, Some(&mut t));
        let out = self.decode(mm, &s2, n);
        let res3 = t.res3.expect("trunk records the first branch");
        HeadCache { n, x: x.to_vec(), res3, res: t.res, blocks: t.blocks, s1: t.s1, s2, out }
    }

    fn decode(&self, mm: Matmul, s: &[f32], n: usize) -> HeadOutput {
        let fc3_out = self.fc3.forward_with(mm, s, n, false);
        let logits = self.fcc.as_ref().map(|f| f.forward_with(mm, s, n, false)).unwrap_or_default();
        let out_w = self.fc3.outputs;
        let k = self.centres.len();
        let mut coords = vec![0f32; n * 3];
        let mut hs = Vec::with_capacity(n);
        for i in 0..n {
            let z = &fc3_out[i * out_w..(i + 1) * out_w];
            let h = if self.config.homogeneous { homogeneous_scale(z[3], self.h_beta) } else { 1.0 };
            hs.push(h);
            let base = self.base(&logits, i, k);
            for d in 0..3 {
                coords[i * 3 + d] = z[d] / h + base[d];
            }
        }
        if !self.config.homogeneous {
            hs.clear();
        }
        HeadOutput { coords_n3: coords, fc3_out, h: hs, logits }
    }

    fn softmax_row(logits: &[f32], i: usize, k: usize) -> Vec<f32> {
        let l = &logits[i * k..(i + 1) * k];
        let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    fn base(&self, logits: &[f32], i: usize, k: usize) -> [f32; 3] {
        if k == 1 {
            return self.centres[0];
        }
        let w = Self::softmax_row(logits, i, k);
        let mut b = [0f32; 3];
        for (wj, cj) in w.iter().zip(&self.centres) {
            for d in 0..3 {
                b[d] += wj * cj[d];
            }
        }
        b
    }

    /// Backward pass: accumulates into `grads` the gradient of a loss whose derivative with
    /// respect to the output coordinates is `d_coords` (n×3).
    pub fn backward(&self, cache: &HeadCache, d_coords: &[f32], grads: &mut HeadGrads) {
        self.backward_with(Matmul::Fp32, cache, d_coords, grads)
    }

    /// [`Head::backward`] with the products (dX = dY·W, dW = dYᵀ·X) computed as `mm` says; the
    /// masks, residual sums, bias gradients and the decoder's derivatives stay fp32.
    pub fn backward_with(&self, mm: Matmul, cache: &HeadCache, d_coords: &[f32], grads: &mut HeadGrads) {
        let n = cache.n;
        let out_w = self.fc3.outputs;
        let k = self.centres.len();
        let z = &cache.out.fc3_out;
        let mut dz = vec![0f32; n * out_w];
        let mut dlogits = if k > 1 { vec![0f32; n * k] } else { Vec::new() };
        for i in 0..n {
            let g = &d_coords[i * 3..i * 3 + 3];
            let zi = &z[i * out_w..(i + 1) * out_w];
            let h = if self.config.homogeneous { cache.out.h[i] } else { 1.0 };
            for d in 0..3 {
                dz[i * out_w + d] = g[d] / h;
            }
            if self.config.homogeneous {
                let dh: f32 = (0..3).map(|d| -g[d] * zi[d] / (h * h)).sum();
                let pre = softplus(zi[3], self.h_beta) + MAX_INV_SCALE;
                let pass = pre <= MIN_INV_SCALE;
                let bz = self.h_beta * zi[3];
                let dsp = if bz > 20.0 { 1.0 } else { 1.0 / (1.0 + (-bz).exp()) };
                dz[i * out_w + 3] = if pass { dh * dsp } else { 0.0 };
            }
            if k > 1 {
                let w = Self::softmax_row(&cache.out.logits, i, k);
                let proj: Vec<f32> = self.centres.iter().map(|c| g[0] * c[0] + g[1] * c[1] + g[2] * c[2]).collect();
                let mean: f32 = w.iter().zip(&proj).map(|(a, b)| a * b).sum();
                for j in 0..k {
                    dlogits[i * k + j] = w[j] * (proj[j] - mean);
                }
            }
        }
        let nl = grads.layers.len();
        let (fc3_i, fcc_i) = if k > 1 { (nl - 1, Some(nl - 2)) } else { (nl - 1, None) };
        let fc2_i = fcc_i.map_or(fc3_i - 1, |f| f - 1);
        let fc1_i = fc2_i - 1;
        let mut ds2 = self.fc3.backward_with(mm, &cache.s2, &dz, n, &mut grads.layers[fc3_i], true);
        if let (Some(fcc), Some(fi)) = (&self.fcc, fcc_i) {
            let d = fcc.backward_with(mm, &cache.s2, &dlogits, n, &mut grads.layers[fi], true);
            for (a, b) in ds2.iter_mut().zip(&d) {
                *a += b;
            }
        }
        relu_mask(&mut ds2, &cache.s2);
        let mut ds1 = self.fc2.backward_with(mm, &cache.s1, &ds2, n, &mut grads.layers[fc2_i], true);
        relu_mask(&mut ds1, &cache.s1);
        let last = cache.res.last().expect("res");
        let mut dres = self.fc1.backward_with(mm, last, &ds1, n, &mut grads.layers[fc1_i], true);
        let off = usize::from(self.skip.is_some());
        for (b, block) in self.blocks.iter().enumerate().rev() {
            let [b1, b2, b3] = &cache.blocks[b];
            let base = off + 3 + 3 * b;
            let mut d3 = dres.clone();
            relu_mask(&mut d3, b3);
            let mut d2 = block[2].backward_with(mm, b2, &d3, n, &mut grads.layers[base + 2], true);
            relu_mask(&mut d2, b2);
            let mut d1 = block[1].backward_with(mm, b1, &d2, n, &mut grads.layers[base + 1], true);
            relu_mask(&mut d1, b1);
            let dprev = block[0].backward_with(mm, &cache.res[b], &d1, n, &mut grads.layers[base], true);
            for (a, v) in dres.iter_mut().zip(&dprev) {
                *a += v;
            }
        }
        let [a1, a2, a3] = &cache.res3;
        let mut d3 = dres.clone();
        relu_mask(&mut d3, a3);
        let mut d2 = self.res3[2].backward_with(mm, a2, &d3, n, &mut grads.layers[off + 2], true);
        relu_mask(&mut d2, a2);
        let mut d1 = self.res3[1].backward_with(mm, a1, &d2, n, &mut grads.layers[off + 1], true);
        relu_mask(&mut d1, a1);
        self.res3[0].backward_with(mm, &cache.x, &d1, n, &mut grads.layers[off], false);
        if let Some(s) = &self.skip {
            s.backward_with(mm, &cache.x, &dres, n, &mut grads.layers[0], false);
        }
    }
}

impl HeadCache {
    /// The forward outputs.
    pub fn output(&self) -> &HeadOutput {
        &self.out
    }
}

#[cfg(test)]
mod grad_tests {
    use super::*;

    fn lin(o: usize, i: usize, seed: u32) -> Linear {
        let mut s = seed;
        let mut r = move || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            ((s >> 8) as f32 / (1 << 24) as f32 - 0.5) * 2.0 / (i as f32).sqrt()
        };
        Linear {
            weight: (0..o * i).map(|_| r()).collect(),
            bias: (0..o).map(|_| r() * 0.3).collect(),
            inputs: i,
            outputs: o,
        }
    }

    fn small_head(k: usize, skip: bool) -> Head {
        let (c_in, c, cb) = (if skip { 6 } else { 8 }, 8, 5);
        Head {
            config: HeadConfig { c_in, channels: c, block_channels: cb, blocks: 1, clusters: k, homogeneous: true },
            skip: skip.then(|| lin(c, c_in, 99)),
            res3: [lin(c, c_in, 1), lin(cb, c, 2), lin(c, cb, 3)],
            blocks: vec![[lin(c, c, 4), lin(cb, c, 5), lin(c, cb, 6)]],
            fc1: lin(c, c, 7),
            fc2: lin(cb, c, 8),
            fcc: (k > 1).then(|| lin(k, cb, 9)),
            fc3: lin(4, cb, 10),
            centres: (0..k).map(|j| [j as f32, 2.0 - j as f32, 0.5 * j as f32]).collect(),
            h_beta: H_BETA,
        }
    }

    #[test]
    fn a_shared_input_prefix_gives_the_full_forward() {
        // With a skip layer (the shared product computed once) and without (rows rebuilt).
        for (skip, k) in [(true, 3), (false, 1)] {
            let head = small_head(k, skip);
            let (c_in, n, g) = (head.config.c_in, 7, 2);
            let shared: Vec<f32> = (0..g).map(|i| 0.3 - 0.4 * i as f32).collect();
            let local: Vec<f32> = (0..n * (c_in - g)).map(|i| ((i * 37 % 23) as f32 - 11.0) / 10.0).collect();
            let full: Vec<f32> = local
                .chunks_exact(c_in - g)
                .flat_map(|r| shared.iter().chain(r).copied().collect::<Vec<_>>())
                .collect();
            let want = head.forward(&full, n).coords_n3;
            let got = head.forward_shared_with(Matmul::Fp32, &shared, &local, n).coords_n3;
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "skip {skip}: {a} vs {b}");
            }
        }
    }

    /// Finite differences on a scalar loss L = Σ coords · r.
    #[test]
    fn backward_matches_finite_differences() {
        for (k, skip) in [(1, false), (3, true)] {
            let head = small_head(k, skip);
            let n = 5;
            let x: Vec<f32> = (0..n * head.config.c_in).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
            let r: Vec<f32> = (0..n * 3).map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0).collect();
            let loss = |h: &Head| -> f64 {
                h.forward(&x, n).coords_n3.iter().zip(&r).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
            };
            let mut hm = head.clone();
            let mut grads = hm.zero_grads();
            let cache = head.forward_train(&x, n);
            head.backward(&cache, &r, &mut grads);
            let nlayers = grads.layers.len();
            for li in 0..nlayers {
                for pi in [0usize, 3] {
                    let mut hp = head.clone();
                    let eps = 1e-2f32;
                    let orig = hp.layers_mut()[li].weight[pi];
                    hp.layers_mut()[li].weight[pi] = orig + eps;
                    let lp = loss(&hp);
                    hp.layers_mut()[li].weight[pi] = orig - eps;
                    let lm = loss(&hp);
                    let fd = (lp - lm) / (2.0 * eps as f64);
                    let an = grads.layers[li].weight[pi] as f64;
                    assert!(
                        (fd - an).abs() < 2e-2 * (1.0 + fd.abs()),
                        "k={k} layer {li} w[{pi}]: fd {fd} analytic {an}"
                    );
                }
            }
        }
    }

    /// bf16 products (where the CPU has a kernel) give the fp32 forward and, on the same forward
    /// activations, the fp32 gradients up to the rounding of the operands: relative rms error
    /// below 2 % on a head of the real width. (Through bf16 activations the gradients differ
    /// more, as ReLU masks near zero flip; training accuracy is checked end to end.)
    #[test]
    fn bf16_forward_and_backward_are_close_to_fp32() {
        let Some(kernel) = crate::bf16::best_kernel() else {
            println!("SKIPPED bf16 head: no bf16 kernel on this CPU ({})", crate::bf16::cpu_vendor());
            return;
        };
        let mm = Matmul::Bf16(kernel);
        let config =
            HeadConfig { c_in: 320, channels: 256, block_channels: 256, blocks: 1, clusters: 3, homogeneous: true };
        let head = Head::init(config, vec![[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]], 3);
        let n = 300;
        let x: Vec<f32> = (0..n * config.c_in).map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0).collect();
        let d: Vec<f32> = (0..n * 3).map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0).collect();
        let rel = |a: &[f32], b: &[f32]| {
            let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
            (num / den.max(1e-30)).sqrt()
        };
        let (c32, c16) = (head.forward_train(&x, n), head.forward_train_with(mm, &x, n));
        let e = rel(&c16.output().fc3_out, &c32.output().fc3_out);
        assert!(e < 0.02, "forward: relative rms error {e}");
        let (mut g32, mut g16) = (head.clone().zero_grads(), head.clone().zero_grads());
        head.backward(&c32, &d, &mut g32);
        head.backward_with(mm, &c32, &d, &mut g16);
        for (l, (a, b)) in g16.layers.iter().zip(&g32.layers).enumerate() {
            let e = rel(&a.weight, &b.weight);
            assert!(e < 0.02, "layer {l} dW: relative rms error {e}");
        }
    }
}
