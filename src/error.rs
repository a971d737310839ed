//! The one error type every fallible public call returns.

use std::path::PathBuf;

/// Everything that can go wrong in wgml, in variants a caller can match.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request; `found` lists every adapter seen.
    #[error("no suitable GPU adapter ({wanted}); adapters found: {found}")]
    NoAdapter {
        /// What was asked for (backend, name filter).
        wanted: String,
        /// Every adapter enumerated, one per entry, or "none".
        found: String,
    },
    /// The adapter refused to create a device.
    #[error("could not open the GPU device: {0}")]
    RequestDevice(String),
    /// An environment variable held a value wgml does not understand.
    #[error("{var}={value} is not valid: {expected}")]
    BadEnv {
        /// The variable's name.
        var: &'static str,
        /// The value it held.
        value: String,
        /// What it may hold.
        expected: String,
    },
    /// The GPU reported an error (validation, out of memory, device lost).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A buffer could not be read back from the GPU.
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// Tensor shapes do not fit the operation.
    #[error("{0}")]
    Shape(String),
    /// A request exceeds one of the device's limits.
    #[error(
        "{what} needs {needed} but the device's {limit} is {max}; use smaller batches, fewer \
         samples or narrower layers to stay under it"
    )]
    Limit {
        /// What was being created.
        what: String,
        /// How much it needs.
        needed: u64,
        /// The name of the wgpu limit.
        limit: &'static str,
        /// The device's value for that limit.
        max: u64,
    },
    /// A class-index target lies outside `0..classes` (PyTorch's wording).
    #[error("Target {0} is out of bounds.")]
    TargetOutOfBounds(i64),
    /// An invalid hyper-parameter or argument (PyTorch's wording where it has one).
    #[error("{0}")]
    InvalidArgument(String),
    /// A data file is missing, unreadable or malformed.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The training loss became NaN or infinite.
    #[error("loss is {value} at epoch {epoch}, step {step}; training stopped")]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The offending value.
        value: f32,
    },
    /// An I/O error not tied to a data file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Data`] for a file that could not be read: "file not found", or the reason.
    pub fn reading(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read: {e}"),
        };
        Self::data(path, reason)
    }

    /// A [`Error::Shape`].
    pub fn shape(msg: impl Into<String>) -> Self {
        Error::Shape(msg.into())
    }

    /// A [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
