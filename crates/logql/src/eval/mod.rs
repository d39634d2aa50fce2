//! Metric evaluation: step grid, range and vector aggregations, binary operators.
//!
//! Every range aggregation reads its samples once, over the whole query span, and feeds
//! them into per-series, per-step accumulators; everything above works step by step on
//! the resulting vectors.

mod binary;
mod format;
mod grid;
mod label_replace;
mod range;
mod rewrite;
mod vector;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod test_support;

use fenrir_common::LabelSet;

use crate::ast::{MetricExpr, RangeAgg, VectorOp};
use crate::fxhash::FxHashMap;
use crate::{Error, Result};
use grid::Grid;

pub use format::{format_sample_value, format_timestamp_seconds};
pub use range::SampleSink;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// The time frame of a metric query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalParams {
    /// First evaluation time, Unix nanoseconds.
    pub start: i64,
    /// Last possible evaluation time, Unix nanoseconds (inclusive).
    pub end: i64,
    /// Step between evaluation times, nanoseconds; must be > 0 for range queries.
    pub step: i64,
    /// An instant query: one evaluation at `start`, answered as a vector or scalar.
    pub instant: bool,
    /// `max_query_series`; 0 means unlimited.
    pub max_series: usize,
}

impl EvalParams {
    /// A range query as Loki's HTTP API runs it: the query frontend
    /// (`align_queries_with_step: false`) rounds `start` down and `end` up to multiples
    /// of `step`, counted in Unix-epoch time (logql.md §2.2).
    pub fn range(start: i64, end: i64, step: i64, max_series: usize) -> EvalParams {
        let (start, end) = if step > 0 {
            // Go's `%` truncates toward zero, like Rust's.
            let start = start - start % step;
            let rem = end % step;
            let end = if rem != 0 {
                end.saturating_add(step - rem)
            } else {
                end
            };
            (start, end)
        } else {
            (start, end)
        };
        EvalParams {
            start,
            end,
            step,
            instant: false,
            max_series,
        }
    }

    /// An instant query at `time` (Unix nanoseconds).
    pub fn instant(time: i64, max_series: usize) -> EvalParams {
        EvalParams {
            start: time,
            end: time,
            step: 0,
            instant: true,
            max_series,
        }
    }

    /// Loki's default step when a range query gives none:
    /// `max(floor((end − start) / 250 s), 1 s)`, in nanoseconds.
    pub fn default_step(start: i64, end: i64) -> i64 {
        let seconds = (end.saturating_sub(start) as f64 / NANOS_PER_SECOND as f64 / 250.0)
            .floor()
            .max(1.0);
        (seconds as i64).saturating_mul(NANOS_PER_SECOND)
    }
}

/// Where samples come from. The query layer implements it by selecting streams,
/// decoding chunks and running the pipeline's sample extractor for `agg`.
pub trait SampleSource {
    /// Calls `sink.add(labels, ts, value)` for every sample of `agg` with
    /// `from < ts <= to` (nanoseconds), stopping early once `add` returns `false` (the
    /// series limit is exceeded). Samples may come in any time order, interleaved across
    /// series; [`SampleSink::fork`] says when they may also be split among sinks.
    fn samples(&mut self, agg: &RangeAgg, from: i64, to: i64, sink: &mut SampleSink) -> Result<()>;
}

/// The answer to a metric query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// Range query: series sorted by their label string.
    Matrix(Vec<Series>),
    /// Instant query: sorted by labels unless the query uses `sort`/`sort_desc`.
    Vector(Vec<Sample>),
    /// Instant query of a literal.
    Scalar {
        /// Evaluation time in Unix milliseconds.
        ts_ms: i64,
        /// The value.
        value: f64,
    },
}

/// One series of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: LabelSet,
    /// `(Unix milliseconds, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The element's labels.
    pub labels: LabelSet,
    /// Evaluation time in Unix milliseconds.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// One element of a vector at one step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Elem {
    pub(crate) labels: LabelSet,
    pub(crate) value: f64,
}

