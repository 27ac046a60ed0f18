//! The PyTorch checkpoint reader on the reference's files.

use glace_data::testing::shared_path;
use glace_formats::pt::{load, load_state_dict};
use glace_nn::WeightsError;

#[test]
fn reads_ace_encoder_state_dict() {
    let Some(p) = shared_path("fixtures/ace_encoder_random.pt", "reads_ace_encoder_state_dict") else { return };
    let sd = load_state_dict(&p, None, "").unwrap();
    assert_eq!(sd.len(), 22);
    assert_eq!(sd[0].0, "conv1.weight");
    assert_eq!(sd[0].1.shape, vec![32, 1, 3, 3]);
    assert_eq!(sd.iter().map(|(_, t)| t.data.len()).sum::<usize>(), 5_568_000);
    assert!(sd.iter().all(|(_, t)| t.dtype == "float32"));
}

#[test]
fn reads_fp16_head_map_with_metadata() {
    let Some(p) = shared_path("fixtures/glace_head_b_k50.pt", "reads_fp16_head_map_with_metadata") else { return };
    let sd = load_state_dict(&p, None, "").unwrap();
    let names: Vec<&str> = sd.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&names[..6], ["max_scale", "min_scale", "max_inv_scale", "h_beta", "min_inv_scale", "centers"]);
    let h_beta = &sd[3].1;
    assert_eq!((h_beta.dtype, h_beta.data[0]), ("float16", 0.92431640625));
    assert_eq!(sd[5].1.shape, vec![1, 50, 3, 1, 1]);
    let params: usize =
        sd.iter().filter(|(k, _)| k.ends_with(".weight") || k.ends_with(".bias")).map(|(_, t)| t.data.len()).sum();
    assert_eq!(params, 4_766_262);
}

#[test]
fn reads_r2former_training_checkpoint() {
    let Some(p) = shared_path("fixtures/r2former_random_2blocks.pth", "reads_r2former_training_checkpoint") else {
        return;
    };
    let root = load(&p).unwrap();
    assert!(root.get("optimizer_state_dict").is_some());
    let sd = load_state_dict(&p, Some("model_state_dict"), "module.backbone.").unwrap();
    assert_eq!(sd.len(), 35);
    assert_eq!(sd.iter().map(|(_, t)| t.data.len()).sum::<usize>(), 4_504_448);
    let pos = sd.iter().find(|(k, _)| k == "pos_embed").unwrap();
    assert_eq!(pos.1.shape, vec![1, 1202, 384]);
}

#[test]
fn truncated_and_foreign_files_fail_clearly() {
    let Some(p) = shared_path("fixtures/glace_head_a_default.pt", "truncated_and_foreign_files_fail_clearly") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let cut = tmp.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, WeightsError::Format { .. }) && err.to_string().contains("cut.pt"), "{err}");
    let txt = tmp.path().join("notes.pt");
    std::fs::write(&txt, "hello").unwrap();
    assert!(load(&txt).unwrap_err().to_string().contains("not a PyTorch zip archive"));
    assert!(matches!(load(&tmp.path().join("absent.pt")), Err(WeightsError::Io { .. })));
    let err = load_state_dict(&p, Some("model_state_dict"), "").unwrap_err();
    assert!(err.to_string().contains("model_state_dict"));
}
