//! Range aggregations (`rate`, `count_over_time`, `quantile_over_time`, …): one pass over
//! the samples into per-series, per-step accumulators.

use std::collections::HashMap;

use fenrir_common::LabelSet;

use super::grid::Grid;
use super::{duration_seconds, Elem, SampleSource, StepVec};
use crate::ast::{RangeAgg, RangeOp};
use crate::{Error, Result};
use fenrir_common::MatchOp;

/// What a step must remember for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only the number of samples.
    Count,
    /// Number and sum.
    Sum,
    /// Smallest value, NaN only if every value is NaN.
    Min,
    /// Largest value, NaN only if every value is NaN.
    Max,
    /// Value with the lowest timestamp (earliest arrival on ties).
    First,
    /// Value with the highest timestamp (latest arrival on ties).
    Last,
    /// Every `(ts, value)`: the result depends on time order or on all values.
    Values,
}

fn kind_of(op: RangeOp) -> Kind {
    match op {
        RangeOp::CountOverTime | RangeOp::AbsentOverTime => Kind::Count,
        RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate | RangeOp::SumOverTime => {
            Kind::Sum
        }
        RangeOp::MinOverTime => Kind::Min,
        RangeOp::MaxOverTime => Kind::Max,
        RangeOp::FirstOverTime => Kind::First,
        RangeOp::LastOverTime => Kind::Last,
        RangeOp::AvgOverTime
        | RangeOp::StddevOverTime
        | RangeOp::StdvarOverTime
        | RangeOp::QuantileOverTime
        | RangeOp::RateCounter => Kind::Values,
    }
}

/// O(1) state of one step.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    n: u64,
    ts: i64,
    v: f64,
}

impl Cell {
    fn add(&mut self, kind: Kind, ts: i64, v: f64) {
        let first = self.n == 0;
        self.n += 1;
        match kind {
            Kind::Count | Kind::Values => {}
            Kind::Sum => self.v += v,
            Kind::Min => {
                if first || v < self.v || self.v.is_nan() {
                    self.v = v;
                }
            }
            Kind::Max => {
                if first || v > self.v || self.v.is_nan() {
                    self.v = v;
                }
            }
            Kind::First => {
                if first || ts < self.ts {
                    self.ts = ts;
                    self.v = v;
                }
            }
            Kind::Last => {
                if first || ts >= self.ts {
                    self.ts = ts;
                    self.v = v;
                }
            }
        }
    }
}

/// A vector indexed by step that only covers the steps a series touched.
#[derive(Debug, Clone, Default)]
struct Span<T> {
    base: usize,
    items: Vec<T>,
}

impl<T: Default + Clone> Span<T> {
    /// The slots of steps `lo..=hi`, growing the span as needed.
    fn slots(&mut self, lo: usize, hi: usize) -> &mut [T] {
        if self.items.is_empty() {
            self.base = lo;
        } else if lo < self.base {
            let extra = self.base - lo;
            self.items
                .splice(0..0, std::iter::repeat_n(T::default(), extra));
            self.base = lo;
        }
        let needed = hi - self.base + 1;
        if self.items.len() < needed {
            self.items.resize(needed, T::default());
        }
        &mut self.items[lo - self.base..=hi - self.base]
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items.iter().enumerate().map(move |(i, t)| (self.base + i, t))
    }
}

#[derive(Debug)]
enum Steps {
    Cells(Span<Cell>),
    Values(Span<Vec<(i64, f64)>>),
}

#[derive(Debug)]
struct SeriesAcc {
    labels: LabelSet,
    steps: Steps,
}

impl SeriesAcc {
    /// Steps where this series has at least one sample.
    fn present_steps(&self) -> Vec<usize> {
        match &self.steps {
            Steps::Cells(span) => span.iter().filter(|(_, c)| c.n > 0).map(|(i, _)| i).collect(),
            Steps::Values(span) => span
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(i, _)| i)
                .collect(),
        }
    }
}

