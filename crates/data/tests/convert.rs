//! Dataset converters: the raw 7-Scenes excerpt from ../shared, and small fixtures built here
//! that follow each format's public specification.

use std::fs;
use std::path::{Path, PathBuf};

use glace_data::convert::{self, colmap::ColmapSplit, sevenscenes::PoseVariant};
use glace_data::testing::shared_path;
use glace_data::{DataError, Scene, SceneOptions, SplitKind};
use glace_geometry::{CamToWorld, WorldToCam};
use nalgebra::{Isometry3, Matrix4, Point3, Translation3, UnitQuaternion, Vector3};

fn execute(plan: &convert::Plan, out: &Path) -> Scene {
    plan.execute(out, false, false, &|| {}).unwrap();
    Scene::open(out, &SceneOptions::default()).unwrap()
}

fn png(path: &Path, w: u32, h: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 77])).save(path).unwrap();
}

fn pose(k: f64) -> CamToWorld {
    CamToWorld(Isometry3::new(Vector3::new(0.3 * k, -0.2 + k, 1.5), Vector3::new(0.1 * k, 0.7 - 0.2 * k, -0.3)))
}

fn close(a: &CamToWorld, b: &CamToWorld) -> f64 {
    (a.to_matrix() - b.to_matrix()).abs().max()
}

fn frame<'a>(scene: &'a Scene, split: SplitKind, name: &str) -> &'a glace_data::Frame {
    scene.split(split).unwrap().frames.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no frame {name}"))
}

// ---------------------------------------------------------------- 7-Scenes (real excerpt)

fn seven() -> Option<PathBuf> {
    shared_path("data/raw_7scenes_stairs_sample/stairs", "convert 7scenes")
}

/// Forward-backward reprojection of depth between two frames of one sequence, in depth-camera
/// pixels (f 585, principal point (320, 240)), with the depth-sensor poses given.
fn depth_consistency(a: &Path, b: &Path, pa: &Matrix4<f64>, pb: &Matrix4<f64>) -> f64 {
    let da = image::open(a).unwrap().into_luma16();
    let db = image::open(b).unwrap().into_luma16();
    let (f, cx, cy) = (585.0, 320.0, 240.0);
    let valid = |d: u16| d != 0 && d != 65535;
    let (pb_inv, pa_inv) = (pb.try_inverse().unwrap(), pa.try_inverse().unwrap());
    let mut errs = Vec::new();
    for v in (0..480).step_by(7) {
        for u in (0..640).step_by(7) {
            let d = da.get_pixel(u, v)[0];
            if !valid(d) {
                continue;
            }
            let z = d as f64 / 1000.0;
            let x = Point3::new((u as f64 - cx) / f * z, (v as f64 - cy) / f * z, z);
            let xb = pb_inv.transform_point(&pa.transform_point(&x));
            if xb.z <= 0.1 {
                continue;
            }
            let (ub, vb) = ((f * xb.x / xb.z + cx).round(), (f * xb.y / xb.z + cy).round());
            if !(0.0..640.0).contains(&ub) || !(0.0..480.0).contains(&vb) {
                continue;
            }
            let d2 = db.get_pixel(ub as u32, vb as u32)[0];
            if !valid(d2) {
                continue;
            }
            let z2 = d2 as f64 / 1000.0;
            let y = Point3::new((ub - cx) / f * z2, (vb - cy) / f * z2, z2);
            let ya = pa_inv.transform_point(&pb.transform_point(&y));
            let (ua, va) = (f * ya.x / ya.z + cx, f * ya.y / ya.z + cy);
            errs.push(((ua - u as f64).powi(2) + (va - v as f64).powi(2)).sqrt());
        }
    }
    errs.sort_by(|a, b| a.total_cmp(b));
    if errs.len() < 1000 {
        return f64::INFINITY;
    }
    errs[errs.len() / 2]
}

