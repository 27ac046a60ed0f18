//! The built-in global encoder: VLAD over an image's local descriptors with a small codebook,
//! then PCA-whitening to 256-d and whitening of the within-place covariance, all fitted on the
//! mapping images and stored in the map (as one projection) so that queries are projected
//! identically; optionally, last, projection onto the directions that tell places apart. Needs no
//! external weights.
//!
//! VLAD: residuals to the nearest codeword summed per word, intra-normalised, signed square
//! root, L2-normalised. Local descriptors are nearly blind to colour, so a coarse colour layout
//! (chromaticity on a 4×3 grid) and a chromaticity histogram are appended before the projection
//! (the paint of a room survives any framing; the histogram's effect on same-room retrieval is
//! measured in docs/experiments.md). Whitening divides each principal component by
//! √(variance + ε) with ε ten times the mean kept variance, which keeps rare directions from
//! dominating. The mapping poses then say which images show the same place: whitening the
//! covariance within places damps what changes with framing.
//!
//! For scenes of several alike places (`--place-discriminants`, on in the `rooms` and `aachen`
//! presets) retrieval is not all the head needs: the descriptor must also be nearly constant
//! within a place, or the head can tell single views apart and fit each view's rays at
//! any depth instead of one consistent scene. After within-place whitening every direction varies
//! equally within a place, most of them only there, so the descriptor is then projected onto the
//! principal directions of the place means whose variance is at least that within places (linear
//! discriminant analysis; its effect on integrated rooms is in docs/experiments.md).

use nalgebra::{DMatrix, SymmetricEigen};

use glace_rng::SplitMix64;
use rayon::prelude::*;

/// Grid of the colour layout (columns, rows).
pub const COLOUR_GRID: (usize, usize) = (4, 3);

/// What the global encoder sees of one image.
#[derive(Clone, Debug)]
pub struct GlobalInput {
    /// Local descriptors, `n × dim`.
    pub descriptors: Vec<f32>,
    /// Colour layout ([`colour_layout`]).
    pub colour: Vec<f32>,
}

/// Chromaticity (r, g) = (R, G)/(R+G+B) averaged over a 4×3 grid of an interleaved RGB image,
/// centred on 1/3 and unit-normalised, followed by an 8×8 histogram of chromaticity (square-rooted,
/// unit-normalised, weighted ×2): the layout tells where colours are, the histogram which colours a view
/// holds whatever its framing.
pub fn colour_layout(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let (gx, gy) = COLOUR_GRID;
    let mut acc = vec![[0f64; 3]; gx * gy];
    let mut hist = vec![0f32; HIST_BINS * HIST_BINS];
    for y in 0..height {
        let cy = (y * gy / height.max(1)).min(gy - 1);
        for x in 0..width {
            let cx = (x * gx / width.max(1)).min(gx - 1);
            let p = &rgb[(y * width + x) * 3..][..3];
            for c in 0..3 {
                acc[cy * gx + cx][c] += p[c] as f64;
            }
            let s = p[0] as f32 + p[1] as f32 + p[2] as f32;
            if s > 30.0 {
                // Chromaticity spans about [0, 1]; bins over [0.1, 0.6] where nearly all pixels fall.
                let bin = |v: f32| ((((v / s) - 0.1) / 0.5 * HIST_BINS as f32).max(0.0) as usize).min(HIST_BINS - 1);
                hist[bin(p[0] as f32) * HIST_BINS + bin(p[1] as f32)] += 1.0;
            }
        }
    }
    let mut out = Vec::with_capacity(gx * gy * 2 + hist.len());
    for a in &acc {
        let s = (a[0] + a[1] + a[2]).max(1e-9);
        out.push((a[0] / s - 1.0 / 3.0) as f32);
        out.push((a[1] / s - 1.0 / 3.0) as f32);
    }
    normalize(&mut out);
    hist.iter_mut().for_each(|v| *v = v.sqrt());
    normalize(&mut hist);
    out.extend(hist.iter().map(|v| v * HIST_WEIGHT));
    out
}

/// Length of [`colour_layout`]'s output.
pub const COLOUR_DIM: usize = COLOUR_GRID.0 * COLOUR_GRID.1 * 2 + HIST_BINS * HIST_BINS;

/// Bins per chromaticity axis of the colour histogram.
const HIST_BINS: usize = 8;
/// Weight of the histogram against the unit VLAD vector and layout: high enough to tell alike
/// rooms apart by their paint, low enough that colour does not dominate real scenes.
const HIST_WEIGHT: f32 = 2.0;

