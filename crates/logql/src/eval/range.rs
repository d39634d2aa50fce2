//! Range aggregations (`rate`, `count_over_time`, `quantile_over_time`, …): one pass over
//! the samples into per-series, per-step accumulators.

use fenrir_common::LabelSet;

use super::grid::Grid;
use super::{duration_seconds, Elem, SampleSource, StepVec};
use crate::ast::{RangeAgg, RangeOp};
use crate::fxhash::FxHashMap;
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

impl Cell {
    /// Folds in another cell of the same step.
    fn merge(&mut self, kind: Kind, other: &Cell) {
        if other.n == 0 {
            return;
        }
        let n = self.n;
        self.add(kind, other.ts, other.v);
        self.n = n + other.n;
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
        self.items
            .iter()
            .enumerate()
            .map(move |(i, t)| (self.base + i, t))
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
            Steps::Cells(span) => span
                .iter()
                .filter(|(_, c)| c.n > 0)
                .map(|(i, _)| i)
                .collect(),
            Steps::Values(span) => span
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(i, _)| i)
                .collect(),
        }
    }
}

/// Collects the samples of one range aggregation.
#[derive(Debug)]
struct Accumulator {
    kind: Kind,
    grid: Grid,
    range: i64,
    offset: i64,
    series: Vec<SeriesAcc>,
    index: FxHashMap<LabelSet, usize>,
    /// Recently seen sets by the address of their labels: extractors hand out the same
    /// interned `Arc` for a series line after line, and comparing addresses is cheaper
    /// than hashing or comparing labels. Each entry holds its set, so that an address
    /// cannot be reused by another set while cached.
    recent: Box<[Option<(LabelSet, usize)>; RECENT]>,
}

/// Entries of [`Accumulator::recent`], a power of two.
const RECENT: usize = 16;

fn recent_key(labels: &LabelSet) -> usize {
    let addr = labels.as_slice().as_ptr() as usize;
    (addr >> 4 ^ addr >> 10) % RECENT
}

impl Accumulator {
    fn new(kind: Kind, grid: Grid, range: i64, offset: i64) -> Self {
        Accumulator {
            kind,
            grid,
            range,
            offset,
            series: Vec::new(),
            index: FxHashMap::default(),
            recent: Box::new(std::array::from_fn(|_| None)),
        }
    }

    /// The slot of `labels`, added if new.
    #[inline]
    fn slot(&mut self, labels: &LabelSet) -> usize {
        let key = recent_key(labels);
        if let Some((l, slot)) = &self.recent[key] {
            if l.as_slice().as_ptr() == labels.as_slice().as_ptr() {
                return *slot;
            }
        }
        let slot = self.lookup(labels);
        self.recent[key] = Some((labels.clone(), slot));
        slot
    }

    fn lookup(&mut self, labels: &LabelSet) -> usize {
        match self.index.get(labels) {
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
        }
    }

