//! One query, end to end and in memory: scene coordinates predicted in each orientation the map
//! asks for, PnP-RANSAC on them, the evidence the pose rests on, and the pose refined against
//! the map's structure where it has one. The image arrives decoded; nothing here reads files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use glace_data::Calibration;
use glace_geometry::ransac::{RansacConfig, RansacResult};
use glace_geometry::{Camera, Distortion, WorldToCam};
use glace_nn::linalg::Matmul;
use glace_nn::{GlaceMap, LocalEncoder, R2Former};
use glace_structure::refine::{refine, QueryKeypoints, RefineConfig, Refined};
use glace_structure::retrieve::{nearest_views, pose_from_views, Start};
use glace_structure::GrayImage;
use image::RgbImage;
use nalgebra::Point2;
use serde::Serialize;

use crate::pipeline::{encode_keypoints, predict, solve, Encoders, KeypointImage, PoseFailure, Prediction, StageTimes};
use crate::LocalizeError;

/// What a pose from the scene coordinates rests on: the cells whose predicted points agree with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Cells the network predicted a point for.
    pub cells: usize,
    /// Cells whose point reprojects within the RANSAC threshold under the pose.
    pub inliers: usize,
    /// `inliers / cells`.
    pub inlier_ratio: f64,
    /// Share of the image the inliers span: the area between the 5th and 95th percentiles of
    /// their positions along each axis, over the image's.
    pub spread: f64,
}

impl Evidence {
    /// The evidence for `cam_from_world` among a prediction's cells.
    pub fn of(
        prediction: &Prediction,
        cam_from_world: &WorldToCam,
        distortion: Option<Distortion>,
        threshold: f64,
    ) -> Evidence {
        let f = &prediction.encoded.features;
        let errors = prediction.reprojection_errors(&cam_from_world.inverse(), distortion);
        let (mut us, mut vs) = (Vec::new(), Vec::new());
        for (cell, e) in errors.iter().enumerate() {
            if *e < threshold {
                let (u, v) = prediction.cell_pixel(cell / f.width, cell % f.width);
                us.push(u);
                vs.push(v);
            }
        }
        let span = |mut x: Vec<f64>, extent: f64| {
            if x.len() < 2 {
                return 0.0;
            }
            x.sort_by(f64::total_cmp);
            let at = |q: f64| x[((x.len() - 1) as f64 * q).round() as usize];
            ((at(0.95) - at(0.05)) / extent).clamp(0.0, 1.0)
        };
        let (w, h) = (prediction.image.width as f64, prediction.image.height as f64);
        let inliers = us.len();
        let cells = errors.len();
        Evidence {
            cells,
            inliers,
            inlier_ratio: inliers as f64 / cells.max(1) as f64,
            spread: span(us, w) * span(vs, h),
        }
    }
}

/// When a pose from the scene coordinates counts as found: enough cells agree with it, they are
/// a fair share of the image's cells, and they spread over it. A pose refined against the map's
/// points is judged by the refinement's own test (enough matched points within its threshold).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvidenceRule {
    /// Fewest inlier cells.
    pub min_inliers: usize,
    /// Smallest share of the cells that are inliers.
    pub min_inlier_ratio: f64,
    /// Smallest [`Evidence::spread`].
    pub min_spread: f64,
}

impl Default for EvidenceRule {
    /// Measured on the shared real sets (docs/experiments.md): their test frames' poses rest on
    /// 10–92 % of the cells (150–4400), one-colour, noise and other scenes' images on 0.8–4 %.
    fn default() -> Self {
        EvidenceRule { min_inliers: 20, min_inlier_ratio: 0.05, min_spread: 0.02 }
    }
}

impl EvidenceRule {
    /// Accepts every pose RANSAC returns, as the reference does.
    pub fn none() -> Self {
        EvidenceRule { min_inliers: 0, min_inlier_ratio: 0.0, min_spread: 0.0 }
    }

    /// Why `e` is not enough, if it is not.
    pub fn judge(&self, e: &Evidence) -> Option<String> {
        if e.inliers < self.min_inliers {
            return Some(format!(
                "too little evidence: {} inlier cells, fewer than the {} needed",
                e.inliers, self.min_inliers
            ));
        }
        if e.inlier_ratio < self.min_inlier_ratio {
            return Some(format!(
                "too little evidence: {} inlier cells are {:.1} % of {}, less than the {:.1} % needed",
                e.inliers,
                100.0 * e.inlier_ratio,
                e.cells,
                100.0 * self.min_inlier_ratio
            ));
        }
        if e.spread < self.min_spread {
            return Some(format!(
                "too little evidence: the inliers span {:.1} % of the image, less than the {:.1} % needed",
                100.0 * e.spread,
                100.0 * self.min_spread
            ));
        }
        None
    }

