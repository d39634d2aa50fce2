use std::path::PathBuf;

/// Errors from reading, parsing and validating Fenrir's configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The configuration file is larger than any sane configuration.
    #[error("config file {path} is {size} bytes, larger than the {max} byte limit")]
    TooLarge {
        /// The file that was asked for.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// The YAML is malformed, names an unknown key or holds a value of the wrong type.
    /// The message names the key path (`limits_config.max_line_size: ...`) and the line.
    #[error("{0}")]
    Parse(String),
    /// A duration that is not `1h30m`-style (units ns, us, ms, s, m, h, d, w, y).
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A byte size that is not `256KB`-style.
    #[error("invalid byte size {input:?}: {reason}")]
    InvalidByteSize {
        /// The text that was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The configuration parsed but makes no sense; every problem found is listed.
    #[error("invalid configuration: {}", .problems.join("; "))]
    Invalid {
        /// One actionable message per problem, each naming the key.
        problems: Vec<String>,
    },
    /// A tenant's entry in the runtime overrides file is unusable.
    #[error("overrides for tenant {tenant:?}: {message}")]
    Override {
        /// The tenant key in the `overrides` map.
        tenant: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
