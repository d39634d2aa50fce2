//! The `| json` walker on the issue-7 workload's line shape (`benches/src/workload.rs`:
//! 11 top-level members, `status` the 7th), in lines per CPU second; each stream's lines
//! lie in one buffer, as in a decoded block:
//! - `json_status_5xx`: `sum by (status) (count_over_time({app="bench"} | json | status >= 500 [5m]))`
//!   at step 300, as the end-to-end bench runs it: under parser hints only `status` is
//!   extracted and the walk stops there;
//! - `json_walk`: `sum by (absent) (count_over_time({app="bench"} | json [5m]))`: the
//!   walk over every member with nothing to extract, so little else is measured;
//! - `json_all`: `{app="bench"} | json`, every member extracted (no hints), so the cost of
//!   labels and their interning weighs as much as the walk;
//! - `json_nested`: `| json` over lines with nested objects, arrays and escapes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fenrir_common::LabelSet;
use fenrir_logql::ast::{Parser, RangeAgg, Stage};
use fenrir_logql::{
    evaluate, parse_expr, EvalParams, Expr, LogPipeline, Result, SampleExtractor, SampleSink,
    SampleSource,
};
use support::cpu_time::CpuTime;

mod support {
    pub(crate) mod cpu_time;
}

const S: i64 = 1_000_000_000;
const START: i64 = 1_700_000_000 * S;
const STREAMS: usize = 100;
const LINES: usize = 200_000;

/// A small deterministic generator, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The workload's access line (same keys, order and value shapes).
fn access_line(rng: &mut Rng, i: usize) -> (String, &'static str) {
    let status = rng.pick(&[200, 200, 200, 200, 201, 204, 301, 400, 404, 500]);
    let level = if status >= 500 {
        "ERROR"
    } else {
        rng.pick(&["INFO", "INFO", "INFO", "DEBUG", "WARN"])
    };
    let msg = rng.pick(&["request completed", "LOG", "cache miss", "upstream slow"]);
    let method = rng.pick(&["GET", "GET", "POST", "PUT", "DELETE"]);
    let resource = rng.pick(&["users", "orders", "search", "items"]);
    let line = format!(
        r#"{{"ts":{i},"level":"{level}","logger":"com.example.http.AccessLog","msg":"{msg}","method":"{method}","url":"/api/{resource}/{}","status":{status},"duration_ms":{},"bytes":{},"user":"u{}","request_id":"{:016x}{:016x}"}}"#,
        rng.next() % 100_000,
        rng.next() % 2000,
        rng.next() % 90_000,
        rng.next() % 5000,
        rng.next(),
        rng.next(),
    );
    (line, level)
}

fn nested_line(rng: &mut Rng, i: usize) -> String {
    format!(
        r#"{{"ts":{i},"level":"info","req":{{"method":"GET","path":"/a\/b","headers":{{"User-Agent":"curl/8.{}","X-Id":"{:x}"}}}},"tags":["a","b",{{"c":1}}],"ok":true,"nil":null,"msg":"tab\there \u00e9 \"quoted\" {}","resp":{{"status":{},"ms":{}.5}}}}"#,
        rng.next() % 10,
        rng.next(),
        rng.next() % 1000,
        rng.pick(&[200, 404, 500]),
        rng.next() % 900,
    )
}

/// One stream's lines in one buffer, in time order, as a decoded chunk block holds them
/// (lines allocated one by one, interleaved across streams, would make the walk wait on
/// cache misses that the server does not have).
struct Stream {
    labels: LabelSet,
    text: String,
    /// `(ts, range in text, detected_level)`
    entries: Vec<(i64, std::ops::Range<usize>, &'static str)>,
}

struct Workload {
    streams: Vec<Stream>,
}

impl Workload {
    fn new() -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let spacing = 3600 * S / LINES as i64;
        let streams = (0..STREAMS)
            .map(|s| {
                let labels = LabelSet::from_pairs([
                    ("app", "bench".to_string()),
                    ("env", "prod".to_string()),
                    ("pod", format!("pod-{s}")),
                    ("service", format!("svc-{}", s % 10)),
                    ("service_name", "bench".to_string()),
                ]);
                let mut text = String::new();
                let mut entries = Vec::new();
                for i in (s..LINES).step_by(STREAMS) {
                    let (line, level) = access_line(&mut rng, i);
                    let start = text.len();
                    text.push_str(&line);
                    entries.push((START + i as i64 * spacing, start..text.len(), level));
                }
                Stream {
                    labels,
                    text,
                    entries,
                }
            })
            .collect();
        Workload { streams }
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        self.streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|(_, r, _)| &s.text[r.clone()]))
    }
}

impl SampleSource for Workload {
    fn samples(&mut self, agg: &RangeAgg, from: i64, to: i64, sink: &mut SampleSink) -> Result<()> {
        let extractor = SampleExtractor::new(agg)?;
        for stream in &self.streams {
            let mut ex = extractor.for_stream(&stream.labels);
            for (ts, range, level) in &stream.entries {
                if *ts <= from || *ts > to {
                    continue;
                }
                let line = &stream.text[range.clone()];
                if let Some((labels, value)) = ex.process(*ts, line, &[("detected_level", level)]) {
                    sink.add(labels, *ts, value);
                }
            }
        }
        Ok(())
    }
}

/// `lines` joined by newlines, so they lie one after the other in memory.
fn pipeline_run(c: &mut Criterion<CpuTime>, name: &str, lines: &str) {
    let pipeline = LogPipeline::new(&[Stage::Parser(Parser::Json(vec![]))]).expect("compiles");
    let stream = LabelSet::from_pairs([("app", "bench"), ("env", "prod"), ("pod", "pod-1")]);
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(lines.lines().count() as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut sp = pipeline.for_stream(&stream);
            let mut kept = 0usize;
            for (i, line) in lines.lines().enumerate() {
                if sp.process(i as i64, line, &[]).is_some() {
                    kept += 1;
                }
            }
            kept
        })
    });
    group.finish();
}

fn bench_json(c: &mut Criterion<CpuTime>) {
    let mut workload = Workload::new();
    let params = EvalParams::range(START, START + 3600 * S, 300 * S, 0);
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(LINES as u64));
    group.sample_size(10);
    for (name, q) in [
        (
            "json_status_5xx",
            r#"sum by (status) (count_over_time({app="bench"} | json | status >= 500 [5m]))"#,
        ),
        (
            "json_walk",
            r#"sum by (absent) (count_over_time({app="bench"} | json [5m]))"#,
        ),
    ] {
        let Expr::Metric(expr) = parse_expr(q).expect("parses") else {
            panic!("a metric query: {q}")
        };
        group.bench_function(name, |b| {
            b.iter(|| evaluate(&expr, &params, &mut workload).expect("evaluate"))
        });
    }
    group.finish();

    let lines: String = workload
        .lines()
        .take(LINES / 4)
        .collect::<Vec<_>>()
        .join("\n");
    pipeline_run(c, "json_all", &lines);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let nested: Vec<String> = (0..LINES / 4).map(|i| nested_line(&mut rng, i)).collect();
    pipeline_run(c, "json_nested", &nested.join("\n"));
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_json
}
criterion_main!(benches);
