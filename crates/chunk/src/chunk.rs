//! The chunk: one stream's entries, time-ordered, in independently compressed blocks.
//!
//! Layout, version 2 (integers little-endian; version 1 is the same but its blocks are never
//! columnar, see `block.rs`):
//! ```text
//! header     magic "FNRC", u8 version, u8 flags (0), u16 reserved (0), u64 fingerprint,
//!            i64 min ts, i64 max ts, u32 entries, u32 blocks, u64 raw bytes,
//!            u32 CRC32C of the preceding 48 bytes
//! blocks     per block: zstd frame of the raw block (see `block.rs`), u32 CRC32C of the frame
//! directory  per block: u64 offset, u32 stored length (frame + CRC), u32 raw length,
//!            i64 min ts, i64 max ts, u32 entries, u32 extension length, extension bytes
//! footer     u32 directory length, u32 CRC32C of the directory, magic "FNRC"
//! ```
//! The extension bytes are optional sections (u8 kind, u8 version, u32 length, bytes), reserved
//! for a per-block content skip filter; readers skip kinds they do not know.

use fenrir_common::{Entry, LabelSet};

use crate::block::{BlockBuilder, DecodedBlock, Expected, SealedBlock};
use crate::codec::{crc, put_i64, put_u32, put_u64, Cursor};
use crate::{Error, Result};

const MAGIC: [u8; 4] = *b"FNRC";
const VERSION: u8 = 2;
/// Oldest version this build reads.
const MIN_VERSION: u8 = 1;
const HEADER_LEN: usize = 52;
const FOOTER_LEN: usize = 12;
const BLOCK_CRC_LEN: usize = 4;
/// Directory entry without extension bytes.
const DIR_ENTRY_MIN_LEN: usize = 40;
/// Smallest raw block: its tail alone.
const MIN_BLOCK_RAW_LEN: u32 = 5;

/// Most entries `decode_all` reserves room for before decoding any block.
const MAX_PREALLOCATED_ENTRIES: usize = 64 << 10;

/// Largest raw block a reader will allocate for, and a writer will produce.
pub const MAX_BLOCK_RAW_LEN: usize = 64 << 20;

/// The block size the design aims for: big enough to compress well, small enough that a query
/// decompresses little it does not need.
pub const DEFAULT_BLOCK_TARGET_RAW: usize = 256 << 10;

/// A chunk's summary, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkMeta {
    /// The stream's fingerprint ([`LabelSet::fingerprint`]).
    pub fingerprint: u64,
    /// Smallest entry timestamp, inclusive.
    pub min_ts: i64,
    /// Largest entry timestamp, inclusive.
    pub max_ts: i64,
    /// Number of entries.
    pub entries: u32,
    /// Bytes of lines plus structured metadata names and values, before any encoding.
    pub raw_bytes: u64,
}

/// A block's entry in the chunk directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockMeta {
    /// Offset of the stored block from the start of the chunk.
    pub offset: u64,
    /// Stored length: the zstd frame and its CRC32C.
    pub len: u32,
    /// Decompressed length.
    pub raw_len: u32,
    /// Smallest entry timestamp, inclusive.
    pub min_ts: i64,
    /// Largest entry timestamp, inclusive.
    pub max_ts: i64,
    /// Number of entries.
    pub entries: u32,
}

/// A finished chunk: its bytes and summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedChunk {
    /// The encoded chunk.
    pub bytes: Vec<u8>,
    /// Its header's content.
    pub meta: ChunkMeta,
}

/// Builds one stream's chunk from entries pushed in time order.
#[derive(Debug)]
pub struct ChunkBuilder {
    fingerprint: u64,
    block_target_raw: usize,
    sealed: Vec<SealedBlock>,
    current: BlockBuilder,
    entries: usize,
    raw_bytes: usize,
    min_ts: i64,
    max_ts: i64,
}

