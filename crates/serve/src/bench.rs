//! The load and fault test (`glace bench serve`): the service on 127.0.0.1 with a real map,
//! many concurrent clients sending real frames for a while, malformed requests of every class
//! in between, and what came back: throughput next to in-process localization of the same
//! frames on the same cores, latency percentiles, answers by kind, and resident memory over time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glace::{Camera, Scene, SceneOptions, SplitKind};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{self, request_bytes};
use crate::{ServeOptions, ServedMap};

/// A query frame as a client sends it.
#[derive(Clone, Debug)]
pub struct QueryFrame {
    /// File name.
    pub name: String,
    /// The encoded image, as stored.
    pub bytes: Vec<u8>,
    /// `image/png` or `image/jpeg`.
    pub content_type: &'static str,
    /// K and distortion of the image.
    pub camera: Camera,
}

/// The test split of a scene as query frames.
pub fn query_frames(scene_dir: &Path) -> glace::Result<Vec<QueryFrame>> {
    let scene = Scene::open(scene_dir, &SceneOptions::default())?;
    let test = scene.split(SplitKind::Test)?;
    test.frames
        .iter()
        .map(|f| {
            let bytes = std::fs::read(&f.rgb_path)
                .map_err(|e| glace::Error::Input(format!("{}: {e}", f.rgb_path.display())))?;
            let (w, h) = f.image_size.unwrap_or((0, 0));
            let png = f.rgb_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
            Ok(QueryFrame {
                name: f.name.clone(),
                bytes,
                content_type: if png { "image/png" } else { "image/jpeg" },
                camera: Camera { intrinsics: f.calibration.intrinsics(w, h), distortion: scene.distortion },
            })
        })
        .collect()
}