/// Fitted VLAD + PCA-whitening.
#[derive(Clone, Debug, PartialEq)]
pub struct VladPca {
    /// Codebook, `words × dim`.
    pub codebook: Vec<f32>,
    /// Number of codewords.
    pub words: usize,
    /// Local descriptor dimension.
    pub dim: usize,
    /// Length of the colour layout appended to the VLAD vector.
    pub colour_dim: usize,
    /// Mean of the concatenated vector (`words·dim + colour_dim`).
    pub mean: Vec<f32>,
    /// Projection rows (`out_dim × (words·dim + colour_dim)`), whitening included.
    pub projection: Vec<f32>,
    /// Output dimension (256).
    pub out_dim: usize,
}

fn nearest(codebook: &[f32], dim: usize, x: &[f32]) -> usize {
    codebook
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, c)| (i, c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Lloyd k-means in `dim` dimensions with k-means++ seeding (seeded, deterministic).
fn codebook_kmeans(samples: &[f32], dim: usize, words: usize, seed: u64) -> Vec<f32> {
    let n = samples.len() / dim;
    let mut rng = SplitMix64::from_state(seed ^ 0xC0DE_B00C);
    let row = |i: usize| &samples[i * dim..(i + 1) * dim];
    let mut cb: Vec<f32> = row((rng.f64() * n as f64) as usize % n).to_vec();
    let mut d2: Vec<f32> = (0..n).map(|i| row(i).iter().zip(&cb).map(|(a, b)| (a - b) * (a - b)).sum()).collect();
    while cb.len() < words * dim {
        let total: f64 = d2.iter().map(|&v| v as f64).sum();
        let c = row(rng.weighted(&d2, total)).to_vec();
        for (i, v) in d2.iter_mut().enumerate() {
            *v = v.min(row(i).iter().zip(&c).map(|(a, b)| (a - b) * (a - b)).sum());
        }
        cb.extend(c);
    }
    for _ in 0..25 {
        let labels: Vec<usize> = (0..n).into_par_iter().map(|i| nearest(&cb, dim, row(i))).collect();
        let mut sums = vec![0f64; words * dim];
        let mut counts = vec![0usize; words];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            for (s, v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(row(i)) {
                *s += *v as f64;
            }
        }
        for w in 0..words {
            if counts[w] > 0 {
                for d in 0..dim {
                    cb[w * dim + d] = (sums[w * dim + d] / counts[w] as f64) as f32;
                }
            }
        }
    }
    cb
}

/// Raw VLAD of one image's descriptors (`n × dim`).
pub fn vlad(codebook: &[f32], words: usize, dim: usize, descriptors: &[f32]) -> Vec<f32> {
    let mut v = vec![0f32; words * dim];
    for x in descriptors.chunks_exact(dim) {
        let w = nearest(codebook, dim, x);
        for d in 0..dim {
            v[w * dim + d] += x[d] - codebook[w * dim + d];
        }
    }
    for block in v.chunks_exact_mut(dim) {
        let n = block.iter().map(|a| a * a).sum::<f32>().sqrt();
        if n > 0.0 {
            block.iter_mut().for_each(|a| *a /= n);
        }
    }
    for a in &mut v {
        *a = a.signum() * a.abs().sqrt();
    }
    normalize(&mut v);
    v
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|a| *a /= n);
    }
}

