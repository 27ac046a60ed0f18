//! Putting a finished output in place without a moment where neither the old nor the new one
//! is complete.

use std::path::Path;

use crate::{Error, Result};

/// Renames the finished `new` (file or folder) to `target`. An existing `target` is first
/// renamed aside, then removed once `new` is in place; if the swap fails, the old one is put back.
pub(crate) fn swap_in(new: &Path, target: &Path) -> Result<()> {
    let failed = |e| Error::Write { path: target.to_path_buf(), source: e };
    if std::fs::symlink_metadata(target).is_err() {
        return std::fs::rename(new, target).map_err(failed);
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let aside = target.with_file_name(format!(".{name}.glace-old-{}", std::process::id()));
    std::fs::rename(target, &aside).map_err(failed)?;
    if let Err(e) = std::fs::rename(new, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(failed(e));
    }
    let removed = if aside.is_dir() { std::fs::remove_dir_all(&aside) } else { std::fs::remove_file(&aside) };
    if let Err(e) = removed {
        tracing::warn!("{}: could not remove the replaced output: {e}", aside.display());
    }
    Ok(())
}
