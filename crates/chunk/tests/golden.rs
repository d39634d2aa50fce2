//! Golden files: a committed version-1 chunk and segment must keep decoding to the fixture below,
//! so an accidental format change fails here.
//!
//! Regenerate them only when changing the format on purpose (and bump its version):
//! `cargo test -p fenrir-chunk --test golden -- --ignored regenerate_golden_files`

use std::path::PathBuf;

use fenrir_chunk::{
    decode_all, read_segment, ChunkBuilder, ChunkReader, EncodedChunk, SegmentWriter,
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

fn fixture_segment() -> Vec<u8> {
    let mut w = SegmentWriter::new(&Tenant::new("golden").unwrap());
    w.add(
        &stream_labels(),
        encode(&stream_labels(), &fixture_entries()),
    );
    w.add(&other_labels(), encode(&other_labels(), &other_entries()));
    w.finish()
}

#[test]
fn golden_chunk_decodes() {
    let bytes = std::fs::read(data_path("v1.chunk")).unwrap();
    assert_eq!(decode_all(&bytes).unwrap(), fixture_entries());
    let reader = ChunkReader::open(&bytes).unwrap();
    let fresh = encode(&stream_labels(), &fixture_entries());
    assert_eq!(reader.meta(), fresh.meta);
    assert_eq!(reader.meta().fingerprint, stream_labels().fingerprint());
    assert!(reader.blocks().len() >= 3, "{:?}", reader.blocks());
    // The header does not depend on the compressor, so it must match byte for byte.
    assert_eq!(bytes[..52], fresh.bytes[..52]);
}

#[test]
fn golden_segment_decodes() {
    let bytes = std::fs::read(data_path("v1.seg")).unwrap();
    let footer = read_segment(&bytes).unwrap();
    assert_eq!(footer.tenant, "golden");
    let expected = [
        (stream_labels(), fixture_entries()),
        (other_labels(), other_entries()),
    ];
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
    let chunk = encode(&stream_labels(), &fixture_entries());
    std::fs::write(data_path("v1.chunk"), chunk.bytes).unwrap();
    std::fs::write(data_path("v1.seg"), fixture_segment()).unwrap();
}