impl ChunkBuilder {
    /// A builder for the stream `labels`, cutting a block once its raw size reaches
    /// `block_target_raw` bytes (see [`DEFAULT_BLOCK_TARGET_RAW`]).
    pub fn new(labels: &LabelSet, block_target_raw: usize) -> Self {
        ChunkBuilder {
            fingerprint: labels.fingerprint(),
            block_target_raw: block_target_raw.clamp(1, MAX_BLOCK_RAW_LEN),
            sealed: Vec::new(),
            current: BlockBuilder::default(),
            entries: 0,
            raw_bytes: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }

    /// Appends an entry. Callers sort first: `ts` must not be below the previous entry's.
    /// (In release builds out-of-order entries are still stored and read back exactly, but
    /// readers that merge by time assume order.)
    pub fn push(&mut self, ts: i64, line: &str, structured_metadata: &[(String, String)]) {
        self.push_entry(
            ts,
            line,
            structured_metadata
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
    }

    /// [`ChunkBuilder::push`] with the metadata pairs borrowed from wherever they live.
    pub fn push_entry<'a, I>(&mut self, ts: i64, line: &str, structured_metadata: I)
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: ExactSizeIterator,
    {
        debug_assert!(
            self.entries == 0 || ts >= self.max_ts,
            "chunk entries must be pushed in time order"
        );
        let metadata_bytes = self.current.push(ts, line, structured_metadata.into_iter());
        self.entries += 1;
        self.raw_bytes += line.len() + metadata_bytes;
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        if self.current.encoded_len() >= self.block_target_raw {
            self.sealed.push(self.current.seal());
        }
    }

    /// Bytes of lines plus structured metadata names and values pushed so far.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    /// Number of entries pushed so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Compresses the blocks and lays out the chunk. CPU-heavy: call it off async threads.
    pub fn finish(mut self, zstd_level: i32) -> Result<EncodedChunk> {
        if self.entries == 0 {
            return Err(Error::EmptyChunk);
        }
        let entries = u32::try_from(self.entries).map_err(|_| Error::TooLarge {
            what: "chunk entry count",
            len: self.entries as u64,
            limit: u64::from(u32::MAX),
        })?;
        if self.current.entries() > 0 {
            self.sealed.push(self.current.seal());
        }
        let meta = ChunkMeta {
            fingerprint: self.fingerprint,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            entries,
            raw_bytes: self.raw_bytes as u64,
        };

        let mut out = Vec::with_capacity(HEADER_LEN + self.raw_bytes / 4);
        put_header(&mut out, VERSION, &meta, self.sealed.len());

        let mut directory = Vec::with_capacity(self.sealed.len() * DIR_ENTRY_MIN_LEN);
        for block in &self.sealed {
            if block.raw.len() > MAX_BLOCK_RAW_LEN {
                return Err(Error::TooLarge {
                    what: "raw block",
                    len: block.raw.len() as u64,
                    limit: MAX_BLOCK_RAW_LEN as u64,
                });
            }
            let frame = compress(&block.raw, zstd_level)?;
            put_dir_entry(
                &mut directory,
                &BlockMeta {
                    offset: out.len() as u64,
                    // Both fit: raw is capped at 64 MiB and zstd's bound is barely above its
                    // input.
                    len: (frame.len() + BLOCK_CRC_LEN) as u32,
                    raw_len: block.raw.len() as u32,
                    min_ts: block.min_ts,
                    max_ts: block.max_ts,
                    entries: block.entries,
                },
            );
            out.extend_from_slice(&frame);
            put_u32(&mut out, crc(&frame));
        }
        put_directory_and_footer(&mut out, &directory);
        Ok(EncodedChunk { bytes: out, meta })
    }
}

impl EncodedChunk {
    /// Joins chunks of one stream into one chunk by copying their compressed blocks as they
    /// are: no decompression, no recompression. Each part must hold the same fingerprint and
    /// start at or after the previous part's last timestamp, so the result stays in time
    /// order.
    pub fn concat(parts: &[&EncodedChunk]) -> Result<EncodedChunk> {
        let readers = parts
            .iter()
            .map(|p| ChunkReader::open(&p.bytes))
            .collect::<Result<Vec<_>>>()?;
        let first = readers.first().ok_or(Error::EmptyChunk)?.meta();
        let mut entries = 0u64;
        let mut raw_bytes = 0u64;
        let mut blocks = 0usize;
        let mut stored = 0usize;
        let mut prev_max = i64::MIN;
        // Version 1 blocks are valid version 2 blocks; the reverse is not true.
        let version = readers.iter().map(|r| r.version).max().unwrap_or(VERSION);
        for r in &readers {
            let m = r.meta();
            if m.fingerprint != first.fingerprint {
                return Err(Error::Concat("parts of different streams"));
            }
            if m.min_ts < prev_max {
                return Err(Error::Concat("parts overlap or are out of time order"));
            }
            prev_max = m.max_ts;
            entries += u64::from(m.entries);
            raw_bytes += m.raw_bytes;
            blocks += r.blocks().len();
            stored += r.blocks().iter().map(|b| b.len as usize).sum::<usize>();
        }
        let entries = u32::try_from(entries).map_err(|_| Error::TooLarge {
            what: "chunk entry count",
            len: entries,
            limit: u64::from(u32::MAX),
        })?;
        let meta = ChunkMeta {
            fingerprint: first.fingerprint,
            min_ts: first.min_ts,
            max_ts: prev_max,
            entries,
            raw_bytes,
        };
        let mut out =
            Vec::with_capacity(HEADER_LEN + stored + blocks * DIR_ENTRY_MIN_LEN + FOOTER_LEN);
        put_header(&mut out, version, &meta, blocks);
        let mut directory = Vec::with_capacity(blocks * DIR_ENTRY_MIN_LEN);
        for r in &readers {
            for b in r.blocks() {
                let start = b.offset as usize;
                put_dir_entry(
                    &mut directory,
                    &BlockMeta {
                        offset: out.len() as u64,
                        ..*b
                    },
                );
                // In bounds: `ChunkReader::open` checked every block against the chunk.
                out.extend_from_slice(&r.bytes[start..start + b.len as usize]);
            }
        }
        put_directory_and_footer(&mut out, &directory);
        Ok(EncodedChunk { bytes: out, meta })
    }
}

fn put_header(out: &mut Vec<u8>, version: u8, meta: &ChunkMeta, blocks: usize) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[version, 0, 0, 0]);
    put_u64(out, meta.fingerprint);
    put_i64(out, meta.min_ts);
    put_i64(out, meta.max_ts);
    put_u32(out, meta.entries);
    put_u32(out, blocks as u32);
    put_u64(out, meta.raw_bytes);
    let header_crc = crc(&out[out.len() - (HEADER_LEN - 4)..]);
    put_u32(out, header_crc);
}

