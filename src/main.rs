//! `glace`: visual relocalization by scene coordinate regression (GLACE, CVPR 2024).
//!
//! A thin command-line layer over the workspace crates: it parses arguments, sets up logging,
//! calls into the libraries and maps errors to exit codes (0 ok, 2 bad input, 1 internal error).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Visual relocalization: map a place from posed photos, then localize new photos in it.
#[derive(Parser, Debug)]
#[command(name = "glace", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Render a synthetic scene, map it, localize its test frames, print the results and write plots and a point cloud.
    Demo(cmd::demo::DemoArgs),
    /// Validate a scene and print its summary (frames, image sizes, focal lengths, camera extent).
    Info(cmd::info::InfoArgs),
    /// Train a scene-specific GLACE head from a scene's training images (mapping).
    #[command(allow_negative_numbers = true)]
    Map(cmd::map::MapArgs),
    /// Localize a scene's test images with a map (PnP-RANSAC) and write a pose file.
    #[command(allow_negative_numbers = true)]
    Localize(cmd::localize::LocalizeArgs),
    /// Score a pose file against a scene's test ground truth (medians, thresholds, CDF plot).
    #[command(allow_negative_numbers = true)]
    Eval(cmd::eval::EvalArgs),
    /// Convert a public dataset or a capture (COLMAP, TUM, transforms.json) to the scene layout.
    #[command(allow_negative_numbers = true)]
    Convert(cmd::convert::ConvertArgs),
    /// Render a synthetic posed scene (desk, room, integrated rooms, outdoor) in the scene layout.
    #[command(allow_negative_numbers = true)]
    Synth(cmd::synth::SynthArgs),
    /// Benchmarks printed side by side: real captures, RANSAC, training step, encoders, R2Former, rendering, the ablation, the service.
    Bench(cmd::bench::BenchArgs),
    /// Compute global descriptors into the splits' features.npy (R2Former, as the reference's extract_features.py).
    Features(cmd::features::FeaturesArgs),
    /// Export: the implicit map as a point cloud (PLY), a localization run as a COLMAP model, or an official GLACE .pt head.
    #[command(allow_negative_numbers = true)]
    Export(cmd::export::ExportArgs),
    /// Serve maps over HTTP: POST an image and its K, get the camera pose back as JSON.
    #[command(allow_negative_numbers = true)]
    Serve(cmd::serve::ServeArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader of our output goes away (`glace … | head`).
    #[cfg(unix)]
    // SAFETY: called first thing, before any thread exists; restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    glace::keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", glace::chain_message(err.chain()));
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}

/// Runs one glace command given as arguments (without the program name); used by `glace demo`.
pub fn run_args(args: &[String]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("glace".to_string()).chain(args.iter().cloned()))?;
    dispatch(cli.command)
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Info(args) => cmd::info::run(&args),
        Command::Map(args) => cmd::map::run(&args),
        Command::Localize(args) => cmd::localize::run(&args),
        Command::Eval(args) => cmd::eval::run(&args),
        Command::Convert(args) => cmd::convert::run(&args),
        Command::Synth(args) => cmd::synth::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Export(args) => cmd::export::run(&args),
        Command::Features(args) => cmd::features::run(&args),
        Command::Serve(args) => cmd::serve::run(&args),
    }
}
