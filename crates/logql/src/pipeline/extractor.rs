//! Sample extraction for range aggregations: the log pipeline, then the value (1, the
//! line's bytes, or an unwrapped label), post-unwrap filters, and the output labels
//! (the unwrapped label removed, `by`/`without` applied, error labels kept).

use fenrir_common::LabelSet;

use super::convert::{duration_seconds, parse_go_duration, parse_go_float, parse_humanize_bytes};
use super::label_filter::LabelFilterStage;
use super::labels::{
    GroupInterner, LabelSetInterner, LineLabels, ParserHints, ERROR_DETAILS_LABEL, ERROR_LABEL,
    ERR_SAMPLE_EXTRACTION,
};
use super::{parse_error, CompiledStages};
use crate::ast::{RangeAgg, RangeOp, UnwrapConversion};
use crate::Result;

#[derive(Debug, Clone)]
enum ValueSource {
    /// `count_over_time`, `rate`, `absent_over_time`: every line counts 1.
    One,
    /// `bytes_over_time`, `bytes_rate`: the line's length in bytes after the pipeline.
    LineBytes,
    /// `| unwrap [conv(]label[)]`.
    Unwrap {
        label: String,
        conversion: UnwrapConversion,
    },
}

#[derive(Debug, Clone)]
enum OutputLabels {
    /// Everything but the unwrapped label and the listed ones.
    Without(Vec<String>),
    /// Only the listed labels (plus the error labels).
    By(Vec<String>),
}

fn op_name(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::RateCounter => "rate_counter",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
    }
}

/// Turns the lines of one range aggregation into samples; compiled once per query.
#[derive(Debug, Clone)]
pub struct SampleExtractor {
    stages: CompiledStages,
    value: ValueSource,
    post_filters: Vec<LabelFilterStage>,
    output: OutputLabels,
    hints: ParserHints,
    /// Only line filters, no unwrap and no output labels (`sum(count_over_time({…} |=
    /// "x" [1m]))`): a kept line is a sample of `{}`, with no label work at all.
    label_free: bool,
}

/// Loki's parser hints for `agg` (its grouping includes a pushed-down `sum` grouping,
/// see `eval::pushed_down_grouping`):
/// - output without labels (`by ()`, which a plain `sum(…)` pushes down, or
///   `absent_over_time`) and no stage, unwrap or post-filter reading a label: `json`,
///   `logfmt`, `pattern` and `unpack` do not run, so lines they cannot parse raise no
///   `__error__`: `sum(count_over_time({a="b"} | json [5m]))` counts every line where
///   `count_over_time({a="b"} | json [5m])` fails;
/// - `by (…)`, or no labels but something reads some: parsers extract only the labels
///   the grouping, the unwrap and the stages read, and stop once a line has them all
///   (a line that breaks after them raises no error);
/// - `without (…)`, or no grouping (an unwrap without `by` counts as `without`):
///   everything.
fn parser_hints(
    agg: &RangeAgg,
    stages: &CompiledStages,
    post_filters: &[LabelFilterStage],
    singleton: bool,
) -> ParserHints {
    let mut stage_labels = Vec::new();
    stages.required_label_names(&mut stage_labels);
    for f in post_filters {
        f.label_names(&mut stage_labels);
    }
    let (mut groups, mut without) = match &agg.grouping {
        Some(g) if !singleton => (g.labels.clone(), g.without),
        _ => (Vec::new(), false),
    };
    let unwrapped = agg.range.unwrap.as_ref().map(|u| u.label.as_str());
    if let Some(label) = unwrapped {
        if groups.is_empty() || without {
            without = true;
            groups.push(label.to_string());
        }
    }
    ParserHints::new(&stage_labels, &groups, without, singleton, unwrapped)
}

