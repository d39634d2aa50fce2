//! Hand-built syntax trees and an in-memory sample source for the evaluator's tests.

use fenrir_common::{LabelSet, MatchOp, Matcher};

use super::{evaluate, EvalParams, QueryValue, SampleSink, SampleSource};
use crate::ast::*;
use crate::Result;

pub(crate) const S: i64 = 1_000_000_000;

/// Streams of samples; the selector's matchers pick streams and a range aggregation's
/// grouping is applied to their labels, as the pipeline's extractor does. Samples are
/// delivered in a scrambled order to prove the evaluator does not rely on time order.
pub(crate) struct FakeSource {
    pub(crate) streams: Vec<(LabelSet, Vec<(i64, f64)>)>,
    pub(crate) calls: usize,
}

impl FakeSource {
    pub(crate) fn new() -> Self {
        FakeSource {
            streams: Vec::new(),
            calls: 0,
        }
    }

    /// Adds a stream from `{a="1"}`-like pairs and `(seconds, value)` samples.
    pub(crate) fn stream(mut self, labels: &[(&str, &str)], samples: &[(f64, f64)]) -> Self {
        let ls = LabelSet::from_pairs(labels.iter().copied());
        let samples = samples
            .iter()
            .map(|&(t, v)| ((t * S as f64).round() as i64, v))
            .collect();
        self.streams.push((ls, samples));
        self
    }

    /// Adds a stream with value 1 every `every` seconds from `from` seconds, `n` times.
    pub(crate) fn repeat(self, labels: &[(&str, &str)], from: f64, every: f64, n: usize) -> Self {
        let samples: Vec<(f64, f64)> = (0..n).map(|i| (from + every * i as f64, 1.0)).collect();
        self.stream(labels, &samples)
    }
}

impl SampleSource for FakeSource {
    fn samples(&mut self, agg: &RangeAgg, from: i64, to: i64, sink: &mut SampleSink) -> Result<()> {
        self.calls += 1;
        let mut all = Vec::new();
        for (labels, samples) in &self.streams {
            if !agg
                .range
                .log
                .selector
                .iter()
                .all(|m| m.matches_labels(labels))
            {
                continue;
            }
            let labels = match &agg.grouping {
                None => labels.clone(),
                Some(g) => LabelSet::from_pairs(
                    labels
                        .iter()
                        .filter(|(n, _)| g.labels.iter().any(|l| l == n) != g.without),
                ),
            };
            for &(ts, v) in samples {
                if ts > from && ts <= to {
                    all.push((labels.clone(), ts, v));
                }
            }
        }
        // Deterministic scramble: reverse, then interleave halves.
        all.reverse();
        let half = all.len() / 2;
        let (a, b) = all.split_at(half);
        let mut mixed = Vec::with_capacity(all.len());
        for i in 0..a.len().max(b.len()) {
            if let Some(x) = b.get(i) {
                mixed.push(x.clone());
            }
            if let Some(x) = a.get(i) {
                mixed.push(x.clone());
            }
        }
        for (l, ts, v) in mixed {
            sink.add(&l, ts, v);
        }
        Ok(())
    }
}

pub(crate) fn sel(pairs: &[(&str, MatchOp, &str)]) -> LogExpr {
    LogExpr {
        selector: pairs
            .iter()
            .map(|(n, op, v)| Matcher::new(*op, *n, *v).unwrap())
            .collect(),
        stages: Vec::new(),
    }
}

/// `{name="value"}`
pub(crate) fn eq(name: &str, value: &str) -> LogExpr {
    sel(&[(name, MatchOp::Eq, value)])
}

/// `op(log [range_s] offset offset_s)`, unwrapped when `unwrap` is set.
pub(crate) fn range_agg(op: RangeOp, log: LogExpr, range_s: f64, unwrap: bool) -> MetricExpr {
    MetricExpr::RangeAgg(RangeAgg {
        op,
        range: LogRange {
            log,
            range: (range_s * S as f64).round() as i64,
            offset: 0,
            unwrap: unwrap.then(|| Unwrap {
                label: "v".into(),
                conversion: UnwrapConversion::Float,
                post_filters: Vec::new(),
            }),
        },
        param: None,
        grouping: None,
    })
}

pub(crate) fn with_offset(mut e: MetricExpr, offset_s: f64) -> MetricExpr {
    if let MetricExpr::RangeAgg(a) = &mut e {
        a.range.offset = (offset_s * S as f64).round() as i64;
    }
    e
}

