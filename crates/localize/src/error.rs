//! The localization crate's error type.

use std::path::PathBuf;

/// Errors of pose files and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum LocalizeError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not what it should be (a fixture archive, …).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A pose-file line that cannot be read.
    #[error("{}:{line}: {message}", path.display())]
    PoseFile {
        /// The pose file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Pose-file frames that the scene does not have.
    #[error("{}: {} frame(s) not in the scene's test split: {}", path.display(), names.len(), names.iter().take(8).cloned().collect::<Vec<_>>().join(", "))]
    UnknownFrames {
        /// The pose file.
        path: PathBuf,
        /// The names.
        names: Vec<String>,
    },
    /// A scene whose ground truth cannot be scored (e.g. Aachen's dummy identity poses).
    #[error("{}: {message}", path.display())]
    NotScorable {
        /// The scene.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A query that cannot be localized as given (empty image, missing or wrong-sized global
    /// descriptor, …).
    #[error("{0}")]
    Input(String),
    /// The query was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The scene itself is invalid.
    #[error(transparent)]
    Data(#[from] glace_data::DataError),
}
