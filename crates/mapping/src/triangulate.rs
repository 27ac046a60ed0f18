//! Depth targets triangulated across the mapping views (not in the reference).
//!
//! The reprojection loss fixes a cell's point only along its own ray; where mapping views are
//! far apart (a ring of photos around an object) the head has little reason to put the point at
//! the depth another view would agree with, and views between the mapping views then see the
//! map's points displaced. Here each mapping view's cells are matched to those of its
//! neighbouring views (mutual nearest neighbours of the local features), each match is
//! triangulated with the known poses and kept only when it reprojects within a cell in both
//! views at a useful triangulation angle; a cell's depth is the median of its triangulations
//! that agree with their median. Training then pulls a sample's depth towards its cell's target
//! ([`crate::loss`]).

use glace_geometry::{CamToWorld, Camera};
use nalgebra::{Point2, Point3, Vector3};
use rayon::prelude::*;

/// Parameters of the triangulation.
#[derive(Clone, Copy, Debug)]
pub struct TriangulationConfig {
    /// Neighbouring views each view is matched with (nearest optical axes first).
    pub neighbours: usize,
    /// Views whose optical axes differ more than this (degrees) are not matched.
    pub max_axis_deg: f64,
    /// Smallest angle between the two rays of a triangulation (degrees).
    pub min_angle_deg: f64,
    /// Largest reprojection error of a triangulated point in either view, in cells.
    pub max_error_cells: f64,
    /// Smallest cosine similarity of two matched features.
    pub min_similarity: f32,
    /// Triangulations that must agree before a cell gets a depth.
    pub min_support: usize,
    /// Relative depth difference within which two triangulations agree.
    pub agreement: f64,
}

impl Default for TriangulationConfig {
    fn default() -> Self {
        TriangulationConfig {
            neighbours: 6,
            max_axis_deg: 45.0,
            min_angle_deg: 3.0,
            max_error_cells: 0.5,
            min_similarity: 0.5,
            min_support: 1,
            agreement: 0.03,
        }
    }
}

/// One mapping view as the triangulation sees it: the upright image at the network's scale.
pub struct TriangulationView {
    /// Pose.
    pub cam_to_world: CamToWorld,
    /// Camera of the resized image (its distortion, if any).
    pub camera: Camera,
    /// Feature grid rows and columns.
    pub rows: usize,
    /// Feature grid columns.
    pub cols: usize,
    /// Pixel of cell (i, j) is ((8j + 4)·sx, (8i + 4)·sy).
    pub cell_scale: (f64, f64),
    /// `rows × cols × dim` unit features.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// Per cell, the encoder's keypoint in it (x, y in encoder input pixels, scaled by
    /// `cell_scale` like the cells; score); `None`: the cells' centres.
    pub keypoints: Option<Vec<[f32; 3]>>,
}

impl TriangulationView {
    /// Where cell `c` is matched and triangulated: its keypoint, else its centre.
    fn cell_pixel(&self, c: usize) -> Point2<f64> {
        if let Some(k) = &self.keypoints {
            return Point2::new(k[c][0] as f64 * self.cell_scale.0, k[c][1] as f64 * self.cell_scale.1);
        }
        let (i, j) = (c / self.cols, c % self.cols);
        Point2::new((8 * j + 4) as f64 * self.cell_scale.0, (8 * i + 4) as f64 * self.cell_scale.1)
    }
    fn cell_size(&self) -> f64 {
        8.0 * self.cell_scale.0.max(self.cell_scale.1)
    }
}

/// Triangulated depths of one view's cells, indexed by the cell of the *undistorted* pixel.
#[derive(Clone, Debug)]
pub struct DepthTargets {
    /// Pinhole intrinsics of the resized upright image the grid lies on.
    pub intrinsics: glace_geometry::Intrinsics,
    /// Grid rows.
    pub rows: usize,
    /// Grid columns.
    pub cols: usize,
    /// Cell width and height in pixels of the resized image.
    pub cell: (f64, f64),
    /// Depth along the camera's z axis per cell; NaN where none.
    pub depth: Vec<f32>,
}

