//! A second source of poses for the refinement (not in the reference): the mapping views whose
//! global descriptors are nearest the query's, and the pose its keypoints give when matched to
//! those views' points with no window at all.
//!
//! The refinement ([`crate::refine`]) only looks for a point near where the regressed pose
//! projects it. Where the scene coordinates place a query wrongly (repeated facades that the
//! head confuses, a place between distant mapping views), no window holds the right points; the
//! global descriptor that told the head the places apart still ranks the mapping views that see
//! the query's place, and their points, matched by feature alone, give a pose to refine from.

use crate::refine::{solve_pnp, strongest_keypoints, QueryKeypoints, RefineConfig};
use crate::Structure;
use glace_geometry::ransac::{RansacConfig, RansacResult};
use glace_geometry::{Camera, Intrinsics, WorldToCam};
use nalgebra::{Point2, Point3};

/// The mapping views most similar to the unit-normalised `descriptor` by cosine (at most `k`,
/// best first, the lower index on ties); none when the structure keeps no descriptors of that
/// width.
pub fn nearest_views(structure: &Structure, descriptor: &[f32], k: usize) -> Vec<usize> {
    let g = structure.global_dim();
    if g == 0 || descriptor.len() != g {
        return Vec::new();
    }
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    let q = norm(descriptor);
    let mut ranked: Vec<(f32, usize)> = structure
        .view_globals_vg
        .chunks_exact(g)
        .enumerate()
        .map(|(v, row)| (row.iter().zip(descriptor).map(|(a, b)| a * b).sum::<f32>() / (norm(row) * q), v))
        .filter(|(s, _)| s.is_finite())
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().take(k).map(|(_, v)| v).collect()
}

/// A start for the refinement: a pose and the map points it rests on (its inliers).
#[derive(Clone, Debug)]
pub struct Start {
    /// The pose.
    pub result: RansacResult,
    /// World points of its inlier matches.
    pub points: Vec<Point3<f64>>,
}

impl Start {
    /// Whether `pose` projects the points this start rests on within `window` pixels (median)
    /// of where the start does: a refinement from here would only find `pose` again.
    pub fn leads_to(&self, pose: &WorldToCam, intrinsics: &Intrinsics, window: f64) -> bool {
        let camera = Camera::pinhole(*intrinsics);
        let mut moved: Vec<f64> = self
            .points
            .iter()
            .map(|x| {
                match (camera.project(&self.result.pose.transform_point(x)), camera.project(&pose.transform_point(x))) {
                    (Some(a), Some(b)) => (a - b).norm(),
                    _ => f64::INFINITY,
                }
            })
            .collect();
        if moved.is_empty() {
            return false;
        }
        let mid = moved.len() / 2;
        *moved.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1 <= window
    }
}

/// The pose of the query's strongest keypoints matched (mutual nearest features, anywhere in
/// the image) to the points of `views`, by PnP-RANSAC at `cfg`'s threshold; `None` when fewer
/// than `cfg.min_inliers` agree.
pub fn pose_from_views(
    query: &QueryKeypoints,
    structure: &Structure,
    views: &[usize],
    ransac: &RansacConfig,
    cfg: &RefineConfig,
) -> Option<Start> {
    if views.is_empty() || query.features.len() != query.pixels.len() * structure.dim {
        return None;
    }
    let points = points_seen_by(structure, views, cfg);
    let dim = structure.dim;
    let point_features: Vec<f32> = points.iter().flat_map(|&p| structure.feature(p).iter().copied()).collect();
    let strongest = strongest_keypoints(query, cfg.wide_max_keypoints);
    let (pixels, features) = match &strongest {
        Some((p, f)) => (p.as_slice(), f.as_slice()),
        None => (query.pixels, query.features),
    };
    let found = crate::matching::mutual_nearest_all(features, &point_features, dim, cfg.min_similarity);
    tracing::debug!(
        "retrieval: {} keypoints, {} points of {views:?}, {} matches",
        pixels.len(),
        points.len(),
        found.len()
    );
    if found.len() < cfg.min_inliers {
        return None;
    }
    let px: Vec<[f64; 2]> = found.iter().map(|&(q, _)| [pixels[q].x, pixels[q].y]).collect();
    let pts: Vec<[f64; 3]> = found.iter().map(|&(_, k)| structure.point(points[k]).coords.into()).collect();
    let result = solve_pnp(&px, &pts, &query.intrinsics, ransac, cfg.threshold, cfg.min_inliers)?;
    let camera = Camera::pinhole(query.intrinsics);
    let points = px
        .iter()
        .zip(&pts)
        .map(|(u, x)| (Point2::new(u[0], u[1]), Point3::new(x[0], x[1], x[2])))
        .filter(|(u, x)| {
            camera.project(&result.pose.transform_point(x)).is_some_and(|p| (p - u).norm() <= cfg.threshold)
        })
        .map(|(_, x)| x)
        .collect();
    Some(Start { result, points })
}

/// Half the angle of the cone (degrees) a mapping view is taken to see: a 640 × 480 image's
/// corners at 525 px focal length lie 37° off its axis.
const VIEW_CONE_DEG: f64 = 37.0;

/// The points `views` see (those matched are of at least `cfg`'s support and score), the first
/// view's first, at most `cfg.wide_max_points`: within the cone of each view's optical axis
/// where the structure knows its axes, else the points triangulated from it. A video's points
/// are each kept in one view's name, so a view's own points are only a part of what it sees.
fn points_seen_by(structure: &Structure, views: &[usize], cfg: &RefineConfig) -> Vec<usize> {
    let usable = |p: usize| structure.support[p] >= cfg.min_support && structure.score[p] >= cfg.min_score;
    let cos_cone = VIEW_CONE_DEG.to_radians().cos();
    let mut taken = vec![false; structure.len()];
    let mut points = Vec::new();
    for &v in views.iter().filter(|&&v| v < structure.views()) {
        let axis = structure.pixel_axes_v23.get(v).map(|a| {
            let [x, y] = a.map(|a| nalgebra::Vector3::from(a).cast::<f64>());
            x.cross(&y).normalize()
        });
        let centre = structure.centre(v);
        for p in 0..structure.len() {
            if taken[p] || !usable(p) {
                continue;
            }
            let seen = match axis {
                Some(z) => {
                    let d = structure.point(p).coords - centre;
                    d.dot(&z) >= cos_cone * d.norm()
                }
                None => structure.view_of_point[p] as usize == v,
            };
            if seen {
                taken[p] = true;
                points.push(p);
                if points.len() >= cfg.wide_max_points {
                    return points;
                }
            }
        }
    }
    points
}
