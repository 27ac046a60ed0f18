//! Helpers for tests across the workspace: locating `../shared` and skipping visibly without it.

use std::io::Write;
use std::path::PathBuf;

/// The `shared/` folder beside the repository (`GLACE_SHARED` overrides), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("GLACE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

/// A path under `shared/`, or `None` after printing why the calling test is skipped.
///
/// The message goes straight to the process's stderr, which the test harness does not capture,
/// so a skip is always visible in the test log.
pub fn shared_path(relative: &str, test: &str) -> Option<PathBuf> {
    let found = shared_dir().map(|d| d.join(relative)).filter(|p| p.exists());
    if found.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: ../shared/{relative} is absent (set GLACE_SHARED to its folder)"
        );
    }
    found
}
