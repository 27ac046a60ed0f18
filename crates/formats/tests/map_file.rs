//! Our map file: round trip of an official head, checksum and format errors.

use glace_data::testing::shared_path;
use glace_formats::map_file;
use glace_formats::pt::load_state_dict;
use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
use glace_nn::{GlaceMap, Head, WeightsError};
use glace_structure::Structure;

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
        training: glace_nn::map::TrainingLog { scene: Some("test".into()), ..Default::default() },
    };
    let map = GlaceMap { info: info.clone(), head: head.clone(), global: None, global_scale: 1.0, structure: None };
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

/// A map of a 16-wide head on XFeat cells alone.
fn tiny_xfeat_map() -> GlaceMap {
    let config =
        glace_nn::HeadConfig { c_in: 64, channels: 16, block_channels: 16, blocks: 1, clusters: 1, homogeneous: true };
    let info = MapInfo {
        head: config,
        local_encoder: EncoderIdentity { kind: "xfeat".into(), weights_sha256: "00".repeat(32), dim: 64 },
        global: GlobalSource::None,
        training: Default::default(),
    };
    GlaceMap { info, head: Head::init(config, vec![[0.0; 3]], 1), global: None, global_scale: 1.0, structure: None }
}

#[test]
fn older_map_format_is_refused_with_a_remap_hint() {
    // Format 2 maps were trained on unscaled XFeat cells; reading one with today's encoder scale
    // would silently give wrong coordinates, so the version check must refuse it by name.
    let map = tiny_xfeat_map();
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

#[test]
fn structure_round_trips_and_bad_structure_is_refused() {
    let n = 5;
    let mut features: Vec<f32> = (0..n * 64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    glace_nn::xfeat::l2_normalize_rows(&mut features, 64);
    let structure = Structure {
        points_n3: (0..n).map(|i| [0.0, 0.25, 0.5].map(|d| 0.75 * i as f32 + d - 1.0)).collect(),
        features_nd: features,
        dim: 64,
        view_of_point: vec![0, 1, 1, 0, 1],
        support: vec![1, 2, 1, 3, 1],
        score: vec![0.5; 5],
        centres_v3: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
        image_height: Some(912),
        patches_n: (0..n).map(|p| std::array::from_fn(|i| ((p * Structure::PATCH_LEN + i) * 7 % 256) as u8)).collect(),
        pixel_axes_v23: vec![[[0.001, 0.0, 0.0], [0.0, 0.001, 0.0]], [[0.0, 0.0, 0.001], [0.0, 0.001, 0.0]]],
        view_globals_vg: vec![0.6, 0.8, 0.0, 0.0, 0.0, 1.0],
    };
    let map = GlaceMap { structure: Some(structure.clone()), ..tiny_xfeat_map() };
    let back = map_file::from_bytes(&map_file::to_bytes(&map).unwrap(), "m.glace".as_ref()).unwrap();
    let got = back.structure.expect("structure read back");
    assert_eq!(
        (&got.points_n3, &got.view_of_point, &got.centres_v3, &got.support),
        (&structure.points_n3, &structure.view_of_point, &structure.centres_v3, &structure.support)
    );
    assert_eq!(got.image_height, Some(912));
    assert_eq!((&got.patches_n, &got.pixel_axes_v23), (&structure.patches_n, &structure.pixel_axes_v23));
    // Views' descriptors are stored in fp16.
    assert_eq!(got.global_dim(), 3);
    assert!(got.view_globals_vg.iter().zip(&structure.view_globals_vg).all(|(a, b)| (a - b).abs() < 1e-3));
    // Features are stored in fp16.
    assert!(got.features_nd.iter().zip(&structure.features_nd).all(|(a, b)| (a - b).abs() < 1e-3));

    // A point naming a view the map does not have, or features of the wrong width: refused by name.
    let mut bad = map.clone();
    bad.structure.as_mut().unwrap().view_of_point[2] = 7;
    let err = map_file::from_bytes(&map_file::to_bytes(&bad).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("m.glace") && err.contains("structure"), "{err}");
    let mut bad = map.clone();
    let s = bad.structure.as_mut().unwrap();
    s.features_nd.truncate(n * 32);
    s.dim = 32;
    let err = map_file::from_bytes(&map_file::to_bytes(&bad).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("structure"), "{err}");
    // View descriptors that are not a whole number per view are refused.
    let mut bad = structure.clone();
    bad.view_globals_vg.pop();
    assert!(bad.check(32..=4096).unwrap_err().contains("global descriptor"));
    // A resolution beyond any image a query is encoded at is refused.
    let mut bad = map.clone();
    bad.structure.as_mut().unwrap().image_height = Some(100_000);
    let err = map_file::from_bytes(&map_file::to_bytes(&bad).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("structure") && err.contains("100000"), "{err}");
    // Patches for some points only, or without the axes that place them: refused.
    let mut bad = map.clone();
    bad.structure.as_mut().unwrap().patches_n.truncate(3);
    let err = map_file::from_bytes(&map_file::to_bytes(&bad).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("patch"), "{err}");
    let mut bad = map.clone();
    bad.structure.as_mut().unwrap().pixel_axes_v23.clear();
    let err = map_file::from_bytes(&map_file::to_bytes(&bad).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("patch"), "{err}");
    // Right lengths in the wrong shapes (the header edited in place, offsets unchanged): refused.
    let bytes = map_file::to_bytes(&map).unwrap();
    for (name, from, to) in [
        ("pixel_axes", "\"shape\":[2,6]", "\"shape\":[4,3]"),
        ("centres", "\"shape\":[2,3]", "\"shape\":[3,2]"),
        ("views", "\"shape\":[5]", "\"shape\":[5,1]"),
        ("score", "\"shape\":[5]", "\"shape\":[1,5]"),
    ] {
        let edited = edit_tensor_header(&bytes, &format!("structure.{name}"), from, to);
        let err = map_file::from_bytes(&edited, "m.glace".as_ref()).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("shape"), "{name}: {err}");
    }
    // A structure detected below what the local encoder takes: refused by the loader.
    let mut low = map.clone();
    low.structure.as_mut().unwrap().image_height = Some(16);
    let err = map_file::from_bytes(&map_file::to_bytes(&low).unwrap(), "m.glace".as_ref()).unwrap_err().to_string();
    assert!(err.contains("16") && err.contains("at least 32"), "{err}");
    // Maps without patches (before they were kept) read as such.
    let mut old = map.clone();
    let s = old.structure.as_mut().unwrap();
    (s.patches_n, s.pixel_axes_v23) = (Vec::new(), Vec::new());
    let back = map_file::from_bytes(&map_file::to_bytes(&old).unwrap(), "m.glace".as_ref()).unwrap();
    assert!(!back.structure.unwrap().has_patches());
    let mut old = map.clone();
    old.structure.as_mut().unwrap().image_height = None;
    let back = map_file::from_bytes(&map_file::to_bytes(&old).unwrap(), "m.glace".as_ref()).unwrap();
    assert_eq!(back.structure.unwrap().image_height, None);
}

/// The map file's bytes with the header entry of tensor `name` edited from `from` to `to` (the
/// data offsets are relative to the data, so they stay valid), then resealed.
fn edit_tensor_header(bytes: &[u8], name: &str, from: &str, to: &str) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let entry = header.find(&format!("\"{name}\"")).expect("tensor in the header");
    let at = entry + header[entry..].find(from).expect("its shape");
    let mut edited = format!("{}{to}{}", &header[..at], &header[at + from.len()..]).into_bytes();
    while edited.len() % 8 != 0 {
        edited.push(b' ');
    }
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&edited);
    out.extend_from_slice(&bytes[8 + header_len..]);
    map_file::reseal(&out).expect("a readable file")
}
