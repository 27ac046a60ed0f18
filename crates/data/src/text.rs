//! Lenient parsers for the small text files of a scene: pose, calibration, distortion.
//! They accept what real datasets contain (tabs, CRLF, `e-001` exponents, blank lines, `#`
//! comments) and name the line of anything they cannot read.

use std::path::Path;

use glace_geometry::{CamToWorld, Distortion, Intrinsics};
use nalgebra::Matrix4;

use crate::DataError;

/// The numbers of a text file, each with its 1-based line number.
pub(crate) fn read_numbers(path: &Path) -> Result<Vec<Vec<f64>>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_numbers(path, &String::from_utf8_lossy(&bytes))
}

/// Numbers per line (blank and `#` lines give empty rows, so indices stay line numbers − 1).
pub(crate) fn parse_numbers(path: &Path, text: &str) -> Result<Vec<Vec<f64>>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let mut row = Vec::new();
        if !line.starts_with('#') {
            for token in line.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()) {
                let v = token.parse::<f64>().map_err(|_| DataError::BadNumber {
                    path: path.to_path_buf(),
                    line: i + 1,
                    token: token.chars().take(40).collect(),
                })?;
                row.push(v);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn count(rows: &[Vec<f64>]) -> usize {
    rows.iter().map(Vec::len).sum()
}

/// Reads a 4×4 camera-to-world pose file and validates it as a rigid transform.
pub fn read_pose(path: &Path, orthonormal_tolerance: f64) -> Result<CamToWorld, DataError> {
    let rows = read_numbers(path)?;
    let n = count(&rows);
    if n != 16 {
        let message = if n == 12 {
            "found 12 numbers (a 3×4 [R|t]); expected a 4×4 camera-to-world matrix whose last row is 0 0 0 1"
                .to_string()
        } else {
            format!("expected a 4×4 camera-to-world matrix (16 numbers), found {n} numbers")
        };
        return Err(DataError::PoseShape { path: path.to_path_buf(), message });
    }
    if let Some(line) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(DataError::NonFinitePose { path: path.to_path_buf(), line: line + 1 });
    }
    let values: Vec<f64> = rows.into_iter().flatten().collect();
    let m = Matrix4::from_row_slice(&values);
    CamToWorld::from_matrix(&m, orthonormal_tolerance)
        .map_err(|source| DataError::InvalidPose { path: path.to_path_buf(), source })
}

/// A calibration file as the reference reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Calibration {
    /// One focal length for the stored image; principal point at the image centre.
    Focal(f64),
    /// A full K.
    Matrix(Intrinsics),
}

impl Calibration {
    /// Intrinsics for an image of `width`×`height` as stored on disk.
    pub fn intrinsics(&self, width: u32, height: u32) -> Intrinsics {
        match *self {
            Calibration::Focal(f) => Intrinsics { fx: f, fy: f, cx: width as f64 / 2.0, cy: height as f64 / 2.0 },
            Calibration::Matrix(k) => k,
        }
    }
    /// (fx, fy) as given.
    pub fn focal(&self) -> (f64, f64) {
        match *self {
            Calibration::Focal(f) => (f, f),
            Calibration::Matrix(k) => (k.fx, k.fy),
        }
    }
}

/// Reads a calibration file: one focal length, or a 3×3 K (fx = K00, fy = K11, cx = K02, cy = K12)
/// without skew and with a last row of `0 0 1`.
pub fn read_calibration(path: &Path) -> Result<Calibration, DataError> {
    let rows = read_numbers(path)?;
    let values: Vec<f64> = rows.into_iter().flatten().collect();
    let invalid = |source| DataError::InvalidCalibration { path: path.to_path_buf(), source };
    match values.len() {
        1 => {
            let f = values[0];
            Intrinsics::new(f, f, 0.0, 0.0).map_err(invalid)?;
            Ok(Calibration::Focal(f))
        }
        9 => {
            let k = [
                [values[0], values[1], values[2]],
                [values[3], values[4], values[5]],
                [values[6], values[7], values[8]],
            ];
            Intrinsics::from_matrix(&k).map(Calibration::Matrix).map_err(invalid)
        }
        count => Err(DataError::CalibrationShape { path: path.to_path_buf(), count }),
    }
}

/// Reads `distortion.txt`: `#` comment lines and one line of k1 k2 p1 p2 [k3].
pub fn read_distortion(path: &Path) -> Result<Distortion, DataError> {
    let rows = read_numbers(path)?;
    let data: Vec<(usize, &Vec<f64>)> = rows.iter().enumerate().filter(|(_, r)| !r.is_empty()).collect();
    let bad = |message: String| DataError::BadDistortion { path: path.to_path_buf(), message };
    match data.as_slice() {
        [(line, coeffs)] => Distortion::from_coeffs(coeffs).map_err(|e| bad(format!("line {}: {e}", line + 1))),
        [] => Err(bad("no coefficients: expected one line 'k1 k2 p1 p2 [k3]'".into())),
        _ => Err(bad(format!(
            "{} lines hold numbers (lines {}); expected exactly one line 'k1 k2 p1 p2 [k3]'",
            data.len(),
            data.iter().map(|(l, _)| (l + 1).to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn parses_7scenes_style_text() {
        let text = " 9.3817085e-001\t-1.2e-001 \t0\t1.5e+000\r\n0 1 0 2\r\n0 0 1 3\r\n0 0 0 1\r\n\r\n\r\n";
        let rows = parse_numbers(&PathBuf::from("p.txt"), text).unwrap();
        assert_eq!(rows[0], vec![0.93817085, -0.12, 0.0, 1.5]);
        assert_eq!(count(&rows), 16);
    }

    #[test]
    fn names_the_line_of_a_bad_token() {
        let err = parse_numbers(&PathBuf::from("p.txt"), "1 0 0 0\n0 1 x 0\n").unwrap_err();
        assert!(matches!(err, DataError::BadNumber { line: 2, ref token, .. } if token == "x"));
        assert_eq!(err.to_string(), "p.txt:2: 'x' is not a number");
    }
}