impl VladPca {
    /// Fits codebook and whitening on the mapping images (`images[i]` = that image's
    /// `n_i × dim` descriptors).
    ///
    /// `places`, when given, labels each image with the place it was taken at (clusters of the
    /// mapping cameras, [`place_labels`]): the projection is then followed by whitening of the
    /// within-place covariance, so that what varies among views of one place (framing, the
    /// furniture every room has) weighs less than what tells places apart. With `discriminants`
    /// it is then projected onto the directions that separate places (linear discriminant
    /// analysis; the unused output rows stay zero): for scenes of several alike places, where the
    /// head must not tell single views apart.
    pub fn fit(
        inputs: &[GlobalInput],
        places: Option<&[usize]>,
        discriminants: bool,
        dim: usize,
        words: usize,
        out_dim: usize,
        seed: u64,
    ) -> VladPca {
        assert!(!inputs.is_empty(), "fitting needs images");
        let images: Vec<&Vec<f32>> = inputs.iter().map(|i| &i.descriptors).collect();
        let colour_dim = inputs[0].colour.len();
        // Codebook on up to ~40 k descriptors sampled evenly across images.
        let per_image = (40_000 / images.len()).max(16);
        let mut samples = Vec::new();
        for img in &images {
            let n = img.len() / dim;
            let step = (n / per_image).max(1);
            for i in (0..n).step_by(step) {
                samples.extend_from_slice(&img[i * dim..(i + 1) * dim]);
            }
        }
        let codebook = codebook_kmeans(&samples, dim, words, seed);
        let vlads: Vec<Vec<f32>> = inputs
            .par_iter()
            .map(|i| {
                let mut v = vlad(&codebook, words, dim, &i.descriptors);
                v.extend_from_slice(&i.colour);
                v
            })
            .collect();
        let kd = words * dim + colour_dim;
        let n = vlads.len();
        let mean: Vec<f32> = (0..kd).map(|j| vlads.iter().map(|v| v[j]).sum::<f32>() / n as f32).collect();
        let x = DMatrix::<f64>::from_fn(n, kd, |i, j| (vlads[i][j] - mean[j]) as f64);
        // Principal directions from the smaller of the Gram and covariance matrices.
        let (dirs, vars): (Vec<Vec<f64>>, Vec<f64>) = if n <= kd {
            let g = &x * x.transpose();
            let eig = SymmetricEigen::new(g);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
            order
                .into_iter()
                .filter(|&i| eig.eigenvalues[i] > 1e-9)
                .take(out_dim)
                .map(|i| {
                    let l = eig.eigenvalues[i];
                    let u = x.transpose() * eig.eigenvectors.column(i) / l.sqrt();
                    (u.iter().copied().collect(), l / n as f64)
                })
                .unzip()
        } else {
            let c = x.transpose() * &x / n as f64;
            let eig = SymmetricEigen::new(c);
            let mut order: Vec<usize> = (0..kd).collect();
            order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
            order
                .into_iter()
                .filter(|&i| eig.eigenvalues[i] > 1e-12)
                .take(out_dim)
                .map(|i| (eig.eigenvectors.column(i).iter().copied().collect(), eig.eigenvalues[i]))
                .unzip()
        };
        // Strong regularisation: with few mapping images, full whitening amplifies noise
        // directions (a weak ε retrieved markedly worse on synthetic rooms).
        let eps = 10.0 * vars.iter().sum::<f64>() / vars.len().max(1) as f64;
        let mut projection = vec![0f32; out_dim * kd];
        for (r, (u, v)) in dirs.iter().zip(&vars).enumerate() {
            let s = 1.0 / (v + eps).sqrt();
            for j in 0..kd {
                projection[r * kd + j] = (u[j] * s) as f32;
            }
        }
        if let Some(labels) = places {
            let rows = dirs.len();
            assert_eq!(labels.len(), n, "one place label per image");
            let p = DMatrix::<f64>::from_fn(rows, kd, |r, j| projection[r * kd + j] as f64);
            let w = within_place_whitening(&(&x * p.transpose()), labels);
            let wp = w * p;
            // One place (few mapping images) has nothing to discriminate: keep the whitened space.
            let d = discriminants.then(|| place_discriminants(&(&x * wp.transpose()), labels));
            let dwp = match d.filter(|d| d.nrows() > 0) {
                Some(d) => d * wp,
                None => wp,
            };
            projection.iter_mut().for_each(|v| *v = 0.0);
            for r in 0..dwp.nrows().min(out_dim) {
                for j in 0..kd {
                    projection[r * kd + j] = dwp[(r, j)] as f32;
                }
            }
        }
        VladPca { codebook, words, dim, colour_dim, mean, projection, out_dim }
    }

    /// The unit global descriptor of one image's local descriptors.
    pub fn encode(&self, input: &GlobalInput) -> Vec<f32> {
        let mut v = vlad(&self.codebook, self.words, self.dim, &input.descriptors);
        v.extend_from_slice(&input.colour);
        let kd = self.words * self.dim + self.colour_dim;
        assert_eq!(v.len(), kd, "colour layout length differs from the fitted one");
        let centred: Vec<f32> = v.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let mut out: Vec<f32> =
            self.projection.chunks_exact(kd).map(|row| row.iter().zip(&centred).map(|(a, b)| a * b).sum()).collect();
        normalize(&mut out);
        if out.iter().all(|v| *v == 0.0) {
            out[0] = 1.0;
        }
        out
    }
}

