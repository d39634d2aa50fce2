//! One stream's unflushed data: the head (the chunk being built) and sealed chunks waiting
//! for the next flush.
//!
//! The head holds no allocation per line. New entries go into one flat open block (a text
//! buffer plus a fixed-size slot per entry). When the open block reaches the block size it
//! is sorted and compressed into a one-block chunk, a *part*; sealing joins the parts into
//! one chunk without recompressing them. A stream therefore holds at most one raw block, and
//! everything else compressed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fenrir_chunk::{ChunkBuilder, ChunkReader, EncodedChunk};
use fenrir_common::{Entry, LabelSet, Timestamp};
use fenrir_proto::PushEntry;

use crate::Result;

/// A chunk sealed from a head, held in memory until a flush writes it out.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub(crate) chunk: Arc<EncodedChunk>,
    /// The oldest WAL segment holding any of its entries.
    pub(crate) min_wal_segment: u64,
    pub(crate) sealed_at: Instant,
}

/// What the head must hold before it is sealed, and how hard to compress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealPolicy {
    pub(crate) head_max_bytes: usize,
    pub(crate) block_bytes: usize,
    pub(crate) zstd_level: i32,
}

/// Bytes held by all streams of an ingester: everything (open blocks, parts and sealed
/// chunks), and of that the compressed part (parts and sealed chunks).
#[derive(Debug, Default)]
pub(crate) struct MemoryGauge {
    total: AtomicUsize,
    compressed: AtomicUsize,
}

impl MemoryGauge {
    pub(crate) fn get(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn compressed(&self) -> usize {
        self.compressed.load(Ordering::Relaxed)
    }

    fn adjust(counter: &AtomicUsize, from: usize, to: usize) {
        if to >= from {
            counter.fetch_add(to - from, Ordering::Relaxed);
        } else {
            counter.fetch_sub(from - to, Ordering::Relaxed);
        }
    }
}

/// Where a stream's memory is, for the budget that picks what to cut or seal.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Footprint {
    /// Bytes allocated for the open block.
    pub(crate) open: usize,
    /// Of which in use.
    pub(crate) open_used: usize,
    /// Compressed bytes of the head's parts.
    pub(crate) parts: usize,
    /// Compressed bytes of sealed chunks.
    pub(crate) sealed: usize,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) labels: LabelSet,
    head: Head,
    pub(crate) last_append: Instant,
    /// The highest timestamp ever accepted: the out-of-order window hangs from it.
    pub(crate) max_ts: Timestamp,
    pub(crate) sealed: Vec<Sealed>,
    gauge: Arc<MemoryGauge>,
    /// What this stream last added to `gauge`: total and compressed.
    accounted: (usize, usize),
}

/// The chunk being built: compressed parts plus the open block.
#[derive(Debug, Default)]
struct Head {
    parts: Vec<Arc<EncodedChunk>>,
    parts_raw: usize,
    parts_stored: usize,
    /// The oldest WAL segment holding an entry of the parts.
    parts_min_wal: Option<u64>,
    open: OpenBlock,
    started: Option<Instant>,
    /// The newest timestamp in the head: an entry above it cannot be a duplicate.
    max_ts: Option<Timestamp>,
    /// Hashes of every head entry, built when the first entry that could be a duplicate
    /// arrives (in-order data never needs them).
    hashes: Option<HashSet<u64>>,
}

/// Entries in arrival order, flat: lines and metadata in one buffer, a slot per entry.
#[derive(Debug, Default)]
struct OpenBlock {
    text: Vec<u8>,
    slots: Vec<Slot>,
    /// Name and value lengths of every metadata pair, in order.
    metadata_lens: Vec<u32>,
    raw_bytes: usize,
    /// Whether the slots are in timestamp order.
    sorted: bool,
    /// The oldest WAL segment holding an entry of the block.
    min_wal: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ts: Timestamp,
    /// Offset of the line in `text`; the metadata text follows it.
    start: u32,
    line_len: u32,
    /// First of this entry's pairs in `metadata_lens` (two lengths per pair).
    first_pair: u32,
    pairs: u32,
}

