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
    /// A sample still carrying `__error__` reached a step of a metric query (Loki's
    /// `ErrPipeline`); `series` is the sample's label string.
    #[error(
        "pipeline error: '{kind}' for series: '{series}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    )]
    Pipeline {
        /// The `__error__` value, e.g. `JSONParserErr`.
        kind: String,
        /// The series labels, `{a="1", b="2"}`.
        series: String,
    },
    /// The result has more series than `max_query_series` allows.
    #[error(
        "maximum number of series ({0}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    )]
    SeriesLimit(usize),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