fn put_dir_entry(directory: &mut Vec<u8>, b: &BlockMeta) {
    put_u64(directory, b.offset);
    put_u32(directory, b.len);
    put_u32(directory, b.raw_len);
    put_i64(directory, b.min_ts);
    put_i64(directory, b.max_ts);
    put_u32(directory, b.entries);
    put_u32(directory, 0); // no extension sections yet
}

fn put_directory_and_footer(out: &mut Vec<u8>, directory: &[u8]) {
    out.extend_from_slice(directory);
    put_u32(out, directory.len() as u32);
    put_u32(out, crc(directory));
    out.extend_from_slice(&MAGIC);
}

/// Reads a chunk. Opening validates the header and directory; blocks are decoded on demand.
#[derive(Debug, Clone)]
pub struct ChunkReader<'a> {
    bytes: &'a [u8],
    version: u8,
    meta: ChunkMeta,
    blocks: Vec<BlockMeta>,
}

impl<'a> ChunkReader<'a> {
    /// Checks magic, version, checksums and every length and offset of header and directory.
    /// `bytes` must be exactly one chunk.
    pub fn open(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN + FOOTER_LEN {
            return Err(Error::Truncated {
                what: "chunk",
                need: (HEADER_LEN + FOOTER_LEN) as u64,
                have: bytes.len() as u64,
            });
        }
        let directory = ChunkDirectory::parse(&bytes[..HEADER_LEN], bytes, bytes.len() as u64)?;
        Ok(ChunkReader {
            bytes,
            version: bytes[4],
            meta: directory.meta,
            blocks: directory.blocks,
        })
    }

    /// The chunk's summary.
    pub fn meta(&self) -> ChunkMeta {
        self.meta
    }

    /// The blocks, in time order.
    pub fn blocks(&self) -> &[BlockMeta] {
        &self.blocks
    }

    /// Checks and decompresses block `i`. Decompression never produces more than the block's
    /// declared raw length, itself capped at [`MAX_BLOCK_RAW_LEN`].
    pub fn decode_block(&self, i: usize) -> Result<DecodedBlock> {
        let block = self.blocks.get(i).ok_or(Error::BlockOutOfRange {
            index: i,
            blocks: self.blocks.len(),
        })?;
        let start = block.offset as usize;
        let stored = self
            .bytes
            .get(start..start + block.len as usize)
            .ok_or_else(|| Error::corrupt("chunk block", "block past the chunk"))?;
        decode_stored_block(stored, block)
    }
}

/// A chunk's header and block directory, read without its blocks: with it a reader fetches
/// only the blocks it needs ([`BlockMeta::offset`], [`BlockMeta::len`]) and decodes them with
/// [`decode_stored_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDirectory {
    /// The chunk's summary.
    pub meta: ChunkMeta,
    /// The blocks, in time order.
    pub blocks: Vec<BlockMeta>,
}

impl ChunkDirectory {
    /// Bytes of the chunk's start that hold the header.
    pub const HEADER_LEN: usize = HEADER_LEN;
    /// Bytes of the chunk's end that hold the footer.
    pub const FOOTER_LEN: usize = FOOTER_LEN;

