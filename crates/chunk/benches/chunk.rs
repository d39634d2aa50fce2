//! Chunk encode and decode throughput over ~10 MB of realistic JSON access-log lines.
//!
//! `cargo bench -p fenrir-chunk --bench chunk`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fenrir_chunk::{ChunkBuilder, ChunkReader, DEFAULT_BLOCK_TARGET_RAW};
use fenrir_common::LabelSet;

const TOTAL_RAW: usize = 10 << 20;

/// Deterministic access-log lines of about 230 bytes, varied like real traffic.
fn access_log_lines() -> Vec<(i64, String)> {
    const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
    const PATHS: [&str; 6] = [
        "/api/v1/users",
        "/api/v1/orders",
        "/api/v1/items/search",
        "/healthz",
        "/static/app.js",
        "/api/v2/checkout/confirm",
    ];
    const STATUS: [u16; 6] = [200, 200, 200, 201, 404, 500];
    const AGENTS: [&str; 3] = [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/8.5.0",
        "Go-http-client/2.0",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift64: cheap, deterministic, good enough to vary fields.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut lines = Vec::new();
    let mut total = 0;
    while total < TOTAL_RAW {
        let r = next();
        ts += (r % 5_000_000) as i64;
        let line = format!(
            r#"{{"ts":"2024-05-01T12:{:02}:{:02}.{:06}Z","level":"info","method":"{}","path":"{}","status":{},"duration_ms":{},"bytes":{},"client":"10.{}.{}.{}","user_agent":"{}","trace_id":"{:016x}"}}"#,
            (r >> 8) % 60,
            (r >> 16) % 60,
            (r >> 24) % 1_000_000,
            METHODS[(r >> 32) as usize % METHODS.len()],
            PATHS[(r >> 35) as usize % PATHS.len()],
            STATUS[(r >> 38) as usize % STATUS.len()],
            (r >> 41) % 2_000,
            (r >> 20) % 50_000,
            (r >> 44) % 256,
            (r >> 52) % 256,
            (r >> 12) % 256,
            AGENTS[(r >> 60) as usize % AGENTS.len()],
            next(),
        );
        total += line.len();
        lines.push((ts, line));
    }
    lines
}

fn encode(lines: &[(i64, String)], level: i32) -> Vec<u8> {
    let labels = LabelSet::from_pairs([("app", "nginx"), ("env", "prod")]);
    let mut b = ChunkBuilder::new(&labels, DEFAULT_BLOCK_TARGET_RAW);
    for (ts, line) in lines {
        b.push(*ts, line, &[]);
    }
    b.finish(level).unwrap().bytes
}

fn bench(c: &mut Criterion) {
    let lines = access_log_lines();
    let raw: usize = lines.iter().map(|(_, l)| l.len()).sum();
    let mut group = c.benchmark_group("chunk");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(raw as u64));
    for level in [1, 3] {
        group.bench_with_input(BenchmarkId::new("encode", level), &level, |b, &level| {
            b.iter(|| encode(black_box(&lines), level))
        });
        let bytes = encode(&lines, level);
        group.bench_with_input(BenchmarkId::new("decode", level), &bytes, |b, bytes| {
            b.iter(|| {
                let reader = ChunkReader::open(black_box(bytes)).unwrap();
                let mut seen = 0usize;
                for i in 0..reader.blocks().len() {
                    let block = reader.decode_block(i).unwrap();
                    seen += block.iter().map(|e| e.line.len()).sum::<usize>();
                }
                assert_eq!(seen, raw);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
