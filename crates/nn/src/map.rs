//! A trained map: the head, the built-in global encoder when it has one, and the description of
//! how it was trained (architecture, encoder identities with weight sha256, training options).
//! `glace-formats` writes and reads it as a map file.

use serde::{Deserialize, Serialize};

use crate::global::VladPca;
use crate::head::{Head, HeadConfig};
use glace_structure::Structure;

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
    /// How it was trained (scene, options, budget, timings, final loss).
    pub training: TrainingLog,
}

/// How a map was trained, as its description records it. Every field is optional: maps made
/// before a field existed, and official heads, leave it out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// Where a map that glace did not train came from (an official GLACE head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The scene mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
    /// Training frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// The mapping options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<TrainedOptions>,
    /// Buffer entries and iterations used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<TrainedBudget>,
    /// How the networks' products were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Quarter turns (clockwise) each query should be tried in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_turns: Option<Vec<u8>>,
    /// Mean loss of the last 100 iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_loss: Option<f64>,
    /// Seconds the mapping took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// The mapping options a map records: the ones localization reads, by name; the rest as written
/// (`glace_mapping::pipeline::MapOptions`, which this crate does not know).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainedOptions {
    /// Shorter image side the networks saw (as written: the loader checks its range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_height: Option<u64>,
    /// σ of the feature diffusion on the global descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_std: Option<f64>,
    /// Every other option.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// The budget a map was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedBudget {
    /// Buffer entries.
    pub buffer_size: usize,
    /// Training iterations.
    pub iterations: usize,
    /// The rule that sized them from the scene (`None`: stated, or a map from before rules were
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl MapInfo {
    /// [`diffusion_mean_scale`] of the training's feature diffusion (1 for maps without a global
    /// input or without diffusion; maps that do not record σ had the reference's 0.1).
    pub fn expected_global_scale(&self) -> f32 {
        let global_dim = self.head.c_in.saturating_sub(self.local_encoder.dim);
        if self.global == GlobalSource::None || global_dim == 0 {
            return 1.0;
        }
        let noise_std = self.training.options.as_ref().and_then(|o| o.noise_std).unwrap_or(0.1) as f32;
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
    /// Points triangulated across the mapping views with their local features, for refining
    /// a pose by matching (maps of the `cpu` preset; not in the reference).
    pub structure: Option<Structure>,
}

/// The mean length, along a unit descriptor g, of `normalize(g + ε)` with ε ~ N(0, σ²) in each
/// of `dim` components: what feature diffusion leaves of g in the inputs the head is trained on
/// (0.53 for the reference's σ = 0.1 over 256 dimensions). A clean g at localization is about
/// twice as long as anything the head saw; scaled by this it sits at the mean of its training
/// inputs (its effect on integrated rooms is in docs/experiments.md).
pub fn diffusion_mean_scale(noise_std: f32, dim: usize) -> f32 {
    1.0 / (1.0 + dim as f32 * noise_std * noise_std).sqrt()
}

impl GlaceMap {
    /// The shorter image side the map was trained with (480, the reference's, for maps that do not say).
    pub fn trained_image_height(&self) -> u32 {
        self.info
            .training
            .options
            .as_ref()
            .and_then(|o| o.image_height)
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(480)
    }
}

#[cfg(test)]
mod tests {
    use super::diffusion_mean_scale;
    use glace_rng::SplitMix64;

    #[test]
    fn diffusion_mean_scale_matches_the_mean_of_noisy_renormalised_descriptors() {
        // Training's diffusion: g + N(0, σ²) per component, then L2-normalised; the mean of the
        // component along g is what localization scales a clean g to.
        let mut rng = SplitMix64::from_state(7);
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
