//! The `glace` binary as a user runs it: summaries of the shared real scenes, exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

use glace_data::testing::shared_path;

fn glace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glace")).args(args).output().expect("run glace")
}

fn info_json(scene: &PathBuf) -> serde_json::Value {
    let out = glace(&["info", "--json", scene.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn frames(summary: &serde_json::Value) -> Vec<(String, u64)> {
    summary["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["split"].as_str().unwrap().to_string(), s["frames"].as_u64().unwrap()))
        .collect()
}

/// Renders a tiny synthetic room (2 training frames) for tests that need any valid scene.
fn synth_tiny_room(out: &std::path::Path, test_frames: &str, size: &str, texture: &str) {
    let args = ["synth", "room", out.to_str().unwrap(), "--frames", "2", "--test-frames", test_frames, "--size", size];
    let run = glace(&[&args[..], &["--texture-size", texture]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// Whether the XFeat weights can be had; prints the skip line for `test` when not.
fn xfeat_available(test: &str) -> bool {
    let ok = glace_formats::weights::xfeat_weights().is_ok();
    if !ok {
        eprintln!("SKIPPED {test}: XFeat weights unavailable");
    }
    ok
}

#[test]
fn info_tum_desk() {
    let Some(scene) = shared_path("data/tum_fr2_desk", "info_tum_desk") else { return };
    let s = info_json(&scene);
    assert_eq!(frames(&s), [("train".into(), 15), ("test".into(), 5)]);
    assert_eq!(s["distortion"][0].as_f64(), Some(0.2312));
    let train = &s["splits"][0];
    assert_eq!(train["image_sizes"][0]["width"], 640);
    assert_eq!(train["image_sizes"][0]["count"], 15);
    assert!((train["focal_min"].as_f64().unwrap() - 520.9).abs() < 1e-9);
    // The clip covers a ~0.44 m camera path.
    let diag = s["all_centres"]["diagonal"].as_f64().unwrap();
    assert!((0.3..0.5).contains(&diag), "diagonal {diag}");

    let text = glace(&["info", scene.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("train: 15 frames") && text.contains("test: 5 frames"), "{text}");
}

#[test]
fn info_temple_ring() {
    let Some(scene) = shared_path("data/middlebury_temple_ring", "info_temple_ring") else { return };
    let s = info_json(&scene);
    assert_eq!(frames(&s), [("train".into(), 12), ("test".into(), 4)]);
    assert!(s["distortion"].is_null());
    // Cameras on a ring of radius 0.56–0.57 m around the temple.
    let all = &s["all_centres"];
    let r = all["mean_radius"].as_f64().unwrap();
    assert!((0.54..0.58).contains(&r), "ring radius {r}");
    assert!(all["min_radius"].as_f64().unwrap() > 0.5 && all["max_radius"].as_f64().unwrap() < 0.62);
}

#[test]
fn bad_input_exits_2_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let split = tmp.path().join("train");
    for sub in ["rgb", "poses", "calibration"] {
        std::fs::create_dir_all(split.join(sub)).unwrap();
    }
    image::RgbImage::new(8, 8).save(split.join("rgb/a.png")).unwrap();
    std::fs::write(split.join("poses/a.txt"), "1 0 0 0\n0 1 0 0\n0 0 1 nan\n0 0 0 1").unwrap();
    std::fs::write(split.join("calibration/a.txt"), "100").unwrap();
    let out = glace(&["info", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("poses/a.txt:3") && err.contains("--skip-invalid-poses"), "{err}");
    assert!(out.stdout.is_empty());

    // With the option the frame is reported and skipped; nothing valid is left but the run works.
    std::fs::create_dir_all(split.join("../test/rgb")).unwrap();
    std::fs::remove_dir_all(split.join("../test")).unwrap();
    let out = glace(&["info", "--skip-invalid-poses", tmp.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped 1 of 1"));
}

#[test]
fn usage_errors_and_unavailable_commands() {
    assert_eq!(glace(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(glace(&["info", "/definitely/not/here"]).status.code(), Some(2));
    assert_eq!(glace(&["map", "/definitely/not/here", "map.glace"]).status.code(), Some(2));
    // Pseudo targets deeper than the deepest valid point would never become valid.
    let out = glace(&["map", "/definitely/not/here", "map.glace", "--depth-max", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--depth-max"));
    let out = glace(&["map", "/definitely/not/here", "map.glace", "--depth-target", "0.05"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--depth-target"));
    // A NaN or negative peak rate would train a useless map; refused before any work.
    for (cmd, rate) in [("map", "nan"), ("map", "-1e-3"), ("bench", "0")] {
        let args: &[&str] =
            if cmd == "map" { &["map", "/definitely/not/here", "map.glace"] } else { &["bench", "ablation"] };
        let flag = format!("--lr-max={rate}");
        let out = glace(&[args, &[flag.as_str()]].concat());
        assert_eq!(out.status.code(), Some(2), "{cmd} --lr-max {rate}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("learning rate"), "{cmd} --lr-max {rate}");
    }
    assert_eq!(glace(&["export", "official-pt", "/definitely/not/here.glace", "out.pt"]).status.code(), Some(2));
    assert!(glace(&["--help"]).status.success());
}

#[test]
fn synth_writes_a_scene_that_info_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("room");
    let sheet = tmp.path().join("sheet.png");
    let args = ["synth", "room", out.to_str().unwrap(), "--frames", "4", "--test-frames", "2", "--size", "96x72"];
    let run = glace(&[&args[..], &["--texture-size", "64", "--contact-sheet", sheet.to_str().unwrap()]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(sheet.exists());
    let s = info_json(&out);
    assert_eq!(frames(&s), [("train".into(), 4), ("test".into(), 2)]);
    assert_eq!(s["splits"][0]["image_sizes"][0]["width"], 96);
    // Focal scales with the width by default: 525 × 96 / 640.
    assert!((s["splits"][0]["focal_min"].as_f64().unwrap() - 78.75).abs() < 1e-9);
    // Writing again without --force is refused and leaves the scene intact.
    let again = glace(&args);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(glace(&["synth", "room", "x", "--size", "10by20"]).status.code(), Some(2));
    assert_eq!(
        glace(&["synth", "room", tmp.path().join("y").to_str().unwrap(), "--size", "8x8"]).status.code(),
        Some(2)
    );
}

#[test]
fn eval_scores_a_pose_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("room");
    synth_tiny_room(&out, "4", "64x48", "32");
    // Ground-truth poses as a pose file: world-to-camera quaternion + translation.
    let scene = glace_data::Scene::open(&out, &Default::default()).unwrap();
    let mut lines = Vec::new();
    for (k, f) in scene.test.as_ref().unwrap().frames.iter().enumerate() {
        let mut c2w = f.cam_to_world;
        c2w.0.translation.vector.x += 0.03 * k as f64; // 0, 3, 6, 9 cm
        let (q, t) = c2w.inverse().quaternion_translation();
        if k < 3 {
            lines.push(format!("{} {} {} {} {} {} {} {} 0 0 100", f.name, q[0], q[1], q[2], q[3], t[0], t[1], t[2]));
        }
    }
    let poses = tmp.path().join("poses_room.txt");
    std::fs::write(&poses, lines.join("\n")).unwrap();
    let run = glace(&["eval", out.to_str().unwrap(), poses.to_str().unwrap(), "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let j: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(j["frames"], 4);
    assert_eq!(j["failed"], 1);
    assert_eq!(j["pct_5cm_5deg"], 50.0);
    assert_eq!(j["pct_10cm_5deg"], 75.0);
    assert!((j["median_trans_m"].as_f64().unwrap() - 0.06).abs() < 1e-6);
    assert!(tmp.path().join("poses_room_cdf.png").exists());

    std::fs::write(&poses, "nope.png 1 0 0 0 0 0 0\n").unwrap();
    let run = glace(&["eval", out.to_str().unwrap(), poses.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("nope.png"));
}

#[test]
fn convert_7scenes_dry_run_then_write() {
    let Some(raw) = shared_path("data/raw_7scenes_stairs_sample/stairs", "convert_7scenes_dry_run_then_write") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("stairs");
    let dry = glace(&["convert", "7scenes", raw.to_str().unwrap(), out.to_str().unwrap(), "--dry-run"]);
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("6 train / 6 test"));
    assert!(!out.exists(), "--dry-run wrote files");
    let run = glace(&["convert", "7scenes", raw.to_str().unwrap(), out.to_str().unwrap(), "--copy"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(frames(&info_json(&out)), [("train".into(), 6), ("test".into(), 6)]);
    let again = glace(&["convert", "7scenes", raw.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    std::fs::create_dir(tmp.path().join("raw")).unwrap();
    let missing = glace(&[
        "convert",
        "cambridge",
        tmp.path().join("raw").to_str().unwrap(),
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reconstruction.nvm"));
}

#[test]
fn eval_refuses_dummy_poses() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("room");
    synth_tiny_room(&out, "2", "32x24", "16");
    std::fs::write(out.join("test").join(glace_data::scene::DUMMY_POSES_MARKER), "").unwrap();
    std::fs::write(tmp.path().join("p.txt"), "").unwrap();
    let run = glace(&["eval", out.to_str().unwrap(), tmp.path().join("p.txt").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("placeholders"));
}

#[test]
fn map_localize_eval_end_to_end_on_a_tiny_room() {
    if !xfeat_available("map_localize_eval_end_to_end_on_a_tiny_room") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("room");
    let map = tmp.path().join("room.glace");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    assert!(glace(&[
        "synth",
        "room",
        &s(&scene),
        "--frames",
        "6",
        "--test-frames",
        "3",
        "--size",
        "128x96",
        "--texture-size",
        "64"
    ])
    .status
    .success());
    let run = glace(&[
        "map",
        &s(&scene),
        &s(&map),
        "--buffer-size",
        "4000",
        "--samples-per-image",
        "256",
        "--iterations",
        "20",
        "--batch-size",
        "256",
        "--head-channels",
        "32",
        "--image-height",
        "96",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(map.with_extension("json")).unwrap()).unwrap();
    assert_eq!(log["buffer_entries"], 4000);
    let info = glace(&["info", "--json", &s(&map)]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["info"]["local_encoder"]["kind"], "xfeat");
    assert_eq!(info["head"]["c_in"], 256 + 64);
    let poses = tmp.path().join("poses.txt");
    let run = glace(&["localize", &s(&scene), &s(&map), "--out", &s(&poses), "--image-height", "96", "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["frames"], 3);
    assert!(report["stage_ms_per_frame"]["ransac"].is_number());
    // The default σ = 0.1 diffusion over 256 dimensions: the descriptor is fed at its training mean.
    let scale = report["global_scale"].as_f64().unwrap();
    assert!((scale - 0.530).abs() < 1e-3, "{scale}");
    assert_eq!(std::fs::read_to_string(&poses).unwrap().lines().count(), 3);
    let clean = tmp.path().join("clean.txt");
    let run = glace(&[
        "localize",
        &s(&scene),
        &s(&map),
        "--out",
        &s(&clean),
        "--image-height",
        "96",
        "--json",
        "--clean-global",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["global_scale"], 1.0);
    let run = glace(&["eval", &s(&scene), &s(&poses), "--json", "--no-plot"]);
    assert!(run.status.success());
    // A map given the wrong encoder is refused.
    let run = glace(&["localize", &s(&scene), &s(&map), "--encoder", "ace:/nonexistent.pt"]);
    assert_eq!(run.status.code(), Some(2));
}

/// The TUM desk test in bf16 (mapping and localization) where this CPU has a bf16 kernel: the
/// same budget still puts the test frames within 2 cm / 2° (measured with AVX512-BF16: all 5,
/// median 0.36° / 0.81 cm, against 0.39° / 0.79 cm in fp32).
#[test]
fn real_tum_desk_in_bf16() {
    let Some(scene) = shared_path("data/tum_fr2_desk", "real_tum_desk_in_bf16") else { return };
    let Ok(mm) = glace::Precision::Bf16.resolve() else {
        eprintln!("SKIPPED real_tum_desk_in_bf16: this CPU has neither AMX-BF16 nor AVX512-BF16");
        return;
    };
    if !xfeat_available("real_tum_desk_in_bf16") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("tum.glace");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let args = ["--buffer-size", "50000", "--iterations", "800", "--batch-size", "1024", "--precision", "bf16"];
    let run = glace(&[&["map", &s(&scene), &s(&map)][..], &args].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(map.with_extension("json")).unwrap()).unwrap();
    assert_eq!(log["precision"].as_str(), Some(mm.name().as_str()), "{log}");
    assert_eq!(log["options"]["precision"], serde_json::json!("bf16"));
    let poses = tmp.path().join("poses.txt");
    let run = glace(&["localize", &s(&scene), &s(&map), "--out", &s(&poses), "--json", "--precision", "bf16"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    eprintln!("TUM desk in {}: {r}", mm.name());
    assert!(r["pct_2cm_2deg"].as_f64().unwrap() >= 80.0, "{r}");
    assert!(r["median_trans_m"].as_f64().unwrap() < 0.02 && r["median_rot_deg"].as_f64().unwrap() < 2.0, "{r}");
}

/// Maps the Middlebury temple ring with a small budget and `map_extra`, localizes its test frames
/// with and without the refinement against the map's points, and checks that the refinement
/// halves the rotation error; the map's `glace info --json` (None when the data or weights are
/// not here).
fn temple_poses_refined(name: &str, map_extra: &[&str]) -> Option<serde_json::Value> {
    let scene = shared_path("data/middlebury_temple_ring", name)?;
    if !xfeat_available(name) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("temple.glace");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (scene_s, map_s) = (s(&scene), s(&map));
    let mut args = vec!["map", &scene_s, &map_s, "--buffer-size", "20000", "--iterations", "300"];
    args.extend_from_slice(map_extra);
    let run = glace(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(map.with_extension("json")).unwrap()).unwrap();
    let points = log["structure_points"].as_u64().unwrap();
    assert!(points > 1000, "{log}");
    let info = glace(&["info", &map_s, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["structure_points"].as_u64(), Some(points), "{info}");
    let localize = |extra: &[&str]| {
        let out = s(&tmp.path().join(format!("poses{}.txt", extra.len())));
        let mut args = vec!["localize", &scene_s, &map_s, "--json", "--out", &out];
        args.extend_from_slice(extra);
        let run = glace(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_slice::<serde_json::Value>(&run.stdout).unwrap()
    };
    let (refined, regressed) = (localize(&[]), localize(&["--no-structure"]));
    library_localizes_as_the_command_line(&scene, &map, &tmp.path().join("poses0.txt"));
    eprintln!("temple {map_extra:?}: refined {refined}, scene coordinates only {regressed}");
    let rot = |r: &serde_json::Value| r["median_rot_deg"].as_f64().unwrap();
    assert!(rot(&refined) < 2.0 && rot(&refined) < rot(&regressed) / 2.0, "{refined} against {regressed}");
    assert_eq!(refined["failed"].as_u64(), Some(0), "{refined}");
    Some(info)
}

/// The library's default localization gives, frame by frame, the pose and inliers `glace
/// localize` wrote with its defaults into `poses` (one source for every default).
fn library_localizes_as_the_command_line(scene: &std::path::Path, map: &std::path::Path, poses: &std::path::Path) {
    let localizer = glace::Localizer::new(&glace::Map::open(map).unwrap(), glace::LocalizerOptions::default()).unwrap();
    let scene = glace::Scene::open(scene, &glace::SceneOptions::default()).unwrap();
    let text = std::fs::read_to_string(poses).unwrap();
    let lines: std::collections::HashMap<&str, Vec<f64>> = text
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0], cols[1..].iter().map(|c| c.parse().unwrap()).collect())
        })
        .collect();
    let split = scene.split(glace::SplitKind::Test).unwrap();
    for frame in &split.frames {
        let image = glace::read_image(&frame.rgb_path).unwrap();
        let k = frame.calibration.intrinsics(image.width(), image.height());
        let camera = glace::Camera { intrinsics: k, distortion: scene.distortion };
        let found = localizer.localize((&image).into(), &camera).unwrap();
        let (q, t) = found.cam_from_world().expect("localized").quaternion_translation();
        let cli = &lines[frame.name.as_str()];
        let lib: Vec<f64> = q.iter().chain(&t).copied().collect();
        assert!(lib.iter().zip(&cli[..7]).all(|(a, b)| (a - b).abs() < 1e-9), "{}: {lib:?} vs {cli:?}", frame.name);
        assert_eq!(found.inliers() as f64, cli[9], "{}", frame.name);
    }
}

#[test]
fn photo_collection_poses_are_refined_against_the_maps_points() {
    let Some(info) = temple_poses_refined("photo_collection_poses_are_refined_against_the_maps_points", &[]) else {
        return;
    };
    // The images' own 480 px is the network's: no resolution of its own.
    assert_eq!(info["structure_height"], serde_json::Value::Null, "{info}");
}

#[test]
fn points_detected_finer_than_the_network_refine_its_poses() {
    // A network at 240 px; the points at the images' own 480 (the rule: at most twice the network's).
    let name = "points_detected_finer_than_the_network_refine_its_poses";
    let Some(info) = temple_poses_refined(name, &["--image-height", "240"]) else { return };
    assert_eq!(info["structure_height"].as_u64(), Some(480), "{info}");
}

/// Real images with lens distortion: map the TUM desk clip with a small CPU budget and localize
/// its 5 test frames (measured with the cpu preset's soft clamp 300: all within 2 cm / 2°, median
/// 0.70° / 1.3 cm; the ground truth's own floor is about 1 cm / 0.5°).
#[test]
fn real_tum_desk_maps_and_localizes() {
    let Some(scene) = shared_path("data/tum_fr2_desk", "real_tum_desk_maps_and_localizes") else { return };
    if !xfeat_available("real_tum_desk_maps_and_localizes") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("tum.glace");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run =
        glace(&["map", &s(&scene), &s(&map), "--buffer-size", "50000", "--iterations", "800", "--batch-size", "1024"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // A stated budget is the budget used, not the scene-sized one.
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(map.with_extension("json")).unwrap()).unwrap();
    assert_eq!(
        (log["budget"]["iterations"].as_u64(), log["budget"]["buffer_size"].as_u64()),
        (Some(800), Some(50_000))
    );
    assert_eq!(log["options"]["scene_budget"], serde_json::json!(false));
    // `auto` precision: what this CPU's fast path is, recorded.
    let auto = glace::Precision::Auto.resolve().unwrap().name();
    assert_eq!(log["precision"].as_str(), Some(auto.as_str()), "{log}");
    let poses = tmp.path().join("poses.txt");
    let run = glace(&["localize", &s(&scene), &s(&map), "--out", &s(&poses), "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    eprintln!("TUM desk: {r}");
    assert!(r["pct_5cm_5deg"].as_f64().unwrap() >= 80.0, "{r}");
    assert!(r["median_trans_m"].as_f64().unwrap() < 0.03, "{r}");

    // The test frames held upside down (images turned 180°, K, distortion and poses with them):
    // given upright the map does not know them; tried in all four quarter turns they localize.
    let turned = tmp.path().join("turned");
    turn_split_180(&scene, &turned, "test");
    let localize = |turns: &str| {
        let out = tmp.path().join(format!("turned_{turns}.txt"));
        let run = glace(&["localize", &s(&turned), &s(&map), "--out", &s(&out), "--json", "--turns", turns]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_slice::<serde_json::Value>(&run.stdout).unwrap()
    };
    let (upright, all) = (localize("upright"), localize("all"));
    eprintln!("TUM desk upside down: upright {upright}, all turns {all}");
    assert!(all["pct_5cm_5deg"].as_f64().unwrap() >= 80.0, "{all}");
    assert!(upright["pct_5cm_5deg"].as_f64().unwrap() <= 20.0, "{upright}");

    // The implicit map as a point cloud: binary PLY whose points lie in front of the desk cameras.
    let ply = tmp.path().join("desk.ply");
    let run = glace(&["export", "pointcloud", &s(&scene), &s(&map), &s(&ply)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(&ply).unwrap();
    let end = bytes.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    let header = String::from_utf8_lossy(&bytes[..end]);
    let n: usize = header.lines().find_map(|l| l.strip_prefix("element vertex ")).unwrap().trim().parse().unwrap();
    assert_eq!(bytes.len() - end, n * 15, "3 floats + 3 bytes per point");
    assert!(n > 10_000, "only {n} points kept of 15 × 4800 cells");
    // Points only need to agree with their own view (a wrong depth on the pixel's ray passes), so
    // the bounds are loose: the desk lies 1–2 m in front of the cameras, the hall behind it further.
    let camera = [0.080, -2.220, 1.564]; // mean camera centre (glace info)
    let mut dist: Vec<f32> = bytes[end..]
        .chunks_exact(15)
        .map(|p| {
            let xyz: Vec<f32> = (0..3).map(|k| f32::from_le_bytes(p[4 * k..4 * k + 4].try_into().unwrap())).collect();
            ((xyz[0] - camera[0]).powi(2) + (xyz[1] - camera[1]).powi(2) + (xyz[2] - camera[2]).powi(2)).sqrt()
        })
        .collect();
    dist.sort_by(|a, b| a.total_cmp(b));
    let (median, p90) = (dist[dist.len() / 2], dist[dist.len() * 9 / 10]);
    eprintln!("point cloud: {n} points, distance to the cameras median {median:.2} m, 90th percentile {p90:.2} m");
    assert!(median > 0.5 && median < 3.0, "median distance {median} m");
    assert!(p90 < 10.0, "90th percentile {p90} m");
}

/// Copies `scene` to `out` with its `split` turned upside down: images rotated 180°, the
/// principal point, the tangential distortion and the camera axes turned with them (OpenCV pixel
/// centres: u → w − 1 − u). The other split is copied as it is.
fn turn_split_180(scene: &std::path::Path, out: &std::path::Path, split: &str) {
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    let numbers = |text: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split_whitespace().map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
            .collect()
    };
    let join = |v: &[f64], per_line: usize| {
        v.chunks(per_line)
            .map(|r| r.iter().map(|x| format!("{x:.12}")).collect::<Vec<_>>().join(" ") + "\n")
            .collect::<String>()
    };
    for entry in std::fs::read_dir(scene).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            copy(&path, &out.join(path.file_name().unwrap()));
        }
    }
    if let Ok(text) = std::fs::read_to_string(scene.join("distortion.txt")) {
        let mut d = numbers(&text);
        (d[2], d[3]) = (-d[2], -d[3]);
        std::fs::write(out.join("distortion.txt"), join(&d, d.len())).unwrap();
    }
    for s in ["train", "test"] {
        for entry in std::fs::read_dir(scene.join(s).join("rgb")).unwrap() {
            let rgb = entry.unwrap().path();
            let stem = rgb.file_stem().unwrap().to_str().unwrap().to_string();
            let rel = |dir: &str, ext: &str| std::path::Path::new(s).join(dir).join(format!("{stem}.{ext}"));
            let ext = rgb.extension().unwrap().to_str().unwrap().to_string();
            if s != split {
                for (dir, e) in [("rgb", ext.as_str()), ("calibration", "txt"), ("poses", "txt")] {
                    copy(&scene.join(rel(dir, e)), &out.join(rel(dir, e)));
                }
                continue;
            }
            let img = image::open(&rgb).unwrap().to_rgb8();
            let (w, h) = img.dimensions();
            std::fs::create_dir_all(out.join(s).join("rgb")).unwrap();
            image::imageops::rotate180(&img).save(out.join(rel("rgb", &ext))).unwrap();
            let mut k = numbers(&std::fs::read_to_string(scene.join(rel("calibration", "txt"))).unwrap());
            (k[2], k[5]) = (w as f64 - 1.0 - k[2], h as f64 - 1.0 - k[5]);
            std::fs::create_dir_all(out.join(s).join("calibration")).unwrap();
            std::fs::write(out.join(rel("calibration", "txt")), join(&k, 3)).unwrap();
            let mut pose = numbers(&std::fs::read_to_string(scene.join(rel("poses", "txt"))).unwrap());
            for row in 0..3 {
                pose[row * 4] = -pose[row * 4];
                pose[row * 4 + 1] = -pose[row * 4 + 1];
            }
            std::fs::create_dir_all(out.join(s).join("poses")).unwrap();
            std::fs::write(out.join(rel("poses", "txt")), join(&pose, 4)).unwrap();
        }
    }
}

/// R2Former inside glace: `glace features` writes the reference's features.npy layout, and a map
/// trained with `--global r2former:<ckpt>` localizes with the same checkpoint (and refuses
/// another one). Uses the random 2-block fixture checkpoint.
#[test]
fn r2former_features_map_and_localize() {
    let Some(ckpt) = glace_data::testing::shared_path("fixtures/r2former_random_2blocks.pth", "r2former_cli") else {
        return;
    };
    if !xfeat_available("r2former_features_map_and_localize") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("room");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    synth_tiny_room(&scene, "2", "128x96", "64");
    let global = format!("r2former:{}", s(&ckpt));
    let run = glace(&["features", &s(&scene), "--global", &global]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let f = glace_data::GlobalFeatures::read(&scene.join("train/features.npy"), 2).unwrap();
    assert_eq!((f.rows, f.dim), (2, 256));
    // Refuses to overwrite without --force; a non-R2Former source writes nothing.
    assert_eq!(glace(&["features", &s(&scene), "--global", &global]).status.code(), Some(2));
    assert_eq!(glace(&["features", &s(&scene), "--global", "builtin", "--force"]).status.code(), Some(2));

    let map = tmp.path().join("room.glace");
    // A checkpoint that is not R2Former's: exit 2, the file named, no map written.
    let run = glace(&[
        "map",
        &s(&scene),
        &s(&map),
        "--global",
        &format!("r2former:{}", s(&scene.join("train/features.npy"))),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("features.npy"));
    assert!(!map.exists());
    let small = ["--buffer-size", "2000", "--samples-per-image", "256", "--iterations", "5", "--batch-size", "256"];
    let rest = ["--head-channels", "32", "--image-height", "96", "--global", &global];
    let run = glace(&[&["map", &s(&scene), &s(&map)][..], &small, &rest].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let info: serde_json::Value = serde_json::from_slice(&glace(&["info", "--json", &s(&map)]).stdout).unwrap();
    let sha = info["info"]["global"]["r2former"]["sha256"].as_str().unwrap_or_default().to_string();
    assert_eq!(sha, glace_formats::weights::sha256_file(&ckpt).unwrap(), "{info}");
    let poses = tmp.path().join("poses.txt");
    let run = glace(&["localize", &s(&scene), &s(&map), "--out", &s(&poses), "--image-height", "96", "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // Another checkpoint (here: a corrupted copy) is refused before any work.
    let other = tmp.path().join("other.pth");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&other, bytes).unwrap();
    let run = glace(&["localize", &s(&scene), &s(&map), "--global", &format!("r2former:{}", s(&other))]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("sha256"));
    // XFeat maps cannot become official maps (the reference runs the ACE encoder).
    let pt = tmp.path().join("official.pt");
    assert_eq!(glace(&["export", "official-pt", &s(&map), &s(&pt)]).status.code(), Some(2));

    // An ACE-encoder map on the features.npy descriptors exports as an official fp16 head that
    // loads back (architecture inferred from the keys, as the reference does) and computes the
    // same coordinates up to fp16 rounding.
    let Some(ace) = glace_data::testing::shared_path("fixtures/ace_encoder_random.pt", "r2former_cli") else { return };
    let ace_map = tmp.path().join("ace.glace");
    let encoder = format!("ace:{}", s(&ace));
    let rest = ["--head-channels", "32", "--image-height", "96", "--global", "features", "--encoder", &encoder];
    let run = glace(&[&["map", &s(&scene), &s(&ace_map)][..], &small, &rest, &["--decoder-clusters", "2"]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let run = glace(&["export", "official-pt", &s(&ace_map), &s(&pt)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ours = glace_formats::map_file::read(&ace_map).unwrap().head;
    let sd = glace_formats::pt::load_state_dict(&pt, None, "").unwrap();
    assert!(sd.iter().all(|(_, t)| t.dtype == "float16"));
    assert_eq!(sd[0].0, "max_scale");
    let theirs = glace_nn::Head::from_state_dict(&pt, &sd).unwrap();
    assert_eq!(theirs.config, ours.config);
    let n = 50;
    let x: Vec<f32> = (0..n * ours.config.c_in).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
    let (a, b) = (ours.forward(&x, n).coords_n3, theirs.forward(&x, n).coords_n3);
    let err = a.iter().zip(&b).map(|(p, q)| (p - q).abs() / (1.0 + p.abs())).fold(0f32, f32::max);
    assert!(err < 2e-2, "official export differs by {err}");
    assert!(glace(&["info", &s(&pt)]).status.success());
}

/// `glace demo` runs every step and leaves all its outputs (tiny budget here; the real demo's
/// accuracy is recorded in the README).
#[test]
fn demo_runs_every_step_and_writes_its_outputs() {
    if !xfeat_available("demo_runs_every_step_and_writes_its_outputs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let s = out.to_str().unwrap();
    let args = ["demo", s, "--frames", "3", "--test-frames", "2", "--size", "160x120", "--iterations", "3"];
    let run = glace(&[&args[..], &["--buffer-size", "3000", "--json"]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["frames"], 2);
    for f in
        ["map.glace", "poses.txt", "errors_cdf.png", "errors_trajectory.png", "pointcloud.ply", "contact_sheet.png"]
    {
        assert!(out.join(f).is_file(), "{f} missing; stdout:\n{stdout}");
    }
    // A second run refuses to overwrite without --force.
    assert_eq!(glace(&args).status.code(), Some(2));
}

/// `glace bench ablation` runs the variants it is asked for and writes its table as JSON (tiny
/// budget; the measured numbers are in the README).
#[test]
fn ablation_bench_runs_variants_and_writes_json() {
    if !xfeat_available("ablation_bench_runs_variants_and_writes_json") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("abl");
    let args = ["bench", "ablation", "--out", out.to_str().unwrap(), "--rooms", "2", "--frames", "2"];
    let small = ["--test-frames", "1", "--size", "160x120", "--iterations", "3", "--buffer-size", "2000"];
    let run = glace(&[&args[..], &small, &["--variants", "a,d", "--json"]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("ablation.json")).unwrap()).unwrap();
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.iter().map(|x| x["variant"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "d"]);
    assert_eq!(variants[1]["summary"]["frames"], 2);
    assert_eq!(variants[1]["per_room_pct_5cm_5deg"].as_object().unwrap().len(), 2);
    let d = glace_formats::map_file::read(&out.join("d.glace")).unwrap();
    assert_eq!(d.head.config.clusters, 4, "K = 50 capped by the 4 training cameras");
    let options = &d.info.training.options.as_ref().unwrap().other;
    assert_eq!(
        (options["depth_max"].as_f64(), options["depth_target"].as_f64()),
        (Some(10.0), Some(3.0)),
        "2 rooms: 10 m wide"
    );
    assert_eq!(options["place_discriminants"], true);
    assert_eq!(options["lr_max"].as_f64(), Some(1.5e-3), "the rooms' peak learning rate");
    assert_eq!(v["lr_max"].as_f64(), Some(1.5e-3));
}

#[test]
fn an_explicit_structure_height_is_checked_at_the_size_it_encodes() {
    if !xfeat_available("an_explicit_structure_height_is_checked_at_the_size_it_encodes") {
        return;
    }
    // 160×120 frames, points asked for at 4096 px: 5461×4096 a view, beyond the network's limit,
    // refused naming the frame before any is encoded, and no map written.
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("room");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let synth = ["synth", "room", &s(&scene), "--frames", "4", "--test-frames", "1", "--size", "160x120"];
    assert!(glace(&[&synth[..], &["--texture-size", "64"]].concat()).status.success());
    let map = tmp.path().join("m.glace");
    let out = glace(&["map", &s(&scene), &s(&map), "--structure-height", "4096"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("frame-00000.png") && stderr.contains("5461×4096"), "{stderr}");
    assert!(!map.exists());
}