    /// How many bytes of the chunk's end hold the directory and footer, from the footer
    /// (the chunk's last [`ChunkDirectory::FOOTER_LEN`] bytes).
    pub fn tail_len(footer: &[u8]) -> Result<usize> {
        let mut f = Cursor::new(footer, "chunk footer");
        let dir_len = f.u32()? as usize;
        Ok(dir_len + FOOTER_LEN)
    }

    /// Parses and checks the header (the chunk's first [`ChunkDirectory::HEADER_LEN`] bytes)
    /// and the directory, which must lie in `tail`: the last `tail.len()` bytes of a chunk of
    /// `chunk_len` bytes (at least [`ChunkDirectory::tail_len`] of them).
    pub fn parse(header: &[u8], tail: &[u8], chunk_len: u64) -> Result<Self> {
        const WHAT: &str = "chunk header";
        if header.len() < HEADER_LEN || tail.len() < FOOTER_LEN || (tail.len() as u64) > chunk_len {
            return Err(Error::Truncated {
                what: "chunk",
                need: (HEADER_LEN + FOOTER_LEN) as u64,
                have: header.len().min(tail.len()) as u64,
            });
        }
        let mut h = Cursor::new(&header[..HEADER_LEN], WHAT);
        if h.array::<4>()? != MAGIC {
            return Err(Error::BadMagic { what: WHAT });
        }
        let version = h.u8()?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                what: "chunk",
                version: version.into(),
            });
        }
        if h.u8()? != 0 || h.u16()? != 0 {
            return Err(Error::corrupt(WHAT, "reserved bits set"));
        }
        let fingerprint = h.u64()?;
        let min_ts = h.i64()?;
        let max_ts = h.i64()?;
        let entries = h.u32()?;
        let block_count = h.u32()? as usize;
        let raw_bytes = h.u64()?;
        let stored = h.u32()?;
        check_crc(WHAT, stored, &header[..HEADER_LEN - 4])?;
        if entries == 0 || block_count == 0 || min_ts > max_ts {
            return Err(Error::corrupt(WHAT, "empty or inverted"));
        }
        let meta = ChunkMeta {
            fingerprint,
            min_ts,
            max_ts,
            entries,
            raw_bytes,
        };

        let mut f = Cursor::new(&tail[tail.len() - FOOTER_LEN..], "chunk footer");
        let dir_len = f.u32()? as usize;
        let dir_crc = f.u32()?;
        if f.array::<4>()? != MAGIC {
            return Err(Error::BadMagic {
                what: "chunk footer",
            });
        }
        // Offsets below are from the chunk's start; `tail` starts at `tail_start`.
        let tail_start = chunk_len - tail.len() as u64;
        let blocks_end = (chunk_len - FOOTER_LEN as u64)
            .checked_sub(dir_len as u64)
            .filter(|end| *end >= HEADER_LEN as u64)
            .ok_or_else(|| Error::corrupt("chunk footer", "directory length past the header"))?;
        if blocks_end < tail_start {
            return Err(Error::Truncated {
                what: "chunk directory",
                need: (dir_len + FOOTER_LEN) as u64,
                have: tail.len() as u64,
            });
        }
        let dir_start = (blocks_end - tail_start) as usize;
        let directory = &tail[dir_start..tail.len() - FOOTER_LEN];
        check_crc("chunk directory", dir_crc, directory)?;
        let blocks = parse_directory(directory, block_count, &meta, blocks_end)?;
        Ok(ChunkDirectory { meta, blocks })
    }
}

/// Checks and decompresses one stored block (its zstd frame and CRC32C, as found at
/// `block.offset` in the chunk). Decompression never produces more than the block's
/// declared raw length, itself capped at [`MAX_BLOCK_RAW_LEN`].
pub fn decode_stored_block(stored: &[u8], block: &BlockMeta) -> Result<DecodedBlock> {
    decode_stored_block_parts(stored, block, BlockParts::ALL)
}

/// Which parts of a block's entries a reader needs. Parts left out come back empty (every
/// line `""`, no metadata pairs) and cost little: a columnar block does not rebuild them
/// (its line section is only parsed, to reach the metadata), a row-wise block does not check
/// them as UTF-8. Timestamps and the entry count are always decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockParts {
    /// The line text.
    pub lines: bool,
    /// Structured metadata.
    pub metadata: bool,
}

impl BlockParts {
    /// Everything.
    pub const ALL: BlockParts = BlockParts {
        lines: true,
        metadata: true,
    };
}

