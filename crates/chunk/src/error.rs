/// Errors from encoding or decoding chunks and segments.
///
/// Decoding untrusted or corrupt bytes always ends in one of these, never in a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input ends before a structure it declares.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// A magic number does not match: these bytes are not ours.
    #[error("bad magic in {what}")]
    BadMagic {
        /// The structure being read.
        what: &'static str,
    },
    /// A format version this build cannot read.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion {
        /// The structure being read.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A stored CRC32C does not match the bytes it covers.
    #[error("checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The structure being read.
        what: &'static str,
        /// The checksum found in the input.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// The bytes are well framed but their content is inconsistent.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// The structure being read.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A declared or produced size is over its limit.
    #[error("{what} of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The thing being sized.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A block index past the end of the chunk's directory.
    #[error("block {index} out of range: chunk has {blocks} blocks")]
    BlockOutOfRange {
        /// The index asked for.
        index: usize,
        /// Number of blocks in the chunk.
        blocks: usize,
    },
    /// Chunks given to `EncodedChunk::concat` are not of one stream in time order.
    #[error("cannot concatenate chunks: {0}")]
    Concat(&'static str),
    /// A chunk must hold at least one entry.
    #[error("chunk has no entries")]
    EmptyChunk,
    /// zstd failed to compress or decompress a block.
    #[error("zstd {op} failed: {source}")]
    Zstd {
        /// `compress` or `decompress`.
        op: &'static str,
        /// The error zstd reported.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