pub(crate) fn with_param(mut e: MetricExpr, p: f64) -> MetricExpr {
    if let MetricExpr::RangeAgg(a) = &mut e {
        a.param = Some(p);
    }
    e
}

pub(crate) fn with_range_grouping(mut e: MetricExpr, without: bool, labels: &[&str]) -> MetricExpr {
    if let MetricExpr::RangeAgg(a) = &mut e {
        a.grouping = Some(grouping(without, labels));
    }
    e
}

pub(crate) fn grouping(without: bool, labels: &[&str]) -> Grouping {
    Grouping {
        without,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

pub(crate) fn vagg(
    op: VectorOp,
    inner: MetricExpr,
    by: Option<Grouping>,
    param: Option<i64>,
) -> MetricExpr {
    MetricExpr::VectorAgg(VectorAgg {
        op,
        inner: Box::new(inner),
        param,
        grouping: by,
    })
}

pub(crate) fn bin(op: BinOp, lhs: MetricExpr, rhs: MetricExpr) -> MetricExpr {
    MetricExpr::Binary(Box::new(Binary {
        op,
        lhs,
        rhs,
        return_bool: false,
        matching: None,
    }))
}

pub(crate) fn bin_with(
    op: BinOp,
    lhs: MetricExpr,
    rhs: MetricExpr,
    return_bool: bool,
    matching: Option<VectorMatching>,
) -> MetricExpr {
    MetricExpr::Binary(Box::new(Binary {
        op,
        lhs,
        rhs,
        return_bool,
        matching,
    }))
}

pub(crate) fn on(labels: &[&str], card: Cardinality) -> Option<VectorMatching> {
    Some(VectorMatching {
        on: true,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        card,
    })
}

pub(crate) fn ignoring(labels: &[&str], card: Cardinality) -> Option<VectorMatching> {
    Some(VectorMatching {
        on: false,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        card,
    })
}

pub(crate) fn include(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

/// A value rendered for comparison: NaN, +Inf and -Inf spelled as Loki prints them.
pub(crate) type Row = (String, Vec<String>);

fn fmt_v(v: f64) -> String {
    super::format_sample_value(v)
}

/// Evaluates an instant query at `t` seconds; rows are `(labels, [value])` in result order.
pub(crate) fn instant(expr: &MetricExpr, t: f64, src: &mut FakeSource) -> Result<Vec<Row>> {
    let params = EvalParams::instant((t * S as f64).round() as i64, 0);
    Ok(match evaluate(expr, &params, src)? {
        QueryValue::Vector(v) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), vec![fmt_v(s.value)]))
            .collect(),
        QueryValue::Scalar { value, .. } => vec![("scalar".into(), vec![fmt_v(value)])],
        QueryValue::Matrix(_) => panic!("matrix from an instant query"),
    })
}

/// Evaluates a range query; each row has one cell per step, `_` where the series has no
/// point (logqltest notation).
pub(crate) fn range(
    expr: &MetricExpr,
    from: f64,
    to: f64,
    step: f64,
    src: &mut FakeSource,
) -> Result<Vec<Row>> {
    let params = EvalParams {
        start: (from * S as f64).round() as i64,
        end: (to * S as f64).round() as i64,
        step: (step * S as f64).round() as i64,
        instant: false,
        max_series: 0,
    };
    let steps: Vec<i64> = {
        let mut v = Vec::new();
        let mut t = params.start;
        while t <= params.end {
            v.push(t / 1_000_000);
            t += params.step;
        }
        v
    };
    Ok(match evaluate(expr, &params, src)? {
        QueryValue::Matrix(series) => series
            .into_iter()
            .map(|s| {
                let cells = steps
                    .iter()
                    .map(|ts| {
                        s.points
                            .iter()
                            .find(|(p, _)| p == ts)
                            .map_or("_".to_string(), |(_, v)| fmt_v(*v))
                    })
                    .collect();
                (s.labels.to_string(), cells)
            })
            .collect(),
        other => panic!("range query gave {other:?}"),
    })
}

/// Rows from `("{a=\"1\"}", "1 2 _")` literals.
pub(crate) fn rows(expected: &[(&str, &str)]) -> Vec<Row> {
    expected
        .iter()
        .map(|(l, cells)| {
            (
                l.to_string(),
                cells.split_whitespace().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

/// Rows compared as sets (the order of a matrix is by label string; the order of an
/// unsorted instant vector is by labels; tests that care compare directly).
pub(crate) fn sorted(mut r: Vec<Row>) -> Vec<Row> {
    r.sort();
    r
}
