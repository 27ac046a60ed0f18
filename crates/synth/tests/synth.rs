//! Synthetic scenes: conventions (re-projection through written files), determinism, validation
//! by the scene reader, repetition across integrated rooms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use glace_data::{Scene, SceneOptions, SplitKind};
use glace_synth::render::texture_uv;
use glace_synth::rng::Rng;
use glace_synth::{build, Kind, SynthConfig};
use nalgebra::{Point3, Vector3};

fn small(kind: Kind) -> SynthConfig {
    let mut c = SynthConfig::new(kind);
    c.width = 160;
    c.height = 120;
    c.focal = 131.25;
    c.frames = 6;
    c.test_frames = 3;
    c.rooms = 4;
    c.texture_size = 128;
    c.depth = true;
    c
}

fn write(c: &SynthConfig, out: &Path) -> glace_synth::SynthScene {
    let scene = build(c).unwrap();
    scene.write(out, false, 0, &|| {}).unwrap();
    scene
}

/// Pixels of frame A, lifted with the written depth and pose and projected into frame B with
/// B's written pose, must land on the same texture coordinate as A's pixel (where visible).
#[test]
fn reprojection_between_frames_through_written_files() {
    let mut c = small(Kind::Room);
    c.width = 320;
    c.height = 240;
    c.focal = 262.5;
    c.frames = 40;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("room");
    let synth = write(&c, &out);
    let scene = Scene::open(&out, &SceneOptions::default()).unwrap();
    let split = scene.split(SplitKind::Train).unwrap();
    let world = &synth.places[0].world;
    let mut errors = Vec::new();
    let mut rng = Rng::new(5);
    for (a, b) in [(10, 11), (10, 13), (20, 22), (30, 31)] {
        let (fa, fb) = (&split.frames[a], &split.frames[b]);
        let depth_a = image::open(out.join(format!("train/depth/{}.png", fa.stem))).unwrap().into_luma16();
        let ka = fa.calibration.intrinsics(c.width, c.height);
        let kb = fb.calibration.intrinsics(c.width, c.height);
        let view_a = synth.shots[a].view;
        let view_b = synth.shots[b].view;
        for _ in 0..400 {
            let (x, y) = (rng.below(c.width as usize) as u32, rng.below(c.height as usize) as u32);
            let z = depth_a.get_pixel(x, y)[0] as f64 / 1000.0;
            if z <= 0.0 {
                continue;
            }
            let (u, v) = (x as f64 + 0.5, y as f64 + 0.5);
            let p_cam = Point3::new((u - ka.cx) / ka.fx * z, (v - ka.cy) / ka.fy * z, z);
            let p_world = fa.cam_to_world.transform_point(&p_cam);
            let q = fb.cam_to_world.inverse().transform_point(&p_world);
            if q.z <= 0.1 {
                continue;
            }
            let (ub, vb) = (kb.fx * q.x / q.z + kb.cx, kb.fy * q.y / q.z + kb.cy);
            if !(0.0..c.width as f64).contains(&ub) || !(0.0..c.height as f64).contains(&vb) {
                continue;
            }
            let (Some(ha), Some(hb)) = (view_a.cast(world, u, v), view_b.cast(world, ub, vb)) else { continue };
            if (hb.t - q.z).abs() > 0.01 || (ha.object, ha.face) != (hb.object, hb.face) {
                continue; // occluded in B
            }
            let (ta, uva) = texture_uv(world, &ha);
            let (tb, uvb) = texture_uv(world, &hb);
            assert_eq!(ta, tb);
            let tile = world.objects[ha.object].faces[ha.face].tile;
            let metres = ((uva[0] - uvb[0]).powi(2) + (uva[1] - uvb[1]).powi(2)).sqrt() * tile;
            errors.push(metres * kb.fx / q.z);
        }
    }
    errors.sort_by(|a, b| a.total_cmp(b));
    assert!(errors.len() > 500, "only {} visible points", errors.len());
    let (median, max) = (errors[errors.len() / 2], errors[errors.len() - 1]);
    assert!(max < 0.5, "max re-projection error {max:.3} px (median {median:.4})");
    assert!(median < 0.1, "median re-projection error {median:.4} px");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let c = small(Kind::Room);
    let tmp = tempfile::tempdir().unwrap();
    write(&c, &tmp.path().join("a"));
    write(&c, &tmp.path().join("b"));
    let mut c2 = c.clone();
    c2.seed = 2;
    write(&c2, &tmp.path().join("c"));
    let files = |d: &Path| -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for split in ["train", "test"] {
            for sub in ["rgb", "poses", "calibration", "depth"] {
                for e in std::fs::read_dir(d.join(split).join(sub)).unwrap() {
                    let p = e.unwrap().path();
                    m.insert(
                        format!("{split}/{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        m.insert("scene.json".into(), std::fs::read(d.join("scene.json")).unwrap());
        m
    };
    let (a, b, other) = (files(&tmp.path().join("a")), files(&tmp.path().join("b")), files(&tmp.path().join("c")));
    assert_eq!(a.len(), 4 * (6 + 3) + 1);
    assert!(a == b, "two runs with the same seed differ");
    assert_ne!(a["train/rgb/frame-00000.png"], other["train/rgb/frame-00000.png"]);
}

#[test]
fn every_kind_validates_as_a_scene() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [Kind::Room, Kind::Rooms, Kind::Outdoor] {
        let c = small(kind);
        let out = tmp.path().join(format!("{kind:?}"));
        write(&c, &out);
        let scene = Scene::open(&out, &SceneOptions::default()).unwrap();
        let per_place = if kind == Kind::Rooms { c.rooms } else { 1 };
        assert_eq!(scene.split(SplitKind::Train).unwrap().frames.len(), c.frames * per_place);
        assert_eq!(scene.split(SplitKind::Test).unwrap().frames.len(), c.test_frames * per_place);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("scene.json")).unwrap()).unwrap();
        assert_eq!(json["generator"], "glace-synth");
        assert_eq!(json["version"], glace_synth::GENERATOR_VERSION);
        // Images are textured, not blank: a healthy spread of gray levels.
        let img =
            image::open(out.join("train/rgb").join(format!("{}.png", scene.train.as_ref().unwrap().frames[0].stem)))
                .unwrap();
        let gray = img.to_luma8();
        let levels: BTreeSet<u8> = gray.pixels().map(|p| p[0]).collect();
        assert!(levels.len() > 60, "{kind:?}: only {} gray levels", levels.len());
    }
}

#[test]
fn rooms_sit_on_the_5m_grid_and_share_local_appearance() {
    let c = small(Kind::Rooms);
    let synth = build(&c).unwrap();
    let grid = 2; // ceil(sqrt(4))
    for (i, place) in synth.places.iter().enumerate() {
        let room = &place.world.objects[0];
        let centre = [(room.min[0] + room.max[0]) / 2.0, (room.min[1] + room.max[1]) / 2.0];
        assert_eq!(centre, [-5.0 * (i / grid) as f64, -5.0 * (i % grid) as f64]);
    }
    // Cameras stay inside their own room (the orbit passes close to the walls).
    for shot in &synth.shots {
        let room = &synth.places[shot.place].world.objects[0];
        let cc: Vector3<f64> = shot.view.pose.center();
        let margin = [0.0, 0.0, 0.3];
        assert!(
            (0..3).all(|a| cc[a] > room.min[a] + margin[a] && cc[a] < room.max[a] - margin[a]),
            "camera {cc:?} outside its room"
        );
    }
    // The same wall material (texture and offset) appears in at least 3 of the rooms…
    let mut rooms_per_wall_key: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, p) in synth.places.iter().enumerate() {
        for k in &p.material_keys[..4] {
            rooms_per_wall_key.entry(k.clone()).or_default().insert(i);
        }
    }
    let most = rooms_per_wall_key.values().map(BTreeSet::len).max().unwrap();
    assert!(most >= 3, "no wall appearance repeats in 3 rooms: {rooms_per_wall_key:?}");
    // …and identical furniture stands in every room, while no two rooms are arranged alike.
    for p in &synth.places {
        assert!(p.furniture.len() >= 3);
    }
    let layouts: BTreeSet<String> = synth
        .places
        .iter()
        .map(|p| format!("{:?}", p.world.objects.iter().map(|o| (o.min, o.max)).collect::<Vec<_>>()))
        .collect();
    let walls: BTreeSet<String> = synth.places.iter().map(|p| p.material_keys[..4].join("|")).collect();
    assert_eq!(layouts.len(), synth.places.len());
    assert!(walls.len() > 1);
    // The table and its objects (the last five boxes) are the same in every room, at the same
    // place relative to the room, with the same materials.
    let centre_set = |p: &glace_synth::scenes::Place| {
        let room = &p.world.objects[0];
        let c = [(room.min[0] + room.max[0]) / 2.0, (room.min[1] + room.max[1]) / 2.0];
        let objects = &p.world.objects[p.world.objects.len() - 5..];
        objects
            .iter()
            .map(|o| (format!("{:.6?}", [o.min[0] - c[0], o.min[1] - c[1], o.max[0] - c[0], o.max[1] - c[1]]), o.faces))
            .collect::<Vec<_>>()
    };
    for p in &synth.places[1..] {
        assert_eq!(centre_set(p), centre_set(&synth.places[0]));
    }
}

#[test]
fn bad_parameters_are_refused() {
    let mut c = small(Kind::Room);
    c.width = 4;
    assert!(matches!(build(&c), Err(glace_synth::SynthError::Config(_))));
    let mut c = small(Kind::Room);
    c.texture_size = 100;
    assert!(build(&c).is_err());
    let mut c = small(Kind::Rooms);
    c.rooms = 0;
    assert!(build(&c).is_err());
    let c = small(Kind::Room);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), "x").unwrap();
    let err = build(&c).unwrap().write(tmp.path(), false, 0, &|| {}).unwrap_err();
    assert!(err.to_string().contains("--force"));
    assert!(tmp.path().join("keep.txt").exists());
}
