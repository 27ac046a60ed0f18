//! Every parser of user files under the mutation fuzzer: a fixed number of inputs in `cargo
//! test`; `GLACE_FUZZ_SECONDS=600 cargo test --release -p glace-fuzz -- --ignored` runs each
//! target that long (two at a time; `GLACE_FUZZ_TARGETS=npy,images` picks targets).

use std::path::Path;
use std::time::Duration;

use glace_fuzz::{run, GuardedAllocator};

#[global_allocator]
static ALLOCATOR: GuardedAllocator = GuardedAllocator;

type Parse = Box<dyn FnMut(&[u8]) -> bool + Send>;

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    parse: Box<dyn Fn(&Path) -> Parse + Send + Sync>,
}

fn write_in(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn colmap_binary_seeds() -> Vec<Vec<u8>> {
    let mut cams = Vec::new();
    cams.extend(2u64.to_le_bytes());
    for (id, model, params) in [
        (1i32, 1i32, vec![500.0f64, 500.0, 320.0, 240.0]),
        (2, 4, vec![500.0, 501.0, 320.0, 240.0, 0.1, 0.01, 0.0, 0.0]),
    ] {
        cams.extend(id.to_le_bytes());
        cams.extend(model.to_le_bytes());
        cams.extend(640u64.to_le_bytes());
        cams.extend(480u64.to_le_bytes());
        params.iter().for_each(|p| cams.extend(p.to_le_bytes()));
    }
    let mut imgs = Vec::new();
    imgs.extend(2u64.to_le_bytes());
    for (id, name) in [(1i32, "a.jpg"), (2, "b.jpg")] {
        imgs.extend(id.to_le_bytes());
        [1.0f64, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3].iter().for_each(|v| imgs.extend(v.to_le_bytes()));
        imgs.extend(1i32.to_le_bytes());
        imgs.extend(name.as_bytes());
        imgs.push(0);
        imgs.extend(1u64.to_le_bytes());
        [10.0f64, 20.0].iter().for_each(|v| imgs.extend(v.to_le_bytes()));
        imgs.extend((-1i64).to_le_bytes());
    }
    vec![cams, imgs]
}

fn tiny_head() -> glace_nn::Head {
    let config = glace_nn::HeadConfig {
        c_in: 64 + 8,
        channels: 8,
        block_channels: 8,
        blocks: 1,
        clusters: 1,
        homogeneous: true,
    };
    glace_nn::Head::init(config, vec![[0.5, -0.2, 1.0]], 3)
}

fn map_seed() -> Vec<u8> {
    use glace_nn::map::{EncoderIdentity, GlobalSource, MapInfo};
    let head = tiny_head();
    let info = MapInfo {
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
    let map = glace_nn::GlaceMap { info, head, global: None, global_scale: 1.0, structure: None };
    glace_formats::map_file::to_bytes(&map).unwrap()
}

fn pt_seed(dir: &Path) -> Vec<u8> {
    let head = tiny_head();
    let sd = head.reference_state_dict();
    let tensors = glace_formats::pt_write::SaveTensor::from_state_dict(&sd);
    let p = dir.join("seed.pt");
    glace_formats::pt_write::save_fp16_state_dict(&p, &tensors).unwrap();
    std::fs::read(p).unwrap()
}

fn pickle_seed(pt: &[u8]) -> Vec<u8> {
    // The archive is stored uncompressed: data.pkl's bytes lie between its local header and "PK".
    let start = pt.windows(8).position(|w| w == b"data.pkl").unwrap() + 8;
    let body = &pt[start..];
    let begin = body.iter().position(|&b| b == 0x80).unwrap();
    let end = body.windows(2).position(|w| w == b"PK").unwrap();
    body[begin..end].to_vec()
}

fn image_seeds() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 77]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&img).unwrap();
    vec![png, jpeg]
}

