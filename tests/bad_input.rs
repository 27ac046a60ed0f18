//! Bad input, as users give it: every case must exit 2 (never 101, never a hang), name the file
//! or option at fault, and leave every file under its folder exactly as it was (no output,
//! partial or final; no input changed). The cases span options that mean nothing, outputs that
//! would destroy inputs, malformed files of every parser, and corrupt maps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const POSE: &str = "1 0 0 0.5\n0 1 0 -0.25\n0 0 1 2\n0 0 0 1\n";

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13) as u8 ^ seed, (y * 7) as u8, seed])).save(path).unwrap();
}

/// A valid scene (3 train, 2 test frames of 16×12), a map file of a tiny head, its log, a pose file.
fn fixture(root: &Path) {
    let scene = root.join("scene");
    for (split, n) in [("train", 3), ("test", 2)] {
        for sub in ["rgb", "poses", "calibration"] {
            std::fs::create_dir_all(scene.join(split).join(sub)).unwrap();
        }
        for i in 0..n {
            write_png(&scene.join(split).join(format!("rgb/f{i}.png")), 16, 12, i as u8);
            std::fs::write(scene.join(split).join(format!("poses/f{i}.txt")), POSE).unwrap();
            std::fs::write(scene.join(split).join(format!("calibration/f{i}.txt")), "525.0").unwrap();
        }
    }
    std::fs::write(root.join("map.glace"), map_bytes(|_| {})).unwrap();
    std::fs::write(root.join("map.json"), "{\"training log\": true}").unwrap();
    std::fs::write(root.join("poses.txt"), "f0.png 1 0 0 0 0.5 -0.25 2\nf1.png 1 0 0 0 0.5 -0.25 2\n").unwrap();
}

/// A map of a tiny head (XFeat identity with a made-up sha256); `edit` changes its description.
fn map_bytes(edit: impl FnOnce(&mut glace_nn::map::MapInfo)) -> Vec<u8> {
    use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
    let config = glace_nn::HeadConfig {
        c_in: 64 + 8,
        channels: 8,
        block_channels: 8,
        blocks: 1,
        clusters: 1,
        homogeneous: true,
    };
    let head = glace_nn::Head::init(config, vec![[0.0, 0.0, 1.0]], 1);
    let mut info = MapInfo {
        head: head.config,
        local_encoder: EncoderIdentity { kind: "xfeat".into(), weights_sha256: "ab".repeat(32), dim: 64 },
        global: GlobalSource::FeaturesNpy,
        training: glace_nn::map::TrainingLog {
            options: Some(glace_nn::map::TrainedOptions {
                image_height: Some(480),
                noise_std: Some(0.1),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    edit(&mut info);
    glace_formats::map_file::to_bytes(&glace_nn::GlaceMap {
        info,
        head,
        global: None,
        global_scale: 1.0,
        structure: None,
    })
    .unwrap()
}

/// A map file of the tiny head with a structure of two points detected at `height` pixels.
fn structure_map_bytes(height: u32) -> Vec<u8> {
    let mut map = glace_formats::map_file::from_bytes(&map_bytes(|_| {}), "m.glace".as_ref()).unwrap();
    let n = 2;
    map.structure = Some(glace_structure::Structure {
        points_n3: vec![[0.0, 0.0, 2.0], [0.5, 0.0, 2.0]],
        features_nd: (0..n * 64).map(|i| if i % 64 == 0 { 1.0 } else { 0.0 }).collect(),
        dim: 64,
        view_of_point: vec![0, 0],
        support: vec![2, 2],
        score: vec![0.5, 0.5],
        centres_v3: vec![[0.0; 3]],
        image_height: Some(height),
        patches_n: Vec::new(),
        pixel_axes_v23: Vec::new(),
        view_globals_vg: Vec::new(),
    });
    glace_formats::map_file::to_bytes(&map).unwrap()
}

/// Every file and folder under `root`: path → content hash (folders: "dir").
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                todo.push(p);
            } else if meta.file_type().is_symlink() {
                out.insert(rel, format!("link {:?}", std::fs::read_link(&p).unwrap()));
            } else {
                out.insert(rel, glace_formats::weights::sha256_file(&p).unwrap());
            }
        }
    }
    out
}

type Setup = Box<dyn Fn(&Path)>;

