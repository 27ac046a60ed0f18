//! glace's map file: one self-describing safetensors file holding the head (fp16 weights),
//! the position-decoder centres and softplus β in fp32 (the reference rounds them to fp16, a
//! known error source at city scale), the built-in global encoder's codebook and projection,
//! and a JSON description (format version, architecture, encoder identities with weight sha256,
//! training metadata). A sha256 over all tensors is stored and verified on load.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::global::VladPca;
use crate::head::{Head, HeadConfig};
use crate::linalg::Linear;
use crate::pt::PtTensor;
use crate::WeightsError;

/// Format name in the metadata.
pub const MAP_FORMAT: &str = "glace-map";
/// Format version; bump on incompatible changes (2: the built-in global encoder gained a colour
/// histogram; 3: XFeat features reach the head scaled by √64).
pub const MAP_VERSION: u32 = 3;

/// Identity of the local encoder a map was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderIdentity {
    /// "xfeat" or "ace".
    pub kind: String,
    /// sha256 of the weights file.
    pub weights_sha256: String,
    /// Feature dimension.
    pub dim: usize,
}

/// Which global descriptor the map expects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalSource {
    /// No global feature (ACE behaviour).
    None,
    /// The built-in VLAD + PCA encoder stored in the map.
    Builtin,
    /// `features.npy` of the scene splits.
    FeaturesNpy,
    /// R2Former with the checkpoint of this sha256.
    #[serde(rename = "r2former")]
    R2Former {
        /// sha256 of the checkpoint.
        sha256: String,
        /// Where the checkpoint was when the map was made (used when localize names none).
        #[serde(default)]
        checkpoint: String,
    },
}

/// Everything in the map besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapInfo {
    /// Head architecture.
    pub head: HeadConfig,
    /// Local encoder.
    pub local_encoder: EncoderIdentity,
    /// Global descriptor source.
    pub global: GlobalSource,
    /// Training metadata (scene, options, timings, final loss).
    pub training: serde_json::Value,
}

impl MapInfo {
    /// [`diffusion_mean_scale`] of the training's feature diffusion (1 for maps without a global
    /// input or without diffusion; maps that do not record σ had the reference's 0.1).
    pub fn expected_global_scale(&self) -> f32 {
        let global_dim = self.head.c_in.saturating_sub(self.local_encoder.dim);
        if self.global == GlobalSource::None || global_dim == 0 {
            return 1.0;
        }
        let noise_std = self.training["options"]["noise_std"].as_f64().unwrap_or(0.1) as f32;
        diffusion_mean_scale(noise_std, global_dim)
    }
}

/// A trained map.
#[derive(Clone, Debug)]
pub struct GlaceMap {
    /// Description.
    pub info: MapInfo,
    /// The head.
    pub head: Head,
    /// The built-in global encoder, when `info.global` is `Builtin`.
    pub global: Option<VladPca>,
    /// Factor on the global descriptor before the head at localization: on load, the mean
    /// shrinkage the training's feature diffusion gave it ([`diffusion_mean_scale`]); 1 feeds it
    /// unchanged, as the reference does.
    pub global_scale: f32,
}

/// The mean length, along a unit descriptor g, of `normalize(g + ε)` with ε ~ N(0, σ²) in each
/// of `dim` components: what feature diffusion leaves of g in the inputs the head is trained on
/// (0.53 for the reference's σ = 0.1 over 256 dimensions). A clean g at localization is about
/// twice as long as anything the head saw; scaled by this it sits at the mean of its training
/// inputs (measured on integrated rooms: 26.9 % → 44.7 % within 5 cm / 5°; README).
pub fn diffusion_mean_scale(noise_std: f32, dim: usize) -> f32 {
    1.0 / (1.0 + dim as f32 * noise_std * noise_std).sqrt()
}

struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn checksum(tensors: &[(String, Owned)]) -> String {
    let mut sorted: Vec<&(String, Owned)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, t) in sorted {
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.dtype, t.shape).as_bytes());
        h.update(&t.bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn layers(head: &Head) -> Vec<(String, &Linear)> {
    let mut v: Vec<(String, &Linear)> = Vec::new();
    if let Some(s) = &head.skip {
        v.push(("head_skip".into(), s));
    }
    for (i, l) in head.res3.iter().enumerate() {
        v.push((format!("res3_conv{}", i + 1), l));
    }
    for (b, block) in head.blocks.iter().enumerate() {
        for (i, l) in block.iter().enumerate() {
            v.push((format!("{b}c{i}"), l));
        }
    }
    v.push(("fc1".into(), &head.fc1));
    v.push(("fc2".into(), &head.fc2));
    if let Some(f) = &head.fcc {
        v.push(("fcc".into(), f));
    }
    v.push(("fc3".into(), &head.fc3));
    v
}

impl GlaceMap {
    /// The shorter image side the map was trained with (480, the reference's, for maps that do not say).
    pub fn trained_image_height(&self) -> u32 {
        self.info.training["options"]["image_height"].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(480)
    }

    fn tensors(&self) -> Vec<(String, Owned)> {
        let mut t = Vec::new();
        for (name, l) in layers(&self.head) {
            t.push((
                format!("heads.{name}.weight"),
                Owned { dtype: Dtype::F16, shape: vec![l.outputs, l.inputs, 1, 1], bytes: f16_bytes(&l.weight) },
            ));
            t.push((
                format!("heads.{name}.bias"),
                Owned { dtype: Dtype::F16, shape: vec![l.outputs], bytes: f16_bytes(&l.bias) },
            ));
        }
        let centres: Vec<f32> = self.head.centres.iter().flatten().copied().collect();
        t.push((
            "heads.centres".into(),
            Owned { dtype: Dtype::F32, shape: vec![self.head.centres.len(), 3], bytes: f32_bytes(&centres) },
        ));
        t.push((
            "heads.h_beta".into(),
            Owned { dtype: Dtype::F32, shape: vec![1], bytes: f32_bytes(&[self.head.h_beta]) },
        ));
        if let Some(g) = &self.global {
            t.push((
                "global.codebook".into(),
                Owned { dtype: Dtype::F32, shape: vec![g.words, g.dim], bytes: f32_bytes(&g.codebook) },
            ));
            t.push((
                "global.mean".into(),
                Owned { dtype: Dtype::F32, shape: vec![g.mean.len()], bytes: f32_bytes(&g.mean) },
            ));
            let kd = g.mean.len();
            t.push((
                "global.projection".into(),
                Owned { dtype: Dtype::F32, shape: vec![g.out_dim, kd], bytes: f32_bytes(&g.projection) },
            ));
        }
        t
    }

    /// Serialised bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let tensors = self.tensors();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), MAP_FORMAT.to_string());
        meta.insert("version".to_string(), MAP_VERSION.to_string());
        meta.insert("info".to_string(), serde_json::to_string(&self.info).map_err(|e| e.to_string())?);
        meta.insert("checksum".to_string(), checksum(&tensors));
        if let Some(g) = &self.global {
            meta.insert("global_colour_dim".to_string(), g.colour_dim.to_string());
        }
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("consistent sizes")))
            .collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
    }

    /// Writes the map atomically (temporary name, then rename).
    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let bytes = self.to_bytes().map_err(|e| WeightsError::format(path, e))?;
        let tmp = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| WeightsError::Io { path: tmp.clone(), source: e })?;
        std::fs::rename(&tmp, path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })
    }

    /// Reads and verifies a map.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and verifies a map file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, WeightsError> {
        let bad = |m: String| WeightsError::format(path, m);
        let (_, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a glace map (safetensors: {e})")))?;
        let md = meta.metadata().clone().unwrap_or_default();
        if md.get("format").map(String::as_str) != Some(MAP_FORMAT) {
            return Err(bad(
                "not a glace map (no 'glace-map' format tag); official GLACE .pt maps are read with --map-format pt"
                    .into(),
            ));
        }
        let version: u32 = md.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
        if version != MAP_VERSION {
            return Err(bad(format!(
                "map format version {version}, this glace reads version {MAP_VERSION}: map the scene again with this glace"
            )));
        }
        let info: MapInfo = serde_json::from_str(md.get("info").map(String::as_str).unwrap_or(""))
            .map_err(|e| bad(format!("map description: {e}")))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("truncated or corrupt map: {e}")))?;
        let mut owned = Vec::new();
        for (name, view) in st.tensors() {
            owned
                .push((name, Owned { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() }));
        }
        let sum = checksum(&owned);
        if md.get("checksum") != Some(&sum) {
            return Err(bad("checksum mismatch: the map is corrupt".into()));
        }
        let as_f32 = |t: &Owned| -> Vec<f32> {
            match t.dtype {
                Dtype::F16 => {
                    t.bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
                }
                _ => t.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            }
        };
        let mut sd: Vec<(String, PtTensor)> = Vec::new();
        let mut centres = None;
        let mut h_beta = None;
        let mut global: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
        for (name, t) in &owned {
            let data = as_f32(t);
            if name == "heads.centres" {
                centres = Some(data);
            } else if name == "heads.h_beta" {
                h_beta = data.first().copied();
            } else if let Some(k) = name.strip_prefix("heads.") {
                sd.push((k.to_string(), PtTensor { shape: t.shape.clone(), data, dtype: "float16" }));
            } else if let Some(k) = name.strip_prefix("global.") {
                global.insert(k.to_string(), (t.shape.clone(), data));
            }
        }
        let centres = centres.ok_or_else(|| bad("no heads.centres tensor".into()))?;
        let k = centres.len() / 3;
        let (key, shape) = if k > 1 { ("centers", vec![1, k, 3, 1, 1]) } else { ("mean", vec![1, 3, 1, 1]) };
        sd.push((key.to_string(), PtTensor { shape, data: centres, dtype: "float32" }));
        if let Some(b) = h_beta {
            sd.push(("h_beta".into(), PtTensor { shape: vec![1], data: vec![b], dtype: "float32" }));
        }
        let head = Head::from_state_dict(path, &sd)?;
        if head.config != info.head {
            return Err(bad(format!("tensors describe {:?} but the description says {:?}", head.config, info.head)));
        }
        let global = match info.global {
            GlobalSource::Builtin => {
                let (Some((cs, cb)), Some((_, mean)), Some((ps, proj))) =
                    (global.remove("codebook"), global.remove("mean"), global.remove("projection"))
                else {
                    return Err(bad("built-in global encoder tensors missing".into()));
                };
                let colour_dim = md.get("global_colour_dim").and_then(|v| v.parse().ok()).unwrap_or(0);
                let expected_len = |shape: &[usize]| shape.len() == 2 && shape[1] == cs[0] * cs[1] + colour_dim;
                if cs.len() != 2 || colour_dim != crate::global::COLOUR_DIM || !expected_len(&ps) || mean.len() != ps[1]
                {
                    return Err(bad(format!(
                        "built-in global encoder has inconsistent shapes (codebook {cs:?}, projection {ps:?}, colour {colour_dim})"
                    )));
                }
                Some(VladPca {
                    codebook: cb,
                    words: cs[0],
                    dim: cs[1],
                    colour_dim,
                    mean,
                    projection: proj,
                    out_dim: ps[0],
                })
            }
            _ => None,
        };
        let global_scale = info.expected_global_scale();
        Ok(GlaceMap { info, head, global, global_scale })
    }
}

