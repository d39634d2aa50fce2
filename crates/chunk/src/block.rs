//! One block's raw (uncompressed) layout, its builder and its decoded, borrowing view.
//!
//! Raw block, row-wise (flag COLUMNAR clear; the only layout of chunk version 1):
//! ```text
//! text      every line concatenated, then every metadata name and value, in entry order
//! columns   uvarint entry count
//!           timestamps: zigzag varint of the first, then zigzag varints of the deltas
//!           uvarint length of each line
//!           only if flag HAS_METADATA: per entry a uvarint pair count, then per pair
//!           uvarint name length and uvarint value length
//! tail      u32 text length, u8 flags
//! ```
//! Keeping all text first lets a decoder turn the decompressed buffer into one `String` with a
//! single UTF-8 check and hand out `&str` slices without per-line allocation.
//!
//! Raw block, columnar (flag COLUMNAR, chunk version 2), chosen by the builder when it is
//! clearly smaller (lines that share templates, see `columnar.rs`):
//! ```text
//! text      the lines kept whole (exceptions), concatenated
//! columns   uvarint entry count, timestamps as above
//!           the columnar line section
//!           only if flag HAS_METADATA: the columnar metadata section
//! tail      u32 text length, u8 flags
//! ```
//! Decoding rebuilds the same text as the row-wise layout into one fresh buffer (lines, then
//! metadata), so both layouts give the same `DecodedBlock`.

use crate::chunk::BlockParts;
use crate::codec::{put_uvarint, zigzag, Cursor};
use crate::columnar;
use crate::{Error, Result};

const HAS_METADATA: u8 = 0x01;
const COLUMNAR: u8 = 0x02;
const KNOWN_FLAGS: u8 = HAS_METADATA | COLUMNAR;
/// A columnar block is used when its raw size is below this share of the row-wise one (in
/// tenths): bit-packed columns barely compress further, row-wise text compresses 4-5×.
const COLUMNAR_MAX_TENTHS: usize = 6;
/// Most metadata pairs a block may claim (a row-wise block spends at least two bytes on each).
const MAX_PAIRS: usize = crate::chunk::MAX_BLOCK_RAW_LEN / 2;
const TAIL_LEN: usize = 5;
const WHAT: &str = "block";

/// A block's raw bytes and summary, ready for compression.
#[derive(Debug)]
pub(crate) struct SealedBlock {
    pub(crate) raw: Vec<u8>,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) entries: u32,
}

/// Accumulates entries as columns until the chunk builder seals the block.
#[derive(Debug, Default)]
pub(crate) struct BlockBuilder {
    lines: Vec<u8>,
    metadata_text: Vec<u8>,
    ts_column: Vec<u8>,
    len_column: Vec<u8>,
    line_ends: Vec<u32>,
    // One zero byte per entry until some entry has metadata; dropped at seal time if none does.
    metadata_column: Vec<u8>,
    has_metadata: bool,
    entries: u32,
    last_ts: i64,
    min_ts: i64,
    max_ts: i64,
}

impl BlockBuilder {
    /// Appends an entry; returns the bytes of its metadata names and values.
    pub(crate) fn push<'a>(
        &mut self,
        ts: i64,
        line: &str,
        structured_metadata: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> usize {
        if self.entries == 0 {
            self.min_ts = ts;
            self.max_ts = ts;
            put_uvarint(&mut self.ts_column, zigzag(ts));
        } else {
            self.min_ts = self.min_ts.min(ts);
            self.max_ts = self.max_ts.max(ts);
            // Wrapping keeps any sequence exact, even out of order or spanning the whole i64 range.
            put_uvarint(&mut self.ts_column, zigzag(ts.wrapping_sub(self.last_ts)));
        }
        self.last_ts = ts;
        self.entries += 1;
        put_uvarint(&mut self.len_column, line.len() as u64);
        self.lines.extend_from_slice(line.as_bytes());
        // Blocks over MAX_BLOCK_RAW_LEN (64 MiB) are refused, so offsets fit in u32.
        self.line_ends.push(self.lines.len() as u32);
        put_uvarint(&mut self.metadata_column, structured_metadata.len() as u64);
        let mut metadata_bytes = 0;
        for (name, value) in structured_metadata {
            self.has_metadata = true;
            put_uvarint(&mut self.metadata_column, name.len() as u64);
            put_uvarint(&mut self.metadata_column, value.len() as u64);
            self.metadata_text.extend_from_slice(name.as_bytes());
            self.metadata_text.extend_from_slice(value.as_bytes());
            metadata_bytes += name.len() + value.len();
        }
        metadata_bytes
    }

