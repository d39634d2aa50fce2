//! The one error type of this crate; `Display` is Loki's message text.

/// Why a push request was refused as a whole. `Display` gives Loki's message text and
/// [`PushError::status`] the HTTP status Loki answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The body (or its content-decoded form) is larger than `max_recv_msg_size`.
    #[error("request body too large: message size too large than max ({size} vs {max})")]
    BodyTooLarge {
        /// Bytes seen (at least `max + 1` when decoding stopped at the cap).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The snappy-decoded body would be larger than `max_decompressed_size`.
    #[error(
        "request body too large: decompressed message size too large than max ({size} vs {max})"
    )]
    DecompressedTooLarge {
        /// The decoded size announced by the snappy header.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// More streams, entries or structured-metadata pairs than one push may hold.
    #[error("request body too large: {count} {what} exceed the limit of {max} per push request")]
    TooManyItems {
        /// What was counted.
        what: &'static str,
        /// How many the request holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A `Content-Encoding` other than none, snappy, gzip or deflate.
    #[error("Content-Encoding \"{0}\" not supported")]
    UnsupportedEncoding(String),
    /// A missing or malformed `Content-Type` (Go's `mime` error text).
    #[error("{0}")]
    MediaType(String),
    /// An OTLP `Content-Type` other than protobuf or JSON.
    #[error("content type: {0} is not supported")]
    UnsupportedContentType(String),
    /// The body could not be decoded (decompression, protobuf or JSON).
    #[error("{0}")]
    InvalidBody(String),
    /// A stream's label string does not parse; the whole request is refused.
    #[error("couldn't parse labels: {0}")]
    InvalidLabels(String),
    /// A structured-metadata name that normalises to nothing usable.
    #[error("{0}")]
    InvalidStructuredMetadataName(String),
    /// The request holds no stream at all.
    #[error("error at least one valid stream is required for ingestion")]
    NoStreams,
}

impl PushError {
    /// The HTTP status Loki answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            PushError::BodyTooLarge { .. }
            | PushError::DecompressedTooLarge { .. }
            | PushError::TooManyItems { .. } => 413,
            PushError::NoStreams => 422,
            PushError::UnsupportedEncoding(_)
            | PushError::MediaType(_)
            | PushError::UnsupportedContentType(_)
            | PushError::InvalidBody(_)
            | PushError::InvalidLabels(_)
            | PushError::InvalidStructuredMetadataName(_) => 400,
        }
    }
}

/// Result with this crate's [`PushError`].
pub type Result<T, E = PushError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_statuses_match_loki() {
        let cases = [
            (
                PushError::BodyTooLarge { size: 11, max: 10 },
                413,
                "request body too large: message size too large than max (11 vs 10)",
            ),
            (
                PushError::UnsupportedEncoding("br".into()),
                400,
                "Content-Encoding \"br\" not supported",
            ),
            (
                PushError::MediaType("mime: no media type".into()),
                400,
                "mime: no media type",
            ),
            (
                PushError::InvalidLabels("1:2: parse error: x".into()),
                400,
                "couldn't parse labels: 1:2: parse error: x",
            ),
            (
                PushError::NoStreams,
                422,
                "error at least one valid stream is required for ingestion",
            ),
        ];
        for (err, status, text) in cases {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.to_string(), text);
        }
    }
}
