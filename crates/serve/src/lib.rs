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
//!
//! No client can hold or stop it: each connection carries one request, whose head must arrive
//! within [`ServeOptions::header_timeout`] and is checked before it is parsed further
//! ([`conn`]); the RANSAC work a request may ask for is capped by the server's own defaults; a
//! request that times out or whose client hangs up cancels its work between stages and inside
//! RANSAC; bodies held at once are bounded by the workers and the queue; and a shutdown stops
//! accepting, drops connections that have not sent a whole head, and gives the requests in flight
//! [`ServeOptions::shutdown_grace`] before it drops them too.

pub mod bench;
pub mod client;
pub mod conn;
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
    /// Time a connection may take to send its request head (and an idle one stays open).
    pub header_timeout: Duration,
    /// Time the requests in flight get to finish once a shutdown begins.
    pub shutdown_grace: Duration,
}

/// Most worker threads (`--workers`): the work is CPU-bound, so more than the cores only adds
/// memory and switching.
pub const MAX_WORKERS: usize = 256;
/// Most jobs waiting for a worker (`--queue`): each holds its request's image.
pub const MAX_QUEUE: usize = 4096;
/// Most connections open at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

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
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// Checks that the numbers can work (names the command-line option).
    pub fn validate(&self) -> glace::Result<()> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(glace::Error::usage("--workers", format!("{}: expected 1 to {MAX_WORKERS}", self.workers)));
        }
        if !(1..=MAX_QUEUE).contains(&self.queue) {
            return Err(glace::Error::usage("--queue", format!("{}: expected 1 to {MAX_QUEUE}", self.queue)));
        }
        if self.max_body > 1 << 30 {
            return Err(glace::Error::usage("--max-body", format!("{} bytes: at most 1 GiB", self.max_body)));
        }
        if self.header_timeout.is_zero() || self.shutdown_grace.is_zero() {
            return Err(glace::Error::usage("header_timeout", "0: connections need time to send their requests"));
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

/// Serves `maps` on `listener` until `shutdown` completes; then stops accepting, drops the
/// connections that have not sent a whole request head, lets the requests in flight finish
/// within [`ServeOptions::shutdown_grace`] (dropping, and so cancelling, those that do not) and
/// stops the workers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    maps: Vec<ServedMap>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    options.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let state = routes::State::new(maps, options.clone());
    let app = router(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (app, options, mut stop) = (app.clone(), options.clone(), stop_rx.clone());
        connections.spawn(async move {
            let _permit = permit;
            let served = async {
                let mut stream = stream;
                let head = tokio::select! {
                    h = conn::read_head(&mut stream, options.header_timeout) => h,
                    _ = stop.changed() => return,
                };
                match head {
                    Ok(bytes) => serve_connection(bytes, stream, app).await,
                    Err(conn::HeadError::Answer(status, message)) => {
                        conn::write_error(&mut stream, status, &message).await
                    }
                    Err(conn::HeadError::Silent) => {}
                }
            };
            // No connection outlives its request's deadline by more than the head's time and a margin.
            let _ =
                tokio::time::timeout(options.header_timeout + options.deadline + Duration::from_secs(5), served).await;
        });
        // Finished connections are reaped as the loop goes.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(options.shutdown_grace, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!("requests still in flight after {} ms: dropped", options.shutdown_grace.as_millis());
        connections.shutdown().await;
    }
    tokio::task::spawn_blocking(move || state.pool.shutdown()).await.ok();
    Ok(())
}

/// One request over HTTP/1.1 (no keep-alive: the next request comes on a new connection and
/// has its head checked again).
///
/// A client that closes its end (or resets it) has given up: the connection is dropped, and with
/// it the request's handler, which cancels the request's work ([`routes::ConnectionGone`] marks
/// the request so that the handler's cancel flag is the connection's).
async fn serve_connection(head: Vec<u8>, stream: tokio::net::TcpStream, app: axum::Router) {
    let gone = glace::CancelToken::new();
    // A second handle on the socket watches for the client's end while hyper owns the first.
    let (stream, peer) = match watch_handle(stream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!("connection: {e}");
            return;
        }
    };
    let marked = gone.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(routes::ConnectionGone(marked.clone()));
        // A router is always ready: calling it directly is what `oneshot` would do.
        tower_service::Service::call(&mut app.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(false).timer(hyper_util::rt::TokioTimer::new());
    let io = hyper_util::rt::TokioIo::new(conn::Prefixed::new(head, stream));
    let served = builder.serve_connection(io, service);
    let watched = async move {
        let mut byte = [0u8; 1];
        loop {
            if peer.readable().await.is_err() {
                return;
            }
            match peer.peek(&mut byte).await {
                Ok(0) | Err(_) => return,
                // Bytes hyper has not read yet (the body): look again later.
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                tracing::debug!("connection: {e}");
            }
        }
        _ = watched => {
            tracing::debug!("the client closed its connection: its request is cancelled");
            gone.cancel();
        }
    }
}

/// The stream and a second handle on the same socket.
fn watch_handle(stream: tokio::net::TcpStream) -> std::io::Result<(tokio::net::TcpStream, tokio::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let peer = std_stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std_stream)?, tokio::net::TcpStream::from_std(peer)?))
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
