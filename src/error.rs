//! One error type for the whole library. Every message names where it happened
//! (a file, a file:line, a parameter name) so a script author can act on it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plain message, already saying what went wrong and where.
    #[error("{0}")]
    Msg(String),
    /// A malformed line in a data file.
    #[error("{file}:{line}: {msg}")]
    Data { file: String, line: usize, msg: String },
    /// An I/O failure on a named path.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The user pressed Ctrl-C; long operations stop cleanly with this.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }
    pub fn data(file: impl AsRef<Path>, line: usize, msg: impl Into<String>) -> Self {
        Error::Data {
            file: file.as_ref().display().to_string(),
            line,
            msg: msg.into(),
        }
    }
    pub fn file(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            msg: err.to_string(),
        }
    }
}

/// `bail!("...")` returns an `Error::Msg` built with `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::Msg(format!($($arg)*))) };
}
