//! Metric queries end to end inside LogQL: the issue-7 workload (JSON access lines,
//! `detected_level` structured metadata, 100 streams) replayed through the real
//! `SampleExtractor` and `evaluate`, as the query engine drives them, minus storage and
//! decompression. Reported in lines/s (and raw MB/s) for:
//! - `json_status_5xx`: `sum by (status) (count_over_time({app="bench"} | json | status >= 500 [5m]))`
//! - `log_volume`: `sum by (level, detected_level) (count_over_time({app="bench"} | drop __error__[1m]))`
//! - `filter_count`: `sum(count_over_time({app="bench"} |= "ERROR" [1m]))`
//! - `json_by_method`: `sum by (method) (rate({app="bench"} | json [1m]))`
//!
//! Times are the benchmark thread's CPU time (`/proc/thread-self/schedstat`), not wall
//! time: the development machine is shared, and wall times there swing by 2x from run
//! to run while CPU time stays within a few percent.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fenrir_common::LabelSet;
use fenrir_logql::ast::{MetricExpr, RangeAgg};
use fenrir_logql::{
    evaluate, parse_expr, EvalParams, Expr, Result, SampleExtractor, SampleSink, SampleSource,
};
use support::cpu_time::CpuTime;

const S: i64 = 1_000_000_000;
const START: i64 = 1_700_000_000 * S;
const STREAMS: usize = 100;
const LINES: usize = 200_000;

mod support {
    pub(crate) mod cpu_time;
}

/// The same deterministic generator and line shape as `fenrir-it`'s `log_volume` bench.
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

fn access_line(rng: &mut Lcg) -> (String, &'static str) {
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
    let line = format!(
        r#"{{"ts":"2026-11-26T10:00:00Z","level":"{level}","method":"{method}","path":"/api/v1/items/{}","status":{status},"duration_ms":{},"bytes":{},"user":"user-{}","trace_id":"{:016x}{:016x}","msg":"{msg}"}}"#,
        rng.next() % 1000,
        rng.next() % 2000,
        rng.next() % 100_000,
        rng.next() % 500,
        rng.next(),
        rng.next()
    );
    (line, level)
}

struct Stream {
    labels: LabelSet,
    /// `(ts, line, detected_level)`
    entries: Vec<(i64, String, &'static str)>,
}

/// Streams held in memory, fed through the extractor the way the engine's source does:
/// one `for_stream` per stream, structured metadata on every line.
struct Workload {
    streams: Vec<Stream>,
    bytes: usize,
}

impl Workload {
    fn new() -> Self {
        let mut rng = Lcg(42);
        let mut streams: Vec<Stream> = (0..STREAMS)
            .map(|s| Stream {
                labels: LabelSet::from_pairs([
                    ("app", "bench".to_string()),
                    ("env", "prod".to_string()),
                    ("pod", format!("pod-{s}")),
                    ("service", format!("svc-{}", s % 10)),
                    ("service_name", "bench".to_string()),
                ]),
                entries: Vec::new(),
            })
            .collect();
        let spacing = 3600 * S / LINES as i64;
        let mut bytes = 0;
        for i in 0..LINES {
            let (line, level) = access_line(&mut rng);
            bytes += line.len();
            streams[i % STREAMS]
                .entries
                .push((START + i as i64 * spacing, line, level));
        }
        Workload { streams, bytes }
    }
}

impl SampleSource for Workload {
    fn samples(&mut self, agg: &RangeAgg, from: i64, to: i64, sink: &mut SampleSink) -> Result<()> {
        let extractor = SampleExtractor::new(agg)?;
        for stream in &self.streams {
            let mut ex = extractor.for_stream(&stream.labels);
            for (ts, line, level) in &stream.entries {
                if *ts <= from || *ts > to {
                    continue;
                }
                if let Some((labels, value)) = ex.process(*ts, line, &[("detected_level", level)]) {
                    sink.add(labels, *ts, value);
                }
            }
        }
        Ok(())
    }
}

fn metric(q: &str) -> MetricExpr {
    match parse_expr(q).expect("bench query parses") {
        Expr::Metric(m) => m,
        Expr::Log(_) => panic!("not a metric query: {q}"),
    }
}

fn bench_queries(c: &mut Criterion<CpuTime>) {
    let mut workload = Workload::new();
    let params = EvalParams::range(START, START + 3600 * S, 60 * S, 0);
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Elements(LINES as u64));
    group.sample_size(10);
    for (name, q) in [
        (
            "json_status_5xx",
            r#"sum by (status) (count_over_time({app="bench"} | json | status >= 500 [5m]))"#,
        ),
        (
            "log_volume",
            r#"sum by (level, detected_level) (count_over_time({app="bench"} | drop __error__[1m]))"#,
        ),
        (
            "filter_count",
            r#"sum(count_over_time({app="bench"} |= "ERROR" [1m]))"#,
        ),
        (
            "json_by_method",
            r#"sum by (method) (rate({app="bench"} | json [1m]))"#,
        ),
    ] {
        let expr = metric(q);
        group.bench_function(name, |b| {
            b.iter(|| evaluate(&expr, &params, &mut workload).expect("evaluate"))
        });
    }
    group.finish();
    eprintln!(
        "extract: {LINES} lines, {:.1} MB raw",
        workload.bytes as f64 / 1e6
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_queries
}
criterion_main!(benches);
