//! Vector aggregations (`sum`, `avg`, `topk`, `sort`, …), applied step by step.

use std::cmp::Ordering;

use fenrir_common::LabelSet;

use super::range::{avg, stdvar};
use super::{Elem, StepVec};
use crate::ast::{Grouping, VectorAgg, VectorOp};
use crate::fxhash::FxHashMap;
use crate::{Error, Result};

/// Evaluates a vector aggregation over every step of `input`.
pub(crate) fn eval_vector_agg(agg: &VectorAgg, input: Vec<StepVec>) -> Result<Vec<StepVec>> {
    match agg.op {
        VectorOp::Sort => Ok(input.into_iter().map(|s| sorted(s, false)).collect()),
        VectorOp::SortDesc => Ok(input.into_iter().map(|s| sorted(s, true)).collect()),
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = agg.param.unwrap_or(0);
            if k < 1 {
                return Err(Error::Query(
                    "invalid parameter (must be greater than 0)".to_string(),
                ));
            }
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            let mut keys = GroupKeys::new(agg.grouping.as_ref());
            Ok(input
                .into_iter()
                .map(|step| select_k(step, k, agg.op == VectorOp::Topk, &mut keys))
                .collect())
        }
        op => {
            let mut keys = GroupKeys::new(agg.grouping.as_ref());
            Ok(input
                .into_iter()
                .map(|step| aggregate(op, step, &mut keys))
                .collect())
        }
    }
}

/// Computes group labels, remembering them per input label set across steps.
struct GroupKeys<'a> {
    grouping: Option<&'a Grouping>,
    memo: FxHashMap<LabelSet, LabelSet>,
}

impl<'a> GroupKeys<'a> {
    fn new(grouping: Option<&'a Grouping>) -> Self {
        GroupKeys {
            grouping,
            memo: FxHashMap::default(),
        }
    }

    fn key(&mut self, labels: &LabelSet) -> LabelSet {
        let Some(grouping) = self.grouping else {
            return LabelSet::empty();
        };
        if let Some(k) = self.memo.get(labels) {
            return k.clone();
        }
        let keep = |name: &str| grouping.labels.iter().any(|l| l == name) != grouping.without;
        // Empty values stay: `sum by (x)` over a parsed `x=""` groups as `{x=""}`.
        let mut b = LabelSet::empty().to_builder();
        for (n, v) in labels.iter().filter(|(n, _)| keep(n)) {
            b.set(n.to_string(), v.to_string());
        }
        let key = b.build_keep_empty();
        self.memo.insert(labels.clone(), key.clone());
        key
    }
}

/// Groups a step's elements by key, in order of first appearance.
fn group(step: StepVec, keys: &mut GroupKeys<'_>) -> Vec<(LabelSet, Vec<Elem>)> {
    let mut groups: Vec<(LabelSet, Vec<Elem>)> = Vec::new();
    let mut index: FxHashMap<LabelSet, usize> = FxHashMap::default();
    for e in step {
        let key = keys.key(&e.labels);
        match index.get(&key) {
            Some(&i) => groups[i].1.push(e),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![e]));
            }
        }
    }
    groups
}

fn aggregate(op: VectorOp, step: StepVec, keys: &mut GroupKeys<'_>) -> StepVec {
    group(step, keys)
        .into_iter()
        .map(|(labels, members)| {
            let values = members.iter().map(|e| e.value);
            let value = match op {
                VectorOp::Sum => sum(values),
                VectorOp::Avg => avg(values),
                VectorOp::Count => members.len() as f64,
                VectorOp::Min => {
                    values.fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m })
                }
                VectorOp::Max => {
                    values.fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m })
                }
                VectorOp::Stdvar => stdvar(values),
                VectorOp::Stddev => stdvar(values).sqrt(),
                VectorOp::Topk | VectorOp::Bottomk | VectorOp::Sort | VectorOp::SortDesc => {
                    f64::NAN
                }
            };
            Elem { labels, value }
        })
        .collect()
}

