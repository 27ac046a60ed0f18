//! The endpoints:
//!
//! - `POST /v1/maps/{name}/localize`: the image as the raw body (`Content-Type: image/jpeg` or
//!   `image/png`) with `fx`, `fy`, `cx`, `cy` (and optionally `k1 k2 p1 p2 [k3]`) as query
//!   parameters ([`LocalizeQuery`]), or `application/json` `{"image": <base64>, "K": [[…], […],
//!   […]], "distortion": […]}` (or `fx`… fields; [`LocalizeBody`]); both read by serde, unknown
//!   names refused, the path of a value that does not fit named. RANSAC options (`hypotheses`, `threshold`, `inlier_alpha`,
//!   `max_pixel_error`, `max_tries`, `time_budget_ms`, `seed`) in the query or under `"ransac"`;
//!   `hypotheses`, `max_tries` and `time_budget_ms` may not exceed the server's defaults.
//!   Answers the pose both ways, each as a 4×4 matrix, a w-first quaternion and a translation:
//!   `cam_from_world` (world points into the camera: the pose-file fields) and `world_from_cam`
//!   (its translation is the camera's position); inliers, per-stage times and the map's identity.
//! - `GET /v1/maps`: names and descriptions. `GET /v1/health`. `GET /metrics`: Prometheus text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query as UrlQuery, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use glace::{Camera, Distortion, Intrinsics, RansacOptions};
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::pool::{Outcome, Pool, Rejected};
use crate::{ServeOptions, ServedMap};

/// Largest decoded image, in pixels: a small compressed file must not claim gigapixels.
const MAX_IMAGE_PIXELS: u64 = 64 << 20;

type JobResult = glace::Result<glace::Localization>;

/// What every handler shares.
pub struct State {
    maps: Vec<ServedMap>,
    options: ServeOptions,
    pub(crate) pool: Pool<JobResult>,
    metrics: Metrics,
    /// The request bodies held at once (being read, queued or worked on), in KiB: at most what
    /// the workers and the queue would hold at `--max-body` each, so memory stays bounded
    /// however many connections send at once.
    bodies: Arc<tokio::sync::Semaphore>,
}

impl State {
    pub(crate) fn new(maps: Vec<ServedMap>, options: ServeOptions) -> Arc<State> {
        let pool = Pool::new(options.workers, options.queue);
        let kib = (options.workers + options.queue) * options.max_body.div_ceil(1024);
        let bodies = Arc::new(tokio::sync::Semaphore::new(kib));
        Arc::new(State { maps, options, pool, metrics: Metrics::default(), bodies })
    }
}

/// The cancel flag of the connection a request came on, raised when its client closes it.
#[derive(Clone)]
pub(crate) struct ConnectionGone(pub(crate) glace::CancelToken);

