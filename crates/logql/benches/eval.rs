//! Metric evaluation throughput: `sum by (level) (count_over_time({app="bench"}[1m]))`
//! over 1M samples in 100 series, a 1h range at step 60s. Reported as samples/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fenrir_common::{LabelSet, MatchOp, Matcher};
use fenrir_logql::ast::{
    Grouping, LogExpr, LogRange, MetricExpr, RangeAgg, RangeOp, VectorAgg, VectorOp,
};
use fenrir_logql::{evaluate, EvalParams, Result, SampleSink, SampleSource};

const S: i64 = 1_000_000_000;
const START: i64 = 1_700_000_000 * S;
const SERIES: usize = 100;
const SAMPLES: usize = 1_000_000;

/// Pre-built series, replayed stream by stream as a chunk reader would.
struct Synthetic {
    series: Vec<(LabelSet, Vec<i64>)>,
}

impl Synthetic {
    fn new() -> Self {
        let per_series = SAMPLES / SERIES;
        let spacing = 3600 * S / per_series as i64;
        let levels = ["debug", "info", "warn", "error"];
        let series = (0..SERIES)
            .map(|i| {
                let labels = LabelSet::from_pairs([
                    ("app", "bench".to_string()),
                    ("level", levels[i % levels.len()].to_string()),
                    ("pod", format!("pod-{i}")),
                ]);
                // Offset each series a little so windows do not all align.
                let ts = (0..per_series)
                    .map(|k| START + k as i64 * spacing + i as i64 * 1_000)
                    .collect();
                (labels, ts)
            })
            .collect();
        Synthetic { series }
    }
}

impl SampleSource for Synthetic {
    fn samples(
        &mut self,
        _agg: &RangeAgg,
        from: i64,
        to: i64,
        sink: &mut SampleSink,
    ) -> Result<()> {
        for (labels, ts) in &self.series {
            for &t in ts {
                if t > from && t <= to {
                    sink.add(labels, t, 1.0);
                }
            }
        }
        Ok(())
    }
}

fn query() -> MetricExpr {
    let selector = vec![Matcher::new(MatchOp::Eq, "app", "bench").expect("matcher")];
    MetricExpr::VectorAgg(VectorAgg {
        op: VectorOp::Sum,
        inner: Box::new(MetricExpr::RangeAgg(RangeAgg {
            op: RangeOp::CountOverTime,
            range: LogRange {
                log: LogExpr {
                    selector,
                    stages: Vec::new(),
                },
                range: 60 * S,
                offset: 0,
                unwrap: None,
            },
            param: None,
            grouping: None,
        })),
        param: None,
        grouping: Some(Grouping {
            without: false,
            labels: vec!["level".to_string()],
        }),
    })
}

fn bench_eval(c: &mut Criterion) {
    let mut source = Synthetic::new();
    let expr = query();
    let params = EvalParams::range(START, START + 3600 * S, 60 * S, 0);
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.sample_size(20);
    group.bench_function("sum_by_level_count_over_time_1m_1M_samples", |b| {
        b.iter(|| evaluate(&expr, &params, &mut source).expect("evaluate"))
    });
    group.finish();
}

criterion_group!(benches, bench_eval);
criterion_main!(benches);