impl DepthTargets {
    /// An empty grid for `view`'s cells.
    fn empty(view: &TriangulationView) -> DepthTargets {
        DepthTargets {
            intrinsics: view.camera.intrinsics,
            rows: view.rows,
            cols: view.cols,
            cell: (8.0 * view.cell_scale.0, 8.0 * view.cell_scale.1),
            depth: vec![f32::NAN; view.rows * view.cols],
        }
    }
    /// The grid cell holding undistorted pixel `(u, v)`, if inside.
    fn cell_index(&self, u: f64, v: f64) -> Option<usize> {
        if !(u >= 0.0 && v >= 0.0) {
            return None;
        }
        let (j, i) = ((u / self.cell.0) as usize, (v / self.cell.1) as usize);
        (i < self.rows && j < self.cols).then_some(i * self.cols + j)
    }
    /// The target depth at undistorted pixel `(u, v)` of the resized upright image.
    pub fn at(&self, u: f64, v: f64) -> Option<f32> {
        let d = self.depth[self.cell_index(u, v)?];
        d.is_finite().then_some(d)
    }
    /// Cells with a depth.
    pub fn count(&self) -> usize {
        self.depth.iter().filter(|d| d.is_finite()).count()
    }
}

/// The neighbours each view is matched with: other views whose optical axes are within
/// `max_axis_deg`, nearest first, skipping views at the same place looking the same way.
fn neighbour_pairs(views: &[TriangulationView], cfg: &TriangulationConfig) -> Vec<(usize, usize)> {
    let axes: Vec<Vector3<f64>> = views.iter().map(|v| v.cam_to_world.rotation().column(2).into_owned()).collect();
    let centres: Vec<Vector3<f64>> = views.iter().map(|v| v.cam_to_world.center()).collect();
    let cos_max = cfg.max_axis_deg.to_radians().cos();
    let mut pairs = Vec::new();
    for a in 0..views.len() {
        let mut near: Vec<(f64, usize)> = (0..views.len())
            .filter(|&b| b != a)
            .map(|b| (axes[a].dot(&axes[b]), b))
            .filter(|&(c, b)| c >= cos_max && (centres[a] - centres[b]).norm() > 1e-9)
            .collect();
        near.sort_by(|x, y| y.0.total_cmp(&x.0));
        for &(_, b) in near.iter().take(cfg.neighbours) {
            pairs.push((a.min(b), a.max(b)));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The ray in world coordinates through undistorted pixel `px` of `view`.
fn ray(view: &TriangulationView, px: &Point2<f64>) -> Vector3<f64> {
    let xy = view.camera.intrinsics.to_normalized(px);
    view.cam_to_world.rotation() * Vector3::new(xy.x, xy.y, 1.0)
}

/// Mutual nearest neighbours between the cells of two views (cosine similarity).
fn mutual_matches(a: &TriangulationView, b: &TriangulationView, min_similarity: f32) -> Vec<(usize, usize)> {
    let (na, nb) = (a.rows * a.cols, b.rows * b.cols);
    let mut sim = vec![0f32; na * nb];
    glace_nn::linalg::matmul_wt(&a.features, na, a.dim, &b.features, nb, &mut sim);
    let best_b: Vec<(usize, f32)> = sim
        .par_chunks(nb)
        .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |m, (j, &s)| if s > m.1 { (j, s) } else { m }))
        .collect();
    // The best row of each column: per block of rows in parallel, then merged (the first of
    // equals, as a serial scan would keep).
    const BLOCK: usize = 256;
    let merge = |mut x: Vec<(usize, f32)>, y: Vec<(usize, f32)>| {
        for (a, b) in x.iter_mut().zip(y) {
            if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
                *a = b;
            }
        }
        x
    };
    let best_a = sim
        .par_chunks(nb * BLOCK)
        .enumerate()
        .map(|(block, rows)| {
            let mut best = vec![(usize::MAX, f32::NEG_INFINITY); nb];
            for (r, row) in rows.chunks(nb).enumerate() {
                for (j, &s) in row.iter().enumerate() {
                    if s > best[j].1 {
                        best[j] = (block * BLOCK + r, s);
                    }
                }
            }
            best
        })
        .reduce(|| vec![(usize::MAX, f32::NEG_INFINITY); nb], merge);
    best_b
        .iter()
        .enumerate()
        .filter(|(i, (j, s))| *s >= min_similarity && best_a[*j].0 == *i)
        .map(|(i, (j, _))| (i, *j))
        .collect()
}