/// Raises a query's cancel flag when dropped: when the handler answers (the work is done or no
/// longer wanted), times out, or is dropped because its client hung up or the server stops.
struct CancelOnDrop(glace::CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// An answer: status and a JSON body (errors as `{"error": message}`).
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: StatusCode::OK, body, retry_after: None }
    }
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Answer { status, body: json!({ "error": message.into() }), retry_after: None }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], self.body.to_string()).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The service's routes over `state`.
pub fn router(state: Arc<State>) -> Router {
    let s = state.clone();
    // The extractors' own rejections (a query string or map name that does not decode) are
    // answered as JSON like every other error.
    type Name = Result<UrlPath<String>, axum::extract::rejection::PathRejection>;
    type Params = Result<UrlQuery<LocalizeQuery>, axum::extract::rejection::QueryRejection>;
    let localize = post(move |name: Name, query: Params, request: Request| {
        let state = s.clone();
        async move {
            let start = Instant::now();
            let answer = match (name, query) {
                (Ok(name), Ok(query)) => localize(&state, &name.0, &query.0, request, start).await,
                (Err(e), _) => bad(format!("the map name in the path cannot be read: {}", e.body_text())),
                (_, Err(e)) => bad(format!("the query string cannot be read: {}", e.body_text())),
            };
            state.metrics.record(answer.status.as_u16(), Some(start.elapsed().as_secs_f64()));
            answer
        }
    });
    let s = state.clone();
    let maps = get(move |headers: HeaderMap| {
        let state = s.clone();
        async move { recorded(&state, authorized(&state, &headers).map(|_| Answer::ok(maps_json(&state)))) }
    });
    let s = state.clone();
    let health = get(move |headers: HeaderMap| {
        let state = s.clone();
        async move {
            let body = json!({ "status": "ok", "maps": state.maps.len(), "workers": state.options.workers,
                "queue_depth": state.pool.queued(), "in_flight": state.pool.running() });
            recorded(&state, authorized(&state, &headers).map(|_| Answer::ok(body)))
        }
    });
    let s = state.clone();
    let metrics = get(move |headers: HeaderMap| {
        let state = s.clone();
        async move {
            if let Err(a) = authorized(&state, &headers) {
                return recorded(&state, Err(a)).into_response();
            }
            state.metrics.record(200, None);
            let text = state.metrics.render(state.pool.queued(), state.pool.running());
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
    });
    let s = state.clone();
    let not_allowed = move || {
        let state = s.clone();
        async move {
            recorded(
                &state,
                Err(Answer::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed here (localize is POST, the rest GET)",
                )),
            )
        }
    };
    let s = state;
    Router::new()
        .route("/v1/maps/{name}/localize", localize)
        .route("/v1/maps", maps)
        .route("/v1/health", health)
        .route("/metrics", metrics)
        .method_not_allowed_fallback(not_allowed)
        .fallback(move || {
            let state = s.clone();
            async move {
                recorded(&state, Err(Answer::error(StatusCode::NOT_FOUND, "no such endpoint (see GET /v1/maps)")))
            }
        })
}

fn recorded(state: &State, answer: Result<Answer, Answer>) -> Answer {
    let a = answer.unwrap_or_else(|e| e);
    state.metrics.record(a.status.as_u16(), None);
    a
}

fn authorized(state: &State, headers: &HeaderMap) -> Result<(), Answer> {
    let Some(token) = &state.options.token else { return Ok(()) };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compared in full whatever the first difference, so the time taken does not tell how much matched.
    let same = given
        .is_some_and(|g| g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0, |d, (a, b)| d | (a ^ b)) == 0);
    if same {
        Ok(())
    } else {
        Err(Answer::error(StatusCode::UNAUTHORIZED, "missing or wrong 'Authorization: Bearer <token>'"))
    }
}

fn maps_json(state: &State) -> Value {
    let maps: Vec<Value> = state
        .maps
        .iter()
        .map(|m| {
            json!({ "name": m.name, "sha256": m.sha256, "file": m.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "description": m.localizer.map().summary_json()["info"], "head": m.localizer.map().head_config() })
        })
        .collect();
    json!({ "maps": maps })
}

/// What a localization request asks for, parsed before any CPU work.
struct Parsed {
    image: Vec<u8>,
    camera: Camera,
    ransac: Option<RansacOptions>,
}

fn bad(message: impl Into<String>) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, message)
}

/// RANSAC options a request may set (the fields of [`RansacOptions`]); absent ones are the
/// server's, and none may ask for more work than the server's allow.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RansacRequest {
    /// Hypotheses.
    pub hypotheses: Option<usize>,
    /// Inlier threshold (pixels).
    pub threshold: Option<f64>,
    /// Soft-inlier score scale.
    pub inlier_alpha: Option<f64>,
    /// Reprojection-error clamp (pixels).
    pub max_pixel_error: Option<f64>,
    /// Cap on 4-point draws per hypothesis.
    pub max_tries: Option<usize>,
    /// Time budget in milliseconds (0: none).
    pub time_budget_ms: Option<u64>,
    /// Seed.
    pub seed: Option<u64>,
}

/// The query parameters of a request whose body is the image: the camera (`fx fy cx cy`, lens
/// `k1 k2 p1 p2 [k3]`) and the RANSAC options of [`RansacRequest`].
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizeQuery {
    fx: Option<f64>,
    fy: Option<f64>,
    cx: Option<f64>,
    cy: Option<f64>,
    k1: Option<f64>,
    k2: Option<f64>,
    p1: Option<f64>,
    p2: Option<f64>,
    k3: Option<f64>,
    hypotheses: Option<usize>,
    threshold: Option<f64>,
    inlier_alpha: Option<f64>,
    max_pixel_error: Option<f64>,
    max_tries: Option<usize>,
    time_budget_ms: Option<u64>,
    seed: Option<u64>,
}