/// Place labels for [`VladPca::fit`]: k-means clusters of the mapping camera centres, about
/// `IMAGES_PER_PLACE` images each.
pub fn place_labels(centres: &[[f64; 3]], seed: u64) -> Vec<usize> {
    let k = (centres.len() / IMAGES_PER_PLACE).clamp(1, 256);
    if k < 2 {
        return vec![0; centres.len()];
    }
    crate::kmeans::kmeans(centres, k, seed, 100).labels
}

/// Mapping images per place cluster of [`place_labels`].
pub const IMAGES_PER_PLACE: usize = 12;

/// Shrinkage of the within-place covariance towards its mean variance: places hold few images.
const WITHIN_SHRINK: f64 = 0.1;

/// Mean row of each place (places × d).
fn place_means(y: &DMatrix<f64>, labels: &[usize]) -> DMatrix<f64> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut sums = DMatrix::<f64>::zeros(classes, y.ncols());
    let mut counts = vec![0usize; classes];
    for (i, &l) in labels.iter().enumerate() {
        counts[l] += 1;
        for j in 0..y.ncols() {
            sums[(l, j)] += y[(i, j)];
        }
    }
    for (c, &n) in counts.iter().enumerate() {
        for j in 0..y.ncols() {
            sums[(c, j)] /= n.max(1) as f64;
        }
    }
    sums
}

/// Discriminant directions of within-place-whitened rows `y` (n × d): the principal directions of
/// the place means whose variance is at least `MIN_BETWEEN_RATIO` times the (unit) within-place
/// variance, as rows (m × d).
fn place_discriminants(y: &DMatrix<f64>, labels: &[usize]) -> DMatrix<f64> {
    let (n, d) = (y.nrows(), y.ncols());
    let means = place_means(y, labels);
    // Each image contributes its place's mean, centred: the between-place covariance.
    let mut b = DMatrix::<f64>::from_fn(n, d, |i, j| means[(labels[i], j)]);
    for mut column in b.column_iter_mut() {
        let mean = column.mean();
        column.add_scalar_mut(-mean);
    }
    let s = b.transpose() * &b / n.max(1) as f64;
    let eig = SymmetricEigen::new(s);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let keep: Vec<usize> = order.into_iter().filter(|&i| eig.eigenvalues[i] >= MIN_BETWEEN_RATIO).collect();
    DMatrix::<f64>::from_fn(keep.len(), d, |r, j| eig.eigenvectors[(j, keep[r])])
}

/// Between-place variance, in within-place variances, a direction needs to be kept.
const MIN_BETWEEN_RATIO: f64 = 1.0;

