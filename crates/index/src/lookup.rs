//! Reading the index: selector resolution, chunk lookups by time, label listings.

use std::collections::BTreeSet;

use fenrir_common::{Fingerprint, LabelSet, MatchOp, Matcher, Tenant};

use crate::keys::{self, SeriesRecord};
use crate::{ChunkRef, Index, IndexStats, Result};

/// Postings of one failing value read one by one before seeking past the rest.
const SKIP_AFTER_POSTINGS: usize = 8;

/// A way to find candidate series in the `postings` tree.
struct Access<'m> {
    /// Every posting under this prefix is looked at.
    prefix: Vec<u8>,
    /// For a `tenant | name` prefix: the matcher each distinct value must pass (tested
    /// once per value). `None` when every posting under the prefix is a candidate.
    value_test: Option<&'m Matcher>,
}

impl Index {
    /// Series of `tenant` whose labels satisfy all `matchers` and that have at least one
    /// chunk overlapping `[start, end]` (both inclusive), sorted by fingerprint.
    ///
    /// A label a series lacks matches as the empty string, as in Loki. With no matcher
    /// that rejects the empty string, every series of the tenant is scanned.
    pub fn series(
        &self,
        tenant: &Tenant,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Fingerprint, LabelSet)>> {
        let tp = keys::tenant_prefix(tenant)?;
        let mut out = Vec::new();
        if start > end {
            return Ok(out);
        }
        for (fp, record) in self.matching_series(&tp, matchers, None)? {
            if self.has_chunk_in(&tp, fp, &record, start, end)? {
                out.push((fp, record.labels));
            }
        }
        Ok(out)
    }

    /// The chunks of series `fp` overlapping `[start, end]` (both inclusive), sorted by
    /// `min_ts` (then `max_ts`, then `chunk_id`).
    pub fn chunks(
        &self,
        tenant: &Tenant,
        fp: Fingerprint,
        start: i64,
        end: i64,
    ) -> Result<Vec<ChunkRef>> {
        let tp = keys::tenant_prefix(tenant)?;
        if start > end {
            return Ok(Vec::new());
        }
        let Some(record) = self.series_record(&tp, fp)? else {
            return Ok(Vec::new());
        };
        let mut out = self.chunks_in(&tp, fp, &record, start, end)?;
        out.sort_by_key(|c| (c.min_ts, c.max_ts, c.chunk_id));
        Ok(out)
    }

