//! `glace eval <scene> <poses.txt>`: score a pose file against the scene's test ground truth.

use std::path::PathBuf;

use glace_data::scene::DUMMY_POSES_MARKER;
use glace_data::{Scene, SceneOptions, SplitKind};
use glace_localize::metrics::{evaluate, summarize};
use glace_localize::posefile::read_pose_file;
use glace_localize::LocalizeError;
use glace_report::{error_cdf_png, trajectory_png, Series};

/// Arguments of `glace eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Scene folder; its test split holds the ground truth.
    pub scene: PathBuf,
    /// Pose file: `name qw qx qy qz tx ty tz [r_err t_err inliers]`, world-to-camera.
    pub poses: PathBuf,
    /// Print one JSON object (frames, failed, medians, percentages) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where to write the error-CDF plot [default: next to the pose file, `<stem>_cdf.png`].
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Do not write the plot.
    #[arg(long)]
    pub no_plot: bool,
}

/// Runs `glace eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let plots = (!args.no_plot).then(|| {
        let p = args.plot.clone().unwrap_or_else(|| {
            let stem =
                args.poses.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "poses".into());
            args.poses.with_file_name(format!("{stem}_cdf.png"))
        });
        let traj = p.with_file_name(
            p.file_name().map(|n| n.to_string_lossy().replace("_cdf.png", "_trajectory.png")).unwrap_or_default(),
        );
        let traj = if traj == p { p.with_extension("trajectory.png") } else { traj };
        (p, traj)
    });
    let mut plan = glace::outputs::Plan::new().input("<scene>", &args.scene).input("<poses>", &args.poses);
    if let Some((p, t)) = &plots {
        use glace::outputs::Kind;
        // Plots are reports of this run: an existing one is replaced.
        plan = plan.output("--plot", p, Kind::File, true).output("--plot (trajectory)", t, Kind::File, true);
    }
    plan.check().map_err(glace::Error::from)?;
    let options = SceneOptions { probe_images: false, ..Default::default() };
    let scene = Scene::open(&args.scene, &options)?;
    let test = scene.split(SplitKind::Test)?;
    if test.dir.join(DUMMY_POSES_MARKER).exists() {
        return Err(LocalizeError::NotScorable {
            path: test.dir.clone(),
            message: format!("the test poses are placeholders ({DUMMY_POSES_MARKER} is present); score this dataset with its online benchmark"),
        }
        .into());
    }
    let gt: Vec<(String, glace_geometry::CamToWorld)> =
        test.frames.iter().map(|f| (f.name.clone(), f.cam_to_world)).collect();
    let records = read_pose_file(&args.poses)?;
    let errors = evaluate(&gt, &records, &args.poses)?;
    let summary = summarize(&errors);

    let plot = if let Some((p, traj)) = plots {
        let rot: Vec<f64> = errors.iter().map(|e| e.rot_deg).collect();
        let trans: Vec<f64> = errors.iter().map(|e| e.trans_m * 100.0).collect();
        let title = format!("{} — {} frames", scene.root.display(), errors.len());
        error_cdf_png(&p, &title, &[Series { label: "glace", rot_deg: &rot, trans_cm: &trans }], 5.0, 20.0)?;
        // Top-down view of camera centres, ground truth against estimates.
        let estimates: std::collections::HashMap<&str, Option<[f64; 2]>> = records
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.pose.map(|w2c| {
                        let c = w2c.inverse().center();
                        [c.x, c.y]
                    }),
                )
            })
            .collect();
        let gt_xy: Vec<[f64; 2]> = gt
            .iter()
            .map(|(_, p)| {
                let c = p.center();
                [c.x, c.y]
            })
            .collect();
        let est_xy: Vec<Option<[f64; 2]>> =
            gt.iter().map(|(n, _)| estimates.get(n.as_str()).copied().flatten()).collect();
        trajectory_png(&traj, &format!("{} — camera centres, top view", scene.root.display()), &gt_xy, &est_xy)?;
        Some((p, traj))
    } else {
        None
    };

    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        v["scene"] = serde_json::json!(scene.root.display().to_string());
        v["pose_file"] = serde_json::json!(args.poses.display().to_string());
        v["cdf_plot"] = serde_json::json!(plot.as_ref().map(|p| p.0.display().to_string()));
        v["trajectory_plot"] = serde_json::json!(plot.as_ref().map(|p| p.1.display().to_string()));
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("evaluated {} test frames of {} ({} failed)", summary.frames, scene.root.display(), summary.failed);
        println!("median error    {:.3}° {:.2} cm", summary.median_rot_deg, summary.median_trans_m * 100.0);
        for (label, v) in [
            ("10cm/5°", summary.pct_10cm_5deg),
            ("5cm/5°", summary.pct_5cm_5deg),
            ("2cm/2°", summary.pct_2cm_2deg),
            ("1cm/1°", summary.pct_1cm_1deg),
            ("0.25m/2°", summary.pct_25cm_2deg),
            ("0.5m/5°", summary.pct_50cm_5deg),
            ("5m/10°", summary.pct_5m_10deg),
        ] {
            println!("  {label:<10} {v:6.1}%");
        }
        if let Some((cdf, traj)) = plot {
            println!("error CDF plot  {}", cdf.display());
            println!("trajectory plot {}", traj.display());
        }
    }
    Ok(())
}