#[test]
fn sevenscenes_sample_converts_and_agrees_with_depth() {
    let Some(input) = seven() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let plan = convert::sevenscenes::plan(&input, &PoseVariant::Calibrated, false).unwrap();
    let scene = execute(&plan, &tmp.path().join("stairs"));
    let (train, test) = (scene.split(SplitKind::Train).unwrap(), scene.split(SplitKind::Test).unwrap());
    assert_eq!((train.frames.len(), test.frames.len()), (6, 6));
    // TrainSplit = sequences 2 and 3, TestSplit = 1 and 4.
    assert!(train.frames.iter().all(|f| f.name.starts_with("seq-02") || f.name.starts_with("seq-03")));
    assert!(test.frames.iter().all(|f| f.name.starts_with("seq-01") || f.name.starts_with("seq-04")));
    assert_eq!(test.frames[0].name, "seq-01-frame-000000.color.jpg");
    assert_eq!(test.frames[0].calibration.focal(), (525.0, 525.0));

    // Converted (RGB) poses back to the depth sensor: P_depth = P_rgb · D.
    let d = Matrix4::from_fn(|r, c| convert::sevenscenes::DEPTH_TO_RGB[r][c]);
    let depth_pose = |name: &str| frame(&scene, SplitKind::Test, name).cam_to_world.to_matrix() * d;
    let (a, b) = (depth_pose("seq-04-frame-000000.color.jpg"), depth_pose("seq-04-frame-000002.color.jpg"));
    assert!((a.column(3) - b.column(3)).norm() > 0.03, "frames must move for the check to mean anything");
    let depth = |seq_frame: &str| input.join(format!("{}/{}.depth.png", &seq_frame[..6], &seq_frame[7..]));
    let err = depth_consistency(&depth("seq-04-frame-000000"), &depth("seq-04-frame-000002"), &a, &b);
    assert!(err < 2.0, "median depth reprojection error {err:.2} px");
    // Power check on two sequences' frames 27 cm apart (seq-02 train, seq-04 test): correct poses
    // stay consistent (0.7 px measured), the pose direction confused does not (12.5 px).
    let (pa, pb) = (
        frame(&scene, SplitKind::Train, "seq-02-frame-000000.color.jpg").cam_to_world.to_matrix() * d,
        frame(&scene, SplitKind::Test, "seq-04-frame-000000.color.jpg").cam_to_world.to_matrix() * d,
    );
    let (x, y) = (depth("seq-02-frame-000000"), depth("seq-04-frame-000000"));
    let far = depth_consistency(&x, &y, &pa, &pb);
    let wrong = depth_consistency(&x, &y, &pa.try_inverse().unwrap(), &pb.try_inverse().unwrap());
    assert!(far < 2.0, "median error {far:.2} px across sequences");
    assert!(wrong > 5.0, "inverted poses gave only {wrong:.2} px");
}

#[test]
fn sevenscenes_variants() {
    let Some(input) = seven() else { return };
    let orig = convert::sevenscenes::plan(&input, &PoseVariant::Original, false).unwrap();
    let raw = glace_data::text::read_pose(&input.join("seq-02/frame-000001.pose.txt"), 1e-3).unwrap();
    let f = orig.frames.iter().find(|f| f.rgb_name == "seq-02-frame-000001.color.jpg").unwrap();
    assert!(close(&f.pose, &raw) < 1e-12);
    // PGT: world-to-camera quaternion + translation per frame, with a focal.
    let tmp = tempfile::tempdir().unwrap();
    let w2c = pose(1.0).inverse();
    let (q, t) = w2c.quaternion_translation();
    let line =
        |name: &str| format!("{name}.color.png {} {} {} {} {} {} {} 520.5\n", q[0], q[1], q[2], q[3], t[0], t[1], t[2]);
    let train: String =
        ["seq-02", "seq-03"].iter().flat_map(|s| (0..3).map(move |i| line(&format!("{s}/frame-00000{i}")))).collect();
    fs::write(tmp.path().join("stairs_train.txt"), train).unwrap();
    fs::write(tmp.path().join("stairs_test.txt"), line("seq-01/frame-000000")).unwrap();
    let pgt = convert::sevenscenes::plan(&input, &PoseVariant::Pgt(tmp.path().into()), false).unwrap();
    assert_eq!((pgt.count(SplitKind::Train), pgt.count(SplitKind::Test)), (6, 1));
    assert_eq!(pgt.skipped.len(), 5);
    assert!(close(&pgt.frames[0].pose, &pose(1.0)) < 1e-9);
    assert_eq!(pgt.frames[0].calibration.focal(), (520.5, 520.5));
}

