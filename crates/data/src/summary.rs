//! A validated summary of a scene, for `glace info`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::scene::{Scene, Split, SplitKind};

/// Image size and how many frames have it.
#[derive(Clone, Debug, Serialize)]
pub struct SizeCount {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames of this size.
    pub count: usize,
}

/// Statistics of a set of camera centres.
#[derive(Clone, Debug, Serialize)]
pub struct CentreStats {
    /// Bounding-box minimum (x, y, z).
    pub min: [f64; 3],
    /// Bounding-box maximum.
    pub max: [f64; 3],
    /// Box side lengths.
    pub extent: [f64; 3],
    /// Box diagonal.
    pub diagonal: f64,
    /// Mean camera centre (the ACE head's offset without position decoder).
    pub mean: [f64; 3],
    /// Mean distance of the centres to their mean.
    pub mean_radius: f64,
    /// Smallest distance to the mean.
    pub min_radius: f64,
    /// Largest distance to the mean.
    pub max_radius: f64,
}

impl CentreStats {
    /// Statistics of the given centres (`None` when empty).
    pub fn of(centres: &[[f64; 3]]) -> Option<Self> {
        if centres.is_empty() {
            return None;
        }
        let mut min = [f64::INFINITY; 3];
        let mut max = [f64::NEG_INFINITY; 3];
        let mut mean = [0.0; 3];
        for c in centres {
            for a in 0..3 {
                min[a] = min[a].min(c[a]);
                max[a] = max[a].max(c[a]);
                mean[a] += c[a] / centres.len() as f64;
            }
        }
        let extent = [max[0] - min[0], max[1] - min[1], max[2] - min[2]];
        let radii: Vec<f64> = centres
            .iter()
            .map(|c| ((c[0] - mean[0]).powi(2) + (c[1] - mean[1]).powi(2) + (c[2] - mean[2]).powi(2)).sqrt())
            .collect();
        Some(CentreStats {
            min,
            max,
            extent,
            diagonal: (extent[0].powi(2) + extent[1].powi(2) + extent[2].powi(2)).sqrt(),
            mean,
            mean_radius: radii.iter().sum::<f64>() / radii.len() as f64,
            min_radius: radii.iter().cloned().fold(f64::INFINITY, f64::min),
            max_radius: radii.iter().cloned().fold(0.0, f64::max),
        })
    }
}

/// Summary of one split.
#[derive(Clone, Debug, Serialize)]
pub struct SplitSummary {
    /// Train or test.
    pub split: SplitKind,
    /// Valid frames.
    pub frames: usize,
    /// Images in rgb/.
    pub images: usize,
    /// Frames skipped for invalid poses, with reasons.
    pub skipped: Vec<String>,
    /// Distinct image sizes.
    pub image_sizes: Vec<SizeCount>,
    /// Smallest focal length (fx or fy) in pixels, of the stored images.
    pub focal_min: f64,
    /// Largest focal length.
    pub focal_max: f64,
    /// Camera centres.
    pub centres: Option<CentreStats>,
    /// Dimension of the global descriptors in features.npy, if present.
    pub global_features_dim: Option<usize>,
}

/// Summary of a scene.
#[derive(Clone, Debug, Serialize)]
pub struct SceneSummary {
    /// Scene folder.
    pub root: String,
    /// Distortion coefficients k1 k2 p1 p2 k3, if any.
    pub distortion: Option<[f64; 5]>,
    /// Per split.
    pub splits: Vec<SplitSummary>,
    /// Camera centres of all splits together.
    pub all_centres: Option<CentreStats>,
}

fn summarize_split(split: &Split) -> SplitSummary {
    let mut sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for f in &split.frames {
        if let Some(s) = f.image_size {
            *sizes.entry(s).or_default() += 1;
        }
    }
    let focals = split.frames.iter().flat_map(|f| {
        let (fx, fy) = f.calibration.focal();
        [fx, fy]
    });
    let (focal_min, focal_max) = focals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let centres: Vec<[f64; 3]> = split.frames.iter().map(|f| f.cam_to_world.center().into()).collect();
    SplitSummary {
        split: split.kind,
        frames: split.frames.len(),
        images: split.image_count,
        skipped: split.skipped.iter().map(|s| s.reason.clone()).collect(),
        image_sizes: sizes.into_iter().map(|((width, height), count)| SizeCount { width, height, count }).collect(),
        focal_min,
        focal_max,
        centres: CentreStats::of(&centres),
        global_features_dim: split.features.as_ref().map(|f| f.dim),
    }
}

impl SceneSummary {
    /// Summarises an opened scene.
    pub fn of(scene: &Scene) -> Self {
        let all: Vec<[f64; 3]> =
            scene.splits().flat_map(|s| s.frames.iter().map(|f| f.cam_to_world.center().into())).collect();
        SceneSummary {
            root: scene.root.display().to_string(),
            distortion: scene.distortion.map(|d| [d.k1, d.k2, d.p1, d.p2, d.k3]),
            splits: scene.splits().map(summarize_split).collect(),
            all_centres: CentreStats::of(&all),
        }
    }
}

fn v3(v: &[f64; 3]) -> String {
    format!("({:.3}, {:.3}, {:.3})", v[0], v[1], v[2])
}

impl fmt::Display for CentreStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "      bounding box  {} .. {}", v3(&self.min), v3(&self.max))?;
        writeln!(
            f,
            "      extent        {:.3} × {:.3} × {:.3} m (diagonal {:.3} m)",
            self.extent[0], self.extent[1], self.extent[2], self.diagonal
        )?;
        writeln!(f, "      mean centre   {}", v3(&self.mean))?;
        writeln!(
            f,
            "      to mean       {:.3} m on average (min {:.3}, max {:.3})",
            self.mean_radius, self.min_radius, self.max_radius
        )
    }
}

impl fmt::Display for SceneSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scene {}", self.root)?;
        match self.distortion {
            Some(d) => writeln!(f, "  distortion      k1 {} k2 {} p1 {} p2 {} k3 {}", d[0], d[1], d[2], d[3], d[4])?,
            None => writeln!(f, "  distortion      none")?,
        }
        for s in &self.splits {
            writeln!(f, "  {}: {} frames", s.split, s.frames)?;
            if !s.skipped.is_empty() {
                writeln!(f, "    skipped {} of {} images for invalid poses:", s.skipped.len(), s.images)?;
                for r in &s.skipped {
                    writeln!(f, "      {r}")?;
                }
            }
            let sizes: Vec<String> =
                s.image_sizes.iter().map(|c| format!("{} × {}×{}", c.count, c.width, c.height)).collect();
            writeln!(f, "    images        {}", if sizes.is_empty() { "not probed".into() } else { sizes.join(", ") })?;
            if s.focal_min.is_finite() {
                writeln!(f, "    focal         {:.2} .. {:.2} px", s.focal_min, s.focal_max)?;
            }
            match s.global_features_dim {
                Some(d) => writeln!(f, "    global feats  {d}-d (features.npy)")?,
                None => writeln!(f, "    global feats  none")?,
            }
            if let Some(c) = &s.centres {
                writeln!(f, "    camera centres")?;
                write!(f, "{c}")?;
            }
        }
        if let (Some(c), true) = (&self.all_centres, self.splits.len() > 1) {
            writeln!(f, "  all camera centres")?;
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