struct Case {
    name: String,
    args: Vec<String>,
    expect: Vec<String>,
    setup: Option<Setup>,
}

fn case(name: &str, args: &str, expect: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.split_whitespace().map(String::from).collect(),
        expect: expect.iter().map(|s| s.to_string()).collect(),
        setup: None,
    }
}

fn with(mut c: Case, setup: impl Fn(&Path) + 'static) -> Case {
    c.setup = Some(Box::new(setup));
    c
}

fn write(rel: &'static str, content: &'static [u8]) -> impl Fn(&Path) {
    move |t: &Path| {
        let p = t.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn run_case(c: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fixture(t);
    if let Some(setup) = &c.setup {
        setup(t);
    }
    let before = snapshot(t);
    let args: Vec<String> = c.args.iter().map(|a| a.replace("{t}", t.to_str().unwrap())).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glace"))
        .args(&args)
        .current_dir(t)
        .env("GLACE_CACHE", t.join("no-cache"))
        .env("GLACE_WEIGHTS", t.join("no-weights"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(format!("{}: hung (over 60 s)", c.name));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let after = snapshot(t);
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit {:?}, expected 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    for e in &c.expect {
        let e = e.replace("{t}", t.to_str().unwrap());
        if !stderr.contains(&e) {
            problems.push(format!("message does not name '{e}'"));
        }
    }
    if before != after {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| k.display().to_string())
            .collect();
        problems.push(format!("files changed or appeared: {changed:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {} — `glace {}` said: {}", c.name, problems.join("; "), args.join(" "), stderr.trim()))
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Mapping options that mean nothing: refused with the option's name before any work.
    for (opt, vals) in [
        ("--iterations", &["0"][..]),
        ("--batch-size", &["0"]),
        ("--buffer-size", &["0"]),
        ("--samples-per-image", &["0"]),
        ("--head-channels", &["0"]),
        ("--decoder-clusters", &["0"]),
        ("--mlp-ratio", &["0", "NaN", "-1", "inf", "0.001"]),
        ("--noise", &["NaN", "-0.1", "inf"]),
        ("--lr-max", &["NaN", "0", "-1e-3", "inf"]),
        ("--image-height", &["0", "8", "5000"]),
        ("--structure-height", &["0", "8", "16", "31", "5000", "-1", "tall"]),
        ("--depth-target", &["NaN", "0.05", "-3"]),
        ("--depth-max", &["5", "NaN"]),
        ("--soft-clamp", &["NaN", "-1", "inf"]),
        ("--depth-weight", &["NaN", "-1", "inf", "heavy", "1e308", "101"]),
        ("--lr-max", &["5", "1e300"]),
        ("--rotation", &["NaN", "-5", "190"]),
        ("--precision", &["fp16", "", "BF16"]),
        ("--iterations", &["-1", "lots"]),
        ("--preset", &["gpu", ""]),
        ("--encoder", &["bogus", "ace:"]),
        ("--global", &["bogus", "r2former:"]),
    ] {
        for val in vals {
            v.push(case(&format!("map {opt} {val}"), &format!("map scene out.glace {opt}={val}"), &[opt]));
        }
    }
    // Localization and RANSAC options.
    for (opt, vals) in [
        ("--hypotheses", &["0", "1000000000"][..]),
        ("--max-tries", &["0"]),
        ("--threshold", &["NaN", "0", "-1", "inf"]),
        ("--inlier-alpha", &["NaN", "0"]),
        ("--max-pixel-error", &["NaN", "-5"]),
        ("--image-height", &["0", "9999"]),
        ("--encoder", &["bogus"]),
        ("--global", &["bogus"]),
        ("--precision", &["fp16"]),
        ("--turns", &["sideways", "", "4"]),
        ("--min-inlier-ratio", &["2", "NaN", "-0.1"]),
        ("--min-spread", &["1.5", "-1"]),
        ("--min-inliers", &["-1", "many"]),
    ] {
        for val in vals {
            v.push(case(&format!("localize {opt} {val}"), &format!("localize scene map.glace {opt}={val}"), &[opt]));
        }
    }
    for (opt, val) in [("--max-error", "NaN"), ("--max-error", "0"), ("--max-error", "-1")] {
        v.push(case(
            &format!("export pointcloud {opt} {val}"),
            &format!("export pointcloud scene map.glace p.ply {opt}={val}"),
            &[opt],
        ));
        v.push(case(
            &format!("export colmap {opt} {val}"),
            &format!("export colmap scene map.glace out {opt}={val}"),
            &[opt],
        ));
    }
    // Synthetic scenes and converters.
    for (args, expect) in [
        ("demo d --precision half", "--precision"),
        ("synth room s --noise NaN", "--noise"),
        ("synth room s --noise -1", "--noise"),
        ("synth room s --size 0x0", "0x0"),
        ("synth room s --size 10by20", "10by20"),
        ("synth room s --size 99999x99999", "99999"),
        ("synth room s --frames 0", "training frame"),
        ("synth room s --texture-size 7", "texture size"),
        ("synth rooms s --rooms 0", "rooms"),
        ("synth room s --focal -5", "focal"),
        ("convert tum scene out --max-gap NaN", "--max-gap"),
        ("convert tum scene out --max-gap 0", "--max-gap"),
        ("convert tum scene out --test-every 0", "--test-every"),
        ("convert tum scene out --intrinsics 1,2,3", "--intrinsics"),
        ("convert tum scene out --intrinsics a,b,c,d", "--intrinsics"),
        ("convert tum scene out --intrinsics nan,1,1,1", "--intrinsics"),
        ("convert tum scene out --camera fr9", "--camera"),
        ("convert transforms t.json out --test-every 0", "--test-every"),
        ("convert colmap sparse out --test-every 0 --images scene", "--test-every"),
        ("convert cambridge scene out --height 0", "--height"),
        ("convert 7scenes scene out --poses pgt", "--pgt-dir"),
        ("convert colmap nowhere out", "nowhere"),
        ("convert transforms nowhere.json out", "nowhere.json"),
        ("convert 12scenes nowhere out", "nowhere"),
        ("convert aachen nowhere out", "nowhere"),
        ("convert rooms nowhere.txt out", "nowhere.txt"),
    ] {
        v.push(case(args, args, &[expect]));
    }
    // Outputs that would destroy inputs, and outputs that already exist.
    for (name, args, expect) in [
        ("localize --out = the map", "localize scene map.glace --out map.glace", vec!["--out", "map.glace"]),
        (
            "localize --out = a test image",
            "localize scene map.glace --out scene/test/rgb/f0.png",
            vec!["--out", "f0.png"],
        ),
        ("localize report = the map's log", "localize scene map.glace --out map.txt", vec!["--report", "map.json"]),
        (
            "localize --report = --out",
            "localize scene map.glace --out r.json --report r.json",
            vec!["--report", "r.json"],
        ),
        ("localize --out inside the scene", "localize scene map.glace --out scene/p.txt", vec!["--out", "scene"]),
        ("map into map.json: map and log collide", "map scene m.json", vec!["--log", "m.json"]),
        ("map onto an existing map", "map scene map.glace", vec!["map.glace", "--force"]),
        ("map --log = the map", "map scene m.glace --log m.glace", vec!["--log"]),
        ("map into the scene", "map scene scene/m.glace", vec!["scene"]),
        ("map into a missing folder", "map scene nowhere/m.glace", vec!["nowhere"]),
        ("eval --plot = the pose file", "eval scene poses.txt --plot poses.txt", vec!["--plot", "poses.txt"]),
        ("eval --plot into a missing folder", "eval scene poses.txt --plot nowhere/cdf.png", vec!["--plot", "nowhere"]),
        ("eval --plot inside the scene", "eval scene poses.txt --plot scene/cdf.png", vec!["--plot"]),
        ("export pointcloud onto the map", "export pointcloud scene map.glace map.glace", vec!["map.glace"]),
        (
            "export pointcloud onto a scene image",
            "export pointcloud scene map.glace scene/train/rgb/f1.png",
            vec!["f1.png"],
        ),
        (
            "export pointcloud onto an existing file",
            "export pointcloud scene map.glace poses.txt",
            vec!["poses.txt", "--force"],
        ),
        ("export colmap into the scene", "export colmap scene map.glace scene/colmap", vec!["scene"]),
        ("export colmap over the scene", "export colmap scene map.glace scene --force", vec!["scene"]),
        ("export official-pt onto the map", "export official-pt map.glace map.glace", vec!["map.glace"]),
        ("bench real keeping maps in the scenes", "bench real --scenes . --keep scene", vec!["--keep", "scene"]),
        ("bench real keeping maps in a missing folder", "bench real --scenes . --keep nowhere", vec!["nowhere"]),
        (
            "convert colmap into its own project",
            "convert colmap proj/sparse/0 proj --images proj/images --force",
            vec!["proj"],
        ),
        (
            "convert colmap over the images",
            "convert colmap proj/sparse/0 proj/images --images proj/images --force",
            vec!["images"],
        ),
        ("convert transforms into its own folder", "convert transforms tf/transforms.json tf --force", vec!["tf"]),
        ("convert onto a non-empty folder", "convert transforms tf/transforms.json scene", vec!["scene", "--force"]),
        ("synth onto a non-empty folder", "synth room scene", vec!["scene", "--force"]),
        ("synth contact sheet onto the map", "synth room s2 --contact-sheet map.glace --frames 1", vec!["map.glace"]),
        (
            "convert dry run is refused nothing but writes nothing",
            "convert transforms tf/transforms.json scene --dry-run --test-every 0",
            vec!["--test-every"],
        ),
    ] {
        let c = case(name, args, &expect);
        v.push(with(c, |t: &Path| {
            for d in ["proj/sparse/0", "proj/images", "tf"] {
                std::fs::create_dir_all(t.join(d)).unwrap();
            }
            std::fs::write(t.join("proj/sparse/0/cameras.txt"), "1 PINHOLE 16 12 10 10 8 6\n").unwrap();
            std::fs::write(t.join("proj/sparse/0/images.txt"), "1 1 0 0 0 0 0 0 1 a.png\n\n").unwrap();
            write_png(&t.join("proj/images/a.png"), 16, 12, 1);
            std::fs::write(t.join("tf/transforms.json"), r#"{"camera_angle_x": 0.7, "frames": []}"#).unwrap();
        }));
    }
    // Scenes with bad files, through the commands that read them.
    let bad_scene: Vec<(&str, &'static str, &'static [u8], &str)> = vec![
        (
            "pose with translation 1e300",
            "scene/train/poses/f0.txt",
            b"1 0 0 1e300\n0 1 0 0\n0 0 1 0\n0 0 0 1\n",
            "f0.txt",
        ),
        ("pose with NaN", "scene/train/poses/f1.txt", b"1 0 0 0\n0 1 0 0\n0 0 1 nan\n0 0 0 1\n", "f1.txt"),
        ("K with skew", "scene/train/calibration/f0.txt", b"525 2 8\n0 525 6\n0 0 1\n", "f0.txt"),
        ("K with K[1][0]", "scene/train/calibration/f1.txt", b"525 0 8\n3 525 6\n0 0 1\n", "f1.txt"),
        ("K with a wrong last row", "scene/train/calibration/f2.txt", b"525 0 8\n0 525 6\n0 1 1\n", "f2.txt"),
        ("K with a zero focal", "scene/train/calibration/f2.txt", b"0 0 8\n0 525 6\n0 0 1\n", "f2.txt"),
        ("calibration of four numbers", "scene/test/calibration/f0.txt", b"1 2 3 4", "f0.txt"),
        ("image that is text", "scene/train/rgb/f2.png", b"not an image", "f2.png"),
        (
            "features.npy of garbage",
            "scene/train/features.npy",
            b"\x93NUMPY\x01\x00\x10\x00{'shape': (9",
            "features.npy",
        ),
        ("distortion of three numbers", "scene/distortion.txt", b"0.1 0.2 0.3\n", "distortion.txt"),
    ];
    for (what, rel, content, file) in bad_scene {
        for cmd in ["info scene", "map scene new.glace", "localize scene map.glace --out p.txt"] {
            if (cmd.starts_with("localize") && rel.contains("/train/"))
                || (cmd.starts_with("map") && rel.contains("/test/"))
            {
                continue;
            }
            v.push(with(case(&format!("{cmd}: {what}"), cmd, &[file]), write(rel, content)));
        }
    }
    // Images that are cut off: found when decoded.
    let truncated_jpeg = |t: &Path| {
        let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([(x * 9) as u8, (y * 17) as u8, 3]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        std::fs::remove_file(t.join("scene/train/rgb/f1.png")).unwrap();
        std::fs::write(t.join("scene/train/rgb/f1.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    };
    v.push(with(
        case("info --decode-images: truncated JPEG", "info scene --decode-images", &["f1.jpg"]),
        truncated_jpeg,
    ));
    v.push(with(case("info --decode-images: truncated PNG", "info scene --decode-images", &["f0.png"]), |t: &Path| {
        let p = t.join("scene/test/rgb/f0.png");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 20]).unwrap();
    }));
    v.push(with(case("info: dangling symlink image", "info scene", &["f0.png"]), |t: &Path| {
        let p = t.join("scene/train/rgb/f0.png");
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(t.join("gone.png"), &p).unwrap();
    }));
    // Pose files for eval.
    for (what, content, expect) in [
        ("five columns", &b"f0.png 1 0 0 0\n"[..], "poses.txt:1"),
        ("a word for a number", b"f0.png 1 0 0 x 0 0 0\n", "poses.txt:1"),
        ("a frame twice", b"f0.png 1 0 0 0 0 0 0\nf0.png 1 0 0 0 0 0 0\n", "poses.txt:2"),
        ("an unknown frame", b"zz.png 1 0 0 0 0 0 0\n", "zz.png"),
        ("inliers that are not a count", b"f0.png 1 0 0 0 0 0 0 0 0 many\n", "poses.txt:1"),
    ] {
        v.push(with(
            case(&format!("eval: pose file with {what}"), "eval scene poses.txt --no-plot", &[expect]),
            move |t: &Path| std::fs::write(t.join("poses.txt"), content).unwrap(),
        ));
    }
    v.push(case("eval: missing pose file", "eval scene nowhere.txt --no-plot", &["nowhere.txt"]));
    v.push(with(
        case("eval: placeholder test poses", "eval scene poses.txt --no-plot", &["placeholders"]),
        write("scene/test/DUMMY_POSES", b""),
    ));
    // Map files.
    let maps: Vec<(&str, Box<dyn Fn() -> Vec<u8>>, &str)> = vec![
        ("text, not a map", Box::new(|| b"hello".to_vec()), "not a glace map"),
        ("empty", Box::new(Vec::new), "not a glace map"),
        (
            "truncated",
            Box::new(|| {
                let b = map_bytes(|_| {});
                b[..b.len() / 2].to_vec()
            }),
            "m.glace",
        ),
        (
            "one byte flipped",
            Box::new(|| {
                let mut b = map_bytes(|_| {});
                let n = b.len();
                b[n - 10] ^= 0x55;
                b
            }),
            "checksum",
        ),
        (
            "description edited, checksum not",
            Box::new(|| {
                let b = map_bytes(|_| {});
                let s = String::from_utf8_lossy(&b).replace("\\\"image_height\\\":480", "\\\"image_height\\\":481");
                s.into_bytes()
            }),
            "m.glace",
        ),
        (
            "image height 0, resealed",
            Box::new(|| {
                glace_formats::map_file::reseal(&map_bytes(|i| {
                    i.training.options.as_mut().unwrap().image_height = Some(0)
                }))
                .unwrap()
            }),
            "image height",
        ),
        (
            "image height 4e9, resealed",
            Box::new(|| {
                glace_formats::map_file::reseal(&map_bytes(|i| {
                    i.training.options.as_mut().unwrap().image_height = Some(4_000_000_000)
                }))
                .unwrap()
            }),
            "image height",
        ),
        (
            "NaN σ, resealed",
            Box::new(|| {
                glace_formats::map_file::reseal(&map_bytes(|i| {
                    i.training.options.as_mut().unwrap().noise_std = Some(-1.0)
                }))
                .unwrap()
            }),
            "σ",
        ),
        (
            "unknown encoder, resealed",
            Box::new(|| glace_formats::map_file::reseal(&map_bytes(|i| i.local_encoder.kind = "sift".into())).unwrap()),
            "sift",
        ),
        (
            "encoder of the wrong width, resealed",
            Box::new(|| glace_formats::map_file::reseal(&map_bytes(|i| i.local_encoder.dim = 128)).unwrap()),
            "128",
        ),
        (
            "head of another width than described, resealed",
            Box::new(|| glace_formats::map_file::reseal(&map_bytes(|i| i.head.channels = 16)).unwrap()),
            "description says",
        ),
        (
            "no global input, head expects one, resealed",
            Box::new(|| {
                glace_formats::map_file::reseal(&map_bytes(|i| i.global = glace_nn::map::GlobalSource::None)).unwrap()
            }),
            "head takes",
        ),
    ];
    for (what, bytes, expect) in maps {
        let bytes = bytes();
        for cmd in ["info m.glace", "localize scene m.glace --out p.txt", "export official-pt m.glace o.pt"] {
            let b = bytes.clone();
            v.push(with(case(&format!("{cmd}: map {what}"), cmd, &[expect]), move |t: &Path| {
                std::fs::write(t.join("m.glace"), &b).unwrap()
            }));
        }
    }
    // Official-head files that are not.
    for (what, content) in
        [("text", &b"not a zip"[..]), ("a zip without data.pkl", b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")]
    {
        v.push(with(case(&format!("info: .pt that is {what}"), "info h.pt", &["h.pt"]), move |t: &Path| {
            std::fs::write(t.join("h.pt"), content).unwrap()
        }));
    }
    // Converter inputs that lie about their sizes.
    v.push(with(
        case(
            "convert colmap: images.bin with 2^64-1 points",
            "convert colmap bin out --images scene/train/rgb",
            &["images.bin"],
        ),
        |t: &Path| {
            let d = t.join("bin");
            std::fs::create_dir_all(&d).unwrap();
            let mut cams = 1u64.to_le_bytes().to_vec();
            cams.extend(1i32.to_le_bytes());
            cams.extend(1i32.to_le_bytes());
            cams.extend(16u64.to_le_bytes());
            cams.extend(12u64.to_le_bytes());
            [10.0f64, 10.0, 8.0, 6.0].iter().for_each(|v| cams.extend(v.to_le_bytes()));
            std::fs::write(d.join("cameras.bin"), cams).unwrap();
            let mut imgs = u64::MAX.to_le_bytes().to_vec();
            imgs.extend(1i32.to_le_bytes());
            [1.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0].iter().for_each(|v| imgs.extend(v.to_le_bytes()));
            imgs.extend(1i32.to_le_bytes());
            imgs.extend(b"f0.png\0");
            imgs.extend(u64::MAX.to_le_bytes());
            std::fs::write(d.join("images.bin"), imgs).unwrap();
        },
    ));
    v.push(with(
        case(
            "convert colmap: cameras.bin with a fisheye model",
            "convert colmap bin out --images scene/train/rgb",
            &["cameras.bin", "FISHEYE"],
        ),
        |t: &Path| {
            let d = t.join("bin");
            std::fs::create_dir_all(&d).unwrap();
            let mut cams = 1u64.to_le_bytes().to_vec();
            cams.extend(1i32.to_le_bytes());
            cams.extend(5i32.to_le_bytes());
            std::fs::write(d.join("cameras.bin"), cams).unwrap();
            std::fs::write(d.join("images.bin"), 0u64.to_le_bytes()).unwrap();
        },
    ));
    v.push(with(
        case(
            "convert colmap: cameras.txt with too few parameters",
            "convert colmap txt out --images scene/train/rgb",
            &["cameras.txt:1"],
        ),
        |t: &Path| {
            std::fs::create_dir_all(t.join("txt")).unwrap();
            std::fs::write(t.join("txt/cameras.txt"), "1 PINHOLE 16 12 10 10\n").unwrap();
            std::fs::write(t.join("txt/images.txt"), "").unwrap();
        },
    ));
    v.push(with(
        case("convert transforms: not JSON", "convert transforms t.json out", &["t.json"]),
        write("t.json", b"{frames: ["),
    ));
    v.push(with(case("convert transforms: a 3x4 matrix", "convert transforms t.json out", &["t.json"]), write("t.json", br#"{"camera_angle_x": 0.7, "frames": [{"file_path": "scene/train/rgb/f0.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0]]}]}"#)));
    v.push(with(
        case("convert cambridge: NVM with 10^17 cameras", "convert cambridge cam out", &["reconstruction.nvm"]),
        |t: &Path| {
            std::fs::create_dir_all(t.join("cam")).unwrap();
            std::fs::write(
                t.join("cam/reconstruction.nvm"),
                "NVM_V3\n\n100000000000000000\na.jpg 500 1 0 0 0 0 0 0 0 0\n",
            )
            .unwrap();
            std::fs::write(t.join("cam/dataset_train.txt"), "header\nheader\nheader\na.jpg 0 0 0 1 0 0 0\n").unwrap();
            std::fs::write(t.join("cam/dataset_test.txt"), "header\nheader\nheader\n").unwrap();
        },
    ));
    // The service's options.
    for (args, expect) in [
        ("serve map.glace --precision fp8", "--precision"),
        ("serve map.glace --turns 180", "--turns"),
        ("serve map.glace --workers 0", "--workers"),
        ("serve map.glace --workers 100000", "--workers"),
        ("serve map.glace --min-inlier-ratio 7", "--min-inlier-ratio"),
        ("serve map.glace --header-timeout-ms 0", "--header-timeout-ms"),
        ("serve map.glace --shutdown-grace-ms 0", "--shutdown-grace-ms"),
        ("serve map.glace --queue 1000000000000", "--queue"),
        ("serve map.glace --workers 18446744073709551615", "--workers"),
        ("serve map.glace --queue 0", "--queue"),
        ("serve map.glace --max-body 10", "--max-body"),
        ("serve map.glace --max-body lots", "--max-body"),
        ("serve map.glace --deadline-ms 0", "--deadline-ms"),
        ("serve map.glace --addr localhost", "--addr"),
        ("serve map.glace --token-file nowhere", "--token-file"),
        ("serve nowhere.glace", "nowhere.glace"),
        ("serve map.glace map.glace", "map"),
    ] {
        v.push(case(args, args, &[expect]));
    }
    v.push(with(
        case("serve --token-file empty", "serve map.glace --token-file tok", &["--token-file"]),
        write("tok", b"\n"),
    ));
    // A folder in the courtyard's cache place that holds another scene is refused, not replaced.
    v.push(with(
        case(
            "bench real --courtyard: another scene in its place",
            "bench real --courtyard --only courtyard",
            &["--courtyard", "no-cache/synth/courtyard"],
        ),
        write("no-cache/synth/courtyard/scene.json", b"{}\n"),
    ));
    // Usage errors.
    for (args, expect) in [
        ("no-such-command", "no-such-command"),
        ("map", "<SCENE>"),
        ("info nowhere", "nowhere"),
        ("localize nowhere map.glace", "nowhere"),
        ("features scene --global builtin", "--global"),
        ("features scene --global r2former:nowhere.pth", "nowhere.pth"),
        ("bench ransac --fixture nowhere.npz", "nowhere.npz"),
        ("bench real --scenes nowhere", "nowhere"),
        ("bench real --scenes . --only nosuch", "nosuch"),
        ("bench real --scenes . --options {bad", "--options"),
        ("bench real --scenes . --options {\"iterations\":0}", "--options: iterations"),
        ("bench real --scenes . --baselines nowhere.json", "nowhere.json"),
        // Checked before the courtyard is rendered.
        ("bench real --scenes . --courtyard --only nosuch", "nosuch"),
        ("bench real --courtyard --only courtyard --options {bad", "--options"),
        ("bench budget --scenes nowhere", "nowhere"),
        ("bench budget --scenes . --only nosuch", "nosuch"),
        ("bench budget --scenes . --iterations 0", "--iterations"),
        ("bench budget --scenes . --visits 2,0", "--visits"),
        ("bench budget --scenes . --options {\"batch_size\":0}", "--options: batch_size"),
        ("bench query --scenes . --maps nowhere", "--maps"),
        ("bench query --scenes nowhere --maps .", "nowhere"),
        ("bench query --scenes . --maps . --threads 0", "--threads"),
        ("bench encoders --image nowhere.png", "nowhere.png"),
        ("bench ablation --variants e", "--variants"),
        ("bench ablation --size 8x8 --rooms 1 --frames 1", "8x8"),
    ] {
        v.push(case(args, args, &[expect]));
    }
    // Symbolic links: a scene whose images link into the user's capture (as `glace convert`
    // makes it) must not let an output replace what the links lead to.
    let linked = |t: &Path| {
        std::fs::create_dir_all(t.join("proj/images")).unwrap();
        std::fs::create_dir_all(t.join("proj/sparse/0")).unwrap();
        std::fs::write(t.join("proj/sparse/0/cameras.txt"), "# the user's model\n").unwrap();
        for i in 0..2 {
            let image = t.join(format!("proj/images/f{i}.png"));
            std::fs::rename(t.join(format!("scene/test/rgb/f{i}.png")), &image).unwrap();
            std::os::unix::fs::symlink(&image, t.join(format!("scene/test/rgb/f{i}.png"))).unwrap();
        }
    };
    for (name, args, expect) in [
        (
            "export colmap over a linked capture",
            "export colmap scene map.glace proj --force",
            vec!["proj", "holds the input"],
        ),
        (
            "export pointcloud onto a linked image",
            "export pointcloud scene map.glace proj/images/f0.png --force",
            vec!["f0.png", "is also the input"],
        ),
        ("localize --out onto a linked image", "localize scene map.glace --out proj/images/f1.png", vec!["f1.png"]),
    ] {
        v.push(with(case(name, args, &expect.iter().map(|s| &**s).collect::<Vec<_>>()), linked));
    }
    // Images whose shape would make the network's work unbounded: refused from the header by
    // every command that reads them, naming the file and the limit.
    let thin = |rel: &'static str| {
        move |t: &Path| {
            image::GrayImage::from_pixel(1000, 7, image::Luma([90])).save(t.join(rel)).unwrap();
        }
    };
    for (name, args, file) in [
        ("map with a 1000x7 training image", "map scene out.glace", "scene/train/rgb/f1.png"),
        ("localize a 1000x7 test image", "localize scene map.glace", "scene/test/rgb/f0.png"),
        ("export colmap with a 1000x7 image", "export colmap scene map.glace out", "scene/test/rgb/f0.png"),
        ("export pointcloud with a 1000x7 image", "export pointcloud scene map.glace p.ply", "scene/train/rgb/f0.png"),
        ("info on a scene with a 1000x7 image", "info scene", "scene/test/rgb/f1.png"),
    ] {
        let stem = Path::new(file).file_name().unwrap().to_str().unwrap();
        v.push(with(case(name, args, &[stem, "1000×7"]), thin(file)));
    }
    let deep = |t: &Path| {
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(16, 12, image::Luma([999]))
            .save(t.join("scene/test/rgb/f1.png"))
            .unwrap();
    };
    v.push(with(case("localize a 16-bit PNG", "localize scene map.glace", &["f1.png", "8-bit"]), deep));
    // Maps that are complete files but cannot work: refused by the loader, so by every command.
    let low_structure = |t: &Path| std::fs::write(t.join("low.glace"), structure_map_bytes(16)).unwrap();
    let turns = |t: &Path| {
        let bytes = map_bytes(|info| info.training.query_turns = Some(vec![1; 1000]));
        std::fs::write(t.join("turns.glace"), bytes).unwrap()
    };
    for command in ["info {m}", "localize scene {m}", "export colmap scene {m} out", "serve {m}"] {
        let args = command.replace("{m}", "low.glace");
        v.push(with(
            case(&format!("{args}: structure detected at 16 px"), &args, &["low.glace", "at least 32"]),
            low_structure,
        ));
        let args = command.replace("{m}", "turns.glace");
        v.push(with(
            case(&format!("{args}: a turn listed 1000 times"), &args, &["turns.glace", "quarter turns"]),
            turns,
        ));
    }
    // A map kept from an earlier run is not overwritten without --force.
    v.push(with(
        case("bench real over a kept map", "bench real --scenes scenes --keep .", &["scene.glace", "--force"]),
        |t: &Path| {
            std::fs::create_dir_all(t.join("scenes")).unwrap();
            std::os::unix::fs::symlink(t.join("scene"), t.join("scenes/scene")).unwrap();
            std::fs::write(t.join("scene.glace"), "an earlier map").unwrap();
        },
    ));
    v
}

#[test]
fn bad_input_exits_2_names_the_culprit_and_changes_nothing() {
    let all = cases();
    let failures: Vec<String> = all.iter().filter_map(|c| run_case(c).err()).collect();
    eprintln!("{} bad-input cases, {} failed", all.len(), failures.len());
    assert!(all.len() >= 150, "only {} cases", all.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), all.len(), failures.join("\n"));
}