#[test]
fn sevenscenes_missing_split_file() {
    let Some(input) = seven() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("stairs");
    fs::create_dir_all(&copy).unwrap();
    fs::copy(input.join("TestSplit.txt"), copy.join("TestSplit.txt")).unwrap();
    let err = convert::sevenscenes::plan(&copy, &PoseVariant::Calibrated, false).unwrap_err();
    assert!(err.to_string().contains("TrainSplit.txt"), "{err}");
    fs::write(copy.join("TrainSplit.txt"), "sequence2\r\nseq3\r\n").unwrap();
    let err = convert::sevenscenes::plan(&copy, &PoseVariant::Calibrated, false).unwrap_err();
    assert!(err.to_string().contains("TrainSplit.txt:2"), "{err}");
}

// ---------------------------------------------------------------- 12-Scenes

#[test]
fn twelvescenes_room_with_inf_pose() {
    let tmp = tempfile::tempdir().unwrap();
    let room = tmp.path().join("apt1/kitchen");
    fs::create_dir_all(room.join("data")).unwrap();
    fs::write(room.join("info.txt"), "m_versionNumber = 4\nm_colorWidth = 1296\nm_colorHeight = 968\nm_calibrationColorIntrinsic = 1170 0 648 0 0 1166 484 0 0 0 1 0 0 0 0 1 \n").unwrap();
    fs::write(room.join("split.txt"), "sequence0 [frames=2]  [start=0 ; end=1]\n").unwrap();
    for i in 0..5 {
        png(&room.join(format!("data/frame-{i:06}.color.png")), 24, 18);
        let text = if i == 3 {
            "INF INF INF INF\nINF INF INF INF\nINF INF INF INF\n0 0 0 1\n".to_string()
        } else {
            glace_data::writer::format_pose(&pose(i as f64))
        };
        fs::write(room.join(format!("data/frame-{i:06}.pose.txt")), text).unwrap();
    }
    let plan = convert::twelvescenes::plan(&room, None, false).unwrap();
    assert_eq!((plan.count(SplitKind::Test), plan.count(SplitKind::Train)), (2, 2));
    assert_eq!(plan.skipped.len(), 1);
    assert!(plan.skipped[0].contains("frame-000003.pose.txt"));
    let scene = execute(&plan, &tmp.path().join("out"));
    let f = frame(&scene, SplitKind::Train, "frame-000004.color.png");
    assert_eq!(f.calibration.focal(), (1168.0, 1168.0));
    assert!(close(&f.cam_to_world, &pose(4.0)) < 1e-9);
    fs::write(room.join("split.txt"), "sequence0\n").unwrap();
    let err = convert::twelvescenes::plan(&room, None, false).unwrap_err();
    assert!(err.to_string().contains("split.txt:1"), "{err}");
}

// ---------------------------------------------------------------- Cambridge and Aachen (NVM)

#[test]
fn cambridge_scene() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("ShopFacade");
    let gt = [pose(0.0), pose(1.0), pose(2.0)];
    let mut train = String::from("Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n");
    let mut nvm = String::from("NVM_V3\n\n3\n");
    for (i, p) in gt.iter().enumerate() {
        let name = format!("seq1/frame{i:05}.png");
        png(&s.join(&name), 64, 36);
        let c = p.center();
        let q = p.inverse().0.rotation.quaternion().coords; // (i, j, k, w)
        let (w, x, y, z) = if q.w >= 0.0 { (q.w, q.x, q.y, q.z) } else { (-q.w, -q.x, -q.y, -q.z) };
        train.push_str(&format!("{name} {} {} {} {w} {x} {y} {z}\n", c.x, c.y, c.z));
        nvm.push_str(&format!(
            "seq1/frame{i:05}.jpg {} {w} {x} {y} {z} {} {} {} 0.01 0\n",
            100.0 + i as f64,
            c.x,
            c.y,
            c.z
        ));
    }
    fs::write(s.join("dataset_train.txt"), &train).unwrap();
    fs::write(s.join("dataset_test.txt"), "a\nb\nc\n").unwrap();
    fs::write(s.join("reconstruction.nvm"), nvm).unwrap();
    let plan = convert::cambridge::plan(&s, 24).unwrap();
    let scene = execute(&plan, &tmp.path().join("out"));
    let f = frame(&scene, SplitKind::Train, "seq1_frame00001.png");
    assert_eq!(f.image_size, Some((43, 24)), "shorter side 24, other ceil(24·64/36)");
    assert!((f.calibration.focal().0 - 101.0 * 43.0 / 64.0).abs() < 1e-9);
    assert!(close(&f.cam_to_world, &gt[1]) < 1e-9);
    fs::write(s.join("dataset_test.txt"), "a\nb\nc\nseq1/frame00000.png 1 2 3\n").unwrap();
    let err = convert::cambridge::plan(&s, 24).unwrap_err();
    assert!(err.to_string().contains("dataset_test.txt:4"), "{err}");
}

