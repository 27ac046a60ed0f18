//! Scenes for glace: the DSAC*/ACE folder layout, validated on reading, and image preprocessing
//! exactly as the reference implementation does it.
//!
//! Knows nothing about networks. Geometry comes from `glace-geometry`.

pub mod convert;
pub mod error;
pub mod features;
pub mod imageio;
pub mod preprocess;
pub mod resize;
pub mod scene;
pub mod summary;
pub mod testing;
pub mod text;
pub mod writer;

pub use error::DataError;
pub use features::GlobalFeatures;
pub use preprocess::{check_network_size, preprocess, Preprocessed};
pub use scene::{Frame, Scene, SceneOptions, Split, SplitKind};
pub use summary::SceneSummary;
pub use text::Calibration;
pub use writer::SceneWriter;