/// A JSON request: `{"image": <base64 PNG or JPEG>, "K": [[…], […], […]] or fx fy cx cy,
/// "distortion": [k1, k2, p1, p2, k3], "ransac": {…}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizeBody {
    image: String,
    #[serde(rename = "K")]
    k: Option<[[f64; 3]; 3]>,
    fx: Option<f64>,
    fy: Option<f64>,
    cx: Option<f64>,
    cy: Option<f64>,
    distortion: Option<Vec<f64>>,
    ransac: Option<RansacRequest>,
}

/// The camera of a request: K, else fx fy cx cy; and its lens.
fn camera_from(k: Option<[[f64; 3]; 3]>, f: [Option<f64>; 4], distortion: Option<Vec<f64>>) -> Result<Camera, Answer> {
    let intrinsics = match k {
        Some(m) => Intrinsics::from_matrix(&m).map_err(|e| bad(format!("K: {e}")))?,
        None => {
            let mut v = [0.0; 4];
            for ((slot, key), given) in v.iter_mut().zip(["fx", "fy", "cx", "cy"]).zip(f) {
                *slot = given.ok_or_else(|| bad(format!("{key}: missing (give fx, fy, cx and cy, or K)")))?;
            }
            Intrinsics::new(v[0], v[1], v[2], v[3]).map_err(|e| bad(format!("K: {e}")))?
        }
    };
    let distortion =
        distortion.map(|c| Distortion::from_coeffs(&c)).transpose().map_err(|e| bad(format!("distortion: {e}")))?;
    Ok(Camera { intrinsics, distortion })
}

/// A request's RANSAC options over the server's defaults `caps`: a request may ask for less work
/// than they allow, never more (more hypotheses, more tries, a longer or no time budget).
fn ransac_from(r: &RansacRequest, caps: &RansacOptions) -> Result<Option<RansacOptions>, Answer> {
    let RansacRequest { hypotheses, threshold, inlier_alpha, max_pixel_error, max_tries, time_budget_ms, seed } = *r;
    if [hypotheses, max_tries].iter().all(Option::is_none)
        && [threshold, inlier_alpha, max_pixel_error].iter().all(Option::is_none)
        && [time_budget_ms, seed].iter().all(Option::is_none)
    {
        return Ok(None);
    }
    let o = RansacOptions {
        hypotheses: hypotheses.unwrap_or(caps.hypotheses),
        threshold: threshold.unwrap_or(caps.threshold),
        inlier_alpha: inlier_alpha.unwrap_or(caps.inlier_alpha),
        max_pixel_error: max_pixel_error.unwrap_or(caps.max_pixel_error),
        max_tries: max_tries.unwrap_or(caps.max_tries),
        time_budget: match time_budget_ms {
            Some(ms) => Some(ms).filter(|&ms| ms > 0).map(Duration::from_millis),
            None => caps.time_budget,
        },
        seed: seed.unwrap_or(caps.seed),
        ..caps.clone()
    };
    o.validate().map_err(|(field, message)| bad(format!("{field}: {message}")))?;
    let beyond = |key: &str, asked: String, cap: String| {
        Err(bad(format!("{key}: {asked} is more work than this server allows (at most {cap}; its operator sets it)")))
    };
    if o.hypotheses > caps.hypotheses {
        return beyond("hypotheses", o.hypotheses.to_string(), caps.hypotheses.to_string());
    }
    if o.max_tries > caps.max_tries {
        return beyond("max_tries", o.max_tries.to_string(), caps.max_tries.to_string());
    }
    if let Some(cap) = caps.time_budget {
        match o.time_budget {
            Some(b) if b <= cap => {}
            b => {
                let asked = b.map_or("no budget".to_string(), |b| format!("{} ms", b.as_millis()));
                return beyond("time_budget_ms", asked, format!("{} ms", cap.as_millis()));
            }
        }
    }
    Ok(Some(o))
}