/// One entry borrowed from an open block.
struct SlotEntry<'a> {
    ts: Timestamp,
    line: &'a str,
    metadata: Vec<(&'a str, &'a str)>,
}

impl OpenBlock {
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes allocated, used or not.
    fn memory(&self) -> usize {
        self.text.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.metadata_lens.capacity() * 4
    }

    /// Bytes in use: what compressing the block early would save.
    fn used(&self) -> usize {
        self.text.len()
            + self.slots.len() * std::mem::size_of::<Slot>()
            + self.metadata_lens.len() * 4
    }

    /// Makes room for a batch of entries at once, at most up to the block size (plus the
    /// entry that crosses it): one allocation per batch instead of a doubling series, which
    /// with many streams (blocks freed by early compression and grown again on every
    /// batch) cost more in malloc and copies than the appends themselves, and no slack
    /// past the block size.
    fn reserve(&mut self, entries: &[PushEntry], block_bytes: usize) {
        let (mut text, mut largest, mut pairs) = (0usize, 0usize, 0usize);
        for e in entries {
            let n = entry_bytes(e);
            text += n;
            largest = largest.max(n);
            pairs += e.structured_metadata.len();
        }
        let len = self.text.len();
        let room = block_bytes.saturating_sub(self.raw_bytes) + largest;
        let want = len + text.min(room);
        if want > self.text.capacity() {
            self.text.reserve_exact(want - len);
        }
        self.slots.reserve(entries.len());
        self.metadata_lens.reserve(pairs * 2);
    }

    fn push(&mut self, e: &PushEntry, wal_segment: u64) {
        self.min_wal = Some(self.min_wal.map_or(wal_segment, |m| m.min(wal_segment)));
        if let Some(last) = self.slots.last() {
            self.sorted &= e.ts >= last.ts;
        } else {
            self.sorted = true;
        }
        let start = self.text.len() as u32;
        self.text.extend_from_slice(e.line.as_bytes());
        let first_pair = (self.metadata_lens.len() / 2) as u32;
        for (k, v) in &e.structured_metadata {
            self.text.extend_from_slice(k.as_bytes());
            self.text.extend_from_slice(v.as_bytes());
            self.metadata_lens.push(k.len() as u32);
            self.metadata_lens.push(v.len() as u32);
        }
        self.slots.push(Slot {
            ts: e.ts,
            start,
            line_len: e.line.len() as u32,
            first_pair,
            pairs: e.structured_metadata.len() as u32,
        });
        self.raw_bytes += entry_bytes(e);
    }

    fn get(&self, slot: &Slot) -> SlotEntry<'_> {
        // The text was copied from `&str`s at these boundaries, so it is valid UTF-8.
        let str_at = |from: usize, len: usize| {
            std::str::from_utf8(&self.text[from..from + len]).unwrap_or_default()
        };
        let mut at = slot.start as usize;
        let line = str_at(at, slot.line_len as usize);
        at += slot.line_len as usize;
        let first = slot.first_pair as usize * 2;
        let lens = &self.metadata_lens[first..first + slot.pairs as usize * 2];
        let metadata = lens
            .chunks_exact(2)
            .map(|kv| {
                let (k, v) = (kv[0] as usize, kv[1] as usize);
                let pair = (str_at(at, k), str_at(at + k, v));
                at += k + v;
                pair
            })
            .collect();
        SlotEntry {
            ts: slot.ts,
            line,
            metadata,
        }
    }

    /// Sorts (stably, so entries with equal timestamps keep their arrival order) and
    /// compresses the block into a part; empties the block but keeps its buffers for the
    /// next one (freeing and growing them again for every block fragments the heap).
    fn compress(&mut self, labels: &LabelSet, policy: SealPolicy) -> Result<EncodedChunk> {
        if !self.sorted {
            self.slots.sort_by_key(|s| s.ts);
        }
        let mut builder = ChunkBuilder::new(labels, policy.block_bytes.max(self.raw_bytes));
        for slot in &self.slots {
            let e = self.get(slot);
            builder.push_entry(e.ts, e.line, e.metadata);
        }
        let chunk = builder.finish(policy.zstd_level)?;
        self.text.clear();
        self.slots.clear();
        self.metadata_lens.clear();
        self.raw_bytes = 0;
        Ok(chunk)
    }
}

