//! The `localize_folder` example on the TUM desk test frames, with a map this test builds
//! through the library: the example's poses must be the ground truth's within 5 cm / 5°.

#[allow(dead_code)]
#[path = "../examples/localize_folder.rs"]
mod example;

use glace::{map_scene, preset, LocalEncoderChoice, Scene, SceneOptions, Silent, SplitKind, WorldToCam};

#[test]
fn localize_folder_example_on_tum_desk() {
    let Some(dir) = glace_data::testing::shared_path("data/tum_fr2_desk", "localize_folder_example_on_tum_desk") else {
        return;
    };
    if LocalEncoderChoice::XFeat.load().is_err() {
        eprintln!("SKIPPED localize_folder_example_on_tum_desk: XFeat weights unavailable");
        return;
    }
    let scene = Scene::open(&dir, &SceneOptions::default()).unwrap();
    let mut options = preset("cpu").unwrap();
    (options.iterations, options.buffer_size, options.scene_budget) = (800, 50_000, false);
    let mapped = map_scene(&scene, &options, &LocalEncoderChoice::XFeat, &mut Silent).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("tum.glace");
    mapped.map.save(&map).unwrap();

    let test = scene.split(SplitKind::Test).unwrap();
    let k = match test.frames[0].calibration {
        glace::Calibration::Matrix(k) => k,
        glace::Calibration::Focal(_) => panic!("TUM desk gives a full K"),
    };
    let d = scene.distortion.expect("TUM desk has distortion.txt");
    let args: Vec<String> = [map.display().to_string(), test.dir.join("rgb").display().to_string()]
        .into_iter()
        .chain([k.fx, k.fy, k.cx, k.cy, d.k1, d.k2, d.p1, d.p2, d.k3].map(|v| v.to_string()))
        .collect();
    let lines = example::run(&args).unwrap();
    assert_eq!(lines.len(), test.frames.len());
    let mut within = 0;
    for (line, frame) in lines.iter().zip(&test.frames) {
        let v: Vec<&str> = line.split(' ').collect();
        assert_eq!(v[0], frame.name);
        let n: Vec<f64> = v[1..8].iter().map(|s| s.parse().unwrap()).collect();
        let Ok(pose) = WorldToCam::from_quaternion_translation([n[0], n[1], n[2], n[3]], [n[4], n[5], n[6]]) else {
            continue;
        };
        let e = glace::PoseError::between(&pose.inverse(), &frame.cam_to_world);
        eprintln!("{}: {:.2}° {:.2} cm", frame.name, e.rot_deg, 100.0 * e.trans);
        within += usize::from(e.rot_deg < 5.0 && e.trans < 0.05);
    }
    assert!(within >= 4, "{within} of {} test frames within 5 cm / 5°", lines.len());
}