fn parse_raw(q: &LocalizeQuery, body: Vec<u8>, caps: &RansacOptions) -> Result<Parsed, Answer> {
    let lens = [q.k1, q.k2, q.p1, q.p2];
    let distortion = if lens.iter().chain([&q.k3]).all(Option::is_none) {
        None
    } else {
        let mut c = Vec::new();
        for (key, v) in ["k1", "k2", "p1", "p2"].iter().zip(lens) {
            c.push(
                v.ok_or_else(|| bad(format!("{key}: missing (distortion needs k1, k2, p1, p2 and optionally k3)")))?,
            );
        }
        c.extend(q.k3);
        Some(c)
    };
    let camera = camera_from(None, [q.fx, q.fy, q.cx, q.cy], distortion)?;
    let ransac = RansacRequest {
        hypotheses: q.hypotheses,
        threshold: q.threshold,
        inlier_alpha: q.inlier_alpha,
        max_pixel_error: q.max_pixel_error,
        max_tries: q.max_tries,
        time_budget_ms: q.time_budget_ms,
        seed: q.seed,
    };
    Ok(Parsed { camera, ransac: ransac_from(&ransac, caps)?, image: body })
}

fn parse_json(body: &[u8], caps: &RansacOptions) -> Result<Parsed, Answer> {
    // The path of what does not fit is named (`K[0][1]: invalid type …`, `ransac: unknown field …`).
    let request: LocalizeBody = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
        .map_err(|e| match e.path().to_string() {
            p if p == "." => bad(format!("the JSON body cannot be read: {}", e.inner())),
            p => bad(format!("{p}: {}", e.inner())),
        })?;
    let image = base64::engine::general_purpose::STANDARD
        .decode(request.image.trim())
        .map_err(|e| bad(format!("image: not base64 ({e})")))?;
    let camera = camera_from(request.k, [request.fx, request.fy, request.cx, request.cy], request.distortion)?;
    let ransac = match &request.ransac {
        Some(r) => ransac_from(r, caps)?,
        None => None,
    };
    Ok(Parsed { image, camera, ransac })
}

async fn localize(state: &Arc<State>, name: &str, query: &LocalizeQuery, request: Request, start: Instant) -> Answer {
    if let Err(a) = authorized(state, request.headers()) {
        return a;
    }
    let connection = request.extensions().get::<ConnectionGone>().cloned();
    let Some(map) = state.maps.iter().find(|m| m.name == name) else {
        return Answer::error(StatusCode::NOT_FOUND, format!("no map named '{name}' (see GET /v1/maps)"));
    };
    let kind = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kind = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !["image/jpeg", "image/png", "application/json"].contains(&kind.as_str()) {
        return Answer::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type '{kind}': send image/jpeg, image/png or application/json"),
        );
    }
    let limit = state.options.max_body;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    // A body is read only within the budget of bodies held at once (its declared length, else
    // the limit), kept until its work is done or dropped.
    let deadline = start + state.options.deadline;
    let kib = declared.unwrap_or(limit as u64).min(limit as u64).div_ceil(1024).max(1) as u32;
    let Ok(slot) = state.bodies.clone().try_acquire_many_owned(kib) else {
        // Read and dropped, not left unread: a connection closed on an unread body is reset
        // before the client reads the answer.
        drain(request.into_body(), deadline).await;
        let mut a = Answer::error(StatusCode::SERVICE_UNAVAILABLE, "too many requests are being received; retry later");
        a.retry_after = Some(state.options.retry_after_s);
        return a;
    };
    let body = match tokio::time::timeout_at(deadline.into(), axum::body::to_bytes(request.into_body(), limit)).await {
        Err(_) => {
            return Answer::error(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive before the deadline")
        }
        Ok(Err(e)) if is_length_limit(&e) => return too_large(limit),
        Ok(Err(e)) => return bad(format!("the request body cannot be read: {e}")),
        Ok(Ok(b)) => b,
    };
    let caps = map.localizer.ransac();
    let parsed = match kind.as_str() {
        "application/json" => parse_json(&body, caps),
        _ => parse_raw(query, body.to_vec(), caps),
    };
    drop(body);
    let Parsed { image, camera, ransac } = match parsed {
        Ok(p) => p,
        Err(a) => return a,
    };
    // What the header tells is refused here, before the image takes a place in the queue.
    if let Err(e) = glace::probe_image(&image).and_then(|(w, h)| map.localizer.check_image_size(w, h)) {
        return bad(glace::error_message(&e));
    }
    let localizer = map.localizer.clone();
    let queued_at = Instant::now();
    // One request per connection: its work stops when the client goes, the answer is given, the
    // deadline passes or the handler is dropped.
    let cancel = connection.map(|c| c.0).unwrap_or_default();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let job = move || -> JobResult {
        let _slot = slot;
        if cancel.is_cancelled() {
            return Err(glace::Error::Cancelled);
        }
        let t = Instant::now();
        let rgb = glace::decode_image(&image, MAX_IMAGE_PIXELS)?;
        drop(image);
        let decode_s = t.elapsed().as_secs_f64();
        let query =
            glace::Query { descriptor: None, coordinates: false, ransac: ransac.as_ref(), cancel: Some(&cancel) };
        let mut found = localizer.localize_with((&rgb).into(), &camera, &query)?;
        found.times.decode_s += decode_s;
        Ok(found)
    };
    let outcome = match state.pool.submit(deadline, job) {
        Ok(rx) => rx,
        Err(Rejected::Full) => {
            let mut a = Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "all workers are busy and the queue is full; retry later",
            );
            a.retry_after = Some(state.options.retry_after_s);
            return a;
        }
        Err(Rejected::Closed) => return Answer::error(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"),
    };
    let found = match tokio::time::timeout_at(deadline.into(), outcome).await {
        Err(_) | Ok(Ok(Outcome::Expired)) => {
            return Answer::error(StatusCode::GATEWAY_TIMEOUT, "the request's deadline passed before it was answered")
        }
        Ok(Err(_)) => return Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "the worker dropped the request"),
        Ok(Ok(Outcome::Panicked(m))) => {
            tracing::error!("a worker panicked: {m}");
            return Answer::error(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {m}"));
        }
        Ok(Ok(Outcome::Done(r))) => r,
    };
    match found {
        Ok(found) => Answer::ok(localization_json(map, &found, queued_at.duration_since(start), start.elapsed())),
        Err(glace::Error::Cancelled) => {
            Answer::error(StatusCode::GATEWAY_TIMEOUT, "the request's deadline passed before it was answered")
        }
        Err(e) if e.is_input_error() => bad(glace::error_message(&e)),
        Err(e) => Answer::error(StatusCode::INTERNAL_SERVER_ERROR, glace::error_message(&e)),
    }
}

