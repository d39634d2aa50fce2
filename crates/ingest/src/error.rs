use crate::limits::Refused;

/// Errors of the write path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Entries refused by the ingester's limits (tenant rate, active streams, per-stream
    /// rate, out-of-order window); the others of the push were stored. The text is Loki's.
    #[error("{}", .0.message)]
    Refused(Box<Refused>),
    /// The WAL could not take the write (disk full, I/O error): the push is not
    /// acknowledged and the client should retry (503).
    #[error("wal: {0}")]
    Wal(#[from] fenrir_wal::Error),
    /// Writing chunks to the object store failed.
    #[error("storage: {0}")]
    Storage(#[from] fenrir_storage::Error),
    /// The label index failed.
    #[error("index: {0}")]
    Index(#[from] fenrir_index::Error),
    /// A chunk or segment could not be encoded or decoded.
    #[error("chunk: {0}")]
    Chunk(#[from] fenrir_chunk::Error),
    /// A WAL record that does not decode (only during replay).
    #[error("corrupt wal record: {0}")]
    CorruptRecord(&'static str),
    /// Too many sealed chunks wait for the object store (slow or down): the push is not
    /// stored and the client should retry later (503).
    #[error("ingester backlog full: {unflushed_bytes} bytes of chunks wait for the object store (limit {limit}); retry later")]
    BacklogFull {
        /// Compressed bytes waiting.
        unflushed_bytes: u64,
        /// `max_unflushed_bytes`.
        limit: u64,
    },
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, for the one status mapping in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client sent entries the limits refuse (400).
    BadRequest,
    /// A rate or stream limit refused entries; retry later (429).
    TooManyRequests,
    /// The server cannot store data right now (WAL or storage failure); retry later (503).
    Unavailable,
    /// A bug or an unexpected failure (500).
    Internal,
}

impl Error {
    /// Whether the client caused it (a 4xx) rather than the server being unable (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::BadRequest | ErrorKind::TooManyRequests
        )
    }

    /// The classification the API maps to a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Refused(r) if r.limited => ErrorKind::TooManyRequests,
            Error::Refused(_) => ErrorKind::BadRequest,
            Error::Wal(_) | Error::Storage(_) | Error::Index(_) | Error::BacklogFull { .. } => {
                ErrorKind::Unavailable
            }
            Error::Chunk(_) | Error::CorruptRecord(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The refused entries, when that is what this error is.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            Error::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
