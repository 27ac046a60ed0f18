//! PnP-RANSAC on the reference's five DSAC* fixture cases (0–90 % outliers), next to the times
//! the reference's C++/OpenCV extension recorded.

pub use glace_localize::dsac_fixture::CaseResult as RansacRow;

/// Each case of `fixture`, `runs` times (seeds 0..runs).
pub fn ransac(fixture: &std::path::Path, runs: usize) -> crate::Result<Vec<RansacRow>> {
    let cases = glace_localize::dsac_fixture::load(fixture)?;
    Ok(cases.iter().map(|case| glace_localize::dsac_fixture::run_case(case, runs)).collect())
}
