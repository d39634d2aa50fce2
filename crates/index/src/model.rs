/// Where one chunk lives and what it holds, as recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// Unique per chunk within a tenant (assigned by ingest).
    pub chunk_id: u64,
    /// The segment object holding the chunk.
    pub object_key: String,
    /// Byte offset of the chunk inside the segment object.
    pub offset: u64,
    /// Length of the chunk in bytes.
    pub len: u64,
    /// Smallest entry timestamp, inclusive (ns).
    pub min_ts: i64,
    /// Largest entry timestamp, inclusive (ns).
    pub max_ts: i64,
    /// Number of entries.
    pub entries: u32,
    /// Uncompressed size of the lines.
    pub raw_bytes: u64,
}

impl ChunkRef {
    /// Whether the chunk has entries inside `[start, end]` (both inclusive).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.max_ts >= start && self.min_ts <= end
    }
}

/// Totals over the chunks of matching streams that overlap a time range (Loki's
/// `/index/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Streams with at least one overlapping chunk.
    pub streams: u64,
    /// Overlapping chunks.
    pub chunks: u64,
    /// Entries in those chunks.
    pub entries: u64,
    /// Uncompressed bytes in those chunks.
    pub bytes: u64,
}

impl IndexStats {
    pub(crate) fn add_chunk(&mut self, chunk: &ChunkRef) {
        self.chunks += 1;
        self.entries += u64::from(chunk.entries);
        self.bytes = self.bytes.saturating_add(chunk.raw_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(min_ts: i64, max_ts: i64) -> ChunkRef {
        ChunkRef {
            chunk_id: 1,
            object_key: "k".into(),
            offset: 0,
            len: 1,
            min_ts,
            max_ts,
            entries: 3,
            raw_bytes: 10,
        }
    }

    #[test]
    fn overlap_bounds_are_inclusive() {
        let c = chunk(10, 20);
        assert!(c.overlaps(20, 30));
        assert!(c.overlaps(0, 10));
        assert!(c.overlaps(12, 13));
        assert!(c.overlaps(0, 100));
        assert!(!c.overlaps(21, 30));
        assert!(!c.overlaps(0, 9));
    }

    #[test]
    fn stats_accumulate_chunks() {
        let mut s = IndexStats::default();
        s.add_chunk(&chunk(1, 2));
        s.add_chunk(&chunk(3, 4));
        assert_eq!(
            s,
            IndexStats {
                streams: 0,
                chunks: 2,
                entries: 6,
                bytes: 20
            }
        );
    }
}
