//! Log volume (`/loki/api/v1/index/volume` and `volume_range`): bytes per aggregated label
//! set, from chunk statistics rather than line scans, as Loki computes it from its index.
//! A chunk's bytes are spread evenly over its time span, so a chunk that only partly
//! overlaps the asked range (or a step bucket) counts for the overlapping share.

use std::collections::{BTreeMap, BTreeSet};

use fenrir_common::{LabelSet, Matcher, Tenant, Timestamp};

use crate::scan::{Piece, StreamData};

/// How volume series are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeAggregation {
    /// One series per distinct value combination of the target labels (Loki's default).
    Series,
    /// One series per label name, `{name=""}`.
    Labels,
}

/// A volume request.
#[derive(Debug, Clone)]
pub struct VolumeQuery {
    /// Whose data.
    pub tenant: Tenant,
    /// The stream selector.
    pub matchers: Vec<Matcher>,
    /// Inclusive start, ns.
    pub start: Timestamp,
    /// Inclusive end, ns.
    pub end: Timestamp,
    /// `None`: one value over the whole range (instant). `Some(step)`: one point per
    /// instant `start + k·step ≤ end`, each covering `(t − step, t]`.
    pub step: Option<i64>,
    /// Labels to aggregate by; empty means the labels named in the selector.
    pub target_labels: Vec<String>,
    /// Series or label-name aggregation.
    pub aggregation: VolumeAggregation,
    /// At most this many series, the largest first.
    pub limit: usize,
}

/// One volume series.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSeries {
    /// The aggregated labels, sorted by name (`{name=""}` pairs for label aggregation,
    /// which a [`LabelSet`] cannot hold).
    pub labels: Vec<(String, String)>,
    /// `(timestamp ns, bytes)`: one point at `end` for an instant query, else one per step
    /// instant that received bytes.
    pub points: Vec<(Timestamp, u64)>,
    /// Bytes over the whole range; the sort key.
    pub total: u64,
}

/// The names a stream's labels are projected onto.
fn target_names(q: &VolumeQuery) -> BTreeSet<String> {
    if !q.target_labels.is_empty() {
        return q.target_labels.iter().cloned().collect();
    }
    q.matchers.iter().map(|m| m.name().to_string()).collect()
}

