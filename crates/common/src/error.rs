/// Errors from building the shared types out of untrusted input.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A regex matcher that does not compile (RE2 syntax, fully anchored).
    #[error("error parsing regexp: {0}")]
    InvalidRegex(String),
    /// A tenant ID Loki would refuse.
    #[error("{0}")]
    InvalidTenant(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
