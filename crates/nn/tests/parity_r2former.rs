//! Parity of the R2Former global encoder with the reference's `extract_features.py`
//! (`shared/fixtures/r2former.npz`, random 2-block checkpoint), and its checkpoint errors.

mod common;

use std::path::Path;

use common::*;
use glace_data::imageio::load_rgb8;
use glace_data::testing::shared_path;
use glace_nn::r2former::{R2Former, EMBED, OUT_DIM, TOKENS};
use glace_nn::WeightsError;

fn row(v: &[f32], i: usize, width: usize) -> &[f32] {
    &v[i * width..(i + 1) * width]
}

#[test]
fn parity_r2former() {
    let Some(fix) = shared_path("fixtures/r2former.npz", "parity_r2former") else { return };
    let Some(tum) = shared_path("data/tum_fr2_desk/train/rgb/1311868169_163498.png", "parity_r2former") else {
        return;
    };
    let net = glace_formats::load_r2former(&fix.with_file_name("r2former_random_2blocks.pth")).unwrap();
    assert_eq!(net.depth(), 2);
    assert_eq!(net.params(), 4_504_448);
    let images = [fix.with_file_name("xfeat_input_ref_800x600.png"), tum];
    let input_ref: Vec<f32> = npz(&fix, "input_bchw");
    let planes = 480 * 640;
    for (i, path) in images.iter().enumerate() {
        let img = load_rgb8(path).unwrap();
        let x = R2Former::preprocess(img.as_raw(), img.width() as usize, img.height() as usize);
        let want = chw_to_hwc(&input_ref[i * 3 * planes..(i + 1) * 3 * planes], 3, 480, 640);
        let err = max_err(&x.data, &want);
        assert!(err <= 1e-6, "image {i}: input {err:e}");

        let t = net.forward(&x);
        let tok = TOKENS * EMBED;
        let checks: [(&str, &[f32], usize, f32); 8] = [
            ("tokens_after_embed", &t.tokens_after_embed, tok, 5e-5),
            ("block0_out", &t.block0_out, tok, 1e-4),
            ("final_norm_cls", &t.final_norm_cls, EMBED, 1e-4),
            ("final_norm_dist", &t.final_norm_dist, EMBED, 1e-4),
            ("head_out", &t.head_out, OUT_DIM, 5e-5),
            ("head_dist_out", &t.head_dist_out, OUT_DIM, 5e-5),
            ("head_avg", &t.head_avg, OUT_DIM, 5e-5),
            ("desc", &t.desc, OUT_DIM, 2e-6),
        ];
        for (name, ours, width, tol) in checks {
            let reference: Vec<f32> = npz(&fix, name);
            let err = max_err(ours, row(&reference, i, width));
            assert!(err <= tol, "image {i}: {name} max error {err:e} > {tol:e}");
        }
        let desc64: Vec<f64> = npz(&fix, "desc_f64");
        let err = t.desc.iter().zip(row64(&desc64, i)).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(err <= 1e-6, "image {i}: desc vs f64 reference {err:e}");
        let norm: f32 = t.desc.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() <= 1e-6);
    }
}

fn row64(v: &[f64], i: usize) -> &[f64] {
    &v[i * OUT_DIM..(i + 1) * OUT_DIM]
}

#[test]
fn parity_r2former_truncated_or_wrong_checkpoints_fail_clearly() {
    let Some(fix) = shared_path("fixtures/r2former_random_2blocks.pth", "parity_r2former_truncated") else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&fix).unwrap();
    // Truncated: the zip directory at the end is gone.
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = glace_formats::load_r2former(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.pth"), "{e}");

    // A checkpoint without model_state_dict (an XFeat-style or ACE state dict).
    let Some(ace) = shared_path("fixtures/ace_encoder_random.pt", "parity_r2former_truncated") else { return };
    let e = glace_formats::load_r2former(&ace).unwrap_err();
    assert!(e.to_string().contains("model_state_dict"), "{e}");

    // Wrong shapes / missing keys from a state dict.
    let sd = glace_formats::pt::load_state_dict(&fix, Some("model_state_dict"), "module.backbone.").unwrap();
    let mut bad = sd.clone();
    let k = bad.iter().position(|(n, _)| n == "pos_embed").unwrap();
    bad[k].1.shape = vec![1, 1201, 384];
    match R2Former::from_state_dict(&bad, Path::new("x.pth")) {
        Err(WeightsError::Shape { key, .. }) => assert_eq!(key, "module.backbone.pos_embed"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let missing: Vec<_> = sd.iter().filter(|(n, _)| n != "blocks.1.mlp.fc1.bias").cloned().collect();
    let e = R2Former::from_state_dict(&missing, Path::new("x.pth")).unwrap_err();
    assert!(e.to_string().contains("blocks.1.mlp.fc1.bias"), "{e}");
}
