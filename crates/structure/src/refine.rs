//! Refining a pose by matching the query's keypoints to the map's triangulated points (not in
//! the reference).
//!
//! Regressed scene coordinates are good enough to find a pose, but each is an interpolation of
//! the head between mapping views; where the views are far apart (photo collections) the pose
//! they give is off by degrees. The map of such a scene keeps the points triangulated across
//! its mapping views with their local features ([`Structure`]). Starting from the
//! regressed pose, the query's cells are matched to the points that pose says the query sees
//! (from the mapping views that see most of them, from a similar direction), only where the
//! point projects near the cell's keypoint; PnP-RANSAC on those matches gives the pose again,
//! and the matching is repeated in a narrower window around it. The result replaces the
//! regressed pose only when enough matches agree with it.

use crate::align::{AlignConfig, GrayImage, WorldPatch};
use crate::Structure;
use glace_geometry::ransac::{ransac_pnp, RansacConfig, RansacResult};
use glace_geometry::{Camera, Distortion, WorldToCam};
use nalgebra::{Point2, Point3, Vector3};
use rayon::prelude::*;

/// Parameters of the refinement. Windows and thresholds are in pixels of the image the query's
/// keypoints were detected in; the defaults are for an image at the network's resolution, and
/// [`RefineConfig::scaled`] carries them to another (keeping their angles).
#[derive(Clone, Debug)]
pub struct RefineConfig {
    /// Mapping views whose points are matched: those that see most of the points in the query's
    /// view (each surface point is kept in one view's name where the structure is bounded, so
    /// what a query sees is spread over more views than it overlaps).
    pub views: usize,
    /// A point is matched only when the query sees it within this angle (degrees) of the
    /// direction its mapping view saw it from.
    pub max_view_angle_deg: f64,
    /// Smallest cosine similarity of a match.
    pub min_similarity: f32,
    /// Per round, how far (pixels) a point may project from the keypoint it is matched with
    /// under the previous round's pose; one round per window.
    pub windows_px: Vec<f64>,
    /// RANSAC inlier threshold on the matches (pixels).
    pub threshold: f64,
    /// Inliers a round needs for its pose to be taken.
    pub min_inliers: usize,
    /// Points matched at most per query and round (the points of the best-seeing views first).
    pub max_points: usize,
    /// In a round whose window is wide (a sixteenth of the image or more), where each keypoint
    /// is compared with every candidate, the candidates are cut to this many.
    pub wide_max_points: usize,
    /// In such a round, only this many of the query's keypoints (the strongest) are matched: it
    /// only has to bring the pose within the next, narrower window.
    pub wide_max_keypoints: usize,
    /// Only points this many triangulations agree on are matched.
    pub min_support: u8,
    /// Only keypoints (the query's and the points') of at least this score are matched
    /// (XFeat's keypoint probability × reliability; the default is the one maps keep points of).
    pub min_score: f32,
    /// Where the map's points carry patches: after the last round, each matched point's patch
    /// is aligned into the query image around where the pose projects it, and the pose is
    /// solved again on the aligned matches with this inlier threshold (pixels as `threshold`);
    /// `None`: the keypoints as detected.
    pub aligned_threshold: Option<f64>,
    /// The mapping views nearest the query by global descriptor whose points give a second
    /// start beside the coarse pose ([`crate::retrieve`]); 0: none.
    pub retrieval_views: usize,
}

impl Default for RefineConfig {
    fn default() -> Self {
        RefineConfig {
            views: 16,
            max_view_angle_deg: 40.0,
            min_similarity: 0.5,
            windows_px: vec![96.0, 32.0, 12.0],
            threshold: 4.0,
            min_inliers: 24,
            max_points: 65536,
            wide_max_points: 8192,
            wide_max_keypoints: 4096,
            min_support: 1,
            min_score: Structure::MIN_SCORE,
            aligned_threshold: Some(1.5),
            retrieval_views: 3,
        }
    }
}

