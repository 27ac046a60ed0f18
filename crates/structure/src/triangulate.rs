//! Triangulation across the mapping views with their known poses (not in the reference): depth
//! targets for training, and the map's points.
//!
//! The reprojection loss fixes a cell's point only along its own ray; where mapping views are
//! far apart (a ring of photos around an object) the head has little reason to put the point at
//! the depth another view would agree with, and views between the mapping views then see the
//! map's points displaced. Here each mapping view's cells are matched to those of its
//! neighbouring views (mutual nearest neighbours of the local features), each match is
//! triangulated with the known poses and kept only when it reprojects within a cell in both
//! views at a useful triangulation angle; a cell's depth is the median of its triangulations
//! that agree with their median. Training then pulls a sample's depth towards its cell's target
//! (`glace_mapping::loss`).
//!
//! The same matching at the views' keypoints, at a resolution of its own ([`structure_points`]),
//! gives the points the map keeps for localization to match against ([`Structure`]).

use crate::align::{cut_patch, AlignConfig, GrayImage, WorldPatch};
use crate::Structure;
use glace_geometry::rays::{closest_approach, nearest_to_rays};
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
    fn eye(&self, cfg: &TriangulationConfig) -> Eye<'_> {
        let cell_size = 8.0 * self.cell_scale.0.max(self.cell_scale.1);
        Eye {
            pose: &self.cam_to_world,
            intrinsics: &self.camera.intrinsics,
            max_error: cfg.max_error_cells * cell_size,
        }
    }
}

/// Keypoints of a view kept at most for its points (the strongest): bounds the memory of
/// [`structure_points`] (about 300 bytes each) whatever the resolution.
pub const MAX_VIEW_KEYPOINTS: usize = 4096;

/// One mapping view's keypoints for the map's points ([`structure_points`]), at the
/// resolution they were detected at.
pub struct KeypointView {
    /// Pose.
    pub cam_to_world: CamToWorld,
    /// Camera of the resized image the keypoints lie in (its distortion, if any).
    pub camera: Camera,
    /// Keypoints, pixels of that image as detected.
    pub pixels: Vec<Point2<f64>>,
    /// Their unit features, `pixels × dim`.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// Their scores.
    pub scores: Vec<f32>,
    /// Side of a feature cell in that image's pixels (triangulations must reproject within
    /// [`TriangulationConfig::max_error_cells`] of it).
    pub cell_size: f64,
    /// That image in grey levels (`width × height`), to align each match to a fraction of a
    /// pixel and to cut the points' patches from; empty: matches stay at the keypoints and the
    /// points carry no patches.
    pub gray: Vec<u8>,
    /// Width and height of `gray`.
    pub gray_size: (usize, usize),
}

impl KeypointView {
    /// [`KeypointView::from_cells`] for a view the depth targets were triangulated on (the
    /// network's resolution).
    pub fn from_view(view: &TriangulationView) -> KeypointView {
        let score = |c: usize| view.keypoints.as_ref().map_or(1.0, |k| k[c][2]);
        let cell_size = 8.0 * view.cell_scale.0.max(view.cell_scale.1);
        let cells = (view.rows * view.cols, view.dim);
        Self::from_cells(
            view.cam_to_world,
            view.camera,
            cells,
            &view.features,
            |c| view.cell_pixel(c),
            score,
            cell_size,
        )
    }

