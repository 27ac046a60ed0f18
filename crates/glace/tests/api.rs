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
            cam_to_world: shot.view.pose,
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
    let mapped = map_frames(train, None, &small_options(), &LocalEncoderChoice::XFeat, &mut Silent).unwrap();
    assert_eq!(mapped.report.frames, 8);

    // The returned map is what its file holds.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("room.glace");
    mapped.map.save(&path).unwrap();
    let reopened = Map::open(&path).unwrap();
    assert_eq!(reopened.description(), mapped.map.description());

    let localizer = Localizer::new(&reopened, LocalizerOptions::default()).unwrap();
    let in_memory = Localizer::new(&mapped.map, LocalizerOptions::default()).unwrap();
    let query = |l: &Localizer, f: &MappingFrame| l.localize((&f.image).into(), &f.camera).unwrap();
    let one: Vec<_> = test.iter().map(|f| query(&localizer, f)).collect();
    for (f, a) in test.iter().zip(&one) {
        let b = query(&in_memory, f);
        assert_eq!((a.world_to_cam, a.inliers), (b.world_to_cam, b.inliers), "{}", f.name);
    }
    // Four threads at once on one localizer, each over every test frame.
    let many: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..4).map(|_| s.spawn(|| test.iter().map(|f| query(&localizer, f)).collect::<Vec<_>>())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &many {
        for ((f, a), b) in test.iter().zip(&one).zip(run) {
            assert_eq!(a.world_to_cam, b.world_to_cam, "{}: pose differs between threads", f.name);
            assert_eq!((a.inliers, &a.failure), (b.inliers, &b.failure), "{}", f.name);
        }
    }
    // A grey copy of a frame localizes like the RGB image whose channels are all that grey.
    let f = &test[0];
    let grey: Vec<u8> = f.image.pixels().map(|p| p.0[1]).collect();
    let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
    let (w, h) = f.image.dimensions();
    let a = localizer.localize(ImageView::gray8(w, h, &grey).unwrap(), &f.camera).unwrap();
    let b = localizer.localize(ImageView::rgb8(w, h, &rgb).unwrap(), &f.camera).unwrap();
    assert_eq!(a.world_to_cam, b.world_to_cam);

    // Coordinates on request: one world point per 8×8 cell, cell centres in the image's pixels.
    let q = glace::Query { coordinates: true, ..Default::default() };
    let c = localizer.localize_with((&f.image).into(), &f.camera, &q).unwrap().coordinates.unwrap();
    assert_eq!((c.rows, c.cols), (60, 80), "the 160×120 image is resized to 640×480 first");
    assert_eq!(c.coords_n3.len(), 60 * 80);
    assert!((c.pixels_n2[0][0] - 1.0).abs() < 1e-9 && (c.pixels_n2[0][1] - 1.0).abs() < 1e-9, "{:?}", c.pixels_n2[0]);
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
    let result = map_frames(train, None, &small_options(), &LocalEncoderChoice::XFeat, &mut observer);
    assert!(matches!(result, Err(glace::Error::Cancelled)), "{:?}", result.err());
    assert_eq!(phases.borrow().as_slice(), ["global descriptors"], "stopped in the first phase");
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
    let e = map_frames(room(1, 0).0, None, &o, &LocalEncoderChoice::XFeat, &mut Silent).err().unwrap();
    assert_eq!(e.to_string(), "--iterations: 0: must be at least 1");
    let e = glace::Map::open("/definitely/not/here.glace").unwrap_err();
    assert!(e.is_input_error() && e.to_string().contains("/definitely/not/here.glace"), "{e}");
    let e = glace::decode_image(b"\x89PNG\r\n\x1a\n truncated", 1 << 20).unwrap_err();
    assert!(e.is_input_error(), "{e}");
}
