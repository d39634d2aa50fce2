use crate::ParseError;

/// Errors of parsing and evaluating LogQL. Every variant is a client error (HTTP 400)
/// whose `Display` is the text Loki answers with.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The query does not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The query parses but cannot be evaluated as asked (pipeline errors, limits,
    /// unsupported forms), with Loki's message.
    #[error("{0}")]
    Query(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