/// [`decode_stored_block`], decoding only `parts` (see [`BlockParts`]).
pub fn decode_stored_block_parts(
    stored: &[u8],
    block: &BlockMeta,
    parts: BlockParts,
) -> Result<DecodedBlock> {
    const WHAT: &str = "chunk block";
    if stored.len() != block.len as usize || stored.len() <= BLOCK_CRC_LEN {
        return Err(Error::corrupt(
            WHAT,
            "stored length differs from the directory",
        ));
    }
    if block.raw_len as usize > MAX_BLOCK_RAW_LEN {
        return Err(Error::TooLarge {
            what: "raw block",
            len: block.raw_len.into(),
            limit: MAX_BLOCK_RAW_LEN as u64,
        });
    }
    let (frame, stored_crc) = stored.split_at(stored.len() - BLOCK_CRC_LEN);
    let stored_crc = Cursor::new(stored_crc, WHAT).u32()?;
    check_crc(WHAT, stored_crc, frame)?;
    let raw = decompress(frame, block.raw_len as usize)?;
    if raw.len() != block.raw_len as usize {
        return Err(Error::corrupt(
            WHAT,
            "raw length differs from the directory",
        ));
    }
    DecodedBlock::decode_parts(
        raw,
        &Expected {
            entries: block.entries,
            min_ts: block.min_ts,
            max_ts: block.max_ts,
        },
        parts,
    )
}

fn check_crc(what: &'static str, stored: u32, bytes: &[u8]) -> Result<()> {
    let computed = crc(bytes);
    if stored == computed {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            what,
            stored,
            computed,
        })
    }
}

/// Parses the directory and checks it against the header: blocks back to back from the header
/// to the directory, adding up to the header's counts and range.
fn parse_directory(
    directory: &[u8],
    block_count: usize,
    meta: &ChunkMeta,
    blocks_end: u64,
) -> Result<Vec<BlockMeta>> {
    const WHAT: &str = "chunk directory";
    if block_count > directory.len() / DIR_ENTRY_MIN_LEN {
        return Err(Error::corrupt(
            WHAT,
            "more blocks than the directory can hold",
        ));
    }
    let mut c = Cursor::new(directory, WHAT);
    let mut blocks = Vec::with_capacity(block_count);
    let mut next_offset = HEADER_LEN as u64;
    let mut entries = 0u64;
    let mut min_ts = i64::MAX;
    let mut max_ts = i64::MIN;
    for _ in 0..block_count {
        let block = BlockMeta {
            offset: c.u64()?,
            len: c.u32()?,
            raw_len: c.u32()?,
            min_ts: c.i64()?,
            max_ts: c.i64()?,
            entries: c.u32()?,
        };
        let extension_len = c.u32()? as usize;
        skip_extensions(c.bytes(extension_len)?)?;
        if block.offset != next_offset
            || (block.len as usize) <= BLOCK_CRC_LEN
            || block.raw_len < MIN_BLOCK_RAW_LEN
            || block.entries == 0
            || block.min_ts > block.max_ts
        {
            return Err(Error::corrupt(WHAT, "inconsistent block entry"));
        }
        if block.raw_len as usize > MAX_BLOCK_RAW_LEN {
            return Err(Error::TooLarge {
                what: "raw block",
                len: block.raw_len.into(),
                limit: MAX_BLOCK_RAW_LEN as u64,
            });
        }
        next_offset += u64::from(block.len);
        entries += u64::from(block.entries);
        min_ts = min_ts.min(block.min_ts);
        max_ts = max_ts.max(block.max_ts);
        blocks.push(block);
    }
    c.finish()?;
    if next_offset != blocks_end
        || entries != u64::from(meta.entries)
        || min_ts != meta.min_ts
        || max_ts != meta.max_ts
    {
        return Err(Error::corrupt(WHAT, "blocks disagree with the header"));
    }
    Ok(blocks)
}

/// Walks the optional per-block sections; none is defined yet, so all are skipped.
fn skip_extensions(bytes: &[u8]) -> Result<()> {
    let mut c = Cursor::new(bytes, "block extension");
    while !c.is_empty() {
        let _kind = c.u8()?;
        let _version = c.u8()?;
        let len = c.u32()? as usize;
        c.bytes(len)?;
    }
    Ok(())
}

/// Decodes every entry of a chunk, for tests and small uses.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Entry>> {
    let reader = ChunkReader::open(bytes)?;
    // The header's count is only checked against the directory here, not against the
    // blocks: a crafted chunk may claim 4 billion entries, so preallocate a bounded amount.
    let mut out =
        Vec::with_capacity((reader.meta().entries as usize).min(MAX_PREALLOCATED_ENTRIES));
    for i in 0..reader.blocks().len() {
        out.extend(reader.decode_block(i)?.iter().map(|e| e.to_entry()));
    }
    Ok(out)
}