impl Stream {
    pub(crate) fn new(labels: LabelSet, gauge: Arc<MemoryGauge>) -> Self {
        Stream {
            labels,
            head: Head::default(),
            last_append: Instant::now(),
            max_ts: Timestamp::MIN,
            sealed: Vec::new(),
            gauge,
            accounted: (0, 0),
        }
    }

    /// Appends entries that came from WAL segment `wal_segment`; exact duplicates of an
    /// entry already in the head are dropped. Cuts the open block and seals the head when
    /// they are full.
    pub(crate) fn append(
        &mut self,
        entries: Vec<PushEntry>,
        wal_segment: u64,
        policy: SealPolicy,
    ) -> Result<usize> {
        let result = self.append_inner(entries, wal_segment, policy);
        self.account();
        result
    }

    fn append_inner(
        &mut self,
        entries: Vec<PushEntry>,
        wal_segment: u64,
        policy: SealPolicy,
    ) -> Result<usize> {
        let mut appended = 0;
        self.head.open.reserve(&entries, policy.block_bytes);
        for e in &entries {
            if !self.is_new(e)? {
                continue;
            }
            let head = &mut self.head;
            head.started.get_or_insert_with(Instant::now);
            head.max_ts = Some(head.max_ts.map_or(e.ts, |m| m.max(e.ts)));
            head.open.push(e, wal_segment);
            self.max_ts = self.max_ts.max(e.ts);
            appended += 1;
            if self.head.open.raw_bytes >= policy.block_bytes {
                self.cut_block(policy)?;
            }
            if self.head_raw_bytes() >= policy.head_max_bytes {
                self.seal_inner(policy)?;
            }
        }
        if appended > 0 {
            self.last_append = Instant::now();
        }
        Ok(appended)
    }

    /// Whether `e` is not already in the head. Only entries at or below the head's newest
    /// timestamp can be duplicates; the first of those builds the hash set.
    fn is_new(&mut self, e: &PushEntry) -> Result<bool> {
        let head = &mut self.head;
        let maybe_duplicate = head.max_ts.is_some_and(|m| e.ts <= m);
        if head.hashes.is_none() {
            if !maybe_duplicate {
                return Ok(true);
            }
            head.hashes = Some(head_hashes(head)?);
        }
        let hashes = head.hashes.get_or_insert_with(HashSet::new);
        Ok(hashes.insert(entry_hash(
            e.ts,
            e.line.as_bytes(),
            e.structured_metadata
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        )))
    }

    fn head_raw_bytes(&self) -> usize {
        self.head.parts_raw + self.head.open.raw_bytes
    }

    /// Compresses the open block into a part of the head.
    fn cut_block(&mut self, policy: SealPolicy) -> Result<()> {
        if self.head.open.is_empty() {
            return Ok(());
        }
        let open_min_wal = self.head.open.min_wal.take();
        self.head.parts_min_wal = min_wal(self.head.parts_min_wal, open_min_wal);
        let mut part = self.head.open.compress(&self.labels, policy)?;
        // Parts stay in memory until the flush: no slack from the builder's estimate.
        part.bytes.shrink_to_fit();
        self.head.parts_raw += part.meta.raw_bytes as usize;
        self.head.parts_stored += part.bytes.len();
        self.head.parts.push(Arc::new(part));
        Ok(())
    }

