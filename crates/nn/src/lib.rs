//! Networks of glace: the local encoders (XFeat by default, the ACE encoder for users who have
//! its weights), the global encoders, the GLACE head and the map file.
//!
//! Depends on the geometry and data crates only for types; never on mapping, localization or
//! the CLI.

pub mod ace_encoder;
pub mod conv;
pub mod encoder;
pub mod error;
pub mod global;
pub mod head;
pub mod kmeans;
pub mod linalg;
pub mod map;
pub mod pt;
pub mod pt_write;
pub mod r2former;
mod rng;
pub mod weights;
pub mod xfeat;

pub use ace_encoder::AceEncoder;
pub use conv::FeatureMap;
pub use encoder::{Encoded, LocalEncoder};
pub use error::WeightsError;
pub use head::{Head, HeadConfig};
pub use map::GlaceMap;
pub use r2former::R2Former;
pub use xfeat::XFeat;
