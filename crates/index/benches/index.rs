//! Index lookups: selector resolution over 1000 series, and one series' chunks by time.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fenrir_common::{LabelSet, MatchOp, Matcher, Tenant};
use fenrir_index::{ChunkRef, Index};

const SERIES: u64 = 1000;
const CHUNKS: u64 = 1000;
const SECOND: i64 = 1_000_000_000;

fn chunk(chunk_id: u64, min_ts: i64, max_ts: i64) -> ChunkRef {
    ChunkRef {
        chunk_id,
        object_key: format!("fake/seg/2024-01-01/{chunk_id:020}.seg"),
        offset: chunk_id * 4096,
        len: 4096,
        min_ts,
        max_ts,
        entries: 1000,
        raw_bytes: 1 << 20,
    }
}

/// 1000 series over 10 apps, 20 pods each, 5 namespaces; one chunk each.
fn series_index() -> (Index, Tenant) {
    let index = Index::temporary().expect("temporary index");
    let tenant = Tenant::single();
    let batch: Vec<(LabelSet, ChunkRef)> = (0..SERIES)
        .map(|i| {
            let labels = LabelSet::from_pairs([
                ("app".to_owned(), format!("app-{}", i % 10)),
                ("namespace".to_owned(), format!("ns-{}", i % 5)),
                ("pod".to_owned(), format!("pod-{i}")),
                ("cluster".to_owned(), "eu-west-1".to_owned()),
            ]);
            (labels, chunk(i, 0, 3600 * SECOND))
        })
        .collect();
    index.add_chunks(&tenant, &batch).expect("add chunks");
    (index, tenant)
}

fn bench_series(c: &mut Criterion) {
    let (index, tenant) = series_index();
    let by_eq = [Matcher::new(MatchOp::Eq, "app", "app-3").expect("matcher")];
    let by_re = [Matcher::new(MatchOp::Re, "pod", "pod-1.*").expect("matcher")];
    let end = 3600 * SECOND;
    assert_eq!(index.series(&tenant, &by_eq, 0, end).unwrap().len(), 100);
    assert_eq!(index.series(&tenant, &by_re, 0, end).unwrap().len(), 111);
    c.bench_function("series/eq/1000", |b| {
        b.iter(|| index.series(&tenant, black_box(&by_eq), 0, end).unwrap())
    });
    c.bench_function("series/regex/1000", |b| {
        b.iter(|| index.series(&tenant, black_box(&by_re), 0, end).unwrap())
    });
}

fn bench_chunks(c: &mut Criterion) {
    let index = Index::temporary().expect("temporary index");
    let tenant = Tenant::single();
    let labels = LabelSet::from_pairs([("app", "api")]);
    let fp = labels.fingerprint();
    let minute = 60 * SECOND;
    let batch: Vec<(LabelSet, ChunkRef)> = (0..CHUNKS as i64)
        .map(|i| {
            (
                labels.clone(),
                chunk(i as u64, i * minute, (i + 1) * minute - 1),
            )
        })
        .collect();
    index.add_chunks(&tenant, &batch).expect("add chunks");
    // One hour in the middle of the series' history.
    let (start, end) = (500 * minute, 560 * minute - 1);
    assert_eq!(index.chunks(&tenant, fp, start, end).unwrap().len(), 60);
    c.bench_function("chunks/1h_of_1000", |b| {
        b.iter(|| index.chunks(&tenant, black_box(fp), start, end).unwrap())
    });
    c.bench_function("chunks/all_1000", |b| {
        b.iter(|| {
            index
                .chunks(&tenant, black_box(fp), i64::MIN, i64::MAX)
                .unwrap()
        })
    });
}

criterion_group!(benches, bench_series, bench_chunks);
criterion_main!(benches);
