//! Golden files: committed chunks and segments must keep decoding to the fixtures below, so an
//! accidental format change fails here. Version 1 (row-wise blocks only) is frozen: this build
//! no longer writes it. Version 2 adds columnar blocks.
//!
//! Regenerate the current version's files only when changing the format on purpose (and bump
//! its version, keeping the old files):
//! `cargo test -p fenrir-chunk --test golden -- --ignored regenerate_golden_files`

use std::path::PathBuf;

use fenrir_chunk::{
    decode_all, decode_stored_block, decode_stored_block_parts, read_segment, BlockParts,
    ChunkBuilder, ChunkReader, EncodedChunk, SegmentWriter,
};
use fenrir_common::{Entry, LabelSet, Tenant};

const BASE_TS: i64 = 1_700_000_000_000_000_000;

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn stream_labels() -> LabelSet {
    LabelSet::from_pairs([
        ("app", "golden"),
        ("env", "test"),
        ("service.name", "gold en"),
    ])
}

fn other_labels() -> LabelSet {
    LabelSet::from_pairs([("app", "other")])
}

fn md(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Entries covering every feature of the format: equal timestamps, empty lines, unicode,
/// metadata (including an empty value), and several blocks.
fn fixture_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for i in 0..12i64 {
        entries.push(Entry {
            ts: BASE_TS + (i / 2) * 1_000_000,
            line: format!(r#"{{"level":"info","msg":"request {i}","path":"/api/v1/items/{i}"}}"#),
            structured_metadata: Vec::new(),
        });
    }
    entries[3].line.clear();
    entries[4].line = "naïve 日本語 line ✓".to_owned();
    entries[6].structured_metadata = md(&[("trace_id", "4bf92f3577b34da6"), ("user", "")]);
    entries[11].structured_metadata = md(&[("pod", "ü-1")]);
    entries
}

fn other_entries() -> Vec<Entry> {
    vec![
        Entry::new(BASE_TS - 1, "other stream"),
        Entry::new(BASE_TS - 1, ""),
    ]
}

fn encode(labels: &LabelSet, entries: &[Entry]) -> EncodedChunk {
    let mut b = ChunkBuilder::new(labels, 160);
    for e in entries {
        b.push(e.ts, &e.line, &e.structured_metadata);
    }
    b.finish(3).unwrap()
}

/// JSON access-log lines that go columnar, with metadata, lines kept whole among them, and
/// a last block of unsplittable lines that stays row-wise.
fn columnar_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for i in 0..300i64 {
        let r = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let line = format!(
            r#"{{"ts":{i},"level":"{}","url":"/api/items/{}","status":{},"ms":{},"user":"u{}","id":"{:016x}","msg":"caf\u00e9 \"{}\" ✓"}}"#,
            ["info", "warn", "error"][(r % 3) as usize],
            (r >> 8) % 100_000,
            [200, 404, 500][(r >> 20) as usize % 3],
            (r >> 24) % 2000,
            (r >> 40) % 5000,
            r,
            i % 7,
        );
        let level = ["info", "warn", "error"][(r % 3) as usize];
        entries.push(Entry {
            ts: BASE_TS + i * 1_000_000,
            line,
            structured_metadata: md(&[("detected_level", level)]),
        });
    }
    entries[10].line = "plain text, no template".to_owned();
    entries[11].line.clear();
    entries[12].line = r#"{"unterminated":"x"#.to_owned();
    entries[13].line =
        r#"{ "spaced" : 1 , "dup":1, "dup":"2", "n":-0, "f":1.5e3, "a":[1,2] }"#.to_owned();
    for i in 0..20 {
        entries.push(Entry::new(
            BASE_TS + (300 + i) * 1_000_000,
            format!("row-wise line {i}: naïve 日本語"),
        ));
    }
    entries
}

fn encode_columnar(labels: &LabelSet, entries: &[Entry]) -> EncodedChunk {
    let mut b = ChunkBuilder::new(labels, 16 << 10);
    for e in entries {
        b.push(e.ts, &e.line, &e.structured_metadata);
    }
    b.finish(1).unwrap()
}

fn fixture_segment_v2() -> Vec<u8> {
    let mut w = SegmentWriter::new(&Tenant::new("golden").unwrap());
    w.add(
        &stream_labels(),
        encode_columnar(&stream_labels(), &columnar_entries()),
    );
    w.add(&other_labels(), encode(&other_labels(), &other_entries()));
    w.finish()
}

