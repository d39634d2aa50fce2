//! The segment object: the chunks of one flush cycle, of one tenant, back to back, then a footer
//! that lists each chunk's labels and summary, so the index can be rebuilt from footers alone.
//!
//! Layout, version 1 (integers little-endian, "str" is a uvarint length then UTF-8 bytes):
//! ```text
//! chunks    each chunk's bytes, back to back from offset 0
//! footer    str tenant, u64 length of the chunk data, uvarint chunk count, then per chunk:
//!           uvarint label count, (str name, str value) per label in canonical order,
//!           u64 fingerprint, i64 min ts, i64 max ts, u32 entries, u64 raw bytes,
//!           u64 offset, u64 length
//! trailer   u64 footer length, u32 CRC32C of the footer, u32 version, magic "FNRS"
//! ```
//! A reader fetches the fixed-size trailer, then the footer, then only the chunks it needs.

use fenrir_common::{LabelSet, Tenant};

use crate::codec::{crc, put_bytes, put_i64, put_u32, put_u64, put_uvarint, Cursor};
use crate::{ChunkMeta, ChunkReader, EncodedChunk, Error, Result};

const MAGIC: [u8; 4] = *b"FNRS";
const VERSION: u32 = 1;
const WHAT: &str = "segment footer";
/// Smallest footer record of one chunk: an empty label set and the fixed fields.
const MIN_CHUNK_RECORD_LEN: usize = 1 + 8 * 3 + 4 + 8 * 3;

/// Length of the fixed-size tail of a segment, which a reader fetches first.
pub const SEGMENT_TRAILER_LEN: usize = 20;

/// Largest footer a reader accepts.
pub const MAX_SEGMENT_FOOTER_LEN: u64 = 64 << 20;

/// Where [`SegmentWriter::add`] put a chunk inside the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkLocation {
    /// Offset of the chunk from the start of the segment.
    pub offset: u64,
    /// Length of the chunk.
    pub len: u64,
}

/// One chunk as listed in a segment footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentChunk {
    /// The stream's labels.
    pub labels: LabelSet,
    /// The chunk's summary, as in its header.
    pub meta: ChunkMeta,
    /// Offset of the chunk from the start of the segment.
    pub offset: u64,
    /// Length of the chunk.
    pub len: u64,
}

/// A segment's footer: its tenant and every chunk in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFooter {
    /// The tenant that owns every chunk of the segment.
    pub tenant: String,
    /// The chunks, in segment order.
    pub chunks: Vec<SegmentChunk>,
}

/// Packs one tenant's chunks into a segment object.
#[derive(Debug)]
pub struct SegmentWriter {
    tenant: Tenant,
    data: Vec<u8>,
    chunks: Vec<SegmentChunk>,
}

