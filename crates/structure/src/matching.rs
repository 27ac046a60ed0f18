//! Mutual nearest neighbours of unit features, the matching both the triangulation of a map's
//! points and the refinement of a query against them use.

use rayon::prelude::*;

/// Best match (index, similarity) of each row or column; `usize::MAX` for none.
type Best = Vec<(usize, f32)>;

/// Mutual nearest neighbours between the rows of `a` and of `b` (unit features of width `dim`),
/// by cosine similarity, among the pairs `allowed(i, j)` admits, with similarity at least
/// `min_similarity`; on ties the lowest index on either side. Blocks of rows at a time, so
/// memory stays one block's similarities whatever the counts.
pub fn mutual_nearest<F>(a: &[f32], b: &[f32], dim: usize, min_similarity: f32, allowed: F) -> Vec<(usize, usize)>
where
    F: Fn(usize, usize) -> bool + Sync,
{
    by_blocks(a, b, dim, min_similarity, |sim, first, nb| {
        let rows = sim.len() / nb;
        let mut row_best = Vec::with_capacity(rows);
        let mut col_best = vec![(usize::MAX, f32::NEG_INFINITY); nb];
        for (r, row) in sim.chunks_exact(nb).enumerate() {
            let i = first + r;
            let mut best = (usize::MAX, f32::NEG_INFINITY);
            for ((j, &s), col) in row.iter().enumerate().zip(col_best.iter_mut()) {
                // The pair's admission is asked only of a pair that would improve a best.
                if !(s > best.1 || s > col.1) || !allowed(i, j) {
                    continue;
                }
                if s > best.1 {
                    best = (j, s);
                }
                if s > col.1 {
                    *col = (i, s);
                }
            }
            row_best.push(best);
        }
        (row_best, col_best)
    })
}

/// [`mutual_nearest`] with every pair admitted: the same pairs, found by scans the compiler
/// turns into vector instructions (rows' maxima in lanes, columns' as element-wise maxima).
pub fn mutual_nearest_all(a: &[f32], b: &[f32], dim: usize, min_similarity: f32) -> Vec<(usize, usize)> {
    const LANES: usize = 16;
    assert!(a.len() / dim.max(1) < u32::MAX as usize, "mutual_nearest_all: rows are numbered in u32");
    by_blocks(a, b, dim, min_similarity, |sim, first, nb| {
        let rows = sim.len() / nb;
        let mut row_best = Vec::with_capacity(rows);
        let mut col_value = vec![f32::NEG_INFINITY; nb];
        let mut col_row = vec![u32::MAX; nb];
        for (r, row) in sim.chunks_exact(nb).enumerate() {
            let i = (first + r) as u32;
            let mut lanes = [f32::NEG_INFINITY; LANES];
            let (chunks, tail) = row.as_chunks::<LANES>();
            for c in chunks {
                for l in 0..LANES {
                    lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
                }
            }
            let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
            // The first column holding the maximum, as a scan for a strictly better one keeps.
            let at = if max > f32::NEG_INFINITY { row.iter().position(|&s| s == max) } else { None };
            row_best.push(at.map_or((usize::MAX, f32::NEG_INFINITY), |j| (j, max)));
            for ((&s, v), k) in row.iter().zip(col_value.iter_mut()).zip(col_row.iter_mut()) {
                let better = s > *v;
                *v = if better { s } else { *v };
                *k = if better { i } else { *k };
            }
        }
        let col_best = col_row
            .into_iter()
            .zip(col_value)
            .map(|(k, v)| if k == u32::MAX { (usize::MAX, v) } else { (k as usize, v) })
            .collect();
        (row_best, col_best)
    })
}

