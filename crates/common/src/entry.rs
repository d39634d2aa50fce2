use crate::Timestamp;

/// One log entry of a stream: timestamp, line and structured metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The log line, as pushed.
    pub line: String,
    /// Structured metadata in the order it was pushed (Loki keeps push order).
    pub structured_metadata: Vec<(String, String)>,
}

impl Entry {
    /// An entry without structured metadata.
    pub fn new(ts: Timestamp, line: impl Into<String>) -> Self {
        Entry {
            ts,
            line: line.into(),
            structured_metadata: Vec::new(),
        }
    }
}
