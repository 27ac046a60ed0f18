//! glace's file formats, apart from the networks that use them: PyTorch `torch.save`
//! checkpoints (a reader that never evaluates pickled code, and an fp16 state-dict writer), the
//! map file, and fetching the default XFeat weights with their sha256 checked.

pub mod map_file;
pub mod pt;
pub mod pt_write;
pub mod weights;

use std::path::Path;

use glace_nn::{AceEncoder, Head, LocalEncoder, R2Former, WeightsError, XFeat};

/// XFeat from `xfeat.pt`, with the sha256 maps record.
pub fn load_xfeat(path: &Path) -> Result<LocalEncoder, WeightsError> {
    let sd = pt::load_state_dict(path, None, "")?;
    Ok(LocalEncoder::XFeat(XFeat::from_state_dict(path, &sd)?, weights::sha256_file(path)?))
}

/// The ACE encoder from `ace_encoder_pretrained.pt`, with the sha256 maps record.
pub fn load_ace(path: &Path) -> Result<LocalEncoder, WeightsError> {
    let sd = pt::load_state_dict(path, None, "")?;
    Ok(LocalEncoder::Ace(AceEncoder::from_state_dict(path, &sd)?, weights::sha256_file(path)?))
}

/// The default local encoder: XFeat, its weights fetched on first use ([`weights::xfeat_weights`]).
pub fn default_xfeat() -> Result<LocalEncoder, WeightsError> {
    load_xfeat(&weights::xfeat_weights()?)
}

/// R2Former from a training checkpoint (`CVPR23_DeitS_Rerank.pth`), read strictly as the
/// reference's `extract_features.py` does: `model_state_dict`, keys under `module.backbone.`.
pub fn load_r2former(path: &Path) -> Result<R2Former, WeightsError> {
    let sd = pt::load_state_dict(path, Some(glace_nn::r2former::CHECKPOINT_ENTRY), glace_nn::r2former::PREFIX)?;
    R2Former::from_state_dict(&sd, path)
}

/// A GLACE head from an official map file (`torch.save` of the head's state dict).
pub fn load_reference_head(path: &Path) -> Result<Head, WeightsError> {
    let sd = pt::load_state_dict(path, None, "")?;
    Head::from_state_dict(path, &sd)
}
