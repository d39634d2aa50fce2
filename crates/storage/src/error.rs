/// Errors from object stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object has this key.
    #[error("object not found: {key}")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The key (or list prefix) breaks the key rules of [`crate::validate_key`].
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A ranged read that does not lie within the object.
    #[error("range {start}..{end} is outside object {key} of {size} bytes")]
    InvalidRange {
        /// The object read.
        key: String,
        /// Requested start offset.
        start: u64,
        /// Requested end offset (exclusive).
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// A local filesystem operation failed.
    #[error("storage io error on {key}: {source}")]
    Io {
        /// The key (or prefix) being worked on.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote store could not be reached or refused for now (throttling, 5xx, timeout).
    #[error("object store unavailable: {message}")]
    Unavailable {
        /// What the store or transport said.
        message: String,
    },
    /// A remote store refused the request for good (access denied, missing bucket, bad
    /// configuration): retrying the same call will not help.
    #[error("object store refused the request for {key}: {message}")]
    Refused {
        /// The key (or prefix) being worked on.
        key: String,
        /// What the store said.
        message: String,
    },
    /// Store settings that cannot work (empty bucket name, part size below S3's minimum).
    #[error("invalid object store settings: {message}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl Error {
    /// Whether trying the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            Error::NotFound { .. }
            | Error::InvalidKey { .. }
            | Error::InvalidRange { .. }
            | Error::Refused { .. }
            | Error::InvalidConfig { .. } => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        let io = |kind| Error::Io {
            key: "k".into(),
            source: std::io::Error::from(kind),
        };
        assert!(Error::Unavailable {
            message: "503".into()
        }
        .is_retryable());
        assert!(io(std::io::ErrorKind::TimedOut).is_retryable());
        assert!(!io(std::io::ErrorKind::PermissionDenied).is_retryable());
        assert!(!Error::NotFound { key: "k".into() }.is_retryable());
        assert!(!Error::Refused {
            key: "k".into(),
            message: "AccessDenied".into()
        }
        .is_retryable());
        assert_eq!(
            Error::NotFound { key: "a/b".into() }.to_string(),
            "object not found: a/b"
        );
    }
}
