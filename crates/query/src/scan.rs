//! Reading one stream's entries in time order from its pieces (stored chunks, sealed
//! chunks in memory, head), with each distinct entry visited once.
//!
//! Pieces whose time ranges do not overlap are streamed block by block. Overlapping
//! pieces (a flush in flight, a retried batch after a seal, WAL replay after a crash) are
//! merged in memory and identical entries (timestamp, line, metadata) collapsed: the
//! same rule Loki's merge iterator applies.

use std::sync::Arc;

use fenrir_chunk::{ChunkReader, EncodedChunk};
use fenrir_common::{Entry, LabelSet, Timestamp};
use fenrir_index::ChunkRef;
use fenrir_storage::ObjectStore;

use crate::{Direction, Result};

/// One stream and where its data lives.
#[derive(Debug, Clone)]
pub(crate) struct StreamData {
    pub(crate) labels: LabelSet,
    pub(crate) pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Stored(ChunkRef),
    Sealed(Arc<EncodedChunk>),
    Head(Arc<Vec<Entry>>),
}

impl Piece {
    fn bounds(&self) -> (Timestamp, Timestamp) {
        match self {
            Piece::Stored(r) => (r.min_ts, r.max_ts),
            Piece::Sealed(c) => (c.meta.min_ts, c.meta.max_ts),
            Piece::Head(h) => (
                h.first().map_or(Timestamp::MAX, |e| e.ts),
                h.last().map_or(Timestamp::MIN, |e| e.ts),
            ),
        }
    }
}

/// What a visitor sees of an entry. Returns `false` to stop the scan of this stream.
pub(crate) type Visit<'v> = dyn FnMut(Timestamp, &str, &[(&str, &str)]) -> bool + 'v;

/// Reads pieces' bytes, blocking on the async store (the scan runs on a blocking thread).
pub(crate) struct ChunkFetcher {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) handle: tokio::runtime::Handle,
}

impl ChunkFetcher {
    fn fetch(&self, r: &ChunkRef) -> Result<bytes::Bytes> {
        let range = r.offset..r.offset + r.len;
        Ok(self
            .handle
            .block_on(self.store.get_range(&r.object_key, range))?)
    }
}

/// Visits the entries of `data` with `start <= ts < end` in `direction` order.
pub(crate) fn scan_stream(
    fetcher: &ChunkFetcher,
    data: &StreamData,
    start: Timestamp,
    end: Timestamp,
    direction: Direction,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut pieces: Vec<&Piece> = data
        .pieces
        .iter()
        .filter(|p| {
            let (lo, hi) = p.bounds();
            lo < end && hi >= start
        })
        .collect();
    pieces.sort_by_key(|p| p.bounds());
    // Group pieces whose time ranges overlap.
    let mut groups: Vec<Vec<&Piece>> = Vec::new();
    let mut group_end = Timestamp::MIN;
    for p in pieces {
        let (lo, hi) = p.bounds();
        match groups.last_mut() {
            Some(g) if lo <= group_end => {
                g.push(p);
                group_end = group_end.max(hi);
            }
            _ => {
                groups.push(vec![p]);
                group_end = hi;
            }
        }
    }
    if direction == Direction::Backward {
        groups.reverse();
    }
    for group in groups {
        let go_on = if group.len() == 1 {
            scan_piece(fetcher, group[0], start, end, direction, visit)?
        } else {
            scan_merged(fetcher, &group, start, end, direction, visit)?
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

fn scan_piece(
    fetcher: &ChunkFetcher,
    piece: &Piece,
    start: Timestamp,
    end: Timestamp,
    direction: Direction,
    visit: &mut Visit<'_>,
) -> Result<bool> {
    match piece {
        Piece::Head(entries) => {
            let iter: Box<dyn Iterator<Item = &Entry>> = match direction {
                Direction::Forward => Box::new(entries.iter()),
                Direction::Backward => Box::new(entries.iter().rev()),
            };
            // One buffer for every entry's metadata: no allocation per line.
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            for e in iter {
                if e.ts < start || e.ts >= end {
                    continue;
                }
                pairs.clear();
                pairs.extend(
                    e.structured_metadata
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                if !visit(e.ts, &e.line, &pairs) {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Piece::Sealed(chunk) => scan_chunk_bytes(&chunk.bytes, start, end, direction, visit),
        Piece::Stored(r) => {
            let bytes = fetcher.fetch(r)?;
            scan_chunk_bytes(&bytes, start, end, direction, visit)
        }
    }
}

fn scan_chunk_bytes(
    bytes: &[u8],
    start: Timestamp,
    end: Timestamp,
    direction: Direction,
    visit: &mut Visit<'_>,
) -> Result<bool> {
    let reader = ChunkReader::open(bytes)?;
    let mut block_ids: Vec<usize> = reader
        .blocks()
        .iter()
        .enumerate()
        .filter(|(_, b)| b.min_ts < end && b.max_ts >= start)
        .map(|(i, _)| i)
        .collect();
    if direction == Direction::Backward {
        block_ids.reverse();
    }
    for i in block_ids {
        let block = reader.decode_block(i)?;
        let iter: Box<dyn Iterator<Item = fenrir_chunk::EntryRef<'_>>> = match direction {
            Direction::Forward => Box::new(block.iter()),
            Direction::Backward => Box::new(block.iter().rev()),
        };
        // One buffer for every entry's metadata: no allocation per line.
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for e in iter {
            if e.ts < start || e.ts >= end {
                continue;
            }
            pairs.clear();
            pairs.extend(e.structured_metadata.iter());
            if !visit(e.ts, e.line, &pairs) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Overlapping pieces: gather their entries in range, sort, drop exact duplicates.
fn scan_merged(
    fetcher: &ChunkFetcher,
    group: &[&Piece],
    start: Timestamp,
    end: Timestamp,
    direction: Direction,
    visit: &mut Visit<'_>,
) -> Result<bool> {
    let mut all: Vec<Entry> = Vec::new();
    for p in group {
        let mut collect = |ts: Timestamp, line: &str, md: &[(&str, &str)]| {
            all.push(Entry {
                ts,
                line: line.to_string(),
                structured_metadata: md
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
            true
        };
        scan_piece(fetcher, p, start, end, Direction::Forward, &mut collect)?;
    }
    all.sort_by(|a, b| {
        a.ts.cmp(&b.ts)
            .then_with(|| a.line.cmp(&b.line))
            .then_with(|| a.structured_metadata.cmp(&b.structured_metadata))
    });
    all.dedup();
    let merged = Piece::Head(Arc::new(all));
    scan_piece(fetcher, &merged, start, end, direction, visit)
}