/// W = S^(−1/2) of the shrunk within-place covariance S of the rows of `y` (n × d).
fn within_place_whitening(y: &DMatrix<f64>, labels: &[usize]) -> DMatrix<f64> {
    let (n, d) = (y.nrows(), y.ncols());
    let means = place_means(y, labels);
    let centred = DMatrix::<f64>::from_fn(n, d, |i, j| y[(i, j)] - means[(labels[i], j)]);
    let mut s = centred.transpose() * &centred / n.max(1) as f64;
    let mean_var = s.trace() / d.max(1) as f64;
    s *= 1.0 - WITHIN_SHRINK;
    for j in 0..d {
        s[(j, j)] += WITHIN_SHRINK * mean_var + 1e-12;
    }
    let eig = SymmetricEigen::new(s);
    let inv_sqrt = DMatrix::<f64>::from_diagonal(&eig.eigenvalues.map(|l| 1.0 / l.max(1e-12).sqrt()));
    &eig.eigenvectors * inv_sqrt * eig.eigenvectors.transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_images_by_their_descriptor_statistics() {
        // Three "places" whose descriptors come from different mixtures; images of one place
        // must retrieve each other.
        let dim = 8;
        let mut state = 7u64;
        let mut r = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let place = |p: usize, r: &mut dyn FnMut() -> f32| -> Vec<f32> {
            let mut d = Vec::new();
            for i in 0..300 {
                let mut x = vec![0f32; dim];
                x[p * 2 + i % 2] = 1.0;
                for v in &mut x {
                    *v += 0.3 * r();
                }
                d.extend(x);
            }
            d
        };
        let wrap = |d: Vec<f32>| GlobalInput { descriptors: d, colour: vec![0.0; 24] };
        let train: Vec<GlobalInput> = (0..12).map(|i| wrap(place(i % 3, &mut r))).collect();
        let enc = VladPca::fit(&train, None, false, dim, 4, 16, 0);
        let codes: Vec<Vec<f32>> = train.iter().map(|d| enc.encode(d)).collect();
        for q in 0..3 {
            let query = enc.encode(&wrap(place(q, &mut r)));
            assert!((query.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
            let best = (0..12).max_by(|&a, &b| {
                let da: f32 = codes[a].iter().zip(&query).map(|(x, y)| x * y).sum();
                let db: f32 = codes[b].iter().zip(&query).map(|(x, y)| x * y).sum();
                da.total_cmp(&db)
            });
            assert_eq!(best.unwrap() % 3, q);
        }
    }

    /// Uniform numbers in [−1, 1) from a seeded LCG.
    fn uniform(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    #[test]
    fn discriminants_keep_what_tells_places_apart_and_drop_per_view_detail() {
        // Three places 6 apart in the plane of axes 0 and 1; every view also varies by 1 on all
        // 48 axes. Whitened alone, half of a normalised descriptor says which view it is; the
        // discriminant projection keeps the two place axes, so views of a place nearly coincide.
        let mut r = uniform(5);
        let centre = |p: usize, j: usize| match (p, j) {
            (0, 0) => 6.0,
            (1, 1) => 6.0,
            (2, 0) | (2, 1) => -4.0,
            _ => 0.0,
        };
        let y = DMatrix::<f64>::from_fn(120, 48, |i, j| centre(i / 40, j) + 1.7 * r());
        let labels: Vec<usize> = (0..120).map(|i| i / 40).collect();
        let whitened = &y * within_place_whitening(&y, &labels).transpose();
        let d = place_discriminants(&whitened, &labels);
        assert_eq!(d.nrows(), 2, "three places span two discriminant directions");
        let within_cos = |m: &DMatrix<f64>| {
            let m = m.clone();
            let unit = |i: usize| m.row(i) / m.row(i).norm();
            let mut sum = 0.0;
            let mut n = 0;
            for a in 0..120 {
                for b in (a + 1)..120 {
                    if labels[a] == labels[b] {
                        sum += unit(a).dot(&unit(b));
                        n += 1;
                    }
                }
            }
            sum / n as f64
        };
        let (before, after) = (within_cos(&whitened), within_cos(&(&whitened * d.transpose())));
        assert!(before < 0.6 && after > 0.9, "mean same-place cosine: {before:.2} whitened, {after:.2} projected");
        assert_eq!(place_discriminants(&y, &[0; 120]).nrows(), 0, "one place has nothing to tell apart");
    }

    #[test]
    fn within_place_whitening_outweighs_what_varies_inside_a_place() {
        // Two places 1.6 apart along axis 0; inside each place the views vary more, over ten
        // other axes (framing, the furniture every room has). Unwhitened, cosine neighbours follow
        // that variation; whitened, mostly the place.
        let mut r = uniform(11);
        let y = DMatrix::<f64>::from_fn(40, 11, |i, j| match j {
            0 => {
                if i < 20 {
                    0.8
                } else {
                    -0.8
                }
            }
            _ => 2.0 * r(),
        });
        let labels: Vec<usize> = (0..40).map(|i| i / 20).collect();
        let cos_ok = |m: &DMatrix<f64>| {
            let unit: Vec<Vec<f64>> = (0..40)
                .map(|i| {
                    let n = m.row(i).norm();
                    (0..m.ncols()).map(|j| m[(i, j)] / n).collect()
                })
                .collect();
            let cos = |a: usize, b: usize| unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum::<f64>();
            (0..40)
                .filter(|&a| {
                    let best = (0..40).filter(|&b| b != a).max_by(|&b, &c| cos(a, b).total_cmp(&cos(a, c))).unwrap();
                    labels[best] == labels[a]
                })
                .count()
        };
        let w = within_place_whitening(&y, &labels);
        let whitened = &y * w.transpose();
        let (before, after) = (cos_ok(&y), cos_ok(&whitened));
        assert!(after >= 38 && before <= 34, "same-place neighbours: {before}/40 unwhitened, {after}/40 whitened");
        assert_eq!(place_labels(&[[0.0; 3]; 5], 0), vec![0; 5]);
    }
}