impl SegmentWriter {
    /// An empty segment of `tenant`.
    pub fn new(tenant: &Tenant) -> Self {
        SegmentWriter {
            tenant: tenant.clone(),
            data: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Makes room for `additional` more bytes of chunks and footer, so that a segment of
    /// known size is built without growing (and copying) its buffer.
    pub fn reserve(&mut self, additional: usize) {
        self.data.reserve(additional);
    }

    /// Appends the chunk of the stream `labels`.
    pub fn add(&mut self, labels: &LabelSet, chunk: EncodedChunk) -> ChunkLocation {
        debug_assert_eq!(
            chunk.meta.fingerprint,
            labels.fingerprint(),
            "chunk built for other labels"
        );
        let location = ChunkLocation {
            offset: self.data.len() as u64,
            len: chunk.bytes.len() as u64,
        };
        self.data.extend_from_slice(&chunk.bytes);
        self.chunks.push(SegmentChunk {
            labels: labels.clone(),
            meta: chunk.meta,
            offset: location.offset,
            len: location.len,
        });
        location
    }

    /// Bytes of chunk data added so far.
    pub fn data_len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Number of chunks added so far.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The whole segment object.
    pub fn finish(self) -> Vec<u8> {
        let mut footer = Vec::with_capacity(64 + self.chunks.len() * 128);
        put_bytes(&mut footer, self.tenant.as_str().as_bytes());
        put_u64(&mut footer, self.data.len() as u64);
        put_uvarint(&mut footer, self.chunks.len() as u64);
        for chunk in &self.chunks {
            put_uvarint(&mut footer, chunk.labels.len() as u64);
            for (name, value) in chunk.labels.iter() {
                put_bytes(&mut footer, name.as_bytes());
                put_bytes(&mut footer, value.as_bytes());
            }
            put_u64(&mut footer, chunk.meta.fingerprint);
            put_i64(&mut footer, chunk.meta.min_ts);
            put_i64(&mut footer, chunk.meta.max_ts);
            put_u32(&mut footer, chunk.meta.entries);
            put_u64(&mut footer, chunk.meta.raw_bytes);
            put_u64(&mut footer, chunk.offset);
            put_u64(&mut footer, chunk.len);
        }
        let mut out = self.data;
        out.reserve(footer.len() + SEGMENT_TRAILER_LEN);
        out.extend_from_slice(&footer);
        put_u64(&mut out, footer.len() as u64);
        put_u32(&mut out, crc(&footer));
        put_u32(&mut out, VERSION);
        out.extend_from_slice(&MAGIC);
        out
    }
}

/// Reads the footer length from a segment's trailer: the last [`SEGMENT_TRAILER_LEN`] bytes of
/// `trailer`, which may be a longer tail of the segment. Checks magic, version and the
/// [`MAX_SEGMENT_FOOTER_LEN`] cap.
pub fn footer_len_from_trailer(trailer: &[u8]) -> Result<u64> {
    Ok(read_trailer(trailer)?.0)
}

/// (footer length, footer CRC)
fn read_trailer(tail: &[u8]) -> Result<(u64, u32)> {
    const TRAILER: &str = "segment trailer";
    let start = tail
        .len()
        .checked_sub(SEGMENT_TRAILER_LEN)
        .ok_or(Error::Truncated {
            what: TRAILER,
            need: SEGMENT_TRAILER_LEN as u64,
            have: tail.len() as u64,
        })?;
    let mut c = Cursor::new(&tail[start..], TRAILER);
    let footer_len = c.u64()?;
    let footer_crc = c.u32()?;
    let version = c.u32()?;
    if c.array::<4>()? != MAGIC {
        return Err(Error::BadMagic { what: TRAILER });
    }
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            what: "segment",
            version,
        });
    }
    if footer_len > MAX_SEGMENT_FOOTER_LEN {
        return Err(Error::TooLarge {
            what: WHAT,
            len: footer_len,
            limit: MAX_SEGMENT_FOOTER_LEN,
        });
    }
    Ok((footer_len, footer_crc))
}

/// Parses and checks a segment's footer from a tail of the segment holding at least the footer
/// and the trailer (typically exactly those, fetched after [`footer_len_from_trailer`]).
pub fn parse_footer(footer_and_trailer: &[u8]) -> Result<SegmentFooter> {
    Ok(parse_footer_with_data_len(footer_and_trailer)?.0)
}

/// The footer, the length of the chunk data and the length of the footer.
fn parse_footer_with_data_len(tail: &[u8]) -> Result<(SegmentFooter, u64, usize)> {
    let (footer_len, stored_crc) = read_trailer(tail)?;
    // Capped at 64 MiB above, so this fits.
    let footer_len = footer_len as usize;
    let footer_start = (tail.len() - SEGMENT_TRAILER_LEN)
        .checked_sub(footer_len)
        .ok_or(Error::Truncated {
            what: WHAT,
            need: (footer_len + SEGMENT_TRAILER_LEN) as u64,
            have: tail.len() as u64,
        })?;
    let footer = &tail[footer_start..tail.len() - SEGMENT_TRAILER_LEN];
    let computed = crc(footer);
    if computed != stored_crc {
        return Err(Error::ChecksumMismatch {
            what: WHAT,
            stored: stored_crc,
            computed,
        });
    }

    let mut c = Cursor::new(footer, WHAT);
    let tenant = c.str()?;
    Tenant::new(tenant).map_err(|e| Error::corrupt(WHAT, format!("tenant: {e}")))?;
    let data_len = c.u64()?;
    let count = c.uvarint_len(c.remaining() / MIN_CHUNK_RECORD_LEN)?;
    let mut chunks = Vec::with_capacity(count);
    let mut next_offset = 0u64;
    for _ in 0..count {
        // Every label takes at least two bytes of lengths.
        let label_count = c.uvarint_len(c.remaining() / 2)?;
        let mut pairs = Vec::with_capacity(label_count);
        for _ in 0..label_count {
            pairs.push((c.str()?, c.str()?));
        }
        let labels = LabelSet::from_pairs(pairs.iter().copied());
        if !labels.iter().eq(pairs.iter().copied()) {
            return Err(Error::corrupt(WHAT, "label set not in canonical form"));
        }
        let chunk = SegmentChunk {
            labels,
            meta: ChunkMeta {
                fingerprint: c.u64()?,
                min_ts: c.i64()?,
                max_ts: c.i64()?,
                entries: c.u32()?,
                raw_bytes: c.u64()?,
            },
            offset: c.u64()?,
            len: c.u64()?,
        };
        if chunk.offset != next_offset
            || chunk.len == 0
            || chunk.meta.entries == 0
            || chunk.meta.min_ts > chunk.meta.max_ts
        {
            return Err(Error::corrupt(WHAT, "inconsistent chunk record"));
        }
        next_offset = chunk
            .offset
            .checked_add(chunk.len)
            .ok_or_else(|| Error::corrupt(WHAT, "chunk past the end"))?;
        chunks.push(chunk);
    }
    c.finish()?;
    if next_offset != data_len {
        return Err(Error::corrupt(
            WHAT,
            "chunks do not add up to the data length",
        ));
    }
    let footer = SegmentFooter {
        tenant: tenant.to_owned(),
        chunks,
    };
    Ok((footer, data_len, footer_len))
}