/// The query string carrying a camera.
pub fn camera_query(c: &Camera) -> String {
    let k = c.intrinsics;
    let mut q = format!("fx={}&fy={}&cx={}&cy={}", k.fx, k.fy, k.cx, k.cy);
    if let Some(d) = c.distortion {
        q.push_str(&format!("&k1={}&k2={}&p1={}&p2={}&k3={}", d.k1, d.k2, d.p1, d.p2, d.k3));
    }
    q
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadTest {
    /// Concurrent clients.
    pub clients: usize,
    /// How long they send.
    pub duration: Duration,
    /// Seconds of in-process localization measured first, for the baseline.
    pub baseline: Duration,
    /// The service's options (its deadline bounds the slow-body fault).
    pub options: ServeOptions,
}

/// How one class of malformed request was answered.
#[derive(Clone, Debug, Serialize)]
pub struct FaultResult {
    /// The class.
    pub class: &'static str,
    /// The status expected (0: no answer expected, the client hangs up).
    pub expected: u16,
    /// Statuses received, with counts.
    pub got: BTreeMap<String, usize>,
    /// The message of the last answer.
    pub message: String,
    /// Every answer was the expected one.
    pub ok: bool,
}

impl FaultResult {
    fn new(class: &'static str, expected: u16) -> Self {
        FaultResult { class, expected, got: BTreeMap::new(), message: String::new(), ok: true }
    }
}

/// What the test measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds of load.
    pub seconds: f64,
    /// Worker threads of the service.
    pub workers: usize,
    /// Queue capacity of the service.
    pub queue: usize,
    /// Frames per second localized in process, one after another (as `glace localize` does).
    pub baseline_frames_per_s: f64,
    /// Localized answers per second through the service.
    pub throughput_per_s: f64,
    /// throughput / baseline.
    pub ratio_to_baseline: f64,
    /// Latency percentiles of answered localizations (ms).
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Answers by status over the load (503s included).
    pub statuses: BTreeMap<String, usize>,
    /// 503 answers without `Retry-After`.
    pub missing_retry_after: usize,
    /// Localized answers whose pose differs from in-process localization of the same frame.
    pub wrong_poses: usize,
    /// Connections that failed or closed without an answer.
    pub dropped: usize,
    /// Every unexpected outcome of the load: wrong poses, drops, other statuses than 200 and 503.
    pub unexpected: usize,
    /// The malformed requests and their answers.
    pub faults: Vec<FaultResult>,
    /// The service answered correctly after the faults.
    pub healthy_after_faults: bool,
    /// Largest resident memory seen (MB).
    pub peak_rss_mb: f64,
    /// Largest resident memory in the first and in the last 10 s of load (MB).
    pub rss_first_last_10s_mb: (f64, f64),
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

type Pose = ([f64; 4], [f64; 3]);

fn pose_of(v: &serde_json::Value) -> Option<Pose> {
    let q: Vec<f64> =
        v["cam_from_world"]["quaternion_wxyz"].as_array()?.iter().filter_map(serde_json::Value::as_f64).collect();
    let t: Vec<f64> =
        v["cam_from_world"]["translation"].as_array()?.iter().filter_map(serde_json::Value::as_f64).collect();
    Some(([*q.first()?, *q.get(1)?, *q.get(2)?, *q.get(3)?], [*t.first()?, *t.get(1)?, *t.get(2)?]))
}

/// Runs the test: `maps[0]` serves `frames`.
pub fn run(maps: Vec<ServedMap>, frames: &[QueryFrame], test: &LoadTest) -> glace::Result<LoadReport> {
    if frames.is_empty() {
        return Err(glace::Error::usage("--scene", "the scene has no test frames to send"));
    }
    test.options.validate()?;
    let map_name = maps[0].name.clone();
    let localizer = maps[0].localizer.clone();

    // Baseline: the same frames localized in process, one after another, decoding included.
    let mut reference: Vec<Option<Pose>> = Vec::new();
    let (mut done, start) = (0usize, Instant::now());
    while start.elapsed() < test.baseline || done < frames.len() {
        let f = &frames[done % frames.len()];
        let rgb = glace::decode_image(&f.bytes, 1 << 26)?;
        let found = localizer.localize_with((&rgb).into(), &f.camera, &glace::Query::default())?;
        if reference.len() < frames.len() {
            reference.push(found.cam_from_world().map(|p| p.quaternion_translation()));
        }
        done += 1;
    }
    let baseline = done as f64 / start.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| glace::Error::Internal(e.to_string()))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| glace::Error::Internal(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| glace::Error::Internal(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, maps, test.options.clone(), async move {
            let _ = stop_rx.await;
        }));
        let report = drive(addr, &map_name, frames, Arc::new(reference), baseline, test).await;
        let _ = stop_tx.send(());
        let _ = server.await;
        Ok(report)
    })
}

#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    statuses: BTreeMap<String, usize>,
    missing_retry_after: usize,
    wrong: usize,
    dropped: usize,
    ok: usize,
}

