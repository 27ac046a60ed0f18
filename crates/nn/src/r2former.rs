//! R2Former's global descriptor (Zhu et al., CVPR 2023), the global encoder of GLACE's published
//! results: a DeiT-Small distilled ViT on a 480×640 input whose cls and distillation heads are
//! averaged and L2-normalised into one 256-d descriptor (spec §2.2). Loads the reference's
//! `CVPR23_DeitS_Rerank.pth` (`model_state_dict`, keys under `module.backbone.`), with the
//! transformer depth read from the keys.

use std::path::Path;

use rayon::prelude::*;

use crate::linalg::{gemm_strided, Linear, Matmul};
use crate::tensor::Tensor;
use crate::xfeat::resize_bilinear;
use crate::{FeatureMap, WeightsError};
use glace_rng::SplitMix64;

/// Input height the position table was trained for.
pub const INPUT_HEIGHT: usize = 480;
/// Input width.
pub const INPUT_WIDTH: usize = 640;
/// Token width.
pub const EMBED: usize = 384;
/// Attention heads.
pub const HEADS: usize = 6;
/// Patch side.
pub const PATCH: usize = 16;
/// MLP hidden width.
pub const MLP: usize = 1536;
/// Descriptor width.
pub const OUT_DIM: usize = 256;
/// Patch tokens (30 × 40) plus cls and distillation tokens.
pub const TOKENS: usize = (INPUT_HEIGHT / PATCH) * (INPUT_WIDTH / PATCH) + 2;
const HEAD_DIM: usize = EMBED / HEADS;
const LN_EPS: f32 = 1e-6;
/// Where a training checkpoint (`CVPR23_DeitS_Rerank.pth`) keeps the state dict.
pub const CHECKPOINT_ENTRY: &str = "model_state_dict";
/// The prefix of the backbone's keys in it (stripped before [`R2Former::from_state_dict`]).
pub const PREFIX: &str = "module.backbone.";
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// LayerNorm with affine parameters.
#[derive(Clone, Debug)]
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Normalises each `EMBED`-wide row (biased variance, as torch).
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(EMBED).zip(x.par_chunks(EMBED)).for_each(|(out, row)| {
            let mean = row.iter().sum::<f32>() / EMBED as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / EMBED as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            for ((o, v), (w, b)) in out.iter_mut().zip(row).zip(self.weight.iter().zip(&self.bias)) {
                *o = (v - mean) * inv * w + b;
            }
        });
        y
    }
}

/// One pre-norm transformer block.
#[derive(Clone, Debug)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn forward(&self, x: &mut [f32], n: usize) {
        let h = self.norm1.forward(x);
        let qkv = self.qkv.forward(&h, n, false);
        let att = attention(&qkv, n);
        let y = self.proj.forward(&att, n, false);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);

        let h = self.norm2.forward(x);
        let mut hidden = self.fc1.forward(&h, n, false);
        hidden.par_chunks_mut(MLP).for_each(|row| row.iter_mut().for_each(|v| *v = gelu(*v)));
        let y = self.fc2.forward(&hidden, n, false);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
    }
}

/// Exact (erf) GELU, as `nn.GELU()`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Multi-head self-attention over `n` tokens given the packed `qkv` (n × 3·EMBED, laid out as
/// (q|k|v) × heads × 64, the torch reshape order). Returns n × EMBED with heads concatenated.
fn attention(qkv: &[f32], n: usize) -> Vec<f32> {
    let row = 3 * EMBED;
    let scale = (HEAD_DIM as f32).powf(-0.5);
    let per_head: Vec<Vec<f32>> = (0..HEADS)
        .into_par_iter()
        .map(|h| {
            let q = &qkv[h * HEAD_DIM..];
            let k = &qkv[EMBED + h * HEAD_DIM..];
            let v = &qkv[2 * EMBED + h * HEAD_DIM..];
            // scores[n×n] = q[n×64] · kᵀ[64×n]
            let mut scores = vec![0f32; n * n];
            gemm_strided(Matmul::Fp32, (n, n, HEAD_DIM), &mut scores, false, q, (row, 1), k, (1, row));
            for r in scores.chunks_exact_mut(n) {
                let max = r.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s)) * scale;
                let mut sum = 0.0;
                for s in r.iter_mut() {
                    *s = (*s * scale - max).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                r.iter_mut().for_each(|s| *s *= inv);
            }
            let mut out = vec![0f32; n * HEAD_DIM];
            gemm_strided(Matmul::Fp32, (n, HEAD_DIM, n), &mut out, false, &scores, (n, 1), v, (row, 1));
            out
        })
        .collect();
    let mut out = vec![0f32; n * EMBED];
    for (h, o) in per_head.iter().enumerate() {
        for t in 0..n {
            out[t * EMBED + h * HEAD_DIM..t * EMBED + (h + 1) * HEAD_DIM]
                .copy_from_slice(&o[t * HEAD_DIM..(t + 1) * HEAD_DIM]);
        }
    }
    out
}

