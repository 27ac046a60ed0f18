//! Localization: the query pipeline ([`query::QueryPipeline`]: scene coordinates predicted in
//! each orientation ([`pipeline`]), DSAC*-style PnP-RANSAC on the geometry crate's solvers, the
//! evidence, and the refinement against the map's structure), pose files and evaluation metrics.

pub mod dsac_fixture;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod pointcloud;
pub mod posefile;
pub mod query;

pub use error::LocalizeError;
