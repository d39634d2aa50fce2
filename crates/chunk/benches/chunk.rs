//! Chunk encode and decode throughput over ~10 MB of realistic JSON access-log lines, in two
//! shapes: `nginx` (varied fields) and `bench` (the shape of `fenrir-bench`'s workload, with
//! `detected_level` metadata as ingest adds it). Prints each shape's compression ratio.
//!
//! `cargo bench -p fenrir-chunk --bench chunk`
//!
//! With `CHUNK_DECODE_ONCE=<shape>` in the environment the binary instead encodes that shape
//! once and decodes it once, for instruction counts that do not depend on the machine's load:
//! `CHUNK_DECODE_ONCE=bench valgrind --tool=callgrind --toggle-collect='*decode_chunk*' <bench binary>`
//! (`CHUNK_DECODE_REPEAT=n` decodes it n times, for `perf stat` cycle counts on a busy machine).

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
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

/// Lines shaped like `fenrir-bench`'s (`loki_bench.py`'s) workload, one stream's worth:
/// a counter, levels tied to the status, a 128-bit request id.
fn bench_workload_lines() -> Vec<(i64, String, &'static str)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut lines = Vec::new();
    let mut total = 0;
    let mut i = 0u64;
    while total < TOTAL_RAW {
        let status = [200, 200, 200, 200, 201, 204, 301, 400, 404, 500][next(10) as usize];
        let level = if status >= 500 {
            "ERROR"
        } else {
            ["INFO", "INFO", "INFO", "DEBUG", "WARN"][next(5) as usize]
        };
        let msg = ["request completed", "LOG", "cache miss", "upstream slow"][next(4) as usize];
        let method = ["GET", "GET", "POST", "PUT", "DELETE"][next(5) as usize];
        let resource = ["users", "orders", "search", "items"][next(4) as usize];
        let line = format!(
            r#"{{"ts":{i},"level":"{level}","logger":"com.example.http.AccessLog","msg":"{msg}","method":"{method}","url":"/api/{resource}/{}","status":{status},"duration_ms":{},"bytes":{},"user":"u{}","request_id":"{:016x}{:016x}"}}"#,
            1 + next(100_000),
            1 + next(2000),
            next(90_001),
            1 + next(5000),
            next(u64::MAX),
            next(u64::MAX),
        );
        total += line.len();
        let detected = match level {
            "ERROR" => "error",
            "WARN" => "warn",
            "DEBUG" => "debug",
            _ => "info",
        };
        lines.push((
            1_700_000_000_000_000_000 + i as i64 * 36_000_000,
            line,
            detected,
        ));
        i += 1;
    }
    lines
}

fn encode(lines: &[(i64, String, &str)], level: i32) -> Vec<u8> {
    let labels = LabelSet::from_pairs([("app", "nginx"), ("env", "prod")]);
    let mut b = ChunkBuilder::new(&labels, DEFAULT_BLOCK_TARGET_RAW);
    for (ts, line, detected) in lines {
        if detected.is_empty() {
            b.push_entry(*ts, line, std::iter::empty());
        } else {
            b.push_entry(*ts, line, [("detected_level", *detected)]);
        }
    }
    b.finish(level).unwrap().bytes
}

fn bench(c: &mut Criterion) {
    let nginx: Vec<_> = access_log_lines()
        .into_iter()
        .map(|(ts, l)| (ts, l, ""))
        .collect();
    for (shape, lines) in [("nginx", nginx), ("bench", bench_workload_lines())] {
        bench_shape(c, shape, &lines);
    }
}

/// Decodes every block of `bytes` and iterates every line, as the decode benchmark does;
/// returns the bytes of lines seen.
#[inline(never)]
fn decode_chunk(bytes: &[u8]) -> usize {
    let reader = ChunkReader::open(black_box(bytes)).unwrap();
    let mut seen = 0usize;
    for i in 0..reader.blocks().len() {
        let block = reader.decode_block(i).unwrap();
        seen += block.iter().map(|e| e.line.len()).sum::<usize>();
        black_box(&block);
    }
    seen
}

fn bench_shape(c: &mut Criterion, shape: &str, lines: &[(i64, String, &str)]) {
    let raw: usize = lines.iter().map(|(_, l, _)| l.len()).sum();
    let mut group = c.benchmark_group(format!("chunk/{shape}"));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(raw as u64));
    for level in [1, 3] {
        let bytes = encode(lines, level);
        eprintln!(
            "{shape} level {level}: {raw} bytes of lines -> {} bytes ({:.2}x)",
            bytes.len(),
            raw as f64 / bytes.len() as f64
        );
        group.bench_with_input(BenchmarkId::new("encode", level), &level, |b, &level| {
            b.iter(|| encode(black_box(lines), level))
        });
        group.bench_with_input(BenchmarkId::new("decode", level), &bytes, |b, bytes| {
            b.iter(|| assert_eq!(decode_chunk(bytes), raw))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Some(shape) = std::env::var_os("CHUNK_DECODE_ONCE") {
        let lines = match shape.to_str() {
            Some("nginx") => access_log_lines()
                .into_iter()
                .map(|(ts, l)| (ts, l, ""))
                .collect(),
            _ => bench_workload_lines(),
        };
        let raw: usize = lines.iter().map(|(_, l, _)| l.len()).sum();
        let bytes = encode(&lines, 1);
        let repeat: usize = std::env::var("CHUNK_DECODE_REPEAT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        for _ in 0..repeat {
            assert_eq!(decode_chunk(&bytes), raw);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
