use std::sync::Arc;

use fenrir_chunk::EncodedChunk;
use fenrir_common::{Entry, LabelSet, Matcher, Tenant, Timestamp};

/// A stream's data that is not in the object store yet.
#[derive(Debug, Clone)]
pub struct RecentStream {
    /// The stream's labels.
    pub labels: LabelSet,
    /// Sealed chunks still in memory.
    pub chunks: Vec<Arc<EncodedChunk>>,
    /// Head entries in the asked range, sorted by timestamp.
    pub head: Vec<Entry>,
}

/// Unflushed data, implemented by the ingester and passed in by the server, so that the
/// read path never depends on the write path.
pub trait RecentData: Send + Sync + 'static {
    /// Streams of `tenant` matching every matcher with data overlapping `[start, end)`.
    fn streams(
        &self,
        tenant: &Tenant,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<RecentStream>;
}