fn targets(dir: &Path) -> Vec<Target> {
    let pt = pt_seed(dir);
    let pickle = pickle_seed(&pt);
    let npy = {
        let p = dir.join("seed.npy");
        let mut rows = vec![0f32; 16];
        rows[0] = 1.0;
        rows[9] = 1.0;
        glace_data::features::write_features(&p, 2, 8, &rows).unwrap();
        std::fs::read(p).unwrap()
    };
    vec![
        Target {
            name: "colmap_binary",
            seeds: colmap_binary_seeds(),
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| {
                    let p = write_in(&d, "model.bin", b);
                    let c = glace_data::convert::colmap::read_cameras_bin(&p).is_ok();
                    glace_data::convert::colmap::read_images_bin(&p).is_ok() || c
                })
            }),
        },
        Target {
            name: "colmap_text",
            seeds: vec![
                b"# cameras\n1 PINHOLE 640 480 500 500 320 240\n2 OPENCV 640 480 500 501 320 240 0.1 0.01 0 0\n"
                    .to_vec(),
                b"# images\n1 1 0 0 0 0.1 0.2 0.3 1 a.jpg\n10 20 -1\n2 0.7071 0.7071 0 0 1 2 3 2 b c.jpg\n\n".to_vec(),
            ],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| {
                    let p = write_in(&d, "model.txt", b);
                    // Every camera read is also turned into intrinsics, as the converter does.
                    let c = glace_data::convert::colmap::read_cameras_txt(&p).map(|cams| {
                        cams.values().filter(|c| glace_data::convert::colmap::camera_model(c).is_ok()).count()
                    });
                    glace_data::convert::colmap::read_images_txt(&p).is_ok() || c.is_ok()
                })
            }),
        },
        Target {
            name: "nvm",
            seeds: vec![
                b"NVM_V3\n\n2\na.jpg 500 1 0 0 0 0.1 0.2 0.3 0.01 0\nb.jpg 510 0.7071 0 0.7071 0 1 2 3 0 0\n\n0\n"
                    .to_vec(),
            ],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| glace_data::convert::nvm::read_cameras(&write_in(&d, "x.nvm", b)).is_ok())
            }),
        },
        Target {
            name: "pickle",
            seeds: vec![pickle, b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02eu.".to_vec()],
            parse: Box::new(|_: &Path| {
                Box::new(|b: &[u8]| {
                    let mut storages = |_: &str, _: &'static str| Ok(std::rc::Rc::new(vec![0.5f32; 4096]));
                    glace_formats::pt::unpickle(b, Path::new("fuzz.pkl"), &mut storages).is_ok()
                })
            }),
        },
        Target {
            name: "pt_archive",
            seeds: vec![pt],
            parse: Box::new(|_: &Path| {
                Box::new(|b: &[u8]| {
                    let Ok(v) = glace_formats::pt::load_bytes(b, Path::new("fuzz.pt")) else { return false };
                    let sd = v.tensors();
                    glace_nn::Head::from_state_dict(Path::new("fuzz.pt"), &sd).is_ok()
                })
            }),
        },
        Target {
            name: "map_file",
            seeds: vec![map_seed()],
            parse: Box::new(|_: &Path| {
                Box::new(|b: &[u8]| glace_formats::map_file::from_bytes(b, Path::new("fuzz.glace")).is_ok())
            }),
        },
        Target {
            name: "map_file_resealed",
            seeds: vec![map_seed()],
            parse: Box::new(|_: &Path| {
                Box::new(|b: &[u8]| {
                    let Some(sealed) = glace_formats::map_file::reseal(b) else { return false };
                    let Ok(map) = glace_formats::map_file::from_bytes(&sealed, Path::new("fuzz.glace")) else {
                        return false;
                    };
                    // A map that loads must run: the head on a row of the width it says.
                    let x = vec![0.1f32; map.head.config.c_in];
                    map.head.forward(&x, 1).coords_n3.len() == 3 && map.trained_image_height() >= 16
                })
            }),
        },
        Target {
            name: "npy",
            seeds: vec![npy],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| glace_data::GlobalFeatures::read(&write_in(&d, "f.npy", b), 2).is_ok())
            }),
        },
        Target {
            name: "scene_text",
            seeds: vec![
                b"1 0 0 0.5\n0 1 0 -1\n0 0 1 2\n0 0 0 1\n".to_vec(),
                b"525\n".to_vec(),
                b"520.9 0 325.1\n0 521 249.7\n0 0 1\n".to_vec(),
                b"# k1 k2 p1 p2 k3\n0.2312 -0.7849 -0.0033 -0.0001 0.9172\n".to_vec(),
                b" 9.3817085e-001\t-1.2e-001 \t0\t1.5e+000\r\n".to_vec(),
            ],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| {
                    let p = write_in(&d, "t.txt", b);
                    let a = glace_data::text::read_pose(&p, 1e-3).is_ok();
                    let c = glace_data::text::read_calibration(&p).is_ok();
                    glace_data::text::read_distortion(&p).is_ok() || a || c
                })
            }),
        },
        Target {
            name: "pose_file",
            seeds: vec![
                b"a.png 1 0 0 0 0.1 0.2 0.3 0.5 0.01 120\nb.png nan nan nan nan nan nan nan inf inf 0\n# c\n".to_vec(),
                b"c.png 0.7071 0.7071 0 0 1 2 3\n".to_vec(),
            ],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                Box::new(move |b: &[u8]| glace_localize::posefile::read_pose_file(&write_in(&d, "p.txt", b)).is_ok())
            }),
        },
        Target {
            name: "transforms_json",
            seeds: vec![
                br#"{"camera_angle_x": 0.69, "w": 64, "h": 48, "frames": [
                {"file_path": "./a", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,1],[0,0,0,1]]},
                {"file_path": "b.png", "fl_x": 50, "transform_matrix": [[1,0,0,0],[0,-1,0,0],[0,0,-1,1],[0,0,0,1]]}]}"#
                    .to_vec(),
            ],
            parse: Box::new(|d: &Path| {
                let d = d.to_path_buf();
                for name in ["a.png", "b.png"] {
                    image::RgbImage::new(64, 48).save(d.join(name)).unwrap();
                }
                Box::new(move |b: &[u8]| {
                    glace_data::convert::transforms::plan(&write_in(&d, "transforms.json", b), 8, 0).is_ok()
                })
            }),
        },
        Target {
            name: "images",
            seeds: image_seeds(),
            parse: Box::new(|_: &Path| Box::new(|b: &[u8]| glace::decode_image(b, 1 << 22).is_ok())),
        },
    ]
}