/// The keys one stream contributes to.
fn keys_of(
    labels: &LabelSet,
    q: &VolumeQuery,
    names: &BTreeSet<String>,
) -> Vec<Vec<(String, String)>> {
    match q.aggregation {
        VolumeAggregation::Series => vec![labels
            .iter()
            .filter(|(k, _)| names.contains(*k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()],
        VolumeAggregation::Labels => labels
            .iter()
            .filter(|(k, _)| q.target_labels.is_empty() || names.contains(*k))
            .map(|(k, _)| vec![(k.to_string(), String::new())])
            .collect(),
    }
}

/// Adds `bytes` spread evenly over `[lo, hi]` to the buckets; `windows` are inclusive
/// `[from, to]` ranges, one per output point.
fn spread(lo: Timestamp, hi: Timestamp, bytes: f64, windows: &[(i64, i64)], acc: &mut [f64]) {
    let span = (hi - lo).max(0) as f64 + 1.0;
    // Windows are sorted and disjoint: find the first that can overlap.
    let first = windows.partition_point(|w| w.1 < lo);
    for (i, w) in windows.iter().enumerate().skip(first) {
        if w.0 > hi {
            break;
        }
        let overlap = (hi.min(w.1) - lo.max(w.0)) as f64 + 1.0;
        if overlap > 0.0 {
            acc[i] += bytes * overlap / span;
        }
    }
}

/// Computes volume over the selected streams. Pure: reads only chunk statistics and head
/// entries.
pub(crate) fn compute_volume(streams: &[StreamData], q: &VolumeQuery) -> Vec<VolumeSeries> {
    let windows: Vec<(i64, i64)> = match q.step {
        None => vec![(q.start, q.end)],
        Some(step) => {
            let step = step.max(1);
            let mut w = Vec::new();
            let mut t = q.start;
            while t <= q.end && w.len() < 11_001 {
                w.push((t - step + 1, t));
                t += step;
            }
            w
        }
    };
    let names = target_names(q);
    let mut acc: BTreeMap<Vec<(String, String)>, Vec<f64>> = BTreeMap::new();
    let mut per_stream = vec![0f64; windows.len()];
    for data in streams {
        per_stream.iter_mut().for_each(|v| *v = 0.0);
        for piece in &data.pieces {
            match piece {
                Piece::Stored(r) => spread(
                    r.min_ts,
                    r.max_ts,
                    r.raw_bytes as f64,
                    &windows,
                    &mut per_stream,
                ),
                Piece::Sealed(c) => spread(
                    c.meta.min_ts,
                    c.meta.max_ts,
                    c.meta.raw_bytes as f64,
                    &windows,
                    &mut per_stream,
                ),
                Piece::Head(entries) => {
                    for e in entries.iter() {
                        let md: usize = e
                            .structured_metadata
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum();
                        spread(
                            e.ts,
                            e.ts,
                            (e.line.len() + md) as f64,
                            &windows,
                            &mut per_stream,
                        );
                    }
                }
            }
        }
        if per_stream.iter().all(|v| *v == 0.0) {
            continue;
        }
        for key in keys_of(&data.labels, q, &names) {
            let slot = acc.entry(key).or_insert_with(|| vec![0.0; windows.len()]);
            for (a, v) in slot.iter_mut().zip(&per_stream) {
                *a += v;
            }
        }
    }
    let mut series: Vec<VolumeSeries> = acc
        .into_iter()
        .map(|(labels, values)| {
            let points: Vec<(Timestamp, u64)> = match q.step {
                None => vec![(q.end, values[0].round() as u64)],
                Some(_) => windows
                    .iter()
                    .zip(&values)
                    .map(|(w, v)| (w.1, v.round() as u64))
                    .filter(|(_, v)| *v > 0)
                    .collect(),
            };
            let total = values.iter().sum::<f64>().round() as u64;
            VolumeSeries {
                labels,
                points,
                total,
            }
        })
        .filter(|s| s.total > 0)
        .collect();
    series.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.labels.cmp(&b.labels)));
    series.truncate(q.limit);
    series
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fenrir_common::{Entry, MatchOp};

    use super::*;

    fn head(labels: &[(&str, &str)], entries: &[(i64, &str)]) -> StreamData {
        StreamData {
            labels: LabelSet::from_pairs(labels.iter().copied()),
            pieces: vec![Piece::Head(Arc::new(
                entries.iter().map(|(ts, l)| Entry::new(*ts, *l)).collect(),
            ))],
        }
    }

    fn render(s: &VolumeSeries) -> (String, Vec<(i64, u64)>) {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        (format!("{{{}}}", labels.join(", ")), s.points.clone())
    }

    fn query(step: Option<i64>, aggregation: VolumeAggregation) -> VolumeQuery {
        VolumeQuery {
            tenant: Tenant::single(),
            matchers: vec![Matcher::new(MatchOp::Re, "app", ".+").unwrap()],
            start: 0,
            end: 100,
            step,
            target_labels: Vec::new(),
            aggregation,
            limit: 100,
        }
    }

    #[test]
    fn aggregates_by_selector_labels_largest_first() {
        let streams = [
            head(&[("app", "a"), ("pod", "1")], &[(10, "xxxx"), (20, "yy")]),
            head(&[("app", "a"), ("pod", "2")], &[(30, "z")]),
            head(&[("app", "b"), ("pod", "3")], &[(40, "0123456789")]),
        ];
        let out = compute_volume(&streams, &query(None, VolumeAggregation::Series));
        let got: Vec<(String, Vec<(i64, u64)>)> = out.iter().map(render).collect();
        assert_eq!(
            got,
            vec![
                ("{app=\"b\"}".to_string(), vec![(100, 10)]),
                ("{app=\"a\"}".to_string(), vec![(100, 7)]),
            ]
        );
    }

    #[test]
    fn by_label_names_and_range_buckets() {
        let streams = [head(
            &[("app", "a"), ("pod", "1")],
            &[(10, "aa"), (60, "bbb")],
        )];
        let out = compute_volume(&streams, &query(Some(50), VolumeAggregation::Labels));
        let got: Vec<(String, Vec<(i64, u64)>)> = out.iter().map(render).collect();
        assert_eq!(
            got,
            vec![
                ("{app=\"\"}".to_string(), vec![(50, 2), (100, 3)]),
                ("{pod=\"\"}".to_string(), vec![(50, 2), (100, 3)]),
            ]
        );
    }

    #[test]
    fn partial_chunks_count_their_overlapping_share() {
        let mut acc = vec![0.0];
        spread(0, 99, 100.0, &[(50, 149)], &mut acc);
        assert_eq!(acc[0], 50.0);
    }
}
