//! Networks of glace: the local encoders (XFeat by default, the ACE encoder for users who have
//! its weights), the global encoders, the GLACE head and the map they form, built from state
//! dicts in memory.
//!
//! Knows no file format: `glace-formats` reads and writes `.pt` checkpoints, map files and
//! fetches weights. Never depends on mapping, localization or the CLI.

pub mod ace_encoder;
pub mod bf16;
pub mod conv;
pub mod encoder;
pub mod error;
pub mod global;
pub mod head;
pub mod kmeans;
pub mod linalg;
pub mod map;
pub mod memory;
pub mod r2former;
pub mod tensor;
pub mod xfeat;

pub use ace_encoder::AceEncoder;
pub use conv::FeatureMap;
pub use encoder::{Encoded, LocalEncoder, MAX_IMAGE_HEIGHT, MIN_IMAGE_HEIGHT};
pub use error::WeightsError;
pub use head::{Head, HeadConfig};
pub use map::GlaceMap;
pub use r2former::R2Former;
pub use tensor::{StateDict, Tensor};
pub use xfeat::XFeat;
