//! The local encoders behind one interface: features per 8×8 cell and where each cell sits in
//! the image the caller passed.

use crate::conv::FeatureMap;
use crate::linalg::Matmul;
use crate::map::EncoderIdentity;
use crate::{AceEncoder, XFeat};

/// The shortest image side the local encoders take (XFeat works on multiples of 32 pixels): the
/// least image height a map may be trained, localized or given a structure at.
pub const MIN_IMAGE_HEIGHT: u32 = 32;
/// The longest shorter side the networks are given.
pub const MAX_IMAGE_HEIGHT: u32 = 4096;

/// A local encoder with the sha256 of its weights file (the formats crate loads them).
#[derive(Clone, Debug)]
pub enum LocalEncoder {
    /// XFeat (default), 64-d, L2-normalised per cell.
    XFeat(XFeat, String),
    /// The ACE encoder, 512-d.
    Ace(AceEncoder, String),
}

/// Features of one image.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// Hf × Wf × dim.
    pub features: FeatureMap,
    /// Pixel of cell (i, j) is ((8j + 4)·sx, (8i + 4)·sy) in the caller's image.
    pub cell_scale: (f64, f64),
    /// Per cell (row-major), XFeat's keypoint inside it (the encoder input's pixels, scaled by
    /// `cell_scale` like the cells) and its descriptor; `None` for encoders without a keypoint
    /// head.
    pub keypoints: Option<crate::xfeat::Keypoints>,
}

impl Encoded {
    /// Pixel position of cell `(i, j)`.
    pub fn cell_pixel(&self, i: usize, j: usize) -> (f64, f64) {
        ((8 * j + 4) as f64 * self.cell_scale.0, (8 * i + 4) as f64 * self.cell_scale.1)
    }
    /// Pixel position of cell `(i, j)`'s keypoint in the caller's image; its centre when the
    /// encoder has no keypoints.
    pub fn keypoint_pixel(&self, i: usize, j: usize) -> (f64, f64) {
        match &self.keypoints {
            Some(k) => {
                let [x, y, _] = k.points[i * self.features.width + j];
                (x as f64 * self.cell_scale.0, y as f64 * self.cell_scale.1)
            }
            None => self.cell_pixel(i, j),
        }
    }
    /// The unit features cells are matched with, one per cell: XFeat's descriptors at the
    /// keypoints, else each cell's feature L2-normalised.
    pub fn matching_features(&self) -> Vec<f32> {
        match &self.keypoints {
            Some(k) => k.features.clone(),
            None => {
                let mut unit = self.features.data.clone();
                crate::xfeat::l2_normalize_rows(&mut unit, self.features.channels);
                unit
            }
        }
    }
}

impl LocalEncoder {
    /// Feature dimension.
    pub fn dim(&self) -> usize {
        match self {
            LocalEncoder::XFeat(..) => XFeat::DIM,
            LocalEncoder::Ace(..) => AceEncoder::DIM,
        }
    }
    /// Identity recorded in maps.
    pub fn identity(&self) -> EncoderIdentity {
        match self {
            LocalEncoder::XFeat(_, s) => {
                EncoderIdentity { kind: "xfeat".into(), weights_sha256: s.clone(), dim: XFeat::DIM }
            }
            LocalEncoder::Ace(_, s) => {
                EncoderIdentity { kind: "ace".into(), weights_sha256: s.clone(), dim: AceEncoder::DIM }
            }
        }
    }
    /// Encodes an image given as interleaved RGB and as the normalised gray the reference feeds ACE.
    pub fn encode(&self, rgb_hw3: &[u8], gray_hw: &[f32], width: usize, height: usize) -> Encoded {
        self.encode_with(Matmul::Fp32, rgb_hw3, gray_hw, width, height)
    }

    /// [`LocalEncoder::encode`] with the convolutions' products computed as `mm` says.
    pub fn encode_with(&self, mm: Matmul, rgb_hw3: &[u8], gray_hw: &[f32], width: usize, height: usize) -> Encoded {
        match self {
            LocalEncoder::XFeat(net, _) => {
                let (features, (sh, sw)) = net.encode_with(mm, rgb_hw3, height, width);
                Encoded { features, cell_scale: (sw, sh), keypoints: None }
            }
            LocalEncoder::Ace(..) => self.encode_keypoints_with(mm, rgb_hw3, gray_hw, width, height),
        }
    }

    /// [`LocalEncoder::encode_with`] and, for encoders that detect them (XFeat), each cell's
    /// keypoint with its descriptor.
    pub fn encode_keypoints_with(
        &self,
        mm: Matmul,
        rgb_hw3: &[u8],
        gray_hw: &[f32],
        width: usize,
        height: usize,
    ) -> Encoded {
        match self {
            LocalEncoder::XFeat(net, _) => {
                let (features, keypoints, (sh, sw)) = net.encode_keypoints_with(mm, rgb_hw3, height, width);
                Encoded { features, cell_scale: (sw, sh), keypoints: Some(keypoints) }
            }
            LocalEncoder::Ace(net, _) => Encoded {
                features: net.forward_with(mm, gray_hw, height, width),
                cell_scale: (1.0, 1.0),
                keypoints: None,
            },
        }
    }
}
