//! A corpus of malformed scenes, each built from a valid one by one mutation, asserting the exact
//! kind of error (and that the message names the offending file). None may panic.

use std::fs;
use std::path::{Path, PathBuf};

use glace_data::features::write_features;
use glace_data::{DataError, Scene, SceneOptions, SplitKind};
use glace_geometry::GeometryError;

const POSE: &str = "1 0 0 0.5\n0 1 0 -0.25\n0 0 1 2\n0 0 0 1\n";

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13) as u8 ^ seed, (y * 7) as u8, seed]));
    img.save(path).unwrap();
}

/// A valid scene: train with 3 frames, test with 2, 16×12 PNG images.
fn valid_scene() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("scene");
    for (split, n) in [("train", 3), ("test", 2)] {
        for sub in ["rgb", "poses", "calibration"] {
            fs::create_dir_all(root.join(split).join(sub)).unwrap();
        }
        for i in 0..n {
            write_png(&root.join(split).join(format!("rgb/f{i}.png")), 16, 12, i as u8);
            fs::write(root.join(split).join(format!("poses/f{i}.txt")), POSE).unwrap();
            fs::write(root.join(split).join(format!("calibration/f{i}.txt")), "525.0").unwrap();
        }
    }
    (tmp, root)
}

fn open(root: &Path) -> Result<Scene, DataError> {
    Scene::open(root, &SceneOptions::default())
}

/// Opens, expects an error, checks the message names `file`, returns the error.
fn expect_err(root: &Path, file: &str) -> DataError {
    let err = open(root).expect_err("malformed scene was accepted");
    let msg = err.to_string();
    assert!(msg.contains(file), "message does not name '{file}': {msg}");
    err
}

fn train(root: &Path, rel: &str) -> PathBuf {
    root.join("train").join(rel)
}

#[test]
fn valid_scene_opens() {
    let (_t, root) = valid_scene();
    let scene = open(&root).unwrap();
    assert_eq!(scene.split(SplitKind::Train).unwrap().frames.len(), 3);
    assert_eq!(scene.split(SplitKind::Test).unwrap().frames.len(), 2);
    assert_eq!(scene.train.as_ref().unwrap().frames[1].image_size, Some((16, 12)));
}

#[test]
fn m01_missing_root() {
    let (_t, root) = valid_scene();
    let err = expect_err(&root.join("nope"), "nope");
    assert!(matches!(err, DataError::Io { .. }));
}

#[test]
fn m02_root_is_a_file() {
    let (_t, root) = valid_scene();
    let f = root.join("file.txt");
    fs::write(&f, "x").unwrap();
    assert!(matches!(expect_err(&f, "file.txt"), DataError::NotAScene { .. }));
}

#[test]
fn m03_no_splits() {
    let (_t, root) = valid_scene();
    fs::remove_dir_all(root.join("train")).unwrap();
    fs::remove_dir_all(root.join("test")).unwrap();
    assert!(matches!(expect_err(&root, "scene"), DataError::NotAScene { .. }));
}

#[test]
fn m04_missing_poses_folder() {
    let (_t, root) = valid_scene();
    fs::remove_dir_all(train(&root, "poses")).unwrap();
    assert!(matches!(expect_err(&root, "poses"), DataError::MissingFolder { .. }));
}

#[test]
fn m05_empty_rgb() {
    let (_t, root) = valid_scene();
    for i in 0..3 {
        for (d, e) in [("rgb", "png"), ("poses", "txt"), ("calibration", "txt")] {
            fs::remove_file(train(&root, &format!("{d}/f{i}.{e}"))).unwrap();
        }
    }
    assert!(matches!(expect_err(&root, "rgb"), DataError::EmptySplit { .. }));
}

#[test]
fn m06_non_image_in_rgb() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "rgb/notes.txt"), "hello").unwrap();
    assert!(matches!(expect_err(&root, "notes.txt"), DataError::UnsupportedImageFile { .. }));
}

