//! Two rewrites Loki applies before evaluating, copied because they change answers, not
//! just speed (logql.md §2.11 spirit: where real Loki differs from the obvious reading,
//! we answer as Loki does).
//!
//! 1. **Grouping push-down.** `sum [by|without (…)] (op(…))`, where `op` is
//!    `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate` or `sum_over_time` and
//!    has no grouping of its own, hands the sum's grouping to the range aggregation's
//!    sample extractor. The sums are unchanged; but a singleton grouping (`sum(…)`,
//!    `sum by () (…)`) makes the extractor's output label-free, which turns on the
//!    "no labels" parser hint (`SampleExtractor::new`): parsers whose labels nobody
//!    reads do not run, so their errors never fail the query.
//! 2. **`avg_over_time` with a grouping.** Loki's query sharding answers
//!    `avg_over_time(X) by (g)` as
//!    `sum by (g) (sum_over_time(X)) / sum by (g) (count_over_time(X'))`, where `X'` is
//!    `X` without its `unwrap` and without the label filters after it. So the count
//!    side counts every line that passes the pipeline before the unwrap, and a parser
//!    error the unwrap's `| __error__=""` would have removed fails the whole query.

use crate::ast::{BinOp, Binary, Grouping, MetricExpr, RangeAgg, RangeOp, VectorAgg, VectorOp};

/// The range aggregation under `agg` with `agg`'s grouping pushed into it, when Loki
/// would push it (rule 1). `None` leaves the expression as written.
pub(crate) fn pushed_down_grouping(agg: &VectorAgg) -> Option<RangeAgg> {
    if agg.op != VectorOp::Sum {
        return None;
    }
    let MetricExpr::RangeAgg(range) = unparenthesised(&agg.inner) else {
        return None;
    };
    let pushable = matches!(
        range.op,
        RangeOp::CountOverTime
            | RangeOp::Rate
            | RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
    );
    if !pushable || range.grouping.is_some() {
        return None;
    }
    let mut pushed = range.clone();
    // A plain `sum(…)` is one group: `by ()`.
    pushed.grouping = Some(agg.grouping.clone().unwrap_or(Grouping {
        without: false,
        labels: Vec::new(),
    }));
    Some(pushed)
}

/// `avg_over_time(X) by|without (g)` as Loki's sharding evaluates it (rule 2); `None`
/// for anything else, including `without ()`, which Loki leaves alone.
pub(crate) fn avg_as_sum_over_count(agg: &RangeAgg) -> Option<MetricExpr> {
    if agg.op != RangeOp::AvgOverTime {
        return None;
    }
    let grouping = agg.grouping.as_ref()?;
    if grouping.without && grouping.labels.is_empty() {
        return None;
    }
    let sum_by = |op: RangeOp, range: crate::ast::LogRange| {
        MetricExpr::VectorAgg(VectorAgg {
            op: VectorOp::Sum,
            inner: Box::new(MetricExpr::RangeAgg(RangeAgg {
                op,
                range,
                param: None,
                grouping: None,
            })),
            param: None,
            grouping: Some(grouping.clone()),
        })
    };
    let mut without_unwrap = agg.range.clone();
    without_unwrap.unwrap = None;
    Some(MetricExpr::Binary(Box::new(Binary {
        op: BinOp::Div,
        lhs: sum_by(RangeOp::SumOverTime, agg.range.clone()),
        rhs: sum_by(RangeOp::CountOverTime, without_unwrap),
        return_bool: false,
        matching: None,
    })))
}

fn unparenthesised(expr: &MetricExpr) -> &MetricExpr {
    match expr {
        MetricExpr::Parens(inner) => unparenthesised(inner),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_expr;
    use crate::Expr;

    fn metric(q: &str) -> MetricExpr {
        match parse_expr(q).unwrap() {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!("not a metric query: {q}"),
        }
    }

    fn vector_agg(q: &str) -> VectorAgg {
        match metric(q) {
            MetricExpr::VectorAgg(v) => v,
            other => panic!("not a vector aggregation: {other:?}"),
        }
    }

    fn range_agg(q: &str) -> RangeAgg {
        match metric(q) {
            MetricExpr::RangeAgg(r) => r,
            other => panic!("not a range aggregation: {other:?}"),
        }
    }

    #[test]
    fn sum_pushes_its_grouping_into_counting_range_aggregations() {
        let by_nothing = Some(Grouping {
            without: false,
            labels: vec![],
        });
        for q in [
            r#"sum(count_over_time({a="b"} | json [5m]))"#,
            r#"sum by () (rate({a="b"} | logfmt [5m]))"#,
            r#"sum((bytes_over_time({a="b"}[5m])))"#,
            r#"sum(bytes_rate({a="b"}[5m]))"#,
            r#"sum(sum_over_time({a="b"} | unwrap x [5m]))"#,
        ] {
            let pushed = pushed_down_grouping(&vector_agg(q)).expect(q);
            assert_eq!(pushed.grouping, by_nothing, "{q}");
        }
        let pushed =
            pushed_down_grouping(&vector_agg(r#"sum without (pod) (rate({a="b"}[1m]))"#)).unwrap();
        assert_eq!(
            pushed.grouping,
            Some(Grouping {
                without: true,
                labels: vec!["pod".into()]
            })
        );
        for q in [
            r#"avg(count_over_time({a="b"} | json [5m]))"#,
            r#"max(rate({a="b"}[5m]))"#,
            r#"sum(avg_over_time({a="b"} | unwrap x [5m]))"#,
            r#"sum(max_over_time({a="b"} | unwrap x [5m]) by (pod))"#,
            r#"sum(absent_over_time({a="b"}[5m]))"#,
            r#"sum(count_over_time({a="b"}[5m]) > 1)"#,
        ] {
            assert_eq!(pushed_down_grouping(&vector_agg(q)), None, "{q}");
        }
    }

    #[test]
    fn grouped_avg_over_time_becomes_sum_over_count_without_unwrap() {
        let q = r#"avg_over_time({app="auth"} | json | unwrap duration(latency) | __error__="" [5m] offset 1m) by (pod)"#;
        let rewritten = avg_as_sum_over_count(&range_agg(q)).unwrap();
        assert_eq!(
            rewritten.to_string(),
            metric(
                r#"sum by (pod) (sum_over_time({app="auth"} | json | unwrap duration(latency) | __error__="" [5m] offset 1m)) / sum by (pod) (count_over_time({app="auth"} | json [5m] offset 1m))"#
            )
            .to_string()
        );
        let without = avg_as_sum_over_count(&range_agg(
            r#"avg_over_time({a="b"} | unwrap x [5m]) without (pod)"#,
        ));
        assert!(without.is_some());
        for q in [
            r#"avg_over_time({a="b"} | unwrap x [5m])"#,
            r#"avg_over_time({a="b"} | unwrap x [5m]) without ()"#,
            r#"max_over_time({a="b"} | unwrap x [5m]) by (pod)"#,
        ] {
            assert_eq!(avg_as_sum_over_count(&range_agg(q)), None, "{q}");
        }
    }
}
