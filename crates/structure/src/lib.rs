//! The map's structure (not in the reference): 3D points triangulated across the mapping views
//! with their unit local features and grey patches, and everything done with them.
//!
//! - [`matching`]: mutual nearest neighbours of unit features;
//! - [`triangulate`]: the views' keypoints matched to their neighbours' and triangulated with
//!   the known poses, into per-cell depth targets for training and into the map's [`Structure`];
//! - [`align`]: a patch aligned into an image to a fraction of a pixel;
//! - [`mod@refine`]: a query's coarse pose refined by matching its keypoints to the points;
//! - [`retrieve`]: where the coarse pose finds no support, a pose from the points of the
//!   mapping views nearest the query by global descriptor.
//!
//! Knows nothing of networks or files: views and queries come as typed arrays (keypoints in
//! pixels of the image they were detected in, unit features, scores, grey levels).

pub mod align;
pub mod matching;
pub mod points;
pub mod refine;
pub mod retrieve;
pub mod triangulate;

pub use align::{GrayImage, PATCH_LEN, PATCH_SIDE};
pub use points::Structure;
pub use refine::{refine, QueryKeypoints, RefineConfig, Refined};
pub use triangulate::{
    depth_targets, structure_points, DepthTargets, KeypointView, TriangulationConfig, TriangulationView,
};
