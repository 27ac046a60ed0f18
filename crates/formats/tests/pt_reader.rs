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

/// Pickles that would have made the reader allocate without bound, read past its data, or nest
/// deeper than the stack allows: each is refused with an error.
#[test]
fn hostile_pickles_are_refused() {
    let path = std::path::Path::new("hostile.pkl");
    let mut zeros = |_: &str, _: &'static str| Ok(std::rc::Rc::new(vec![0f32; 64]));
    let refused =
        |pkl: &[u8], zeros: &mut dyn FnMut(&str, &'static str) -> Result<std::rc::Rc<Vec<f32>>, WeightsError>| {
            glace_formats::pt::unpickle(pkl, path, zeros).expect_err("refused").to_string()
        };
    // BINBYTES8 of 2^64 − 1 bytes.
    let mut p = vec![0x80, 2, 0x8e];
    p.extend(u64::MAX.to_le_bytes());
    assert!(refused(&p, &mut zeros).contains("bytes asked for"));
    // A tensor of 10^11 elements over a 64-value storage.
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n".to_vec();
    p.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x40tQK\x00\x8a\x05\x00\xe8\x76\x48\x17\x85K\x01\x85\x89tR.");
    let e = refused(&p, &mut zeros);
    assert!(e.contains("reads past"), "{e}");
    // Found by the fuzzer: 2^33 elements that all read value 0 (stride 0) of the storage.
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n".to_vec();
    p.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x40tQK\x00\x8a\x05\x00\x00\x00\x00\x02\x85K\x00\x85\x89tR.");
    assert!(refused(&p, &mut zeros).contains("repeats"));
    // Ten thousand nested tuples.
    let mut p = vec![0x80, 2, b'N'];
    p.extend(std::iter::repeat_n(0x85u8, 10_000));
    p.push(b'.');
    assert!(refused(&p, &mut zeros).contains("nested"));
    // A value that doubles itself through DUP and TUPLE2, 80 times (2^80 nodes).
    let mut p = vec![0x80, 2, b']', b'K', 1, b'a'];
    for _ in 0..80 {
        p.extend([b'2', 0x86]);
    }
    p.push(b'.');
    assert!(refused(&p, &mut zeros).contains("copies"));
}
