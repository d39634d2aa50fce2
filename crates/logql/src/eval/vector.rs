//! Vector aggregations (`sum`, `avg`, `topk`, `sort`, …), applied step by step.

use std::cmp::Ordering;
use std::collections::HashMap;

use fenrir_common::LabelSet;

use super::range::{avg, stdvar};
use super::{Elem, StepVec};
use crate::ast::{Grouping, VectorAgg, VectorOp};
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
    memo: HashMap<LabelSet, LabelSet>,
}

impl<'a> GroupKeys<'a> {
    fn new(grouping: Option<&'a Grouping>) -> Self {
        GroupKeys {
            grouping,
            memo: HashMap::new(),
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
        let key = LabelSet::from_pairs(labels.iter().filter(|(n, _)| keep(n)));
        self.memo.insert(labels.clone(), key.clone());
        key
    }
}

/// Groups a step's elements by key, in order of first appearance.
fn group(step: StepVec, keys: &mut GroupKeys<'_>) -> Vec<(LabelSet, Vec<Elem>)> {
    let mut groups: Vec<(LabelSet, Vec<Elem>)> = Vec::new();
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
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
                VectorOp::Min => values.fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
                VectorOp::Max => values.fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
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
        members.sort_by(|a, b| by_value(a.value, b.value, top).then_with(|| a.labels.cmp(&b.labels)));
        members.truncate(k);
        out.extend(members);
    }
    out
}
