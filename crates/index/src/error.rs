use fenrir_common::Fingerprint;

/// Errors from the label index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying sled database failed (I/O, corruption detected by sled).
    #[error("index storage error: {0}")]
    Storage(#[from] sled::Error),
    /// The on-disk key layout was written by another version of Fenrir.
    #[error("incompatible index format version {found}, this build supports {supported}")]
    IncompatibleVersion {
        /// Version found in the `meta` tree (0 when missing from a non-empty index).
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A stored entry could not be decoded.
    #[error("corrupt index entry in tree {tree}: {reason}")]
    Corrupt {
        /// The sled tree holding the entry.
        tree: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Two different label sets of one tenant hash to the same fingerprint.
    #[error(
        "fingerprint collision for tenant {tenant}: {fingerprint:016x} is {existing} and {new}"
    )]
    FingerprintCollision {
        /// The tenant.
        tenant: String,
        /// The shared fingerprint.
        fingerprint: Fingerprint,
        /// Canonical labels already indexed.
        existing: String,
        /// Canonical labels being added.
        new: String,
    },
    /// A string is too long for its length prefix.
    #[error("{what} too long to index: {len} bytes")]
    TooLong {
        /// What the string is (label name, object key...).
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