    /// The field that is out of range and why, if one is.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (name, v) in [("min_inlier_ratio", self.min_inlier_ratio), ("min_spread", self.min_spread)] {
            if !(0.0..=1.0).contains(&v) {
                return Err((name, format!("{v}: expected 0 to 1")));
            }
        }
        Ok(())
    }
}

/// A pose that was found, with what it rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The camera's pose: world points into camera coordinates.
    pub cam_from_world: WorldToCam,
    /// Inliers of the final solve: cells, or matches to the map's points when `refined`.
    pub inliers: usize,
    /// The pose was refined against the map's triangulated points.
    pub refined: bool,
    /// The refinement started from the points of the mapping views nearest by global
    /// descriptor: the scene coordinates' pose found fewer inliers among the points, or none.
    pub retrieved: bool,
    /// What the scene coordinates' pose (before any refinement) rested on; where RANSAC found
    /// none on them and the pose was `retrieved`, how they agree with that pose.
    pub evidence: Evidence,
}

/// Why no pose was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// In words.
    pub reason: String,
    /// What the scene coordinates' pose rested on, when RANSAC found one (and the evidence rule
    /// refused it).
    pub evidence: Option<Evidence>,
}

/// The outcome of one query: a pose with its evidence, or a failure with its reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A pose.
    Found(Found),
    /// No pose.
    Failed(Failure),
}

impl Outcome {
    /// The pose, when one was found.
    pub fn found(&self) -> Option<&Found> {
        match self {
            Outcome::Found(f) => Some(f),
            Outcome::Failed(_) => None,
        }
    }
    /// The scene coordinates' evidence, when RANSAC found a pose.
    pub fn evidence(&self) -> Option<&Evidence> {
        match self {
            Outcome::Found(f) => Some(&f.evidence),
            Outcome::Failed(f) => f.evidence.as_ref(),
        }
    }
}

/// A localized query: the outcome, the prediction it came from, and the seconds per stage.
pub struct Answer {
    /// Pose or failure.
    pub outcome: Outcome,
    /// The scene coordinates of the orientation that won.
    pub prediction: Prediction,
    /// Seconds per stage.
    pub times: StageTimes,
}

/// How a pipeline refines poses against its map's structure.
struct Refinement {
    /// Windows and thresholds in the pixels of the image the keypoints are detected in.
    cfg: RefineConfig,
    /// The structure's own resolution, where it is not the network's: queries are encoded once
    /// more at it.
    image_height: Option<u32>,
}

/// One query's per-call inputs besides the image.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The image's calibration, for the image as given.
    pub calibration: &'a Calibration,
    /// Its lens distortion.
    pub distortion: Option<Distortion>,
    /// Its global descriptor, for maps that take it from outside.
    pub descriptor: Option<&'a [f32]>,
    /// RANSAC options.
    pub ransac: &'a RansacConfig,
    /// Raised: the query stops between stages and inside RANSAC ([`LocalizeError::Cancelled`]).
    pub cancel: Option<&'a Arc<AtomicBool>>,
}

/// A map with the networks it needs, ready to localize images in memory: prediction in each
/// orientation, RANSAC, evidence, refinement against the structure. Options are validated by the
/// caller (`glace::Localizer`).
pub struct QueryPipeline {
    map: Arc<GlaceMap>,
    local: LocalEncoder,
    r2former: Option<R2Former>,
    matmul: Matmul,
    image_height: u32,
    turns: Vec<u8>,
    refinement: Option<Refinement>,
    evidence: EvidenceRule,
}

/// What a [`QueryPipeline`] is built from.
pub struct PipelineParts {
    /// The map.
    pub map: Arc<GlaceMap>,
    /// Its local encoder.
    pub local: LocalEncoder,
    /// R2Former, for maps that take its descriptors and have it loaded.
    pub r2former: Option<R2Former>,
    /// How the networks' products are computed.
    pub matmul: Matmul,
    /// Shorter image side the networks see.
    pub image_height: u32,
    /// Quarter turns (clockwise) each query is tried in; the pose with the most inliers wins.
    pub turns: Vec<u8>,
    /// Refine poses against the map's structure, where it has one.
    pub refine: bool,
    /// When an unrefined pose counts as found.
    pub evidence: EvidenceRule,
}

