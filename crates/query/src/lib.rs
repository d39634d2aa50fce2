//! Fenrir's read path.
//!
//! A query resolves its selector to streams through the label index (flushed data) and
//! [`RecentData`] (unflushed data, provided by the ingester through the server), reads the
//! chunks overlapping its range, and runs the LogQL pipeline over them once. Log queries
//! keep only the best `limit` entries in memory; metric queries keep only the evaluator's
//! per-step accumulators.

mod detected;
mod engine;
mod error;
mod logs;
mod patterns;
mod samples;
mod scan;
mod source;
mod volume;

pub use detected::{DetectedField, DetectedLabel, FieldParser, FieldType};
pub use engine::{Engine, SeriesStats};
pub use error::{Error, Result};
pub use logs::{Direction, LogQuery, LogResult, ResultEntry, ResultStream};
pub use patterns::{PatternQuery, PatternResult};
pub use source::{RecentData, RecentStream};
pub use volume::{VolumeAggregation, VolumeQuery, VolumeSeries};
