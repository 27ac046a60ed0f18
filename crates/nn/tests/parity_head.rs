//! Parity of the GLACE head with the reference (`shared/fixtures/glace_head_*.npz`).

mod common;

use common::*;
use glace_data::testing::shared_path;
use glace_formats::pt::load_state_dict;
use glace_nn::Head;

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn check_close(name: &str, ours: &[f32], reference: &[f32], rel: f32) {
    assert_eq!(ours.len(), reference.len(), "{name}: length");
    let tol = rel * max_abs(reference);
    let worst = ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= tol, "{name}: max error {worst:e} > {tol:e}");
}

fn check_head(stem: &str, params: usize) {
    let Some(pt) = shared_path(&format!("fixtures/{stem}.pt"), stem) else { return };
    let fix = pt.with_extension("npz");
    let head = Head::from_state_dict(&pt, &load_state_dict(&pt, None, "").unwrap()).unwrap();
    assert_eq!(head.params(), params, "{stem}: parameter count");
    let input: Vec<f32> = npz(&fix, "input");
    let out = head.forward(&input, 256);
    check_close(&format!("{stem} fc3_out"), &out.fc3_out, &npz::<f32>(&fix, "fc3_out"), 3e-5);
    let h_ref: Vec<f32> = npz(&fix, "h");
    check_close(&format!("{stem} h"), &out.h, &h_ref, 3e-5);
    for (a, b) in out.h.iter().zip(&h_ref) {
        if *b == 100.0 {
            assert_eq!(*a, 100.0, "{stem}: clamped rows must be exactly 100");
        }
    }
    assert!(h_ref.iter().filter(|&&h| h == 100.0).count() >= 4, "fixture exercises the clamp");
    if head.config.clusters > 1 {
        check_close(&format!("{stem} logits"), &out.logits, &npz::<f32>(&fix, "fcc_logits"), 3e-5);
    }
    check_close(&format!("{stem} output"), &out.coords_n3, &npz::<f32>(&fix, "output"), 3e-5);
    let f64_ref: Vec<f64> = npz(&fix, "output_f64");
    let f64_ref: Vec<f32> = f64_ref.iter().map(|&v| v as f32).collect();
    check_close(&format!("{stem} output_f64"), &out.coords_n3, &f64_ref, 3e-5);

    // bf16 products (where the CPU has a kernel), within BF16_REL of the reference's output.
    let Ok(mm @ glace_nn::linalg::Matmul::Bf16(_)) = glace_nn::linalg::Precision::Bf16.resolve() else {
        eprintln!("SKIPPED {stem} in bf16: no bf16 kernel on this CPU");
        return;
    };
    let out16 = head.forward_with(mm, &input, 256);
    let reference: Vec<f32> = npz(&fix, "output");
    let worst = out16.coords_n3.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    eprintln!("{stem} in {}: max error {:.2e} of max |output| {:.2e}", mm.name(), worst, max_abs(&reference));
    check_close(&format!("{stem} output in bf16"), &out16.coords_n3, &reference, BF16_REL);
}

/// Tolerance of the head's bf16 output, relative to the largest output (bf16 keeps 8 bits of
/// mantissa: operands are off by up to 2⁻⁹ relative, and the errors of 6 layers add up;
/// measured with AVX512-BF16: 0.2 % default, 1.4 % K = 50, 0.7 % Cambridge).
const BF16_REL: f32 = 3e-2;

#[test]
fn parity_head_a_default() {
    check_head("glace_head_a_default", 4_727_812);
}

#[test]
fn parity_head_b_k50() {
    check_head("glace_head_b_k50", 4_766_262);
}

#[test]
fn parity_head_c_cambridge() {
    check_head("glace_head_c_cambridge", 6_499_588);
}