/// Parses a whole segment object: its footer, plus a check of every chunk's header and
/// directory against the footer (blocks are not decompressed).
pub fn read_segment(bytes: &[u8]) -> Result<SegmentFooter> {
    let (footer, data_len, footer_len) = parse_footer_with_data_len(bytes)?;
    let expected = data_len
        .checked_add((footer_len + SEGMENT_TRAILER_LEN) as u64)
        .ok_or_else(|| Error::corrupt(WHAT, "data length overflows"))?;
    if expected != bytes.len() as u64 {
        return Err(Error::corrupt(
            "segment",
            format!("{} bytes, footer accounts for {expected}", bytes.len()),
        ));
    }
    for chunk in &footer.chunks {
        // In bounds: the chunks add up to data_len, which is within `bytes`.
        let chunk_bytes = &bytes[chunk.offset as usize..(chunk.offset + chunk.len) as usize];
        if ChunkReader::open(chunk_bytes)?.meta() != chunk.meta {
            return Err(Error::corrupt(
                WHAT,
                "chunk header disagrees with the footer",
            ));
        }
    }
    Ok(footer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_all, ChunkBuilder};
    use fenrir_common::Entry;
    use proptest::prelude::*;

    fn chunk(labels: &LabelSet, entries: &[Entry]) -> EncodedChunk {
        let mut b = ChunkBuilder::new(labels, 64);
        for e in entries {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b.finish(1).unwrap()
    }

    fn fixture() -> (Vec<u8>, Vec<(LabelSet, Vec<Entry>)>) {
        let streams = vec![
            (
                LabelSet::from_pairs([("app", "api"), ("service.name", "a b")]),
                (0..5)
                    .map(|i| Entry::new(i, format!("api {i}")))
                    .collect::<Vec<_>>(),
            ),
            (
                LabelSet::from_pairs([("app", "db")]),
                vec![Entry::new(-3, ""), Entry::new(-3, "ü")],
            ),
            (
                LabelSet::from_pairs([("app", "api"), ("service.name", "a b")]),
                vec![Entry::new(9, "later chunk of the first stream")],
            ),
        ];
        let mut w = SegmentWriter::new(&Tenant::new("team-a").unwrap());
        let mut expected_offset = 0;
        for (labels, entries) in &streams {
            let encoded = chunk(labels, entries);
            let len = encoded.bytes.len() as u64;
            let loc = w.add(labels, encoded);
            assert_eq!(
                loc,
                ChunkLocation {
                    offset: expected_offset,
                    len
                }
            );
            expected_offset += len;
        }
        assert_eq!((w.data_len(), w.chunk_count()), (expected_offset, 3));
        (w.finish(), streams)
    }

    #[test]
    fn segment_round_trips() {
        let (bytes, streams) = fixture();
        let footer = read_segment(&bytes).unwrap();
        assert_eq!(footer.tenant, "team-a");
        assert_eq!(footer.chunks.len(), 3);
        for (chunk, (labels, entries)) in footer.chunks.iter().zip(&streams) {
            assert_eq!(&chunk.labels, labels);
            assert_eq!(chunk.meta.fingerprint, labels.fingerprint());
            assert_eq!(chunk.meta.entries as usize, entries.len());
            let range = chunk.offset as usize..(chunk.offset + chunk.len) as usize;
            assert_eq!(&decode_all(&bytes[range]).unwrap(), entries);
        }
    }

    #[test]
    fn footer_reads_from_the_tail_alone() {
        let (bytes, _) = fixture();
        let trailer = &bytes[bytes.len() - SEGMENT_TRAILER_LEN..];
        let footer_len = footer_len_from_trailer(trailer).unwrap() as usize;
        let tail = &bytes[bytes.len() - footer_len - SEGMENT_TRAILER_LEN..];
        let whole = read_segment(&bytes).unwrap();
        assert_eq!(parse_footer(tail).unwrap(), whole);
        // A longer, speculative tail works too; a shorter one does not.
        assert_eq!(
            parse_footer(&bytes[bytes.len() - footer_len - 100..]).unwrap(),
            whole
        );
        assert_eq!(
            footer_len_from_trailer(&bytes).unwrap() as usize,
            footer_len
        );
        assert!(matches!(
            parse_footer(&tail[1..]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            footer_len_from_trailer(&trailer[1..]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_footer_and_other_versions_are_refused() {
        let (bytes, _) = fixture();
        let mut trailer = bytes[bytes.len() - SEGMENT_TRAILER_LEN..].to_vec();
        trailer[..8].copy_from_slice(&(MAX_SEGMENT_FOOTER_LEN + 1).to_le_bytes());
        assert!(matches!(
            footer_len_from_trailer(&trailer),
            Err(Error::TooLarge { .. })
        ));
        trailer[12] = 2;
        assert!(matches!(
            footer_len_from_trailer(&trailer),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn empty_segment_is_valid() {
        let bytes = SegmentWriter::new(&Tenant::single()).finish();
        let footer = read_segment(&bytes).unwrap();
        assert_eq!(footer.tenant, "fake");
        assert!(footer.chunks.is_empty());
    }

    /// Reads everything a segment holds, as a query or index rebuild would.
    fn read_everything(bytes: &[u8]) -> Result<usize> {
        let footer = read_segment(bytes)?;
        let mut entries = 0;
        for c in &footer.chunks {
            entries += decode_all(&bytes[c.offset as usize..(c.offset + c.len) as usize])?.len();
        }
        Ok(entries)
    }

    #[test]
    fn every_flip_and_truncation_of_a_segment_is_an_error() {
        let (bytes, _) = fixture();
        assert_eq!(read_everything(&bytes).unwrap(), 8);
        for pos in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[pos] ^= flip;
                assert!(
                    read_everything(&bad).is_err(),
                    "flip {flip:#x} at {pos} read"
                );
            }
        }
        for len in 0..bytes.len() {
            assert!(
                read_segment(&bytes[..len]).is_err(),
                "truncation to {len} read"
            );
        }
    }

    proptest! {
        #[test]
        fn random_segments_round_trip(
            streams in prop::collection::vec(
                (
                    prop::collection::vec(("[a-z]{1,4}", "\\PC{0,6}"), 0..4),
                    prop::collection::vec("\\PC{0,20}", 1..6),
                ),
                0..5,
            )
        ) {
            let mut w = SegmentWriter::new(&Tenant::new("prop").unwrap());
            let mut expected = Vec::new();
            for (pairs, lines) in streams {
                let labels = LabelSet::from_pairs(pairs);
                let entries: Vec<Entry> = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| Entry::new(i as i64, l))
                    .collect();
                w.add(&labels, chunk(&labels, &entries));
                expected.push((labels, entries));
            }
            let bytes = w.finish();
            let footer = read_segment(&bytes).unwrap();
            prop_assert_eq!(footer.chunks.len(), expected.len());
            for (c, (labels, entries)) in footer.chunks.iter().zip(&expected) {
                prop_assert_eq!(&c.labels, labels);
                let range = c.offset as usize..(c.offset + c.len) as usize;
                prop_assert_eq!(&decode_all(&bytes[range]).unwrap(), entries);
            }
        }

        #[test]
        fn arbitrary_footers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            // A valid trailer over random footer bytes, so the footer parser itself runs.
            let footer_len = bytes.len() / 2;
            let mut with_trailer = bytes.clone();
            with_trailer.extend_from_slice(&(footer_len as u64).to_le_bytes());
            with_trailer.extend_from_slice(&crc(&bytes[bytes.len() - footer_len..]).to_le_bytes());
            with_trailer.extend_from_slice(&VERSION.to_le_bytes());
            with_trailer.extend_from_slice(&MAGIC);
            prop_assert!(read_segment(&bytes).is_err());
            let _ = parse_footer(&with_trailer);
            let _ = read_segment(&with_trailer);
        }
    }
}