#[test]
fn m07_image_without_pose() {
    let (_t, root) = valid_scene();
    fs::remove_file(train(&root, "poses/f1.txt")).unwrap();
    match expect_err(&root, "f1.png") {
        DataError::UnpairedFrames { missing_pose, missing_calibration, .. } => {
            assert_eq!(missing_pose, vec!["f1.png"]);
            assert!(missing_calibration.is_empty());
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn m08_extra_calibration() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "calibration/zz.txt"), "500").unwrap();
    match expect_err(&root, "zz.txt") {
        DataError::UnpairedFrames { orphan_calibrations, .. } => assert_eq!(orphan_calibrations, vec!["zz.txt"]),
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn m09_same_count_but_names_differ() {
    // The reference pairs by sorted position and would silently mismatch these.
    let (_t, root) = valid_scene();
    fs::rename(train(&root, "poses/f2.txt"), train(&root, "poses/g2.txt")).unwrap();
    match expect_err(&root, "g2.txt") {
        DataError::UnpairedFrames { missing_pose, orphan_poses, .. } => {
            assert_eq!(missing_pose, vec!["f2.png"]);
            assert_eq!(orphan_poses, vec!["g2.txt"]);
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn m10_duplicate_stem() {
    let (_t, root) = valid_scene();
    write_png(&train(&root, "rgb/f0.jpg"), 16, 12, 1);
    assert!(matches!(expect_err(&root, "f0.jpg"), DataError::DuplicateStem { .. }));
}

#[test]
fn m11_pose_bad_token() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "1 0 0 0\n0 1 zero 0\n0 0 1 0\n0 0 0 1\n").unwrap();
    assert!(matches!(expect_err(&root, "f0.txt:2"), DataError::BadNumber { line: 2, .. }));
}

#[test]
fn m12_pose_3x4() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "1 0 0 0\n0 1 0 0\n0 0 1 0\n").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::PoseShape { .. }));
    assert!(err.to_string().contains("3×4"));
}

#[test]
fn m13_pose_too_few_numbers() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0\n").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::PoseShape { .. }));
    assert!(err.to_string().contains("found 15 numbers"));
}

#[test]
fn m14_pose_nan() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f2.txt"), "1 0 0 0\n0 1 0 0\n0 0 1 NaN\n0 0 0 1\n").unwrap();
    assert!(matches!(expect_err(&root, "f2.txt:3"), DataError::NonFinitePose { line: 3, .. }));
}

#[test]
fn m15_pose_inf_as_12scenes_writes_it() {
    let (_t, root) = valid_scene();
    let inf = "INF INF INF INF\nINF INF INF INF\nINF INF INF INF\n0 0 0 1\n";
    fs::write(train(&root, "poses/f1.txt"), inf).unwrap();
    assert!(matches!(expect_err(&root, "f1.txt:1"), DataError::NonFinitePose { line: 1, .. }));
}

#[test]
fn m16_pose_not_orthonormal() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "1.01 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::InvalidPose { source: GeometryError::NotOrthonormal { .. }, .. }));
    assert!(err.to_string().contains("1.005e-2") || err.to_string().contains("2.010e-2"), "{err}");
}

#[test]
fn m17_pose_reflection() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "-1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::InvalidPose { source: GeometryError::Reflection { .. }, .. }));
}

#[test]
fn m18_pose_bad_bottom_row() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f0.txt"), "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 1 1\n").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::InvalidPose { source: GeometryError::BadBottomRow(_), .. }));
}

#[test]
fn m19_calibration_two_numbers() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "calibration/f0.txt"), "525 525").unwrap();
    assert!(matches!(expect_err(&root, "f0.txt"), DataError::CalibrationShape { count: 2, .. }));
}

