//! The read path over ~230 MB of JSON access-log lines in stored chunks (1M lines, 100
//! streams, as the issue 7 workload): a full-scan count, a filtered count, and the newest
//! 1000 lines of one service, each with the query's thread alone and with decode workers.
//!
//! `cargo bench -p fenrir-query --bench scan`

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fenrir_chunk::ChunkBuilder;
use fenrir_common::{Entry, LabelSet, Matcher, Tenant, Timestamp};
use fenrir_index::{ChunkRef, Index};
use fenrir_logql::ast::Expr;
use fenrir_logql::EvalParams;
use fenrir_query::{Direction, Engine, LogQuery, RecentData, RecentStream};
use fenrir_storage::{InMemoryStore, ObjectStore};

const LINES: usize = 1_000_000;
const STREAMS: usize = 100;
/// The ingester's default head size: a chunk per 1.5 MB of raw lines.
const CHUNK_RAW: usize = 1536 << 10;
const HOUR_NS: i64 = 3_600_000_000_000;

struct NoRecent;

impl RecentData for NoRecent {
    fn streams(&self, _: &Tenant, _: &[Matcher], _: Timestamp, _: Timestamp) -> Vec<RecentStream> {
        Vec::new()
    }
}

/// Deterministic lines shaped like the issue 7 workload.
fn line(i: u64) -> String {
    let r = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 20;
    let (level, status, msg) = match r % 20 {
        0 => ("error", 500 + r % 4, "ERROR upstream timed out"),
        1 | 2 => ("warn", 200, "request handled"),
        _ => ("info", 200, "request handled"),
    };
    format!(
        r#"{{"ts":"2026-11-26T10:00:00Z","level":"{level}","method":"GET","path":"/api/v1/items/{}","status":{status},"duration_ms":{},"bytes":{},"user":"user-{}","trace_id":"{:016x}{:016x}","msg":"{msg}"}}"#,
        r % 1000,
        (r >> 10) % 2000,
        (r >> 3) % 100_000,
        (r >> 7) % 500,
        r.rotate_left(17) ^ i,
        r.rotate_left(41).wrapping_mul(i | 1),
    )
}

fn load(rt: &tokio::runtime::Runtime) -> (Index, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let index = Index::temporary().unwrap();
    let tenant = Tenant::single();
    let step = HOUR_NS / LINES as i64;
    let mut object = Vec::new();
    let mut refs = Vec::new();
    for s in 0..STREAMS {
        let labels = LabelSet::from_pairs([
            ("app", "bench".to_string()),
            ("service", format!("svc-{}", s % 10)),
            ("pod", format!("pod-{s}")),
        ]);
        let md = vec![("detected_level".to_string(), "info".to_string())];
        let mut builder = ChunkBuilder::new(&labels, fenrir_chunk::DEFAULT_BLOCK_TARGET_RAW);
        let mut flush = |builder: ChunkBuilder, object: &mut Vec<u8>| {
            let c = builder.finish(3).unwrap();
            let offset = object.len() as u64;
            object.extend_from_slice(&c.bytes);
            refs.push((
                labels.clone(),
                ChunkRef {
                    chunk_id: offset,
                    object_key: "fake/seg/bench.seg".into(),
                    offset,
                    len: c.bytes.len() as u64,
                    min_ts: c.meta.min_ts,
                    max_ts: c.meta.max_ts,
                    entries: c.meta.entries,
                    raw_bytes: c.meta.raw_bytes,
                },
            ));
        };
        for i in (s..LINES).step_by(STREAMS) {
            let e = Entry {
                ts: 1 + i as i64 * step,
                line: line(i as u64),
                structured_metadata: md.clone(),
            };
            builder.push(e.ts, &e.line, &e.structured_metadata);
            if builder.raw_bytes() >= CHUNK_RAW {
                let full = std::mem::replace(
                    &mut builder,
                    ChunkBuilder::new(&labels, fenrir_chunk::DEFAULT_BLOCK_TARGET_RAW),
                );
                flush(full, &mut object);
            }
        }
        if !builder.is_empty() {
            flush(builder, &mut object);
        }
    }
    rt.block_on(store.put("fake/seg/bench.seg", object.into()))
        .unwrap();
    index.add_chunks(&tenant, &refs).unwrap();
    (index, store)
}

/// What one block's decode spends on its single whole-text UTF-8 check.
fn block_parts(c: &mut Criterion) {
    let labels = LabelSet::from_pairs([("app", "bench")]);
    let mut builder = ChunkBuilder::new(&labels, fenrir_chunk::DEFAULT_BLOCK_TARGET_RAW);
    let mut text = String::new();
    let mut i = 0;
    while text.len() < fenrir_chunk::DEFAULT_BLOCK_TARGET_RAW - 16_384 {
        let l = line(i);
        builder.push(i as i64, &l, &[]);
        text.push_str(&l);
        i += 1;
    }
    let chunk = builder.finish(3).unwrap();
    let reader = fenrir_chunk::ChunkReader::open(&chunk.bytes).unwrap();
    assert_eq!(reader.blocks().len(), 1);
    let bytes = text.into_bytes();
    let mut group = c.benchmark_group("block_256k");
    group.throughput(criterion::Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode", |b| b.iter(|| reader.decode_block(0).unwrap()));
    group.bench_function("utf8_check", |b| {
        b.iter(|| std::str::from_utf8(criterion::black_box(&bytes)).is_ok())
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (index, store) = load(&rt);
    let store: Arc<dyn ObjectStore> = store;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("scan_1m_lines");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for workers in [0, cores] {
        let engine = Engine::new(index.clone(), store.clone(), Arc::new(NoRecent))
            .with_decode_workers(workers);
        for (name, q) in [
            ("count", r#"sum(count_over_time({app="bench"}[1m]))"#),
            (
                "filter_count",
                r#"sum(count_over_time({app="bench"} |= "ERROR" [1m]))"#,
            ),
        ] {
            let Ok(Expr::Metric(expr)) = fenrir_logql::parse_expr(q) else {
                unreachable!()
            };
            let params = EvalParams::range(0, HOUR_NS, 60_000_000_000, 100_000);
            group.bench_function(BenchmarkId::new(name, workers), |b| {
                b.iter(|| {
                    rt.block_on(engine.query_metric(Tenant::single(), expr.clone(), params))
                        .unwrap()
                })
            });
        }
        let Ok(Expr::Log(expr)) = fenrir_logql::parse_expr(r#"{app="bench", service="svc-1"}"#)
        else {
            unreachable!()
        };
        let query = LogQuery {
            tenant: Tenant::single(),
            expr,
            start: 0,
            end: HOUR_NS + 1,
            limit: 1000,
            direction: Direction::Backward,
            categorize: false,
        };
        group.bench_function(BenchmarkId::new("recent_1000", workers), |b| {
            b.iter(|| {
                let r = rt.block_on(engine.query_logs(query.clone())).unwrap();
                assert_eq!(
                    r.streams.iter().map(|s| s.entries.len()).sum::<usize>(),
                    1000
                );
            })
        });
    }
    group.finish();
}

criterion_group!(benches, block_parts, bench);
criterion_main!(benches);
