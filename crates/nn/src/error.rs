//! The network crate's error type.

use std::path::PathBuf;

/// Errors of weights and maps: files that cannot be read (from the formats crate), tensors that
/// do not fit a network.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not a readable PyTorch zip archive, or a corrupt pickle.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Tensors missing or unexpected.
    #[error("{}: keys do not match {what}: missing [{}], unexpected [{}]", path.display(), missing.join(", "), unexpected.join(", "))]
    Keys {
        /// The file.
        path: PathBuf,
        /// The architecture expected.
        what: String,
        /// Expected keys not found.
        missing: Vec<String>,
        /// Found keys not expected.
        unexpected: Vec<String>,
    },
    /// A tensor of the wrong shape.
    #[error("{}: tensor '{key}' has shape {found:?}, expected {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        key: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Found shape.
        found: Vec<usize>,
    },
}

impl WeightsError {
    /// A format error of `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        WeightsError::Format { path: path.into(), message: message.into() }
    }
}