    /// Compresses the open block now and frees its buffers, to save memory.
    pub(crate) fn cut_open_block(&mut self, policy: SealPolicy) -> Result<()> {
        let result = self.cut_block(policy);
        self.head.open = OpenBlock::default();
        self.account();
        result
    }

    /// Turns the head into a sealed chunk (no-op on an empty head) and frees the open
    /// block's buffers: this stream is idle, old, or being flushed to save memory.
    pub(crate) fn seal(&mut self, policy: SealPolicy) -> Result<()> {
        let result = self.seal_inner(policy);
        self.head.open = OpenBlock::default();
        self.account();
        result
    }

    fn seal_inner(&mut self, policy: SealPolicy) -> Result<()> {
        self.cut_block(policy)?;
        // The (now empty) open block keeps its buffers for the next chunk.
        let open = std::mem::take(&mut self.head.open);
        let head = std::mem::replace(
            &mut self.head,
            Head {
                open,
                ..Head::default()
            },
        );
        self.push_sealed(&head.parts, head.parts_min_wal, policy)
    }

    /// Turns the head's compressed parts into a sealed chunk, so that a flush can write
    /// them, and leaves the open block filling: the memory budget wants the compressed
    /// data out, not smaller blocks.
    pub(crate) fn seal_parts(&mut self, policy: SealPolicy) -> Result<()> {
        if self.head.open.is_empty() {
            return self.seal(policy);
        }
        let parts = std::mem::take(&mut self.head.parts);
        let parts_min_wal = self.head.parts_min_wal.take();
        self.head.parts_raw = 0;
        self.head.parts_stored = 0;
        // They covered the parts too; the next possible duplicate rebuilds them.
        self.head.hashes = None;
        let result = self.push_sealed(&parts, parts_min_wal, policy);
        self.account();
        result
    }

    fn push_sealed(
        &mut self,
        parts: &[Arc<EncodedChunk>],
        min_wal_segment: Option<u64>,
        policy: SealPolicy,
    ) -> Result<()> {
        let Some(min_wal_segment) = min_wal_segment else {
            return Ok(());
        };
        let chunk = match parts {
            [] => return Ok(()),
            [only] => only.clone(),
            parts => Arc::new(join_parts(&self.labels, parts, policy)?),
        };
        self.sealed.push(Sealed {
            chunk,
            min_wal_segment,
            sealed_at: Instant::now(),
        });
        Ok(())
    }

    /// Drops a sealed chunk once a flush has written it out.
    pub(crate) fn forget_sealed(&mut self, chunk: &Arc<EncodedChunk>) {
        self.sealed.retain(|s| !Arc::ptr_eq(&s.chunk, chunk));
        self.account();
    }

    /// Whether the head is due for sealing by age or idleness.
    pub(crate) fn head_due(&self, now: Instant, max_age: Duration, idle: Duration) -> bool {
        self.head.started.is_some_and(|started| {
            now.duration_since(started) >= max_age || now.duration_since(self.last_append) >= idle
        })
    }

    /// The oldest WAL segment this stream still needs.
    pub(crate) fn min_wal_segment(&self) -> u64 {
        let head = min_wal(self.head.parts_min_wal, self.head.open.min_wal);
        self.sealed
            .iter()
            .map(|s| s.min_wal_segment)
            .fold(head.unwrap_or(u64::MAX), u64::min)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.parts.is_empty() && self.head.open.is_empty() && self.sealed.is_empty()
    }

    pub(crate) fn footprint(&self) -> Footprint {
        Footprint {
            open: self.head.open.memory(),
            open_used: self.head.open.used(),
            parts: self.head.parts_stored,
            sealed: self.sealed.iter().map(|s| s.chunk.bytes.len()).sum(),
        }
    }