/// Triangulates a match between undistorted pixels `pa` of `a` and `pb` of `b`; the depths of
/// the point in both views when it passes the checks.
fn triangulate(
    a: &TriangulationView,
    pa: Point2<f64>,
    b: &TriangulationView,
    pb: Point2<f64>,
    cfg: &TriangulationConfig,
) -> Option<(f64, f64)> {
    let (ra, rb) = (ray(a, &pa), ray(b, &pb));
    let (oa, ob) = (a.cam_to_world.center(), b.cam_to_world.center());
    let (ua, ub) = (ra.normalize(), rb.normalize());
    let cos = ua.dot(&ub);
    if cos > cfg.min_angle_deg.to_radians().cos() {
        return None;
    }
    // Closest points of the two rays: oa + s·ua and ob + t·ub.
    let w = oa - ob;
    let (d, e) = (ua.dot(&w), ub.dot(&w));
    let denom = 1.0 - cos * cos;
    let (s, t) = ((cos * e - d) / denom, (e - cos * d) / denom);
    if !(s > 0.0 && t > 0.0) {
        return None;
    }
    let x = Point3::from((oa + s * ua + ob + t * ub) / 2.0);
    let mut depths = [0.0; 2];
    for (k, (view, px)) in [(a, pa), (b, pb)].into_iter().enumerate() {
        let cam = view.cam_to_world.inverse().transform_point(&x);
        let q = glace_geometry::Camera::pinhole(view.camera.intrinsics).project(&cam)?;
        if (q - px).norm() > cfg.max_error_cells * view.cell_size() {
            return None;
        }
        depths[k] = cam.z;
    }
    Some((depths[0], depths[1]))
}

/// Views of more cells than this are not matched (the similarity matrix of a pair grows with
/// the square of the cells: 4800 cells at the default 480-pixel height, 6420 for 16:9).
pub const MAX_CELLS: usize = 8192;

/// Scenes of more mapping views than this are not triangulated (their upright encodings are
/// held in memory, about 1.2 MB a view at the default height).
pub const MAX_VIEWS: usize = 2000;

/// Points kept in a map's structure at most (about 150 bytes each in the map file); beyond,
/// an even subsample.
pub const MAX_STRUCTURE_POINTS: usize = 300_000;

/// What the triangulation gives: per view, the depth targets of its cells; and the triangulated
/// points with their features, for the map.
pub struct Triangulated {
    /// Per view, in the order given.
    pub targets: Vec<DepthTargets>,
    /// Each cell with an agreed depth and a distinct keypoint
    /// ([`glace_nn::Structure::MIN_SCORE`]) as a world point, with its unit feature.
    pub structure: glace_nn::Structure,
}

