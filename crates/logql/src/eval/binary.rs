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
fn vector_scalar(op: BinOp, return_bool: bool, step: StepVec, s: f64, scalar_on_left: bool) -> StepVec {
    step.into_iter()
        .filter_map(|e| {
            let (l, r) = if scalar_on_left { (s, e.value) } else { (e.value, s) };
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
            out.extend(rhs.into_iter().filter(|e| !left.contains(&sigs.of(&e.labels))));
            out
        }
    }
}

/// Vector with vector, one-to-one or many-to-one, with Prometheus' errors.
fn vector_vector(b: &Binary, lhs: StepVec, rhs: StepVec, sigs: &mut Signatures<'_>) -> Result<StepVec> {
    let card = b.matching.as_ref().map_or(&Cardinality::OneToOne, |m| &m.card);
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
        let (l, r) = if one_to_many { (o.value, m.value) } else { (m.value, o.value) };
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