/// The R2Former global-retrieval network (DeiT-S distilled backbone, 256-d heads).
#[derive(Clone, Debug)]
pub struct R2Former {
    /// Patch embedding as a linear map over flattened 3×16×16 patches (c, y, x order).
    patch_embed: Linear,
    cls_token: Vec<f32>,
    dist_token: Vec<f32>,
    pos_embed: Vec<f32>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
    head_dist: Linear,
}

/// Intermediate results of one forward pass (the arrays `r2former.npz` records).
#[derive(Clone, Debug)]
pub struct R2FormerTrace {
    /// Tokens after embedding and position table (TOKENS × EMBED).
    pub tokens_after_embed: Vec<f32>,
    /// Output of the first block (TOKENS × EMBED), empty for a depth-0 network.
    pub block0_out: Vec<f32>,
    /// Final LayerNorm at the cls token.
    pub final_norm_cls: Vec<f32>,
    /// Final LayerNorm at the distillation token.
    pub final_norm_dist: Vec<f32>,
    /// `head(cls)`.
    pub head_out: Vec<f32>,
    /// `head_dist(dist)`.
    pub head_dist_out: Vec<f32>,
    /// Their mean, before normalisation.
    pub head_avg: Vec<f32>,
    /// The unit descriptor.
    pub desc: Vec<f32>,
}

fn expected_keys(depth: usize) -> Vec<(String, Vec<usize>)> {
    let mut keys = vec![
        ("cls_token".to_string(), vec![1, 1, EMBED]),
        ("dist_token".to_string(), vec![1, 1, EMBED]),
        ("pos_embed".to_string(), vec![1, TOKENS, EMBED]),
        ("patch_embed.proj.weight".to_string(), vec![EMBED, 3, PATCH, PATCH]),
        ("patch_embed.proj.bias".to_string(), vec![EMBED]),
    ];
    for b in 0..depth {
        let p = |s: &str| format!("blocks.{b}.{s}");
        keys.extend([
            (p("norm1.weight"), vec![EMBED]),
            (p("norm1.bias"), vec![EMBED]),
            (p("attn.qkv.weight"), vec![3 * EMBED, EMBED]),
            (p("attn.qkv.bias"), vec![3 * EMBED]),
            (p("attn.proj.weight"), vec![EMBED, EMBED]),
            (p("attn.proj.bias"), vec![EMBED]),
            (p("norm2.weight"), vec![EMBED]),
            (p("norm2.bias"), vec![EMBED]),
            (p("mlp.fc1.weight"), vec![MLP, EMBED]),
            (p("mlp.fc1.bias"), vec![MLP]),
            (p("mlp.fc2.weight"), vec![EMBED, MLP]),
            (p("mlp.fc2.bias"), vec![EMBED]),
        ]);
    }
    keys.extend([
        ("norm.weight".to_string(), vec![EMBED]),
        ("norm.bias".to_string(), vec![EMBED]),
        ("head.weight".to_string(), vec![OUT_DIM, EMBED]),
        ("head.bias".to_string(), vec![OUT_DIM]),
        ("head_dist.weight".to_string(), vec![OUT_DIM, EMBED]),
        ("head_dist.bias".to_string(), vec![OUT_DIM]),
    ]);
    keys
}

/// The transformer depth implied by `blocks.<b>.` keys (highest index + 1).
fn depth_from_keys<'a>(keys: impl Iterator<Item = &'a str>) -> usize {
    keys.filter_map(|k| k.strip_prefix("blocks.")?.split('.').next()?.parse::<usize>().ok())
        .map(|b| b + 1)
        .max()
        .unwrap_or(0)
}

