//! Parsing typical Grafana queries.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fenrir_logql::parse_expr;

const QUERIES: [&str; 10] = [
    r#"{app="api"}"#,
    r#"{app="api", env="prod"} |= "GET" != "healthz""#,
    r#"{app="api"} | json | status >= 500 | line_format "{{.method}} {{.path}}""#,
    r#"{app="worker"} | logfmt | duration > 1s and level=~"warn|error""#,
    r#"sum by (level) (count_over_time({app=~"api|worker"} | drop __error__ [1m]))"#,
    r#"sum(rate({app="api"} |= "error" [5m])) by (pod)"#,
    r#"topk(5, sum by (pod) (rate({env="prod"}[5m])))"#,
    r#"quantile_over_time(0.95, {app="api"} | json | unwrap duration(latency) | __error__="" [5m]) by (env)"#,
    r#"sum(count_over_time({app="api"} |= "ERROR" [5m])) / sum(count_over_time({app="api"}[5m])) * 100"#,
    r#"{app="web"} | pattern `<ip> - - [<_>] "<method> <path> <_>" <status> <size> <_>` | status >= 400"#,
];

fn parse_queries(c: &mut Criterion) {
    c.bench_function("parse 10 grafana queries", |b| {
        b.iter(|| {
            for q in QUERIES {
                black_box(parse_expr(black_box(q)).expect("query parses"));
            }
        })
    });
}

criterion_group!(benches, parse_queries);
criterion_main!(benches);
