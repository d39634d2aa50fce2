//! Binary operators: arithmetic, comparisons and set operators, with Prometheus-style
//! vector matching (`on`, `ignoring`, `group_left`, `group_right`).

use std::collections::{HashMap, HashSet};

use fenrir_common::LabelSet;

use super::{Elem, StepVec, Value};
use crate::ast::{BinOp, Binary, Cardinality, VectorMatching};
use crate::{Error, Result};

/// Evaluates `lhs op rhs` at every step.
pub(crate) fn eval_binary(b: &Binary, lhs: Value, rhs: Value) -> Result<Value> {
    let op = b.op;
    if is_set_op(op) {
        return match (lhs, rhs) {
            (Value::Vector(l), Value::Vector(r)) => {
                let mut sigs = Signatures::new(b.matching.as_ref());
                Ok(Value::Vector(
                    l.into_iter()
                        .zip(r)
                        .map(|(l, r)| set_op(op, l, r, &mut sigs))
                        .collect(),
                ))
            }
            (Value::Scalar(v), _) => Err(literal_leg_error("left", op, v)),
            (_, Value::Scalar(v)) => Err(literal_leg_error("right", op, v)),
        };
    }
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(if is_comparison(op) {
            // Loki: scalar-scalar comparisons always give 0 or 1, `bool` or not.
            bool_value(compare(op, l, r))
        } else {
            arithmetic(op, l, r)
        })),
        (Value::Vector(l), Value::Scalar(r)) => Ok(Value::Vector(
            l.into_iter()
                .map(|step| vector_scalar(op, b.return_bool, step, r, false))
                .collect(),
        )),
        (Value::Scalar(l), Value::Vector(r)) => Ok(Value::Vector(
            r.into_iter()
                .map(|step| vector_scalar(op, b.return_bool, step, l, true))
                .collect(),
        )),
        (Value::Vector(l), Value::Vector(r)) => {
            let mut sigs = Signatures::new(b.matching.as_ref());
            let steps = l
                .into_iter()
                .zip(r)
                .map(|(l, r)| vector_vector(b, l, r, &mut sigs))
                .collect::<Result<Vec<_>>>()?;
            Ok(Value::Vector(steps))
        }
    }
}

fn literal_leg_error(side: &str, op: BinOp, v: f64) -> Error {
    Error::Query(format!(
        "unexpected literal for {side} leg of logical/set binary operation ({}): {v:.6}",
        op_name(op)
    ))
}

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Unless => "unless",
        BinOp::Eq => "==",
        BinOp::Neq => "!=",
        BinOp::Gt => ">",
        BinOp::Gte => ">=",
        BinOp::Lt => "<",
        BinOp::Lte => "<=",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
    }
}

fn is_set_op(op: BinOp) -> bool {
    matches!(op, BinOp::And | BinOp::Or | BinOp::Unless)
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte
    )
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Arithmetic as Loki does it: `x/0` and `x%0` are NaN whatever the sign of `x`.
fn arithmetic(op: BinOp, l: f64, r: f64) -> f64 {
    match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div => {
            if r == 0.0 {
                f64::NAN
            } else {
                l / r
            }
        }
        BinOp::Mod => {
            if r == 0.0 {
                f64::NAN
            } else {
                // Rust's `%` on floats is C `fmod`, like Go's `math.Mod`.
                l % r
            }
        }
        BinOp::Pow => l.powf(r),
        _ => f64::NAN,
    }
}

/// IEEE comparisons: NaN fails everything but `!=`.
fn compare(op: BinOp, l: f64, r: f64) -> bool {
    match op {
        BinOp::Eq => l == r,
        BinOp::Neq => l != r,
        BinOp::Gt => l > r,
        BinOp::Gte => l >= r,
        BinOp::Lt => l < r,
        BinOp::Lte => l <= r,
        _ => false,
    }
}