#[test]
fn m20_calibration_empty() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "calibration/f1.txt"), "").unwrap();
    assert!(matches!(expect_err(&root, "f1.txt"), DataError::CalibrationShape { count: 0, .. }));
}

#[test]
fn m21_calibration_negative_focal() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "calibration/f0.txt"), "-525").unwrap();
    let err = expect_err(&root, "f0.txt");
    assert!(matches!(err, DataError::InvalidCalibration { source: GeometryError::BadIntrinsics(_), .. }));
}

#[test]
fn m22_corrupt_image() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "rgb/f1.png"), b"this is not an image at all").unwrap();
    assert!(matches!(expect_err(&root, "f1.png"), DataError::CorruptImage { .. }));
}

#[test]
fn m23_truncated_png() {
    let (_t, root) = valid_scene();
    let p = train(&root, "rgb/f2.png");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..20]).unwrap();
    assert!(matches!(expect_err(&root, "f2.png"), DataError::CorruptImage { .. }));
}

#[test]
fn m24_sixteen_bit_image() {
    let (_t, root) = valid_scene();
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(16, 12, |x, _| image::Luma([x as u16 * 1000]));
    img.save(train(&root, "rgb/f0.png")).unwrap();
    assert!(matches!(expect_err(&root, "f0.png"), DataError::UnsupportedImage { .. }));
}

fn unit_rows(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim).map(|k| if k % dim == k / dim % dim { 1.0 } else { 0.0 }).collect()
}

#[test]
fn m25_features_wrong_row_count() {
    let (_t, root) = valid_scene();
    write_features(&train(&root, "features.npy"), 2, 8, &unit_rows(2, 8)).unwrap();
    assert!(matches!(expect_err(&root, "features.npy"), DataError::FeatureCount { rows: 2, frames: 3, .. }));
}

#[test]
fn m26_features_not_unit_norm() {
    let (_t, root) = valid_scene();
    let mut data = unit_rows(3, 8);
    data[8 + 1] = 2.0;
    write_features(&train(&root, "features.npy"), 3, 8, &data).unwrap();
    assert!(matches!(expect_err(&root, "features.npy"), DataError::FeatureNorm { row: 1, .. }));
}

#[test]
fn m27_features_float64() {
    let (_t, root) = valid_scene();
    let bytes = {
        let mut out = Vec::new();
        let mut w =
            npyz::WriteOptions::<f64>::new().default_dtype().shape(&[3, 2]).writer(&mut out).begin_nd().unwrap();
        w.extend([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
        w.finish().unwrap();
        out
    };
    use npyz::WriterBuilder as _;
    fs::write(train(&root, "features.npy"), bytes).unwrap();
    let err = expect_err(&root, "features.npy");
    assert!(matches!(err, DataError::BadFeatures { .. }));
    assert!(err.to_string().contains("float32"));
}

#[test]
fn m28_features_garbage() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "features.npy"), b"PK\x03\x04 not npy").unwrap();
    assert!(matches!(expect_err(&root, "features.npy"), DataError::BadFeatures { .. }));
}

#[test]
fn m29_distortion_three_numbers() {
    let (_t, root) = valid_scene();
    fs::write(root.join("distortion.txt"), "# k1 k2 p1 p2 k3\n0.1 0.2 0.3\n").unwrap();
    let err = expect_err(&root, "distortion.txt");
    assert!(matches!(err, DataError::BadDistortion { .. }));
    assert!(err.to_string().contains("line 2"));
}

#[test]
fn m30_distortion_two_data_lines() {
    let (_t, root) = valid_scene();
    fs::write(root.join("distortion.txt"), "0.1 0.2 0 0\n0.1 0.2 0 0\n").unwrap();
    assert!(matches!(expect_err(&root, "distortion.txt"), DataError::BadDistortion { .. }));
}

#[test]
fn m31_missing_split_asked_for() {
    let (_t, root) = valid_scene();
    fs::remove_dir_all(root.join("test")).unwrap();
    let scene = open(&root).unwrap();
    assert!(matches!(scene.split(SplitKind::Test), Err(DataError::MissingSplit { .. })));
}