/// The mutual pairs from each block's best matches: `scan(similarities, first row, columns)`
/// gives a block's row and column bests (earliest on ties).
fn by_blocks<S>(a: &[f32], b: &[f32], dim: usize, min_similarity: f32, scan: S) -> Vec<(usize, usize)>
where
    S: Fn(&[f32], usize, usize) -> (Best, Best) + Sync,
{
    let nb = b.len() / dim.max(1);
    if nb == 0 || a.is_empty() {
        return Vec::new();
    }
    // Rows per block: a block's similarities stay within a few MB (in cache while scanned).
    let block = ((1 << 20) / nb).clamp(16, 512);
    let blocks: Vec<(Best, Best)> = a
        .par_chunks(block * dim)
        .enumerate()
        .map(|(k, fa)| {
            let rows = fa.len() / dim;
            let mut sim = vec![0f32; rows * nb];
            similarities(fa, rows, b, nb, dim, &mut sim);
            scan(&sim, k * block, nb)
        })
        .collect();
    // Blocks in order: a later block takes a column only with a strictly better row.
    let mut col_best = vec![(usize::MAX, f32::NEG_INFINITY); nb];
    for (_, cols) in &blocks {
        for (best, c) in col_best.iter_mut().zip(cols) {
            if c.1 > best.1 {
                *best = *c;
            }
        }
    }
    blocks
        .iter()
        .flat_map(|(rows, _)| rows.iter())
        .enumerate()
        .filter(|&(i, &(j, s))| j != usize::MAX && s >= min_similarity && col_best[j].0 == i)
        .map(|(i, &(j, _))| (i, j))
        .collect()
}

/// `out[m×n]` = the dot products of the rows of `a` (`m × dim`) with those of `b` (`n × dim`),
/// in fp32 as the networks' own products: unit features are compared at full precision.
fn similarities(a: &[f32], m: usize, b: &[f32], n: usize, dim: usize, out: &mut [f32]) {
    assert!(a.len() >= m * dim && b.len() >= n * dim && out.len() >= m * n, "similarities: buffer sizes");
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if m * n * dim > 1 << 22 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the assert above bounds every index gemm reads or writes with these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutual_pairs_only_among_the_allowed() {
        // Rows of a: e0, e1, e1 (a tie), e2; rows of b: e1, e0, e2.
        let e = |k: usize| (0..3).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        let a: Vec<f32> = [0, 1, 1, 2].iter().flat_map(|&k| e(k)).collect();
        let b: Vec<f32> = [1, 0, 2].iter().flat_map(|&k| e(k)).collect();
        assert_eq!(mutual_nearest(&a, &b, 3, 0.5, |_, _| true), vec![(0, 1), (1, 0), (3, 2)]);
        // Forbid (1, 0): the tie goes to row 2; forbid row 3 everything: no pair for it.
        let m = mutual_nearest(&a, &b, 3, 0.5, |i, j| (i, j) != (1, 0) && i != 3);
        assert_eq!(m, vec![(0, 1), (2, 0)]);
        assert!(mutual_nearest(&a, &b, 3, 1.5, |_, _| true).is_empty());
        assert_eq!(mutual_nearest_all(&a, &b, 3, 0.5), vec![(0, 1), (1, 0), (3, 2)]);
    }

    #[test]
    fn the_vector_scan_finds_the_pairs_the_plain_one_does() {
        // Random unit features with repeated rows (ties), more rows than one block, and counts
        // that leave a tail after the lanes.
        let mut rng = glace_rng::SplitMix64::from_state(7);
        let dim = 8;
        let unit = |rng: &mut glace_rng::SplitMix64| {
            let v: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let mut a: Vec<f32> = (0..3001).flat_map(|_| unit(&mut rng)).collect();
        let b: Vec<f32> = (0..1237).flat_map(|_| unit(&mut rng)).collect();
        let copy = a[5 * dim..6 * dim].to_vec();
        a[2900 * dim..2901 * dim].copy_from_slice(&copy);
        for min in [-1.0, 0.5, 0.9] {
            let plain = mutual_nearest(&a, &b, dim, min, |_, _| true);
            assert!(!plain.is_empty());
            assert_eq!(mutual_nearest_all(&a, &b, dim, min), plain, "min {min}");
        }
    }
}