/// The elements of one step.
pub(crate) type StepVec = Vec<Elem>;

/// An evaluated sub-expression.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A number, the same at every step.
    Scalar(f64),
    /// One vector per step of the grid.
    Vector(Vec<StepVec>),
}

/// Evaluates a metric expression over the grid of `params`, reading samples from
/// `source` once per range aggregation.
pub fn evaluate(
    expr: &MetricExpr,
    params: &EvalParams,
    source: &mut dyn SampleSource,
) -> Result<QueryValue> {
    let grid = Grid::new(params)?;
    let limit = params.max_series;
    let value = eval_node(expr, &grid, source, limit, inner_series_limit(limit))?;
    if params.instant {
        let ts_ms = params.start / NANOS_PER_MILLI;
        return match value {
            Value::Scalar(value) => Ok(QueryValue::Scalar { ts_ms, value }),
            Value::Vector(mut steps) => {
                let elems = steps.pop().unwrap_or_default();
                if limit > 0 && elems.len() > limit {
                    return Err(Error::SeriesLimit(limit));
                }
                let mut samples: Vec<Sample> = elems
                    .into_iter()
                    .map(|e| Sample {
                        labels: without_metric_name(e.labels),
                        ts_ms,
                        value: e.value,
                    })
                    .collect();
                if !uses_sort(expr) {
                    samples.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                Ok(QueryValue::Vector(samples))
            }
        };
    }
    let steps = match value {
        Value::Scalar(v) => vec![
            vec![Elem {
                labels: LabelSet::empty(),
                value: v,
            }];
            grid.len()
        ],
        Value::Vector(steps) => steps,
    };
    let mut index: FxHashMap<LabelSet, usize> = FxHashMap::default();
    let mut series: Vec<Series> = Vec::new();
    for (i, elems) in steps.into_iter().enumerate() {
        let ts_ms = grid.time(i) / NANOS_PER_MILLI;
        for e in elems {
            let labels = without_metric_name(e.labels);
            let slot = match index.get(&labels) {
                Some(&slot) => slot,
                None => {
                    if limit > 0 && series.len() >= limit {
                        return Err(Error::SeriesLimit(limit));
                    }
                    index.insert(labels.clone(), series.len());
                    series.push(Series {
                        labels,
                        points: Vec::new(),
                    });
                    series.len() - 1
                }
            };
            series[slot].points.push((ts_ms, e.value));
        }
    }
    let mut keyed: Vec<(String, Series)> = series
        .into_iter()
        .map(|s| (s.labels.to_string(), s))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(QueryValue::Matrix(
        keyed.into_iter().map(|(_, s)| s).collect(),
    ))
}

/// Inner range aggregations (under `topk`, `max`, binary operations, …) may hold this many
/// times `max_query_series` series before the query is refused: Loki applies the limit to
/// the result only, but without any bound a query whose inner series explode (`| json` on
/// unique values) would hold millions of series and could take the whole process down.
const INNER_SERIES_FACTOR: usize = 100;

/// The series bound of inner range aggregations for a query limited to `max_series`
/// (0: none).
fn inner_series_limit(max_series: usize) -> usize {
    max_series.saturating_mul(INNER_SERIES_FACTOR)
}

/// Evaluates a node whose series are not the query's result; `guard` bounds its series.
fn eval_expr(
    expr: &MetricExpr,
    grid: &Grid,
    source: &mut dyn SampleSource,
    guard: usize,
) -> Result<Value> {
    eval_node(expr, grid, source, guard, guard)
}

/// Evaluates one node; `series_limit` (0: none) is `max_query_series` when the node's
/// series are the query's result series, so that a range aggregation whose series
/// explode stops as soon as it has one too many; `guard` bounds the nodes below it.
fn eval_node(
    expr: &MetricExpr,
    grid: &Grid,
    source: &mut dyn SampleSource,
    series_limit: usize,
    guard: usize,
) -> Result<Value> {
    match expr {
        // Loki's rewrites that change answers are in `rewrite`'s docs.
        MetricExpr::RangeAgg(agg) => match rewrite::avg_as_sum_over_count(agg) {
            Some(sum_over_count) => eval_expr(&sum_over_count, grid, source, guard),
            None => Ok(Value::Vector(range::eval_range_agg(
                agg,
                grid,
                source,
                series_limit,
            )?)),
        },
        MetricExpr::VectorAgg(agg) => {
            let inner = match rewrite::pushed_down_grouping(agg) {
                // A sum grouped like its range aggregation has the same series.
                Some(grouped) => {
                    Value::Vector(range::eval_range_agg(&grouped, grid, source, series_limit)?)
                }
                None => eval_expr(&agg.inner, grid, source, guard)?,
            };
            let inner = match inner {
                Value::Vector(steps) => steps,
                // The parser never builds this; treat a scalar operand as `vector(n)`.
                Value::Scalar(v) => constant_vector(v, grid),
            };
            Ok(Value::Vector(vector::eval_vector_agg(agg, inner)?))
        }
        MetricExpr::Binary(b) => {
            let lhs = eval_expr(&b.lhs, grid, source, guard)?;
            let rhs = eval_expr(&b.rhs, grid, source, guard)?;
            binary::eval_binary(b, lhs, rhs)
        }
        MetricExpr::Literal(v) => Ok(Value::Scalar(*v)),
        MetricExpr::Vector(v) => Ok(Value::Vector(constant_vector(*v, grid))),
        MetricExpr::LabelReplace(lr) => {
            let inner = match eval_expr(&lr.inner, grid, source, guard)? {
                Value::Vector(steps) => steps,
                Value::Scalar(v) => constant_vector(v, grid),
            };
            Ok(Value::Vector(label_replace::eval_label_replace(lr, inner)?))
        }
        MetricExpr::Parens(inner) => eval_node(inner, grid, source, series_limit, guard),
    }
}

/// `vector(v)`: `{}` with value `v` at every step.
fn constant_vector(v: f64, grid: &Grid) -> Vec<StepVec> {
    vec![
        vec![Elem {
            labels: LabelSet::empty(),
            value: v,
        }];
        grid.len()
    ]
}

/// Whether `sort` or `sort_desc` appears anywhere: then an instant vector keeps its order.
fn uses_sort(expr: &MetricExpr) -> bool {
    match expr {
        MetricExpr::VectorAgg(agg) => {
            matches!(agg.op, VectorOp::Sort | VectorOp::SortDesc) || uses_sort(&agg.inner)
        }
        MetricExpr::Binary(b) => uses_sort(&b.lhs) || uses_sort(&b.rhs),
        MetricExpr::LabelReplace(lr) => uses_sort(&lr.inner),
        MetricExpr::Parens(inner) => uses_sort(inner),
        MetricExpr::RangeAgg(_) | MetricExpr::Literal(_) | MetricExpr::Vector(_) => false,
    }
}

/// Metric results never carry `__name__`.
fn without_metric_name(labels: LabelSet) -> LabelSet {
    if labels.get("__name__").is_none() {
        return labels;
    }
    let mut b = labels.to_builder();
    b.remove("__name__");
    b.build()
}

/// `Duration.Seconds()` as Go computes it.
pub(crate) fn duration_seconds(ns: i64) -> f64 {
    (ns / NANOS_PER_SECOND) as f64 + (ns % NANOS_PER_SECOND) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::ast::{LabelReplace, RangeOp};
    use fenrir_common::MatchOp;

    #[test]
    fn range_params_follow_the_query_frontend_grid() {
        // start=1000s, end=1100s, step=30s → points at 990 … 1110
        let p = EvalParams::range(1000 * S, 1100 * S, 30 * S, 500);
        assert_eq!((p.start, p.end, p.step), (990 * S, 1110 * S, 30 * S));
        assert!(!p.instant);
        let p = EvalParams::range(1020 * S, 1050 * S, 30 * S, 0);
        assert_eq!((p.start, p.end), (1020 * S, 1050 * S));
        let p = EvalParams::instant(5 * S, 0);
        assert!(p.instant);
        assert_eq!((p.start, p.end), (5 * S, 5 * S));
    }

    #[test]
    fn default_step_is_range_over_250_at_least_one_second() {
        assert_eq!(EvalParams::default_step(0, 3600 * S), 14 * S);
        assert_eq!(EvalParams::default_step(0, 60 * S), S);
        assert_eq!(EvalParams::default_step(0, 2 * 3600 * S), 28 * S);
    }

    #[test]
    fn literals_and_vector_literals() {
        let mut src = FakeSource::new();
        let lit = MetricExpr::Literal(2.5);
        let p = EvalParams::instant(4_000_000_000 * S, 0);
        assert_eq!(
            evaluate(&lit, &p, &mut src).unwrap(),
            QueryValue::Scalar {
                ts_ms: 4_000_000_000_000,
                value: 2.5
            }
        );
        assert_eq!(
            range(&lit, 0.0, 60.0, 30.0, &mut src).unwrap(),
            rows(&[("{}", "2.5 2.5 2.5")])
        );
        let v = MetricExpr::Vector(3.0);
        assert_eq!(
            evaluate(&v, &p, &mut src).unwrap(),
            QueryValue::Vector(vec![Sample {
                labels: LabelSet::empty(),
                ts_ms: 4_000_000_000_000,
                value: 3.0
            }])
        );
        assert_eq!(
            range(&v, 0.0, 60.0, 30.0, &mut src).unwrap(),
            rows(&[("{}", "3 3 3")])
        );
    }

    fn many_series() -> FakeSource {
        let mut src = FakeSource::new();
        for i in 0..5 {
            let pod = format!("p{i}");
            src = src.stream(
                &[("app", "a"), ("pod", pod.as_str())],
                &[(10.0 + i as f64 * 20.0, 1.0)],
            );
        }
        src
    }

    #[test]
    fn max_series_counts_the_final_result() {
        let q = range_agg(RangeOp::CountOverTime, eq("app", "a"), 15.0, false);
        let params = |max| EvalParams::range(0, 100 * S, 10 * S, max);
        assert!(
            matches!(evaluate(&q, &params(5), &mut many_series()), Ok(QueryValue::Matrix(m)) if m.len() == 5)
        );
        let err = evaluate(&q, &params(4), &mut many_series()).unwrap_err();
        assert_eq!(err, Error::SeriesLimit(4));
        assert!(err
            .to_string()
            .starts_with("maximum number of series (4) reached for a single query; consider"));
        // aggregated away: under the limit
        let summed = test_support::vagg(VectorOp::Sum, q.clone(), None, None);
        assert!(evaluate(&summed, &params(1), &mut many_series()).is_ok());
        // instant: more elements than the limit
        let wide = range_agg(RangeOp::CountOverTime, eq("app", "a"), 200.0, false);
        let p = EvalParams::instant(100 * S, 4);
        assert_eq!(
            evaluate(&wide, &p, &mut many_series()).unwrap_err(),
            Error::SeriesLimit(4)
        );
        let p = EvalParams::instant(100 * S, 0);
        assert!(
            matches!(evaluate(&wide, &p, &mut many_series()), Ok(QueryValue::Vector(v)) if v.len() == 5)
        );
    }

    #[test]
    fn inner_series_are_bounded_too() {
        // 101 series under `topk`: the result has one, the inner aggregation more than
        // INNER_SERIES_FACTOR times the limit of 1.
        let source = || {
            let mut src = FakeSource::new();
            for i in 0..=INNER_SERIES_FACTOR {
                let pod = format!("p{i}");
                src = src.stream(&[("app", "a"), ("pod", pod.as_str())], &[(10.0, 1.0)]);
            }
            src
        };
        let inner = range_agg(RangeOp::CountOverTime, eq("app", "a"), 15.0, false);
        let top = test_support::vagg(VectorOp::Topk, inner, None, Some(1));
        let params = |max| EvalParams::range(0, 100 * S, 10 * S, max);
        assert_eq!(
            evaluate(&top, &params(1), &mut source()).unwrap_err(),
            Error::SeriesLimit(INNER_SERIES_FACTOR)
        );
        assert!(
            matches!(evaluate(&top, &params(2), &mut source()), Ok(QueryValue::Matrix(m)) if m.len() == 1)
        );
        assert!(evaluate(&top, &params(0), &mut source()).is_ok());
    }

    #[test]
    fn matrix_is_sorted_by_label_string_with_ms_points() {
        let mut src = FakeSource::new()
            .stream(&[("b", "1")], &[(0.5, 1.0)])
            .stream(&[("a", "2"), ("z", "1")], &[(0.5, 1.0)])
            .stream(&[("a", "10")], &[(0.5, 1.0)]);
        let q = range_agg(
            RangeOp::CountOverTime,
            sel(&[("a", MatchOp::Re, ".*")]),
            1.0,
            false,
        );
        let p = EvalParams {
            start: 1_000_999_999,
            end: 1_000_999_999,
            step: S,
            instant: false,
            max_series: 0,
        };
        let QueryValue::Matrix(m) = evaluate(&q, &p, &mut src).unwrap() else {
            panic!("not a matrix")
        };
        let labels: Vec<String> = m.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(labels, [r#"{a="10"}"#, r#"{a="2", z="1"}"#, r#"{b="1"}"#]);
        assert_eq!(m[0].points, vec![(1000, 1.0)]);
    }

    #[test]
    fn grouped_avg_over_time_is_a_sum_over_a_count_and_sums_push_their_grouping() {
        let src = || {
            FakeSource::new()
                .stream(&[("app", "a"), ("pod", "p1")], &[(10.0, 1.0), (20.0, 4.0)])
                .stream(&[("app", "a"), ("pod", "p2")], &[(15.0, 2.0)])
        };
        let avg = range_agg(RangeOp::AvgOverTime, eq("app", "a"), 60.0, true);
        let grouped = with_range_grouping(avg.clone(), false, &["app"]);
        let mut s = src();
        assert_eq!(
            instant(&grouped, 30.0, &mut s).unwrap(),
            rows(&[(r#"{app="a"}"#, "2.3333333333333335")])
        );
        assert_eq!(s.calls, 2, "one pass for the sum, one for the count");
        let mut s = src();
        assert_eq!(
            sorted(instant(&avg, 30.0, &mut s).unwrap()),
            rows(&[
                (r#"{app="a", pod="p1"}"#, "2.5"),
                (r#"{app="a", pod="p2"}"#, "2")
            ])
        );
        assert_eq!(s.calls, 1, "no grouping: no rewrite");
        // `sum by (pod) (count_over_time(…))` hands `by (pod)` to the source.
        let counted = vagg(
            VectorOp::Sum,
            range_agg(RangeOp::CountOverTime, eq("app", "a"), 60.0, false),
            Some(grouping(false, &["pod"])),
            None,
        );
        assert_eq!(
            sorted(instant(&counted, 30.0, &mut src()).unwrap()),
            rows(&[(r#"{pod="p1"}"#, "2"), (r#"{pod="p2"}"#, "1")])
        );
    }

    #[test]
    fn metric_name_never_reaches_the_result() {
        let mut src = FakeSource::new().stream(&[("app", "a")], &[(5.0, 1.0)]);
        let q = MetricExpr::LabelReplace(Box::new(LabelReplace {
            inner: range_agg(RangeOp::CountOverTime, eq("app", "a"), 60.0, false),
            dst: "__name__".into(),
            replacement: "x".into(),
            src: "app".into(),
            regex: ".*".into(),
        }));
        assert_eq!(
            instant(&q, 10.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1")])
        );
    }
}