#[test]
fn lenient_inputs_are_accepted() {
    let (_t, root) = valid_scene();
    // 7-Scenes style pose: tabs, CRLF, 3-digit exponents, rotation orthonormal only to ~1e-4.
    let pose = " 9.9999e-001\t0.0000000e+000\t0\t1.5e+000\r\n0\t1\t0\t0\r\n0\t0\t1\t0\r\n0\t0\t0\t1\r\n\r\n";
    fs::write(train(&root, "poses/f0.txt"), pose).unwrap();
    // Upper-case extension, grayscale image, JPEG content in a differently named file.
    fs::remove_file(train(&root, "rgb/f1.png")).unwrap();
    image::GrayImage::from_fn(16, 12, |x, y| image::Luma([(x * y) as u8])).save(train(&root, "rgb/f1.PNG")).unwrap();
    fs::remove_file(train(&root, "rgb/f2.png")).unwrap();
    image::RgbImage::from_fn(20, 10, |x, _| image::Rgb([x as u8 * 10, 0, 0]))
        .save_with_format(train(&root, "rgb/f2.jpeg"), image::ImageFormat::Jpeg)
        .unwrap();
    // 3×3 K and hidden files.
    fs::write(train(&root, "calibration/f2.txt"), "500 0 10.5\n0 501 5.5\n0 0 1\n").unwrap();
    fs::write(train(&root, "rgb/.DS_Store"), "junk").unwrap();
    write_features(&train(&root, "features.npy"), 3, 8, &unit_rows(3, 8)).unwrap();
    let scene = open(&root).unwrap();
    let split = scene.split(SplitKind::Train).unwrap();
    assert_eq!(split.frames.len(), 3);
    assert_eq!(split.frames[2].image_size, Some((20, 10)));
    let k = split.frames[2].calibration.intrinsics(20, 10);
    assert_eq!((k.fx, k.fy, k.cx, k.cy), (500.0, 501.0, 10.5, 5.5));
    let r = split.frames[0].cam_to_world.rotation();
    assert!((r.transpose() * r - nalgebra::Matrix3::identity()).abs().max() < 1e-12);
    assert_eq!(split.global_feature(&split.frames[1]).unwrap()[1], 1.0);
}

#[test]
fn skip_invalid_poses_keeps_feature_rows_aligned() {
    let (_t, root) = valid_scene();
    fs::write(train(&root, "poses/f1.txt"), "nan nan nan nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n").unwrap();
    write_features(&train(&root, "features.npy"), 3, 8, &unit_rows(3, 8)).unwrap();
    assert!(open(&root).is_err());
    let options = SceneOptions { skip_invalid_poses: true, ..Default::default() };
    let scene = Scene::open(&root, &options).unwrap();
    let split = scene.split(SplitKind::Train).unwrap();
    assert_eq!(split.frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["f0.png", "f2.png"]);
    assert_eq!(split.frames[1].file_index, 2);
    assert_eq!(split.global_feature(&split.frames[1]).unwrap()[2], 1.0);
    assert_eq!(split.skipped.len(), 1);
    assert!(split.skipped[0].reason.contains("f1.txt"));
}

#[test]
fn raw_7scenes_pose_files_parse() {
    let Some(dir) =
        glace_data::testing::shared_path("data/raw_7scenes_stairs_sample/stairs", "raw_7scenes_pose_files_parse")
    else {
        return;
    };
    for seq in 1..=4 {
        for frame in 0..3 {
            let p = dir.join(format!("seq-0{seq}/frame-00000{frame}.pose.txt"));
            let pose = glace_data::text::read_pose(&p, 1e-3).unwrap_or_else(|e| panic!("{e}"));
            assert!(pose.center().norm() < 10.0);
        }
    }
}
