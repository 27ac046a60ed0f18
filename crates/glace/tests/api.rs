//! The public API as a program uses it: mapping from frames in memory, localizing images in
//! memory from several threads, cancellation, and the errors bad arguments get.

use glace::{
    camera_from_matrix, map_frames, preset, CancelToken, ImageView, LocalEncoderChoice, Localizer, LocalizerOptions,
    Map, MappingFrame, Observer, Silent,
};
use glace_synth::{Kind, SynthConfig};

fn xfeat_available(test: &str) -> bool {
    let ok = LocalEncoderChoice::XFeat.load().is_ok();
    if !ok {
        eprintln!("SKIPPED {test}: XFeat weights unavailable");
    }
    ok
}

/// A small synthetic room rendered in memory: (training frames, test frames).
fn room(frames: usize, test_frames: usize) -> (Vec<MappingFrame>, Vec<MappingFrame>) {
    let config = SynthConfig {
        frames,
        test_frames,
        width: 160,
        height: 120,
        focal: 131.25,
        texture_size: 128,
        ..SynthConfig::new(Kind::Room)
    };
    let scene = glace_synth::build(&config).unwrap();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for shot in &scene.shots {
        let frame = MappingFrame {
            name: shot.name.clone(),
            image: scene.render(shot).rgb,
            world_from_cam: shot.view.pose,
            camera: glace::Camera::pinhole(shot.view.intrinsics),
        };
        match shot.split {
            glace::SplitKind::Train => train.push(frame),
            glace::SplitKind::Test => test.push(frame),
        }
    }
    (train, test)
}

fn small_options() -> glace::MapOptions {
    let mut o = preset("cpu").unwrap();
    o.iterations = 150;
    o.buffer_size = 20_000;
    o.samples_per_image = 512;
    o.head_channels = 64;
    o
}

#[test]
fn maps_frames_in_memory_and_localizes_the_same_from_four_threads() {
    if !xfeat_available("maps_frames_in_memory_and_localizes_the_same_from_four_threads") {
        return;
    }
    let (train, test) = room(8, 4);
    let mapped = map_frames(train, &small_options(), &LocalEncoderChoice::XFeat, &mut Silent).unwrap();
    assert_eq!(mapped.report.frames, 8);

    // The returned map is what its file holds.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("room.glace");
    mapped.map.save(&path).unwrap();
    let reopened = Map::open(&path).unwrap();
    assert_eq!(reopened.description(), mapped.map.description());

    // The map is trained for seconds: its poses are compared, not judged, so every pose RANSAC
    // finds is kept (the default evidence rule refuses some of this map's).
    let options = || LocalizerOptions { evidence: glace::EvidenceRule::none(), ..Default::default() };
    let localizer = Localizer::new(&reopened, options()).unwrap();
    let in_memory = Localizer::new(&mapped.map, options()).unwrap();
    let query = |l: &Localizer, f: &MappingFrame| l.localize((&f.image).into(), &f.camera).unwrap();
    let one: Vec<_> = test.iter().map(|f| query(&localizer, f)).collect();
    for (f, a) in test.iter().zip(&one) {
        let b = query(&in_memory, f);
        assert_eq!((a.cam_from_world(), a.inliers()), (b.cam_from_world(), b.inliers()), "{}", f.name);
    }
    // Four threads at once on one localizer, each over every test frame.
    let many: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..4).map(|_| s.spawn(|| test.iter().map(|f| query(&localizer, f)).collect::<Vec<_>>())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &many {
        for ((f, a), b) in test.iter().zip(&one).zip(run) {
            assert_eq!(a.cam_from_world(), b.cam_from_world(), "{}: pose differs between threads", f.name);
            assert_eq!((a.inliers(), a.failure()), (b.inliers(), b.failure()), "{}", f.name);
        }
    }
    // A grey copy of a frame localizes like the RGB image whose channels are all that grey.
    let f = &test[0];
    let grey: Vec<u8> = f.image.pixels().map(|p| p.0[1]).collect();
    let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
    let (w, h) = f.image.dimensions();
    let a = localizer.localize(ImageView::gray8(w, h, &grey).unwrap(), &f.camera).unwrap();
    let b = localizer.localize(ImageView::rgb8(w, h, &rgb).unwrap(), &f.camera).unwrap();
    assert_eq!(a.cam_from_world(), b.cam_from_world());

    // The same frame held upside down, tried in all four quarter turns: one of them gives the
    // networks the upright image again, so it does at least as well as the upright query (the
    // synthetic room's views are level, so the map itself recommends upright only). Cell centres
    // sit at 8j + 4 in the reference's pixel convention, where the mirrored camera has cx' = w − cx.
    assert_eq!(localizer.turns(), [0]);
    let all = Localizer::new(&reopened, LocalizerOptions { turns: glace::Turns::All, ..options() }).unwrap();
    assert_eq!(all.turns(), [0, 1, 2, 3]);
    let turned = image::imageops::rotate180(&f.image);
    let k = f.camera.intrinsics;
    let turned_camera =
        camera_from_matrix(&[[k.fx, 0.0, w as f64 - k.cx], [0.0, k.fy, h as f64 - k.cy], [0.0, 0.0, 1.0]], None)
            .unwrap();
    let found = all.localize((&turned).into(), &turned_camera).unwrap();
    assert!(found.success() && found.inliers() >= one[0].inliers(), "{} < {}", found.inliers(), one[0].inliers());
    if found.inliers() == one[0].inliers() {
        // The upright image's own pose, in the turned camera's axes.
        let flip = nalgebra::UnitQuaternion::from_axis_angle(&nalgebra::Vector3::z_axis(), std::f64::consts::PI);
        let expected = one[0].world_from_cam().unwrap().0 * flip;
        let got = found.world_from_cam().unwrap().0;
        assert!(got.rotation.angle_to(&expected.rotation) < 1e-6, "{got} vs {expected}");
        assert!((got.translation.vector - expected.translation.vector).norm() < 1e-6);
    }

    // Coordinates on request: one world point per 8×8 cell, cell centres in the image's pixels.
    let q = glace::Query { coordinates: true, ..Default::default() };
    let c = localizer.localize_with((&f.image).into(), &f.camera, &q).unwrap().coordinates.unwrap();
    assert_eq!((c.rows, c.cols), (60, 80), "the 160×120 image is resized to 640×480 first");
    assert_eq!(c.coords_n3.len(), 60 * 80);
    assert!((c.pixels_n2[0][0] - 1.0).abs() < 1e-9 && (c.pixels_n2[0][1] - 1.0).abs() < 1e-9, "{:?}", c.pixels_n2[0]);

    colmap_export_matches_the_run(&localizer, &test, tmp.path());
}

