//! Grafana's log-volume query against a plain `count_over_time`, over one million lines
//! held by an in-process server (flushed to chunks, as after a normal day of ingest).
//!
//! `cargo bench -p fenrir-it --bench log_volume`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use criterion::{criterion_group, criterion_main, Criterion};
use fenrir_it::TestServer;

const LINES: usize = 1_000_000;
const STREAMS: usize = 100;
const BATCH: usize = 5_000;

/// A small deterministic generator, so every run reads the same data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn access_line(rng: &mut Lcg) -> String {
    let level = match rng.next() % 20 {
        0 => "error",
        1 | 2 => "warn",
        3 => "debug",
        _ => "info",
    };
    let status = if level == "error" {
        500 + rng.next() % 4
    } else {
        200
    };
    let msg = if level == "error" {
        "ERROR upstream timed out"
    } else {
        "request handled"
    };
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let method = methods[(rng.next() % 4) as usize];
    format!(
        r#"{{"ts":"2026-11-26T10:00:00Z","level":"{level}","method":"{method}","path":"/api/v1/items/{}","status":{status},"duration_ms":{},"bytes":{},"user":"user-{}","trace_id":"{:016x}{:016x}","msg":"{msg}"}}"#,
        rng.next() % 1000,
        rng.next() % 2000,
        rng.next() % 100_000,
        rng.next() % 500,
        rng.next(),
        rng.next()
    )
}

async fn load(server: &TestServer) -> (u64, u64) {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let start_ns = now_ns - 3_600_000_000_000;
    let step_ns = 3_600_000_000_000 / LINES as u64;
    let mut rng = Lcg(42);
    let mut sent = 0;
    while sent < LINES {
        let mut per_stream: Vec<Vec<serde_json::Value>> = vec![Vec::new(); STREAMS];
        for i in sent..(sent + BATCH).min(LINES) {
            let ts = start_ns + i as u64 * step_ns;
            per_stream[i % STREAMS]
                .push(serde_json::json!([ts.to_string(), access_line(&mut rng)]));
        }
        let streams: Vec<_> = per_stream
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(s, values)| {
                serde_json::json!({
                    "stream": {"app": "bench", "service": format!("svc-{}", s % 10), "pod": format!("pod-{s}"), "env": "prod"},
                    "values": values,
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "streams": streams })).unwrap();
        let (status, resp) = server
            .post("/loki/api/v1/push", "application/json", body)
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{}",
            String::from_utf8_lossy(&resp)
        );
        sent += BATCH;
    }
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    (start_ns, now_ns)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(
        "limits_config:\n  max_query_series: 100000\n  ingestion_rate_mb: 1024\n  ingestion_burst_size_mb: 1024\n",
    ));
    let (start, end) = rt.block_on(load(&server));
    let query = |q: &'static str| {
        let params = vec![
            ("query".to_string(), q.to_string()),
            ("start".to_string(), start.to_string()),
            ("end".to_string(), end.to_string()),
            ("step".to_string(), "60".to_string()),
        ];
        let server = &server;
        let rt = &rt;
        move || {
            let (status, body) = rt.block_on(server.get("/loki/api/v1/query_range", &params, &[]));
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            body.len()
        }
    };
    let mut group = c.benchmark_group("metric_1m_lines");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let volume = query(
        r#"sum by (level, detected_level) (count_over_time({app="bench"} | drop __error__[1m]))"#,
    );
    group.bench_function("log_volume", |b| b.iter(&volume));
    let count = query(r#"sum(count_over_time({app="bench"}[1m]))"#);
    group.bench_function("count_over_time", |b| b.iter(&count));
    let filtered = query(r#"sum(count_over_time({app="bench"} |= "ERROR" [1m]))"#);
    group.bench_function("filter_count", |b| b.iter(&filtered));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