/// Depth targets for every view (see the module's documentation); views without any keep a
/// grid of NaN, as do views of more than [`MAX_CELLS`] cells. `on_pair(done, total)` reports
/// progress.
pub fn depth_targets(
    views: &[TriangulationView],
    cfg: &TriangulationConfig,
    on_pair: &mut dyn FnMut(usize, usize),
) -> Triangulated {
    let pairs: Vec<(usize, usize)> = neighbour_pairs(views, cfg)
        .into_iter()
        .filter(|&(a, b)| [a, b].iter().all(|&v| views[v].rows * views[v].cols <= MAX_CELLS))
        .collect();
    // Each cell's undistorted pixel, and the target cell it falls in (where training looks up).
    let mut targets: Vec<DepthTargets> = views.iter().map(DepthTargets::empty).collect();
    let pixels: Vec<Vec<Point2<f64>>> = views
        .iter()
        .map(|v| (0..v.rows * v.cols).map(|c| v.camera.undistort_pixel(&v.cell_pixel(c))).collect())
        .collect();
    let slots: Vec<Vec<Option<usize>>> =
        targets.iter().zip(&pixels).map(|(t, px)| px.iter().map(|p| t.cell_index(p.x, p.y)).collect()).collect();
    let mut estimates: Vec<Vec<Vec<f32>>> = views.iter().map(|v| vec![Vec::new(); v.rows * v.cols]).collect();
    // The same per cell matched (its structure point lies on the ray through its pixel).
    let mut own: Vec<Vec<Vec<f32>>> = estimates.clone();
    for (k, &(ia, ib)) in pairs.iter().enumerate() {
        let (a, b) = (&views[ia], &views[ib]);
        let found: Vec<(usize, usize, f64, f64)> = mutual_matches(a, b, cfg.min_similarity)
            .into_par_iter()
            .filter_map(|(ca, cb)| {
                triangulate(a, pixels[ia][ca], b, pixels[ib][cb], cfg).map(|(da, db)| (ca, cb, da, db))
            })
            .collect();
        for (ca, cb, da, db) in found {
            for (view, c, depth) in [(ia, ca, da), (ib, cb, db)] {
                own[view][c].push(depth as f32);
                if let Some(slot) = slots[view][c] {
                    estimates[view][slot].push(depth as f32);
                }
            }
        }
        on_pair(k + 1, pairs.len());
    }
    for (t, cells) in targets.iter_mut().zip(estimates) {
        t.depth = cells.into_iter().map(|e| agreed_depth(e, cfg)).collect();
    }
    let mut found: Vec<(usize, usize, Point3<f64>, usize, f32)> = Vec::new();
    for (v, (view, cells)) in views.iter().zip(own).enumerate() {
        for (c, e) in cells.into_iter().enumerate() {
            let (d, support) = agreement(e, cfg);
            let d = d as f64;
            let score = view.keypoints.as_ref().map_or(1.0, |k| k[c][2]);
            if d.is_finite() && score >= glace_nn::Structure::MIN_SCORE {
                let xy = view.camera.intrinsics.to_normalized(&pixels[v][c]);
                let x = view.cam_to_world.transform_point(&Point3::new(xy.x * d, xy.y * d, d));
                found.push((v, c, x, support, score));
            }
        }
    }
    let stride = found.len().div_ceil(MAX_STRUCTURE_POINTS).max(1);
    let dim = views.first().map_or(0, |v| v.dim);
    let mut structure = glace_nn::Structure {
        dim,
        centres_v3: views
            .iter()
            .flat_map(|v| v.cam_to_world.center().iter().map(|&x| x as f32).collect::<Vec<_>>())
            .collect(),
        ..Default::default()
    };
    for &(v, c, x, support, score) in found.iter().step_by(stride) {
        structure.support.push(support.min(u8::MAX as usize) as u8);
        structure.score.push(score);
        structure.points_n3.extend([x.x as f32, x.y as f32, x.z as f32]);
        structure.features_nd.extend_from_slice(&views[v].features[c * dim..(c + 1) * dim]);
        structure.view_of_point.push(v as u32);
    }
    Triangulated { targets, structure }
}

/// The median of the estimates that agree with it, when at least `min_support` do.
fn agreed_depth(estimates: Vec<f32>, cfg: &TriangulationConfig) -> f32 {
    agreement(estimates, cfg).0
}