    pub(crate) fn entries(&self) -> u32 {
        self.entries
    }

    /// Size of the raw block if sealed now, give or take the entry-count varint.
    pub(crate) fn encoded_len(&self) -> usize {
        let metadata = if self.has_metadata {
            self.metadata_column.len()
        } else {
            0
        };
        self.lines.len()
            + self.metadata_text.len()
            + self.ts_column.len()
            + self.len_column.len()
            + metadata
            + TAIL_LEN
            + 5
    }

    /// Produces the raw block, columnar when that pays, and resets the builder for the next.
    pub(crate) fn seal(&mut self) -> SealedBlock {
        let taken = std::mem::take(self);
        let raw = taken.columnar().unwrap_or_else(|| taken.row_wise());
        SealedBlock {
            raw,
            min_ts: taken.min_ts,
            max_ts: taken.max_ts,
            entries: taken.entries,
        }
    }

    /// The columnar layout, if the lines split into few templates and it is clearly smaller.
    fn columnar(&self) -> Option<Vec<u8>> {
        let raw = self.columnar_raw()?;
        ((raw.len() * 10) < self.encoded_len() * COLUMNAR_MAX_TENTHS).then_some(raw)
    }

    /// The columnar layout, if the lines split into few templates.
    fn columnar_raw(&self) -> Option<Vec<u8>> {
        // Column spans are u32 offsets (blocks are capped far below this anyway).
        if self.lines.len() + self.metadata_text.len() > u32::MAX as usize {
            return None;
        }
        let lines = columnar::encode_lines(&self.lines, &self.line_ends)?;
        let mut raw = Vec::with_capacity(
            lines.exceptions.len() + self.ts_column.len() + lines.section.len() + 64,
        );
        raw.extend_from_slice(&lines.exceptions);
        let text_len = raw.len();
        put_uvarint(&mut raw, u64::from(self.entries));
        raw.extend_from_slice(&self.ts_column);
        raw.extend_from_slice(&lines.section);
        let mut flags = COLUMNAR;
        if self.has_metadata {
            let n = self.entries as usize;
            let (mut counts, mut names, mut values) = (Vec::with_capacity(n), vec![], vec![]);
            let mut c = Cursor::new(&self.metadata_column, WHAT);
            let mut at = 0u32;
            for _ in 0..n {
                // Our own varints: they cannot fail.
                let pairs = c.uvarint().ok()?;
                counts.push(pairs as i64);
                for _ in 0..pairs {
                    let name = c.uvarint().ok()? as u32;
                    let value = c.uvarint().ok()? as u32;
                    names.push((at, name));
                    values.push((at + name, value));
                    at += name + value;
                }
            }
            columnar::encode_metadata(&mut raw, &self.metadata_text, &counts, &names, &values);
            flags |= HAS_METADATA;
        }
        raw.extend_from_slice(&(text_len as u32).to_le_bytes());
        raw.push(flags);
        Some(raw)
    }

    fn row_wise(&self) -> Vec<u8> {
        let taken = self;
        let mut raw = Vec::with_capacity(taken.encoded_len());
        raw.extend_from_slice(&taken.lines);
        raw.extend_from_slice(&taken.metadata_text);
        let text_len = raw.len();
        put_uvarint(&mut raw, u64::from(taken.entries));
        raw.extend_from_slice(&taken.ts_column);
        raw.extend_from_slice(&taken.len_column);
        let mut flags = 0;
        if taken.has_metadata {
            raw.extend_from_slice(&taken.metadata_column);
            flags |= HAS_METADATA;
        }
        // Text over 4 GiB cannot happen: blocks over MAX_BLOCK_RAW_LEN are refused before use.
        raw.extend_from_slice(&(text_len as u32).to_le_bytes());
        raw.push(flags);
        raw
    }
}

/// What the chunk directory says about a block, checked against its content on decode.
pub(crate) struct Expected {
    pub(crate) entries: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
}

impl Expected {
    /// The block's own entry count, if it agrees with the directory's.
    fn check_count(&self, count: usize) -> Result<usize> {
        if count != self.entries as usize {
            return Err(Error::corrupt(
                WHAT,
                format!("{count} entries, directory says {}", self.entries),
            ));
        }
        Ok(count)
    }
}