#[test]
fn aachen_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("aachen");
    let p = pose(1.0);
    let q = p.inverse().0.rotation.quaternion().coords;
    let c = p.center();
    png(&a.join("images_upright/db/1.jpg"), 40, 30);
    png(&a.join("images_upright/query/day/milestone/q1.jpg"), 30, 40);
    fs::write(
        a.join("aachen_cvpr2018_db.nvm"),
        format!("NVM_V3\n\n1\ndb/1.jpg 50 {} {} {} {} {} {} {} -0.05 0\n\n0\n", q.w, q.x, q.y, q.z, c.x, c.y, c.z),
    )
    .unwrap();
    fs::write(a.join("aachen_cvpr2018_db.list.txt"), "db/1.jpg\n").unwrap();
    fs::write(
        a.join("day_time_queries_with_intrinsics.txt"),
        "query/day/milestone/q1.jpg SIMPLE_RADIAL 30 40 45 15 20 0.01\n",
    )
    .unwrap();
    fs::write(a.join("night_time_queries_with_intrinsics.txt"), "").unwrap();
    let plan = convert::aachen::plan(&a, 24).unwrap();
    assert!(plan.dummy_test_poses);
    let out = tmp.path().join("out");
    let scene = execute(&plan, &out);
    let db = frame(&scene, SplitKind::Train, "db_1.jpg");
    assert!(close(&db.cam_to_world, &p) < 1e-9);
    assert_eq!(db.image_size, Some((32, 24)));
    let query = frame(&scene, SplitKind::Test, "query_day_milestone_q1.jpg");
    assert_eq!(query.image_size, Some((24, 32)), "portrait: width 24");
    assert!((query.calibration.focal().0 - 45.0 * 24.0 / 30.0).abs() < 1e-9);
    assert!(out.join("test").join(glace_data::scene::DUMMY_POSES_MARKER).exists());
}

// ---------------------------------------------------------------- rooms

fn tiny_scene(root: &Path, n: usize, offset: f64, features: bool) {
    for split in ["train", "test"] {
        for i in 0..n {
            png(&root.join(format!("{split}/rgb/f{i}.png")), 16, 12);
            fs::create_dir_all(root.join(format!("{split}/poses"))).unwrap();
            fs::create_dir_all(root.join(format!("{split}/calibration"))).unwrap();
            let mut p = pose(i as f64);
            p.0.translation.vector.x += offset;
            fs::write(root.join(format!("{split}/poses/f{i}.txt")), glace_data::writer::format_pose(&p)).unwrap();
            fs::write(root.join(format!("{split}/calibration/f{i}.txt")), "100").unwrap();
        }
        if features {
            let data: Vec<f32> =
                (0..n * 4).map(|k| if k % 4 == (k / 4 + offset as usize) % 4 { 1.0 } else { 0.0 }).collect();
            glace_data::features::write_features(&root.join(format!("{split}/features.npy")), n, 4, &data).unwrap();
        }
    }
}