fn fuzz_all(iterations: u64, time: Duration, parallel: usize, only: Option<&str>) {
    let seed_dir = tempfile::tempdir().unwrap();
    let mut all = targets(seed_dir.path());
    if let Some(only) = only {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|t| wanted.contains(&t.name));
        assert!(!all.is_empty(), "GLACE_FUZZ_TARGETS={only} names no target");
    }
    let chunks: Vec<Vec<&Target>> = {
        let mut c: Vec<Vec<&Target>> = (0..parallel).map(|_| Vec::new()).collect();
        for (i, t) in all.iter().enumerate() {
            c[i % parallel].push(t);
        }
        c
    };
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for chunk in chunks {
            let failures = &failures;
            s.spawn(move || {
                for t in chunk {
                    let dir = tempfile::tempdir().unwrap();
                    let mut parse = (t.parse)(dir.path());
                    let seed = 0x5EED ^ t.name.len() as u64;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(t.name, &t.seeds, iterations, time, seed, &mut *parse)
                    }));
                    match r {
                        Ok(r) => eprintln!(
                            "fuzz {:<18} {:>9} inputs in {:>6.1} s, {:>7} accepted",
                            r.target,
                            r.runs,
                            r.elapsed.as_secs_f64(),
                            r.accepted
                        ),
                        Err(_) => failures.lock().unwrap().push(t.name),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "parsers that panicked (inputs saved under crates/fuzz/regressions): {failures:?}");
}

#[test]
fn parsers_survive_mutated_inputs() {
    // Panics inside the parsers are caught and reported by the harness; keep the log quiet.
    std::panic::set_hook(Box::new(|_| {}));
    fuzz_all(20_000, Duration::from_secs(120), 2, None);
}

#[test]
#[ignore = "long: GLACE_FUZZ_SECONDS per target (default 600), GLACE_FUZZ_TARGETS=a,b to pick targets"]
fn parsers_survive_mutated_inputs_long() {
    let secs: u64 = std::env::var("GLACE_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let only = std::env::var("GLACE_FUZZ_TARGETS").ok();
    fuzz_all(u64::MAX, Duration::from_secs(secs), 2, only.as_deref());
}
