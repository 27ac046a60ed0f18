//! Mapping: the training buffer built from augmented, encoded training images, feature
//! diffusion, the reprojection loss and the AdamW/one-cycle training loop that produces a map.
//!
//! Data flows one way: scene → encoded views → global descriptors, triangulation → buffer →
//! head → map ([`stages`]); [`pipeline`] holds the options, rules and report.

pub use stages::map_scene;

pub mod augment;
pub mod buffer;
pub mod loss;
pub mod optim;
pub mod pipeline;
pub mod rng;
pub mod stages;
pub mod train;