impl SampleExtractor {
    /// Compiles the stages, the unwrap and the grouping of `agg`.
    pub fn new(agg: &RangeAgg) -> Result<SampleExtractor> {
        let name = op_name(agg.op);
        let unwrap = agg.range.unwrap.as_ref();
        let value = match (agg.op, unwrap) {
            (RangeOp::CountOverTime | RangeOp::BytesOverTime | RangeOp::BytesRate, Some(_)) => {
                return Err(parse_error(format!(
                    "invalid aggregation {name} with unwrap"
                )));
            }
            (RangeOp::CountOverTime | RangeOp::Rate | RangeOp::AbsentOverTime, None) => {
                ValueSource::One
            }
            (RangeOp::BytesOverTime | RangeOp::BytesRate, None) => ValueSource::LineBytes,
            (_, None) => {
                return Err(parse_error(format!(
                    "invalid aggregation {name} without unwrap"
                )))
            }
            (_, Some(u)) => ValueSource::Unwrap {
                label: u.label.clone(),
                conversion: u.conversion,
            },
        };
        let post_filters = unwrap
            .map(|u| {
                u.post_filters
                    .iter()
                    .map(|f| LabelFilterStage::new(f).map_err(parse_error))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        // `absent_over_time` ignores its series' labels: extract none (as Loki does).
        let singleton = agg.op == RangeOp::AbsentOverTime
            || agg
                .grouping
                .as_ref()
                .is_some_and(|g| !g.without && g.labels.is_empty());
        let mut output = match &agg.grouping {
            _ if singleton => OutputLabels::By(Vec::new()),
            Some(g) if !g.without => OutputLabels::By(dedup(&g.labels)),
            Some(g) => OutputLabels::Without(g.labels.clone()),
            None => OutputLabels::Without(Vec::new()),
        };
        if let (OutputLabels::Without(names), Some(u)) = (&mut output, unwrap) {
            names.push(u.label.clone());
        }
        if let OutputLabels::Without(names) = &mut output {
            // The error labels survive any grouping.
            names.retain(|n| n != ERROR_LABEL && n != ERROR_DETAILS_LABEL);
        }
        let stages = CompiledStages::new(&agg.range.log.stages)?;
        let hints = parser_hints(agg, &stages, &post_filters, singleton);
        let label_free = stages.line_filters_only
            && post_filters.is_empty()
            && !matches!(value, ValueSource::Unwrap { .. })
            && matches!(&output, OutputLabels::By(names) if names.is_empty());
        Ok(SampleExtractor {
            stages,
            value,
            post_filters,
            output,
            hints,
            label_free,
        })
    }

    /// Whether samples depend on entries' structured metadata; when not, a reader may
    /// pass none.
    pub fn reads_metadata(&self) -> bool {
        !self.label_free
    }

    /// Whether samples depend on entries' line text; when not (only label filters, `drop`
    /// and `keep`, and a value that is not the line's length), a reader may pass every
    /// line empty.
    pub fn reads_line(&self) -> bool {
        self.stages.reads_line || matches!(self.value, ValueSource::LineBytes)
    }

    /// The per-stream extractor for a stream with these labels.
    pub fn for_stream(&self, stream_labels: &LabelSet) -> StreamSampleExtractor<'_> {
        StreamSampleExtractor {
            extractor: self,
            stages: self.stages.clone(),
            labels: LineLabels::with_hints(stream_labels.clone(), self.hints.clone()),
            interner: LabelSetInterner::default(),
            grouped: GroupInterner::default(),
            plain: None,
            names: Vec::new(),
            empty: LabelSet::empty(),
        }
    }
}

fn dedup(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(n) && n != ERROR_LABEL && n != ERROR_DETAILS_LABEL {
            out.push(n.clone());
        }
    }
    out
}

/// Runs a [`SampleExtractor`] over the lines of one stream.
#[derive(Debug)]
pub struct StreamSampleExtractor<'a> {
    extractor: &'a SampleExtractor,
    stages: CompiledStages,
    labels: LineLabels,
    interner: LabelSetInterner,
    /// The output of a `by (…)` grouping when there is no error.
    grouped: GroupInterner,
    /// The output labels of a line that only has the stream labels.
    plain: Option<LabelSet>,
    names: Vec<String>,
    empty: LabelSet,
}

