//! Pose files round-trip; metrics follow the reference's definitions.

use glace_geometry::{CamToWorld, WorldToCam};
use glace_localize::metrics::{evaluate, summarize};
use glace_localize::posefile::{read_pose_file, write_pose_file, PoseRecord};
use glace_localize::LocalizeError;
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

fn pose(k: f64) -> CamToWorld {
    CamToWorld(Isometry3::new(Vector3::new(k, 0.5 * k, 1.0), Vector3::new(0.1 * k, -0.2, 0.3)))
}

fn perturbed(p: &CamToWorld, dt: f64, deg: f64) -> CamToWorld {
    CamToWorld(Isometry3::from_parts(
        Translation3::from(p.center() + Vector3::new(dt, 0.0, 0.0)),
        UnitQuaternion::from_axis_angle(&Vector3::y_axis(), deg.to_radians()) * p.0.rotation,
    ))
}

fn record(name: &str, p: Option<CamToWorld>) -> PoseRecord {
    PoseRecord { name: name.into(), pose: p.map(|p| p.inverse()), rot_err_deg: 0.0, trans_err_m: 0.0, inliers: 7 }
}

#[test]
fn round_trip_and_failed_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("poses.txt");
    let recs = vec![record("a.png", Some(pose(1.0))), record("b.png", None)];
    write_pose_file(&path, &recs).unwrap();
    let back = read_pose_file(&path).unwrap();
    assert_eq!(back.len(), 2);
    let (a, b): (&WorldToCam, &WorldToCam) = (back[0].pose.as_ref().unwrap(), recs[0].pose.as_ref().unwrap());
    assert!((a.to_matrix() - b.to_matrix()).abs().max() < 1e-12);
    assert!(back[1].pose.is_none());
    assert_eq!(back[0].inliers, 7);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() >= 0.0, "qw ≥ 0");
}

#[test]
fn metrics_as_the_reference() {
    let gt: Vec<(String, CamToWorld)> = (0..5).map(|k| (format!("f{k}.png"), pose(k as f64))).collect();
    let recs = vec![
        record("f0.png", Some(gt[0].1)),
        record("f1.png", Some(perturbed(&gt[1].1, 0.03, 1.0))),
        record("f2.png", Some(perturbed(&gt[2].1, 0.07, 3.0))),
        record("f3.png", None),
        // f4 missing from the file
    ];
    let errors = evaluate(&gt, &recs, std::path::Path::new("p.txt")).unwrap();
    assert!((errors[1].trans_m - 0.03).abs() < 1e-12 && (errors[1].rot_deg - 1.0).abs() < 1e-9);
    let s = summarize(&errors);
    assert_eq!((s.frames, s.failed), (5, 2));
    assert_eq!(s.pct_10cm_5deg, 60.0);
    assert_eq!(s.pct_5cm_5deg, 40.0);
    assert_eq!(s.pct_2cm_2deg, 20.0);
    // Upper median of [0, 0.03, 0.07, inf, inf] is element 2.
    assert!((s.median_trans_m - 0.07).abs() < 1e-12);
    assert!((s.median_rot_deg - 3.0).abs() < 1e-9);
}

#[test]
fn bad_pose_files_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("poses.txt");
    for (text, needle) in [
        ("a.png 1 0 0 0 0 0 0\nb.png 1 0 0\n", ":2: 4 columns"),
        ("a.png 1 0 0 zero 0 0 0\n", ":1: column 5"),
        ("a.png 1 0 0 0 0 0 0\na.png 1 0 0 0 0 0 0\n", "appears twice"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = read_pose_file(&path).unwrap_err();
        assert!(matches!(err, LocalizeError::PoseFile { .. }));
        assert!(err.to_string().contains(needle), "{err}");
    }
    std::fs::write(&path, "zz.png 1 0 0 0 0 0 0\n").unwrap();
    let recs = read_pose_file(&path).unwrap();
    let gt = vec![("a.png".to_string(), pose(0.0))];
    assert!(matches!(evaluate(&gt, &recs, &path), Err(LocalizeError::UnknownFrames { .. })));
}