    /// A view's keypoints from its `cells` (one keypoint each, with `dim`-wide unit features
    /// row by row, `pixel(c)` in the pixels of the image `camera` describes, `score(c)`): those
    /// that score at least [`Structure::MIN_SCORE`], the strongest [`MAX_VIEW_KEYPOINTS`].
    /// `cell_size` is a feature cell's side in those pixels.
    pub fn from_cells(
        cam_to_world: CamToWorld,
        camera: Camera,
        (cells, dim): (usize, usize),
        features: &[f32],
        pixel: impl Fn(usize) -> Point2<f64>,
        score: impl Fn(usize) -> f32,
        cell_size: f64,
    ) -> KeypointView {
        let mut keep: Vec<usize> = (0..cells).filter(|&c| score(c) >= Structure::MIN_SCORE).collect();
        if keep.len() > MAX_VIEW_KEYPOINTS {
            // Equal scores (an encoder without keypoints: all 1) in a scrambled order, so that a
            // cut keeps cells from the whole image rather than its top rows.
            let scramble = |c: usize| (c as u32).wrapping_mul(0x9E37_79B1);
            keep.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(scramble(a).cmp(&scramble(b))));
            keep.truncate(MAX_VIEW_KEYPOINTS);
            keep.sort_unstable();
        }
        KeypointView {
            cam_to_world,
            camera,
            pixels: keep.iter().map(|&c| pixel(c)).collect(),
            features: keep.iter().flat_map(|&c| features[c * dim..(c + 1) * dim].iter().copied()).collect(),
            dim,
            scores: keep.iter().map(|&c| score(c)).collect(),
            cell_size,
            gray: Vec::new(),
            gray_size: (0, 0),
        }
    }

    /// The view with its image's grey levels (`width × height`, the image the keypoints lie
    /// in): its matches are aligned and its points get patches.
    pub fn with_gray(self, gray: Vec<u8>, width: usize, height: usize) -> KeypointView {
        KeypointView { gray, gray_size: (width, height), ..self }
    }

    fn image(&self) -> Option<GrayImage<'_>> {
        let (width, height) = self.gray_size;
        (width > 0 && self.gray.len() == width * height).then_some(GrayImage { pixels: &self.gray, width, height })
    }

    /// World directions of one pixel step along the image's x and y axes at unit depth.
    fn pixel_axes(&self) -> [Vector3<f64>; 2] {
        let (r, k) = (self.cam_to_world.rotation(), &self.camera.intrinsics);
        [r * Vector3::new(1.0 / k.fx, 0.0, 0.0), r * Vector3::new(0.0, 1.0 / k.fy, 0.0)]
    }

    fn eye(&self, cfg: &TriangulationConfig) -> Eye<'_> {
        Eye {
            pose: &self.cam_to_world,
            intrinsics: &self.camera.intrinsics,
            max_error: cfg.max_error_cells * self.cell_size,
        }
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
/// `max_axis_deg` (they overlap) and, where the scene's typical `depth` is known, whose baseline
/// would triangulate a point at that depth on the view's axis at twice `min_angle_deg` or more,
/// nearest axes first; views too close for that (the next frames of a video) only where too few
/// others are, widest baseline first. Views at the same place looking the same way are skipped.
pub fn view_pairs(poses: &[CamToWorld], depth: Option<f64>, cfg: &TriangulationConfig) -> Vec<(usize, usize)> {
    let axes: Vec<Vector3<f64>> = poses.iter().map(|p| p.rotation().column(2).into_owned()).collect();
    let centres: Vec<Vector3<f64>> = poses.iter().map(|p| p.center()).collect();
    let cos_max = cfg.max_axis_deg.to_radians().cos();
    let useful_deg = 2.0 * cfg.min_angle_deg;
    let mut pairs = Vec::new();
    for a in 0..poses.len() {
        // (useful, axis cosine, expected triangulation angle, view)
        let mut near: Vec<(bool, f64, f64, usize)> = (0..poses.len())
            .filter(|&b| b != a && (centres[a] - centres[b]).norm() > 1e-9)
            .map(|b| (axes[a].dot(&axes[b]), b))
            .filter(|&(c, _)| c >= cos_max)
            .filter_map(|(c, b)| {
                let Some(d) = depth else { return Some((true, c, 0.0, b)) };
                let x = centres[a] + d * axes[a];
                let (ra, rb) = (x - centres[a], x - centres[b]);
                // b must see the point in front of it.
                if rb.dot(&axes[b]) <= 0.0 {
                    return None;
                }
                let angle = (ra.dot(&rb) / (ra.norm() * rb.norm())).clamp(-1.0, 1.0).acos().to_degrees();
                Some((angle >= useful_deg, c, angle, b))
            })
            .collect();
        near.sort_by(|x, y| match (x.0, y.0) {
            (true, true) => y.1.total_cmp(&x.1),
            (false, false) => y.2.total_cmp(&x.2),
            _ => y.0.cmp(&x.0),
        });
        for &(_, _, _, b) in near.iter().take(cfg.neighbours) {
            pairs.push((a.min(b), a.max(b)));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Views sampled to measure the scene's typical depth ([`scene_depth`]).
const DEPTH_PILOT_VIEWS: usize = 16;

/// The scene's typical depth: the median depth of the matches triangulated (at rays 1° apart or
/// more) between a few evenly spread views and overlapping views at growing baselines (the 2nd,
/// 5th and 11th nearest), so that it is found for video and photo collections alike; `None`
/// when no pair triangulates.
fn scene_depth<'a>(
    poses: &[CamToWorld],
    side: impl Fn(usize) -> Side<'a>,
    dim: usize,
    cfg: &TriangulationConfig,
) -> Option<f64> {
    let pilot = TriangulationConfig { min_angle_deg: 1.0, ..*cfg };
    let cos_max = cfg.max_axis_deg.to_radians().cos();
    let step = poses.len().div_ceil(DEPTH_PILOT_VIEWS).max(1);
    let mut depths: Vec<f64> = Vec::new();
    for a in (0..poses.len()).step_by(step) {
        let (za, ca) = (poses[a].rotation().column(2).into_owned(), poses[a].center());
        let mut near: Vec<(f64, usize)> = (0..poses.len())
            .filter(|&b| b != a && za.dot(&poses[b].rotation().column(2)) >= cos_max)
            .map(|b| ((poses[b].center() - ca).norm(), b))
            .filter(|&(baseline, _)| baseline > 1e-9)
            .collect();
        near.sort_by(|x, y| x.0.total_cmp(&y.0));
        for rank in [1, 4, 10] {
            let Some(&(_, b)) = near.get(rank) else { continue };
            depths.extend(matched_depths(side(a), side(b), dim, &pilot).into_iter().map(|(_, _, da, _)| da));
        }
    }
    if depths.is_empty() {
        return None;
    }
    let mid = depths.len() / 2;
    Some(*depths.select_nth_unstable_by(mid, |x, y| x.total_cmp(y)).1)
}

/// The pairs every view is matched in ([`view_pairs`] at the [`scene_depth`] measured on them).
fn pairs_of<'a>(
    poses: &[CamToWorld],
    side: impl Fn(usize) -> Side<'a>,
    dim: usize,
    cfg: &TriangulationConfig,
) -> Vec<(usize, usize)> {
    let depth = scene_depth(poses, side, dim, cfg);
    let pairs = view_pairs(poses, depth, cfg);
    tracing::debug!("scene depth {depth:?}: {} view pairs for {} views", pairs.len(), poses.len());
    pairs
}

/// A view as a triangulation sees it: its pose, the pinhole intrinsics of its undistorted
/// pixels, and how far (pixels) a triangulated point may reproject from where it was seen.
#[derive(Clone, Copy)]
struct Eye<'a> {
    pose: &'a CamToWorld,
    intrinsics: &'a glace_geometry::Intrinsics,
    max_error: f64,
}

