use std::path::PathBuf;
use std::sync::Arc;

/// Errors from opening, appending to and maintaining the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a WAL file or directory failed.
    #[error("wal io error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing a batch failed; every caller in that batch gets the same error.
    /// The record is not durable. Later appends may succeed if the disk recovers.
    #[error("wal append failed: {0}")]
    Append(#[source] Arc<std::io::Error>),
    /// The record is larger than `max_record_bytes`.
    #[error("wal record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Size of the rejected record.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Empty records are refused so that a zero-filled tail can never look like valid data.
    #[error("wal record is empty")]
    EmptyRecord,
    /// A segment file whose header is neither ours nor torn (wrong magic or unknown version).
    #[error("wal segment {} has an invalid header: {reason}", path.display())]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The options cannot work.
    #[error("invalid wal options: {0}")]
    InvalidOptions(String),
    /// The writer thread has stopped (after [`crate::Wal::shutdown`]).
    #[error("wal is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
