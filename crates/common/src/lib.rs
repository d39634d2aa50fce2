//! Fenrir's shared vocabulary: the small types every other crate speaks.
//!
//! Nothing here does I/O. Keep it tiny: a change here recompiles the whole workspace.

mod entry;
mod error;
mod labels;
mod matcher;
mod quote;
mod regex_syntax;
mod tenant;
pub mod time;

pub use entry::Entry;
pub use error::{Error, Result};
pub use labels::{LabelSet, LabelsBuilder};
pub use matcher::{MatchOp, Matcher};
pub use quote::{go_quote, write_go_quoted};
pub use regex_syntax::go_regex_syntax;
pub use tenant::Tenant;

/// Nanoseconds since the Unix epoch, as Loki stores them.
pub type Timestamp = i64;

/// The fingerprint of a stream: a 64-bit hash of its canonical label string.
pub type Fingerprint = u64;