    fn add(&mut self, labels: &LabelSet, ts: i64, v: f64) {
        let Some(steps) = self.grid.steps_for(ts, self.range, self.offset) else {
            return;
        };
        let slot = self.slot(labels);
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

    /// Adds the series of `other` (same aggregation) to this one's.
    fn merge(&mut self, other: Accumulator) {
        let kind = self.kind;
        for s in other.series {
            let slot = match self.index.get(&s.labels) {
                Some(&slot) => slot,
                None => {
                    self.index.insert(s.labels.clone(), self.series.len());
                    self.series.push(s);
                    continue;
                }
            };
            match (&mut self.series[slot].steps, s.steps) {
                (Steps::Cells(dst), Steps::Cells(src)) if !src.items.is_empty() => {
                    let hi = src.base + src.items.len() - 1;
                    for (d, c) in dst.slots(src.base, hi).iter_mut().zip(&src.items) {
                        d.merge(kind, c);
                    }
                }
                (Steps::Values(dst), Steps::Values(src)) if !src.items.is_empty() => {
                    let hi = src.base + src.items.len() - 1;
                    for (d, v) in dst.slots(src.base, hi).iter_mut().zip(src.items) {
                        d.extend(v);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Where a [`SampleSource`] delivers the samples of one range aggregation: per-series,
/// per-step accumulators. When the aggregation's series are the query's result, the sink
/// refuses samples once they exceed `max_query_series`, so that a query whose series
/// explode stops there instead of accumulating them all.
#[derive(Debug)]
pub struct SampleSink {
    acc: Accumulator,
    /// Series allowed before the sink is full; 0: no limit.
    limit: usize,
    full: bool,
    /// Whether the result is the same whatever order samples arrive in, so that several
    /// sinks may collect them in parallel and be merged.
    order_free: bool,
}

impl SampleSink {
    fn new(agg: &RangeAgg, grid: Grid, limit: usize) -> Self {
        let kind = kind_of(agg.op);
        // Counts, and sums of whole numbers (lines, bytes) are exact in any order; float
        // sums and time-ordered values are not.
        let order_free = kind == Kind::Count || (kind == Kind::Sum && agg.range.unwrap.is_none());
        SampleSink {
            acc: Accumulator::new(kind, grid, agg.range.range, agg.range.offset),
            limit,
            full: false,
            order_free,
        }
    }

    /// Adds a sample. `false` once the series limit is exceeded: the sample was dropped,
    /// the query fails with Loki's `max_query_series` error, and the source should stop.
    #[inline]
    pub fn add(&mut self, labels: &LabelSet, ts: i64, v: f64) -> bool {
        if self.full {
            return false;
        }
        self.acc.add(labels, ts, v);
        self.check_limit()
    }

    fn check_limit(&mut self) -> bool {
        if self.limit > 0 && self.acc.series.len() > self.limit {
            self.full = true;
        }
        !self.full
    }

    /// Whether the series limit was exceeded.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Distinct series collected so far.
    pub fn series(&self) -> usize {
        self.acc.series.len()
    }

    /// An empty sink for the same aggregation, to collect a share of the samples on
    /// another thread, when the result does not depend on the order samples arrive in
    /// (counts, sums of line counts or bytes); `None` otherwise. Each fork is bounded by
    /// the series limit on its own; [`SampleSink::merge`] checks the union.
    pub fn fork(&self) -> Option<SampleSink> {
        self.order_free.then(|| SampleSink {
            acc: Accumulator::new(
                self.acc.kind,
                self.acc.grid,
                self.acc.range,
                self.acc.offset,
            ),
            limit: self.limit,
            full: false,
            order_free: true,
        })
    }

    /// Adds the samples of a fork of this sink. `false` once the series limit is exceeded.
    pub fn merge(&mut self, other: SampleSink) -> bool {
        self.full |= other.full;
        if !self.full {
            self.acc.merge(other.acc);
        }
        self.check_limit()
    }
}

/// Evaluates a range aggregation at every step of `grid`. `series_limit` (0: none) is
/// `max_query_series` when this aggregation's series are the query's result series.
pub(crate) fn eval_range_agg(
    agg: &RangeAgg,
    grid: &Grid,
    source: &mut dyn SampleSource,
    series_limit: usize,
) -> Result<Vec<StepVec>> {
    let mut out: Vec<StepVec> = vec![Vec::new(); grid.len()];
    if grid.len() == 0 {
        return Ok(out);
    }
    let range = agg.range.range;
    let offset = agg.range.offset;
    let mut sink = SampleSink::new(agg, *grid, series_limit);
    let (from, to) = grid.span(range, offset);
    source.samples(agg, from, to, &mut sink)?;
    let full = sink.full;
    let mut series = sink.acc.series;
    check_pipeline_errors(&series)?;
    if full {
        return Err(Error::SeriesLimit(series_limit));
    }
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ast::RangeOp::*;
    use crate::Error;
    use fenrir_common::MatchOp;

    fn keep_every_10s() -> FakeSource {
        // {app="a"}: one line every 10s at 0s..600s
        FakeSource::new().repeat(&[("app", "a")], 0.0, 10.0, 61)
    }

    #[test]
    fn count_over_time_window_is_left_open_right_closed() {
        let q = range_agg(CountOverTime, eq("app", "a"), 60.0, false);
        let mut src = keep_every_10s();
        // (0,60] holds 10..60: six lines; 0s itself is excluded
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "6")])
        );
        assert_eq!(
            range(&q, 60.0, 120.0, 30.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "6 6 6")])
        );
        // non-overlapping windows and empty steps omitted
        assert_eq!(
            range(&q, 600.0, 720.0, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "6 _ _")])
        );
        assert_eq!(instant(&q, 720.0, &mut src).unwrap(), rows(&[]));
    }

    #[test]
    fn one_source_call_per_range_aggregation() {
        let q = range_agg(CountOverTime, eq("app", "a"), 60.0, false);
        let mut src = keep_every_10s();
        range(&q, 60.0, 600.0, 15.0, &mut src).unwrap();
        assert_eq!(src.calls, 1);
    }

    #[test]
    fn offset_shifts_the_window_and_keeps_the_step_time() {
        let q = with_offset(range_agg(CountOverTime, eq("app", "a"), 60.0, false), 90.0);
        let mut src = keep_every_10s();
        // t=90 reads (-60,0]: just 0s
        assert_eq!(
            instant(&q, 90.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1")])
        );
        assert_eq!(
            range(&q, 60.0, 150.0, 30.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "_ 1 4 6")])
        );
    }

    #[test]
    fn rate_divides_by_range_without_extrapolation() {
        let q = range_agg(Rate, eq("app", "a"), 60.0, false);
        let mut src = keep_every_10s();
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "0.1")])
        );
        // [500ms] windows: lines at 100,300,500,… ms
        let q = range_agg(Rate, eq("app", "b"), 0.5, false);
        let mut src = FakeSource::new().repeat(&[("app", "b")], 0.1, 0.2, 6);
        assert_eq!(
            instant(&q, 0.5, &mut src).unwrap(),
            rows(&[(r#"{app="b"}"#, "6")])
        );
    }

    #[test]
    fn rate_with_unwrap_sums_values() {
        let q = range_agg(Rate, eq("app", "p"), 30.0, true);
        let samples: Vec<(f64, f64)> = (0..13).map(|i| (10.0 * i as f64, 2.0)).collect();
        let mut src = FakeSource::new().stream(&[("app", "p")], &samples);
        // (30,60] holds 40,50,60 → 6/30s
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="p"}"#, "0.2")])
        );
    }

    #[test]
    fn bytes_over_time_and_bytes_rate_sum_line_sizes() {
        let mut src =
            FakeSource::new().stream(&[("app", "a")], &[(20.0, 1.0), (30.0, 2.0), (40.0, 3.0)]);
        let q = range_agg(BytesOverTime, eq("app", "a"), 60.0, false);
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "6")])
        );
        let q = with_offset(range_agg(BytesOverTime, eq("app", "a"), 20.0, false), 20.0);
        assert_eq!(
            range(&q, 40.0, 100.0, 20.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1 5 _ _")])
        );
        let q = range_agg(BytesRate, eq("app", "a"), 60.0, false);
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "0.1")])
        );
    }

    #[test]
    fn sum_over_time_nan_and_infinities() {
        let mut src = FakeSource::new()
            .stream(&[("c", "fin")], &[(10.0, 1.5), (20.0, 2.5)])
            .stream(&[("c", "nan")], &[(10.0, 1.0), (20.0, f64::NAN)])
            .stream(
                &[("c", "mixinf")],
                &[(10.0, f64::INFINITY), (20.0, f64::NEG_INFINITY)],
            )
            .stream(&[("c", "inf")], &[(10.0, f64::INFINITY), (20.0, 3.0)]);
        let q = range_agg(SumOverTime, sel(&[("c", MatchOp::Re, ".+")]), 60.0, true);
        assert_eq!(
            sorted(instant(&q, 60.0, &mut src).unwrap()),
            sorted(rows(&[
                (r#"{c="fin"}"#, "4"),
                (r#"{c="nan"}"#, "NaN"),
                (r#"{c="mixinf"}"#, "NaN"),
                (r#"{c="inf"}"#, "+Inf"),
            ]))
        );
    }

    #[test]
    fn avg_over_time_is_a_running_mean_in_time_order() {
        let mut src = FakeSource::new()
            .stream(&[("c", "multi")], &[(20.0, 7.0), (30.0, 13.0)])
            .stream(&[("c", "nan")], &[(20.0, 7.0), (40.0, f64::NAN)])
            .stream(&[("c", "posinf")], &[(20.0, f64::INFINITY), (40.0, 5.0)])
            .stream(
                &[("c", "mixinf")],
                &[(20.0, f64::INFINITY), (40.0, f64::NEG_INFINITY)],
            );
        let q = range_agg(AvgOverTime, sel(&[("c", MatchOp::Re, ".+")]), 60.0, true);
        assert_eq!(
            sorted(instant(&q, 60.0, &mut src).unwrap()),
            sorted(rows(&[
                (r#"{c="multi"}"#, "10"),
                (r#"{c="nan"}"#, "NaN"),
                (r#"{c="posinf"}"#, "+Inf"),
                (r#"{c="mixinf"}"#, "NaN"),
            ]))
        );
        // [20s] offset 30s: t=60 reads (10,30], t=80 reads (30,50]
        let q = with_offset(
            range_agg(AvgOverTime, sel(&[("c", MatchOp::Re, ".+")]), 20.0, true),
            30.0,
        );
        assert_eq!(
            sorted(range(&q, 40.0, 100.0, 20.0, &mut src).unwrap()),
            sorted(rows(&[
                (r#"{c="multi"}"#, "_ 10 _ _"),
                (r#"{c="nan"}"#, "_ 7 NaN _"),
                (r#"{c="posinf"}"#, "_ +Inf 5 _"),
                (r#"{c="mixinf"}"#, "_ +Inf -Inf _"),
            ]))
        );
    }

    #[test]
    fn min_and_max_over_time_skip_nan_unless_all_nan() {
        let mut src = FakeSource::new()
            .stream(
                &[("c", "neg")],
                &[(20.0, -5.0), (30.0, -1.0), (40.0, -10.0)],
            )
            .stream(
                &[("c", "lead")],
                &[(20.0, f64::NAN), (30.0, 7.0), (40.0, 13.0)],
            )
            .stream(&[("c", "allnan")], &[(20.0, f64::NAN), (40.0, f64::NAN)]);
        let all = sel(&[("c", MatchOp::Re, ".+")]);
        let q = range_agg(MinOverTime, all.clone(), 60.0, true);
        assert_eq!(
            sorted(instant(&q, 60.0, &mut src).unwrap()),
            sorted(rows(&[
                (r#"{c="neg"}"#, "-10"),
                (r#"{c="lead"}"#, "7"),
                (r#"{c="allnan"}"#, "NaN"),
            ]))
        );
        let q = range_agg(MaxOverTime, all, 60.0, true);
        assert_eq!(
            sorted(instant(&q, 60.0, &mut src).unwrap()),
            sorted(rows(&[
                (r#"{c="neg"}"#, "-1"),
                (r#"{c="lead"}"#, "13"),
                (r#"{c="allnan"}"#, "NaN"),
            ]))
        );
    }

    #[test]
    fn first_and_last_over_time_keep_nan() {
        let mut src = FakeSource::new().stream(
            &[("app", "a")],
            &[
                (10.0, 10.0),
                (20.0, 20.0),
                (30.0, 30.0),
                (90.0, 40.0),
                (100.0, f64::NAN),
            ],
        );
        let first = range_agg(FirstOverTime, eq("app", "a"), 60.0, true);
        let last = range_agg(LastOverTime, eq("app", "a"), 60.0, true);
        assert_eq!(
            instant(&first, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "10")])
        );
        assert_eq!(
            instant(&last, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "30")])
        );
        let first = range_agg(FirstOverTime, eq("app", "a"), 20.0, true);
        let last = range_agg(LastOverTime, eq("app", "a"), 20.0, true);
        assert_eq!(
            range(&first, 20.0, 40.0, 10.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "10 20 30")])
        );
        assert_eq!(
            range(&last, 20.0, 40.0, 10.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "20 30 30")])
        );
        let first = range_agg(FirstOverTime, eq("app", "a"), 30.0, true);
        let last = range_agg(LastOverTime, eq("app", "a"), 30.0, true);
        assert_eq!(
            instant(&last, 110.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "NaN")])
        );
        assert_eq!(
            instant(&first, 125.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "NaN")])
        );
    }

    #[test]
    fn quantile_over_time_interpolates_and_handles_out_of_range_phi() {
        let mut src = FakeSource::new().stream(
            &[("app", "a")],
            &[
                (10.0, 1.0),
                (20.0, 2.0),
                (30.0, 3.0),
                (40.0, 4.0),
                (50.0, 5.0),
                (110.0, 6.0),
            ],
        );
        let q = |phi: f64| with_param(range_agg(QuantileOverTime, eq("app", "a"), 60.0, true), phi);
        for (phi, want) in [
            (0.0, "1"),
            (0.25, "2"),
            (0.4, "2.6"),
            (0.5, "3"),
            (1.0, "5"),
            (1.5, "+Inf"),
            (-0.5, "-Inf"),
        ] {
            assert_eq!(
                instant(&q(phi), 60.0, &mut src).unwrap(),
                rows(&[(r#"{app="a"}"#, want)]),
                "phi {phi}"
            );
        }
        let q15 = with_param(range_agg(QuantileOverTime, eq("app", "a"), 15.0, true), 0.5);
        assert_eq!(
            range(&q15, 20.0, 50.0, 30.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1.5 4.5")])
        );
    }

    #[test]
    fn grouping_pools_samples_of_every_stream() {
        let mut src = FakeSource::new()
            .stream(&[("app", "a"), ("pod", "1")], &[(20.0, 2.0), (30.0, 4.0)])
            .stream(&[("app", "a"), ("pod", "2")], &[(40.0, 10.0), (50.0, 20.0)]);
        let q = with_param(range_agg(QuantileOverTime, eq("app", "a"), 60.0, true), 0.5);
        assert_eq!(
            instant(
                &with_range_grouping(q.clone(), false, &["app"]),
                60.0,
                &mut src
            )
            .unwrap(),
            rows(&[(r#"{app="a"}"#, "7")])
        );
        assert_eq!(
            instant(&with_range_grouping(q, false, &["pod"]), 60.0, &mut src).unwrap(),
            rows(&[(r#"{pod="1"}"#, "3"), (r#"{pod="2"}"#, "15")])
        );
        let avg = with_range_grouping(
            range_agg(AvgOverTime, eq("app", "a"), 60.0, true),
            false,
            &[],
        );
        assert_eq!(instant(&avg, 60.0, &mut src).unwrap(), rows(&[("{}", "9")]));
    }

    #[test]
    fn stddev_and_stdvar_over_time_are_population_statistics() {
        let mut src = FakeSource::new()
            .stream(
                &[("app", "a")],
                &[
                    (10.0, 2.0),
                    (20.0, 4.0),
                    (30.0, 4.0),
                    (40.0, 4.0),
                    (50.0, 5.0),
                    (55.0, 5.0),
                    (56.0, 7.0),
                    (57.0, 9.0),
                ],
            )
            .stream(&[("app", "one")], &[(10.0, 3.0)]);
        let q = range_agg(StddevOverTime, eq("app", "a"), 60.0, true);
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "2")])
        );
        let q = range_agg(StdvarOverTime, eq("app", "a"), 60.0, true);
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "4")])
        );
        let q = range_agg(StddevOverTime, eq("app", "one"), 60.0, true);
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="one"}"#, "0")])
        );
    }

    fn counter_source() -> FakeSource {
        FakeSource::new().stream(
            &[("app", "a")],
            &[
                (90.0, 100.0),
                (120.0, 130.0),
                (150.0, 160.0),
                (180.0, 250.0),
                (210.0, 280.0),
                (240.0, 340.0),
                (330.0, 400.0),
                (360.0, 430.0),
                (390.0, 460.0),
                (420.0, 550.0),
                (450.0, 580.0),
                (480.0, 640.0),
            ],
        )
    }

    #[test]
    fn rate_counter_extrapolates_to_the_query_window() {
        let mut src = counter_source();
        let q = range_agg(RateCounter, eq("app", "a"), 60.0, true);
        assert_eq!(
            instant(&q, 480.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "2")])
        );
        assert_eq!(
            range(&q, 60.0, 540.0, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "_ 1 3 2 _ 1 3 2 _")])
        );
        let q3 = range_agg(RateCounter, eq("app", "a"), 180.0, true);
        assert_eq!(
            range(&q3, 240.0, 360.0, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1.6 1.5 1")])
        );
        let off = with_offset(q, 60.0);
        assert_eq!(
            instant(&off, 180.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1")])
        );
        // a single sample gives 0, no sample gives nothing
        let q10 = range_agg(RateCounter, eq("app", "a"), 10.0, true);
        assert_eq!(
            instant(&q10, 90.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "0")])
        );
        assert_eq!(instant(&q10, 300.0, &mut src).unwrap(), rows(&[]));
    }

    #[test]
    fn rate_counter_resets_zero_point_and_caps() {
        let mut src = FakeSource::new().stream(
            &[("app", "a")],
            &[
                (30.0, 30.0),
                (60.0, 60.0),
                (90.0, 90.0),
                (120.0, 30.0),
                (150.0, 60.0),
            ],
        );
        let q = range_agg(RateCounter, eq("app", "a"), 120.0, true);
        assert_eq!(
            instant(&q, 150.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1")])
        );
        let mut src = FakeSource::new().stream(
            &[("app", "a")],
            &[(75.0, 30.0), (105.0, 90.0), (135.0, 150.0)],
        );
        let q = range_agg(RateCounter, eq("app", "a"), 60.0, true);
        assert_eq!(
            instant(&q, 105.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1.5")])
        );
        assert_eq!(
            instant(&q, 135.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "2")])
        );
        let mut src = FakeSource::new().stream(&[("app", "a")], &[(150.0, 600.0), (180.0, 660.0)]);
        let q = range_agg(RateCounter, eq("app", "a"), 90.0, true);
        assert_eq!(
            range(&q, 180.0, 210.0, 30.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1 2")])
        );
        let q = range_agg(RateCounter, eq("app", "a"), 150.0, true);
        assert_eq!(
            instant(&q, 240.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "0.8")])
        );
        // the half-interval cap applies before the zero-point cap
        let mut src = FakeSource::new().stream(&[("app", "a")], &[(180.0, 40.0), (210.0, 100.0)]);
        let q = range_agg(RateCounter, eq("app", "a"), 90.0, true);
        assert_eq!(
            instant(&q, 210.0, &mut src).unwrap(),
            rows(&[(r#"{app="a"}"#, "1")])
        );
    }

    #[test]
    fn absent_over_time_uses_equality_matchers_only() {
        let mut src = FakeSource::new().stream(
            &[("app", "foo"), ("env", "x"), ("job", "j")],
            &[
                (130.0, 1.0),
                (160.0, 1.0),
                (190.0, 1.0),
                (220.0, 1.0),
                (250.0, 1.0),
                (280.0, 1.0),
            ],
        );
        let selector = sel(&[
            ("app", MatchOp::Eq, "foo"),
            ("env", MatchOp::Re, ".+"),
            ("job", MatchOp::Eq, "j"),
            ("job", MatchOp::Neq, "k"),
        ]);
        let q = range_agg(AbsentOverTime, selector, 60.0, false);
        assert_eq!(
            range(&q, 60.0, 420.0, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="foo"}"#, "1 1 _ _ _ 1 1")])
        );
        let q = range_agg(AbsentOverTime, eq("app", "none"), 60.0, false);
        assert_eq!(
            instant(&q, 300.0, &mut src).unwrap(),
            rows(&[(r#"{app="none"}"#, "1")])
        );
        let q = range_agg(AbsentOverTime, eq("app", "foo"), 300.0, false);
        assert_eq!(range(&q, 300.0, 300.0, 60.0, &mut src).unwrap(), rows(&[]));
    }

    #[test]
    fn samples_with_error_labels_fail_the_query_with_lokis_text() {
        let mut src = FakeSource::new()
            .stream(&[("app", "api")], &[(10.0, 1.0)])
            .stream(
                &[
                    ("app", "api"),
                    ("__error__", "JSONParserErr"),
                    ("__error_details__", "bad"),
                ],
                &[(100.0, 1.0)],
            );
        let q = range_agg(CountOverTime, eq("app", "api"), 60.0, false);
        // the erroring sample is in no window: fine
        assert_eq!(
            instant(&q, 60.0, &mut src).unwrap(),
            rows(&[(r#"{app="api"}"#, "1")])
        );
        assert_eq!(
            range(&q, 60.0, 180.0, 120.0, &mut src).unwrap(),
            rows(&[(r#"{app="api"}"#, "1 _")])
        );
        let err = range(&q, 60.0, 180.0, 60.0, &mut src).unwrap_err();
        assert!(matches!(err, Error::Pipeline { .. }));
        assert_eq!(
            err.to_string(),
            "pipeline error: 'JSONParserErr' for series: '{__error__=\"JSONParserErr\", __error_details__=\"bad\", app=\"api\"}'.\n\
             Use a label filter to intentionally skip this error. (e.g | __error__!=\"JSONParserErr\").\n\
             To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
             The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
        );
        // grouping that drops __error__ hides it, as in Loki
        let grouped = with_range_grouping(
            range_agg(SumOverTime, eq("app", "api"), 60.0, true),
            false,
            &["app"],
        );
        assert_eq!(
            instant(&grouped, 120.0, &mut src).unwrap(),
            rows(&[(r#"{app="api"}"#, "1")])
        );
    }

    /// Unique series, one per sample, until the sink refuses one; records how many
    /// samples it offered.
    struct Exploding {
        offered: usize,
        series_at_refusal: Option<usize>,
    }

    impl super::SampleSource for Exploding {
        fn samples(
            &mut self,
            _: &crate::ast::RangeAgg,
            from: i64,
            _: i64,
            sink: &mut super::SampleSink,
        ) -> crate::Result<()> {
            for i in 0..1_000_000 {
                let id = i.to_string();
                let labels = fenrir_common::LabelSet::from_pairs([("id", id.as_str())]);
                self.offered += 1;
                if !sink.add(&labels, from + 1, 1.0) {
                    self.series_at_refusal = Some(sink.series());
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn exploding_series_stop_the_source_one_past_the_limit() {
        use super::super::{evaluate, EvalParams};
        let q = range_agg(CountOverTime, eq("app", "a"), 60.0, false);
        let mut src = Exploding {
            offered: 0,
            series_at_refusal: None,
        };
        let err = evaluate(&q, &EvalParams::instant(60 * S, 100), &mut src).unwrap_err();
        assert_eq!(err, Error::SeriesLimit(100));
        // The evaluator held at most limit + 1 series, and the source stopped there.
        assert_eq!(src.series_at_refusal, Some(101));
        assert_eq!(src.offered, 101);
        // A sum whose grouping is pushed into the range aggregation stops the same way.
        let summed = vagg(
            crate::ast::VectorOp::Sum,
            q.clone(),
            Some(grouping(false, &["id"])),
            None,
        );
        let mut src = Exploding {
            offered: 0,
            series_at_refusal: None,
        };
        let params = EvalParams::range(0, 120 * S, 60 * S, 100);
        assert_eq!(
            evaluate(&summed, &params, &mut src).unwrap_err(),
            Error::SeriesLimit(100)
        );
        assert_eq!(src.offered, 101);
    }

    #[test]
    fn forked_sinks_merge_to_the_same_counts() {
        let q = range_agg(CountOverTime, eq("app", "a"), 60.0, false);
        let crate::ast::MetricExpr::RangeAgg(agg) = &q else {
            unreachable!()
        };
        let grid =
            super::Grid::new(&super::super::EvalParams::range(0, 600 * S, 60 * S, 0)).unwrap();
        let labels =
            |i: usize| fenrir_common::LabelSet::from_pairs([("p", ["x", "y", "z"][i % 3])]);
        let mut whole = super::SampleSink::new(agg, grid, 0);
        let mut split = super::SampleSink::new(agg, grid, 0);
        let mut fork = split.fork().expect("counts are order-free");
        for i in 0..600 {
            let ts = (i as i64) * S;
            whole.add(&labels(i), ts, 1.0);
            if i % 2 == 0 {
                split.add(&labels(i), ts, 1.0);
            } else {
                fork.add(&labels(i), ts, 1.0);
            }
        }
        assert!(split.merge(fork));
        let dump = |s: super::SampleSink| {
            let mut out: Vec<(String, Vec<(usize, u64)>)> = s
                .acc
                .series
                .into_iter()
                .map(|a| {
                    let super::Steps::Cells(span) = a.steps else {
                        unreachable!()
                    };
                    let cells = span.iter().map(|(i, c)| (i, c.n)).collect();
                    (a.labels.to_string(), cells)
                })
                .collect();
            out.sort();
            out
        };
        assert_eq!(dump(whole), dump(split));
        // Values that depend on arrival order are never split.
        let avg = range_agg(AvgOverTime, eq("app", "a"), 60.0, true);
        let crate::ast::MetricExpr::RangeAgg(agg) = &avg else {
            unreachable!()
        };
        assert!(super::SampleSink::new(agg, grid, 0).fork().is_none());
    }
}
