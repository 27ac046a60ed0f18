//! Parity of the ACE encoder and of the full regressor (encoder + global concat + head).

mod common;

use common::*;
use glace_data::testing::shared_path;
use glace_formats::pt::load_state_dict;
use glace_nn::{AceEncoder, Head, WeightsError};

#[test]
fn parity_ace_encoder() {
    let Some(pt) = shared_path("fixtures/ace_encoder_random.pt", "parity_ace_encoder") else { return };
    let fix = pt.with_file_name("ace_encoder.npz");
    let enc = AceEncoder::from_state_dict(&pt, &glace_formats::pt::load_state_dict(&pt, None, "").unwrap()).unwrap();
    let image: Vec<f32> = npz(&fix, "image");
    let feats = enc.forward(&image, 96, 128);
    assert_eq!((feats.height, feats.width, feats.channels), (12, 16, 512));
    let reference = chw_to_hwc(&npz::<f32>(&fix, "features"), 512, 12, 16);
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = max_err(&feats.data, &reference);
    assert!(err <= 1e-4 * scale, "max error {err:e} vs tolerance {:e}", 1e-4 * scale);
}

#[test]
fn parity_regressor_a_default() {
    let Some(enc_pt) = shared_path("fixtures/ace_encoder_random.pt", "parity_regressor_a_default") else { return };
    let head_pt = enc_pt.with_file_name("glace_head_a_default.pt");
    let fix = enc_pt.with_file_name("glace_regressor_a_default.npz");
    let enc =
        AceEncoder::from_state_dict(&enc_pt, &glace_formats::pt::load_state_dict(&enc_pt, None, "").unwrap()).unwrap();
    let head = Head::from_state_dict(&head_pt, &load_state_dict(&head_pt, None, "").unwrap()).unwrap();
    let image: Vec<f32> = npz(&fix, "image");
    let global: Vec<f32> = npz(&fix, "global_feat");
    let feats = enc.forward(&image, 96, 128);
    // Global descriptor first, then the local features, for every cell.
    let cells = feats.height * feats.width;
    let mut x = Vec::with_capacity(cells * 768);
    for c in 0..cells {
        x.extend_from_slice(&global);
        x.extend_from_slice(&feats.data[c * 512..(c + 1) * 512]);
    }
    let out = head.forward(&x, cells);
    let reference = chw_to_hwc(&npz::<f32>(&fix, "scene_coordinates"), 3, 12, 16);
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = max_err(&out.coords_n3, &reference);
    assert!(err <= 3e-5 * scale, "max error {err:e} (scale {scale})");
}

#[test]
fn wrong_weights_are_refused_with_the_keys() {
    let Some(head_pt) = shared_path("fixtures/glace_head_a_default.pt", "wrong_weights_are_refused_with_the_keys")
    else {
        return;
    };
    let err = AceEncoder::from_state_dict(&head_pt, &glace_formats::pt::load_state_dict(&head_pt, None, "").unwrap())
        .unwrap_err();
    assert!(matches!(err, WeightsError::Keys { .. }));
    assert!(err.to_string().contains("conv1.weight") && err.to_string().contains("res3_conv1.weight"), "{err}");
    let mut sd = load_state_dict(&head_pt.with_file_name("ace_encoder_random.pt"), None, "").unwrap();
    sd[2].1.shape = vec![64, 16, 3, 3];
    let err = AceEncoder::from_state_dict(&head_pt, &sd).unwrap_err();
    assert!(matches!(err, WeightsError::Shape { ref key, .. } if key == "conv2.weight"), "{err}");
    let mut head_sd = load_state_dict(&head_pt, None, "").unwrap();
    head_sd.retain(|(k, _)| k != "fc2.bias");
    let err = Head::from_state_dict(&head_pt, &head_sd).unwrap_err();
    assert!(err.to_string().contains("missing [fc2.bias]"), "{err}");
}