    /// Label names of the series with chunks overlapping `[start, end]`, sorted.
    pub fn label_names(&self, tenant: &Tenant, start: i64, end: i64) -> Result<Vec<String>> {
        let tp = keys::tenant_prefix(tenant)?;
        let mut names = BTreeSet::new();
        if start > end {
            return Ok(Vec::new());
        }
        for (fp, record) in self.matching_series(&tp, &[], None)? {
            if record.labels.iter().all(|(name, _)| names.contains(name)) {
                continue;
            }
            if self.has_chunk_in(&tp, fp, &record, start, end)? {
                names.extend(record.labels.iter().map(|(name, _)| name.to_owned()));
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` among the series that satisfy `matchers` and have chunks
    /// overlapping `[start, end]`, sorted and deduplicated.
    pub fn label_values(
        &self,
        tenant: &Tenant,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>> {
        let tp = keys::tenant_prefix(tenant)?;
        let mut values = BTreeSet::new();
        if start > end {
            return Ok(Vec::new());
        }
        for (fp, record) in self.matching_series(&tp, matchers, Some(name))? {
            let Some(value) = record.labels.get(name) else {
                continue;
            };
            if !values.contains(value) && self.has_chunk_in(&tp, fp, &record, start, end)? {
                values.insert(value.to_owned());
            }
        }
        Ok(values.into_iter().collect())
    }

    /// Streams, chunks, entries and bytes of the chunks overlapping `[start, end]` of the
    /// series that satisfy `matchers`.
    pub fn stats(
        &self,
        tenant: &Tenant,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<IndexStats> {
        let tp = keys::tenant_prefix(tenant)?;
        let mut stats = IndexStats::default();
        if start > end {
            return Ok(stats);
        }
        for (fp, record) in self.matching_series(&tp, matchers, None)? {
            let chunks = self.chunks_in(&tp, fp, &record, start, end)?;
            if !chunks.is_empty() {
                stats.streams += 1;
            }
            chunks.iter().for_each(|c| stats.add_chunk(c));
        }
        Ok(stats)
    }

    /// Series of one tenant satisfying `matchers` (and having label `required`, when
    /// given), whatever their time range, sorted by fingerprint.
    fn matching_series(
        &self,
        tp: &[u8],
        matchers: &[Matcher],
        required: Option<&str>,
    ) -> Result<Vec<(Fingerprint, SeriesRecord)>> {
        let accepts = |labels: &LabelSet| {
            required.is_none_or(|name| labels.get(name).is_some())
                && matchers.iter().all(|m| m.matches_labels(labels))
        };
        let candidates = match self.cheapest_access(tp, matchers, required)? {
            Some(access) => self.resolve(&access)?,
            None => {
                // Only empty-matching matchers: no posting can narrow the search.
                let mut out = Vec::new();
                for item in self.series.scan_prefix(tp) {
                    let (key, value) = item?;
                    let record = SeriesRecord::decode(&value)?;
                    if accepts(&record.labels) {
                        out.push((keys::series_key_fp(&key, tp.len())?, record));
                    }
                }
                return Ok(out);
            }
        };
        let mut out = Vec::with_capacity(candidates.len());
        for fp in candidates {
            // A posting without its series can only be seen mid-delete: skip it.
            if let Some(record) = self.series_record(tp, fp)? {
                if accepts(&record.labels) {
                    out.push((fp, record));
                }
            }
        }
        Ok(out)
    }

    /// The access scanning the fewest postings among those the matchers allow, or `None`
    /// when every matcher accepts series lacking its label.
    fn cheapest_access<'m>(
        &self,
        tp: &[u8],
        matchers: &'m [Matcher],
        required: Option<&str>,
    ) -> Result<Option<Access<'m>>> {
        let mut accesses = Vec::new();
        // Equalities first: on a tie they win, as they need no per-value test.
        for m in matchers {
            if m.op() == MatchOp::Eq && !m.value().is_empty() {
                accesses.push(Access {
                    prefix: keys::posting_value_prefix(tp, m.name(), m.value())?,
                    value_test: None,
                });
            }
        }
        if let Some(name) = required {
            accesses.push(Access {
                prefix: keys::posting_name_prefix(tp, name)?,
                value_test: None,
            });
        }
        for m in matchers {
            if m.op() != MatchOp::Eq && !m.matches_empty() {
                accesses.push(Access {
                    prefix: keys::posting_name_prefix(tp, m.name())?,
                    value_test: Some(m),
                });
            }
        }
        if accesses.len() <= 1 {
            return Ok(accesses.pop());
        }
        let mut best: Option<(Access<'m>, usize)> = None;
        for access in accesses {
            let limit = best.as_ref().map_or(usize::MAX, |(_, n)| *n);
            let count = self.count_postings(&access.prefix, limit)?;
            if count < limit {
                let done = count == 0;
                best = Some((access, count));
                if done {
                    break;
                }
            }
        }
        Ok(best.map(|(access, _)| access))
    }

    /// The number of postings under `prefix`, counting no further than `limit`.
    fn count_postings(&self, prefix: &[u8], limit: usize) -> Result<usize> {
        let mut count = 0;
        for item in self.postings.scan_prefix(prefix).keys() {
            item?;
            count += 1;
            if count >= limit {
                break;
            }
        }
        Ok(count)
    }

    /// The fingerprints an access selects, sorted and deduplicated.
    fn resolve(&self, access: &Access<'_>) -> Result<Vec<Fingerprint>> {
        let prefix = access.prefix.as_slice();
        let mut out = Vec::new();
        let Some(test) = access.value_test else {
            for key in self.postings.scan_prefix(prefix).keys() {
                out.push(keys::posting_fp(&key?)?);
            }
            return Ok(out);
        };
        // Walk the label's values, testing each distinct value once. A failing value
        // that turns out to have many postings is skipped with one seek past them all;
        // seeking on every failing value would cost more than it saves when values are
        // unique per series (pods, ids).
        let mut current: Vec<u8> = Vec::new();
        let mut current_passes = false;
        let mut run = 0usize;
        let mut from = prefix.to_vec();
        'seek: loop {
            for item in self.postings.range(from.as_slice()..) {
                let (key, _) = item?;
                if !key.starts_with(prefix) {
                    break 'seek;
                }
                let (value_end, value, fp) = keys::split_posting(&key, prefix.len())?;
                let value_part = &key[prefix.len()..value_end];
                if run > 0 && current.as_slice() == value_part {
                    run += 1;
                } else {
                    current.clear();
                    current.extend_from_slice(value_part);
                    current_passes = test.matches(value);
                    run = 1;
                }
                if current_passes {
                    out.push(fp);
                } else if run >= SKIP_AFTER_POSTINGS {
                    match keys::prefix_end(&key[..value_end]) {
                        Some(next) => {
                            from = next;
                            run = 0;
                            continue 'seek;
                        }
                        None => break 'seek,
                    }
                }
            }
            break;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether series `fp` has a chunk overlapping `[start, end]`.
    fn has_chunk_in(
        &self,
        tp: &[u8],
        fp: Fingerprint,
        record: &SeriesRecord,
        start: i64,
        end: i64,
    ) -> Result<bool> {
        if record.max_ts < start || record.min_ts > end {
            return Ok(false);
        }
        // The span overlaps the range here. If its first start (or last end) falls inside
        // the range, the chunk it comes from overlaps: no scan needed.
        if record.min_ts >= start || record.max_ts <= end {
            return Ok(true);
        }
        let (from, to) = record.chunk_max_ts_bounds(start, end);
        for item in self.chunks.range(keys::chunk_range(tp, fp, from, to)) {
            let (_, value) = item?;
            if keys::chunk_min_ts(&value)? <= end {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The chunks of series `fp` overlapping `[start, end]`, in `max_ts` order.
    fn chunks_in(
        &self,
        tp: &[u8],
        fp: Fingerprint,
        record: &SeriesRecord,
        start: i64,
        end: i64,
    ) -> Result<Vec<ChunkRef>> {
        let mut out = Vec::new();
        if record.max_ts < start || record.min_ts > end {
            return Ok(out);
        }
        let prefix_len = keys::series_key(tp, fp).len();
        let (from, to) = record.chunk_max_ts_bounds(start, end);
        for item in self.chunks.range(keys::chunk_range(tp, fp, from, to)) {
            let (key, value) = item?;
            if keys::chunk_min_ts(&value)? <= end {
                out.push(keys::decode_chunk(&key, &value, prefix_len)?);
            }
        }
        Ok(out)
    }
}
