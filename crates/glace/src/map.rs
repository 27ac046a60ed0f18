//! Maps: glace's own map files and the official GLACE `.pt` heads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo, TrainingLog};
use glace_nn::{GlaceMap, HeadConfig};

use crate::{Error, Result};

/// Which file format a map came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapFormat {
    /// A map written by `glace map` (safetensors with a description and a checksum).
    #[serde(rename = "glace-map")]
    Glace,
    /// An official GLACE/ACE head (`torch.save` of the head's state dict). It carries no
    /// description: it needs the ACE encoder's weights and, for a GLACE head, R2Former
    /// descriptors (its checkpoint or `features.npy`).
    ReferencePt,
    /// Built in memory and not saved yet.
    Memory,
}

/// A trained scene map: the head, the built-in global encoder when it has one, and the
/// description of how it was trained. Cheap to clone (the weights are shared).
#[derive(Clone, Debug)]
pub struct Map {
    pub(crate) inner: Arc<GlaceMap>,
    path: Option<PathBuf>,
    format: MapFormat,
}

/// Width of the descriptors an official GLACE head takes (R2Former).
const REFERENCE_GLOBAL_DIM: usize = 256;
/// Width of the ACE encoder's features.
const ACE_DIM: usize = 512;

impl Map {
    /// Opens a map: a glace map file, or an official GLACE `.pt`/`.pth` head (by extension).
    /// glace maps are verified (format version, checksum, shapes) before anything is returned.
    ///
    /// ```no_run
    /// let map = glace::Map::open("maps/desk.glace")?;
    /// println!("{} trained with {}", map.path().unwrap().display(), map.description().local_encoder.kind);
    /// # Ok::<(), glace::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Map> {
        let path = path.as_ref();
        let is_pt = path.extension().is_some_and(|e| e == "pt" || e == "pth");
        if !is_pt {
            let map = glace_formats::map_file::read(path)?;
            return Ok(Map { inner: Arc::new(map), path: Some(path.to_path_buf()), format: MapFormat::Glace });
        }
        let head = glace_formats::load_reference_head(path)?;
        let c = head.config;
        let global = match c.c_in {
            ACE_DIM => GlobalSource::None,
            n if n == ACE_DIM + REFERENCE_GLOBAL_DIM => {
                GlobalSource::R2Former { sha256: String::new(), checkpoint: String::new() }
            }
            n => {
                return Err(Error::Input(format!(
                    "{}: the head takes {n} input channels; official heads take {ACE_DIM} (ACE) or {} (GLACE: ACE + R2Former)",
                    path.display(),
                    ACE_DIM + REFERENCE_GLOBAL_DIM
                )))
            }
        };
        let info = MapInfo {
            head: c,
            local_encoder: EncoderIdentity { kind: "ace".into(), weights_sha256: String::new(), dim: ACE_DIM },
            global,
            training: TrainingLog { source: Some("official GLACE .pt head".into()), ..Default::default() },
        };
        // The reference feeds the descriptor as computed.
        let map = GlaceMap { info, head, global: None, global_scale: 1.0, structure: None };
        Ok(Map { inner: Arc::new(map), path: Some(path.to_path_buf()), format: MapFormat::ReferencePt })
    }

    /// Wraps a map built in memory (by mapping).
    pub fn from_glace_map(map: GlaceMap) -> Map {
        Map { inner: Arc::new(map), path: None, format: MapFormat::Memory }
    }

    /// Another network-level map standing where `like` stands (same path and format).
    pub(crate) fn from_glace_map_at(map: GlaceMap, like: &Map) -> Map {
        Map { inner: Arc::new(map), path: like.path.clone(), format: like.format }
    }

    /// Writes the map as a glace map file, under a temporary name renamed into place when
    /// complete.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(glace_formats::map_file::write(&self.inner, path.as_ref())?)
    }

    /// How the map was trained: head architecture, encoder identities, training options.
    pub fn description(&self) -> &MapInfo {
        &self.inner.info
    }

    /// The head's architecture.
    pub fn head_config(&self) -> HeadConfig {
        self.inner.head.config
    }

    /// Learned parameters of the head.
    pub fn parameters(&self) -> usize {
        self.inner.head.params()
    }

    /// Where the map was read from (`None` for a map built in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file format.
    pub fn format(&self) -> MapFormat {
        self.format
    }

    /// The shorter image side the map was trained with (the reference's 480 when unknown).
    pub fn trained_image_height(&self) -> u32 {
        self.inner.trained_image_height()
    }

    /// The quarter turns (clockwise) mapping recommends trying each query in: all four when
    /// the mapping views are rolled against their neighbours
    /// (`glace_mapping::pipeline::query_turns`), else only upright; maps made before the rule,
    /// and official heads, read as upright.
    pub fn query_turns(&self) -> Vec<u8> {
        let mut turns: Vec<u8> = Vec::new();
        // The loader refuses repeats; a map built in memory is deduplicated here all the same.
        for &t in self.inner.info.training.query_turns.iter().flatten() {
            if t < 4 && !turns.contains(&t) {
                turns.push(t);
            }
        }
        if turns.is_empty() {
            vec![0]
        } else {
            turns
        }
    }

    /// The network-level map (head, global encoder, description) for callers that drive the
    /// lower-level crates directly.
    pub fn glace_map(&self) -> &GlaceMap {
        &self.inner
    }

    /// Width of the global descriptor the head takes (0 for ACE-style maps).
    pub fn global_dim(&self) -> usize {
        let info = &self.inner.info;
        info.head.c_in.saturating_sub(info.local_encoder.dim)
    }

    /// A JSON summary (what `glace info <map> --json` prints).
    pub fn summary_json(&self) -> serde_json::Value {
        let bytes = self.path().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
        serde_json::json!({
            "path": self.path().map(|p| p.display().to_string()),
            "bytes": bytes,
            "format": self.format,
            "head": self.head_config(),
            "parameters": self.parameters(),
            "info": (self.format != MapFormat::ReferencePt).then(|| self.description().clone()),
            "structure_points": self.structure_points(),
            "structure_height": self.structure_height(),
        })
    }

    /// Points triangulated across the mapping views that queries are refined against (0 for
    /// maps made without the triangulation, maps made before it and official heads).
    pub fn structure_points(&self) -> usize {
        self.inner.structure.as_ref().map_or(0, |s| s.len())
    }

    /// Shorter image side the structure's points were detected at (queries are encoded at it
    /// to be matched to them); `None` without a structure, or where it is the network's
    /// ([`Map::trained_image_height`]).
    pub fn structure_height(&self) -> Option<u32> {
        self.inner.structure.as_ref()?.image_height.filter(|&h| h != self.trained_image_height())
    }
}