async fn drive(
    addr: SocketAddr,
    map: &str,
    frames: &[QueryFrame],
    reference: Arc<Vec<Option<Pose>>>,
    baseline: f64,
    test: &LoadTest,
) -> LoadReport {
    let frames = Arc::new(frames.to_vec());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(AtomicBool::new(true));
    let rss = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
    let t0 = Instant::now();
    let sampler = {
        let (rss, running) = (rss.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                rss.lock().unwrap().push((t0.elapsed().as_secs_f64(), rss_mb()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let mut clients = Vec::new();
    for c in 0..test.clients {
        let (frames, reference, tally) = (frames.clone(), reference.clone(), tally.clone());
        let map = map.to_string();
        let end = t0 + test.duration;
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while Instant::now() < end {
                let k = i % frames.len();
                i += 1;
                let f = &frames[k];
                let path = format!("/v1/maps/{map}/localize?{}", camera_query(&f.camera));
                let t = Instant::now();
                let r = client::request(addr, "POST", &path, &[("Content-Type", f.content_type)], &f.bytes).await;
                let latency = t.elapsed().as_secs_f64();
                let mut wait = None;
                {
                    let mut s = tally.lock().unwrap();
                    match r {
                        Err(_) => s.dropped += 1,
                        Ok(r) => {
                            *s.statuses.entry(r.status.to_string()).or_default() += 1;
                            match r.status {
                                200 => {
                                    if r.json().and_then(|v| pose_of(&v)) != reference[k] {
                                        s.wrong += 1;
                                    }
                                    s.ok += 1;
                                    s.latencies.push(latency);
                                }
                                503 => {
                                    let after = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
                                    if after.is_none() {
                                        s.missing_retry_after += 1;
                                    }
                                    wait = Some(after.unwrap_or(1));
                                }
                                _ => {}
                            }
                        }
                    }
                }
                if let Some(seconds) = wait {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                }
            }
        }));
    }
    // Malformed requests while the load runs.
    let faults = faults(addr, map, &frames[0], &test.options).await;
    let healthy = matches!(
        client::request(addr, "POST", &format!("/v1/maps/{map}/localize?{}", camera_query(&frames[0].camera)),
            &[("Content-Type", frames[0].content_type)], &frames[0].bytes).await,
        Ok(r) if r.status == 200 || r.status == 503
    );
    for c in clients {
        let _ = c.await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let tally = Arc::try_unwrap(tally).ok().map(|m| m.into_inner().unwrap()).unwrap_or_default();
    let mut lat = tally.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).map_or(f64::NAN, |v| 1000.0 * v)
    };
    let latency_ms: BTreeMap<&'static str, f64> = [("p50", pct(0.5)), ("p95", pct(0.95)), ("p99", pct(0.99))].into();
    let samples = rss.lock().unwrap().clone();
    let window =
        |from: f64, to: f64| samples.iter().filter(|(t, _)| *t >= from && *t <= to).map(|s| s.1).fold(0.0, f64::max);
    let others: usize = tally.statuses.iter().filter(|(k, _)| *k != "200" && *k != "503").map(|(_, v)| v).sum();
    let throughput = tally.ok as f64 / seconds;
    LoadReport {
        clients: test.clients,
        seconds,
        workers: test.options.workers,
        queue: test.options.queue,
        baseline_frames_per_s: baseline,
        throughput_per_s: throughput,
        ratio_to_baseline: throughput / baseline,
        latency_ms,
        missing_retry_after: tally.missing_retry_after,
        wrong_poses: tally.wrong,
        dropped: tally.dropped,
        unexpected: tally.wrong + tally.dropped + others + tally.missing_retry_after,
        statuses: tally.statuses,
        faults,
        healthy_after_faults: healthy,
        peak_rss_mb: samples.iter().map(|s| s.1).fold(0.0, f64::max),
        rss_first_last_10s_mb: (window(0.0, 10.0), window(seconds - 10.0, seconds)),
    }
}