impl Eye<'_> {
    /// The ray in world coordinates through undistorted pixel `px`.
    fn ray(&self, px: &Point2<f64>) -> Vector3<f64> {
        let xy = self.intrinsics.to_normalized(px);
        self.pose.rotation() * Vector3::new(xy.x, xy.y, 1.0)
    }
}

/// Triangulates a match between undistorted pixels `pa` seen by `a` and `pb` seen by `b`; the
/// depths of the point in both views when it passes the checks.
fn triangulate(a: Eye, pa: Point2<f64>, b: Eye, pb: Point2<f64>, cfg: &TriangulationConfig) -> Option<(f64, f64)> {
    let (ra, rb) = (a.ray(&pa), b.ray(&pb));
    let (oa, ob) = (a.pose.center(), b.pose.center());
    let (ua, ub) = (ra.normalize(), rb.normalize());
    let cos = ua.dot(&ub);
    if cos > cfg.min_angle_deg.to_radians().cos() {
        return None;
    }
    let (s, t) = closest_approach(&oa, &ua, &ob, &ub, cos)?;
    if !(s > 0.0 && t > 0.0) {
        return None;
    }
    let x = Point3::from((oa + s * ua + ob + t * ub) / 2.0);
    let mut depths = [0.0; 2];
    for (k, (eye, px)) in [(a, pa), (b, pb)].into_iter().enumerate() {
        let cam = eye.pose.inverse().transform_point(&x);
        let q = glace_geometry::Camera::pinhole(*eye.intrinsics).project(&cam)?;
        if (q - px).norm() > eye.max_error {
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

/// Depth targets for every view (see the module's documentation); views without any keep a
/// grid of NaN, as do views of more than [`MAX_CELLS`] cells. `on_pair(done, total)` reports
/// progress.
pub fn depth_targets(
    views: &[TriangulationView],
    cfg: &TriangulationConfig,
    on_pair: &mut dyn FnMut(usize, usize),
) -> Vec<DepthTargets> {
    let poses: Vec<CamToWorld> = views.iter().map(|v| v.cam_to_world).collect();
    // Each cell's undistorted pixel, and the target cell it falls in (where training looks up).
    let mut targets: Vec<DepthTargets> = views.iter().map(DepthTargets::empty).collect();
    let pixels: Vec<Vec<Point2<f64>>> = views
        .iter()
        .map(|v| (0..v.rows * v.cols).map(|c| v.camera.undistort_pixel(&v.cell_pixel(c))).collect())
        .collect();
    let matchable = |v: usize| views[v].rows * views[v].cols <= MAX_CELLS;
    let dim = views.first().map_or(0, |v| v.dim);
    let pairs: Vec<(usize, usize)> =
        pairs_of(&poses, |v| (views[v].eye(cfg), &pixels[v], &views[v].features), dim, cfg)
            .into_iter()
            .filter(|&(a, b)| matchable(a) && matchable(b))
            .collect();
    let slots: Vec<Vec<Option<usize>>> =
        targets.iter().zip(&pixels).map(|(t, px)| px.iter().map(|p| t.cell_index(p.x, p.y)).collect()).collect();
    let mut estimates: Vec<Vec<Vec<f32>>> = views.iter().map(|v| vec![Vec::new(); v.rows * v.cols]).collect();
    for (k, &(ia, ib)) in pairs.iter().enumerate() {
        let (a, b) = (&views[ia], &views[ib]);
        let found =
            matched_depths((a.eye(cfg), &pixels[ia], &a.features), (b.eye(cfg), &pixels[ib], &b.features), a.dim, cfg);
        for (ca, cb, da, db) in found {
            for (view, c, depth) in [(ia, ca, da), (ib, cb, db)] {
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
    targets
}

/// One side of a view pair: how the view sees, its undistorted pixels, their unit features.
type Side<'a> = (Eye<'a>, &'a [Point2<f64>], &'a [f32]);

/// The mutual nearest features of two views that triangulate: (index in a, index in b, depth
/// in a, depth in b).
fn matched_depths(a: Side, b: Side, dim: usize, cfg: &TriangulationConfig) -> Vec<(usize, usize, f64, f64)> {
    crate::matching::mutual_nearest_all(a.2, b.2, dim, cfg.min_similarity)
        .into_par_iter()
        .filter_map(|(ca, cb)| triangulate(a.0, a.1[ca], b.0, b.1[cb], cfg).map(|(da, db)| (ca, cb, da, db)))
        .collect()
}

/// The map's points: each view's keypoints matched to those of its neighbouring views and
/// triangulated as the depth targets are; a keypoint whose triangulations agree (on the depth
/// along its ray) becomes the world point nearest to the rays of its view and of the keypoints
/// it agrees with, with its feature and score (at most
/// [`MAX_STRUCTURE_POINTS`], an even subsample beyond). `image_height` is the shorter image side
/// the keypoints were detected at. `on_pair(done, total)` reports progress.
pub fn structure_points(
    views: &[KeypointView],
    cfg: &TriangulationConfig,
    image_height: u32,
    on_pair: &mut dyn FnMut(usize, usize),
) -> Structure {
    let poses: Vec<CamToWorld> = views.iter().map(|v| v.cam_to_world).collect();
    let pixels: Vec<Vec<Point2<f64>>> =
        views.iter().map(|v| v.pixels.iter().map(|p| v.camera.undistort_pixel(p)).collect()).collect();
    let dim = views.first().map_or(0, |v| v.dim);
    let pairs = pairs_of(&poses, |v| (views[v].eye(cfg), &pixels[v], &views[v].features), dim, cfg);
    // Per keypoint, its triangulations: depth in its view, the other view, and where the
    // keypoint lies in that view (undistorted pixels).
    type Seen = (f32, u32, [f32; 2]);
    let mut own: Vec<Vec<Vec<Seen>>> = views.iter().map(|v| vec![Vec::new(); v.pixels.len()]).collect();
    for (k, &(ia, ib)) in pairs.iter().enumerate() {
        let (a, b) = (&views[ia], &views[ib]);
        let found =
            matched_depths((a.eye(cfg), &pixels[ia], &a.features), (b.eye(cfg), &pixels[ib], &b.features), a.dim, cfg);
        let aligned: Vec<(usize, usize, Option<Seen>, Option<Seen>)> = if a.image().is_some() && b.image().is_some() {
            found
                .into_par_iter()
                .map(|(ca, cb, da, db)| {
                    // a's keypoint as b sees it, and b's as a sees it.
                    let in_b = aligned_in(a, ca, &pixels[ia][ca], da, b, b.pixels[cb]).and_then(|pu| {
                        let (d, _) = triangulate(a.eye(cfg), pixels[ia][ca], b.eye(cfg), pu, cfg)?;
                        Some((d as f32, ib as u32, [pu.x as f32, pu.y as f32]))
                    });
                    let in_a = aligned_in(b, cb, &pixels[ib][cb], db, a, a.pixels[ca]).and_then(|pu| {
                        let (_, d) = triangulate(a.eye(cfg), pu, b.eye(cfg), pixels[ib][cb], cfg)?;
                        Some((d as f32, ia as u32, [pu.x as f32, pu.y as f32]))
                    });
                    (ca, cb, in_b, in_a)
                })
                .collect()
        } else {
            found
                .into_iter()
                .map(|(ca, cb, da, db)| {
                    let (pa, pb) = (pixels[ia][ca], pixels[ib][cb]);
                    (
                        ca,
                        cb,
                        Some((da as f32, ib as u32, [pb.x as f32, pb.y as f32])),
                        Some((db as f32, ia as u32, [pa.x as f32, pa.y as f32])),
                    )
                })
                .collect()
        };
        for (ca, cb, in_b, in_a) in aligned {
            own[ia][ca].extend(in_b);
            own[ib][cb].extend(in_a);
        }
        on_pair(k + 1, pairs.len());
    }
    let found: Vec<(usize, usize, Point3<f64>, usize)> = own
        .into_par_iter()
        .enumerate()
        .flat_map_iter(|(v, points)| {
            let (view, pixels) = (&views[v], &pixels);
            points.into_iter().enumerate().filter_map(move |(c, e)| {
                let (d, support) = agreement(e.iter().map(|t| t.0).collect(), cfg);
                if !d.is_finite() {
                    return None;
                }
                let ray = |w: usize, px: &Point2<f64>| {
                    let eye = views[w].eye(cfg);
                    (views[w].cam_to_world.center(), eye.ray(px).normalize())
                };
                let on_ray = || {
                    let xy = view.camera.intrinsics.to_normalized(&pixels[v][c]);
                    let d = d as f64;
                    view.cam_to_world.transform_point(&Point3::new(xy.x * d, xy.y * d, d))
                };
                // The point nearest to the rays of every view that agrees on it.
                let rays: Vec<(Vector3<f64>, Vector3<f64>)> = std::iter::once(ray(v, &pixels[v][c]))
                    .chain(
                        e.iter()
                            .filter(|t| ((t.0 - d) / d).abs() as f64 <= cfg.agreement)
                            .map(|&(_, w, p)| ray(w as usize, &Point2::new(p[0] as f64, p[1] as f64))),
                    )
                    .collect();
                let x = nearest_to_rays(&rays).unwrap_or_else(on_ray);
                Some((v, c, x, support))
            })
        })
        .collect();
    let found = bounded(found, views);
    let stride = found.len().div_ceil(MAX_STRUCTURE_POINTS).max(1);
    let mut structure = Structure {
        dim,
        centres_v3: poses.iter().map(|p| p.center().map(|x| x as f32).into()).collect(),
        image_height: Some(image_height),
        ..Default::default()
    };
    let patched = !views.is_empty() && views.iter().all(|v| v.image().is_some());
    if patched {
        structure.pixel_axes_v23 = views.iter().map(|v| v.pixel_axes().map(|a| a.map(|x| x as f32).into())).collect();
    }
    for &(v, c, x, support) in found.iter().step_by(stride) {
        if patched {
            let image = views[v].image().expect("every view has its image");
            // Zeros (no contrast: never aligned to) where the patch leaves the image.
            structure.patches_n.push(cut_patch(&image, views[v].pixels[c]).unwrap_or([0; Structure::PATCH_LEN]));
        }
        structure.support.push(support.min(u8::MAX as usize) as u8);
        structure.score.push(views[v].scores[c]);
        structure.points_n3.push([x.x as f32, x.y as f32, x.z as f32]);
        structure.features_nd.extend_from_slice(&views[v].features[c * dim..(c + 1) * dim]);
        structure.view_of_point.push(v as u32);
    }
    structure
}

/// Points a view contributes at most (its best supported): a view's points beyond are seen
/// again by its neighbours.
pub const MAX_VIEW_POINTS: usize = 2048;

/// The points (view, keypoint, position, support) bounded per volume and per view, so that a
/// video's overlapping views do not each store the same surface again: of the points in one
/// cube of about a feature cell's footprint (at the depth it was seen, in powers of two) seen from
/// one direction (within about 20°), the best supported; then at most [`MAX_VIEW_POINTS`] of
/// each view's. Best supported: most agreeing triangulations, then the higher keypoint score.
fn bounded(
    found: Vec<(usize, usize, Point3<f64>, usize)>,
    views: &[KeypointView],
) -> Vec<(usize, usize, Point3<f64>, usize)> {
    let better = |x: &(usize, usize, Point3<f64>, usize), y: &(usize, usize, Point3<f64>, usize)| {
        x.3.cmp(&y.3).then(views[x.0].scores[x.1].total_cmp(&views[y.0].scores[y.1]))
    };
    let mut best: std::collections::HashMap<[i64; 7], usize> = std::collections::HashMap::new();
    for (k, p) in found.iter().enumerate() {
        let view = &views[p.0];
        let centre = view.cam_to_world.center();
        let to_camera = centre - p.2.coords;
        let depth = to_camera.norm();
        let cell = depth * view.cell_size / view.camera.intrinsics.fx.max(f64::MIN_POSITIVE);
        let level = cell.log2().round().clamp(-60.0, 60.0);
        let side = level.exp2();
        let dir = to_camera / depth.max(f64::MIN_POSITIVE) * 3.0;
        let key = [
            level as i64,
            (p.2.x / side).floor() as i64,
            (p.2.y / side).floor() as i64,
            (p.2.z / side).floor() as i64,
            dir.x.round() as i64,
            dir.y.round() as i64,
            dir.z.round() as i64,
        ];
        best.entry(key)
            .and_modify(|b| {
                if better(p, &found[*b]).is_gt() {
                    *b = k;
                }
            })
            .or_insert(k);
    }
    let mut kept: Vec<usize> = best.into_values().collect();
    kept.sort_unstable();
    let mut per_view: Vec<Vec<usize>> = vec![Vec::new(); views.len()];
    for k in kept {
        per_view[found[k].0].push(k);
    }
    let mut kept: Vec<usize> = Vec::new();
    for mut ks in per_view {
        if ks.len() > MAX_VIEW_POINTS {
            ks.sort_by(|&x, &y| better(&found[y], &found[x]).then(x.cmp(&y)));
            ks.truncate(MAX_VIEW_POINTS);
        }
        kept.extend(ks);
    }
    kept.sort_unstable();
    kept.into_iter().map(|k| found[k]).collect()
}

/// Where keypoint `c` of `from` (undistorted at `c_u`, at `depth` along its ray) lies in `to`: its patch aligned into
/// `to`'s image from `start` (as detected there); undistorted pixels of `to`.
fn aligned_in(
    from: &KeypointView,
    c: usize,
    c_u: &Point2<f64>,
    depth: f64,
    to: &KeypointView,
    start: Point2<f64>,
) -> Option<Point2<f64>> {
    let template = cut_patch(&from.image()?, from.pixels[c])?;
    let xy = from.camera.intrinsics.to_normalized(c_u);
    let centre = from.cam_to_world.transform_point(&Point3::new(xy.x * depth, xy.y * depth, depth));
    let patch = WorldPatch::new(&template, centre, from.pixel_axes(), depth)?;
    let at = patch.find_in(
        &to.image()?,
        &to.cam_to_world.inverse(),
        &to.camera.intrinsics,
        start,
        &AlignConfig::default(),
    )?;
    Some(to.camera.undistort_pixel(&at))
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
    fn a_view_keeps_its_strongest_keypoints_from_the_whole_image() {
        let (rows, cols, dim) = (80, 64, 2);
        let view = |keypoints: Option<Vec<[f32; 3]>>| TriangulationView {
            cam_to_world: CamToWorld(Isometry3::identity()),
            camera: Camera::pinhole(Intrinsics { fx: 100.0, fy: 100.0, cx: 256.0, cy: 320.0 }),
            rows,
            cols,
            cell_scale: (1.0, 1.0),
            features: vec![0.5f32.sqrt(); rows * cols * dim],
            dim,
            keypoints,
        };
        // Without keypoints (all cells score 1): a cut to the most a view keeps spans every row.
        let all = KeypointView::from_view(&view(None));
        assert_eq!(all.pixels.len(), MAX_VIEW_KEYPOINTS);
        let lowest = all.pixels.iter().map(|p| p.y).fold(0.0, f64::max);
        assert!(lowest > 8.0 * (rows - 2) as f64, "the lowest kept cell is at y = {lowest}");
        // With keypoints: those below the score floor go, the strongest stay.
        let points: Vec<[f32; 3]> = (0..rows * cols)
            .map(|c| {
                [(8 * (c % cols)) as f32 + 2.5, (8 * (c / cols)) as f32 + 5.5, if c % 3 == 0 { 0.01 } else { 0.5 }]
            })
            .collect();
        let kept = KeypointView::from_view(&view(Some(points)));
        assert_eq!(kept.pixels.len(), 2 * rows * cols / 3);
        assert!(kept.scores.iter().all(|&s| s == 0.5));
        assert_eq!((kept.pixels[0].x, kept.pixels[0].y), (10.5, 5.5));
        assert_eq!(kept.features.len(), kept.pixels.len() * dim);
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
        let poses: Vec<CamToWorld> = views.iter().map(|v| v.cam_to_world).collect();
        assert!(
            view_pairs(&poses, Some(5.0), &cfg).iter().all(|&(a, b)| a < 3 && b < 3),
            "the side view has no neighbour"
        );
        let targets = depth_targets(&views, &cfg, &mut |_, _| {});
        // The same cells as keypoints: the map's points lie on the plane z = 5.
        let keypoints: Vec<KeypointView> = views
            .iter()
            .map(|v| KeypointView {
                cam_to_world: v.cam_to_world,
                camera: v.camera,
                pixels: (0..v.rows * v.cols).map(|c| v.cell_pixel(c)).collect(),
                features: v.features.clone(),
                dim: v.dim,
                scores: vec![1.0; v.rows * v.cols],
                cell_size: 8.0,
                gray: Vec::new(),
                gray_size: (0, 0),
            })
            .collect();
        let structure = structure_points(&keypoints, &cfg, 120, &mut |_, _| {});
        structure.check(32..=4096).unwrap();
        assert!(!structure.has_patches());
        assert_eq!(structure.image_height, Some(120));
        assert!(structure.len() > 300, "{} points", structure.len());
        assert!(structure.view_of_point.iter().all(|&v| v < 3), "the side view sees no point");
        let mut off: Vec<f32> = structure.points_n3.iter().map(|p| (p[2] - 5.0).abs() / 5.0).collect();
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

        // With the views' images, each match is aligned: the points lie on the plane to a
        // fraction of the cell-centre error, and carry their patches.
        let textured: Vec<KeypointView> = keypoints
            .into_iter()
            .map(|v| {
                let image = render_plane(&v.cam_to_world, &v.camera.intrinsics);
                v.with_gray(image, 160, 120)
            })
            .collect();
        let aligned = structure_points(&textured, &cfg, 120, &mut |_, _| {});
        aligned.check(32..=4096).unwrap();
        assert!(aligned.has_patches() && aligned.pixel_axes_v23.len() == 4);
        assert!(aligned.len() > 300, "{} points", aligned.len());
        let mut off_aligned: Vec<f32> = aligned.points_n3.iter().map(|p| (p[2] - 5.0).abs() / 5.0).collect();
        off_aligned.sort_by(|a, b| a.total_cmp(b));
        let (before, after) = (off[off.len() / 2], off_aligned[off_aligned.len() / 2]);
        assert!(after < before / 3.0, "structure depth error median {after}, unaligned {before}");
    }

    #[test]
    fn a_video_is_matched_across_baselines_and_stores_each_surface_once() {
        // 31 frames 0.1 apart facing the plane 5 away: neighbours' rays meet at about 1°.
        let line = |step: usize| -> Vec<TriangulationView> {
            (0..31).step_by(step).map(|k| plane_view(Vector3::new(-1.5 + 0.1 * k as f64, 0.0, 0.0))).collect()
        };
        let video = line(1);
        let cfg = TriangulationConfig::default();
        let poses: Vec<CamToWorld> = video.iter().map(|v| v.cam_to_world).collect();
        let pixels: Vec<Vec<Point2<f64>>> =
            video.iter().map(|v| (0..v.rows * v.cols).map(|c| v.cell_pixel(c)).collect()).collect();
        let side = |v: usize| (video[v].eye(&cfg), &pixels[v][..], &video[v].features[..]);
        let depth = scene_depth(&poses, side, 16, &cfg).expect("the pilot pairs triangulate");
        assert!((4.5..5.5).contains(&depth), "scene depth {depth}");
        // Each frame is matched with frames far enough apart to triangulate at 6° or more.
        let pairs = view_pairs(&poses, Some(depth), &cfg);
        assert!(pairs.iter().all(|&(a, b)| b - a >= 5), "{pairs:?}");
        assert!(pairs.len() >= 31 * 3, "{} pairs", pairs.len());
        // Without a depth, the nearest axes: the next frames, too close to triangulate.
        assert!(view_pairs(&poses, None, &cfg).iter().any(|&(a, b)| b - a == 1));

        let points = |views: &[TriangulationView]| {
            let keypoints: Vec<KeypointView> = views.iter().map(KeypointView::from_view).collect();
            structure_points(&keypoints, &cfg, 120, &mut |_, _| {})
        };
        let (dense, sparse) = (points(&video), points(&line(3)));
        dense.check(32..=4096).unwrap();
        let mut off: Vec<f32> = dense.points_n3.iter().map(|p| (p[2] - 5.0).abs() / 5.0).collect();
        off.sort_by(|a, b| a.total_cmp(b));
        assert!(off[off.len() / 2] < 0.03, "structure depth error median {}", off[off.len() / 2]);
        // Three times the frames of the same surface: not three times the points.
        assert!(sparse.len() > 300, "{} points", sparse.len());
        assert!(
            (dense.len() as f64) < 1.6 * sparse.len() as f64,
            "{} points, {} from every third frame",
            dense.len(),
            sparse.len()
        );
    }

    /// Grey levels of the plane z = 5 as a camera sees it (160 × 120): waves of 5 to 20 pixels.
    fn render_plane(pose: &CamToWorld, k: &Intrinsics) -> Vec<u8> {
        let o = pose.center();
        (0..160 * 120)
            .map(|i| {
                let (u, v) = ((i % 160) as f64 + 0.5, (i / 160) as f64 + 0.5);
                let d = pose.rotation() * Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0);
                let p = o + d * ((5.0 - o.z) / d.z);
                let waves = [(31.0, 17.0, 0.0), (-13.0, 41.0, 1.0), (52.0, -23.0, 2.0), (7.0, 19.0, 0.5)];
                let g = 128.0
                    + waves.iter().map(|&(a, b, ph)| 25.0 * (a * p.x / 2.0 + b * p.y / 2.0 + ph).sin()).sum::<f64>();
                g.round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }
}
