//! The ACE local encoder (spec §3): 4 strided convolutions and two residual blocks, grayscale
//! image → 512-d features at stride 8 (Hf = ⌈H/8⌉, Wf = ⌈W/8⌉). Loads the user's
//! `ace_encoder_pretrained.pt` (22 tensors).

use std::path::Path;

use crate::conv::{Conv2d, FeatureMap};
use crate::linalg::Matmul;
use crate::tensor::Tensor;
use crate::WeightsError;

/// The ACE encoder.
#[derive(Clone, Debug)]
pub struct AceEncoder {
    convs: [Conv2d; 4],
    res1: [Conv2d; 3],
    res2: [Conv2d; 3],
    res2_skip: Conv2d,
}

const LAYERS: [(&str, usize, usize, usize, usize); 11] = [
    ("conv1", 1, 32, 3, 1),
    ("conv2", 32, 64, 3, 2),
    ("conv3", 64, 128, 3, 2),
    ("conv4", 128, 256, 3, 2),
    ("res1_conv1", 256, 256, 3, 1),
    ("res1_conv2", 256, 256, 1, 1),
    ("res1_conv3", 256, 256, 3, 1),
    ("res2_conv1", 256, 512, 3, 1),
    ("res2_conv2", 512, 512, 1, 1),
    ("res2_conv3", 512, 512, 3, 1),
    ("res2_skip", 256, 512, 1, 1),
];

impl AceEncoder {
    /// Output feature dimension.
    pub const DIM: usize = 512;

    /// Builds the encoder from the state dict of `ace_encoder_pretrained.pt` (`path` names it in
    /// errors), checking every key and shape.
    pub fn from_state_dict(path: &Path, sd: &[(String, Tensor)]) -> Result<Self, WeightsError> {
        let expected: Vec<String> =
            LAYERS.iter().flat_map(|l| [format!("{}.weight", l.0), format!("{}.bias", l.0)]).collect();
        let missing: Vec<String> = expected.iter().filter(|k| !sd.iter().any(|(n, _)| n == *k)).cloned().collect();
        let unexpected: Vec<String> = sd.iter().map(|(n, _)| n.clone()).filter(|n| !expected.contains(n)).collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(WeightsError::Keys {
                path: path.to_path_buf(),
                what: "the ACE encoder".into(),
                missing,
                unexpected,
            });
        }
        let get = |k: &str| &sd.iter().find(|(n, _)| n == k).expect("checked").1;
        let mut convs = Vec::new();
        for (name, i, o, k, stride) in LAYERS {
            let (w, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
            let shape = vec![o, i, k, k];
            if w.shape != shape || b.shape != vec![o] {
                let (key, exp, found) = if w.shape != shape {
                    (format!("{name}.weight"), shape, w.shape.clone())
                } else {
                    (format!("{name}.bias"), vec![o], b.shape.clone())
                };
                return Err(WeightsError::Shape { path: path.to_path_buf(), key, expected: exp, found });
            }
            convs.push(Conv2d::from_torch(w, b, stride, k / 2));
        }
        let mut it = convs.into_iter();
        let mut next = || it.next().expect("11 layers");
        Ok(AceEncoder {
            convs: [next(), next(), next(), next()],
            res1: [next(), next(), next()],
            res2: [next(), next(), next()],
            res2_skip: next(),
        })
    }

    /// Encodes a normalised grayscale image (row-major H×W) to an Hf×Wf×512 feature map.
    pub fn forward(&self, image_hw: &[f32], height: usize, width: usize) -> FeatureMap {
        self.forward_with(Matmul::Fp32, image_hw, height, width)
    }

    /// [`AceEncoder::forward`] with the convolutions' products computed as `mm` says.
    pub fn forward_with(&self, mm: Matmul, image_hw: &[f32], height: usize, width: usize) -> FeatureMap {
        assert_eq!(image_hw.len(), height * width, "image size");
        let mut x = FeatureMap { height, width, channels: 1, data: image_hw.to_vec() };
        for c in &self.convs {
            x = c.forward_with(mm, &x, true);
        }
        let a = self.res1[0].forward_with(mm, &x, true);
        let a = self.res1[1].forward_with(mm, &a, true);
        let a = self.res1[2].forward_with(mm, &a, true);
        for (r, v) in x.data.iter_mut().zip(&a.data) {
            *r += v;
        }
        let b = self.res2[0].forward_with(mm, &x, true);
        let b = self.res2[1].forward_with(mm, &b, true);
        let b = self.res2[2].forward_with(mm, &b, true);
        let mut out = self.res2_skip.forward_with(mm, &x, false);
        for (r, v) in out.data.iter_mut().zip(&b.data) {
            *r += v;
        }
        out
    }
}