impl QueryPipeline {
    /// The pipeline; the refinement's windows are carried to the structure's own resolution.
    pub fn new(parts: PipelineParts) -> QueryPipeline {
        let PipelineParts { map, local, r2former, matmul, image_height, turns, refine, evidence } = parts;
        let refinement = map.structure.as_ref().filter(|_| refine).map(|s| {
            let own = s.image_height.filter(|&h| h != image_height);
            let scale = own.map_or(1.0, |h| h as f64 / image_height as f64);
            Refinement { cfg: RefineConfig::default().scaled(scale), image_height: own }
        });
        QueryPipeline { map, local, r2former, matmul, image_height, turns, refinement, evidence }
    }

    /// The map.
    pub fn map(&self) -> &Arc<GlaceMap> {
        &self.map
    }
    /// The local encoder.
    pub fn local_encoder(&self) -> &LocalEncoder {
        &self.local
    }
    /// R2Former, when loaded.
    pub fn r2former(&self) -> Option<&R2Former> {
        self.r2former.as_ref()
    }
    /// How the networks' products are computed.
    pub fn matmul(&self) -> Matmul {
        self.matmul
    }
    /// Shorter image side the networks see.
    pub fn image_height(&self) -> u32 {
        self.image_height
    }
    /// The quarter turns each query is tried in.
    pub fn turns(&self) -> &[u8] {
        &self.turns
    }
    /// Every shorter image side a query is encoded at: the network's, and the structure's own
    /// where the refinement runs at it.
    pub fn encode_heights(&self) -> Vec<u32> {
        std::iter::once(self.image_height).chain(self.refinement.as_ref().and_then(|r| r.image_height)).collect()
    }

