//! `glace serve <map>...`: the localization service over HTTP, and `glace bench serve`, its load
//! and fault test.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use glace::LocalizerOptions;
use glace_serve::ServeOptions;

use super::localize::{EvidenceArgs, RansacArgs};
use super::map::GlobalArg;

/// A byte size such as `32MB`, `512kB`, `1GiB` or a plain number of bytes.
pub fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" => 1048576.0,
        "gb" | "g" => 1e9,
        "gib" => 1073741824.0,
        _ => return Err(format!("'{s}': expected a size such as 32MB, 512kB or 1048576")),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * factor < 1e12 => Ok((v * factor) as usize),
        _ => Err(format!("'{s}': expected a positive size such as 32MB")),
    }
}

/// Options of the service shared by `glace serve` and `glace bench serve`.
#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    /// Worker threads for the CPU work [default: the machine's cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Localization jobs that may wait for a worker; more get 503 with Retry-After [default: 8 per worker].
    #[arg(long)]
    pub queue: Option<usize>,
    /// Largest request body (413 beyond it).
    #[arg(long, default_value = "32MB", value_parser = byte_size)]
    pub max_body: usize,
    /// Time a request may take from its first byte to its answer, in ms (408 while the body is
    /// still arriving, 504 after).
    #[arg(long, default_value_t = 30_000)]
    pub deadline_ms: u64,
    /// Time a connection may take to send its request head, in ms (408 after; a connection that
    /// sends nothing is closed).
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time requests in flight get to finish after SIGINT or SIGTERM, in ms; then they are dropped.
    #[arg(long, default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

impl ServiceArgs {
    fn options(&self, token: Option<String>) -> anyhow::Result<ServeOptions> {
        let d = ServeOptions::default();
        let workers = self.workers.unwrap_or(d.workers);
        let o = ServeOptions {
            workers,
            queue: self.queue.unwrap_or(workers.saturating_mul(8)),
            max_body: self.max_body,
            deadline: Duration::from_millis(self.deadline_ms),
            token,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            ..d
        };
        if self.header_timeout_ms == 0 {
            return Err(glace::Error::usage("--header-timeout-ms", "0: connections need time to send a request").into());
        }
        if self.shutdown_grace_ms == 0 {
            return Err(glace::Error::usage("--shutdown-grace-ms", "0: give requests in flight some time").into());
        }
        o.validate()?;
        Ok(o)
    }
}

/// Arguments of `glace serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Map files to serve; each is named in URLs by its file stem (`maps/desk.glace` → `desk`).
    #[arg(required = true)]
    pub maps: Vec<PathBuf>,
    /// Address to listen on (loopback by default; anything else should come with --token-file).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: String,
    /// File holding a token: requests must then carry `Authorization: Bearer <token>`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// ACE encoder weights, for maps trained with the ACE encoder: ace:<ace_encoder_pretrained.pt>.
    #[arg(long)]
    pub encoder: Option<String>,
    /// R2Former checkpoint for R2Former maps: r2former:<CVPR23_DeitS_Rerank.pth> [default: the one recorded in the map].
    #[arg(long)]
    pub global: Option<GlobalArg>,
    /// Default RANSAC options (a request may give its own).
    #[command(flatten)]
    pub ransac: RansacArgs,
    /// Precision of the head's and encoders' matrix products: auto (bf16 where this CPU has a
    /// path faster than fp32), fp32 or bf16.
    #[arg(long, default_value = "auto", value_parser = super::map::precision)]
    pub precision: glace::Precision,
    /// Orientations each image is tried in: auto (as the map recommends), upright or all (four
    /// quarter turns).
    #[arg(long, default_value = "auto", value_parser = glace::Turns::parse)]
    pub turns: glace::Turns,
    /// Keep the pose the scene coordinates give: do not refine it against the map's
    /// triangulated points (maps of the `cpu` preset carry them).
    #[arg(long)]
    pub no_structure: bool,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
}

fn localizer_options(
    encoder: Option<&str>,
    global: Option<&GlobalArg>,
    ransac: &RansacArgs,
    precision: glace::Precision,
    turns: glace::Turns,
) -> anyhow::Result<LocalizerOptions> {
    precision.resolve().map_err(|m| glace::Error::usage("--precision", m))?;
    let ace_encoder = match encoder.map(str::parse::<glace::LocalEncoderChoice>) {
        None | Some(Ok(glace::LocalEncoderChoice::XFeat)) => None,
        Some(Ok(glace::LocalEncoderChoice::Ace(p))) => Some(p),
        Some(Err(e)) => return Err(glace::Error::usage("--encoder", e).into()),
    };
    let r2former = match global {
        None => None,
        Some(GlobalArg::R2Former(p)) => Some(p.clone()),
        Some(other) => {
            return Err(
                glace::Error::usage("--global", format!("{other:?}: serve takes only r2former:<checkpoint>")).into()
            )
        }
    };
    Ok(LocalizerOptions { ransac: ransac.options()?, ace_encoder, r2former, precision, turns, ..Default::default() })
}