impl RefineConfig {
    /// The same refinement for keypoints detected in an image `factor` times the size of the one
    /// these windows and thresholds are for.
    pub fn scaled(self, factor: f64) -> RefineConfig {
        RefineConfig {
            windows_px: self.windows_px.iter().map(|w| w * factor).collect(),
            threshold: self.threshold * factor,
            aligned_threshold: self.aligned_threshold.map(|t| t * factor),
            ..self
        }
    }
}

/// What the refinement found.
#[derive(Clone, Debug)]
pub struct Refined {
    /// The last round's pose that had enough inliers.
    pub result: RansacResult,
    /// Matches of that round.
    pub matches: usize,
    /// Rounds whose pose was taken.
    pub rounds: usize,
    /// Matches aligned to the points' patches, when the pose was solved on them.
    pub aligned: Option<usize>,
}

/// The points `pose` says the query sees, from the views that see most of them: their indices
/// and projections.
fn visible_points(
    structure: &Structure,
    pose: &WorldToCam,
    camera: &Camera,
    size: (f64, f64),
    margin: f64,
    cfg: &RefineConfig,
) -> Vec<(usize, Point2<f64>)> {
    let centre = pose.inverse().center();
    let cos_max = cfg.max_view_angle_deg.to_radians().cos();
    let seen: Vec<Option<Point2<f64>>> = structure
        .points_n3
        .par_iter()
        .zip(structure.view_of_point.par_iter())
        .zip(structure.support.par_iter())
        .zip(structure.score.par_iter())
        .map(|(((x, &v), &support), &score)| {
            if support < cfg.min_support || score < cfg.min_score {
                return None;
            }
            let x = Point3::from(Vector3::from(*x).cast::<f64>());
            let from_view = x.coords - structure.centre(v as usize);
            let from_query = x.coords - centre;
            if from_view.normalize().dot(&from_query.normalize()) < cos_max {
                return None;
            }
            let uv = camera.project(&pose.transform_point(&x))?;
            (uv.x > -margin && uv.y > -margin && uv.x < size.0 + margin && uv.y < size.1 + margin).then_some(uv)
        })
        .collect();
    let mut per_view = vec![0usize; structure.views()];
    for (s, &v) in seen.iter().zip(&structure.view_of_point) {
        if s.is_some() {
            per_view[v as usize] += 1;
        }
    }
    let mut order: Vec<usize> = (0..per_view.len()).filter(|&v| per_view[v] > 0).collect();
    order.sort_by(|&a, &b| per_view[b].cmp(&per_view[a]).then(a.cmp(&b)));
    let mut rank = vec![usize::MAX; per_view.len()];
    for (r, &v) in order.iter().take(cfg.views).enumerate() {
        rank[v] = r;
    }
    let mut found: Vec<(usize, usize, Point2<f64>)> = seen
        .into_iter()
        .enumerate()
        .filter_map(|(p, uv)| Some((rank[structure.view_of_point[p] as usize], p, uv?)))
        .filter(|&(r, ..)| r != usize::MAX)
        .collect();
    found.sort_by_key(|&(r, p, _)| (r, p));
    found.truncate(cfg.max_points);
    found.into_iter().map(|(_, p, uv)| (p, uv)).collect()
}

/// A round's matching: the query's keypoints (undistorted pixels) and unit features, and the
/// structure's candidate points with their projections under the round's pose.
#[derive(Clone, Copy)]
struct Round<'a> {
    pixels: &'a [Point2<f64>],
    features: &'a [f32],
    structure: &'a Structure,
    candidates: &'a [(usize, Point2<f64>)],
}

/// Mutual nearest neighbours between query cells and candidate points, among the pairs whose
/// point projects within `window` of the cell's keypoint.
fn matches_within(round: Round, window: f64, min_similarity: f32) -> Vec<(usize, usize)> {
    let Round { pixels, features, structure, candidates } = round;
    let dim = structure.dim;
    let cand_features: Vec<f32> = candidates.iter().flat_map(|&(p, _)| structure.feature(p).iter().copied()).collect();
    let w2 = window * window;
    crate::matching::mutual_nearest(features, &cand_features, dim, min_similarity, |q, k| {
        (candidates[k].1 - pixels[q]).norm_squared() <= w2
    })
}

