//! The one error type of the public API.

use std::path::PathBuf;

use glace_data::DataError;
use glace_geometry::GeometryError;
use glace_localize::LocalizeError;
use glace_nn::WeightsError;

/// Everything that can go wrong in a glace call.
///
/// [`Error::is_input_error`] tells the caller's fault (a file, an option, an argument) from
/// glace's own; the command line turns that into exit code 2 or 1, the Python package into
/// `glace.InputError` (a `ValueError`) or `glace.Error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option or argument that cannot work, named as the caller spelled it (`--iterations`,
    /// `threshold`, `K`).
    #[error("{option}: {message}")]
    Usage {
        /// The option or argument.
        option: String,
        /// What is wrong with it.
        message: String,
    },
    /// A scene, image, pose or features file that cannot be used.
    #[error(transparent)]
    Data(Box<DataError>),
    /// A map or weights file that cannot be used.
    #[error(transparent)]
    Weights(Box<WeightsError>),
    /// Geometry that cannot describe a camera or a pose.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// A query image or pose file that cannot be localized or scored.
    #[error(transparent)]
    Localize(Box<LocalizeError>),
    /// Input that cannot work, said in full (the message names the file or the scene).
    #[error("{0}")]
    Input(String),
    /// A progress observer asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// Writing an output failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A fault of glace itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A usage error for `option`.
    pub fn usage(option: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Usage { option: option.into(), message: message.into() }
    }

    /// True when the caller's input is at fault (exit code 2 on the command line).
    ///
    /// ```
    /// let e = glace::Error::usage("--iterations", "0: must be at least 1");
    /// assert!(e.is_input_error());
    /// assert_eq!(e.to_string(), "--iterations: 0: must be at least 1");
    /// ```
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Internal(_) | Error::Write { .. } | Error::Cancelled)
    }
}

// Boxed: the crates' errors carry file lists and paths, and a small error keeps every
// `Result` of the API cheap to return.
impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Error::Data(Box::new(e))
    }
}

impl From<WeightsError> for Error {
    fn from(e: WeightsError) -> Self {
        Error::Weights(Box::new(e))
    }
}

impl From<LocalizeError> for Error {
    fn from(e: LocalizeError) -> Self {
        Error::Localize(Box::new(e))
    }
}

impl From<glace_outputs::Refused> for Error {
    fn from(e: glace_outputs::Refused) -> Self {
        Error::Usage { option: e.option, message: e.message }
    }
}

impl From<glace_mapping::pipeline::MapError> for Error {
    fn from(e: glace_mapping::pipeline::MapError) -> Self {
        use glace_mapping::pipeline::MapError;
        match e {
            MapError::Data(d) => d.into(),
            MapError::Cancelled => Error::Cancelled,
            MapError::Option { option, message } => Error::usage(option, message),
            MapError::Invalid(m) => Error::Input(m),
            e @ MapError::Diverged { .. } => Error::Input(e.to_string()),
        }
    }
}

/// The message for an error and its causes as glace prints it: the causes joined by ": ",
/// each said once (a message that already ends with its cause's text does not repeat it).
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
/// let e = glace::Error::Write { path: "out.txt".into(), source: io };
/// assert_eq!(glace::error_message(&e), "out.txt: No such file");
/// ```
pub fn error_message(e: &(dyn std::error::Error + 'static)) -> String {
    chain_message(std::iter::successors(Some(e), |e| e.source()))
}

/// [`error_message`] over a chain of errors, outermost first (as `anyhow::Error::chain` gives it).
pub fn chain_message<'a>(mut chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut s = chain.next().map(|e| e.to_string()).unwrap_or_default();
    for cause in chain {
        let c = cause.to_string();
        if !s.ends_with(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

/// Results of the API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
