/// Errors of the write path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Entries rejected by the ingester's own checks (out-of-order window); the text is
    /// Loki's and the status 400.
    #[error("{0}")]
    Rejected(String),
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

impl Error {
    /// Whether the client caused it (400) rather than the server being unable (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
