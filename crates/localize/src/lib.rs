//! Localization: scene-coordinate prediction for query images, DSAC*-style PnP-RANSAC on top of
//! the geometry crate's solvers, pose files and evaluation metrics.

pub mod dsac_fixture;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod pointcloud;
pub mod posefile;
pub mod query;

pub use error::LocalizeError;