/// [`matches_within`] for a narrow window: candidates and keypoints bucketed in a grid of the
/// window's size, so each keypoint is compared only with the candidates near it.
fn matches_near(round: Round, window: f64, min_similarity: f32) -> Vec<(usize, usize)> {
    let Round { pixels, features, structure, candidates } = round;
    let dim = structure.dim;
    let cell = window.max(1.0);
    let key = |p: &Point2<f64>| ((p.x / cell).floor() as i64, (p.y / cell).floor() as i64);
    let bucket = |points: &mut dyn Iterator<Item = Point2<f64>>| {
        let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> = std::collections::HashMap::new();
        for (i, p) in points.enumerate() {
            grid.entry(key(&p)).or_default().push(i);
        }
        grid
    };
    let query_grid = bucket(&mut pixels.iter().copied());
    let cand_grid = bucket(&mut candidates.iter().map(|c| c.1));
    let w2 = window * window;
    let similarity =
        |q: usize, k: usize| -> f32 { dot(&features[q * dim..][..dim], structure.feature(candidates[k].0)) };
    // The best of the other side within the window; the lowest index on ties, as the dense
    // product's scan in order keeps.
    let best_near = |at: &Point2<f64>,
                     grid: &std::collections::HashMap<(i64, i64), Vec<usize>>,
                     place: &dyn Fn(usize) -> Point2<f64>,
                     sim: &dyn Fn(usize) -> f32| {
        let (cx, cy) = key(at);
        let mut best = (usize::MAX, f32::NEG_INFINITY);
        for dy in -1..=1 {
            for dx in -1..=1 {
                for &i in grid.get(&(cx + dx, cy + dy)).into_iter().flatten() {
                    if (place(i) - at).norm_squared() > w2 {
                        continue;
                    }
                    let s = sim(i);
                    if s > best.1 || (s == best.1 && i < best.0) {
                        best = (i, s);
                    }
                }
            }
        }
        best
    };
    let row_best: Vec<(usize, f32)> = pixels
        .par_iter()
        .enumerate()
        .map(|(q, p)| best_near(p, &cand_grid, &|k| candidates[k].1, &|k| similarity(q, k)))
        .collect();
    let col_best: Vec<usize> = candidates
        .par_iter()
        .enumerate()
        .map(|(k, c)| best_near(&c.1, &query_grid, &|q| pixels[q], &|q| similarity(q, k)).0)
        .collect();
    row_best
        .iter()
        .enumerate()
        .filter(|&(q, &(k, s))| k != usize::MAX && s >= min_similarity && col_best[k] == q)
        .map(|(q, &(k, _))| (q, k))
        .collect()
}

/// A query as the refinement sees it: its keypoints in one image (the query at the resolution
/// the structure's points were detected at, [`Structure::detection_height`]).
pub struct QueryKeypoints<'a> {
    /// Keypoints, undistorted pixels.
    pub pixels: &'a [Point2<f64>],
    /// Their unit features (`pixels × structure.dim`).
    pub features: &'a [f32],
    /// Their scores (XFeat's keypoint probability × reliability); empty: all alike.
    pub scores: &'a [f32],
    /// Pinhole intrinsics of the (undistorted) pixels.
    pub intrinsics: glace_geometry::Intrinsics,
    /// Image width and height in those pixels.
    pub size: (f64, f64),
    /// The image in grey levels, as taken (before undistortion), for aligning the points'
    /// patches; `None`: no alignment.
    pub gray: Option<GrayImage<'a>>,
    /// The image's lens distortion (its pixels against the undistorted `pixels`).
    pub distortion: Option<Distortion>,
}

