//! K-means++ (greedy seeding with 2 + ⌊ln K⌋ local trials, then Lloyd iterations, as
//! scikit-learn's `KMeans(n_init=1)`), used for the position-decoder centres over the training
//! camera centres. Deterministic for a seed.

use glace_rng::SplitMix64;

/// Result of a clustering.
#[derive(Clone, Debug)]
pub struct KMeans {
    /// K centres.
    pub centres: Vec<[f64; 3]>,
    /// Cluster of every point.
    pub labels: Vec<usize>,
    /// Sum of squared distances to the assigned centres.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn d2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Clusters 3-D points into `k` groups (k ≥ 1, k ≤ number of distinct points is not required:
/// duplicate centres are possible for degenerate input).
pub fn kmeans(points: &[[f64; 3]], k: usize, seed: u64, max_iter: usize) -> KMeans {
    assert!(!points.is_empty() && k >= 1, "k-means needs points and k ≥ 1");
    let n = points.len();
    let mut rng = SplitMix64::from_state(seed ^ 0x5EED_5EED);
    // Greedy k-means++ seeding.
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = vec![points[(rng.f64() * n as f64) as usize % n]];
    let mut closest: Vec<f64> = points.iter().map(|p| d2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = closest.iter().sum();
        if total <= 0.0 {
            centres.push(points[(rng.f64() * n as f64) as usize % n]);
            continue;
        }
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let c = rng.weighted(&closest, total);
            let cand: Vec<f64> = points.iter().zip(&closest).map(|(p, &old)| old.min(d2(p, &points[c]))).collect();
            let pot: f64 = cand.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, c, cand));
            }
        }
        let (_, c, cand) = best.expect("at least one trial");
        centres.push(points[c]);
        closest = cand;
    }
    // Lloyd iterations; tolerance relative to the mean per-axis variance, as scikit-learn.
    let mean: [f64; 3] = [0, 1, 2].map(|a| points.iter().map(|p| p[a]).sum::<f64>() / n as f64);
    let var =
        (0..3).map(|a| points.iter().map(|p| (p[a] - mean[a]).powi(2)).sum::<f64>() / n as f64).sum::<f64>() / 3.0;
    let tol = 1e-4 * var;
    let mut labels = vec![0usize; n];
    let mut iterations = 0;
    for it in 0..max_iter {
        iterations = it + 1;
        for (l, p) in labels.iter_mut().zip(points) {
            *l = (0..k).min_by(|&a, &b| d2(p, &centres[a]).total_cmp(&d2(p, &centres[b]))).expect("k ≥ 1");
        }
        let mut sums = vec![[0f64; 3]; k];
        let mut counts = vec![0usize; k];
        for (l, p) in labels.iter().zip(points) {
            for a in 0..3 {
                sums[*l][a] += p[a];
            }
            counts[*l] += 1;
        }
        let mut shift = 0.0;
        for c in 0..k {
            if counts[c] > 0 {
                let new = [0, 1, 2].map(|a| sums[c][a] / counts[c] as f64);
                shift += d2(&new, &centres[c]);
                centres[c] = new;
            }
        }
        if shift <= tol {
            break;
        }
    }
    for (l, p) in labels.iter_mut().zip(points) {
        *l = (0..k).min_by(|&a, &b| d2(p, &centres[a]).total_cmp(&d2(p, &centres[b]))).expect("k ≥ 1");
    }
    let inertia = labels.iter().zip(points).map(|(l, p)| d2(p, &centres[*l])).sum();
    KMeans { centres, labels, inertia, iterations }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_clear_clusters_and_is_deterministic() {
        let mut pts = Vec::new();
        for c in 0..4 {
            for i in 0..25 {
                pts.push([c as f64 * 10.0 + (i % 5) as f64 * 0.1, (i / 5) as f64 * 0.1, 0.0]);
            }
        }
        let a = kmeans(&pts, 4, 0, 300);
        let b = kmeans(&pts, 4, 0, 300);
        assert_eq!(a.labels, b.labels);
        assert!(a.inertia < 4.0 * 25.0 * 0.1, "inertia {}", a.inertia);
        let mut sizes = vec![0; 4];
        for l in &a.labels {
            sizes[*l] += 1;
        }
        assert!(sizes.iter().all(|&s| s == 25));
        let one = kmeans(&pts, 1, 0, 300);
        assert!((one.centres[0][0] - 15.2).abs() < 1e-9);
    }
}