/// One decompressed block. Owns its bytes; [`DecodedBlock::iter`] borrows entries from it
/// without allocating per line.
#[derive(Debug, Clone)]
pub struct DecodedBlock {
    text: String,
    ts: Vec<i64>,
    // Entry i's line is text[line_bounds[i]..line_bounds[i + 1]].
    line_bounds: Vec<u32>,
    // Empty when the block has no metadata; else entry i owns pairs
    // metadata_pairs[i]..metadata_pairs[i + 1].
    metadata_pairs: Vec<u32>,
    // Pair p is name text[b[2p]..b[2p + 1]], value text[b[2p + 1]..b[2p + 2]].
    metadata_bounds: Vec<u32>,
}

impl DecodedBlock {
    /// Parses and fully validates a raw block, so that iteration cannot fail afterwards.
    #[cfg(test)]
    pub(crate) fn decode(raw: Vec<u8>, expected: &Expected) -> Result<Self> {
        Self::decode_parts(raw, expected, BlockParts::ALL)
    }

    /// [`DecodedBlock::decode`], decoding only `parts` where the layout allows it (parts left
    /// out come back empty: every line `""`, no metadata pairs).
    pub(crate) fn decode_parts(
        mut raw: Vec<u8>,
        expected: &Expected,
        parts: BlockParts,
    ) -> Result<Self> {
        let Some(columns_end) = raw.len().checked_sub(TAIL_LEN) else {
            return Err(Error::Truncated {
                what: WHAT,
                need: TAIL_LEN as u64,
                have: raw.len() as u64,
            });
        };
        let mut tail = Cursor::new(&raw[columns_end..], WHAT);
        let text_len = tail.u32()? as usize;
        let flags = tail.u8()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::corrupt(WHAT, format!("unknown flags {flags:#04x}")));
        }
        if text_len > columns_end {
            return Err(Error::corrupt(WHAT, "text length past the columns"));
        }
        if flags & COLUMNAR != 0 {
            return Self::decode_columnar(
                &raw[..text_len],
                &raw[text_len..columns_end],
                flags,
                expected,
                parts,
            );
        }
        // Columns first (they say where the lines end), then only the text wanted is
        // checked as UTF-8: skipping lines skips the bulk of the block.
        let mut c = Cursor::new(&raw[text_len..columns_end], WHAT);
        // Every entry takes at least one byte of timestamp and one of length.
        let count = expected.check_count(c.uvarint_len(c.remaining() / 2)?)?;
        let ts = timestamps(&mut c, count, expected)?;

        let mut offset = 0usize;
        let mut line_bounds = Vec::with_capacity(count + 1);
        line_bounds.push(0);
        for _ in 0..count {
            offset = advance(text_len, offset, c.uvarint_len(text_len)?)?;
            line_bounds.push(offset as u32);
        }
        let lines_end = offset;
        let has_metadata = flags & HAS_METADATA != 0;
        let metadata = has_metadata && parts.metadata;
        let mut metadata_pairs = Vec::new();
        let mut metadata_bounds = Vec::new();
        if metadata {
            metadata_pairs.reserve(count + 1);
            metadata_pairs.push(0u32);
            metadata_bounds.push(offset as u32);
            let mut pairs = 0u32;
            for _ in 0..count {
                // Every pair takes at least two bytes of lengths.
                let n = c.uvarint_len(c.remaining() / 2)?;
                for _ in 0..n {
                    offset = advance(text_len, offset, c.uvarint_len(text_len)?)?;
                    metadata_bounds.push(offset as u32);
                    offset = advance(text_len, offset, c.uvarint_len(text_len)?)?;
                    metadata_bounds.push(offset as u32);
                }
                pairs += n as u32;
                metadata_pairs.push(pairs);
            }
        }
        if metadata || !has_metadata {
            c.finish()?;
            if offset != text_len {
                return Err(Error::corrupt(WHAT, "columns do not cover the text"));
            }
        }
        let text = if parts.lines {
            raw.truncate(offset);
            raw
        } else {
            // Only the metadata text, moved to the start.
            for b in &mut metadata_bounds {
                *b -= lines_end as u32;
            }
            line_bounds.iter_mut().for_each(|b| *b = 0);
            raw[lines_end..offset].to_vec()
        };
        let text = String::from_utf8(text)
            .map_err(|e| Error::corrupt(WHAT, format!("text is not utf-8: {}", e.utf8_error())))?;
        DecodedBlock {
            text,
            ts,
            line_bounds,
            metadata_pairs,
            metadata_bounds,
        }
        .checked()
    }

    /// Rebuilds a columnar block's text: lines from templates and columns (or the text
    /// region, for lines kept whole), then metadata; only the `parts` asked for.
    fn decode_columnar(
        exceptions: &[u8],
        columns: &[u8],
        flags: u8,
        expected: &Expected,
        parts: BlockParts,
    ) -> Result<Self> {
        let mut c = Cursor::new(columns, WHAT);
        // Every entry takes at least one byte of timestamp.
        let count = expected.check_count(c.uvarint_len(columns.len())?)?;
        let ts = timestamps(&mut c, count, expected)?;
        let has_metadata = flags & HAS_METADATA != 0;
        let (decoded, whole) =
            columnar::decode(&mut c, count, exceptions, MAX_PAIRS, has_metadata, parts)?;
        if whole {
            c.finish()?;
        }
        let columnar::Decoded {
            text,
            line_bounds,
            metadata_pairs,
            metadata_bounds,
        } = decoded;
        DecodedBlock {
            text,
            ts,
            line_bounds,
            metadata_pairs,
            metadata_bounds,
        }
        .checked()
    }

    /// Refuses string bounds inside a character: slicing there would panic later.
    fn checked(self) -> Result<Self> {
        let inside_char = |b: &u32| !self.text.is_char_boundary(*b as usize);
        if self.line_bounds.iter().any(inside_char) || self.metadata_bounds.iter().any(inside_char)
        {
            return Err(Error::corrupt(WHAT, "string bound inside a character"));
        }
        Ok(self)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the block has no entries (never true for a block read from a chunk).
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The entries' timestamps in stored order, e.g. to binary-search a start time.
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    /// Entry `i`, if in range.
    pub fn get(&self, i: usize) -> Option<EntryRef<'_>> {
        let ts = *self.ts.get(i)?;
        let line = &self.text[self.line_bounds[i] as usize..self.line_bounds[i + 1] as usize];
        let bounds: &[u32] = if self.metadata_pairs.is_empty() {
            &[]
        } else {
            let first = self.metadata_pairs[i] as usize;
            let end = self.metadata_pairs[i + 1] as usize;
            &self.metadata_bounds[2 * first..=2 * end]
        };
        Some(EntryRef {
            ts,
            line,
            structured_metadata: MetadataRef {
                text: &self.text,
                bounds,
            },
        })
    }

    /// The entries in stored (time) order; reverse it with `.rev()`.
    pub fn iter(&self) -> BlockIter<'_> {
        BlockIter {
            block: self,
            front: 0,
            back: self.len(),
        }
    }
}