/// Compresses one block with this thread's reusable zstd context: a context per block
/// costs an allocation of about a megabyte and its setup.
fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let zstd_error = |source| Error::Zstd {
        op: "compress",
        source,
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some((current, c)) if *current == level => c,
            _ => {
                let c = zstd::bulk::Compressor::new(level).map_err(zstd_error)?;
                &mut slot.insert((level, c)).1
            }
        };
        compressor.compress(raw).map_err(zstd_error)
    })
}

/// Decompresses one block frame with this thread's reusable zstd context: creating a
/// context per block costs about as much as decompressing a small block.
fn decompress(frame: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let zstd_error = |source| Error::Zstd {
        op: "decompress",
        source,
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new().map_err(zstd_error)?),
        };
        decompressor.decompress(frame, raw_len).map_err(zstd_error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels() -> LabelSet {
        LabelSet::from_pairs([("app", "api"), ("env", "prod")])
    }

    fn encode(entries: &[Entry], block_target_raw: usize) -> EncodedChunk {
        let mut b = ChunkBuilder::new(&labels(), block_target_raw);
        for e in entries {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b.finish(3).unwrap()
    }

    fn sample() -> Vec<Entry> {
        let mut entries: Vec<Entry> = (0..40)
            .map(|i| Entry::new(1_700_000_000_000_000_000 + i / 3, format!("line {i} ✓")))
            .collect();
        entries[5].line.clear();
        entries[7].structured_metadata = vec![("trace_id".into(), "t-7".into())];
        entries[30].structured_metadata = vec![("a".into(), "1".into()), ("b".into(), "".into())];
        entries
    }

    #[test]
    fn multi_block_chunk_round_trips() {
        let entries = sample();
        let chunk = encode(&entries, 64);
        let reader = ChunkReader::open(&chunk.bytes).unwrap();
        assert_eq!(reader.meta(), chunk.meta);
        assert_eq!(chunk.meta.fingerprint, labels().fingerprint());
        assert_eq!(chunk.meta.entries, 40);
        assert_eq!(chunk.meta.min_ts, entries[0].ts);
        assert_eq!(chunk.meta.max_ts, entries[39].ts);
        let raw: usize =
            entries.iter().map(|e| e.line.len()).sum::<usize>() + "trace_idt-7a1b".len();
        assert_eq!(chunk.meta.raw_bytes, raw as u64);
        assert!(reader.blocks().len() > 3, "{:?}", reader.blocks());
        let mut prev_max = i64::MIN;
        for b in reader.blocks() {
            assert!(b.min_ts >= prev_max && b.min_ts <= b.max_ts);
            prev_max = b.max_ts;
        }
        assert_eq!(decode_all(&chunk.bytes).unwrap(), entries);

        let backward: Vec<Entry> = (0..reader.blocks().len())
            .rev()
            .flat_map(|i| {
                let block = reader.decode_block(i).unwrap();
                block.iter().rev().map(|e| e.to_entry()).collect::<Vec<_>>()
            })
            .collect();
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(backward, reversed);
        assert!(matches!(
            reader.decode_block(reader.blocks().len()),
            Err(Error::BlockOutOfRange { .. })
        ));
    }

    #[test]
    fn directory_from_header_and_tail_reads_single_blocks() {
        let entries = sample();
        let chunk = encode(&entries, 64);
        let bytes = &chunk.bytes;
        let len = bytes.len() as u64;
        let header = &bytes[..ChunkDirectory::HEADER_LEN];
        let tail_len =
            ChunkDirectory::tail_len(&bytes[bytes.len() - ChunkDirectory::FOOTER_LEN..]).unwrap();
        let directory =
            ChunkDirectory::parse(header, &bytes[bytes.len() - tail_len..], len).unwrap();
        let reader = ChunkReader::open(bytes).unwrap();
        assert_eq!(directory.meta, reader.meta());
        assert_eq!(directory.blocks, reader.blocks());
        // A longer tail works too; a shorter one says how much is needed.
        assert_eq!(
            ChunkDirectory::parse(header, &bytes[bytes.len() - tail_len - 9..], len).unwrap(),
            directory
        );
        assert!(matches!(
            ChunkDirectory::parse(header, &bytes[bytes.len() - tail_len + 1..], len),
            Err(Error::Truncated { need, .. }) if need == tail_len as u64
        ));
        let mut decoded = Vec::new();
        for b in &directory.blocks {
            let stored = &bytes[b.offset as usize..(b.offset + u64::from(b.len)) as usize];
            decoded.extend(
                decode_stored_block(stored, b)
                    .unwrap()
                    .iter()
                    .map(|e| e.to_entry()),
            );
            // The wrong block's bytes fail their checks.
            let other = &directory.blocks[0];
            if other != b {
                assert!(decode_stored_block(stored, other).is_err());
            }
        }
        assert_eq!(decoded, entries);
    }

    #[test]
    fn stored_blocks_decode_only_the_parts_asked_for() {
        let chunk = encode(&sample(), 64);
        let reader = ChunkReader::open(&chunk.bytes).unwrap();
        assert!(reader.blocks().len() > 1);
        for b in reader.blocks() {
            let stored = &chunk.bytes[b.offset as usize..(b.offset + u64::from(b.len)) as usize];
            let full = decode_stored_block(stored, b).unwrap();
            for (lines, metadata) in [(true, false), (false, true), (false, false)] {
                let parts = BlockParts { lines, metadata };
                let got = decode_stored_block_parts(stored, b, parts).unwrap();
                assert_eq!(got.timestamps(), full.timestamps());
                for (g, f) in got.iter().zip(full.iter()) {
                    assert_eq!(g.line, if lines { f.line } else { "" });
                    let want = if metadata {
                        f.structured_metadata.to_vec()
                    } else {
                        vec![]
                    };
                    assert_eq!(g.structured_metadata.to_vec(), want);
                }
            }
        }
    }

    #[test]
    fn default_target_keeps_small_chunks_in_one_block() {
        let chunk = encode(&sample(), DEFAULT_BLOCK_TARGET_RAW);
        assert_eq!(ChunkReader::open(&chunk.bytes).unwrap().blocks().len(), 1);
        assert_eq!(decode_all(&chunk.bytes).unwrap(), sample());
    }

    #[test]
    fn builder_counts_and_refuses_empty_chunks() {
        let mut b = ChunkBuilder::new(&labels(), 1024);
        assert!(b.is_empty());
        assert!(matches!(
            ChunkBuilder::new(&labels(), 1024).finish(1),
            Err(Error::EmptyChunk)
        ));
        b.push(1, "abc", &[("k".into(), "vv".into())]);
        b.push(2, "", &[]);
        assert_eq!((b.len(), b.raw_bytes()), (2, 6));
    }

    #[test]
    fn concat_copies_blocks_into_one_chunk() {
        let entries = sample();
        let parts: Vec<EncodedChunk> = [&entries[..7], &entries[7..8], &entries[8..]]
            .iter()
            .map(|part| encode(part, 64))
            .collect();
        let refs: Vec<&EncodedChunk> = parts.iter().collect();
        let joined = EncodedChunk::concat(&refs).unwrap();
        let whole = encode(&entries, 64);
        assert_eq!(joined.meta, whole.meta);
        assert_eq!(decode_all(&joined.bytes).unwrap(), entries);
        let reader = ChunkReader::open(&joined.bytes).unwrap();
        let part_blocks: usize = parts
            .iter()
            .map(|p| ChunkReader::open(&p.bytes).unwrap().blocks().len())
            .sum();
        assert_eq!(reader.blocks().len(), part_blocks);
        assert_eq!(
            EncodedChunk::concat(&refs[..1]).unwrap().bytes,
            parts[0].bytes
        );

        assert!(matches!(EncodedChunk::concat(&[]), Err(Error::EmptyChunk)));
        let backwards = [refs[2], refs[0]];
        assert!(matches!(
            EncodedChunk::concat(&backwards),
            Err(Error::Concat(_))
        ));
        let mut other = ChunkBuilder::new(&LabelSet::from_pairs([("app", "other")]), 64);
        other.push(i64::MAX, "x", &[]);
        let other = other.finish(1).unwrap();
        assert!(matches!(
            EncodedChunk::concat(&[refs[0], &other]),
            Err(Error::Concat(_))
        ));
        let mut broken = parts[1].clone();
        broken.bytes[10] ^= 1;
        assert!(EncodedChunk::concat(&[refs[0], &broken]).is_err());
    }

    #[test]
    fn unsupported_version_is_a_typed_error() {
        let mut bytes = encode(&sample(), 64).bytes;
        bytes[4] = 3;
        assert!(matches!(
            ChunkReader::open(&bytes),
            Err(Error::UnsupportedVersion { version: 3, .. })
        ));
    }

    #[test]
    fn unknown_extension_sections_are_skipped() {
        // Rebuild a one-block chunk with a future section in its directory entry.
        let chunk = encode(&sample()[..3], DEFAULT_BLOCK_TARGET_RAW);
        let bytes = &chunk.bytes;
        let dir_len = DIR_ENTRY_MIN_LEN;
        let dir_start = bytes.len() - FOOTER_LEN - dir_len;
        let mut directory = bytes[dir_start..dir_start + dir_len].to_vec();
        let section = [7u8, 1, 2, 0, 0, 0, 0xaa, 0xbb];
        directory.truncate(dir_len - 4);
        put_u32(&mut directory, section.len() as u32);
        directory.extend_from_slice(&section);
        let mut rebuilt = bytes[..dir_start].to_vec();
        rebuilt.extend_from_slice(&directory);
        put_u32(&mut rebuilt, directory.len() as u32);
        put_u32(&mut rebuilt, crc(&directory));
        rebuilt.extend_from_slice(&MAGIC);
        assert_eq!(decode_all(&rebuilt).unwrap(), sample()[..3]);
    }

    #[test]
    fn every_flip_and_truncation_of_a_chunk_is_an_error() {
        let bytes = encode(&sample()[..8], 48).bytes;
        assert!(ChunkReader::open(&bytes).unwrap().blocks().len() > 1);
        for pos in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[pos] ^= flip;
                assert!(decode_all(&bad).is_err(), "flip {flip:#x} at {pos} decoded");
            }
        }
        for len in 0..bytes.len() {
            assert!(
                decode_all(&bytes[..len]).is_err(),
                "truncation to {len} decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_all(&longer).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [vec![], vec![0u8; 100], b"FNRC".repeat(30)] {
            assert!(ChunkReader::open(&bytes).is_err());
        }
    }

    fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
        let metadata = prop::collection::vec(("[a-z_]{0,6}", "\\PC{0,8}"), 0..3);
        let entry = (
            0i64..1_000,
            "\\PC{0,40}",
            prop::bool::weighted(0.3),
            metadata,
        );
        prop::collection::vec(entry, 1..60).prop_map(|raw| {
            let mut ts = -500i64;
            raw.into_iter()
                .map(|(delta, line, with_metadata, metadata)| {
                    // Many equal timestamps: zero deltas are common.
                    ts += if delta < 300 { 0 } else { delta };
                    Entry {
                        ts,
                        line,
                        structured_metadata: if with_metadata { metadata } else { Vec::new() },
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn entries_round_trip(entries in arb_entries(), target in 1usize..400, level in 1i32..4) {
            let mut b = ChunkBuilder::new(&labels(), target);
            for e in &entries {
                b.push(e.ts, &e.line, &e.structured_metadata);
            }
            let chunk = b.finish(level).unwrap();
            prop_assert_eq!(chunk.meta.entries as usize, entries.len());
            prop_assert_eq!(decode_all(&chunk.bytes).unwrap(), entries.clone());

            let reader = ChunkReader::open(&chunk.bytes).unwrap();
            let mut backward = Vec::new();
            for i in (0..reader.blocks().len()).rev() {
                let block = reader.decode_block(i).unwrap();
                backward.extend(block.iter().rev().map(|e| e.to_entry()));
            }
            backward.reverse();
            prop_assert_eq!(backward, entries);
        }
    }

    /// Rewrites header and directory checksums so that edits reach the parsers behind them.
    fn reseal(bytes: &mut [u8]) {
        let header_crc = crc(&bytes[..HEADER_LEN - 4]);
        bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&header_crc.to_le_bytes());
        let footer = bytes.len() - FOOTER_LEN;
        let dir_len = u32::from_le_bytes(bytes[footer..footer + 4].try_into().unwrap()) as usize;
        if let Some(start) = footer.checked_sub(dir_len).filter(|s| *s >= HEADER_LEN) {
            let dir_crc = crc(&bytes[start..footer]);
            bytes[footer + 4..footer + 8].copy_from_slice(&dir_crc.to_le_bytes());
        }
    }

    #[test]
    fn decode_all_does_not_trust_the_entry_count_for_allocation() {
        // A one-block chunk whose header and directory claim u32::MAX entries, with valid
        // checksums: decoding the block fails, and nothing is allocated for the claim first.
        let mut bytes = encode(&sample()[..3], DEFAULT_BLOCK_TARGET_RAW).bytes;
        bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        let dir_start = bytes.len() - FOOTER_LEN - DIR_ENTRY_MIN_LEN;
        bytes[dir_start + 32..dir_start + 36].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut bytes);
        assert_eq!(ChunkReader::open(&bytes).unwrap().meta().entries, u32::MAX);
        assert!(matches!(decode_all(&bytes), Err(Error::Corrupt { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(decode_all(&bytes).is_err());
        }

        #[test]
        fn edited_and_resealed_chunks_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode(&sample()[..8], 48).bytes;
            let mut changed = false;
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                changed |= bytes[i] != byte;
                bytes[i] = byte;
            }
            reseal(&mut bytes);
            if let Ok(entries) = decode_all(&bytes) {
                // Only edits to checksum fields that reseal rewrote can leave a valid chunk.
                prop_assert!(!changed || entries == sample()[..8]);
            }
        }
    }
}
