//! `glace serve` as a deployment runs it: the binary on loopback, one request per endpoint, a
//! pose equal to `glace localize`'s, the token, the body limit, a truncated image, and a
//! graceful shutdown with a request in flight.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use glace_serve::client::{blocking_request, Response};

fn glace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glace")).args(args).output().expect("run glace")
}

/// Starts `glace serve`, returning the process and the address it printed.
fn start(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_glace"))
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start glace serve");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{line}"));
    (child, addr.parse().unwrap())
}

fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    blocking_request(addr, method, path, headers, body, Duration::from_secs(60)).expect("an answer")
}

fn pose_file(path: &Path) -> Vec<(String, Vec<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[1..8].iter().map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

/// A synthetic room of 8 training and 3 test frames of 160×120 and a small map of it, in `dir`.
fn small_room(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let scene = dir.join("room");
    let map = dir.join("room.glace");
    let args = ["synth", "room", &s(&scene), "--frames", "8", "--test-frames", "3", "--size", "160x120"];
    assert!(glace(&[&args[..], &["--texture-size", "64"]].concat()).status.success());
    let run = glace(&[
        "map",
        &s(&scene),
        &s(&map),
        "--buffer-size",
        "8000",
        "--samples-per-image",
        "512",
        "--iterations",
        "60",
        "--batch-size",
        "512",
        "--head-channels",
        "64",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    (scene, map)
}

#[test]
fn serve_answers_like_localize_and_refuses_what_it_must() {
    if glace_formats::weights::xfeat_weights().is_err() {
        eprintln!("SKIPPED serve_answers_like_localize_and_refuses_what_it_must: XFeat weights unavailable");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (scene, map) = small_room(tmp.path());
    let poses = tmp.path().join("poses.txt");
    // The map is trained for seconds: its poses are compared, not judged (--min-inlier-ratio 0).
    let loose = ["--min-inlier-ratio", "0", "--min-inliers", "0"];
    assert!(glace(&[&["localize", &s(&scene), &s(&map), "--out", &s(&poses)][..], &loose].concat()).status.success());
    let expected = pose_file(&poses);

    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (mut child, addr) = start(&[
        &s(&map),
        "--token-file",
        &s(&token),
        "--max-body",
        "200kB",
        "--deadline-ms",
        "20000",
        "--workers",
        "2",
        "--min-inlier-ratio",
        "0",
        "--min-inliers",
        "0",
    ]);
    let auth = ("Authorization", "Bearer s3cret");

    // One request per endpoint; 401 without the token.
    assert_eq!(call(addr, "GET", "/v1/health", &[], b"").status, 401);
    assert_eq!(call(addr, "GET", "/v1/health", &[("Authorization", "Bearer wrong")], b"").status, 401);
    let health = call(addr, "GET", "/v1/health", &[auth], b"");
    assert_eq!((health.status, health.json().unwrap()["status"].as_str()), (200, Some("ok")));
    let maps = call(addr, "GET", "/v1/maps", &[auth], b"").json().unwrap();
    assert_eq!(maps["maps"][0]["name"], "room");
    assert_eq!(maps["maps"][0]["description"]["local_encoder"]["kind"], "xfeat");

    // The poses `glace localize` wrote, from raw bodies and from JSON with base64.
    let k = "fx=131.25&fy=131.25&cx=80&cy=60";
    for (name, want) in &expected {
        let image = std::fs::read(scene.join("test/rgb").join(name)).unwrap();
        let r =
            call(addr, "POST", &format!("/v1/maps/room/localize?{k}"), &[auth, ("Content-Type", "image/png")], &image);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json().unwrap();
        let nums = |pose: &str, key: &str| -> Vec<f64> {
            v[pose][key].as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect()).unwrap_or_default()
        };
        let got = [nums("cam_from_world", "quaternion_wxyz"), nums("cam_from_world", "translation")].concat();
        if want.iter().all(|x| x.is_finite()) {
            assert_eq!(&got, want, "{name}: served pose differs from glace localize's");
            // world_from_cam is its inverse: the camera centre is −Rᵀt.
            let m = &v["cam_from_world"]["matrix"];
            let r = |i: usize, j: usize| m[i][j].as_f64().unwrap();
            let centre = nums("world_from_cam", "translation");
            for (j, c) in centre.iter().enumerate() {
                let expected = -(0..3).map(|i| r(i, j) * r(i, 3)).sum::<f64>();
                assert!((c - expected).abs() < 1e-9, "{name}: camera centre {centre:?}");
            }
            assert_eq!(v["world_from_cam"]["matrix"].as_array().unwrap().len(), 4);
        } else {
            assert_eq!(v["success"], false, "{name}");
        }
        assert_eq!(v["map"]["name"], "room");
        use base64::Engine as _;
        let body = serde_json::json!({
            "image": base64::engine::general_purpose::STANDARD.encode(&image),
            "K": [[131.25, 0, 80], [0, 131.25, 60], [0, 0, 1]],
        });
        let r = call(
            addr,
            "POST",
            "/v1/maps/room/localize",
            &[auth, ("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json().unwrap()["cam_from_world"], v["cam_from_world"]);
    }

    // 413 beyond --max-body, 400 for a truncated image, 415 for another type, 404 for another map.
    let image = std::fs::read(scene.join("test/rgb").join(&expected[0].0)).unwrap();
    let path = format!("/v1/maps/room/localize?{k}");
    let big = vec![0u8; 300_000];
    let r = call(addr, "POST", &path, &[auth, ("Content-Type", "image/png")], &big);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let r = call(addr, "POST", &path, &[auth, ("Content-Type", "image/png")], &image[..image.len() / 2]);
    assert_eq!(r.status, 400);
    assert!(r.json().unwrap()["error"].as_str().unwrap().starts_with("image: "), "{:?}", r.json());
    assert_eq!(call(addr, "POST", &path, &[auth, ("Content-Type", "text/plain")], &image).status, 415);
    assert_eq!(
        call(
            addr,
            "POST",
            "/v1/maps/other/localize?fx=1&fy=1&cx=0&cy=0",
            &[auth, ("Content-Type", "image/png")],
            &image
        )
        .status,
        404
    );
    let r = call(
        addr,
        "POST",
        "/v1/maps/room/localize?fx=nan&fy=1&cx=0&cy=0",
        &[auth, ("Content-Type", "image/png")],
        &image,
    );
    assert_eq!(r.status, 400);
    let metrics = String::from_utf8(call(addr, "GET", "/metrics", &[auth], b"").body).unwrap();
    assert!(
        metrics.contains("glace_requests_total{status=\"200\"}") && metrics.contains("glace_queue_depth 0"),
        "{metrics}"
    );

    // Graceful shutdown: a request in flight when SIGTERM arrives is answered; then the port closes.
    // Within the caps: a threshold no sample meets keeps it drawing for its whole 2 s budget.
    let slow = format!("{path}&threshold=0.001");
    let in_flight = std::thread::spawn(move || {
        blocking_request(addr, "POST", &slow, &[auth, ("Content-Type", "image/png")], &image, Duration::from_secs(120))
    });
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let answer = in_flight.join().unwrap().expect("the request in flight is answered");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(addr).is_err(), "the port closed");
}

#[test]
fn serve_refuses_bad_options_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.glace");
    for (args, what) in [
        (vec!["serve", missing.to_str().unwrap()], "missing.glace"),
        (vec!["serve", "m.glace", "--workers", "0"], "--workers"),
        (vec!["serve", "m.glace", "--max-body", "lots"], "--max-body"),
        (vec!["serve", "m.glace", "--addr", "localhost"], "--addr"),
        (vec!["serve", "m.glace", "--token-file", missing.to_str().unwrap()], "--token-file"),
    ] {
        let out = glace(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(what),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Response {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("an answer before the timeout");
    glace_serve::client::parse_response(&out).expect("an HTTP answer")
}

#[test]
fn serve_cannot_be_held_or_stopped_by_a_client() {
    if glace_formats::weights::xfeat_weights().is_err() {
        eprintln!("SKIPPED serve_cannot_be_held_or_stopped_by_a_client: XFeat weights unavailable");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (scene, map) = small_room(tmp.path());
    let image = std::fs::read(scene.join("test/rgb").read_dir().unwrap().next().unwrap().unwrap().path()).unwrap();
    let k = "fx=131.25&fy=131.25&cx=80&cy=60";
    let path = format!("/v1/maps/room/localize?{k}");
    let png = [("Content-Type", "image/png")];
    let encode = |img: image::DynamicImage| {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    };

    // With the default caps: work beyond them, thin and 16-bit images, words in K are refused.
    let (mut child, addr) =
        start(&[map.to_str().unwrap(), "--workers", "1", "--deadline-ms", "3000", "--header-timeout-ms", "1000"]);
    let refused = |r: Response, what: &str| {
        assert_eq!(r.status, 400, "{what}: {}", String::from_utf8_lossy(&r.body));
        r.json().unwrap()["error"].as_str().unwrap().to_string()
    };
    let heavy = format!("{path}&time_budget_ms=0&max_tries=99999999999999&hypotheses=100000");
    let e = refused(call(addr, "POST", &heavy, &png, &image), "heavy options");
    assert!(e.contains("more work than this server allows"), "{e}");
    let thin = encode(image::DynamicImage::ImageLuma8(image::GrayImage::new(1000, 7)));
    let e = refused(call(addr, "POST", &path, &png, &thin), "a 1000x7 image");
    assert!(e.contains("1000×7"), "{e}");
    let deep = encode(image::DynamicImage::ImageLuma16(image::ImageBuffer::new(32, 32)));
    assert!(refused(call(addr, "POST", &path, &png, &deep), "16-bit").contains("8-bit"));
    let json = [("Content-Type", "application/json")];
    let body = br#"{"image": "aGVsbG8=", "K": [[380, "x", 0, 75], [0, 380, 60], [0, 0, 1]]}"#;
    assert!(refused(call(addr, "POST", "/v1/maps/room/localize", &json, body), "K").starts_with("K"));
    // A one-colour image is answered, not localized, with the reason.
    let flat = encode(image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([120, 120, 120]))));
    let r = call(addr, "POST", &path, &png, &flat);
    let v = r.json().unwrap();
    assert_eq!((r.status, &v["success"]), (200, &serde_json::json!(false)), "{v}");
    assert!(v["failure"].as_str().is_some_and(|f| !f.is_empty()), "{v}");
    // Heads hyper would refuse with an empty body are JSON errors too.
    for (head, status) in [
        (format!("POST {path} HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 12x\r\n\r\n"), 400),
        ("GET /v1/maps/room/localize HTTP/1.1\r\n\r\n".to_string(), 405),
        (format!("GET /v1/maps?{} HTTP/1.1\r\n\r\n", "q".repeat(20_000)), 414),
        (format!("GET /v1/health HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(100)), 431),
    ] {
        let r = raw(addr, head.as_bytes(), Duration::from_secs(10));
        assert_eq!(r.status, status, "{}", &head[..40]);
        assert!(r.json().is_some_and(|v| v["error"].is_string()), "{status}: {:?}", String::from_utf8_lossy(&r.body));
    }
    // A head that never ends is answered 408 at the header timeout.
    let t = std::time::Instant::now();
    let r = raw(addr, format!("POST {path} HTTP/1.1\r\nContent-").as_bytes(), Duration::from_secs(10));
    assert_eq!(r.status, 408);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Half-open connections do not hold the shutdown.
    let _held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /v1/maps/room/localize HTTP/1.1\r\nHost").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(t.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t.elapsed());

    // The operator raises the caps; a request that cannot finish and is given up on frees the
    // only worker: the next request is answered normally.
    let (mut child, addr) = start(&[
        map.to_str().unwrap(),
        "--workers",
        "1",
        "--deadline-ms",
        "3000",
        "--hypotheses",
        "100000",
        "--max-tries",
        "100000000000000",
        "--time-budget-ms",
        "0",
    ]);
    // A threshold no sample meets: every hypothesis draws until its tries run out. The server's
    // own defaults are now heavy too, so ordinary requests here ask for the usual work.
    let light = format!("{path}&hypotheses=64&max_tries=1000000&time_budget_ms=2000");
    let endless = format!("{path}&threshold=0.000001&max_tries=100000000000000&hypotheses=100000");
    let t = std::time::Instant::now();
    let gave_up = blocking_request(addr, "POST", &endless, &png, &image, Duration::from_millis(300));
    assert!(gave_up.is_err(), "the client gave up before any answer");
    // Its work stops when the client goes, long before its deadline (3 s): the only worker is
    // free for the next request at once.
    assert!(t.elapsed() < Duration::from_secs(1));
    let t = std::time::Instant::now();
    let r = call(addr, "POST", &light, &png, &image);
    assert_eq!(r.status, 200, "after an abandoned request: {}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(2), "the worker was still busy: {:?}", t.elapsed());
    // One that times out is answered 504 and frees the worker at once.
    let r = call(addr, "POST", &endless, &png, &image);
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    let t = std::time::Instant::now();
    let r = call(addr, "POST", &light, &png, &image);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(2), "the worker was still busy: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(t.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t.elapsed());
}