/// Collects the samples of one range aggregation.
struct Accumulator<'g> {
    kind: Kind,
    grid: &'g Grid,
    range: i64,
    offset: i64,
    series: Vec<SeriesAcc>,
    index: HashMap<LabelSet, usize>,
    /// The last series seen: sources usually send runs of one stream, and comparing
    /// the same `Arc` is cheaper than hashing the labels.
    last: Option<(LabelSet, usize)>,
}

impl Accumulator<'_> {
    fn add(&mut self, labels: &LabelSet, ts: i64, v: f64) {
        let Some(steps) = self.grid.steps_for(ts, self.range, self.offset) else {
            return;
        };
        let slot = match &self.last {
            Some((l, slot)) if l == labels => *slot,
            _ => {
                let slot = match self.index.get(labels) {
                    Some(&slot) => slot,
                    None => {
                        let slot = self.series.len();
                        self.index.insert(labels.clone(), slot);
                        self.series.push(SeriesAcc {
                            labels: labels.clone(),
                            steps: if self.kind == Kind::Values {
                                Steps::Values(Span::default())
                            } else {
                                Steps::Cells(Span::default())
                            },
                        });
                        slot
                    }
                };
                self.last = Some((labels.clone(), slot));
                slot
            }
        };
        let kind = self.kind;
        match &mut self.series[slot].steps {
            Steps::Cells(span) => {
                for cell in span.slots(*steps.start(), *steps.end()) {
                    cell.add(kind, ts, v);
                }
            }
            Steps::Values(span) => {
                for values in span.slots(*steps.start(), *steps.end()) {
                    values.push((ts, v));
                }
            }
        }
    }
}

