/// Errors of the read path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query is wrong or exceeds a limit (400, Loki's text).
    #[error("{0}")]
    BadQuery(String),
    /// Reading chunks failed.
    #[error("storage: {0}")]
    Storage(#[from] fenrir_storage::Error),
    /// The label index failed.
    #[error("index: {0}")]
    Index(#[from] fenrir_index::Error),
    /// A stored chunk does not decode.
    #[error("chunk: {0}")]
    Chunk(#[from] fenrir_chunk::Error),
    /// The query was abandoned (timed out or its client went away) and stopped early.
    #[error("query cancelled")]
    Cancelled,
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<fenrir_logql::Error> for Error {
    fn from(e: fenrir_logql::Error) -> Self {
        Error::BadQuery(e.to_string())
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
