//! Our map file: round trip of an official head, checksum and format errors.

use glace_data::testing::shared_path;
use glace_formats::map_file;
use glace_formats::pt::load_state_dict;
use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
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
    let map = GlaceMap { info: info.clone(), head: head.clone(), global: None, global_scale: 1.0 };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("scene.glace");
    map_file::write(&map, &path).unwrap();
    let back = map_file::read(&path).unwrap();
    assert_eq!(back.info, info);
    // A 256-d global part and no recorded σ: the reference's diffusion (0.1) is assumed.
    assert!((back.global_scale - 0.530).abs() < 1e-3, "{}", back.global_scale);
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
    let err = map_file::read(&path).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    std::fs::write(&path, &bytes[..n / 3]).unwrap();
    assert!(matches!(map_file::read(&path), Err(WeightsError::Format { .. })));
    let err = map_file::read(&pt).unwrap_err();
    assert!(err.to_string().contains("not a glace map"), "{err}");
}

#[test]
fn older_map_format_is_refused_with_a_remap_hint() {
    // Format 2 maps were trained on unscaled XFeat cells; reading one with today's encoder scale
    // would silently give wrong coordinates, so the version check must refuse it by name.
    let config =
        glace_nn::HeadConfig { c_in: 64, channels: 16, block_channels: 16, blocks: 1, clusters: 1, homogeneous: true };
    let info = MapInfo {
        head: config,
        local_encoder: EncoderIdentity { kind: "xfeat".into(), weights_sha256: "00".repeat(32), dim: 64 },
        global: GlobalSource::None,
        training: serde_json::json!({}),
    };
    let map = GlaceMap { info, head: Head::init(config, vec![[0.0; 3]], 1), global: None, global_scale: 1.0 };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.glace");
    map_file::write(&map, &path).unwrap();
    assert!(map_file::read(&path).is_ok());

    // Rewrite the version tag in the safetensors header (same length, so offsets stay valid).
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let current = format!("\"version\":\"{}\"", map_file::MAP_VERSION);
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let at = 8 + header.find(&current).expect("version tag in the header");
    bytes[at..at + current.len()].copy_from_slice(b"\"version\":\"2\"");
    std::fs::write(&path, &bytes).unwrap();

    let err = map_file::read(&path).unwrap_err().to_string();
    assert!(err.contains("old.glace"), "names the file: {err}");
    assert!(err.contains("version 2") && err.contains("map the scene again"), "{err}");
}
