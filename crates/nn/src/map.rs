//! A trained map: the head, the built-in global encoder when it has one, and the description of
//! how it was trained (architecture, encoder identities with weight sha256, training options).
//! `glace-formats` writes and reads it as a map file.

use serde::{Deserialize, Serialize};

use crate::global::VladPca;
use crate::head::{Head, HeadConfig};

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
    /// Points triangulated across the mapping views with their local features, for refining
    /// a pose by matching (photo collections only; not in the reference).
    pub structure: Option<Structure>,
}

/// 3D points triangulated across the mapping views, each with the unit local feature of the
/// view cell it was triangulated from (not in the reference).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Structure {
    /// Points × 3, world coordinates.
    pub points_n3: Vec<f32>,
    /// Points × `dim` unit features.
    pub features_nd: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// The mapping view each point was triangulated from.
    pub view_of_point: Vec<u32>,
    /// Per point, the triangulations (view pairs) that agree on it.
    pub support: Vec<u8>,
    /// Per point, its keypoint's score in the view it was triangulated from (XFeat's keypoint
    /// probability × reliability; 1 for encoders without keypoints).
    pub score: Vec<f32>,
    /// Views × 3 camera centres of the mapping views.
    pub centres_v3: Vec<f32>,
    /// Shorter image side the points' keypoints were detected at, which a query's keypoints are
    /// detected at too; 0: the network's (maps before the structure had its own resolution).
    pub image_height: u32,
    /// Per point, the grey levels around its keypoint in its view, at `image_height`
    /// ([`Structure::PATCH_LEN`] a point, rows of [`Structure::PATCH_SIDE`] one pixel apart along
    /// the view's image axes): what a query aligns its keypoint to. Empty: none (older maps).
    pub patches: Vec<u8>,
    /// Per view, the world direction of one pixel step along its image's x and then y axis, at
    /// unit depth (6 values a view; empty with the patches): how a patch lies in the world.
    pub pixel_axes_v6: Vec<f32>,
}

impl Structure {
    /// Keypoint score below which a point is not kept (nor a query's keypoint matched): cells
    /// without a distinct keypoint (flat or blurred surfaces, a plain background) match
    /// look-alikes along the epipolar line and triangulate wrong (measured in docs/experiments.md).
    pub const MIN_SCORE: f32 = 0.03;
    /// Largest [`Structure::image_height`] a map may name.
    pub const MAX_IMAGE_HEIGHT: u32 = crate::MAX_IMAGE_HEIGHT;
    /// Side of a point's patch, in pixels of its view.
    pub const PATCH_SIDE: usize = 11;
    /// Grey levels of a point's patch.
    pub const PATCH_LEN: usize = Self::PATCH_SIDE * Self::PATCH_SIDE;
    /// Whether its points carry patches (and their views the axes to place them).
    pub fn has_patches(&self) -> bool {
        !self.patches.is_empty()
    }
    /// Points held.
    pub fn len(&self) -> usize {
        self.view_of_point.len()
    }
    /// True when it holds no point.
    pub fn is_empty(&self) -> bool {
        self.view_of_point.is_empty()
    }
    /// Mapping views.
    pub fn views(&self) -> usize {
        self.centres_v3.len() / 3
    }
    /// Whether the arrays agree with each other (point, feature and view counts, view indices
    /// in range, finite values): what a loaded map must satisfy before it is used.
    pub fn check(&self) -> Result<(), String> {
        let n = self.len();
        if self.dim == 0 || self.points_n3.len() != 3 * n || self.features_nd.len() != self.dim * n {
            return Err(format!(
                "structure of {n} points has {} coordinates and {} feature values of width {}",
                self.points_n3.len(),
                self.features_nd.len(),
                self.dim
            ));
        }
        if self.support.len() != n || self.score.len() != n {
            return Err(format!(
                "structure of {n} points has {} support counts and {} scores",
                self.support.len(),
                self.score.len()
            ));
        }
        if !self.centres_v3.len().is_multiple_of(3) || self.view_of_point.iter().any(|&v| v as usize >= self.views()) {
            return Err(format!("structure names views beyond its {} mapping views", self.views()));
        }
        let patched = self.patches.len() == Self::PATCH_LEN * n && self.pixel_axes_v6.len() == 6 * self.views();
        if (self.has_patches() || !self.pixel_axes_v6.is_empty()) && !patched {
            return Err(format!(
                "structure of {n} points and {} views has {} patch values and {} pixel axes",
                self.views(),
                self.patches.len(),
                self.pixel_axes_v6.len()
            ));
        }
        if self
            .points_n3
            .iter()
            .chain(&self.features_nd)
            .chain(&self.centres_v3)
            .chain(&self.score)
            .chain(&self.pixel_axes_v6)
            .any(|v| !v.is_finite())
        {
            return Err("structure holds NaN or infinite values".into());
        }
        if self.image_height != 0 && !(crate::MIN_IMAGE_HEIGHT..=Self::MAX_IMAGE_HEIGHT).contains(&self.image_height) {
            return Err(format!(
                "structure detected at {} pixels: expected {} to {} (the local encoder needs at least {})",
                self.image_height,
                crate::MIN_IMAGE_HEIGHT,
                Self::MAX_IMAGE_HEIGHT,
                crate::MIN_IMAGE_HEIGHT
            ));
        }
        Ok(())
    }
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
        self.info.training["options"]["image_height"].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(480)
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
