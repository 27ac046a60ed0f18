//! Our map file: round trip of an official head, checksum and format errors.

use glace_data::testing::shared_path;
use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
use glace_nn::pt::load_state_dict;
use glace_nn::{GlaceMap, Head, WeightsError};

#[test]
fn map_round_trip_keeps_fp32_centres_and_outputs() {
    let Some(pt) = shared_path("fixtures/glace_head_b_k50.pt", "map_round_trip_keeps_fp32_centres_and_outputs") else {
        return;
    };
    let mut head = Head::from_state_dict(&pt, &load_state_dict(&pt, None, "").unwrap()).unwrap();
    head.centres[0] = [1234.5678, -0.000123, 98765.43]; // not representable in fp16
    let info = MapInfo {
        head: head.config,
        local_encoder: EncoderIdentity { kind: "ace".into(), weights_sha256: "00".repeat(32), dim: 512 },
        global: GlobalSource::FeaturesNpy,
        training: serde_json::json!({"scene": "test"}),
    };
    let map = GlaceMap { info: info.clone(), head: head.clone(), global: None };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("scene.glace");
    map.save(&path).unwrap();
    let back = GlaceMap::load(&path).unwrap();
    assert_eq!(back.info, info);
    assert_eq!(back.head.centres, head.centres, "centres are stored in fp32");
    let x: Vec<f32> = (0..4 * 768).map(|i| ((i % 97) as f32 - 48.0) / 40.0).collect();
    // The fixture head's weights are fp16 values already, so the forward is unchanged.
    assert_eq!(back.head.forward(&x, 4).coords_n3, head.forward(&x, 4).coords_n3);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 9_700_000, "fp16 weights: {size} bytes");

    // One flipped byte in the tensor data: the checksum catches it.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = GlaceMap::load(&path).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    std::fs::write(&path, &bytes[..n / 3]).unwrap();
    assert!(matches!(GlaceMap::load(&path), Err(WeightsError::Format { .. })));
    let err = GlaceMap::load(&pt).unwrap_err();
    assert!(err.to_string().contains("not a glace map"), "{err}");
}
