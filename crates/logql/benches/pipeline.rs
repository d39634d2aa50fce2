//! Log pipeline throughput in MB/s of raw lines on one core: `|= "ERROR"`, `| json`, and
//! `| logfmt | level="error"` over ~10 MB of generated ~230-byte lines.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fenrir_common::{LabelSet, MatchOp};
use fenrir_logql::ast::{LabelFilter, LineFilter, LineFilterOp, LineFilterValue, Parser, Stage};
use fenrir_logql::LogPipeline;

const TARGET_BYTES: usize = 10 * 1024 * 1024;

/// A small deterministic generator, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const LEVELS: &[&str] = &["info", "info", "info", "warn", "error", "debug"];
const METHODS: &[&str] = &["GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/api/users",
    "/api/orders",
    "/api/search",
    "/health",
    "/api/login",
];

fn json_lines() -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let mut total = 0;
    while total < TARGET_BYTES {
        let level = rng.pick(LEVELS);
        let line = format!(
            r#"{{"ts":"2024-07-07T09:{:02}:{:02}.{:03}Z","level":"{}","method":"{}","path":"{}","status":{},"latency_ms":{},"bytes":{},"client_ip":"10.{}.{}.{}","user":{{"id":"u{}","region":"eu-west-1"}},"msg":"{}"}}"#,
            rng.next() % 60,
            rng.next() % 60,
            rng.next() % 1000,
            level,
            rng.pick(METHODS),
            rng.pick(PATHS),
            [200, 201, 404, 500][(rng.next() % 4) as usize],
            rng.next() % 3000,
            rng.next() % 100_000,
            rng.next() % 256,
            rng.next() % 256,
            rng.next() % 256,
            rng.next() % 1000,
            if level == "error" {
                "ERROR upstream timed out"
            } else {
                "request completed"
            },
        );
        total += line.len();
        out.push(line);
    }
    out
}

fn logfmt_lines() -> Vec<String> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::new();
    let mut total = 0;
    while total < TARGET_BYTES {
        let line = format!(
            r#"ts=2024-07-07T09:{:02}:{:02}.{:03}Z level={} method={} path={} status={} duration={}ms size={}KB client_ip=10.{}.{}.{} trace_id={:016x} msg="request completed for user u{}""#,
            rng.next() % 60,
            rng.next() % 60,
            rng.next() % 1000,
            rng.pick(LEVELS),
            rng.pick(METHODS),
            rng.pick(PATHS),
            [200, 201, 404, 500][(rng.next() % 4) as usize],
            rng.next() % 3000,
            rng.next() % 100,
            rng.next() % 256,
            rng.next() % 256,
            rng.next() % 256,
            rng.next(),
            rng.next() % 1000,
        );
        total += line.len();
        out.push(line);
    }
    out
}

fn run(c: &mut Criterion, name: &str, stages: &[Stage], lines: &[String]) {
    let pipeline = LogPipeline::new(stages).expect("bench pipeline compiles");
    let stream = LabelSet::from_pairs([("app", "api"), ("env", "prod"), ("pod", "api-1")]);
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut sp = pipeline.for_stream(&stream);
            let mut kept = 0usize;
            for (i, line) in lines.iter().enumerate() {
                if sp.process(i as i64, line, &[]).is_some() {
                    kept += 1;
                }
            }
            kept
        })
    });
    group.finish();
}

fn pipelines(c: &mut Criterion) {
    let json = json_lines();
    let logfmt = logfmt_lines();
    let contains_error = Stage::LineFilter(LineFilter {
        op: LineFilterOp::Contains,
        values: vec![LineFilterValue::Str("ERROR".into())],
    });
    run(c, "contains_error", &[contains_error], &json);
    run(c, "json", &[Stage::Parser(Parser::Json(vec![]))], &json);
    run(
        c,
        "logfmt_level_error",
        &[
            Stage::Parser(Parser::Logfmt {
                strict: false,
                keep_empty: false,
                params: vec![],
            }),
            Stage::LabelFilter(LabelFilter::String {
                name: "level".into(),
                op: MatchOp::Eq,
                value: "error".into(),
            }),
        ],
        &logfmt,
    );
}

criterion_group!(benches, pipelines);
criterion_main!(benches);
