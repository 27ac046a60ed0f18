//! The map's structure: 3D points triangulated across the mapping views, each with the unit
//! local feature of the view cell it was triangulated from and the grey patch around its
//! keypoint there (not in the reference).

use crate::align::{PATCH_LEN, PATCH_SIDE};

/// 3D points triangulated across the mapping views (see the module's documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Structure {
    /// World coordinates of the points.
    pub points_n3: Vec<[f32; 3]>,
    /// Points × `dim` unit features.
    pub features_nd: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// The mapping view each point was triangulated from.
    pub view_of_point: Vec<u32>,
    /// Per point, the triangulations (view pairs) that agree on it.
    pub support: Vec<u8>,
    /// Per point, its keypoint's score in the view it was triangulated from (XFeat's keypoint
    /// probability × reliability; 1 for encoders without keypoints).
    pub score: Vec<f32>,
    /// Camera centres of the mapping views, world coordinates.
    pub centres_v3: Vec<[f32; 3]>,
    /// Shorter image side (pixels) the points' keypoints were detected at, which a query's
    /// keypoints are detected at too; `None`: the network's own (maps made before the structure
    /// had a resolution of its own).
    pub image_height: Option<u32>,
    /// Per point, the grey levels around its keypoint in its view at `image_height`
    /// ([`PATCH_SIDE`] rows of [`PATCH_SIDE`], one pixel apart along the view's image axes): what
    /// a query aligns its keypoint to. Empty: none (older maps).
    pub patches_n: Vec<[u8; PATCH_LEN]>,
    /// Per view, the world direction of one pixel step along its image's x and then y axis, at
    /// unit depth: how a patch lies in the world. Empty with the patches.
    pub pixel_axes_v23: Vec<[[f32; 3]; 2]>,
    /// Per view, its unit global descriptor (views × width, row by row): a query's nearest
    /// mapping views by descriptor, where its regressed pose finds no support in the points
    /// ([`crate::retrieve`]). Empty: none (maps without a global encoder, older maps).
    pub view_globals_vg: Vec<f32>,
}

impl Structure {
    /// Keypoint score below which a point is not kept (nor a query's keypoint matched): cells
    /// without a distinct keypoint (flat or blurred surfaces, a plain background) match
    /// look-alikes along the epipolar line and triangulate wrong (measured in docs/experiments.md).
    pub const MIN_SCORE: f32 = 0.03;
    /// Side of a point's patch, in pixels of its view.
    pub const PATCH_SIDE: usize = PATCH_SIDE;
    /// Grey levels of a point's patch.
    pub const PATCH_LEN: usize = PATCH_LEN;

    /// Width of the views' global descriptors (0: none).
    pub fn global_dim(&self) -> usize {
        if self.views() == 0 {
            0
        } else {
            self.view_globals_vg.len() / self.views()
        }
    }
    /// Whether its points carry patches (and their views the axes to place them).
    pub fn has_patches(&self) -> bool {
        !self.patches_n.is_empty()
    }
    /// Points held.
    pub fn len(&self) -> usize {
        self.view_of_point.len()
    }
    /// True when it holds no point.
    pub fn is_empty(&self) -> bool {
        self.view_of_point.is_empty()
    }
    /// Mapping views.
    pub fn views(&self) -> usize {
        self.centres_v3.len()
    }
    /// Point `p` in world coordinates.
    pub fn point(&self, p: usize) -> nalgebra::Point3<f64> {
        let x = self.points_n3[p];
        nalgebra::Point3::new(x[0] as f64, x[1] as f64, x[2] as f64)
    }
    /// Unit feature of point `p`.
    pub fn feature(&self, p: usize) -> &[f32] {
        &self.features_nd[p * self.dim..][..self.dim]
    }
    /// Centre of mapping view `v` in world coordinates.
    pub fn centre(&self, v: usize) -> nalgebra::Vector3<f64> {
        let c = self.centres_v3[v];
        nalgebra::Vector3::new(c[0] as f64, c[1] as f64, c[2] as f64)
    }
    /// Shorter image side a query's keypoints are detected at to be matched to these points:
    /// the structure's own, else `network_height`, the network's.
    pub fn detection_height(&self, network_height: u32) -> u32 {
        self.image_height.unwrap_or(network_height)
    }
    /// Whether the arrays agree with each other (point, feature and view counts, view indices
    /// in range, finite values, an own height within `heights`, those the local encoder takes):
    /// what a loaded map must satisfy before it is used.
    pub fn check(&self, heights: std::ops::RangeInclusive<u32>) -> Result<(), String> {
        let n = self.len();
        if self.dim == 0 || self.points_n3.len() != n || self.features_nd.len() != self.dim * n {
            return Err(format!(
                "structure of {n} points has {} coordinates and {} feature values of width {}",
                3 * self.points_n3.len(),
                self.features_nd.len(),
                self.dim
            ));
        }
        if self.support.len() != n || self.score.len() != n {
            return Err(format!(
                "structure of {n} points has {} support counts and {} scores",
                self.support.len(),
                self.score.len()
            ));
        }
        if self.view_of_point.iter().any(|&v| v as usize >= self.views()) {
            return Err(format!("structure names views beyond its {} mapping views", self.views()));
        }
        let patched = self.patches_n.len() == n && self.pixel_axes_v23.len() == self.views();
        if (self.has_patches() || !self.pixel_axes_v23.is_empty()) && !patched {
            return Err(format!(
                "structure of {n} points and {} views has {} patches and {} views' pixel axes",
                self.views(),
                self.patches_n.len(),
                self.pixel_axes_v23.len()
            ));
        }
        if self.view_globals_vg.len() != self.global_dim() * self.views() {
            return Err(format!(
                "structure of {} views has {} global descriptor values, not a whole number per view",
                self.views(),
                self.view_globals_vg.len()
            ));
        }
        if self
            .points_n3
            .as_flattened()
            .iter()
            .chain(&self.features_nd)
            .chain(self.centres_v3.as_flattened())
            .chain(&self.score)
            .chain(self.pixel_axes_v23.as_flattened().as_flattened())
            .chain(&self.view_globals_vg)
            .any(|v| !v.is_finite())
        {
            return Err("structure holds NaN or infinite values".into());
        }
        if let Some(h) = self.image_height.filter(|h| !heights.contains(h)) {
            return Err(format!(
                "structure detected at {h} pixels: expected {} to {} (the local encoder needs at least {})",
                heights.start(),
                heights.end(),
                heights.start()
            ));
        }
        Ok(())
    }
}