/// Reads a body to its end, keeping nothing, until `deadline`.
async fn drain(body: axum::body::Body, deadline: Instant) {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let _ =
        tokio::time::timeout_at(deadline.into(), async move { while let Some(Ok(_)) = body.frame().await {} }).await;
}

fn too_large(limit: usize) -> Answer {
    Answer::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than the limit of {limit} bytes (--max-body)"),
    )
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}

/// A rigid transform as the answer spells it: its 4×4 matrix, and its rotation (unit quaternion,
/// w first) and translation, so that no client has to guess a direction.
fn pose_json(p: &glace::nalgebra::Isometry3<f64>) -> Value {
    let m = p.to_homogeneous();
    // w ≥ 0, as pose files write it.
    let q = p.rotation.quaternion();
    let q = if q.w < 0.0 { -q } else { *q };
    json!({
        "matrix": (0..4).map(|r| (0..4).map(|c| m[(r, c)]).collect::<Vec<f64>>()).collect::<Vec<_>>(),
        "quaternion_wxyz": [q.w, q.i, q.j, q.k],
        "translation": p.translation.vector.as_slice(),
    })
}

fn localization_json(map: &ServedMap, found: &glace::Localization, parse: Duration, total: Duration) -> Value {
    let ms = |s: f64| 1000.0 * s;
    let t = &found.times;
    json!({
        "map": { "name": map.name, "sha256": map.sha256 },
        "success": found.success(),
        "cam_from_world": found.cam_from_world().map(|p| pose_json(&p.0)),
        "world_from_cam": found.world_from_cam().map(|p| pose_json(&p.0)),
        "inliers": found.inliers(),
        "refined": found.refined(),
        "retrieved": found.retrieved(),
        "failure": found.failure(),
        "times_ms": { "receive": ms(parse.as_secs_f64()), "decode": ms(t.decode_s), "encode": ms(t.encode_s),
            "head": ms(t.head_s), "ransac": ms(t.ransac_s), "refine": ms(t.refine_s), "total": ms(total.as_secs_f64()) },
    })
}