/// The COLMAP text model of a localization run: one camera, every localized image with its
/// world-to-camera pose, and points that reproject within the threshold under their image's
/// pose at the 2D position the image lists for them.
fn colmap_export_matches_the_run(localizer: &Localizer, test: &[MappingFrame], dir: &std::path::Path) {
    let frames: Vec<glace::Frame> = test
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let calibration = glace::Calibration::Matrix(f.camera.intrinsics);
            glace::Frame::in_memory(f.name.clone(), i, f.image.clone(), f.world_from_cam, calibration)
        })
        .collect();
    let scene = glace::Scene::in_memory("room", Vec::new(), frames, None);
    let out = dir.join("colmap");
    let mut seen = 0;
    let s = glace::export_colmap(localizer, &scene, glace::SplitKind::Test, &out, 8.0, false, &mut |_, _| seen += 1)
        .unwrap();
    assert_eq!(seen, test.len());
    eprintln!("COLMAP export: {s:?}");
    assert!(s.images > 0 && s.points > 0, "{s:?}");
    assert_eq!(s.cameras, 1);
    assert_eq!(s.images + s.not_localized.len(), test.len());
    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(out.join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    let cameras = read("cameras.txt");
    assert_eq!(cameras, ["1 PINHOLE 160 120 131.25 131.25 80 60"]);
    let images = read("images.txt");
    assert_eq!(images.len(), 2 * s.images);
    let points = read("points3D.txt");
    assert_eq!(points.len(), s.points);
    for p in &points {
        let v: Vec<f64> = p.split(' ').map(|x| x.parse().unwrap()).collect();
        let (image_id, idx) = (v[8] as usize, v[9] as usize);
        assert!(v[7] < 8.0, "error {} over the threshold", v[7]);
        let head: Vec<f64> = images[2 * (image_id - 1)].split(' ').take(8).map(|x| x.parse().unwrap()).collect();
        let w2c = glace::WorldToCam::from_quaternion_translation(
            [head[1], head[2], head[3], head[4]],
            [head[5], head[6], head[7]],
        )
        .unwrap();
        let obs: Vec<f64> =
            images[2 * (image_id - 1) + 1].split(' ').skip(3 * idx).take(3).map(|x| x.parse().unwrap()).collect();
        assert_eq!(obs[2] as usize, v[0] as usize, "the image lists the point it sees");
        let cam = w2c.transform_point(&glace::nalgebra::Point3::new(v[1], v[2], v[3]));
        let (u, w) = (131.25 * cam.x / cam.z + 80.0, 131.25 * cam.y / cam.z + 60.0);
        assert!(((u - obs[0]).powi(2) + (w - obs[1]).powi(2)).sqrt() < 8.0 + 1e-3);
    }
    // Existing output is kept unless asked to replace it.
    let again = glace::export_colmap(localizer, &scene, glace::SplitKind::Test, &out, 8.0, false, &mut |_, _| {});
    assert!(matches!(again, Err(glace::Error::Usage { .. })));
    glace::export_colmap(localizer, &scene, glace::SplitKind::Test, &out, 8.0, true, &mut |_, _| {}).unwrap();
    assert_eq!(read("points3D.txt").len(), s.points, "replaced by the same model");
}

