//! Mutual nearest neighbours of unit features, the matching both the triangulation of a map's
//! points and the refinement of a query against them use.

use rayon::prelude::*;

/// Mutual nearest neighbours between the rows of `a` and of `b` (unit features of width `dim`),
/// by cosine similarity, among the pairs `allowed(i, j)` admits, with similarity at least
/// `min_similarity`; on ties the lowest index on either side. Blocks of rows at a time, so
/// memory stays one block's similarities whatever the counts.
pub fn mutual_nearest<F>(a: &[f32], b: &[f32], dim: usize, min_similarity: f32, allowed: F) -> Vec<(usize, usize)>
where
    F: Fn(usize, usize) -> bool + Sync,
{
    let nb = b.len() / dim.max(1);
    if nb == 0 || a.is_empty() {
        return Vec::new();
    }
    const BLOCK: usize = 512;
    type Best = Vec<(usize, f32)>;
    let blocks: Vec<(Best, Best)> = a
        .par_chunks(BLOCK * dim)
        .enumerate()
        .map(|(block, fa)| {
            let rows = fa.len() / dim;
            let mut sim = vec![0f32; rows * nb];
            similarities(fa, rows, b, nb, dim, &mut sim);
            let mut row_best = Vec::with_capacity(rows);
            let mut col_best = vec![(usize::MAX, f32::NEG_INFINITY); nb];
            for (r, row) in sim.chunks_exact(nb).enumerate() {
                let i = block * BLOCK + r;
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
    }
}