#[test]
fn rooms_are_placed_on_the_grid() {
    let tmp = tempfile::tempdir().unwrap();
    for (k, name) in ["roomA", "roomB", "roomC"].iter().enumerate() {
        tiny_scene(&tmp.path().join(name), 2, k as f64 * 10.0, true);
    }
    fs::write(tmp.path().join("i3.txt"), "roomA 0.5 0 1\nroomB 10 0 1\nroomC 20 0 1").unwrap();
    let plan = convert::rooms::plan(&tmp.path().join("i3.txt"), &SceneOptions::default()).unwrap();
    let scene = execute(&plan, &tmp.path().join("out"));
    // g = ceil(sqrt(3)) = 2: roomC is row 1, col 0 → centre (−5, 0, 0).
    let f = frame(&scene, SplitKind::Test, "roomC_f1.png");
    let mut expected = pose(1.0);
    expected.0.translation.vector +=
        Vector3::new(20.0, 0.0, 0.0) + Vector3::new(-5.0, 0.0, 0.0) - Vector3::new(20.0, 0.0, 1.0);
    assert!(close(&f.cam_to_world, &expected) < 1e-9);
    let test = scene.split(SplitKind::Test).unwrap();
    assert_eq!(test.features.as_ref().unwrap().rows, 6);
    // roomB rows follow roomA's in sorted order; roomB (offset 10) has its one-hot shifted by 2.
    assert_eq!(test.global_feature(frame(&scene, SplitKind::Test, "roomB_f0.png")).unwrap(), &[0.0, 0.0, 1.0, 0.0]);
    fs::write(tmp.path().join("bad.txt"), "roomA 0.5 0\n").unwrap();
    let err = convert::rooms::plan(&tmp.path().join("bad.txt"), &SceneOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bad.txt:1"), "{err}");
}

// ---------------------------------------------------------------- COLMAP

fn colmap_fixture(dir: &Path, binary: bool, second_model: &str) -> Vec<(String, CamToWorld)> {
    let imgs = dir.join("images");
    let model = dir.join("sparse/0");
    fs::create_dir_all(&model).unwrap();
    let gt: Vec<(String, CamToWorld)> = (0..3).map(|i| (format!("sub/img{i}.png"), pose(i as f64))).collect();
    for (n, _) in &gt {
        png(&imgs.join(n), 32, 24);
    }
    // Camera 1 PINHOLE, camera 2 as given (the distortion must then match none).
    let cams: [(u32, &str, Vec<f64>); 2] =
        [(1, "PINHOLE", vec![30.0, 31.0, 16.5, 12.25]), (2, second_model, vec![29.0, 16.0, 12.0])];
    if binary {
        let mut b = Vec::new();
        b.extend(2u64.to_le_bytes());
        for (id, model, params) in &cams {
            let mid = match *model {
                "SIMPLE_PINHOLE" => 0i32,
                "PINHOLE" => 1,
                "OPENCV_FISHEYE" => 5,
                _ => 99,
            };
            b.extend((*id as i32).to_le_bytes());
            b.extend(mid.to_le_bytes());
            b.extend(32u64.to_le_bytes());
            b.extend(24u64.to_le_bytes());
            for p in params {
                b.extend(p.to_le_bytes());
            }
        }
        fs::write(model.join("cameras.bin"), b).unwrap();
        let mut b = Vec::new();
        b.extend(3u64.to_le_bytes());
        for (i, (n, p)) in gt.iter().enumerate() {
            let (q, t) = p.inverse().quaternion_translation();
            b.extend((i as i32 + 1).to_le_bytes());
            for v in q.iter().chain(t.iter()) {
                b.extend(v.to_le_bytes());
            }
            b.extend((if i == 2 { 2i32 } else { 1 }).to_le_bytes());
            b.extend(n.as_bytes());
            b.push(0);
            b.extend(1u64.to_le_bytes());
            b.extend(1.5f64.to_le_bytes());
            b.extend(2.5f64.to_le_bytes());
            b.extend((-1i64).to_le_bytes());
        }
        fs::write(model.join("images.bin"), b).unwrap();
    } else {
        let mut c = String::from(
            "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n",
        );
        for (id, model, params) in &cams {
            c.push_str(&format!(
                "{id} {model} 32 24 {}\n",
                params.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
            ));
        }
        fs::write(model.join("cameras.txt"), c).unwrap();
        let mut s = String::from("# Image list with two lines of data per image:\n");
        for (i, (n, p)) in gt.iter().enumerate() {
            let (q, t) = p.inverse().quaternion_translation();
            s.push_str(&format!(
                "{} {} {} {} {} {} {} {} {} {n}\n",
                i + 1,
                q[0],
                q[1],
                q[2],
                q[3],
                t[0],
                t[1],
                t[2],
                if i == 2 { 2 } else { 1 }
            ));
            s.push_str(if i == 1 { "\n" } else { "1.5 2.5 -1\n" });
        }
        fs::write(model.join("images.txt"), s).unwrap();
    }
    gt
}

#[test]
fn colmap_text_and_binary_round_trip() {
    for binary in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let gt = colmap_fixture(tmp.path(), binary, "SIMPLE_PINHOLE");
        let plan = convert::colmap::plan(
            &tmp.path().join("sparse/0"),
            &tmp.path().join("images"),
            &ColmapSplit::Every { every: 3, offset: 1 },
        )
        .unwrap();
        let scene = execute(&plan, &tmp.path().join("out"));
        assert_eq!(scene.split(SplitKind::Test).unwrap().frames.len(), 1);
        for (i, (name, p)) in gt.iter().enumerate() {
            let split = if i == 1 { SplitKind::Test } else { SplitKind::Train };
            let f = frame(&scene, split, &name.replace('/', "_"));
            assert!(close(&f.cam_to_world, p) < 1e-9, "binary={binary} {name}");
            let k = f.calibration.intrinsics(32, 24);
            let expected = if i == 2 { (29.0, 29.0, 16.0, 12.0) } else { (30.0, 31.0, 16.5, 12.25) };
            assert_eq!((k.fx, k.fy, k.cx, k.cy), expected);
        }
        assert!(scene.distortion.is_none());
    }
}