    /// Localizes `rgb` (see the module's documentation).
    pub fn run(&self, rgb: &RgbImage, request: &Request) -> Result<Answer, LocalizeError> {
        let Request { calibration, distortion, descriptor, ransac, cancel } = *request;
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let check = || if cancelled() { Err(LocalizeError::Cancelled) } else { Ok(()) };
        let with_cancel;
        let ransac = match cancel {
            Some(c) => {
                with_cancel = RansacConfig { cancel: Some(c.clone()), ..ransac.clone() };
                &with_cancel
            }
            None => ransac,
        };
        let mut times = StageTimes::default();
        let encoders = Encoders {
            local: &self.local,
            r2former: self.r2former.as_ref(),
            matmul: self.matmul,
            keypoints: self.refinement.as_ref().is_some_and(|r| r.image_height.is_none()),
        };
        // Each orientation is a full pass; the pose with the most inliers wins (the first on ties).
        let inliers = |r: &Result<RansacResult, PoseFailure>| r.as_ref().map_or(-1, |r| r.inliers as i64);
        let mut best: Option<(Prediction, Result<RansacResult, PoseFailure>)> = None;
        for &turns in &self.turns {
            check()?;
            let prediction =
                predict(&self.map, &encoders, rgb, calibration, descriptor, self.image_height, turns, &mut times)?;
            let t = Instant::now();
            let result = solve(&prediction, distortion, ransac);
            times.ransac_s += t.elapsed().as_secs_f64();
            // Each turn's evidence, for the debug log only.
            if let (true, Ok(r)) = (tracing::enabled!(tracing::Level::DEBUG), &result) {
                let e = Evidence::of(&prediction, &r.pose, distortion, ransac.threshold);
                tracing::debug!(
                    "turn {turns}: {} inliers, {:.1} % of the cells, spread {:.2}",
                    e.inliers,
                    100.0 * e.inlier_ratio,
                    e.spread
                );
            }
            if best.as_ref().is_none_or(|(_, b)| inliers(&result) > inliers(b)) {
                best = Some((prediction, result));
            }
        }
        let (prediction, result) = best.expect("at least one orientation");
        check()?;
        let evidence = result.as_ref().ok().map(|c| Evidence::of(&prediction, &c.pose, distortion, ransac.threshold));
        let mut refined: Option<(Refined, bool)> = None;
        let structure = self.map.structure.as_ref().filter(|s| s.dim == self.local.dim());
        if let (Some(r), Some(structure)) = (&self.refinement, structure) {
            // At the structure's own resolution, the query is encoded once more, in the turn
            // that won.
            let turns = prediction.quarter_turns;
            let own = r
                .image_height
                .map(|h| encode_keypoints(&encoders, rgb, calibration, h, turns, &mut times))
                .transpose()?;
            let image = match &own {
                Some((image, encoded)) => KeypointImage { image, encoded, quarter_turns: turns },
                None => prediction.keypoints(),
            };
            let t = Instant::now();
            let (pixels, features, scores) = query_keypoints(&image, distortion, r.cfg.min_score);
            let p = image.image;
            let query = QueryKeypoints {
                pixels: &pixels,
                features: &features,
                scores: &scores,
                intrinsics: p.intrinsics,
                size: (p.width as f64, p.height as f64),
                gray: Some(GrayImage { pixels: &p.gray_hw, width: p.width, height: p.height }),
                distortion,
            };
            refined = result
                .as_ref()
                .ok()
                .and_then(|c| refine(&query, structure, &c.pose, ransac, &r.cfg))
                .map(|f| (f, false));
            // The points of the mapping views nearest by global descriptor give a second start:
            // where the scene coordinates place the query wrongly, no window around their pose
            // holds the right points. The start whose refinement more points agree with wins
            // (the regressed one on ties).
            if r.cfg.retrieval_views > 0 {
                check()?;
                let views = nearest_views(structure, &prediction.global, r.cfg.retrieval_views);
                // A start that leads to the pose already refined is not refined again.
                let same = |start: &Start| {
                    refined.as_ref().is_some_and(|(f, _)| {
                        let window = r.cfg.windows_px.get(1).copied().unwrap_or(r.cfg.threshold);
                        start.leads_to(&f.result.pose, &query.intrinsics, window)
                    })
                };
                let retrieved = pose_from_views(&query, structure, &views, ransac, &r.cfg)
                    .filter(|start| !same(start))
                    .and_then(|start| refine(&query, structure, &start.result.pose, ransac, &r.cfg));
                let inliers = |f: Option<&Refined>| f.map_or(0, |f| f.result.inliers);
                tracing::debug!(
                    "refined from the scene coordinates' pose: {} inliers; from the points of mapping views {views:?}: {}",
                    inliers(refined.as_ref().map(|r| &r.0)),
                    inliers(retrieved.as_ref())
                );
                if inliers(retrieved.as_ref()) > inliers(refined.as_ref().map(|r| &r.0)) {
                    refined = retrieved.map(|f| (f, true));
                }
            }
            times.refine_s += t.elapsed().as_secs_f64();
        }
        check()?;
        let outcome = match (refined, result) {
            (Some((found, retrieved)), _) => Outcome::Found(Found {
                cam_from_world: found.result.pose,
                inliers: found.result.inliers,
                refined: true,
                retrieved,
                evidence: evidence
                    .unwrap_or_else(|| Evidence::of(&prediction, &found.result.pose, distortion, ransac.threshold)),
            }),
            (None, Err(why)) => Outcome::Failed(Failure { reason: why.to_string(), evidence: None }),
            (None, Ok(coarse)) => {
                let evidence = evidence.expect("evidence of the pose found");
                match self.evidence.judge(&evidence) {
                    Some(reason) => Outcome::Failed(Failure { reason, evidence: Some(evidence) }),
                    None => Outcome::Found(Found {
                        cam_from_world: coarse.pose,
                        inliers: coarse.inliers,
                        refined: false,
                        retrieved: false,
                        evidence,
                    }),
                }
            }
        };
        Ok(Answer { outcome, prediction, times })
    }
}

/// The query's keypoints (undistorted pixels of the upright preprocessed image), unit features
/// and scores, one per cell, those scoring at least `min_score`.
fn query_keypoints(
    query: &KeypointImage,
    distortion: Option<Distortion>,
    min_score: f32,
) -> (Vec<Point2<f64>>, Vec<f32>, Vec<f32>) {
    let f = &query.encoded.features;
    let camera = Camera { intrinsics: query.image.intrinsics, distortion };
    let mut pixels = Vec::with_capacity(f.height * f.width);
    for i in 0..f.height {
        for j in 0..f.width {
            let (u, v) = query.keypoint_pixel(i, j);
            pixels.push(camera.undistort_pixel(&Point2::new(u, v)));
        }
    }
    let features = query.encoded.matching_features();
    let scores: Vec<f32> = match &query.encoded.keypoints {
        Some(k) => k.points.iter().map(|p| p[2]).collect(),
        None => vec![1.0; pixels.len()],
    };
    if min_score <= 0.0 {
        return (pixels, features, scores);
    }
    let dim = f.channels;
    let keep: Vec<usize> = (0..pixels.len()).filter(|&c| scores[c] >= min_score).collect();
    (
        keep.iter().map(|&c| pixels[c]).collect(),
        keep.iter().flat_map(|&c| features[c * dim..(c + 1) * dim].iter().copied()).collect(),
        keep.iter().map(|&c| scores[c]).collect(),
    )
}