/// Evaluates a range aggregation at every step of `grid`.
pub(crate) fn eval_range_agg(
    agg: &RangeAgg,
    grid: &Grid,
    source: &mut dyn SampleSource,
) -> Result<Vec<StepVec>> {
    let mut out: Vec<StepVec> = vec![Vec::new(); grid.len()];
    if grid.len() == 0 {
        return Ok(out);
    }
    let range = agg.range.range;
    let offset = agg.range.offset;
    let mut acc = Accumulator {
        kind: kind_of(agg.op),
        grid,
        range,
        offset,
        series: Vec::new(),
        index: HashMap::new(),
        last: None,
    };
    let (from, to) = grid.span(range, offset);
    source.samples(agg, from, to, &mut |labels, ts, v| acc.add(labels, ts, v))?;
    let mut series = acc.series;
    check_pipeline_errors(&series)?;
    series.sort_by(|a, b| a.labels.cmp(&b.labels));

    if agg.op == RangeOp::AbsentOverTime {
        let mut present = vec![false; grid.len()];
        for s in &series {
            for i in s.present_steps() {
                present[i] = true;
            }
        }
        let labels = absent_labels(agg);
        for (i, step) in out.iter_mut().enumerate() {
            if !present[i] {
                step.push(Elem {
                    labels: labels.clone(),
                    value: 1.0,
                });
            }
        }
        return Ok(out);
    }

    let range_seconds = duration_seconds(range);
    let unwrapped = agg.range.unwrap.is_some();
    for s in series {
        match s.steps {
            Steps::Cells(span) => {
                for (i, cell) in span.iter() {
                    if cell.n == 0 {
                        continue;
                    }
                    let value = match agg.op {
                        RangeOp::CountOverTime => cell.n as f64,
                        RangeOp::Rate if !unwrapped => cell.n as f64 / range_seconds,
                        RangeOp::Rate | RangeOp::BytesRate => cell.v / range_seconds,
                        _ => cell.v,
                    };
                    out[i].push(Elem {
                        labels: s.labels.clone(),
                        value,
                    });
                }
            }
            Steps::Values(span) => {
                for (i, values) in span.items.into_iter().enumerate() {
                    if values.is_empty() {
                        continue;
                    }
                    let step = span.base + i;
                    let mut values = values;
                    values.sort_by_key(|(ts, _)| *ts);
                    let t = grid.time(step).saturating_sub(offset);
                    let value = match agg.op {
                        RangeOp::AvgOverTime => avg(values.iter().map(|p| p.1)),
                        RangeOp::StddevOverTime => stdvar(values.iter().map(|p| p.1)).sqrt(),
                        RangeOp::StdvarOverTime => stdvar(values.iter().map(|p| p.1)),
                        RangeOp::QuantileOverTime => {
                            let mut vs: Vec<f64> = values.iter().map(|p| p.1).collect();
                            quantile(agg.param.unwrap_or(f64::NAN), &mut vs)
                        }
                        RangeOp::RateCounter => rate_counter(&values, t - range, t, range),
                        _ => f64::NAN,
                    };
                    out[step].push(Elem {
                        labels: s.labels.clone(),
                        value,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Loki fails a metric query at the first step where a series still carrying
/// `__error__` has a point (unless `__preserve_error__="true"`).
fn check_pipeline_errors(series: &[SeriesAcc]) -> Result<()> {
    let mut worst: Option<(usize, &LabelSet)> = None;
    for s in series {
        let Some(kind) = s.labels.get("__error__") else {
            continue;
        };
        if kind.is_empty() || s.labels.get("__preserve_error__") == Some("true") {
            continue;
        }
        if let Some(&first) = s.present_steps().first() {
            let better = match worst {
                None => true,
                Some((step, labels)) => (first, &s.labels) < (step, labels),
            };
            if better {
                worst = Some((first, &s.labels));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((_, labels)) => Err(Error::Pipeline {
            kind: labels.get("__error__").unwrap_or_default().to_string(),
            series: labels.to_string(),
        }),
    }
}

/// `absent_over_time` labels: the selector's equality matchers, minus any name that
/// also appears in another matcher (logql.md §2.8).
fn absent_labels(agg: &RangeAgg) -> LabelSet {
    let mut kept: Vec<(&str, &str)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in &agg.range.log.selector {
        if m.name() == "__name__" {
            continue;
        }
        if m.op() == MatchOp::Eq && !kept.iter().any(|(n, _)| *n == m.name()) {
            kept.push((m.name(), m.value()));
        } else {
            dropped.push(m.name());
        }
    }
    LabelSet::from_pairs(kept.into_iter().filter(|(n, _)| !dropped.contains(n)))
}

/// Running mean in time order, with Prometheus' handling of infinities.
pub(crate) fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let mut mean = 0.0f64;
    let mut count = 0.0f64;
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Population variance, Welford's method in the given order.
pub(crate) fn stdvar(values: impl Iterator<Item = f64>) -> f64 {
    let (mut aux, mut count, mut mean) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}

/// Prometheus quantile: linear interpolation at rank φ·(n−1); NaN sorts first.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus `extrapolatedRate` for a counter, per second, over the window
/// `(range_start, range_end]` (nanoseconds). Fewer than two samples give 0.
fn rate_counter(samples: &[(i64, f64)], range_start: i64, range_end: i64, range: i64) -> f64 {
    let (Some(&(first_ts, first_v)), Some(&(last_ts, last_v))) = (samples.first(), samples.last())
    else {
        return 0.0;
    };
    if samples.len() < 2 {
        return 0.0;
    }
    let mut result = last_v - first_v;
    let mut prev = first_v;
    for &(_, v) in &samples[1..] {
        if v < prev {
            // A counter reset: add back what was counted before it.
            result += prev;
        }
        prev = v;
    }
    let seconds = |ns: i64| ns as f64 / 1e9;
    let mut to_start = seconds(first_ts - range_start);
    let mut to_end = seconds(range_end - last_ts);
    let sampled = seconds(last_ts - first_ts);
    let average = sampled / (samples.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if result > 0.0 && first_v >= 0.0 {
        // Never extrapolate a counter below zero.
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let extrapolated = sampled + to_start + to_end;
    result * (extrapolated / sampled) / duration_seconds(range)
}