#[test]
fn colmap_unsupported_model_and_mixed_distortion() {
    let tmp = tempfile::tempdir().unwrap();
    colmap_fixture(tmp.path(), true, "OPENCV_FISHEYE");
    let split = ColmapSplit::Every { every: 8, offset: 0 };
    let err = convert::colmap::plan(&tmp.path().join("sparse/0"), &tmp.path().join("images"), &split).unwrap_err();
    assert!(err.to_string().contains("cameras.bin") && err.to_string().contains("OPENCV_FISHEYE"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    colmap_fixture(tmp.path(), false, "SIMPLE_PINHOLE");
    let cams = tmp.path().join("sparse/0/cameras.txt");
    fs::write(&cams, "1 PINHOLE 32 24 30 31 16.5 12.25\n2 THIN_PRISM_FISHEYE 32 24 1 2 3\n").unwrap();
    let err = convert::colmap::plan(&tmp.path().join("sparse/0"), &tmp.path().join("images"), &split).unwrap_err();
    assert!(err.to_string().contains("cameras.txt:2"), "{err}");
    fs::write(&cams, "1 PINHOLE 32 24 30 31 16.5 12.25\n2 SIMPLE_RADIAL 32 24 29 16 12 0.1\n").unwrap();
    let err = convert::colmap::plan(&tmp.path().join("sparse/0"), &tmp.path().join("images"), &split).unwrap_err();
    assert!(err.to_string().contains("different lens distortion"), "{err}");
}

// ---------------------------------------------------------------- TUM

#[test]
fn tum_round_trip_with_interpolation() {
    let tmp = tempfile::tempdir().unwrap();
    let seq = tmp.path().join("rgbd_dataset_freiburg2_desk");
    let (p0, p1) = (pose(0.0), pose(0.2));
    let line = |t: f64, p: &CamToWorld| {
        let c = p.center();
        let q = p.0.rotation.quaternion().coords;
        format!("{t:.4} {} {} {} {} {} {} {}\n", c.x, c.y, c.z, q.x, q.y, q.z, q.w)
    };
    let gt = format!(
        "# ground truth trajectory\n# timestamp tx ty tz qx qy qz qw\n{}{}",
        line(100.0, &p0),
        line(100.01, &p1)
    );
    fs::write(
        seq.join("groundtruth.txt")
            .parent()
            .map(|p| fs::create_dir_all(p))
            .map(|_| seq.join("groundtruth.txt"))
            .unwrap(),
        gt,
    )
    .unwrap();
    let mut rgb = String::from("# color images\n");
    for (k, t) in ["100.000000", "100.005000", "100.010000", "200.000000"].iter().enumerate() {
        png(&seq.join(format!("rgb/{t}.png")), 16, 12);
        rgb.push_str(&format!("{t} rgb/{t}.png\n"));
        let _ = k;
    }
    fs::write(seq.join("rgb.txt"), rgb).unwrap();
    let cam = convert::tum::preset("fr2").unwrap();
    let plan = convert::tum::plan(&seq, cam, 0, 0, 0.05).unwrap();
    assert_eq!(plan.skipped.len(), 1, "200.0 is outside the ground truth");
    let scene = execute(&plan, &tmp.path().join("out"));
    assert!(close(&frame(&scene, SplitKind::Train, "100_000000.png").cam_to_world, &p0) < 1e-9);
    assert!(close(&frame(&scene, SplitKind::Train, "100_010000.png").cam_to_world, &p1) < 1e-9);
    let mid = frame(&scene, SplitKind::Train, "100_005000.png");
    let expected_c = (p0.center() + p1.center()) / 2.0;
    assert!((mid.cam_to_world.center() - expected_c).norm() < 1e-9);
    let k = mid.calibration.intrinsics(16, 12);
    assert_eq!((k.fx, k.fy, k.cx, k.cy), (520.9, 521.0, 325.1, 249.7));
    assert!((scene.distortion.unwrap().k3 - 0.9172).abs() < 1e-12);
    fs::write(seq.join("groundtruth.txt"), "100.0 1 2 3 0 0 0\n").unwrap();
    let err = convert::tum::plan(&seq, convert::tum::preset("fr3").unwrap(), 4, 2, 0.05).unwrap_err();
    assert!(err.to_string().contains("groundtruth.txt:1"), "{err}");
}

// ---------------------------------------------------------------- transforms.json

#[test]
fn transforms_json_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for i in 0..3 {
        png(&dir.join(format!("images/r_{i}.png")), 40, 30);
        let cv = pose(i as f64);
        let gl = cv.to_matrix() * Matrix4::from_diagonal(&nalgebra::Vector4::new(1.0, -1.0, -1.0, 1.0));
        let rows: Vec<Vec<f64>> = (0..4).map(|r| (0..4).map(|c| gl[(r, c)]).collect()).collect();
        // Blender style for one frame: no extension in file_path.
        let path = if i == 0 { "./images/r_0".to_string() } else { format!("images/r_{i}.png") };
        frames.push(serde_json::json!({"file_path": path, "transform_matrix": rows}));
        expected.push(cv);
    }
    let json = serde_json::json!({"camera_angle_x": 0.8, "k1": 0.01, "frames": frames});
    fs::write(dir.join("transforms.json"), json.to_string()).unwrap();
    let plan = convert::transforms::plan(&dir.join("transforms.json"), 0, 0).unwrap();
    let scene = execute(&plan, &dir.join("out"));
    for (i, p) in expected.iter().enumerate() {
        let f = frame(&scene, SplitKind::Train, &format!("images_r_{i}.png"));
        assert!(close(&f.cam_to_world, p) < 1e-9);
        let k = f.calibration.intrinsics(40, 30);
        assert!((k.fx - 20.0 / (0.4f64).tan()).abs() < 1e-9 && k.fx == k.fy && (k.cx, k.cy) == (20.0, 15.0));
    }
    assert_eq!(scene.distortion.unwrap().k1, 0.01);
    fs::write(dir.join("transforms.json"), "{\"frames\": [{\"file_path\": \"images/r_1.png\"}]}").unwrap();
    let err = convert::transforms::plan(&dir.join("transforms.json"), 0, 0).unwrap_err();
    assert!(err.to_string().contains("frames[0]: no transform_matrix"), "{err}");
}

// ---------------------------------------------------------------- common behaviour

#[test]
fn refuses_non_empty_target_and_leaves_nothing_on_failure() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_scene(&tmp.path().join("roomA"), 1, 0.0, false);
    fs::write(tmp.path().join("i1.txt"), "roomA 0 0 0\n").unwrap();
    let plan = convert::rooms::plan(&tmp.path().join("i1.txt"), &SceneOptions::default()).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("keep"), "x").unwrap();
    assert!(matches!(plan.execute(&out, false, false, &|| {}), Err(DataError::TargetNotEmpty { .. })));
    assert!(out.join("keep").exists());
    // A source image vanishing mid-way: the error names it and no partial scene remains.
    let mut broken = plan.clone();
    broken.frames[0].image = convert::ImageOp::Source(tmp.path().join("missing.png"));
    let out2 = tmp.path().join("out2");
    let err = broken.execute(&out2, false, false, &|| {}).unwrap_err();
    assert!(err.to_string().contains("missing.png"), "{err}");
    assert!(!out2.exists());
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
    let _ = WorldToCam(Isometry3::from_parts(Translation3::new(0.0, 0.0, 0.0), UnitQuaternion::identity()));
}