/// Runs `glace serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| glace::Error::usage("--token-file", format!("{}: {e}", p.display())))?;
            Some(t.trim().to_string())
        }
    };
    let options = args.service.options(token)?;
    let addr: std::net::SocketAddr = args.addr.parse().map_err(|_| {
        glace::Error::usage("--addr", format!("'{}': expected host:port such as 127.0.0.1:7878", args.addr))
    })?;
    if !addr.ip().is_loopback() && options.token.is_none() {
        tracing::warn!("listening on {addr} beyond loopback without --token-file: anyone who reaches it can use it");
    }
    let maps = glace_serve::load_maps(
        &args.maps,
        &LocalizerOptions {
            skip_structure: args.no_structure,
            evidence: args.evidence.rule()?,
            ..localizer_options(
                args.encoder.as_deref(),
                args.global.as_ref(),
                &args.ransac,
                args.precision,
                args.turns,
            )?
        },
    )?;
    let names: Vec<String> = maps.iter().map(|m| m.name.clone()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| glace::Error::usage("--addr", format!("{addr}: {e}")))?;
        let bound = listener.local_addr()?;
        println!(
            "glace serve: listening on http://{bound} (maps: {}; {} workers, queue {}); SIGINT or SIGTERM stops it",
            names.join(", "),
            options.workers,
            options.queue
        );
        std::io::stdout().flush()?;
        glace_serve::serve(listener, maps, options, glace_serve::shutdown_signal()).await?;
        println!("glace serve: stopped");
        anyhow::Ok(())
    })
}

/// Arguments of `glace bench serve`.
#[derive(clap::Args, Debug)]
pub struct BenchServeArgs {
    /// Scene whose test frames the clients send [default: the shared TUM desk, ../shared/data/tum_fr2_desk or $GLACE_SHARED/data/tum_fr2_desk].
    #[arg(long)]
    pub scene: Option<PathBuf>,
    /// Map of that scene [default: one mapped first with a short budget, 800 iterations].
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds of in-process localization measured first as the baseline.
    #[arg(long, default_value_t = 10)]
    pub baseline: u64,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Queue capacity [default: 8 per worker].
    #[arg(long)]
    pub queue: Option<usize>,
    /// The service's deadline in ms (the slow-body fault waits it out).
    #[arg(long, default_value_t = 5_000)]
    pub deadline_ms: u64,
    /// The service's header timeout in ms (the half-sent-head fault waits it out).
    #[arg(long, default_value_t = 2_000)]
    pub header_timeout_ms: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `glace bench serve`.
pub fn bench(args: &BenchServeArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration == 0 {
        anyhow::bail!(glace::Error::usage("--clients/--duration", "both must be at least 1"));
    }
    let scene = match &args.scene {
        Some(s) => s.clone(),
        None => glace_data::testing::shared_dir()
            .map(|d| d.join("data/tum_fr2_desk"))
            .filter(|p| p.is_dir())
            .ok_or_else(|| glace::Error::usage("--scene", "the shared TUM desk is not here: name a scene"))?,
    };
    let tmp = tempfile::tempdir()?;
    let map = match &args.map {
        Some(m) => m.clone(),
        None => {
            let path = tmp.path().join("bench.glace");
            eprintln!("mapping {} with a short budget (800 iterations, 50000 samples)…", scene.display());
            let mut o = glace::preset("cpu")?;
            (o.iterations, o.buffer_size, o.scene_budget) = (800, 50_000, false);
            let s = glace::Scene::open(&scene, &glace::SceneOptions::default())?;
            glace::map_scene(&s, &o, &glace::LocalEncoderChoice::XFeat, &mut glace::Silent)?.map.save(&path)?;
            path
        }
    };
    let ransac = RansacArgs::default();
    let maps = glace_serve::load_maps(
        &[map],
        &localizer_options(None, None, &ransac, glace::Precision::Auto, glace::Turns::Auto)?,
    )?;
    let frames = glace_serve::bench::query_frames(&scene)?;
    let service = ServiceArgs {
        workers: args.workers,
        queue: args.queue,
        max_body: 32_000_000,
        deadline_ms: args.deadline_ms,
        header_timeout_ms: args.header_timeout_ms,
        shutdown_grace_ms: 10_000,
    };
    let test = glace_serve::bench::LoadTest {
        clients: args.clients,
        duration: Duration::from_secs(args.duration),
        baseline: Duration::from_secs(args.baseline),
        options: service.options(None)?,
    };
    eprintln!("baseline {} s, then {} clients for {} s …", args.baseline, args.clients, args.duration);
    let r = glace_serve::bench::run(maps, &frames, &test)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "glace serve under load: {} clients, {:.0} s, {} workers, queue {}, {} frames of {}",
        r.clients,
        r.seconds,
        r.workers,
        r.queue,
        frames.len(),
        scene.display()
    );
    println!(
        "  throughput {:.2} localizations/s; in process, one after another: {:.2} frames/s (ratio {:.2})",
        r.throughput_per_s, r.baseline_frames_per_s, r.ratio_to_baseline
    );
    println!(
        "  latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        r.latency_ms["p50"], r.latency_ms["p95"], r.latency_ms["p99"]
    );
    println!("  answers by status: {:?}", r.statuses);
    println!(
        "  unexpected: {} (wrong poses {}, dropped connections {}, 503 without Retry-After {})",
        r.unexpected, r.wrong_poses, r.dropped, r.missing_retry_after
    );
    println!("  malformed requests:");
    for f in &r.faults {
        println!(
            "    {:<30} expected {:<3} got {:?} {} {}",
            f.class,
            f.expected,
            f.got,
            if f.ok { "ok" } else { "UNEXPECTED" },
            f.message
        );
    }
    println!("  answers correctly after the faults: {}", r.healthy_after_faults);
    println!(
        "  resident memory: peak {:.0} MB; first 10 s {:.0} MB, last 10 s {:.0} MB",
        r.peak_rss_mb, r.rss_first_last_10s_mb.0, r.rss_first_last_10s_mb.1
    );
    Ok(())
}