/// Sends one request of each malformed class (a few times each) and records the answers.
async fn faults(addr: SocketAddr, map: &str, frame: &QueryFrame, options: &ServeOptions) -> Vec<FaultResult> {
    let path = format!("/v1/maps/{map}/localize?{}", camera_query(&frame.camera));
    let rgb = glace::decode_image(&frame.bytes, 1 << 26).expect("the frame decodes");
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&rgb).expect("encode a JPEG");
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    let auth: Vec<(&str, String)> = options.token.iter().map(|t| ("Authorization", format!("Bearer {t}"))).collect();
    let with = |ct: &str| -> Vec<(String, String)> {
        let mut h = vec![("Content-Type".to_string(), ct.to_string())];
        h.extend(auth.iter().map(|(k, v)| (k.to_string(), v.clone())));
        h
    };
    let png = |img: image::DynamicImage| {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode a PNG");
        bytes
    };
    // 1000×7 pixels: 68571×480 for the network, gigabytes, if nothing stopped it.
    let thin = png(image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1000, 7, image::Luma([90]))));
    let deep = png(image::DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(64, 48, image::Luma([999u16]))));
    let mut results = Vec::new();
    let simple: Vec<(&'static str, u16, String, Vec<(String, String)>, Vec<u8>)> = vec![
        ("thin image (1000x7 PNG)", 400, path.clone(), with("image/png"), thin),
        ("16-bit PNG", 400, path.clone(), with("image/png"), deep),
        (
            "heavy RANSAC options",
            400,
            format!("{path}&time_budget_ms=0&max_tries=99999999999999&hypotheses=100000"),
            with(frame.content_type),
            frame.bytes.clone(),
        ),
        (
            "K with a word in it (JSON)",
            400,
            format!("/v1/maps/{map}/localize"),
            with("application/json"),
            br#"{"image": "aGVsbG8=", "K": [[380, "x", 0, 75], [0, 500, 240], [0, 0, 1]]}"#.to_vec(),
        ),
        ("truncated JPEG", 400, path.clone(), with("image/jpeg"), half(&jpeg)),
        ("truncated PNG", 400, path.clone(), with("image/png"), half(&frame.bytes)),
        ("not an image", 400, path.clone(), with("image/png"), b"hello, not a picture".to_vec()),
        ("wrong content type", 415, path.clone(), with("text/plain"), frame.bytes.clone()),
        ("missing K", 400, format!("/v1/maps/{map}/localize"), with(frame.content_type), frame.bytes.clone()),
        (
            "NaN K",
            400,
            format!("/v1/maps/{map}/localize?fx=nan&fy=500&cx=320&cy=240"),
            with(frame.content_type),
            frame.bytes.clone(),
        ),
        (
            "skewed K (JSON)",
            400,
            format!("/v1/maps/{map}/localize"),
            with("application/json"),
            br#"{"image": "aGVsbG8=", "K": [[500, 1, 320], [0, 500, 240], [0, 0, 1]]}"#.to_vec(),
        ),
        ("broken JSON", 400, format!("/v1/maps/{map}/localize"), with("application/json"), b"{\"image\": ".to_vec()),
        ("bad RANSAC option", 400, format!("{path}&hypotheses=0"), with(frame.content_type), frame.bytes.clone()),
        (
            "unknown map",
            404,
            "/v1/maps/no-such-map/localize".to_string(),
            with(frame.content_type),
            frame.bytes.clone(),
        ),
    ];
    for (class, expected, p, headers, body) in simple {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut f = FaultResult::new(class, expected);
        for _ in 0..3 {
            record(&mut f, client::request(addr, "POST", &p, &h, &body).await);
        }
        results.push(f);
    }
    // A one-colour image: answered, but not localized (no evidence for a pose); a 503 with
    // Retry-After is waited out and the request sent again, as the load's clients do.
    let mut f = FaultResult::new("one-colour image (reported failed)", 200);
    let flat = png(image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([128, 128, 128]))));
    for _ in 0..3 {
        let h: Vec<(String, String)> = with("image/png");
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // It needs a worker, so under load it may meet a full queue: retried as clients do.
        let mut r = client::request(addr, "POST", &path, &h, &flat).await;
        for _ in 0..30 {
            match &r {
                Ok(busy) if busy.status == 503 => {
                    let wait = busy.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    r = client::request(addr, "POST", &path, &h, &flat).await;
                }
                _ => break,
            }
        }
        let (status, failure) = match &r {
            Ok(r) => {
                let v = r.json().unwrap_or_default();
                let failed = v["success"] == false;
                (
                    r.status.to_string(),
                    if failed { v["failure"].as_str().unwrap_or("").to_string() } else { String::new() },
                )
            }
            Err(e) => (format!("no answer ({e})"), String::new()),
        };
        f.ok &= status == "200" && !failure.is_empty();
        *f.got.entry(status).or_default() += 1;
        f.message = failure;
    }
    results.push(f);
    // Heads hyper would answer with an empty body: JSON here too.
    let heads: Vec<(&'static str, u16, String)> = vec![
        (
            "malformed Content-Length",
            400,
            format!("POST {path} HTTP/1.1\r\nHost: glace\r\nContent-Type: image/png\r\nContent-Length: 12x\r\n\r\n"),
        ),
        ("wrong method", 405, format!("GET /v1/maps/{map}/localize HTTP/1.1\r\nHost: glace\r\n\r\n")),
        (
            "URI too long",
            414,
            format!("GET /v1/maps?{} HTTP/1.1\r\nHost: glace\r\n\r\n", "a".repeat(crate::conn::MAX_TARGET_BYTES + 10)),
        ),
        (
            "too many headers",
            431,
            format!(
                "GET /v1/health HTTP/1.1\r\n{}\r\n",
                (0..crate::conn::MAX_HEADERS + 5).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
        ),
    ];
    for (class, expected, head) in heads {
        let mut f = FaultResult::new(class, expected);
        for _ in 0..3 {
            record(&mut f, raw_exchange(addr, head.as_bytes(), None, Duration::from_secs(10)).await);
        }
        results.push(f);
    }
    // A head that never ends: answered 408 at the header timeout, never held open.
    let mut f = FaultResult::new("half-sent head", 408);
    let half = format!("POST {path} HTTP/1.1\r\nHost: glace\r\nContent-");
    let r = raw_exchange(addr, half.as_bytes(), None, options.header_timeout + Duration::from_secs(5)).await;
    record(&mut f, r);
    results.push(f);
    // A body larger than the limit, announced by Content-Length: refused before it is read.
    let mut f = FaultResult::new("oversized body", 413);
    for _ in 0..3 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: glace\r\nConnection: close\r\nContent-Type: image/png\r\nContent-Length: {}\r\n{}\r\n",
            options.max_body + 1,
            auth.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
        );
        let r = raw_exchange(addr, head.as_bytes(), None, Duration::from_secs(10)).await;
        record(&mut f, r);
    }
    results.push(f);
    // A body that stalls past the deadline.
    let mut f = FaultResult::new("slow body past the deadline", 408);
    let mut bytes = request_bytes(
        "POST",
        &path,
        &with(frame.content_type).iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        &frame.bytes,
    );
    bytes.truncate(bytes.len() - frame.bytes.len() / 2);
    let r = raw_exchange(
        addr,
        &bytes,
        Some(options.deadline + Duration::from_secs(1)),
        options.deadline + Duration::from_secs(10),
    )
    .await;
    record(&mut f, r);
    results.push(f);
    // Clients that hang up mid-request: no answer is expected; the service must carry on.
    let mut f = FaultResult::new("client hangs up mid-request", 0);
    for _ in 0..5 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s.write_all(&bytes[..bytes.len() / 2]).await;
        }
        *f.got.entry("hung up".into()).or_default() += 1;
    }
    results.push(f);
    results
}

/// Sends `bytes`, optionally waits `stall` without sending more, then reads the answer.
async fn raw_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    stall: Option<Duration>,
    timeout: Duration,
) -> std::io::Result<client::Response> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(bytes).await?;
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let mut raw = Vec::new();
    tokio::time::timeout(timeout, s.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    client::parse_response(&raw)
}

fn record(f: &mut FaultResult, r: std::io::Result<client::Response>) {
    let (status, message) = match r {
        Ok(r) => {
            (r.status.to_string(), r.json().map(|v| v["error"].as_str().unwrap_or("").to_string()).unwrap_or_default())
        }
        Err(e) => (format!("no answer ({e})"), String::new()),
    };
    f.ok &= status == f.expected.to_string() && !message.is_empty();
    *f.got.entry(status).or_default() += 1;
    f.message = message;
}
