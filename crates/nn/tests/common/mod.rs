//! Helpers shared by the parity tests: reading `.npz` arrays and reordering NCHW references.

#![allow(dead_code)]

use std::path::Path;

/// One array of an `.npz` file, row-major.
pub fn npz<T: npyz::Deserialize>(path: &Path, name: &str) -> Vec<T> {
    let mut z = npyz::npz::NpzArchive::open(path).unwrap();
    z.by_name(name).unwrap().unwrap_or_else(|| panic!("{name} missing")).into_vec().unwrap()
}

/// A (C, H, W) reference reordered to our channels-last (H, W, C).
pub fn chw_to_hwc(v: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for ci in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[(y * w + x) * c + ci] = v[(ci * h + y) * w + x];
            }
        }
    }
    out
}

/// Largest absolute difference.
pub fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
