//! `glace serve`: localization over HTTP, for robots and AR back ends that query one long-lived
//! process from many cameras.
//!
//! The maps are loaded once; every request names a map (never a file), brings an image and its
//! K, and gets the camera pose back as JSON. CPU work runs on a fixed [`pool`] of threads behind a
//! bounded queue (a full queue answers `503` with `Retry-After`); the I/O runtime only reads
//! requests and writes answers. Bodies are bounded (`413`), every request has a deadline (`408`
//! while its body arrives, `504` after), bad input gets `400` with the message the command line
//! prints, and a panic in a worker is answered `500` without taking the process down. See
//! [`routes`] for the endpoints.

pub mod bench;
pub mod client;
mod metrics;
pub mod pool;
mod routes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use glace::{Localizer, LocalizerOptions, Map};

pub use routes::router;

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Worker threads for the CPU work [default: the machine's cores].
    pub workers: usize,
    /// Localization jobs that may wait for a worker before requests get `503`.
    pub queue: usize,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Time a request may take from its first byte to its answer.
    pub deadline: Duration,
    /// Seconds a `503` asks clients to wait (`Retry-After`).
    pub retry_after_s: u64,
    /// With a token, every request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServeOptions {
            workers,
            queue: 8 * workers,
            max_body: 32 << 20,
            deadline: Duration::from_secs(30),
            retry_after_s: 1,
            token: None,
        }
    }
}

impl ServeOptions {
    /// Checks that the numbers can work (names the command-line option).
    pub fn validate(&self) -> glace::Result<()> {
        if self.workers == 0 {
            return Err(glace::Error::usage("--workers", "0: at least one worker is needed"));
        }
        if self.queue == 0 {
            return Err(glace::Error::usage("--queue", "0: at least one waiting job is needed"));
        }
        if self.max_body < 1024 {
            return Err(glace::Error::usage("--max-body", format!("{} bytes: too small for any image", self.max_body)));
        }
        if self.deadline.is_zero() {
            return Err(glace::Error::usage("--deadline-ms", "0: requests need time to be answered"));
        }
        if self.token.as_deref().is_some_and(|t| t.is_empty()) {
            return Err(glace::Error::usage("--token-file", "the token is empty"));
        }
        Ok(())
    }
}

/// One map the service answers for.
pub struct ServedMap {
    /// The name requests use (the file stem).
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// sha256 of the map file: which map answered.
    pub sha256: String,
    /// The map, ready to localize.
    pub localizer: Arc<Localizer>,
}

/// Opens each map and builds its localizer (with `options`, the command line's defaults);
/// maps are named by file stem, and two maps with one name are refused.
pub fn load_maps(paths: &[PathBuf], options: &LocalizerOptions) -> glace::Result<Vec<ServedMap>> {
    if paths.is_empty() {
        return Err(glace::Error::usage("<map>", "name at least one map file"));
    }
    let mut names: Vec<String> = Vec::new();
    for path in paths {
        let name = map_name(path)?;
        if names.contains(&name) {
            return Err(glace::Error::usage(
                "<map>",
                format!("{}: another map is already named '{name}' (maps are named by file stem)", path.display()),
            ));
        }
        names.push(name);
    }
    let mut maps: Vec<ServedMap> = Vec::new();
    for (path, name) in paths.iter().zip(names) {
        let map = Map::open(path)?;
        let localizer = Localizer::new(&map, options.clone())?;
        if localizer.needs_descriptor() {
            return Err(glace::Error::usage(
                "<map>",
                format!(
                    "{}: the map takes global descriptors from outside; serve maps that compute their own",
                    path.display()
                ),
            ));
        }
        let sha256 = glace::file_sha256(path)?;
        maps.push(ServedMap { name, path: path.clone(), sha256, localizer: Arc::new(localizer) });
    }
    Ok(maps)
}

fn map_name(path: &Path) -> glace::Result<String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(glace::Error::usage(
            "<map>",
            format!("{}: a map's file stem names it in URLs: use letters, digits, '-', '_' and '.'", path.display()),
        ));
    }
    Ok(stem.to_string())
}

/// Serves `maps` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish and stops the workers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    maps: Vec<ServedMap>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = routes::State::new(maps, options);
    let app = router(state.clone());
    let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    tokio::task::spawn_blocking(move || state.pool.shutdown()).await.ok();
    result
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