/// `a · b` in eight lanes, so that the compiler keeps it in vector registers (a plain sum of f32
/// products must be added in order, one at a time).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The query's `n` strongest keypoints and their features, for wide rounds (in their own order,
/// so ties keep the lowest index); `None` when it has no more than `n`.
pub(crate) fn strongest_keypoints(query: &QueryKeypoints, n: usize) -> Option<(Vec<Point2<f64>>, Vec<f32>)> {
    let (pixels, features) = (query.pixels, query.features);
    let dim = features.len() / pixels.len().max(1);
    (pixels.len() > n).then(|| {
        let score = |i: usize| query.scores.get(i).copied().unwrap_or(1.0);
        let mut keep: Vec<usize> = (0..pixels.len()).collect();
        keep.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
        keep.truncate(n);
        keep.sort_unstable();
        (
            keep.iter().map(|&i| pixels[i]).collect(),
            keep.iter().flat_map(|&i| features[i * dim..][..dim].iter().copied()).collect(),
        )
    })
}

/// Refines `coarse`, the pose found from a query's scene coordinates, against the map's
/// structure (see the module's documentation), matching the keypoints of `query`. `ransac`
/// gives the solver's hypotheses, seed and refinement; `cfg` its threshold and windows, in
/// `query`'s pixels. `None` when no round found enough inliers.
pub fn refine(
    query: &QueryKeypoints,
    structure: &Structure,
    coarse: &WorldToCam,
    ransac: &RansacConfig,
    cfg: &RefineConfig,
) -> Option<Refined> {
    if structure.is_empty() || query.features.len() != query.pixels.len() * structure.dim {
        return None;
    }
    let (pixels, features) = (query.pixels, query.features);
    let strongest = strongest_keypoints(query, cfg.wide_max_keypoints);
    let pinhole = Camera::pinhole(query.intrinsics);
    let mut pose = *coarse;
    let mut best: Option<Refined> = None;
    // The last taken round's matches and candidates.
    type Matched = (Vec<(usize, usize)>, Vec<(usize, Point2<f64>)>);
    let mut last: Option<Matched> = None;
    for &window in &cfg.windows_px {
        let started = std::time::Instant::now();
        let mut candidates = visible_points(structure, &pose, &pinhole, query.size, window, cfg);
        let wide = std::f64::consts::PI * window * window >= query.size.0 * query.size.1 / 16.0;
        if wide {
            candidates.truncate(cfg.wide_max_points);
        }
        let (pixels, features) = match (&strongest, wide) {
            (Some((p, f)), true) => (p.as_slice(), f.as_slice()),
            _ => (pixels, features),
        };
        tracing::debug!(
            "structure window {window} px: {} query keypoints, candidates found in {:.1} ms",
            pixels.len(),
            1000.0 * started.elapsed().as_secs_f64()
        );
        let round = Round { pixels, features, structure, candidates: &candidates };
        let found = if wide {
            matches_within(round, window, cfg.min_similarity)
        } else {
            matches_near(round, window, cfg.min_similarity)
        };
        tracing::debug!(
            "structure window {window} px: {} candidate points, {} matches in {:.1} ms",
            candidates.len(),
            found.len(),
            1000.0 * started.elapsed().as_secs_f64()
        );
        if found.len() < cfg.min_inliers {
            break;
        }
        let px: Vec<[f64; 2]> = found.iter().map(|&(q, _)| [pixels[q].x, pixels[q].y]).collect();
        let pts: Vec<[f64; 3]> = found.iter().map(|&(_, k)| structure.point(candidates[k].0).coords.into()).collect();
        let Some(result) = solve_pnp(&px, &pts, &query.intrinsics, ransac, cfg.threshold, cfg.min_inliers) else {
            break;
        };
        tracing::debug!(
            "structure window {window} px: {} inliers after {:.1} ms",
            result.inliers,
            1000.0 * started.elapsed().as_secs_f64()
        );
        pose = result.pose;
        let rounds = best.as_ref().map_or(0, |b| b.rounds) + 1;
        best = Some(Refined { result, matches: found.len(), rounds, aligned: None });
        last = Some((found, candidates));
    }
    let started = std::time::Instant::now();
    if let (Some(b), Some((found, candidates)), Some(t)) = (best.as_mut(), last, cfg.aligned_threshold) {
        if let Some((result, aligned)) = aligned_pose(query, structure, &pose, &found, &candidates, ransac, cfg, t) {
            b.result = result;
            b.aligned = Some(aligned);
        }
        tracing::debug!("structure: aligned and solved in {:.1} ms", 1000.0 * started.elapsed().as_secs_f64());
    }
    best
}

