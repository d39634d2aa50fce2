//! Table-driven checks of logql.md §1.9–§1.12 and §2.2–§2.8 from LogQL text to answer,
//! with the real sample extractor over log lines (the other evaluator tests feed
//! samples directly), so the parser, the pipeline, Loki's rewrites and the evaluator are
//! tested together.

use fenrir_common::LabelSet;

use super::{evaluate, EvalParams, QueryValue, SampleSink, SampleSource};
use crate::ast::{MetricExpr, RangeAgg};
use crate::pipeline::SampleExtractor;
use crate::{parse_expr, Error, Expr, Result};

const S: i64 = 1_000_000_000;

/// Streams of `(seconds, line)`; `samples` runs the query's own extractor on them.
struct Lines(Vec<(LabelSet, Vec<(i64, &'static str)>)>);

impl SampleSource for Lines {
    fn samples(&mut self, agg: &RangeAgg, from: i64, to: i64, sink: &mut SampleSink) -> Result<()> {
        let extractor = SampleExtractor::new(agg)?;
        for (labels, lines) in &self.0 {
            if !agg
                .range
                .log
                .selector
                .iter()
                .all(|m| m.matches_labels(labels))
            {
                continue;
            }
            let mut ex = extractor.for_stream(labels);
            for &(t, line) in lines {
                let ts = t * S;
                if ts > from && ts <= to {
                    if let Some((out, v)) = ex.process(ts, line, &[]) {
                        sink.add(out, ts, v);
                    }
                }
            }
        }
        Ok(())
    }
}

fn stream(pod: &str, lines: &[(i64, &'static str)]) -> (LabelSet, Vec<(i64, &'static str)>) {
    (
        LabelSet::from_pairs([("app", "api"), ("pod", pod)]),
        lines.to_vec(),
    )
}

fn metric(q: &str) -> MetricExpr {
    match parse_expr(q).unwrap_or_else(|e| panic!("{q}: {e}")) {
        Expr::Metric(m) => m,
        Expr::Log(_) => panic!("{q}: a log query"),
    }
}

/// An instant query at `t` seconds, as `labels=value` strings in result order, or the
/// error text.
fn instant(q: &str, t: i64, src: &mut Lines) -> std::result::Result<Vec<String>, String> {
    let params = EvalParams::instant(t * S, 0);
    match evaluate(&metric(q), &params, src) {
        Ok(QueryValue::Vector(v)) => Ok(v
            .iter()
            .map(|s| format!("{}={}", s.labels, super::format_sample_value(s.value)))
            .collect()),
        Ok(QueryValue::Scalar { value, .. }) => Ok(vec![format!(
            "scalar={}",
            super::format_sample_value(value)
        )]),
        Ok(QueryValue::Matrix(_)) => panic!("{q}: a matrix from an instant query"),
        Err(e) => Err(e.to_string()),
    }
}

fn check(src: &mut Lines, cases: &[(&str, i64, &[&str])]) {
    let mut failures = Vec::new();
    for (q, t, want) in cases {
        match instant(q, *t, src) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{q} @{t}\n  got:  {other:?}\n  want: {want:?}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check_errors(src: &mut Lines, cases: &[(&str, i64, &str)]) {
    let mut failures = Vec::new();
    for (q, t, want) in cases {
        match instant(q, *t, src) {
            Err(e) if e.starts_with(want) => {}
            other => failures.push(format!("{q} @{t}\n  got:  {other:?}\n  want: {want}…")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn range_aggregations_t1_t2() {
    let mut src = Lines(vec![
        stream("p1", &[(10, "v=2"), (20, "v=4"), (30, "x=1"), (40, "v=")]),
        stream("p2", &[(15, "v=10"), (25, "v=20")]),
    ]);
    check(
        &mut src,
        &[
            // §1.9 / §2.7: rate on lines is count / range seconds, no extrapolation.
            (
                r#"rate({app="api"}[1m])"#,
                60,
                &[
                    r#"{app="api", pod="p1"}=0.06666666666666667"#,
                    r#"{app="api", pod="p2"}=0.03333333333333333"#,
                ],
            ),
            (
                r#"rate({app="api"}[500ms])"#,
                40,
                &[r#"{app="api", pod="p1"}=2"#],
            ),
            // §2.3: the window is (t-R, t]: 10 is out at t=20 with [10s], 20 is in.
            (
                r#"count_over_time({app="api", pod="p1"}[10s])"#,
                20,
                &[r#"{app="api", pod="p1"}=1"#],
            ),
            // Offsets move the window, not the timestamp.
            (
                r#"count_over_time({app="api", pod="p1"}[10s] offset 10s)"#,
                30,
                &[r#"{app="api", pod="p1"}=1"#],
            ),
            // Steps without samples give nothing, not 0.
            (r#"count_over_time({app="api"}[5s])"#, 60, &[]),
            // §2.7: bytes count the line after the pipeline.
            (
                r#"bytes_over_time({app="api", pod="p2"} | line_format "{{.x}}ab" [1m])"#,
                60,
                &[r#"{app="api", pod="p2"}=4"#],
            ),
            // unwrap: a missing or empty label skips the sample; the unwrapped label
            // leaves the output; rate of unwrap is sum / range seconds.
            (
                r#"sum_over_time({app="api"} | logfmt | unwrap v [1m])"#,
                60,
                &[r#"{app="api", pod="p1"}=6"#, r#"{app="api", pod="p2"}=30"#],
            ),
            (
                r#"rate({app="api"} | logfmt | unwrap v [1m])"#,
                60,
                &[
                    r#"{app="api", pod="p1"}=0.1"#,
                    r#"{app="api", pod="p2"}=0.5"#,
                ],
            ),
            // by() pools the samples of every stream of a group: median of {2,4,10,20}.
            (
                r#"quantile_over_time(0.5, {app="api"} | logfmt | unwrap v [1m]) by (app)"#,
                60,
                &[r#"{app="api"}=7"#],
            ),
            (
                r#"max_over_time({app="api"} | logfmt | unwrap v [1m]) without (pod)"#,
                60,
                &[r#"{app="api"}=20"#],
            ),
            // Grouped avg_over_time: sum / count of every line before the unwrap that
            // passes; lines without `v` count too (Loki's sharding rewrite).
            (
                r#"avg_over_time({app="api"} | logfmt | unwrap v [1m]) by (pod)"#,
                60,
                &[r#"{pod="p1"}=1.5"#, r#"{pod="p2"}=15"#],
            ),
            (
                r#"avg_over_time({app="api"} | logfmt | unwrap v [1m])"#,
                60,
                &[r#"{app="api", pod="p1"}=3"#, r#"{app="api", pod="p2"}=15"#],
            ),
            (
                r#"first_over_time({app="api"} | logfmt | unwrap v [1m]) by (app)"#,
                60,
                &[r#"{app="api"}=2"#],
            ),
            (
                r#"stddev_over_time({app="api", pod="p2"} | logfmt | unwrap v [1m])"#,
                60,
                &[r#"{app="api", pod="p2"}=5"#],
            ),
            // §2.6: a parsed empty value is a label of the series (Loki's classic engine
            // keeps it), through grouping too.
            (
                r#"count_over_time({app="api", pod="p2"} | logfmt x="nope", v [1m])"#,
                60,
                &[
                    r#"{app="api", pod="p2", v="10", x=""}=1"#,
                    r#"{app="api", pod="p2", v="20", x=""}=1"#,
                ],
            ),
            (
                r#"sum by (x) (count_over_time({app="api"} | logfmt x="nope" [1m]))"#,
                60,
                &[r#"{x=""}=6"#],
            ),
            (
                r#"sum without (pod) (count_over_time({app="api", pod="p2"} | logfmt x="nope" [1m]))"#,
                60,
                &[r#"{app="api", x=""}=2"#],
            ),
            // §2.8: absent_over_time labels come from equality matchers only, and a
            // name that also has another matcher is removed.
            (
                r#"absent_over_time({app="api", pod=~"none.*", env="x"}[1m])"#,
                60,
                &[r#"{app="api", env="x"}=1"#],
            ),
            (r#"absent_over_time({app="api"}[1m])"#, 60, &[]),
        ],
    );
}

#[test]
fn vector_aggregations_binary_operators_and_literals() {
    let mut src = Lines(vec![
        stream("p1", &[(10, "a"), (20, "b"), (30, "c")]),
        stream("p2", &[(15, "a")]),
        stream("p3", &[(15, "a"), (16, "b")]),
    ]);
    check(
        &mut src,
        &[
            // §1.10
            (r#"sum(count_over_time({app="api"}[1m]))"#, 60, &["{}=6"]),
            (
                r#"sum by (app) (count_over_time({app="api"}[1m]))"#,
                60,
                &[r#"{app="api"}=6"#],
            ),
            (r#"count(count_over_time({app="api"}[1m]))"#, 60, &["{}=3"]),
            (r#"avg(count_over_time({app="api"}[1m]))"#, 60, &["{}=2"]),
            (r#"max(count_over_time({app="api"}[1m]))"#, 60, &["{}=3"]),
            (
                r#"topk(1, count_over_time({app="api"}[1m]))"#,
                60,
                &[r#"{app="api", pod="p1"}=3"#],
            ),
            (
                r#"bottomk(1, count_over_time({app="api"}[1m]))"#,
                60,
                &[r#"{app="api", pod="p2"}=1"#],
            ),
            (
                r#"sort_desc(count_over_time({app="api"}[1m]))"#,
                60,
                &[
                    r#"{app="api", pod="p1"}=3"#,
                    r#"{app="api", pod="p3"}=2"#,
                    r#"{app="api", pod="p2"}=1"#,
                ],
            ),
            // An empty step aggregates to nothing; `or vector(0)` fills it.
            (r#"sum(count_over_time({app="none"}[1m]))"#, 60, &[]),
            (
                r#"sum(count_over_time({app="none"}[1m])) or vector(0)"#,
                60,
                &["{}=0"],
            ),
            // §1.11: precedence, right-associative `^`, literal signs, NaN division.
            ("1 + 2 * 3 ^ 2", 60, &["scalar=19"]),
            ("2 ^ 3 ^ 2", 60, &["scalar=512"]),
            ("-2 ^ 2", 60, &["scalar=4"]),
            ("1 / 0", 60, &["scalar=NaN"]),
            ("-1 % 0", 60, &["scalar=NaN"]),
            // Scalar comparisons always give 0 or 1, `bool` or not.
            ("1 > 2", 60, &["scalar=0"]),
            ("2 >= bool 2", 60, &["scalar=1"]),
            // vector op scalar keeps labels; a comparison filters, keeping the vector's
            // value on either side; `bool` keeps every element.
            (
                r#"count_over_time({app="api"}[1m]) * 2 > 4"#,
                60,
                &[r#"{app="api", pod="p1"}=6"#],
            ),
            (
                r#"1 < count_over_time({app="api"}[1m])"#,
                60,
                &[r#"{app="api", pod="p1"}=3"#, r#"{app="api", pod="p3"}=2"#],
            ),
            (
                r#"count_over_time({app="api"}[1m]) > bool 1"#,
                60,
                &[
                    r#"{app="api", pod="p1"}=1"#,
                    r#"{app="api", pod="p2"}=0"#,
                    r#"{app="api", pod="p3"}=1"#,
                ],
            ),
            (
                r#"count_over_time({app="api"}[1m]) / count_over_time({app="api"}[1m] offset 1m)"#,
                60,
                &[],
            ),
            (
                r#"count_over_time({app="api"}[1m]) and on (pod) count_over_time({app="api"}[3s])"#,
                20,
                &[r#"{app="api", pod="p1"}=2"#],
            ),
            (
                r#"count_over_time({app="api"}[1m]) unless on (pod) count_over_time({app="api"}[3s])"#,
                20,
                &[r#"{app="api", pod="p2"}=1"#, r#"{app="api", pod="p3"}=2"#],
            ),
            // §1.12: vector(n); label_replace deletes dst when the expansion is empty.
            ("vector(3)", 60, &["{}=3"]),
            (
                r#"label_replace(count_over_time({app="api", pod="p2"}[1m]), "pod", "$1", "app", "(x)?.*")"#,
                60,
                &[r#"{app="api"}=1"#],
            ),
            (
                r#"label_replace(count_over_time({app="api", pod="p2"}[1m]), "dst", "$1-${1}x", "pod", "p(.)")"#,
                60,
                &[r#"{app="api", dst="2-2x", pod="p2"}=1"#],
            ),
        ],
    );
}

#[test]
fn pipeline_errors_and_lokis_rewrites() {
    let mut src = Lines(vec![
        stream(
            "p1",
            &[(10, r#"{"v":"2"}"#), (20, "not json"), (30, r#"{"v":"4"}"#)],
        ),
        stream("p2", &[(15, r#"{"v":"1s"}"#)]),
    ]);
    check(
        &mut src,
        &[
            // §1.7 remedies: filter the error, match no error, or drop it.
            (
                r#"sum(count_over_time({app="api"} | json | __error__="" [1m]))"#,
                60,
                &["{}=3"],
            ),
            (
                r#"sum by (pod) (count_over_time({app="api"} | json | drop __error__, __error_details__ [1m]))"#,
                60,
                &[r#"{pod="p1"}=3"#, r#"{pod="p2"}=1"#],
            ),
            // The no-labels rule: `sum(...)` over a counting range aggregation whose
            // labels nobody reads does not run the parser, so nothing fails.
            (
                r#"sum(count_over_time({app="api"} | json [1m]))"#,
                60,
                &["{}=4"],
            ),
            (
                r#"sum by () (rate({app="api"} | json [1m]))"#,
                60,
                &["{}=0.06666666666666667"],
            ),
            (
                r#"sum(bytes_over_time({app="api", pod="p1"} | unpack [1m]))"#,
                60,
                &["{}=26"],
            ),
            // Errors after the unwrap can be filtered there; conversion errors too.
            (
                r#"sum_over_time({app="api", pod="p1"} | json | unwrap v | __error__="" [1m])"#,
                60,
                &[r#"{app="api", pod="p1"}=6"#],
            ),
            (
                r#"sum by (pod) (sum_over_time({app="api"} | json | unwrap duration(v) | __error__="" [1m]))"#,
                60,
                &[r#"{pod="p2"}=1"#],
            ),
            // Ungrouped avg_over_time is not rewritten: the post-unwrap filter works.
            (
                r#"avg_over_time({app="api", pod="p1"} | json | unwrap v | __error__="" [1m])"#,
                60,
                &[r#"{app="api", pod="p1"}=3"#],
            ),
        ],
    );
    let json_error = "pipeline error: 'JSONParserErr' for series: '{__error__=\"JSONParserErr\", __error_details__=\"Value looks like object, but can't find closing '}' symbol\", app=\"api\", pod=\"p1\"}'.";
    check_errors(
        &mut src,
        &[
            (r#"count_over_time({app="api"} | json [1m])"#, 60, json_error),
            // The parser runs as soon as a label is needed: grouping labels, a label
            // filter, a template field, an unwrap.
            (
                r#"sum by (pod) (count_over_time({app="api"} | json [1m]))"#,
                60,
                json_error,
            ),
            (
                r#"sum without () (count_over_time({app="api"} | json [1m]))"#,
                60,
                json_error,
            ),
            (
                r#"sum(count_over_time({app="api"} | json | v != "9" [1m]))"#,
                60,
                json_error,
            ),
            (
                r#"sum(count_over_time({app="api"} | json | line_format "{{.v}}" [1m]))"#,
                60,
                json_error,
            ),
            (
                r#"max(count_over_time({app="api"} | json [1m]))"#,
                60,
                json_error,
            ),
            // Grouped avg_over_time counts the lines before the unwrap, where the
            // parser error is still there (conformance p054).
            (
                r#"avg_over_time({app="api"} | json | unwrap v | __error__="" [1m]) by (pod)"#,
                60,
                json_error,
            ),
            (
                r#"sum_over_time({app="api", pod="p2"} | json | unwrap v [1m])"#,
                60,
                "pipeline error: 'SampleExtractionErr' for series: '{__error__=\"SampleExtractionErr\", __error_details__=\"strconv.ParseFloat: parsing \\\"1s\\\": invalid syntax\", app=\"api\", pod=\"p2\", v=\"1s\"}'.",
            ),
        ],
    );
    // Errors are client errors with Loki's text; the enum says which kind.
    let err = evaluate(
        &metric(r#"count_over_time({app="api"} | json [1m])"#),
        &EvalParams::instant(60 * S, 0),
        &mut src,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Pipeline { ref kind, .. } if kind == "JSONParserErr"));
}