impl R2Former {
    /// Builds the network from a stripped backbone state dict, checking keys and shapes.
    pub fn from_state_dict(sd: &[(String, Tensor)], path: &Path) -> Result<Self, WeightsError> {
        let depth = depth_from_keys(sd.iter().map(|(k, _)| k.as_str()));
        if depth == 0 {
            return Err(WeightsError::format(path, "R2Former: no transformer blocks (blocks.<n>.*) in the checkpoint"));
        }
        let expected = expected_keys(depth);
        let missing: Vec<String> =
            expected.iter().filter(|(k, _)| !sd.iter().any(|(n, _)| n == k)).map(|(k, _)| k.clone()).collect();
        let unexpected: Vec<String> =
            sd.iter().filter(|(n, _)| !expected.iter().any(|(k, _)| k == n)).map(|(n, _)| n.clone()).collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(WeightsError::Keys {
                path: path.to_path_buf(),
                what: "R2Former backbone".into(),
                missing,
                unexpected,
            });
        }
        for (k, shape) in &expected {
            let t = &sd.iter().find(|(n, _)| n == k).expect("checked above").1;
            if &t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(WeightsError::Shape {
                    path: path.to_path_buf(),
                    key: format!("{PREFIX}{k}"),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
        }
        let get = |k: &str| sd.iter().find(|(n, _)| n == k).expect("checked above").1.data.clone();
        let linear = |name: &str, inputs: usize, outputs: usize| Linear {
            weight: get(&format!("{name}.weight")),
            bias: get(&format!("{name}.bias")),
            inputs,
            outputs,
        };
        let ln = |name: &str| LayerNorm { weight: get(&format!("{name}.weight")), bias: get(&format!("{name}.bias")) };
        let blocks = (0..depth)
            .map(|b| Block {
                norm1: ln(&format!("blocks.{b}.norm1")),
                qkv: linear(&format!("blocks.{b}.attn.qkv"), EMBED, 3 * EMBED),
                proj: linear(&format!("blocks.{b}.attn.proj"), EMBED, EMBED),
                norm2: ln(&format!("blocks.{b}.norm2")),
                fc1: linear(&format!("blocks.{b}.mlp.fc1"), EMBED, MLP),
                fc2: linear(&format!("blocks.{b}.mlp.fc2"), MLP, EMBED),
            })
            .collect();
        Ok(R2Former {
            patch_embed: linear("patch_embed.proj", 3 * PATCH * PATCH, EMBED),
            cls_token: get("cls_token"),
            dist_token: get("dist_token"),
            pos_embed: get("pos_embed"),
            blocks,
            norm: ln("norm"),
            head: linear("head", EMBED, OUT_DIM),
            head_dist: linear("head_dist", EMBED, OUT_DIM),
        })
    }

    /// A network of the real size with random weights (for benchmarks; descriptors are
    /// meaningless).
    pub fn random(depth: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::from_state(seed);
        let sd: Vec<(String, Tensor)> = expected_keys(depth)
            .into_iter()
            .map(|(k, shape)| {
                let n: usize = shape.iter().product();
                let fan_in = *shape.last().unwrap_or(&1) as f32;
                let s = if k.ends_with("weight") && shape.len() == 2 { 1.0 / fan_in.sqrt() } else { 0.1 };
                let base = if k.contains("norm") && k.ends_with("weight") { 1.0 } else { 0.0 };
                let data = (0..n).map(|_| base + s * (2.0 * rng.f64() as f32 - 1.0)).collect();
                (k, Tensor { shape, data, dtype: "float32" })
            })
            .collect();
        Self::from_state_dict(&sd, Path::new("<random>")).expect("random weights have the expected layout")
    }

    /// Transformer blocks.
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// Number of parameters.
    pub fn params(&self) -> usize {
        let ln = |l: &LayerNorm| l.weight.len() + l.bias.len();
        self.patch_embed.params()
            + self.cls_token.len()
            + self.dist_token.len()
            + self.pos_embed.len()
            + self
                .blocks
                .iter()
                .map(|b| {
                    ln(&b.norm1) + ln(&b.norm2) + b.qkv.params() + b.proj.params() + b.fc1.params() + b.fc2.params()
                })
                .sum::<usize>()
            + ln(&self.norm)
            + self.head.params()
            + self.head_dist.params()
    }

    /// The reference script's transform: RGB → [0, 1] → ImageNet mean/std → bilinear resize
    /// (no antialias, align_corners false) to exactly 480×640, aspect ratio not kept.
    /// Returns a 480×640×3 map (channels last).
    pub fn preprocess(rgb: &[u8], width: usize, height: usize) -> FeatureMap {
        let data = rgb
            .chunks_exact(3)
            .flat_map(|p| (0..3).map(move |c| (p[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
            .collect();
        let x = FeatureMap { height, width, channels: 3, data };
        if (height, width) == (INPUT_HEIGHT, INPUT_WIDTH) {
            x
        } else {
            resize_bilinear(&x, INPUT_HEIGHT, INPUT_WIDTH)
        }
    }

    /// The descriptor of an RGB image (unit norm, 256-d).
    pub fn encode(&self, rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
        self.forward(&Self::preprocess(rgb, width, height)).desc
    }

    /// Forward pass on a preprocessed 480×640×3 input, keeping the intermediates.
    pub fn forward(&self, input: &FeatureMap) -> R2FormerTrace {
        assert_eq!((input.height, input.width, input.channels), (INPUT_HEIGHT, INPUT_WIDTH, 3), "R2Former input");
        let (gh, gw) = (INPUT_HEIGHT / PATCH, INPUT_WIDTH / PATCH);
        // Patches flattened in the conv weight's (c, ky, kx) order.
        let pk = 3 * PATCH * PATCH;
        let mut patches = vec![0f32; gh * gw * pk];
        patches.par_chunks_mut(pk).enumerate().for_each(|(p, out)| {
            let (r, c) = (p / gw, p % gw);
            for ch in 0..3 {
                for ky in 0..PATCH {
                    for kx in 0..PATCH {
                        let (y, x) = (r * PATCH + ky, c * PATCH + kx);
                        out[(ch * PATCH + ky) * PATCH + kx] = input.data[(y * INPUT_WIDTH + x) * 3 + ch];
                    }
                }
            }
        });
        let embedded = self.patch_embed.forward(&patches, gh * gw, false);
        let mut x = Vec::with_capacity(TOKENS * EMBED);
        x.extend_from_slice(&self.cls_token);
        x.extend_from_slice(&self.dist_token);
        x.extend_from_slice(&embedded);
        x.iter_mut().zip(&self.pos_embed).for_each(|(a, p)| *a += p);
        let tokens_after_embed = x.clone();

        let mut block0_out = Vec::new();
        for (b, block) in self.blocks.iter().enumerate() {
            block.forward(&mut x, TOKENS);
            if b == 0 {
                block0_out = x.clone();
            }
        }
        // Only the two special tokens feed the heads.
        let normed = self.norm.forward(&x[..2 * EMBED]);
        let final_norm_cls = normed[..EMBED].to_vec();
        let final_norm_dist = normed[EMBED..].to_vec();
        let head_out = self.head.forward(&final_norm_cls, 1, false);
        let head_dist_out = self.head_dist.forward(&final_norm_dist, 1, false);
        let head_avg: Vec<f32> = head_out.iter().zip(&head_dist_out).map(|(a, b)| (a + b) / 2.0).collect();
        let norm = head_avg.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let desc = head_avg.iter().map(|v| v / norm).collect();
        R2FormerTrace {
            tokens_after_embed,
            block0_out,
            final_norm_cls,
            final_norm_dist,
            head_out,
            head_dist_out,
            head_avg,
            desc,
        }
    }

    /// FLOPs of one forward pass (multiply-adds × 2), for benchmarks.
    pub fn flops(&self) -> f64 {
        let n = TOKENS as f64;
        let e = EMBED as f64;
        let per_block = 2.0 * n * e * (3.0 * e + e + 2.0 * MLP as f64) + 2.0 * 2.0 * n * n * e;
        2.0 * ((TOKENS - 2) * 3 * PATCH * PATCH * EMBED) as f64 + self.blocks.len() as f64 * per_block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_read_from_block_keys() {
        let keys = ["cls_token", "blocks.0.norm1.weight", "blocks.11.mlp.fc2.bias", "blocks.3.attn.qkv.bias"];
        assert_eq!(depth_from_keys(keys.into_iter()), 12);
        assert_eq!(depth_from_keys(["norm.weight"].into_iter()), 0);
    }

    #[test]
    fn random_network_gives_unit_descriptors() {
        let net = R2Former::random(1, 3);
        assert_eq!(net.depth(), 1);
        let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let d = net.encode(&rgb, 64, 48);
        assert_eq!(d.len(), OUT_DIM);
        let n: f32 = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
    }
}
