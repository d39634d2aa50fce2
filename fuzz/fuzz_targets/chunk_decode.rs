//! Chunk and segment bytes as read back from the object store: opening, decoding every block
//! and iterating every entry never panic, whatever the bytes.
//!
//! First byte (mod 5) picks how the rest is used:
//! 0. a chunk as is;
//! 1. a chunk whose checksums are recomputed here first, so that mutations reach the
//!    directory, block and zstd decoding instead of stopping at a CRC mismatch;
//! 2. a segment object as is (footer, trailer, then every chunk it lists);
//! 3. a segment whose footer and chunk checksums are recomputed first;
//! 4. one raw (uncompressed) block: `u32 entries | i64 min ts | i64 max ts | block bytes`,
//!    wrapped here in a valid one-block chunk (version 2), which fuzzes the block decoders
//!    (row-wise and columnar) directly.
//!
//! The first byte divided by 5 (mod 4) picks the parts every block is also decoded with
//! (`decode_stored_block_parts`): 0 all, 1 lines only, 2 metadata only, 3 neither. A block
//! that decodes whole must decode in parts too, to the same timestamps and the parts asked
//! for (lines `""` and no metadata otherwise).
#![no_main]

use fenrir_chunk::{
    decode_all, decode_stored_block_parts, footer_len_from_trailer, parse_footer, read_segment,
    BlockParts, ChunkReader,
};
use libfuzzer_sys::fuzz_target;