#[test]
fn golden_v1_chunk_decodes() {
    let bytes = std::fs::read(data_path("v1.chunk")).unwrap();
    assert_eq!(bytes[4], 1);
    assert_eq!(decode_all(&bytes).unwrap(), fixture_entries());
    let reader = ChunkReader::open(&bytes).unwrap();
    let fresh = encode(&stream_labels(), &fixture_entries());
    assert_eq!(reader.meta(), fresh.meta);
    assert_eq!(reader.meta().fingerprint, stream_labels().fingerprint());
    assert!(reader.blocks().len() >= 3, "{:?}", reader.blocks());
    // The header does not depend on the compressor, so it matches byte for byte, but for
    // the version and the checksum over it.
    assert_eq!(bytes[5..48], fresh.bytes[5..48]);
}

#[test]
fn golden_v2_chunk_decodes() {
    let bytes = std::fs::read(data_path("v2.chunk")).unwrap();
    assert_eq!(bytes[4], 2);
    let entries = columnar_entries();
    assert_eq!(decode_all(&bytes).unwrap(), entries);
    let reader = ChunkReader::open(&bytes).unwrap();
    let fresh = encode_columnar(&stream_labels(), &entries);
    assert_eq!(reader.meta(), fresh.meta);
    assert_eq!(bytes[..52], fresh.bytes[..52]);
    assert!(reader.blocks().len() >= 3, "{:?}", reader.blocks());
    // Columnar blocks: far smaller before compression than the text they hold.
    let raw: u64 = reader.blocks().iter().map(|b| u64::from(b.raw_len)).sum();
    assert!(raw * 3 < reader.meta().raw_bytes, "{raw}");
    check_parts(&bytes);
}

#[test]
fn golden_v1_chunk_decodes_in_parts() {
    check_parts(&std::fs::read(data_path("v1.chunk")).unwrap());
}

/// Every block decoded with only some parts gives those parts of the full decode.
fn check_parts(bytes: &[u8]) {
    let reader = ChunkReader::open(bytes).unwrap();
    for b in reader.blocks() {
        let stored = &bytes[b.offset as usize..(b.offset + u64::from(b.len)) as usize];
        let full = decode_stored_block(stored, b).unwrap();
        for (lines, metadata) in [(true, false), (false, true), (false, false)] {
            let block = decode_stored_block_parts(stored, b, BlockParts { lines, metadata });
            let block = block.unwrap();
            assert_eq!(block.timestamps(), full.timestamps());
            for (got, want) in block.iter().zip(full.iter()) {
                assert_eq!(got.line, if lines { want.line } else { "" });
                let pairs = want.structured_metadata.to_vec();
                let want_pairs = if metadata { pairs } else { Vec::new() };
                assert_eq!(got.structured_metadata.to_vec(), want_pairs);
            }
        }
    }
}

#[test]
fn golden_v1_segment_decodes() {
    check_segment("v1.seg", fixture_entries());
}

#[test]
fn golden_v2_segment_decodes() {
    check_segment("v2.seg", columnar_entries());
}

fn check_segment(name: &str, first: Vec<Entry>) {
    let bytes = std::fs::read(data_path(name)).unwrap();
    let footer = read_segment(&bytes).unwrap();
    assert_eq!(footer.tenant, "golden");
    let expected = [(stream_labels(), first), (other_labels(), other_entries())];
    assert_eq!(footer.chunks.len(), expected.len());
    for (chunk, (labels, entries)) in footer.chunks.iter().zip(&expected) {
        assert_eq!(&chunk.labels, labels);
        assert_eq!(chunk.meta.fingerprint, labels.fingerprint());
        let range = chunk.offset as usize..(chunk.offset + chunk.len) as usize;
        assert_eq!(&decode_all(&bytes[range]).unwrap(), entries);
    }
}

#[test]
#[ignore = "writes the golden files; run by hand after a deliberate format change"]
fn regenerate_golden_files() {
    let chunk = encode_columnar(&stream_labels(), &columnar_entries());
    std::fs::write(data_path("v2.chunk"), chunk.bytes).unwrap();
    std::fs::write(data_path("v2.seg"), fixture_segment_v2()).unwrap();
}