#[cfg(test)]
mod tests {
    use super::diffusion_mean_scale;
    use crate::rng::SplitMix;

    #[test]
    fn diffusion_mean_scale_matches_the_mean_of_noisy_renormalised_descriptors() {
        // Training's diffusion: g + N(0, σ²) per component, then L2-normalised; the mean of the
        // component along g is what localization scales a clean g to.
        let mut rng = SplitMix(7);
        for (sigma, dim) in [(0.1f64, 256usize), (0.05, 256), (0.1, 64)] {
            let trials = 4000;
            let mut sum = 0.0;
            for _ in 0..trials {
                let mut v: Vec<f64> = (0..dim)
                    .map(|_| {
                        let (u1, u2) = (rng.f64().max(1e-300), rng.f64());
                        sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                    })
                    .collect();
                v[0] += 1.0;
                sum += v[0] / v.iter().map(|x| x * x).sum::<f64>().sqrt();
            }
            let mc = sum / trials as f64;
            let formula = diffusion_mean_scale(sigma as f32, dim) as f64;
            assert!((mc - formula).abs() < 0.01, "σ {sigma}, {dim}-d: Monte Carlo {mc:.4}, formula {formula:.4}");
        }
        assert_eq!(diffusion_mean_scale(0.0, 256), 1.0);
    }
}