impl<'a> IntoIterator for &'a DecodedBlock {
    type Item = EntryRef<'a>;
    type IntoIter = BlockIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The timestamp column: the first value, then deltas, each within the directory's range.
fn timestamps(c: &mut Cursor<'_>, count: usize, expected: &Expected) -> Result<Vec<i64>> {
    let mut ts = Vec::with_capacity(count);
    let mut prev = 0i64;
    for i in 0..count {
        let v = c.ivarint()?;
        prev = if i == 0 { v } else { prev.wrapping_add(v) };
        if prev < expected.min_ts || prev > expected.max_ts {
            return Err(Error::corrupt(WHAT, "timestamp outside the block's range"));
        }
        ts.push(prev);
    }
    Ok(ts)
}

/// Moves `offset` over `len` bytes of a text of `text_len` bytes.
fn advance(text_len: usize, offset: usize, len: usize) -> Result<usize> {
    match offset.checked_add(len) {
        Some(end) if end <= text_len => Ok(end),
        _ => Err(Error::corrupt(WHAT, "string past the text")),
    }
}

/// One entry borrowed from a [`DecodedBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts: i64,
    /// The line as pushed.
    pub line: &'a str,
    /// The entry's structured metadata, in push order.
    pub structured_metadata: MetadataRef<'a>,
}

impl EntryRef<'_> {
    /// An owned copy.
    pub fn to_entry(&self) -> fenrir_common::Entry {
        fenrir_common::Entry {
            ts: self.ts,
            line: self.line.to_owned(),
            structured_metadata: self.structured_metadata.to_vec(),
        }
    }
}

/// An entry's structured metadata, borrowed from its block.
#[derive(Debug, Clone, Copy)]
pub struct MetadataRef<'a> {
    text: &'a str,
    // 2n + 1 string boundaries for n pairs, or empty.
    bounds: &'a [u32],
}

impl<'a> MetadataRef<'a> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.bounds.len().saturating_sub(1) / 2
    }

    /// Whether the entry has no metadata.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `(name, value)` pairs in push order.
    pub fn iter(&self) -> MetadataIter<'a> {
        MetadataIter {
            text: self.text,
            bounds: self.bounds,
            front: 0,
            back: self.len(),
        }
    }

    /// The value of the first pair named `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// An owned copy of the pairs.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }
}