impl StreamSampleExtractor<'_> {
    /// `None` when there is no sample (filtered out, or the unwrapped label is missing
    /// or empty). The labels carry `__error__`/`__error_details__` when a stage failed.
    pub fn process(
        &mut self,
        ts: i64,
        line: &str,
        structured_metadata: &[(&str, &str)],
    ) -> Option<(&LabelSet, f64)> {
        let extractor = self.extractor;
        if !self.stages.prefilter(line) {
            return None;
        }
        if extractor.label_free {
            let value = match extractor.value {
                ValueSource::LineBytes => line.len() as f64,
                _ => 1.0,
            };
            return Some((&self.empty, value));
        }
        self.labels.reset(structured_metadata);
        let line = self
            .stages
            .run(ts, line, &mut self.labels, &mut self.names)?;
        let value = match &extractor.value {
            ValueSource::One => 1.0,
            ValueSource::LineBytes => line.len() as f64,
            ValueSource::Unwrap { label, conversion } => {
                let raw = self.labels.get(label).filter(|v| !v.is_empty())?;
                let converted = match conversion {
                    UnwrapConversion::Float => parse_go_float(raw),
                    UnwrapConversion::Bytes => parse_humanize_bytes(raw).map(|b| b as f64),
                    UnwrapConversion::Duration | UnwrapConversion::DurationSeconds => {
                        parse_go_duration(raw).map(duration_seconds)
                    }
                };
                match converted {
                    Ok(v) => v,
                    Err(details) => {
                        self.labels.set_err(ERR_SAMPLE_EXTRACTION, Some(&details));
                        0.0
                    }
                }
            }
        };
        for f in &extractor.post_filters {
            if !f.keep(&mut self.labels) {
                return None;
            }
        }
        let labels = &self.labels;
        let emit_output = |emit: &mut dyn FnMut(&str, &str)| match &extractor.output {
            // A sample with an error keeps every label, grouping or not (as Loki does),
            // so that the error names the whole series.
            _ if labels.has_err() => labels.for_each_effective(|_, k, v| emit(k, v)),
            OutputLabels::By(names) => {
                for n in names {
                    if let Some(v) = labels.get(n) {
                        emit(n, v);
                    }
                }
            }
            OutputLabels::Without(names) => labels.for_each_effective(|_, k, v| {
                if !names.iter().any(|n| n == k) {
                    emit(k, v);
                }
            }),
        };
        if self.labels.is_plain_stream() {
            if self.plain.is_none() {
                self.plain = Some(self.interner.intern(emit_output).clone());
            }
            return self.plain.as_ref().map(|set| (set, value));
        }
        if let (OutputLabels::By(names), false) = (&extractor.output, labels.has_err()) {
            return Some((self.grouped.intern(names, labels), value));
        }
        Some((self.interner.intern(emit_output), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Expr, MetricExpr};

    /// The extractor of the range aggregation `q` (under any vector aggregation).
    fn extractor(q: &str) -> SampleExtractor {
        let mut m = match crate::parse_expr(q).unwrap() {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!("not a metric query: {q}"),
        };
        loop {
            m = match m {
                MetricExpr::RangeAgg(agg) => return SampleExtractor::new(&agg).unwrap(),
                MetricExpr::VectorAgg(v) => *v.inner,
                other => panic!("unexpected {other:?}"),
            };
        }
    }

    #[test]
    fn only_label_stages_and_line_free_values_leave_the_line_unread() {
        for q in [
            r#"count_over_time({a="b"}[1m])"#,
            r#"sum by (level, detected_level) (count_over_time({app="bench"} | drop __error__[1m]))"#,
            r#"rate({a="b"} | level="error" | keep level [5m])"#,
            r#"sum_over_time({a="b"} | unwrap latency [1m])"#,
            r#"max_over_time({a="b"} | drop x | unwrap bytes(size) | size > 10 [1m])"#,
            r#"absent_over_time({a="b"} | trace_id!="" [1m])"#,
        ] {
            assert!(!extractor(q).reads_line(), "{q}");
        }
        for q in [
            r#"bytes_over_time({a="b"}[1m])"#,
            r#"sum(bytes_rate({a="b"} | drop x [1m]))"#,
            r#"count_over_time({a="b"} |= "x" [1m])"#,
            r#"count_over_time({a="b"} | level="x" |~ "y" [1m])"#,
            r#"count_over_time({a="b"} | json [1m])"#,
            r#"count_over_time({a="b"} | logfmt | drop __error__ [1m])"#,
            r#"count_over_time({a="b"} | pattern "<x> <_>" [1m])"#,
            r#"count_over_time({a="b"} | regexp "(?P<x>.)" [1m])"#,
            r#"count_over_time({a="b"} | unpack [1m])"#,
            r#"count_over_time({a="b"} | line_format "{{.a}}" [1m])"#,
            r#"count_over_time({a="b"} | label_format x="{{__line__}}" [1m])"#,
            r#"count_over_time({a="b"} | decolorize [1m])"#,
            r#"sum(count_over_time({a="b"} | json | drop x [1m]))"#,
        ] {
            assert!(extractor(q).reads_line(), "{q}");
        }
    }

    #[test]
    fn an_unread_line_changes_no_sample() {
        let q = r#"sum by (level) (count_over_time({a="b"} | level!="debug" | drop x [1m]))"#;
        let ex = extractor(q);
        assert!(!ex.reads_line());
        let stream = LabelSet::from_pairs([("a", "b")]);
        let run = |line: &str, md: &[(&str, &str)]| {
            let mut s = ex.for_stream(&stream);
            s.process(1, line, md).map(|(l, v)| (l.to_string(), v))
        };
        for md in [&[("level", "info")][..], &[("level", "debug")], &[]] {
            assert_eq!(run("some line text", md), run("", md), "{md:?}");
        }
    }
}
