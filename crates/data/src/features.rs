//! Global descriptors stored per split as `features.npy`: float32 (N, D), one L2-normalised row
//! per image in sorted rgb/ order (the layout the reference's R2Former script writes).

use std::path::{Path, PathBuf};

use npyz::WriterBuilder;

use crate::DataError;

/// Tolerance on row norms.
pub const NORM_TOLERANCE: f32 = 1e-3;

/// A table of global descriptors, row-major.
#[derive(Clone, Debug)]
pub struct GlobalFeatures {
    /// Where it was read from.
    pub path: PathBuf,
    /// Number of rows (images).
    pub rows: usize,
    /// Descriptor dimension.
    pub dim: usize,
    /// `rows × dim` values.
    pub data: Vec<f32>,
}

impl GlobalFeatures {
    /// Row `i` (the image with file index `i`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Reads and validates a features file against the number of images of its split.
    pub fn read(path: &Path, expected_rows: usize) -> Result<Self, DataError> {
        let bad = |message: String| DataError::BadFeatures { path: path.to_path_buf(), message };
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        check_npy_shape(&bytes).map_err(bad)?;
        let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not a valid .npy file: {e}")))?;
        let shape = npy.shape().to_vec();
        let dtype = npy.dtype().descr();
        let fortran = npy.order() == npyz::Order::Fortran;
        if dtype != "'<f4'" {
            return Err(bad(format!("dtype {dtype}, expected float32 ('<f4')")));
        }
        let [rows, dim] = shape[..] else {
            return Err(bad(format!("shape {shape:?}, expected 2 dimensions (images, descriptor size)")));
        };
        let (rows, dim) = (rows as usize, dim as usize);
        // The header's shape must fit in the file before anything is allocated for it.
        let declared = (rows as u128) * (dim as u128) * 4;
        if declared > bytes.len() as u128 {
            return Err(bad(format!(
                "shape ({rows}, {dim}) needs {declared} bytes of data; the file has {}",
                bytes.len()
            )));
        }
        let mut data: Vec<f32> = npy.into_vec().map_err(|e| bad(format!("cannot read data: {e}")))?;
        if fortran {
            let col_major = data;
            data = (0..rows * dim).map(|k| col_major[(k % dim) * rows + k / dim]).collect();
        }
        if rows != expected_rows {
            return Err(DataError::FeatureCount { path: path.to_path_buf(), rows, frames: expected_rows });
        }
        if dim == 0 {
            return Err(bad("descriptor size is 0".into()));
        }
        let features = GlobalFeatures { path: path.to_path_buf(), rows, dim, data };
        for row in 0..rows {
            let norm = features.row(row).iter().map(|v| v * v).sum::<f32>().sqrt();
            if !norm.is_finite() || (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(DataError::FeatureNorm { path: path.to_path_buf(), row, norm });
            }
        }
        Ok(features)
    }
}

/// Checks, before the npy reader sees them, that the header's shape is two dimensions whose
/// float32 data fit in the file: a header may claim any size.
fn check_npy_shape(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("npy format version {v} is not supported")),
    };
    let header = bytes.get(start..start.saturating_add(len)).ok_or("the header is cut off")?;
    let header = String::from_utf8_lossy(header);
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split_once('(').map(|(_, r)| r))
        .and_then(|r| r.split_once(')').map(|(s, _)| s))
        .ok_or("the header has no shape")?;
    let dims: Vec<&str> = shape.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    let dims: Vec<u64> = dims
        .iter()
        .map(|d| d.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("shape ({shape}) is not a list of sizes"))?;
    let [rows, dim] = dims[..] else {
        return Err(format!("shape ({shape}), expected 2 dimensions (images, descriptor size)"));
    };
    let need = (rows as u128) * (dim as u128) * 4;
    if need > (bytes.len() - start) as u128 {
        return Err(format!("shape ({rows}, {dim}) needs {need} bytes of data; the file has {}", bytes.len()));
    }
    Ok(())
}

/// Writes a float32 (rows, dim) `.npy` file (used by tests and by feature extraction), under a
/// temporary name first so that a failure never leaves a truncated file.
pub fn write_features(path: &Path, rows: usize, dim: usize, data: &[f32]) -> std::io::Result<()> {
    assert_eq!(data.len(), rows * dim);
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[rows as u64, dim as u64])
            .writer(&mut bytes)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()?;
    }
    crate::writer::write_file_atomically(path, &bytes)
}
