//! Fenrir's storage formats, pure over bytes (no I/O).
//!
//! A **chunk** holds one stream's entries in time order, split into independently
//! zstd-compressed blocks with a directory of their time ranges, so a query decompresses only
//! the blocks it needs. A **segment** packs the chunks of one flush cycle, of one tenant, into one
//! object whose footer lists every chunk's labels and summary: the index can be rebuilt from the
//! footers alone.
//!
//! Both formats carry magic numbers, a format version and CRC32C checksums; decoding corrupt or
//! hostile bytes returns an [`Error`], never panics, and allocates no more than capped sizes.
#![warn(missing_docs)]

mod block;
mod chunk;
mod codec;
mod columnar;
mod error;
mod segment;

pub use block::{BlockIter, DecodedBlock, EntryRef, MetadataIter, MetadataRef};
pub use chunk::{
    decode_all, decode_stored_block, decode_stored_block_parts, BlockMeta, BlockParts,
    ChunkBuilder, ChunkDirectory, ChunkMeta, ChunkReader, EncodedChunk, DEFAULT_BLOCK_TARGET_RAW,
    MAX_BLOCK_RAW_LEN,
};
pub use error::{Error, Result};
pub use segment::{
    footer_len_from_trailer, parse_footer, read_segment, ChunkLocation, SegmentChunk,
    SegmentFooter, SegmentWriter, MAX_SEGMENT_FOOTER_LEN, SEGMENT_TRAILER_LEN,
};