/// The pose solved again on `found` (query cell, candidate) with each point's keypoint found
/// in the query by aligning its patch there, from where `pose` projects it: the pose and the
/// aligned matches, when enough align and agree.
#[allow(clippy::too_many_arguments)]
fn aligned_pose(
    query: &QueryKeypoints,
    structure: &Structure,
    pose: &WorldToCam,
    found: &[(usize, usize)],
    candidates: &[(usize, Point2<f64>)],
    ransac: &RansacConfig,
    cfg: &RefineConfig,
    threshold: f64,
) -> Option<(RansacResult, usize)> {
    let gray = query.gray?;
    if !structure.has_patches() {
        return None;
    }
    let camera = Camera { intrinsics: query.intrinsics, distortion: query.distortion };
    let (px, pts): (Vec<[f64; 2]>, Vec<[f64; 3]>) = found
        .par_iter()
        .filter_map(|&(_, k)| {
            let p = candidates[k].0;
            let x = structure.point(p);
            let v = structure.view_of_point[p] as usize;
            let axes = structure.pixel_axes_v23[v].map(|a| Vector3::from(a).cast::<f64>());
            let depth = (x.coords - structure.centre(v)).dot(&axes[0].cross(&axes[1]).normalize());
            let patch = WorldPatch::new(&structure.patches_n[p], x, axes, depth)?;
            let start = camera.project(&pose.transform_point(&x))?;
            let at = patch.find_in(&gray, pose, &query.intrinsics, start, &AlignConfig::default())?;
            let u = camera.undistort_pixel(&at);
            Some(([u.x, u.y], [x.x, x.y, x.z]))
        })
        .unzip();
    tracing::debug!("structure: {} of {} matches aligned to the points' patches", px.len(), found.len());
    if px.len() < cfg.min_inliers {
        return None;
    }
    let result = solve_pnp(&px, &pts, &query.intrinsics, ransac, threshold, cfg.min_inliers)?;
    Some((result, px.len()))
}