const CHUNK_HEADER_LEN: usize = 52;
const CHUNK_FOOTER_LEN: usize = 12;
const DIR_ENTRY_LEN: usize = 40;
const SEGMENT_TRAILER_LEN: usize = 20;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_crc(b: &mut [u8], at: usize, crc: u32) {
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes the header, block and directory checksums of a chunk in place, reading the
/// directory leniently (whatever entries fit).
fn repair_chunk(b: &mut [u8]) {
    let n = b.len();
    if n < CHUNK_HEADER_LEN + CHUNK_FOOTER_LEN {
        return;
    }
    let crc = crc32c::crc32c(&b[..CHUNK_HEADER_LEN - 4]);
    put_crc(b, CHUNK_HEADER_LEN - 4, crc);
    let dir_end = n - CHUNK_FOOTER_LEN;
    let dir_len = u32_at(b, dir_end) as usize;
    let Some(dir_start) = dir_end
        .checked_sub(dir_len)
        .filter(|s| *s >= CHUNK_HEADER_LEN)
    else {
        return;
    };
    let mut pos = dir_start;
    while pos + DIR_ENTRY_LEN <= dir_end {
        let offset = u64_at(b, pos) as usize;
        let len = u32_at(b, pos + 8) as usize;
        let extension_len = u32_at(b, pos + 36) as usize;
        if len > 4 && offset.checked_add(len).is_some_and(|end| end <= dir_start) {
            let crc = crc32c::crc32c(&b[offset..offset + len - 4]);
            put_crc(b, offset + len - 4, crc);
        }
        pos = match (pos + DIR_ENTRY_LEN).checked_add(extension_len) {
            Some(p) => p,
            None => break,
        };
    }
    let crc = crc32c::crc32c(&b[dir_start..dir_end]);
    put_crc(b, dir_end + 4, crc);
}

/// Recomputes a segment's footer checksum, then the checksums of every chunk it lists.
fn repair_segment(b: &mut [u8]) {
    let n = b.len();
    if n < SEGMENT_TRAILER_LEN {
        return;
    }
    let trailer = n - SEGMENT_TRAILER_LEN;
    let footer_len = u64_at(b, trailer);
    let Some(footer_start) = usize::try_from(footer_len)
        .ok()
        .and_then(|l| trailer.checked_sub(l))
    else {
        return;
    };
    let crc = crc32c::crc32c(&b[footer_start..trailer]);
    put_crc(b, trailer + 8, crc);
    let Ok(footer) = parse_footer(b) else {
        return;
    };
    for chunk in footer.chunks {
        let (Ok(start), Ok(len)) = (usize::try_from(chunk.offset), usize::try_from(chunk.len))
        else {
            return;
        };
        match start.checked_add(len) {
            Some(end) if end <= footer_start => repair_chunk(&mut b[start..end]),
            _ => return,
        }
    }
}

/// Opens a chunk and walks every entry of every block, as a query scan does, also decoding
/// each block with only `parts`; then decodes it whole.
fn read_chunk(bytes: &[u8], parts: BlockParts) {
    if let Ok(entries) = decode_all(bytes) {
        assert!(!entries.is_empty());
    }
    let Ok(reader) = ChunkReader::open(bytes) else {
        return;
    };
    let _ = reader.meta();
    for (i, meta) in reader.blocks().iter().enumerate() {
        let place = usize::try_from(meta.offset)
            .ok()
            .and_then(|start| bytes.get(start..start.checked_add(meta.len as usize)?));
        let Some(stored) = place else {
            assert!(reader.decode_block(i).is_err());
            continue;
        };
        let partial = decode_stored_block_parts(stored, meta, parts);
        if let Ok(block) = &partial {
            for entry in block.iter().rev() {
                let _ = entry.to_entry();
            }
        }
        let Ok(block) = reader.decode_block(i) else {
            continue;
        };
        let partial = partial.expect("a block that decodes whole decodes in parts");
        assert_eq!(partial.timestamps(), block.timestamps());
        for (got, whole) in partial.iter().zip(block.iter()) {
            assert_eq!(got.line, if parts.lines { whole.line } else { "" });
            if parts.metadata {
                assert_eq!(got.structured_metadata, whole.structured_metadata);
            } else {
                assert!(got.structured_metadata.is_empty());
            }
        }
        assert!(block.get(block.len()).is_none());
        let mut seen = 0usize;
        for entry in block.iter() {
            seen += 1;
            for (name, value) in entry.structured_metadata.iter() {
                assert!(entry.structured_metadata.get(name).is_some());
                let _ = value.len();
            }
            let _ = entry.to_entry();
        }
        assert_eq!(seen, block.len());
        assert_eq!(block.timestamps().len(), block.len());
    }
    // Out of range is an error, not a panic.
    assert!(reader.decode_block(reader.blocks().len()).is_err());
}

fn read_whole_segment(bytes: &[u8], parts: BlockParts) {
    let _ = footer_len_from_trailer(bytes);
    let _ = parse_footer(bytes);
    let Ok(footer) = read_segment(bytes) else {
        return;
    };
    for chunk in &footer.chunks {
        read_chunk(
            &bytes[chunk.offset as usize..(chunk.offset + chunk.len) as usize],
            parts,
        );
    }
}

/// A valid one-block chunk around `raw`, with the directory claiming `entries`, `min_ts`,
/// `max_ts`.
fn wrap_block(raw: &[u8], entries: u32, min_ts: i64, max_ts: i64) -> Option<Vec<u8>> {
    let frame = zstd::bulk::compress(raw, 1).ok()?;
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + frame.len() + 64);
    out.extend_from_slice(b"FNRC");
    // Version 2: its blocks may be row-wise or columnar.
    out.extend_from_slice(&[2, 0, 0, 0]);
    out.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    out.extend_from_slice(&min_ts.to_le_bytes());
    out.extend_from_slice(&max_ts.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&frame);
    out.extend_from_slice(&crc32c::crc32c(&frame).to_le_bytes());
    let mut dir = Vec::with_capacity(DIR_ENTRY_LEN);
    dir.extend_from_slice(&(CHUNK_HEADER_LEN as u64).to_le_bytes());
    dir.extend_from_slice(&(frame.len() as u32 + 4).to_le_bytes());
    dir.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    dir.extend_from_slice(&min_ts.to_le_bytes());
    dir.extend_from_slice(&max_ts.to_le_bytes());
    dir.extend_from_slice(&entries.to_le_bytes());
    dir.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&dir);
    out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&dir).to_le_bytes());
    out.extend_from_slice(b"FNRC");
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (lines, metadata) =
        [(true, true), (true, false), (false, true), (false, false)][usize::from(mode / 5 % 4)];
    let parts = BlockParts { lines, metadata };
    match mode % 5 {
        0 => read_chunk(rest, parts),
        1 => {
            let mut bytes = rest.to_vec();
            repair_chunk(&mut bytes);
            read_chunk(&bytes, parts);
        }
        2 => read_whole_segment(rest, parts),
        3 => {
            let mut bytes = rest.to_vec();
            repair_segment(&mut bytes);
            read_whole_segment(&bytes, parts);
        }
        _ => {
            if rest.len() < 20 {
                return;
            }
            let entries = u32_at(rest, 0);
            let min_ts = u64_at(rest, 4) as i64;
            let max_ts = u64_at(rest, 12) as i64;
            if let Some(chunk) = wrap_block(&rest[20..], entries, min_ts, max_ts) {
                read_chunk(&chunk, parts);
            }
        }
    }
});