/// [`agreed_depth`] and how many estimates agree with it.
fn agreement(mut estimates: Vec<f32>, cfg: &TriangulationConfig) -> (f32, usize) {
    if estimates.len() < cfg.min_support.max(1) {
        return (f32::NAN, 0);
    }
    estimates.sort_by(|a, b| a.total_cmp(b));
    let median = estimates[estimates.len() / 2];
    let agree: Vec<f32> =
        estimates.into_iter().filter(|d| ((d - median) / median).abs() as f64 <= cfg.agreement).collect();
    if agree.len() < cfg.min_support.max(1) {
        (f32::NAN, 0)
    } else {
        (agree[agree.len() / 2], agree.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glace_geometry::Intrinsics;
    use nalgebra::{Isometry3, Translation3, UnitQuaternion};

    /// A view of the textured plane z = 5 from `centre`, looking at the plane's point `(0, 0, 5)`:
    /// each cell's feature is a smooth code (random Fourier features) of the plane point it
    /// sees, so the nearest feature in another view is that of the nearest point.
    fn plane_view(centre: Vector3<f64>) -> TriangulationView {
        let target = Vector3::new(0.0, 0.0, 5.0);
        let z = (target - centre).normalize();
        let x = Vector3::new(0.0, 1.0, 0.0).cross(&z).normalize();
        let y = z.cross(&x);
        let r = nalgebra::Rotation3::from_matrix_unchecked(nalgebra::Matrix3::from_columns(&[x, y, z]));
        let pose =
            CamToWorld(Isometry3::from_parts(Translation3::from(centre), UnitQuaternion::from_rotation_matrix(&r)));
        let k = Intrinsics { fx: 200.0, fy: 200.0, cx: 80.0, cy: 60.0 };
        let (rows, cols, dim) = (15, 20, 16);
        let mut features = Vec::with_capacity(rows * cols * dim);
        for c in 0..rows * cols {
            let (u, v) = ((8 * (c % cols) + 4) as f64, (8 * (c / cols) + 4) as f64);
            let d = r * Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0);
            let p = centre + d * ((5.0 - centre.z) / d.z);
            let mut f: Vec<f32> = (0..dim)
                .map(|i| {
                    let (a, w) = (i as f64 * 2.399, [1.5, 3.0, 6.0][i % 3]);
                    (w * (a.cos() * p.x + a.sin() * p.y) + i as f64).cos() as f32
                })
                .collect();
            let n = f.iter().map(|v| v * v).sum::<f32>().sqrt();
            f.iter_mut().for_each(|v| *v /= n);
            features.extend(f);
        }
        TriangulationView {
            cam_to_world: pose,
            camera: Camera::pinhole(k),
            rows,
            cols,
            cell_scale: (1.0, 1.0),
            features,
            dim,
            keypoints: None,
        }
    }

    #[test]
    fn matched_cells_get_the_depth_of_the_surface_they_see() {
        // Three views 1.5 apart (about 17° at the plane), and one looking from the side (> 45°).
        let views: Vec<TriangulationView> = [(-1.5, 0.0), (0.0, 0.0), (1.5, 0.3)]
            .into_iter()
            .map(|(x, y)| plane_view(Vector3::new(x, y, 0.0)))
            .chain(std::iter::once(plane_view(Vector3::new(6.0, 0.0, 4.0))))
            .collect();
        let cfg = TriangulationConfig::default();
        assert!(neighbour_pairs(&views, &cfg).iter().all(|&(a, b)| a < 3 && b < 3), "the side view has no neighbour");
        let Triangulated { targets, structure } = depth_targets(&views, &cfg, &mut |_, _| {});
        structure.check().unwrap();
        assert_eq!(structure.len(), targets.iter().map(|t| t.count()).sum::<usize>());
        // Structure points lie on the plane z = 5.
        let mut off: Vec<f32> = structure.points_n3.chunks(3).map(|p| (p[2] - 5.0).abs() / 5.0).collect();
        off.sort_by(|a, b| a.total_cmp(b));
        assert!(off[off.len() / 2] < 0.03, "structure depth error median {}", off[off.len() / 2]);
        for (k, (t, v)) in targets.iter().zip(&views).take(3).enumerate() {
            assert!(t.count() > t.depth.len() / 10, "view {k}: {} of {} cells", t.count(), t.depth.len());
            let w2c = v.cam_to_world.inverse();
            let mut errors = Vec::new();
            for (c, d) in t.depth.iter().enumerate().filter(|(_, d)| d.is_finite()) {
                // The true depth of the plane at the cell's pixel.
                let px = v.cell_pixel(c);
                let ray = v.cam_to_world.rotation() * Vector3::new((px.x - 80.0) / 200.0, (px.y - 60.0) / 200.0, 1.0);
                let o = v.cam_to_world.center();
                let p = Point3::from(o + ray * ((5.0 - o.z) / ray.z));
                let truth = w2c.transform_point(&p).z as f32;
                errors.push(((d - truth) / truth).abs());
            }
            // A right match is off by up to half a cell in each view, a few % of the depth at this baseline;
            // a few cells match a look-alike elsewhere along the epipolar line.
            errors.sort_by(|a, b| a.total_cmp(b));
            let (median, p90) = (errors[errors.len() / 2], errors[errors.len() * 9 / 10]);
            assert!(median < 0.03 && p90 < 0.06, "view {k}: relative depth error median {median}, 90 % {p90}");
            assert_eq!(t.at(-1.0, 5.0), None);
        }
        assert_eq!(targets[3].count(), 0);
    }
}