    /// The head's compressed parts overlapping `[start, end)`: readable as chunks.
    pub(crate) fn head_parts(&self, start: Timestamp, end: Timestamp) -> Vec<Arc<EncodedChunk>> {
        self.head
            .parts
            .iter()
            .filter(|p| p.meta.min_ts < end && p.meta.max_ts >= start)
            .cloned()
            .collect()
    }

    /// Open-block entries with `start <= ts < end`, sorted by timestamp.
    pub(crate) fn open_entries(&self, start: Timestamp, end: Timestamp) -> Vec<Entry> {
        let open = &self.head.open;
        let mut out: Vec<Entry> = open
            .slots
            .iter()
            .filter(|s| s.ts >= start && s.ts < end)
            .map(|s| {
                let e = open.get(s);
                Entry {
                    ts: e.ts,
                    line: e.line.to_owned(),
                    structured_metadata: e
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }
            })
            .collect();
        if !open.sorted {
            out.sort_by_key(|e| e.ts);
        }
        out
    }

    /// Brings the shared gauge up to date with this stream's memory.
    fn account(&mut self) {
        let f = self.footprint();
        let hashes = self
            .head
            .hashes
            .as_ref()
            .map_or(0, |h| h.capacity() * 2 * std::mem::size_of::<u64>());
        let compressed = f.parts + f.sealed;
        let total = f.open + compressed + hashes;
        MemoryGauge::adjust(&self.gauge.total, self.accounted.0, total);
        MemoryGauge::adjust(&self.gauge.compressed, self.accounted.1, compressed);
        self.accounted = (total, compressed);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        MemoryGauge::adjust(&self.gauge.total, self.accounted.0, 0);
        MemoryGauge::adjust(&self.gauge.compressed, self.accounted.1, 0);
    }
}

/// The parts of a head as one chunk: copied block by block when they follow each other
/// in time (the normal case), else decoded, merged and compressed again.
fn join_parts(
    labels: &LabelSet,
    parts: &[Arc<EncodedChunk>],
    policy: SealPolicy,
) -> Result<EncodedChunk> {
    let in_order = parts
        .windows(2)
        .all(|w| w[1].meta.min_ts >= w[0].meta.max_ts);
    if in_order {
        let refs: Vec<&EncodedChunk> = parts.iter().map(|p| &**p).collect();
        return Ok(EncodedChunk::concat(&refs)?);
    }
    let mut blocks = Vec::new();
    for part in parts {
        let reader = ChunkReader::open(&part.bytes)?;
        for i in 0..reader.blocks().len() {
            blocks.push(reader.decode_block(i)?);
        }
    }
    let mut entries: Vec<_> = blocks.iter().flat_map(|b| b.iter()).collect();
    entries.sort_by_key(|e| e.ts);
    let mut builder = ChunkBuilder::new(labels, policy.block_bytes);
    for e in &entries {
        builder.push_entry(e.ts, e.line, e.structured_metadata.iter());
    }
    Ok(builder.finish(policy.zstd_level)?)
}

/// Hashes of every entry in the head, parts included.
fn head_hashes(head: &Head) -> Result<HashSet<u64>> {
    let mut hashes = HashSet::new();
    for part in &head.parts {
        let reader = ChunkReader::open(&part.bytes)?;
        for i in 0..reader.blocks().len() {
            for e in &reader.decode_block(i)? {
                hashes.insert(entry_hash(
                    e.ts,
                    e.line.as_bytes(),
                    e.structured_metadata
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
                ));
            }
        }
    }
    for slot in &head.open.slots {
        let e = head.open.get(slot);
        hashes.insert(entry_hash(
            e.ts,
            e.line.as_bytes(),
            e.metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ));
    }
    Ok(hashes)
}

