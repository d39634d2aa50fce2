//! One stream's unflushed data: an unordered head of raw entries, and sealed chunks
//! waiting for the next flush.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use fenrir_chunk::{ChunkBuilder, EncodedChunk};
use fenrir_common::{Entry, LabelSet, Timestamp};

use crate::Result;

/// A chunk sealed from a head, held in memory until a flush writes it out.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub(crate) chunk: Arc<EncodedChunk>,
    /// The oldest WAL segment holding any of its entries.
    pub(crate) min_wal_segment: u64,
    pub(crate) sealed_at: Instant,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) labels: LabelSet,
    pub(crate) head: Vec<Entry>,
    head_bytes: usize,
    head_min_wal_segment: u64,
    head_started: Instant,
    pub(crate) last_append: Instant,
    /// The highest timestamp ever accepted: the out-of-order window hangs from it.
    pub(crate) max_ts: Timestamp,
    /// Hashes of the head's entries, so a retried batch is stored once.
    head_hashes: HashSet<u64>,
    pub(crate) sealed: Vec<Sealed>,
}

/// What the head must hold before it is sealed, and how hard to compress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealPolicy {
    pub(crate) head_max_bytes: usize,
    pub(crate) block_bytes: usize,
    pub(crate) zstd_level: i32,
}

impl Stream {
    pub(crate) fn new(labels: LabelSet) -> Self {
        let now = Instant::now();
        Stream {
            labels,
            head: Vec::new(),
            head_bytes: 0,
            head_min_wal_segment: u64::MAX,
            head_started: now,
            last_append: now,
            max_ts: Timestamp::MIN,
            head_hashes: HashSet::new(),
            sealed: Vec::new(),
        }
    }

    /// Appends entries that came from WAL segment `wal_segment`; exact duplicates of an
    /// entry already in the head are dropped. Seals the head when it is full.
    pub(crate) fn append(
        &mut self,
        entries: Vec<Entry>,
        wal_segment: u64,
        policy: SealPolicy,
    ) -> Result<usize> {
        let mut appended = 0;
        for e in entries {
            if !self.head_hashes.insert(entry_hash(&e)) {
                continue;
            }
            if self.head.is_empty() {
                self.head_started = Instant::now();
            }
            self.head_bytes += entry_bytes(&e);
            self.max_ts = self.max_ts.max(e.ts);
            self.head_min_wal_segment = self.head_min_wal_segment.min(wal_segment);
            self.head.push(e);
            appended += 1;
            if self.head_bytes >= policy.head_max_bytes {
                self.seal(policy)?;
            }
        }
        if appended > 0 {
            self.last_append = Instant::now();
        }
        Ok(appended)
    }

    /// Turns the head into a sealed chunk (no-op on an empty head).
    pub(crate) fn seal(&mut self, policy: SealPolicy) -> Result<()> {
        if self.head.is_empty() {
            return Ok(());
        }
        let mut head = std::mem::take(&mut self.head);
        head.sort_by_key(|e| e.ts);
        let mut builder = ChunkBuilder::new(&self.labels, policy.block_bytes);
        for e in &head {
            builder.push(e.ts, &e.line, &e.structured_metadata);
        }
        let chunk = builder.finish(policy.zstd_level)?;
        self.sealed.push(Sealed {
            chunk: Arc::new(chunk),
            min_wal_segment: self.head_min_wal_segment,
            sealed_at: Instant::now(),
        });
        self.head_bytes = 0;
        self.head_min_wal_segment = u64::MAX;
        self.head_hashes.clear();
        Ok(())
    }

    /// Whether the head is due for sealing by age or idleness.
    pub(crate) fn head_due(
        &self,
        now: Instant,
        max_age: std::time::Duration,
        idle: std::time::Duration,
    ) -> bool {
        !self.head.is_empty()
            && (now.duration_since(self.head_started) >= max_age
                || now.duration_since(self.last_append) >= idle)
    }

    /// The oldest WAL segment this stream still needs.
    pub(crate) fn min_wal_segment(&self) -> u64 {
        self.sealed
            .iter()
            .map(|s| s.min_wal_segment)
            .fold(self.head_min_wal_segment, u64::min)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty() && self.sealed.is_empty()
    }
}

/// Line plus structured-metadata bytes: what Loki counts as an entry's size.
pub(crate) fn entry_bytes(e: &Entry) -> usize {
    e.line.len()
        + e.structured_metadata
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

fn entry_hash(e: &Entry) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&e.ts.to_le_bytes());
    h.update(&(e.line.len() as u64).to_le_bytes());
    h.update(e.line.as_bytes());
    for (k, v) in &e.structured_metadata {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.digest()
}