/// Left-to-right sum starting from the first value, as Loki adds them.
fn sum(mut values: impl Iterator<Item = f64>) -> f64 {
    let first = values.next().unwrap_or(0.0);
    values.fold(first, |s, v| s + v)
}

/// Orders by value (descending when `desc`), NaN last either way.
fn by_value(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// `sort`/`sort_desc`: by value, NaN last; ties by labels so the order is stable.
fn sorted(mut step: StepVec, desc: bool) -> StepVec {
    step.sort_by(|a, b| by_value(a.value, b.value, desc).then_with(|| a.labels.cmp(&b.labels)));
    step
}

/// `topk`/`bottomk`: the k largest (smallest) elements of each group, original labels
/// kept, NaN picked last.
fn select_k(step: StepVec, k: usize, top: bool, keys: &mut GroupKeys<'_>) -> StepVec {
    let mut out = Vec::new();
    for (_, mut members) in group(step, keys) {
        members
            .sort_by(|a, b| by_value(a.value, b.value, top).then_with(|| a.labels.cmp(&b.labels)));
        members.truncate(k);
        out.extend(members);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ast::RangeOp::CountOverTime;
    use crate::ast::RangeOp::MaxOverTime;
    use crate::ast::VectorOp::*;
    use crate::ast::{MetricExpr, RangeOp, VectorOp};
    use crate::Error;
    use fenrir_common::MatchOp;

    fn source() -> FakeSource {
        FakeSource::new()
            .repeat(
                &[("app", "foo"), ("pod", "a"), ("zone", "eu")],
                10.0,
                10.0,
                18,
            )
            .repeat(
                &[("app", "foo"), ("pod", "b"), ("zone", "eu")],
                5.0,
                5.0,
                36,
            )
            .repeat(
                &[("app", "bar"), ("pod", "a"), ("zone", "us")],
                5.0,
                5.0,
                36,
            )
            .repeat(
                &[("app", "bar"), ("pod", "b"), ("zone", "us")],
                2.0,
                2.0,
                90,
            )
    }

    fn counts() -> MetricExpr {
        range_agg(
            CountOverTime,
            sel(&[("app", MatchOp::Re, "foo|bar")]),
            60.0,
            false,
        )
    }

    fn check(op: VectorOp, by: Option<crate::ast::Grouping>, want_instant: &[(&str, &str)]) {
        let q = vagg(op, counts(), by, None);
        assert_eq!(
            sorted(instant(&q, 60.0, &mut source()).unwrap()),
            sorted(rows(want_instant)),
            "{op:?}"
        );
    }

    #[test]
    fn aggregations_over_everything_and_by_groups() {
        // per-series counts at 60s: foo/a 6, foo/b 12, bar/a 12, bar/b 30
        check(Sum, None, &[("{}", "60")]);
        check(Avg, None, &[("{}", "15")]);
        check(Min, None, &[("{}", "6")]);
        check(Max, None, &[("{}", "30")]);
        check(Count, None, &[("{}", "4")]);
        check(Stddev, None, &[("{}", "9")]);
        check(Stdvar, None, &[("{}", "81")]);
        check(
            Sum,
            Some(grouping(false, &["app"])),
            &[(r#"{app="foo"}"#, "18"), (r#"{app="bar"}"#, "42")],
        );
        check(
            Avg,
            Some(grouping(false, &["app"])),
            &[(r#"{app="foo"}"#, "9"), (r#"{app="bar"}"#, "21")],
        );
        check(
            Stddev,
            Some(grouping(false, &["app"])),
            &[(r#"{app="foo"}"#, "3"), (r#"{app="bar"}"#, "9")],
        );
        check(Sum, Some(grouping(false, &[])), &[("{}", "60")]);
        check(
            Max,
            Some(grouping(true, &["pod"])),
            &[
                (r#"{app="foo", zone="eu"}"#, "12"),
                (r#"{app="bar", zone="us"}"#, "30"),
            ],
        );
        check(
            Count,
            Some(grouping(true, &[])),
            &[
                (r#"{app="foo", pod="a", zone="eu"}"#, "1"),
                (r#"{app="foo", pod="b", zone="eu"}"#, "1"),
                (r#"{app="bar", pod="a", zone="us"}"#, "1"),
                (r#"{app="bar", pod="b", zone="us"}"#, "1"),
            ],
        );
        let q = vagg(Sum, counts(), Some(grouping(false, &["app"])), None);
        assert_eq!(
            sorted(range(&q, 20.0, 60.0, 20.0, &mut source()).unwrap()),
            sorted(rows(&[
                (r#"{app="foo"}"#, "6 12 18"),
                (r#"{app="bar"}"#, "14 28 42")
            ]))
        );
    }

    #[test]
    fn empty_steps_aggregate_to_nothing() {
        let q = vagg(
            Sum,
            range_agg(
                CountOverTime,
                sel(&[("app", MatchOp::Eq, "none")]),
                60.0,
                false,
            ),
            None,
            None,
        );
        assert_eq!(
            range(&q, 20.0, 60.0, 20.0, &mut source()).unwrap(),
            rows(&[])
        );
    }

    fn special() -> FakeSource {
        FakeSource::new()
            .stream(&[("k", "fin")], &[(30.0, 2.0)])
            .stream(&[("k", "nan")], &[(30.0, f64::NAN)])
            .stream(&[("k", "pinf")], &[(30.0, f64::INFINITY)])
            .stream(&[("k", "ninf")], &[(30.0, f64::NEG_INFINITY)])
    }

    fn special_case(op: VectorOp, ks: &str) -> String {
        let inner = range_agg(MaxOverTime, sel(&[("k", MatchOp::Re, ks)]), 60.0, true);
        let r = instant(&vagg(op, inner, None, None), 60.0, &mut special()).unwrap();
        assert_eq!(r.len(), 1);
        r[0].1[0].clone()
    }

    #[test]
    fn nan_and_infinity_rules() {
        let cases: &[(VectorOp, [&str; 5])] = &[
            // fin|nan, fin|pinf, pinf|ninf, pinf|nan, ninf|nan
            (Sum, ["NaN", "+Inf", "NaN", "NaN", "NaN"]),
            (Avg, ["NaN", "+Inf", "NaN", "NaN", "NaN"]),
            (Min, ["2", "2", "-Inf", "+Inf", "-Inf"]),
            (Max, ["2", "+Inf", "+Inf", "+Inf", "-Inf"]),
            (Stddev, ["NaN", "NaN", "NaN", "NaN", "NaN"]),
            (Stdvar, ["NaN", "NaN", "NaN", "NaN", "NaN"]),
            (Count, ["2", "2", "2", "2", "2"]),
        ];
        for (op, wants) in cases {
            for (ks, want) in ["fin|nan", "fin|pinf", "pinf|ninf", "pinf|nan", "ninf|nan"]
                .iter()
                .zip(wants)
            {
                assert_eq!(special_case(*op, ks), *want, "{op:?} over {ks}");
            }
        }
    }

    #[test]
    fn topk_and_bottomk_pick_per_group_and_step_keeping_labels() {
        let q = vagg(Topk, counts(), None, Some(1));
        assert_eq!(
            instant(&q, 60.0, &mut source()).unwrap(),
            rows(&[(r#"{app="bar", pod="b", zone="us"}"#, "30")])
        );
        let q = vagg(Bottomk, counts(), Some(grouping(false, &["app"])), Some(1));
        assert_eq!(
            sorted(instant(&q, 60.0, &mut source()).unwrap()),
            sorted(rows(&[
                (r#"{app="foo", pod="a", zone="eu"}"#, "6"),
                (r#"{app="bar", pod="a", zone="us"}"#, "12"),
            ]))
        );
        let q = vagg(Topk, counts(), None, Some(10));
        assert_eq!(instant(&q, 60.0, &mut source()).unwrap().len(), 4);
        // the pick changes from step to step
        let src = || {
            FakeSource::new()
                .stream(&[("s", "x")], &[(10.0, 1.0), (20.0, 5.0)])
                .stream(&[("s", "y")], &[(10.0, 3.0), (20.0, 2.0)])
        };
        let inner = range_agg(MaxOverTime, sel(&[("s", MatchOp::Re, ".+")]), 5.0, true);
        let q = vagg(Topk, inner.clone(), None, Some(1));
        assert_eq!(
            sorted(range(&q, 10.0, 20.0, 10.0, &mut src()).unwrap()),
            sorted(rows(&[(r#"{s="x"}"#, "_ 5"), (r#"{s="y"}"#, "3 _")]))
        );
        // NaN is picked last, both ways
        let nan_src = || {
            FakeSource::new()
                .stream(&[("s", "n")], &[(10.0, f64::NAN)])
                .stream(&[("s", "y")], &[(10.0, 3.0)])
        };
        for op in [Topk, Bottomk] {
            let q = vagg(op, inner.clone(), None, Some(1));
            assert_eq!(
                instant(&q, 10.0, &mut nan_src()).unwrap(),
                rows(&[(r#"{s="y"}"#, "3")])
            );
        }
        let q = vagg(Topk, inner, None, Some(0));
        assert!(matches!(
            instant(&q, 10.0, &mut nan_src()),
            Err(Error::Query(_))
        ));
    }

    #[test]
    fn sort_orders_instant_vectors_and_nan_goes_last() {
        let src = || {
            FakeSource::new()
                .stream(&[("s", "a")], &[(10.0, 2.0)])
                .stream(&[("s", "b")], &[(10.0, f64::NAN)])
                .stream(&[("s", "c")], &[(10.0, 1.0)])
                .stream(&[("s", "d")], &[(10.0, 3.0)])
        };
        let inner = range_agg(
            RangeOp::MaxOverTime,
            sel(&[("s", MatchOp::Re, ".+")]),
            5.0,
            true,
        );
        let q = vagg(Sort, inner.clone(), None, None);
        assert_eq!(
            instant(&q, 10.0, &mut src()).unwrap(),
            rows(&[
                (r#"{s="c"}"#, "1"),
                (r#"{s="a"}"#, "2"),
                (r#"{s="d"}"#, "3"),
                (r#"{s="b"}"#, "NaN")
            ])
        );
        let q = vagg(SortDesc, inner.clone(), None, None);
        assert_eq!(
            instant(&q, 10.0, &mut src()).unwrap(),
            rows(&[
                (r#"{s="d"}"#, "3"),
                (r#"{s="a"}"#, "2"),
                (r#"{s="c"}"#, "1"),
                (r#"{s="b"}"#, "NaN")
            ])
        );
        // the order survives a binary operation around the sort
        let q = bin(
            crate::ast::BinOp::Add,
            vagg(SortDesc, inner.clone(), None, None),
            MetricExpr::Literal(1.0),
        );
        assert_eq!(
            instant(&q, 10.0, &mut src()).unwrap(),
            rows(&[
                (r#"{s="d"}"#, "4"),
                (r#"{s="a"}"#, "3"),
                (r#"{s="c"}"#, "2"),
                (r#"{s="b"}"#, "NaN")
            ])
        );
        // without sort, an instant vector is ordered by labels
        let q = bin(crate::ast::BinOp::Add, inner, MetricExpr::Literal(1.0));
        assert_eq!(
            instant(&q, 10.0, &mut src()).unwrap(),
            rows(&[
                (r#"{s="a"}"#, "3"),
                (r#"{s="b"}"#, "NaN"),
                (r#"{s="c"}"#, "2"),
                (r#"{s="d"}"#, "4")
            ])
        );
    }
}