fn min_wal(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Line plus structured-metadata bytes: what Loki counts as an entry's size.
pub(crate) fn entry_bytes(e: &PushEntry) -> usize {
    e.bytes()
}

fn entry_hash<'a>(
    ts: Timestamp,
    line: &[u8],
    structured_metadata: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&ts.to_le_bytes());
    h.update(&(line.len() as u64).to_le_bytes());
    h.update(line);
    for (k, v) in structured_metadata {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: SealPolicy = SealPolicy {
        head_max_bytes: 4096,
        block_bytes: 512,
        zstd_level: 1,
    };

    fn stream() -> (Stream, Arc<MemoryGauge>) {
        let gauge = Arc::new(MemoryGauge::default());
        let labels = LabelSet::from_pairs([("app", "test")]);
        (Stream::new(labels, gauge.clone()), gauge)
    }

    fn entry(ts: i64) -> Entry {
        let mut e = Entry::new(ts, format!("line {ts} {}", "x".repeat((ts % 7) as usize)));
        if ts % 5 == 0 {
            e.structured_metadata = vec![
                ("trace_id".into(), format!("t{ts}")),
                ("k".into(), String::new()),
            ];
        }
        e
    }

    fn push_entries(entries: &[Entry]) -> Vec<PushEntry> {
        entries.iter().cloned().map(PushEntry::from).collect()
    }

    /// Everything the stream holds, as a query would read it.
    fn contents(s: &Stream) -> Vec<Entry> {
        let mut out = Vec::new();
        for c in s.sealed.iter().map(|s| &s.chunk).chain(&s.head.parts) {
            out.extend(fenrir_chunk::decode_all(&c.bytes).unwrap());
        }
        out.extend(s.open_entries(i64::MIN, i64::MAX));
        out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.line.cmp(&b.line)));
        out
    }

    #[test]
    fn in_order_entries_are_cut_into_parts_and_sealed_without_hashing() {
        let (mut s, gauge) = stream();
        let entries: Vec<Entry> = (0..700).map(entry).collect();
        assert_eq!(s.append(push_entries(&entries), 1, POLICY).unwrap(), 700);
        assert!(s.head.hashes.is_none(), "in-order data needs no hashes");
        assert!(!s.sealed.is_empty() && !s.head.parts.is_empty());
        assert!(s.head.open.raw_bytes < POLICY.block_bytes);
        for sealed in &s.sealed {
            // Parts joined without recompression: several blocks per sealed chunk.
            let reader = ChunkReader::open(&sealed.chunk.bytes).unwrap();
            assert!(reader.blocks().len() > 1);
        }
        assert_eq!(contents(&s), entries);
        let f = s.footprint();
        assert_eq!(gauge.get(), f.open + f.parts + f.sealed);
        assert_eq!(gauge.compressed(), f.parts + f.sealed);

        s.seal(POLICY).unwrap();
        assert!(s.head.parts.is_empty() && s.head.open.is_empty());
        assert_eq!(contents(&s), entries);
        assert_eq!(s.min_wal_segment(), 1);
        let chunks: Vec<_> = s.sealed.iter().map(|c| c.chunk.clone()).collect();
        for c in &chunks {
            s.forget_sealed(c);
        }
        assert!(s.is_empty());
        assert_eq!((gauge.get(), gauge.compressed()), (0, 0));
        s.append(push_entries(&[entry(5000)]), 2, POLICY).unwrap();
        assert!(gauge.get() > 0);
        drop(s);
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn retried_entries_are_dropped_even_from_compressed_parts() {
        let (mut s, _) = stream();
        let entries: Vec<Entry> = (0..60).map(entry).collect();
        assert_eq!(s.append(push_entries(&entries), 1, POLICY).unwrap(), 60);
        assert!(
            !s.head.parts.is_empty(),
            "some entries are compressed already"
        );
        assert_eq!(s.append(push_entries(&entries), 2, POLICY).unwrap(), 0);
        assert!(s.head.hashes.is_some());
        // Same timestamp, other line: not a duplicate.
        let mut other = entry(3);
        other.line.push('!');
        assert_eq!(
            s.append(push_entries(&[other.clone(), entry(60)]), 2, POLICY)
                .unwrap(),
            2
        );
        let mut expected = entries;
        expected.push(other);
        expected.push(entry(60));
        expected.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.line.cmp(&b.line)));
        assert_eq!(contents(&s), expected);
    }

    #[test]
    fn out_of_order_entries_end_up_sorted_in_the_sealed_chunk() {
        let (mut s, _) = stream();
        let mut entries: Vec<Entry> = (0..120).map(|i| entry((i * 37) % 120)).collect();
        entries.push(entry(50)); // an exact duplicate
        assert_eq!(s.append(push_entries(&entries), 1, POLICY).unwrap(), 120);
        let parts: Vec<_> = s.head.parts.clone();
        assert!(parts
            .windows(2)
            .any(|w| w[1].meta.min_ts < w[0].meta.max_ts));
        s.seal(POLICY).unwrap();
        let sealed = fenrir_chunk::decode_all(&s.sealed.last().unwrap().chunk.bytes).unwrap();
        assert!(sealed.windows(2).all(|w| w[0].ts <= w[1].ts));
        entries.pop();
        entries.sort_by_key(|e| e.ts);
        let all = contents(&s);
        assert_eq!(all, entries);
    }

    #[test]
    fn sealing_parts_keeps_the_open_block_and_its_wal_segment() {
        let (mut s, gauge) = stream();
        let first: Vec<Entry> = (0..40).map(entry).collect();
        s.append(push_entries(&first), 1, POLICY).unwrap();
        s.cut_block(POLICY).unwrap();
        assert!(!s.head.parts.is_empty() && s.sealed.is_empty());
        let later = vec![entry(40), entry(41)];
        s.append(push_entries(&later), 3, POLICY).unwrap();
        assert_eq!(s.min_wal_segment(), 1);

        s.seal_parts(POLICY).unwrap();
        assert!(s.head.parts.is_empty());
        assert_eq!(s.open_entries(i64::MIN, i64::MAX), later);
        assert_eq!(s.sealed.len(), 1);
        assert_eq!(s.sealed[0].min_wal_segment, 1);
        let mut all = first;
        all.extend(later);
        assert_eq!(contents(&s), all);
        let f = s.footprint();
        assert_eq!(gauge.get(), f.open + f.parts + f.sealed);

        // Once the sealed chunk is written, only the open block's segment is needed.
        let chunk = s.sealed[0].chunk.clone();
        s.forget_sealed(&chunk);
        assert_eq!(s.min_wal_segment(), 3);
        assert!(!s.is_empty());
        // Nothing compressed: nothing to seal.
        s.seal_parts(POLICY).unwrap();
        assert!(s.sealed.is_empty());
        // With an empty open block it is a whole seal.
        s.cut_block(POLICY).unwrap();
        s.seal_parts(POLICY).unwrap();
        assert!(s.open_entries(i64::MIN, i64::MAX).is_empty());
        assert_eq!(s.sealed.len(), 1);
        assert_eq!(s.min_wal_segment(), 3);
    }

    #[test]
    fn open_entries_are_sorted_and_filtered() {
        let (mut s, _) = stream();
        s.append(push_entries(&[entry(9), entry(3), entry(6)]), 4, POLICY)
            .unwrap();
        let got: Vec<i64> = s.open_entries(4, 10).iter().map(|e| e.ts).collect();
        assert_eq!(got, vec![6, 9]);
        assert_eq!(s.open_entries(0, 10)[0], entry(3));
        assert!(s.head_parts(0, 10).is_empty());
        s.cut_open_block(POLICY).unwrap();
        assert_eq!(s.head_parts(0, 4).len(), 1);
        assert!(s.head_parts(10, 20).is_empty());
        assert!(s.open_entries(0, 10).is_empty());
    }
}
