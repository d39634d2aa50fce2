//! Fenrir's write path.
//!
//! A validated push is appended to the WAL (the 204 waits for its fsync), then applied to
//! per-stream heads. A head is sealed into a compressed chunk when it reaches its size or
//! age; sealed chunks of one tenant are packed into one segment object per flush, written
//! to the object store, and recorded in the label index. Only then are the WAL segments
//! they came from released.
//!
//! Recent (unflushed) data is readable through [`Ingester::recent_streams`].
//!
//! Loki's stateful write limits live here too, per tenant as [`PushLimits`]: the tenant
//! ingestion rate ([`Ingester::check_ingestion_rate`], whole request), active streams
//! and the per-stream rate ([`Ingester::push_with_limits`], per stream and entry).

mod budget;
mod error;
mod flush;
mod ingester;
mod limits;
mod rate;
mod rebuild;
mod record;
mod stream;

pub use error::{Error, ErrorKind, Result};
pub use flush::{FlushBacklog, FlushStats};
pub use ingester::{IngestConfig, Ingester, RecentChunk, RecentStream, DEFAULT_MEMORY_BUDGET};
pub use limits::{DiscardReason, Discarded, PushLimits, Refused};
pub use rebuild::{rebuild_index, RebuildStats};