/// PnP-RANSAC on the matches `px` ↔ `pts` with `ransac`'s hypotheses and seed at `threshold`
/// pixels: the pose when at least `min_inliers` agree with it and it is finite.
pub(crate) fn solve_pnp(
    px: &[[f64; 2]],
    pts: &[[f64; 3]],
    intrinsics: &glace_geometry::Intrinsics,
    ransac: &RansacConfig,
    threshold: f64,
    min_inliers: usize,
) -> Option<RansacResult> {
    let solver = RansacConfig { threshold, ..ransac.clone() };
    let result = ransac_pnp(px, pts, intrinsics, &solver).ok()?;
    (result.inliers >= min_inliers && result.pose.to_matrix().iter().all(|v| v.is_finite())).then_some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glace_geometry::Intrinsics;
    use nalgebra::{Isometry3, Translation3, UnitQuaternion};

    /// Unit features as a seeded stream of Gaussians (distinct enough in 16-d).
    fn features(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = glace_rng::SplitMix64::from_state(seed);
        let mut f: Vec<f32> = (0..n * dim).map(|_| s.normal() as f32).collect();
        unit_rows(&mut f, dim);
        f
    }

    fn unit_rows(f: &mut [f32], dim: usize) {
        for row in f.chunks_exact_mut(dim) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= n);
        }
    }

    /// Points on the plane z = 4 seen by two mapping views; a query between them.
    fn scene() -> (Structure, WorldToCam, Intrinsics, Vec<Point2<f64>>, Vec<f32>) {
        let dim = 16;
        let k = Intrinsics { fx: 300.0, fy: 300.0, cx: 160.0, cy: 120.0 };
        let mut s = glace_rng::SplitMix64::from_state(7);
        let points: Vec<Point3<f64>> =
            (0..600).map(|_| Point3::new(4.0 * s.f64() - 2.0, 3.0 * s.f64() - 1.5, 4.0)).collect();
        let feats = features(points.len(), dim, 11);
        let structure = Structure {
            points_n3: points.iter().map(|p| [p.x as f32, p.y as f32, p.z as f32]).collect(),
            features_nd: feats.clone(),
            dim,
            view_of_point: (0..points.len() as u32).map(|i| i % 2).collect(),
            support: vec![2; points.len()],
            score: vec![1.0; points.len()],
            centres_v3: vec![[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
            image_height: Some(240),
            patches_n: Vec::new(),
            pixel_axes_v23: Vec::new(),
            view_globals_vg: Vec::new(),
        };
        let truth = WorldToCam(Isometry3::from_parts(
            Translation3::new(0.1, -0.05, 0.2),
            UnitQuaternion::from_euler_angles(0.02, -0.03, 0.01),
        ));
        // The query sees every other point with a slightly different feature, and noise cells.
        let cam = Camera::pinhole(k);
        let (mut pixels, mut qf) = (Vec::new(), Vec::new());
        let noise = features(points.len(), dim, 13);
        for (i, p) in points.iter().enumerate().step_by(2) {
            let Some(uv) = cam.project(&truth.transform_point(p)) else { continue };
            pixels.push(Point2::new(uv.x + 0.3 * s.normal(), uv.y + 0.3 * s.normal()));
            let mut f: Vec<f32> =
                feats[i * dim..][..dim].iter().zip(&noise[i * dim..][..dim]).map(|(a, b)| a + 0.3 * b).collect();
            unit_rows(&mut f, dim);
            qf.extend(f);
        }
        for _ in 0..200 {
            pixels.push(Point2::new(320.0 * s.f64(), 240.0 * s.f64()));
        }
        qf.extend(features(200, dim, 17));
        (structure, truth, k, pixels, qf)
    }

    /// The scene's 320 × 240 query without an image (no alignment).
    fn query_of<'a>(pixels: &'a [Point2<f64>], features: &'a [f32], k: Intrinsics) -> QueryKeypoints<'a> {
        QueryKeypoints {
            pixels,
            features,
            scores: &[],
            intrinsics: k,
            size: (320.0, 240.0),
            gray: None,
            distortion: None,
        }
    }

    fn rotation_deg(a: &WorldToCam, b: &WorldToCam) -> f64 {
        (a.0.rotation.inverse() * b.0.rotation).angle().to_degrees()
    }

    #[test]
    fn a_pose_off_by_degrees_is_refined_to_the_points() {
        let (structure, truth, k, pixels, features) = scene();
        let query = query_of(&pixels, &features, k);
        // Off by 2° and 5 cm, as regressed coordinates leave a photo collection's query.
        let coarse = WorldToCam(
            Isometry3::from_parts(
                Translation3::new(0.05, 0.0, 0.0),
                UnitQuaternion::from_euler_angles(0.0, 0.035, 0.0),
            ) * truth.0,
        );
        assert!(rotation_deg(&coarse, &truth) > 1.9);
        let refined =
            refine(&query, &structure, &coarse, &RansacConfig::default(), &RefineConfig::default()).expect("refined");
        let (r, t) = (
            rotation_deg(&refined.result.pose, &truth),
            (refined.result.pose.0.translation.vector - truth.0.translation.vector).norm(),
        );
        assert!(r < 0.1 && t < 0.01, "refined pose off by {r}° and {t}");
        assert_eq!(refined.rounds, 3);
        assert!(refined.result.inliers >= 200, "{} inliers", refined.result.inliers);
    }

    #[test]
    fn a_pose_far_off_is_found_again_from_the_views_nearest_by_descriptor() {
        let (mut structure, truth, k, pixels, features) = scene();
        let query = query_of(&pixels, &features, k);
        // Three views' descriptors; the query's is nearest the third, then the first (whose
        // points it sees).
        structure.centres_v3.push([9.0, 9.0, 0.0]);
        structure.view_globals_vg = vec![0.6, 0.8, 0.0, 1.0, 0.0, 0.0, 0.0, 0.8, 0.6];
        structure.check(32..=4096).unwrap();
        let descriptor = [0.1, 0.5, 0.5];
        assert_eq!(crate::retrieve::nearest_views(&structure, &descriptor, 2), vec![2, 0]);
        assert!(crate::retrieve::nearest_views(&structure, &[1.0, 0.0], 2).is_empty(), "another width");
        // A coarse pose 1 m and 30° off: no window of the refinement holds the right points.
        let far = WorldToCam(
            Isometry3::from_parts(Translation3::new(1.0, 0.0, 0.0), UnitQuaternion::from_euler_angles(0.0, 0.5, 0.0))
                * truth.0,
        );
        let cfg = RefineConfig::default();
        let ransac = RansacConfig::default();
        assert!(
            refine(&query, &structure, &far, &ransac, &cfg).is_none_or(|r| rotation_deg(&r.result.pose, &truth) > 1.0)
        );
        // The points of the nearest views, matched anywhere in the image, give a start to refine.
        assert!(
            crate::retrieve::pose_from_views(&query, &structure, &[2], &ransac, &cfg).is_none(),
            "view 2 has no points"
        );
        let start = crate::retrieve::pose_from_views(&query, &structure, &[2, 0], &ransac, &cfg).expect("a start");
        let refined = refine(&query, &structure, &start.result.pose, &ransac, &cfg).expect("refined");
        assert!(start.leads_to(&refined.result.pose, &k, 32.0) && !start.leads_to(&far, &k, 32.0));
        let t = (refined.result.pose.0.translation.vector - truth.0.translation.vector).norm();
        assert!(rotation_deg(&refined.result.pose, &truth) < 0.1 && t < 0.01, "off by {t}");
    }

    /// Grey levels of the plane z = 4 at (x, y): waves of 5 to 20 pixels at the views' scale,
    /// in several directions, so that no patch repeats nearby.
    fn texture(x: f64, y: f64) -> f64 {
        let waves = [(31.0, 17.0, 0.0), (-13.0, 41.0, 1.0), (52.0, -23.0, 2.0), (7.0, 19.0, 0.5), (23.0, 29.0, 4.0)];
        128.0 + waves.iter().map(|&(a, b, p)| 22.0 * (a * x + b * y + p).sin()).sum::<f64>()
    }

    /// What a camera at `pose` with `k` sees of the textured plane, 320 × 240 grey levels.
    fn render(pose: &WorldToCam, k: &Intrinsics) -> Vec<u8> {
        let cam_to_world = pose.inverse();
        let o = cam_to_world.center();
        (0..320 * 240)
            .map(|i| {
                let (u, v) = ((i % 320) as f64 + 0.5, (i / 320) as f64 + 0.5);
                let d = cam_to_world.rotation() * Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0);
                let p = o + d * ((4.0 - o.z) / d.z);
                texture(p.x, p.y).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    #[test]
    fn keypoints_aligned_to_the_points_patches_pin_the_pose_finer_than_detected() {
        let (mut structure, truth, k, _, _) = scene();
        // The mapping views (at x = ∓0.5, looking along z) give each point its patch.
        let views: Vec<WorldToCam> =
            [-0.5, 0.5].iter().map(|&x| WorldToCam(Isometry3::translation(-x, 0.0, 0.0))).collect();
        let images: Vec<Vec<u8>> = views.iter().map(|v| render(v, &k)).collect();
        let cam = Camera::pinhole(k);
        for p in 0..structure.len() {
            let v = structure.view_of_point[p] as usize;
            let uv = cam.project(&views[v].transform_point(&structure.point(p)));
            let image = GrayImage { pixels: &images[v], width: 320, height: 240 };
            let patch = uv.and_then(|uv| crate::align::cut_patch(&image, uv)).unwrap_or([0; Structure::PATCH_LEN]);
            structure.patches_n.push(patch);
        }
        structure.pixel_axes_v23 = vec![[[1.0 / 300.0, 0.0, 0.0], [0.0, 1.0 / 300.0, 0.0]]; 2];
        structure.check(32..=4096).unwrap();
        // The query detects the points it sees two pixels off, as XFeat's coarse cells do.
        let mut s = glace_rng::SplitMix64::from_state(3);
        let (mut pixels, mut features) = (Vec::new(), Vec::new());
        for p in (0..structure.len()).step_by(2) {
            let Some(uv) = cam.project(&truth.transform_point(&structure.point(p))) else {
                continue;
            };
            if uv.x < 8.0 || uv.y < 8.0 || uv.x > 312.0 || uv.y > 232.0 {
                continue;
            }
            pixels.push(Point2::new(uv.x + 1.5 * s.normal(), uv.y + 1.5 * s.normal()));
            features.extend_from_slice(structure.feature(p));
        }
        let gray = render(&truth, &k);
        let coarse = WorldToCam(Isometry3::translation(0.02, 0.0, 0.0) * truth.0);
        let error = |query: &QueryKeypoints| {
            let r = refine(query, &structure, &coarse, &RansacConfig::default(), &RefineConfig::default())
                .expect("refined");
            let t = (r.result.pose.inverse().center() - truth.inverse().center()).norm();
            (rotation_deg(&r.result.pose, &truth), t, r.aligned)
        };
        let mut query = query_of(&pixels, &features, k);
        let (r_detected, t_detected, none) = error(&query);
        assert_eq!(none, None);
        query.gray = Some(GrayImage { pixels: &gray, width: 320, height: 240 });
        let (r_aligned, t_aligned, aligned) = error(&query);
        let aligned = aligned.expect("aligned to the patches");
        assert!(aligned > pixels.len() / 2, "{aligned} of {} aligned", pixels.len());
        assert!(
            r_aligned < r_detected / 3.0 && t_aligned < t_detected / 3.0,
            "aligned {r_aligned}° {t_aligned}, detected {r_detected}° {t_detected}"
        );
        // A map without patches is refined as detected.
        let bare = Structure { patches_n: Vec::new(), pixel_axes_v23: Vec::new(), ..structure.clone() };
        let r = refine(&query, &bare, &coarse, &RansacConfig::default(), &RefineConfig::default()).unwrap();
        assert_eq!(r.aligned, None);
    }

    #[test]
    fn the_grid_finds_the_matches_the_dense_product_finds() {
        let (structure, truth, k, pixels, features) = scene();
        let cam = Camera::pinhole(k);
        let candidates: Vec<(usize, Point2<f64>)> = (0..structure.len())
            .filter_map(|p| {
                let uv = cam.project(&truth.transform_point(&structure.point(p)))?;
                Some((p, uv))
            })
            .collect();
        for window in [4.0, 12.0, 40.0] {
            let round = Round { pixels: &pixels, features: &features, structure: &structure, candidates: &candidates };
            let (dense, near) = (matches_within(round, window, 0.3), matches_near(round, window, 0.3));
            assert!(dense.len() > 100, "{window} px: {} matches", dense.len());
            assert_eq!(dense, near, "{window} px");
        }
    }

    #[test]
    fn features_that_match_nothing_leave_the_pose_alone() {
        let (structure, truth, k, pixels, _) = scene();
        let unrelated = features(pixels.len(), structure.dim, 99);
        let query = query_of(&pixels, &unrelated, k);
        let cfg = RefineConfig { min_similarity: 0.8, ..Default::default() };
        assert!(refine(&query, &structure, &truth, &RansacConfig::default(), &cfg).is_none());
        // An empty structure, or features of another width, are no structure.
        let query = query_of(&pixels, &unrelated[..16], k);
        assert!(refine(&query, &structure, &truth, &RansacConfig::default(), &cfg).is_none());
        let empty = Structure { dim: structure.dim, ..Default::default() };
        assert!(refine(&query, &empty, &truth, &RansacConfig::default(), &cfg).is_none());
    }
}