impl PartialEq for MetadataRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for MetadataRef<'_> {}

impl<'a> IntoIterator for MetadataRef<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = MetadataIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`MetadataRef`]'s pairs.
#[derive(Debug, Clone)]
pub struct MetadataIter<'a> {
    text: &'a str,
    bounds: &'a [u32],
    front: usize,
    back: usize,
}

impl<'a> MetadataIter<'a> {
    fn pair(&self, p: usize) -> (&'a str, &'a str) {
        let b = |k: usize| self.bounds[k] as usize;
        (
            &self.text[b(2 * p)..b(2 * p + 1)],
            &self.text[b(2 * p + 1)..b(2 * p + 2)],
        )
    }
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        Some(self.pair(self.front - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for MetadataIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(self.pair(self.back))
    }
}

impl ExactSizeIterator for MetadataIter<'_> {}

/// Iterator over a [`DecodedBlock`]'s entries, forward or backward.
#[derive(Debug, Clone)]
pub struct BlockIter<'a> {
    block: &'a DecodedBlock,
    front: usize,
    back: usize,
}

impl<'a> Iterator for BlockIter<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.block.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }

    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.front = self.front.saturating_add(n).min(self.back);
        self.next()
    }
}

impl DoubleEndedIterator for BlockIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.block.get(self.back)
    }

    fn nth_back(&mut self, n: usize) -> Option<Self::Item> {
        self.back = self.back.saturating_sub(n).max(self.front);
        self.next_back()
    }
}

