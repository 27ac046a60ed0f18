//! glace's benchmarks as library calls. Each takes plain options and returns serialisable rows
//! (one per case, scene or variant); `glace bench …` prints them, as a table or as JSON. Speed
//! figures are measured side by side in one run on one machine ([`machine`] names it), never
//! against a figure from elsewhere.
//!
//! - [`real`]: posed real captures mapped and localized with the defaults, next to a SIFT + COLMAP
//!   localizer on the same splits;
//! - [`budget`]: time to accuracy, the head trained for each budget on one scene's shared stages;
//! - [`ablation`]: the paper's ablation on synthetic integrated rooms, variants as [`glace::MapOptions`];
//! - [`kernels`]: the head's training step, the encoders and the head's forward, R2Former, each
//!   against the GEMM peak of the same run;
//! - [`query`]: queries against kept maps, per-stage medians on a given number of threads;
//! - [`ransac`]: PnP-RANSAC on the reference's DSAC* fixture cases;
//! - [`synth`]: synthetic-scene rendering.
//!
//! The HTTP service's load and fault test lives with the service (`glace_serve::bench`).

pub mod ablation;
pub mod budget;
pub mod kernels;
pub mod machine;
pub mod query;
pub mod ransac;
pub mod real;
pub mod synth;

/// Errors of a benchmark: glace's own, with the message the command line prints.
pub type Result<T> = std::result::Result<T, glace::Error>;
