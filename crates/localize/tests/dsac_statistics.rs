//! Accuracy against the reference's DSAC* RANSAC on its five fixture cases (0–90 % outliers):
//! our median errors must be no worse than the reference's (within 0.02° and 0.2 cm).

use glace_data::testing::shared_path;
use glace_localize::dsac_fixture::{load, run_case};

#[test]
fn dsac_fixture_accuracy_matches_reference() {
    let Some(path) = shared_path("fixtures/dsacstar_ransac.npz", "dsac_fixture_accuracy_matches_reference") else {
        return;
    };
    let cases = load(&path).unwrap();
    for case in &cases {
        let r = run_case(case, 5);
        assert_eq!(r.failures, 0, "{r:?}");
        assert!(r.median_rot_deg <= r.reference_median_rot_deg + 0.02, "{r:?}");
        assert!(r.median_trans_cm <= r.reference_median_trans_cm + 0.2, "{r:?}");
        let ref_inliers = case.ref_inliers[0] as f64;
        assert!((r.median_inliers - ref_inliers).abs() <= 0.02 * ref_inliers, "{r:?}");
    }
}