impl ExactSizeIterator for BlockIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    type TestEntry<'a> = (i64, &'a str, Vec<(String, String)>);

    fn build(entries: &[TestEntry<'_>]) -> (SealedBlock, Expected) {
        let mut b = BlockBuilder::default();
        for (ts, line, md) in entries {
            b.push(*ts, line, md.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        }
        let sealed = b.seal();
        let expected = Expected {
            entries: sealed.entries,
            min_ts: sealed.min_ts,
            max_ts: sealed.max_ts,
        };
        (sealed, expected)
    }

    #[test]
    fn entries_round_trip_both_ways() {
        let entries = vec![
            (-5, "first", meta(&[])),
            (-5, "", meta(&[("trace_id", "abc"), ("user", "ünïcode")])),
            (10, "日本語 line", meta(&[])),
            (i64::MAX, "last", meta(&[("k", "")])),
        ];
        let (sealed, expected) = build(&entries);
        assert_eq!((sealed.min_ts, sealed.max_ts), (-5, i64::MAX));
        let block = DecodedBlock::decode(sealed.raw, &expected).unwrap();
        assert_eq!(block.len(), 4);
        assert_eq!(block.timestamps(), &[-5, -5, 10, i64::MAX]);
        let forward: Vec<_> = block.iter().map(|e| e.to_entry()).collect();
        for (got, (ts, line, md)) in forward.iter().zip(&entries) {
            assert_eq!((got.ts, got.line.as_str()), (*ts, *line));
            assert_eq!(&got.structured_metadata, md);
        }
        let backward: Vec<_> = block.iter().rev().map(|e| e.ts).collect();
        assert_eq!(backward, vec![i64::MAX, 10, -5, -5]);
        let second = block.get(1).unwrap();
        assert_eq!(second.structured_metadata.get("user"), Some("ünïcode"));
        assert_eq!(second.structured_metadata.len(), 2);
        assert!(block.get(0).unwrap().structured_metadata.is_empty());
        assert!(block.get(4).is_none());
    }

    #[test]
    fn parts_of_row_wise_and_columnar_blocks() {
        let varied = vec![
            (-5, "first", meta(&[])),
            (-5, "", meta(&[("trace_id", "abc"), ("user", "ünïcode")])),
            (10, "日本語 line", meta(&[])),
            (i64::MAX, "last", meta(&[("k", "")])),
        ];
        let (sealed, expected) = build(&varied);
        assert_eq!(*sealed.raw.last().unwrap(), HAS_METADATA);
        check_parts(&sealed.raw, &expected).unwrap();
        // Columnar, with lines kept whole and several templates, with and without metadata.
        let mut b = BlockBuilder::default();
        for i in 0..200i64 {
            let line = match i % 7 {
                0 => format!("plain line {i} ünï"),
                1 | 2 => format!(r#"level=info msg="m {}" took={i}ms"#, i % 3),
                _ => format!(r#"{{"n":{i},"s":"v{}","h":"{:08x}"}}"#, i % 5, i * 977),
            };
            let md = [("lvl", ["a", "é"][i as usize % 2])];
            b.push(i, &line, md.iter().take(i as usize % 3).copied());
        }
        let expected = expected_of(&b);
        let raw = b.columnar_raw().unwrap();
        check_parts(&raw, &expected).unwrap();
        let mut b = BlockBuilder::default();
        for i in 0..50i64 {
            b.push(i, &format!(r#"{{"n":{i}}}"#), std::iter::empty());
        }
        let expected = expected_of(&b);
        let raw = b.columnar_raw().unwrap();
        assert_eq!(*raw.last().unwrap(), COLUMNAR);
        check_parts(&raw, &expected).unwrap();
    }

    #[test]
    fn no_metadata_means_no_metadata_column() {
        let without = build(&[(1, "a", meta(&[])), (2, "b", meta(&[]))]).0;
        let with = build(&[(1, "a", meta(&[])), (2, "b", meta(&[("k", "v")]))]).0;
        assert_eq!(*without.raw.last().unwrap(), 0);
        assert_eq!(*with.raw.last().unwrap(), HAS_METADATA);
        // Two entries: text "ab", count, two ts, two lengths, tail.
        assert_eq!(without.raw.len(), 2 + 1 + 2 + 2 + TAIL_LEN);
    }

    #[test]
    fn iterators_skip_and_meet_in_the_middle() {
        let entries: Vec<_> = (0..10).map(|i| (i, "x", meta(&[]))).collect();
        let (sealed, expected) = build(&entries);
        let block = DecodedBlock::decode(sealed.raw, &expected).unwrap();
        let mut it = block.iter();
        assert_eq!(it.nth(3).unwrap().ts, 3);
        assert_eq!(it.nth_back(2).unwrap().ts, 7);
        assert_eq!(it.len(), 3);
        assert_eq!(it.next().unwrap().ts, 4);
        assert_eq!(it.next_back().unwrap().ts, 6);
        assert_eq!(it.next().unwrap().ts, 5);
        assert!(it.next().is_none() && it.next_back().is_none());
        assert!(block.iter().nth(10).is_none());
    }

    #[test]
    fn inconsistent_blocks_are_errors() {
        let (sealed, expected) = build(&[(1, "é", meta(&[("a", "b")])), (2, "c", meta(&[]))]);
        let good = sealed.raw;
        // Wrong count or range against the directory.
        for e in [
            Expected {
                entries: 3,
                ..expected
            },
            Expected {
                min_ts: 2,
                ..expected
            },
            Expected {
                max_ts: 1,
                ..expected
            },
        ] {
            assert!(DecodedBlock::decode(good.clone(), &e).is_err());
        }
        // Every mutation of every byte fails or decodes to something self-consistent.
        for pos in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[pos] ^= flip;
                if let Ok(block) = DecodedBlock::decode(bad, &expected) {
                    // Text bytes may change undetected here; the block CRC catches them.
                    assert_eq!(block.len(), 2);
                    block.iter().for_each(|e| assert!(e.line.len() <= 2));
                }
            }
        }
        for len in 0..good.len() {
            assert!(DecodedBlock::decode(good[..len].to_vec(), &expected).is_err());
        }
    }

    fn expected_of(b: &BlockBuilder) -> Expected {
        Expected {
            entries: b.entries,
            min_ts: b.min_ts,
            max_ts: b.max_ts,
        }
    }

    const ALL_PARTS: [BlockParts; 4] = [
        BlockParts {
            lines: true,
            metadata: true,
        },
        BlockParts {
            lines: true,
            metadata: false,
        },
        BlockParts {
            lines: false,
            metadata: true,
        },
        BlockParts {
            lines: false,
            metadata: false,
        },
    ];

    /// Decodes `raw` with every combination of parts and checks each against the full
    /// decode: the same timestamps, lines and metadata where asked for, `""` and no pairs
    /// where not.
    fn check_parts(raw: &[u8], expected: &Expected) -> std::result::Result<(), TestCaseError> {
        let full = DecodedBlock::decode(raw.to_vec(), expected).unwrap();
        for parts in ALL_PARTS {
            let block = DecodedBlock::decode_parts(raw.to_vec(), expected, parts).unwrap();
            prop_assert_eq!(block.timestamps(), full.timestamps());
            for (got, want) in block.iter().zip(full.iter()) {
                prop_assert_eq!(got.line, if parts.lines { want.line } else { "" });
                let pairs = got.structured_metadata.to_vec();
                if parts.metadata {
                    prop_assert_eq!(pairs, want.structured_metadata.to_vec());
                } else {
                    prop_assert!(pairs.is_empty());
                }
            }
        }
        Ok(())
    }

    /// Builds a block from `entries` and checks that both the forced columnar layout (when
    /// the lines split) and whatever `seal` picks decode to exactly the entries, and to the
    /// same parts when decoding only some.
    fn check_round_trip(entries: &[TestEntry<'_>]) -> std::result::Result<bool, TestCaseError> {
        let mut b = BlockBuilder::default();
        for (ts, line, md) in entries {
            b.push(*ts, line, md.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        }
        let expected = expected_of(&b);
        let columnar = b.columnar_raw();
        let was_columnar = columnar.is_some();
        let sealed = b.seal();
        let mut raws = vec![sealed.raw];
        raws.extend(columnar);
        for raw in raws {
            check_parts(&raw, &expected)?;
            let block = DecodedBlock::decode(raw, &expected).unwrap();
            prop_assert_eq!(block.len(), entries.len());
            for (got, (ts, line, md)) in block.iter().zip(entries) {
                prop_assert_eq!(got.ts, *ts);
                prop_assert_eq!(got.line, *line);
                prop_assert_eq!(&got.structured_metadata.to_vec(), md);
            }
        }
        Ok(was_columnar)
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            (0u32..1000).prop_map(|v| v.to_string()),
            "-?0[0-9]{1,3}|-0|[0-9]{19,22}",
            "\"[a-z0-9 ]{0,10}\"",
            r#""(\\\\|\\"|\\u00e9|\\n|[a-zé日 :=,{}])*""#,
            "\"[0-9a-f]{8}\"|\"[0-9a-f]{32}\"|\"[0-9A-F]{8}\"",
            "\"/api/[a-z]{1,5}/(0|[1-9][0-9]{0,5})\"|\"u[0-9]{1,5}x?\"",
            "true|false|null|-?[0-9]{1,3}\\.[0-9]{1,3}(e[+-]?[0-9])?",
            "\\[1, 2\\]|\\{\"n\":1\\}",
        ]
    }

    fn json_line() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec!["ts", "level", "msg", "a b", "é", "dup", "x\\\"y", ""]);
        let sep = prop::sample::select(vec![":", ": ", " :", "="]);
        let field = (key, sep, json_value());
        (
            prop::collection::vec(field, 0..6),
            prop::sample::select(vec![",", ", "]),
        )
            .prop_map(|(fields, comma)| {
                let body: Vec<String> = fields
                    .iter()
                    .map(|(k, s, v)| format!("\"{k}\"{s}{v}"))
                    .collect();
                format!("{{{}}}", body.join(comma))
            })
    }

    fn any_line() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => json_line(),
            2 => "\\PC{0,30}",
            1 => "(level=(info|warn) )?msg=\"[a-z =\\\\\"]{0,12}\" took=[0-9]{1,3}ms",
            1 => Just(String::new()),
            1 => Just("{\"unterminated\":\"x".to_owned()),
        ]
    }

    fn with_metadata() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["detected_level", "trace_id", ""])
                    .prop_map(str::to_owned),
                "(info|warn|[a-f0-9]{0,6}|\\PC{0,3})",
            ),
            0..3,
        )
    }

    #[test]
    fn access_log_blocks_are_columnar_and_round_trip() {
        let lines: Vec<String> = (0..2000u64)
            .map(|i| {
                let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                format!(
                    r#"{{"ts":{i},"level":"{}","url":"/api/{}/{}","status":{},"bytes":{},"user":"u{}","rid":"{:016x}{:016x}","f":{}.5}}"#,
                    ["INFO", "WARN", "ERROR"][(r % 3) as usize],
                    ["users", "items"][(r >> 8) as usize % 2],
                    (r >> 12) % 100_000,
                    [200, 404, 500][(r >> 20) as usize % 3],
                    (r >> 24) % 90_000,
                    (r >> 40) % 5000,
                    r,
                    r.rotate_left(17),
                    (r >> 33) % 1000,
                )
            })
            .collect();
        let mut b = BlockBuilder::default();
        let md = [("detected_level", "info")];
        for (i, line) in lines.iter().enumerate() {
            b.push(i as i64 * 1000, line, md.iter().copied());
        }
        let expected = expected_of(&b);
        let row_len = b.encoded_len();
        let sealed = b.seal();
        assert_eq!(*sealed.raw.last().unwrap(), COLUMNAR | HAS_METADATA);
        assert!(
            sealed.raw.len() * 5 < row_len,
            "{} of {row_len}",
            sealed.raw.len()
        );
        let metadata_only = BlockParts {
            lines: false,
            metadata: true,
        };
        let block = DecodedBlock::decode_parts(sealed.raw.clone(), &expected, metadata_only);
        for got in block.unwrap().iter() {
            assert_eq!(got.line, "");
            assert_eq!(
                got.structured_metadata.to_vec(),
                [("detected_level".to_owned(), "info".to_owned())]
            );
        }
        let block = DecodedBlock::decode(sealed.raw, &expected).unwrap();
        for (got, line) in block.iter().zip(&lines) {
            assert_eq!(got.line, line);
            assert_eq!(got.structured_metadata.get("detected_level"), Some("info"));
        }
    }

    proptest! {
        // Blocks of hundreds of lines: fewer cases keep the suite quick.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_lines_round_trip(
            lines in prop::collection::vec((any_line(), with_metadata(), 0i64..3), 1..60),
        ) {
            let mut ts = 0;
            let entries: Vec<TestEntry<'_>> = lines
                .iter()
                .map(|(line, md, step)| {
                    ts += step;
                    (ts, line.as_str(), md.clone())
                })
                .collect();
            check_round_trip(&entries)?;
        }

        #[test]
        fn json_lines_round_trip_through_columns(
            lines in prop::collection::vec((json_line(), with_metadata()), 1..60),
        ) {
            let entries: Vec<TestEntry<'_>> =
                lines.iter().map(|(l, md)| (7, l.as_str(), md.clone())).collect();
            prop_assert!(check_round_trip(&entries)?);
        }

        // Hundreds of values per slot: past the dictionaries, into the number split, hex
        // and raw strings.
        #[test]
        fn many_values_per_slot_round_trip(
            values in prop::collection::vec(json_value(), 1..700),
            key in prop::sample::select(vec!["k", "url", ""]),
        ) {
            let lines: Vec<String> = values.iter().map(|v| format!("{{\"{key}\":{v}}}")).collect();
            let entries: Vec<TestEntry<'_>> =
                lines.iter().map(|l| (1, l.as_str(), Vec::new())).collect();
            check_round_trip(&entries)?;
        }

        #[test]
        fn mutated_columnar_blocks_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in 0usize..4,
        ) {
            let mut b = BlockBuilder::default();
            for i in 0..300i64 {
                let line = format!(r#"{{"n":{},"s":"v{}","h":"{:08x}","u":"/a/{}"}}"#, i * 7, i % 3, i * 977, i * 13);
                let md = [("lvl", ["a", "b"][i as usize % 2])];
                b.push(i, &line, md.iter().copied());
            }
            b.push(300, "whole line", std::iter::empty());
            let expected = expected_of(&b);
            let mut raw = b.columnar_raw().unwrap();
            for (at, byte) in edits {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            raw.truncate(raw.len() - cut);
            for parts in ALL_PARTS {
                if let Ok(block) = DecodedBlock::decode_parts(raw.clone(), &expected, parts) {
                    for e in block.iter().rev() {
                        let _ = e.structured_metadata.to_vec();
                        prop_assert!(e.ts >= 0 && e.ts <= 300);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_as_a_columnar_block_never_panic(
            mut raw in prop::collection::vec(any::<u8>(), 0..400),
            text_len in 0u32..64,
            metadata in any::<bool>(),
        ) {
            raw.extend_from_slice(&text_len.to_le_bytes());
            raw.push(COLUMNAR | if metadata { HAS_METADATA } else { 0 });
            let expected = Expected { entries: 3, min_ts: i64::MIN, max_ts: i64::MAX };
            for parts in ALL_PARTS {
                if let Ok(block) = DecodedBlock::decode_parts(raw.clone(), &expected, parts) {
                    prop_assert_eq!(block.iter().count(), 3);
                }
            }
        }
    }

    proptest! {
        // Skips the CRC, which would catch these first, to exercise the parser itself.
        #[test]
        fn mutated_raw_blocks_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in 0usize..4,
        ) {
            let entries = vec![
                (1, "one", meta(&[("k", "v")])),
                (1, "", meta(&[])),
                (7, "ß three", meta(&[("a", "é"), ("b", "")])),
            ];
            let (sealed, expected) = build(&entries);
            let mut raw = sealed.raw;
            for (at, byte) in edits {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            raw.truncate(raw.len() - cut);
            for parts in ALL_PARTS {
                if let Ok(block) = DecodedBlock::decode_parts(raw.clone(), &expected, parts) {
                    for e in block.iter().rev() {
                        let _ = e.structured_metadata.to_vec();
                        prop_assert!(e.ts >= 1 && e.ts <= 7);
                    }
                }
            }
        }
    }
}