/// Vector with scalar; `scalar_on_left` for `s op v`. Comparisons without `bool` keep
/// the vector's value on either side.
fn vector_scalar(
    op: BinOp,
    return_bool: bool,
    step: StepVec,
    s: f64,
    scalar_on_left: bool,
) -> StepVec {
    step.into_iter()
        .filter_map(|e| {
            let (l, r) = if scalar_on_left {
                (s, e.value)
            } else {
                (e.value, s)
            };
            let value = if is_comparison(op) {
                let ok = compare(op, l, r);
                if return_bool {
                    bool_value(ok)
                } else if ok {
                    e.value
                } else {
                    return None;
                }
            } else {
                arithmetic(op, l, r)
            };
            Some(Elem {
                labels: e.labels,
                value,
            })
        })
        .collect()
}

/// Matching signatures, remembered per label set across steps.
struct Signatures<'a> {
    matching: Option<&'a VectorMatching>,
    memo: HashMap<LabelSet, LabelSet>,
}

impl<'a> Signatures<'a> {
    fn new(matching: Option<&'a VectorMatching>) -> Self {
        Signatures {
            matching,
            memo: HashMap::new(),
        }
    }

    /// The labels two elements must share to match: the `on` labels, all labels but the
    /// `ignoring` ones, or all labels.
    fn of(&mut self, labels: &LabelSet) -> LabelSet {
        let Some(m) = self.matching else {
            return labels.clone();
        };
        if let Some(sig) = self.memo.get(labels) {
            return sig.clone();
        }
        let listed = |name: &str| m.labels.iter().any(|l| l == name);
        let sig = LabelSet::from_pairs(labels.iter().filter(|(n, _)| listed(n) == m.on));
        self.memo.insert(labels.clone(), sig.clone());
        sig
    }
}

fn set_op(op: BinOp, lhs: StepVec, rhs: StepVec, sigs: &mut Signatures<'_>) -> StepVec {
    match op {
        BinOp::And => {
            let right: HashSet<LabelSet> = rhs.iter().map(|e| sigs.of(&e.labels)).collect();
            lhs.into_iter()
                .filter(|e| right.contains(&sigs.of(&e.labels)))
                .collect()
        }
        BinOp::Unless => {
            let right: HashSet<LabelSet> = rhs.iter().map(|e| sigs.of(&e.labels)).collect();
            lhs.into_iter()
                .filter(|e| !right.contains(&sigs.of(&e.labels)))
                .collect()
        }
        _ => {
            let left: HashSet<LabelSet> = lhs.iter().map(|e| sigs.of(&e.labels)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|e| !left.contains(&sigs.of(&e.labels))),
            );
            out
        }
    }
}