#[test]
fn mapping_stops_when_cancelled() {
    if !xfeat_available("mapping_stops_when_cancelled") {
        return;
    }
    let (train, _) = room(3, 0);
    let cancel = CancelToken::new();
    let phases = std::cell::RefCell::new(Vec::new());
    let mut observer = Observer {
        on_phase: |name: &str, _total: usize| phases.borrow_mut().push(name.to_string()),
        on_step: |_: usize, _: &str| cancel.cancel(),
        cancel: cancel.clone(),
    };
    let result = map_frames(train, &small_options(), &LocalEncoderChoice::XFeat, &mut observer);
    assert!(matches!(result, Err(glace::Error::Cancelled)), "{:?}", result.err());
    assert_eq!(phases.borrow().as_slice(), ["encoding mapping views"], "stopped in the first phase");
}

#[test]
fn bad_arguments_are_input_errors_that_name_what_is_wrong() {
    let e = ImageView::rgb8(4, 4, &[0u8; 47]).unwrap_err();
    assert!(e.is_input_error() && e.to_string().contains("47 bytes"), "{e}");
    assert!(ImageView::gray8(0, 4, &[]).is_err());
    for k in [
        [[500.0, 1.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]],
        [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.1, 1.0]],
        [[f64::NAN, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]],
        [[-500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]],
    ] {
        let e = camera_from_matrix(&k, None).unwrap_err();
        assert!(e.is_input_error() && e.to_string().starts_with("K: "), "{e}");
    }
    let k = [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]];
    assert!(camera_from_matrix(&k, Some(&[0.1, 0.0, 0.0])).unwrap_err().to_string().starts_with("distortion: "));
    let mut o = preset("cpu").unwrap();
    o.iterations = 0;
    let e = map_frames(room(1, 0).0, &o, &LocalEncoderChoice::XFeat, &mut Silent).err().unwrap();
    // The library names the field; the command line says --iterations.
    assert_eq!(e.to_string(), "iterations: 0: must be at least 1");
    // Frames through different lenses are refused by index before any work.
    let (mut frames, _) = room(2, 0);
    frames[1].camera = camera_from_matrix(&k, Some(&[0.1, 0.0, 0.0, 0.0])).unwrap();
    let e = map_frames(frames, &preset("cpu").unwrap(), &LocalEncoderChoice::XFeat, &mut Silent).err().unwrap();
    assert!(e.is_input_error() && e.to_string().contains("frame 1"), "{e}");
    let e = glace::Map::open("/definitely/not/here.glace").unwrap_err();
    assert!(e.is_input_error() && e.to_string().contains("/definitely/not/here.glace"), "{e}");
    let e = glace::decode_image(b"\x89PNG\r\n\x1a\n truncated", 1 << 20).unwrap_err();
    assert!(e.is_input_error(), "{e}");
}

#[test]
fn a_stated_budget_turns_the_scene_budget_off() {
    let o = glace::options_from_json("cpu", &serde_json::json!({"iterations": 700})).unwrap();
    assert_eq!((o.iterations, o.scene_budget), (700, false));
    let o = glace::options_from_json("cpu", &serde_json::json!({"head_channels": 128})).unwrap();
    assert!(o.scene_budget, "other options keep the scene-sized budget");
    let o = glace::options_from_json("cpu", &serde_json::json!({"iterations": 700, "scene_budget": true})).unwrap();
    assert!(o.scene_budget, "asked for explicitly: the stated iterations become the bound");
}

#[test]
fn the_map_records_the_rule_that_sized_its_budget_and_a_stated_budget_is_kept() {
    if !xfeat_available("the_map_records_the_rule_that_sized_its_budget_and_a_stated_budget_is_kept") {
        return;
    }
    let (train, _) = room(6, 0);
    // Sized by the scene (bounded by the options' iterations and buffer, as the preset's are).
    let mapped = map_frames(train.clone(), &small_options(), &LocalEncoderChoice::XFeat, &mut Silent).unwrap();
    let budget = mapped.report.budget;
    let rule = budget.rule.expect("a scene-sized budget names its rule");
    assert_eq!(budget.buffer_size, (6 * rule.visits_per_frame * 512).min(20_000));
    assert_eq!(budget.iterations, (6 * rule.samples_per_frame).max(rule.min_samples).div_ceil(1024).min(150));
    let logged = mapped.map.description().training.budget.clone().expect("the log holds the budget");
    assert_eq!((logged.buffer_size, logged.iterations), (budget.buffer_size, budget.iterations));
    assert_eq!(logged.rule.as_deref(), Some(rule.describe().as_str()));
    // Stated: used as given, no rule.
    let stated = glace::options_from_json(
        "cpu",
        &serde_json::json!({"iterations": 7, "buffer_size": 3000, "head_channels": 64}),
    )
    .unwrap();
    let mapped = map_frames(train, &stated, &LocalEncoderChoice::XFeat, &mut Silent).unwrap();
    assert_eq!(
        (mapped.report.budget.iterations, mapped.report.budget.buffer_size, mapped.report.budget.rule),
        (7, 3000, None)
    );
    let logged = mapped.map.description().training.budget.clone().unwrap();
    assert_eq!((logged.iterations, logged.buffer_size, logged.rule), (7, 3000, None));
}
