//! The one error type of the benchmark tool.

use std::path::PathBuf;

/// What can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot encode a push request: {0}")]
    Encode(String),
    #[error("http {url}: {message}")]
    Http { url: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

pub(crate) type Result<T> = std::result::Result<T, BenchError>;