/// Vector with vector, one-to-one or many-to-one, with Prometheus' errors.
fn vector_vector(
    b: &Binary,
    lhs: StepVec,
    rhs: StepVec,
    sigs: &mut Signatures<'_>,
) -> Result<StepVec> {
    let card = b
        .matching
        .as_ref()
        .map_or(&Cardinality::OneToOne, |m| &m.card);
    let one_to_many = matches!(card, Cardinality::OneToMany(_));
    // The "one" side goes right.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<LabelSet, Elem> = HashMap::new();
    for e in one {
        let sig = sigs.of(&e.labels);
        if one_by_sig.contains_key(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(Error::Query(format!(
                "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        one_by_sig.insert(sig, e);
    }
    let mut out = Vec::new();
    // One-to-one: signatures already matched; many-to-one: result label sets per signature.
    let mut matched: HashSet<LabelSet> = HashSet::new();
    let mut inserted: HashSet<(LabelSet, LabelSet)> = HashSet::new();
    for m in many {
        let sig = sigs.of(&m.labels);
        let Some(o) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (o.value, m.value)
        } else {
            (m.value, o.value)
        };
        let value = if is_comparison(b.op) {
            let ok = compare(b.op, l, r);
            if b.return_bool {
                bool_value(ok)
            } else if ok {
                // A comparison keeps the left operand's value, even with group_right.
                l
            } else {
                continue;
            }
        } else {
            arithmetic(b.op, l, r)
        };
        let labels = result_labels(&m.labels, &o.labels, b.matching.as_ref());
        match card {
            Cardinality::OneToOne => {
                if !matched.insert(sig) {
                    return Err(Error::Query(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .to_string(),
                    ));
                }
            }
            _ => {
                if !inserted.insert((sig, labels.clone())) {
                    return Err(Error::Query(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .to_string(),
                    ));
                }
            }
        }
        out.push(Elem { labels, value });
    }
    Ok(out)
}

/// The labels of a matched pair: the "many" side's, reduced to the `on` labels (or
/// without the `ignoring` ones) for one-to-one matching, plus the `group_x` include
/// labels copied from the "one" side (deleted when the "one" side lacks them).
fn result_labels(many: &LabelSet, one: &LabelSet, matching: Option<&VectorMatching>) -> LabelSet {
    let Some(m) = matching else {
        return many.clone();
    };
    match &m.card {
        Cardinality::OneToOne => {
            let listed = |name: &str| m.labels.iter().any(|l| l == name);
            LabelSet::from_pairs(many.iter().filter(|(n, _)| listed(n) == m.on))
        }
        Cardinality::ManyToOne(include) | Cardinality::OneToMany(include) => {
            if include.is_empty() {
                return many.clone();
            }
            let mut b = many.to_builder();
            for name in include {
                match one.get(name) {
                    Some(v) => b.set(name.clone(), v.to_string()),
                    None => b.remove(name),
                };
            }
            b.build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ast::BinOp::*;
    use crate::ast::Cardinality::{ManyToOne, OneToMany, OneToOne};
    use crate::ast::RangeOp::{CountOverTime, MaxOverTime, Rate};
    use crate::ast::VectorOp::Sum;
    use crate::ast::{BinOp, MetricExpr};
    use fenrir_common::MatchOp;

    fn lit(v: f64) -> MetricExpr {
        MetricExpr::Literal(v)
    }

    fn scalar(e: &MetricExpr) -> String {
        let r = instant(e, 60.0, &mut FakeSource::new()).unwrap();
        assert_eq!(r[0].0, "scalar");
        r[0].1[0].clone()
    }

    #[test]
    fn scalar_arithmetic_and_comparisons() {
        assert_eq!(
            scalar(&bin(Pow, lit(2.0), bin(Pow, lit(3.0), lit(2.0)))),
            "512"
        );
        assert_eq!(
            scalar(&bin(
                Add,
                lit(1.0),
                bin(Mul, lit(2.0), bin(Pow, lit(3.0), lit(2.0)))
            )),
            "19"
        );
        assert_eq!(scalar(&bin(Mod, lit(10.0), lit(3.0))), "1");
        assert_eq!(scalar(&bin(Div, lit(10.0), lit(0.0))), "NaN");
        assert_eq!(scalar(&bin(Div, lit(-10.0), lit(0.0))), "NaN");
        assert_eq!(scalar(&bin(Mod, lit(10.0), lit(0.0))), "NaN");
        // comparisons between scalars always give 0/1, bool or not
        assert_eq!(scalar(&bin(Gt, lit(2.0), lit(7.0))), "0");
        assert_eq!(scalar(&bin(Gte, lit(7.0), lit(7.0))), "1");
        assert_eq!(scalar(&bin_with(Eq, lit(2.0), lit(1.0), true, None)), "0");
        assert!(
            instant(&bin(And, lit(1.0), lit(2.0)), 60.0, &mut FakeSource::new())
                .unwrap_err()
                .to_string()
                .starts_with(
                    "unexpected literal for left leg of logical/set binary operation (and)"
                )
        );
    }

    fn foo_bar() -> FakeSource {
        FakeSource::new()
            .repeat(&[("app", "foo")], 0.0, 10.0, 19)
            .repeat(&[("app", "bar")], 0.0, 20.0, 10)
    }

    fn count(re: &str) -> MetricExpr {
        range_agg(CountOverTime, sel(&[("app", MatchOp::Re, re)]), 60.0, false)
    }

    #[test]
    fn vector_scalar_arithmetic_on_either_side() {
        let cases: &[(BinOp, bool, &str)] = &[
            (Add, false, "8"),
            (Add, true, "8"),
            (Mul, false, "12"),
            (Div, false, "3"),
            (Div, true, "0.3333333333333333"),
            (Mod, false, "2"),
            (Mod, true, "2"),
            (Pow, true, "64"),
        ];
        for &(op, scalar_left, want) in cases {
            let (l, r) = if scalar_left {
                (lit(2.0), count("foo"))
            } else {
                (count("foo"), lit(if op == Mod { 4.0 } else { 2.0 }))
            };
            let got = instant(&bin(op, l, r), 60.0, &mut foo_bar()).unwrap();
            assert_eq!(
                got,
                rows(&[(r#"{app="foo"}"#, want)]),
                "{op:?} scalar_left={scalar_left}"
            );
        }
        let q = bin(Div, count("foo"), lit(0.0));
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="foo"}"#, "NaN")])
        );
        let q = bin(
            Sub,
            range_agg(Rate, sel(&[("app", MatchOp::Eq, "bar")]), 60.0, false),
            lit(1.0),
        );
        assert_eq!(
            range(&q, 60.0, 120.0, 30.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="bar"}"#, "-0.95 -0.95 -0.95")])
        );
    }

    #[test]
    fn vector_scalar_comparisons_filter_or_give_bool() {
        let both = count("foo|bar");
        let q = bin(Gt, both.clone(), lit(4.0));
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="foo"}"#, "6")])
        );
        // `4 > v` keeps the vector's value
        let q = bin(Gt, lit(4.0), both.clone());
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="bar"}"#, "3")])
        );
        let q = bin_with(Eq, lit(6.0), both.clone(), true, None);
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="bar"}"#, "0"), (r#"{app="foo"}"#, "1")])
        );
        // NaN: only != holds, and it keeps the NaN
        let nan = || FakeSource::new().stream(&[("k", "nan")], &[(30.0, f64::NAN)]);
        let v = range_agg(MaxOverTime, sel(&[("k", MatchOp::Eq, "nan")]), 60.0, true);
        assert_eq!(
            instant(&bin(Gt, v.clone(), lit(1.0)), 60.0, &mut nan()).unwrap(),
            rows(&[])
        );
        assert_eq!(
            instant(&bin(Neq, v.clone(), lit(1.0)), 60.0, &mut nan()).unwrap(),
            rows(&[(r#"{k="nan"}"#, "NaN")])
        );
        assert_eq!(
            instant(&bin_with(Gt, v, lit(1.0), true, None), 60.0, &mut nan()).unwrap(),
            rows(&[(r#"{k="nan"}"#, "0")])
        );
    }

    #[test]
    fn vector_vector_one_to_one_on_full_labels() {
        let q = bin(Mul, count("foo|bar"), count("bar"));
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[(r#"{app="bar"}"#, "9")])
        );
        let q = bin(Gt, count("foo"), count("bar"));
        assert_eq!(instant(&q, 60.0, &mut foo_bar()).unwrap(), rows(&[]));
        let zero = MetricExpr::Vector(0.0);
        let q = bin(Div, vagg(Sum, count("foo"), None, None), zero.clone());
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[("{}", "NaN")])
        );
        let q = bin(Mod, vagg(Sum, count("foo"), None, None), zero);
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[("{}", "NaN")])
        );
        let q = bin(Add, MetricExpr::Vector(1.0), MetricExpr::Vector(1.0));
        assert_eq!(
            instant(&q, 60.0, &mut foo_bar()).unwrap(),
            rows(&[("{}", "2")])
        );
    }

    fn left_right() -> FakeSource {
        FakeSource::new()
            .repeat(&[("side", "left"), ("id", "lt")], 0.0, 20.0, 10)
            .repeat(&[("side", "left"), ("id", "eq")], 0.0, 20.0, 10)
            .repeat(&[("side", "left"), ("id", "gt")], 0.0, 10.0, 19)
            .repeat(&[("side", "right"), ("id", "lt")], 0.0, 10.0, 19)
            .repeat(&[("side", "right"), ("id", "eq")], 0.0, 20.0, 10)
            .repeat(&[("side", "right"), ("id", "gt")], 0.0, 20.0, 10)
    }

    fn by_id(side: &str) -> MetricExpr {
        vagg(
            Sum,
            range_agg(
                CountOverTime,
                sel(&[("side", MatchOp::Eq, side)]),
                60.0,
                false,
            ),
            Some(grouping(false, &["id"])),
            None,
        )
    }

    #[test]
    fn vector_vector_comparisons_keep_left_value_or_give_bool() {
        let q = bin(Gte, by_id("left"), by_id("right"));
        assert_eq!(
            instant(&q, 60.0, &mut left_right()).unwrap(),
            rows(&[(r#"{id="eq"}"#, "3"), (r#"{id="gt"}"#, "6")])
        );
        let q = bin_with(Lt, by_id("left"), by_id("right"), true, None);
        assert_eq!(
            instant(&q, 60.0, &mut left_right()).unwrap(),
            rows(&[
                (r#"{id="eq"}"#, "0"),
                (r#"{id="gt"}"#, "0"),
                (r#"{id="lt"}"#, "1")
            ])
        );
    }

    fn requests_errors() -> FakeSource {
        FakeSource::new()
            .repeat(&[("app", "requests"), ("pod", "a")], 0.0, 10.0, 19)
            .repeat(&[("app", "requests"), ("pod", "b")], 0.0, 15.0, 13)
            .repeat(&[("app", "errors"), ("pod", "a")], 0.0, 20.0, 10)
            .repeat(&[("app", "errors"), ("pod", "c")], 0.0, 30.0, 7)
    }

    fn app(name: &str) -> MetricExpr {
        range_agg(
            CountOverTime,
            sel(&[("app", MatchOp::Eq, name)]),
            60.0,
            false,
        )
    }

    #[test]
    fn set_operators_with_on_and_ignoring() {
        let q = bin_with(
            And,
            app("requests"),
            app("errors"),
            false,
            on(&["pod"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut requests_errors()).unwrap(),
            rows(&[(r#"{app="requests", pod="a"}"#, "6")])
        );
        let q = bin_with(
            Unless,
            app("requests"),
            app("errors"),
            false,
            ignoring(&["app"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut requests_errors()).unwrap(),
            rows(&[(r#"{app="requests", pod="b"}"#, "4")])
        );
        let q = bin_with(
            Or,
            app("requests"),
            bin(Mul, app("errors"), lit(100.0)),
            false,
            on(&["pod"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut requests_errors()).unwrap(),
            rows(&[
                (r#"{app="errors", pod="c"}"#, "200"),
                (r#"{app="requests", pod="a"}"#, "6"),
                (r#"{app="requests", pod="b"}"#, "4"),
            ])
        );
        let q = bin_with(
            And,
            app("requests"),
            MetricExpr::Vector(1.0),
            false,
            on(&[], OneToOne),
        );
        assert_eq!(instant(&q, 60.0, &mut requests_errors()).unwrap().len(), 2);
        let q = bin_with(
            Unless,
            app("requests"),
            MetricExpr::Vector(1.0),
            false,
            on(&[], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut requests_errors()).unwrap(),
            rows(&[])
        );
    }

    #[test]
    fn or_vector_zero_fills_empty_steps() {
        let mut src = FakeSource::new().repeat(&[("app", "foo")], 0.0, 10.0, 7);
        let rate = range_agg(Rate, sel(&[("app", MatchOp::Eq, "foo")]), 60.0, false);
        let q = bin(Or, rate.clone(), MetricExpr::Vector(0.0));
        assert_eq!(
            range(&q, 60.0, 180.0, 30.0, &mut src).unwrap(),
            rows(&[(r#"{app="foo"}"#, "0.1 0.05 _ _ _"), ("{}", "0 0 0 0 0")])
        );
        let q = bin(Or, vagg(Sum, rate, None, None), MetricExpr::Vector(0.0));
        assert_eq!(
            range(&q, 60.0, 180.0, 30.0, &mut src).unwrap(),
            rows(&[("{}", "0.1 0.05 0 0 0")])
        );
    }

    fn machines() -> FakeSource {
        FakeSource::new()
            .repeat(
                &[("app", "foo"), ("machine", "fuzz"), ("pool", "foo")],
                0.0,
                10.0,
                19,
            )
            .repeat(
                &[("app", "foo"), ("machine", "buzz"), ("pool", "foo")],
                0.0,
                15.0,
                13,
            )
    }

    fn sum_by(labels: &[&str]) -> MetricExpr {
        vagg(
            Sum,
            range_agg(
                CountOverTime,
                sel(&[("app", MatchOp::Eq, "foo")]),
                60.0,
                false,
            ),
            Some(grouping(false, labels)),
            None,
        )
    }

    #[test]
    fn on_and_ignoring_reduce_one_to_one_labels() {
        let q = bin_with(
            Add,
            sum_by(&["app", "machine"]),
            sum_by(&["app"]),
            false,
            on(&[], OneToOne),
        );
        let err = instant(&q, 60.0, &mut machines()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
        );
        let one =
            || FakeSource::new().repeat(&[("app", "foo"), ("machine", "fuzz")], 0.0, 10.0, 19);
        let q = bin_with(
            Add,
            sum_by(&["app", "machine"]),
            sum_by(&["app"]),
            false,
            on(&["app"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut one()).unwrap(),
            rows(&[(r#"{app="foo"}"#, "12")])
        );
        let q = bin_with(
            Add,
            sum_by(&["app", "machine"]),
            sum_by(&["app"]),
            false,
            on(&[], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut one()).unwrap(),
            rows(&[("{}", "12")])
        );
        let q = bin_with(
            Gt,
            sum_by(&["app", "machine"]),
            sum_by(&["app"]),
            true,
            ignoring(&["machine"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut one()).unwrap(),
            rows(&[(r#"{app="foo"}"#, "0")])
        );
        // duplicates on the "one" side
        let q = bin_with(
            Gte,
            sum_by(&["app"]),
            sum_by(&["app", "machine"]),
            true,
            ignoring(&["machine"], OneToOne),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap_err().to_string(),
            "found duplicate series on the right hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
        );
    }

    #[test]
    fn group_left_and_group_right() {
        let q = bin_with(
            Div,
            sum_by(&["app", "machine", "pool"]),
            sum_by(&["app"]),
            false,
            on(&["app"], ManyToOne(vec![])),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap(),
            rows(&[
                (r#"{app="foo", machine="buzz", pool="foo"}"#, "0.4"),
                (r#"{app="foo", machine="fuzz", pool="foo"}"#, "0.6"),
            ])
        );
        // include labels come from the one side; missing there means deleted
        let q = bin_with(
            Gt,
            sum_by(&["app", "machine"]),
            sum_by(&["app", "pool"]),
            true,
            on(&["app"], ManyToOne(include(&["pool"]))),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap(),
            rows(&[
                (r#"{app="foo", machine="buzz", pool="foo"}"#, "0"),
                (r#"{app="foo", machine="fuzz", pool="foo"}"#, "0"),
            ])
        );
        let q = bin_with(
            Gt,
            sum_by(&["app", "machine", "pool"]),
            sum_by(&["app"]),
            true,
            on(&["app"], ManyToOne(include(&["pool"]))),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap(),
            rows(&[
                (r#"{app="foo", machine="buzz"}"#, "0"),
                (r#"{app="foo", machine="fuzz"}"#, "0")
            ])
        );
        // group_right: labels from the right (many) side, a comparison keeps the left value
        let q = bin_with(
            Gt,
            sum_by(&["app"]),
            sum_by(&["app", "machine"]),
            false,
            on(&[], OneToMany(vec![])),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap(),
            rows(&[
                (r#"{app="foo", machine="buzz"}"#, "10"),
                (r#"{app="foo", machine="fuzz"}"#, "10")
            ])
        );
        let q = bin_with(
            Gt,
            sum_by(&["app"]),
            sum_by(&["app", "machine", "pool"]),
            true,
            on(&["app"], OneToMany(include(&["pool"]))),
        );
        assert_eq!(
            instant(&q, 60.0, &mut machines()).unwrap(),
            rows(&[
                (r#"{app="foo", machine="buzz"}"#, "1"),
                (r#"{app="foo", machine="fuzz"}"#, "1")
            ])
        );
    }

    #[test]
    fn group_errors_use_lokis_texts() {
        let pools = || {
            FakeSource::new()
                .repeat(&[("app", "foo"), ("pool", "a")], 0.0, 10.0, 19)
                .repeat(&[("app", "foo"), ("pool", "b")], 0.0, 10.0, 19)
                .repeat(
                    &[("app", "foo"), ("pool", "z"), ("side", "one")],
                    0.0,
                    10.0,
                    19,
                )
        };
        let many = vagg(
            Sum,
            range_agg(
                CountOverTime,
                sel(&[("app", MatchOp::Eq, "foo"), ("pool", MatchOp::Re, "a|b")]),
                60.0,
                false,
            ),
            Some(grouping(false, &["app", "pool"])),
            None,
        );
        let one = vagg(
            Sum,
            range_agg(
                CountOverTime,
                sel(&[("app", MatchOp::Eq, "foo"), ("side", MatchOp::Eq, "one")]),
                60.0,
                false,
            ),
            Some(grouping(false, &["app", "pool"])),
            None,
        );
        let q = bin_with(
            Gt,
            many.clone(),
            one.clone(),
            true,
            on(&["app"], ManyToOne(include(&["pool"]))),
        );
        assert_eq!(
            instant(&q, 60.0, &mut pools()).unwrap_err().to_string(),
            "multiple matches for labels: grouping labels must ensure unique matches"
        );
        let q = bin_with(Gt, many.clone(), one, true, on(&["app"], OneToMany(vec![])));
        assert_eq!(
            instant(&q, 60.0, &mut pools()).unwrap_err().to_string(),
            "found duplicate series on the left hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
        );
    }

    #[test]
    fn power_edge_cases() {
        let src = || {
            FakeSource::new()
                .stream(&[("k", "nan")], &[(30.0, f64::NAN)])
                .stream(&[("k", "zero")], &[(30.0, 0.0)])
                .stream(&[("k", "neg")], &[(30.0, -1.0)])
        };
        let v = |k: &str| range_agg(MaxOverTime, sel(&[("k", MatchOp::Eq, k)]), 60.0, true);
        assert_eq!(
            instant(&bin(Pow, v("nan"), lit(0.0)), 60.0, &mut src()).unwrap(),
            rows(&[(r#"{k="nan"}"#, "1")])
        );
        assert_eq!(
            instant(&bin(Pow, v("zero"), lit(-2.0)), 60.0, &mut src()).unwrap(),
            rows(&[(r#"{k="zero"}"#, "+Inf")])
        );
        assert_eq!(
            instant(&bin(Pow, v("neg"), lit(0.5)), 60.0, &mut src()).unwrap(),
            rows(&[(r#"{k="neg"}"#, "NaN")])
        );
    }
}
