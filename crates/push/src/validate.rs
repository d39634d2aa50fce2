//! Steps 3–7 of Loki's push processing (spec §2.2): label parsing and canonical form,
//! `service_name` discovery, stream-label checks, entry checks, structured-metadata
//! normalisation and `detected_level`, with Loki's messages grouped as Loki groups them.

use std::borrow::Cow;
use std::collections::HashMap;

use fenrir_common::{LabelSet, Tenant};
use fenrir_proto::{PushEntry, SharedText};

use crate::labels::{parse_label_pairs, render_pairs};
use crate::level::{detect_level_with, normalize_level, stream_level, DETECTED_LEVEL};
use crate::time::format_rfc3339;
use crate::{PushError, RawPush, Result};

const SERVICE_NAME: &str = "service_name";
const UNKNOWN_SERVICE: &str = "unknown_service";
const NANOS_PER_MINUTE: i64 = 60 * 1_000_000_000;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
const KIB: usize = 1024;

/// Labels that mark Loki's internal streams, which skip discovery and label checks.
const INTERNAL_STREAM_LABELS: [&str; 2] = ["__aggregated_metric__", "__pattern__"];

/// Loki's `limits_config` settings that apply while validating a push. `Default` gives
/// Loki's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationConfig {
    /// Refuse entries older than `reject_old_samples_max_age`.
    pub reject_old_samples: bool,
    /// Oldest accepted entry age, in nanoseconds (168h).
    pub reject_old_samples_max_age_ns: i64,
    /// How far in the future an entry may be, in nanoseconds (10m).
    pub creation_grace_period_ns: i64,
    /// Longest line in bytes; 0 is unlimited (256 KiB).
    pub max_line_size: usize,
    /// Truncate long lines instead of refusing them.
    pub max_line_size_truncate: bool,
    /// Appended to truncated lines.
    pub max_line_size_truncate_identifier: String,
    /// Most labels per stream, `service_name` not counted (15).
    pub max_label_names_per_series: usize,
    /// Longest label name in bytes (1024).
    pub max_label_name_length: usize,
    /// Longest label value in bytes (2048).
    pub max_label_value_length: usize,
    /// Whether entries may carry structured metadata (true).
    pub allow_structured_metadata: bool,
    /// Largest Σ(len(name)+len(value)) of an entry's structured metadata; 0 is unlimited
    /// (64 KiB).
    pub max_structured_metadata_size: usize,
    /// Most structured-metadata pairs per entry; 0 is unlimited (128).
    pub max_structured_metadata_entries_count: usize,
    /// Labels whose value becomes `service_name`, in priority order; empty disables.
    pub discover_service_name: Vec<String>,
    /// Add `detected_level` structured metadata to every entry (true).
    pub discover_log_levels: bool,
    /// Give consecutive entries with equal timestamps and different lines +1 ns (false).
    pub increment_duplicate_timestamp: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            reject_old_samples: true,
            reject_old_samples_max_age_ns: 168 * NANOS_PER_HOUR,
            creation_grace_period_ns: 10 * NANOS_PER_MINUTE,
            max_line_size: 256 * KIB,
            max_line_size_truncate: false,
            max_line_size_truncate_identifier: String::new(),
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 * KIB,
            max_structured_metadata_entries_count: 128,
            discover_service_name: fenrir_config::DEFAULT_DISCOVER_SERVICE_NAME
                .iter()
                .map(|s| s.to_string())
                .collect(),
            discover_log_levels: true,
            increment_duplicate_timestamp: false,
        }
    }
}

impl ValidationConfig {
    /// The validation rules of a tenant's effective `limits_config`.
    pub fn from_limits(l: &fenrir_config::Limits) -> Self {
        let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        ValidationConfig {
            reject_old_samples: l.reject_old_samples,
            reject_old_samples_max_age_ns: nanos(l.reject_old_samples_max_age),
            creation_grace_period_ns: nanos(l.creation_grace_period),
            max_line_size: usize::try_from(l.max_line_size).unwrap_or(usize::MAX),
            max_line_size_truncate: l.max_line_size_truncate,
            max_line_size_truncate_identifier: l.max_line_size_truncate_identifier.clone(),
            max_label_names_per_series: l.max_label_names_per_series,
            max_label_name_length: l.max_label_name_length,
            max_label_value_length: l.max_label_value_length,
            allow_structured_metadata: l.allow_structured_metadata,
            max_structured_metadata_size: usize::try_from(l.max_structured_metadata_size)
                .unwrap_or(usize::MAX),
            max_structured_metadata_entries_count: l.max_structured_metadata_entries_count,
            discover_service_name: l.discover_service_name.clone(),
            discover_log_levels: l.discover_log_levels,
            increment_duplicate_timestamp: l.increment_duplicate_timestamp,
        }
    }
}

/// Why validation dropped a stream or an entry; the names are Loki's `reason` label
/// values of `loki_discarded_samples_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscardReason {
    /// The stream has no labels.
    MissingLabels,
    /// More labels than `max_label_names_per_series`.
    MaxLabelNamesPerSeries,
    /// A label name longer than `max_label_name_length`.
    LabelNameTooLong,
    /// A label value longer than `max_label_value_length`.
    LabelValueTooLong,
    /// The same label name twice.
    DuplicateLabelNames,
    /// Older than `reject_old_samples_max_age`.
    GreaterThanMaxSampleAge,
    /// Newer than now plus `creation_grace_period`.
    TooFarInFuture,
    /// Longer than `max_line_size`.
    LineTooLong,
    /// Structured metadata while `allow_structured_metadata` is off.
    DisallowedStructuredMetadata,
    /// Structured metadata larger than `max_structured_metadata_size`.
    StructuredMetadataTooLarge,
    /// More structured metadata pairs than `max_structured_metadata_entries_count`.
    StructuredMetadataTooMany,
}

impl DiscardReason {
    /// Loki's `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscardReason::MissingLabels => "missing_labels",
            DiscardReason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            DiscardReason::LabelNameTooLong => "label_name_too_long",
            DiscardReason::LabelValueTooLong => "label_value_too_long",
            DiscardReason::DuplicateLabelNames => "duplicate_label_names",
            DiscardReason::GreaterThanMaxSampleAge => "greater_than_max_sample_age",
            DiscardReason::TooFarInFuture => "too_far_in_future",
            DiscardReason::LineTooLong => "line_too_long",
            DiscardReason::DisallowedStructuredMetadata => "disallowed_structured_metadata",
            DiscardReason::StructuredMetadataTooLarge => "structured_metadata_too_large",
            DiscardReason::StructuredMetadataTooMany => "structured_metadata_too_many",
        }
    }
}

/// Entries and bytes (line plus structured metadata) dropped for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discarded {
    /// Why.
    pub reason: DiscardReason,
    /// Entries dropped.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What survived validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidatedPush {
    /// Streams with their accepted entries; input streams with equal canonical labels are
    /// merged, in order of first appearance. Streams left without entries are omitted.
    pub streams: Vec<ValidStream>,
    /// Loki's grouped 400 message when any stream or entry was dropped. The valid rest is
    /// still to be stored; the response is then 400 with this text instead of 204.
    pub errors: Option<String>,
    /// Number of accepted entries.
    pub accepted_entries: usize,
    /// Accepted bytes as Loki's rate limiter counts them: line plus structured metadata
    /// names and values, `detected_level` excluded.
    pub accepted_bytes: usize,
    /// What was dropped, per reason, for `loki_discarded_samples_total`.
    pub discarded: Vec<Discarded>,
}

/// One stream of a validated push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidStream {
    /// The canonical labels, `service_name` included.
    pub labels: LabelSet,
    /// Accepted entries in request order.
    pub entries: Vec<PushEntry>,
}

/// Validates a decoded push as Loki's distributor does (spec §2.2 steps 3–7).
///
/// Whole-request failures are errors: an unparsable label string (400), no streams at all
/// (422), a structured-metadata name that cannot be normalised (400). Dropped streams and
/// entries are reported in [`ValidatedPush::errors`] instead.
pub fn validate(
    push: RawPush,
    tenant: &Tenant,
    cfg: &ValidationConfig,
    now_ns: i64,
) -> Result<ValidatedPush> {
    // Step 3: one bad label string rejects the whole request, before anything else.
    let parsed = push
        .streams
        .iter()
        .map(|s| parse_label_pairs(&s.labels).map_err(PushError::from))
        .collect::<Result<Vec<_>>>()?;
    // Step 5.
    if push.streams.is_empty() {
        return Err(PushError::NoStreams);
    }
    let mut out = ValidatedPush::default();
    let mut errors = ErrorGroups::default();
    let mut discarded: std::collections::BTreeMap<DiscardReason, (u64, u64)> =
        std::collections::BTreeMap::new();
    let mut count = |reason, entries: &[PushEntry]| {
        let slot = discarded.entry(reason).or_default();
        slot.0 += entries.len() as u64;
        slot.1 += entries.iter().map(entry_size).sum::<u64>();
    };
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    for (raw, pairs) in push.streams.into_iter().zip(parsed) {
        if raw.entries.is_empty() {
            continue;
        }
        // Step 4.
        let stream = StreamLabels::new(pairs, cfg);
        // Step 6b.
        if !stream.internal {
            if let Err((reason, msg)) = check_stream_labels(&stream, cfg) {
                tracing::debug!(tenant = %tenant, stream = %stream.text, error = %msg, "stream dropped");
                count(reason, &raw.entries);
                errors.add(msg);
                continue;
            }
        }
        let level_label = stream_level(&stream.labels);
        let mut accepted = Vec::with_capacity(raw.entries.len());
        let mut prev: Option<PrevEntry> = None;
        for mut entry in raw.entries {
            // Step 6a.
            truncate_line(&mut entry.line, cfg);
            // Step 6c.
            if let Err((reason, msg)) = check_entry(&entry, &stream.text, cfg, now_ns) {
                tracing::debug!(tenant = %tenant, stream = %stream.text, error = %msg, "entry dropped");
                count(reason, std::slice::from_ref(&entry));
                errors.add(msg);
                continue;
            }
            // Step 6d.
            normalize_structured_metadata(&mut entry.structured_metadata)?;
            let bytes = entry.line.len() + metadata_size(&entry.structured_metadata);
            if cfg.discover_log_levels && cfg.allow_structured_metadata {
                add_detected_level(level_label, &mut entry);
            }
            if cfg.increment_duplicate_timestamp {
                increment_duplicate(&mut entry, &mut prev);
            }
            out.accepted_bytes += bytes;
            accepted.push(entry);
        }
        if accepted.is_empty() {
            continue;
        }
        out.accepted_entries += accepted.len();
        match index.get(&stream.labels) {
            Some(&i) => out.streams[i].entries.append(&mut accepted),
            None => {
                index.insert(stream.labels.clone(), out.streams.len());
                out.streams.push(ValidStream {
                    labels: stream.labels,
                    entries: accepted,
                });
            }
        }
    }
    out.errors = errors.message();
    out.discarded = discarded
        .into_iter()
        .map(|(reason, (entries, bytes))| Discarded {
            reason,
            entries,
            bytes,
        })
        .collect();
    Ok(out)
}

/// A stream's labels after parsing: canonical set plus what the checks need.
struct StreamLabels {
    /// Canonical labels (sorted, deduplicated, empty values dropped, `service_name`).
    labels: LabelSet,
    /// The sorted pairs with duplicates kept, for the duplicate-name check.
    sorted_pairs: Vec<(String, String)>,
    /// Loki's rendering of `sorted_pairs`, used in messages.
    text: String,
    internal: bool,
}

impl StreamLabels {
    fn new(mut pairs: Vec<(String, String)>, cfg: &ValidationConfig) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        let internal = pairs
            .iter()
            .any(|(k, _)| INTERNAL_STREAM_LABELS.contains(&k.as_str()));
        let has_service_name = pairs.iter().any(|(k, _)| k == SERVICE_NAME);
        if !internal && !has_service_name && !cfg.discover_service_name.is_empty() {
            let value = cfg
                .discover_service_name
                .iter()
                .find_map(|name| pairs.iter().find(|(k, _)| k == name))
                .map_or(UNKNOWN_SERVICE, |(_, v)| v.as_str())
                .to_string();
            pairs.push((SERVICE_NAME.to_string(), value));
        }
        // Stable sort keeps duplicates in input order, as Prometheus' labels.New does.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let text = render_pairs(&pairs);
        StreamLabels {
            labels: LabelSet::from_pairs(pairs.iter().cloned()),
            sorted_pairs: pairs,
            text,
            internal,
        }
    }
}

/// Spec §2.4, in Loki's order; the first failure drops the stream.
fn check_stream_labels(
    stream: &StreamLabels,
    cfg: &ValidationConfig,
) -> std::result::Result<(), (DiscardReason, String)> {
    let pairs = &stream.sorted_pairs;
    let text = &stream.text;
    if pairs.is_empty() {
        return Err((
            DiscardReason::MissingLabels,
            "error at least one label pair is required per stream".into(),
        ));
    }
    let counted = pairs.len() - usize::from(pairs.iter().any(|(k, _)| k == SERVICE_NAME));
    if counted > cfg.max_label_names_per_series {
        return Err((
            DiscardReason::MaxLabelNamesPerSeries,
            format!(
                "entry for stream '{text}' has {counted} label names; limit {}",
                cfg.max_label_names_per_series
            ),
        ));
    }
    let mut last: Option<&str> = None;
    for (name, value) in pairs {
        if name.len() > cfg.max_label_name_length {
            return Err((
                DiscardReason::LabelNameTooLong,
                format!("stream '{text}' has label name too long: '{name}'"),
            ));
        }
        if value.len() > cfg.max_label_value_length {
            return Err((
                DiscardReason::LabelValueTooLong,
                format!("stream '{text}' has label value too long: '{value}'"),
            ));
        }
        if last == Some(name.as_str()) {
            return Err((
                DiscardReason::DuplicateLabelNames,
                format!("stream '{text}' has duplicate label name: '{name}'"),
            ));
        }
        last = Some(name);
    }
    Ok(())
}

/// Spec §2.5, in Loki's order; the first failure drops the entry.
fn check_entry(
    entry: &PushEntry,
    labels: &str,
    cfg: &ValidationConfig,
    now_ns: i64,
) -> std::result::Result<(), (DiscardReason, String)> {
    let oldest = now_ns.saturating_sub(cfg.reject_old_samples_max_age_ns);
    if cfg.reject_old_samples && entry.ts < oldest {
        return Err((
            DiscardReason::GreaterThanMaxSampleAge,
            format!(
                "entry for stream '{labels}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                format_rfc3339(entry.ts),
                format_rfc3339(oldest)
            ),
        ));
    }
    if entry.ts > now_ns.saturating_add(cfg.creation_grace_period_ns) {
        return Err((
            DiscardReason::TooFarInFuture,
            format!(
                "entry for stream '{labels}' has timestamp too new: {}",
                format_rfc3339(entry.ts)
            ),
        ));
    }
    if cfg.max_line_size > 0 && entry.line.len() > cfg.max_line_size {
        return Err((
            DiscardReason::LineTooLong,
            format!(
                "max entry size '{}' bytes exceeded for stream '{labels}' while adding an entry with length '{}' bytes",
                cfg.max_line_size,
                entry.line.len()
            ),
        ));
    }
    let sm = &entry.structured_metadata;
    if sm.is_empty() {
        return Ok(());
    }
    if !cfg.allow_structured_metadata {
        return Err((
            DiscardReason::DisallowedStructuredMetadata,
            format!(
                "stream '{labels}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
            ),
        ));
    }
    let size = metadata_size(sm);
    if cfg.max_structured_metadata_size > 0 && size > cfg.max_structured_metadata_size {
        return Err((
            DiscardReason::StructuredMetadataTooLarge,
            format!(
                "stream '{labels}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.",
                cfg.max_structured_metadata_size
            ),
        ));
    }
    if cfg.max_structured_metadata_entries_count > 0
        && sm.len() > cfg.max_structured_metadata_entries_count
    {
        return Err((
            DiscardReason::StructuredMetadataTooMany,
            format!(
                "stream '{labels}' has too many structured metadata labels: '{}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
                sm.len(),
                cfg.max_structured_metadata_entries_count
            ),
        ));
    }
    Ok(())
}

/// An entry's size as Loki's discard metrics count it: line plus structured metadata.
fn entry_size(entry: &PushEntry) -> u64 {
    entry.bytes() as u64
}

/// Σ(len(name) + len(value)), excluding `detected_level` as Loki's rate limiter does.
fn metadata_size(sm: &[(SharedText, SharedText)]) -> usize {
    sm.iter()
        .filter(|(k, _)| *k != DETECTED_LEVEL)
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// `max_line_size_truncate`: cut to `max − len(identifier)` bytes (at a character
/// boundary) and append the identifier.
fn truncate_line(line: &mut SharedText, cfg: &ValidationConfig) {
    let max = cfg.max_line_size;
    if !cfg.max_line_size_truncate || max == 0 || line.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub(cfg.max_line_size_truncate_identifier.len());
    let text = line.as_str();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut truncated = String::with_capacity(cut + cfg.max_line_size_truncate_identifier.len());
    truncated.push_str(&text[..cut]);
    truncated.push_str(&cfg.max_line_size_truncate_identifier);
    *line = truncated.into();
}

/// Rewrites names to Prometheus-safe ones and strips U+FFFD from values.
fn normalize_structured_metadata(sm: &mut [(SharedText, SharedText)]) -> Result<()> {
    for (name, value) in sm.iter_mut() {
        if let Cow::Owned(n) = normalize_metadata_name(name.as_str())? {
            *name = n.into();
        }
        if value.as_str().contains('\u{fffd}') {
            let mut v = value.as_str().to_owned();
            v.retain(|c| c != '\u{fffd}');
            *value = v.into();
        }
    }
    Ok(())
}

/// OTLP → Prometheus label-name normalisation: each run of characters outside
/// `[A-Za-z0-9]` becomes one `_`, a leading/trailing `__` is kept, a leading digit gets
/// `key_`. Names that end up empty or all underscores are refused.
pub(crate) fn normalize_metadata_name(name: &str) -> Result<Cow<'_, str>> {
    if name.is_empty() {
        return Err(PushError::InvalidStructuredMetadataName(
            "label name is empty".into(),
        ));
    }
    // Fast path for the common `trace_id` shape.
    let simple = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.contains("__");
    if simple {
        return Ok(Cow::Borrowed(name));
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let bytes = name.as_bytes();
    if bytes.len() > 2 && bytes.starts_with(b"__") {
        out.insert(0, '_');
    }
    if bytes.len() > 2 && bytes.ends_with(b"__") {
        out.push('_');
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.trim_matches('_').is_empty() {
        return Err(PushError::InvalidStructuredMetadataName(format!(
            "normalization for label name {name:?} resulted in invalid name {out:?}"
        )));
    }
    Ok(if out == name {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(out)
    })
}

/// Adds `detected_level`, or normalises one the client sent.
fn add_detected_level(stream_level: Option<&str>, entry: &mut PushEntry) {
    if let Some((_, v)) = entry
        .structured_metadata
        .iter_mut()
        .find(|(k, _)| *k == DETECTED_LEVEL)
    {
        if let Some(norm) = normalize_level(v.as_str()) {
            if *v != norm {
                *v = SharedText::from_static(norm);
            }
        }
        return;
    }
    let sm = &entry.structured_metadata;
    let sm_get = |name: &str| sm.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
    if let Some(level) = detect_level_with(stream_level, sm_get, entry.line.as_str()) {
        let level = match level {
            Cow::Borrowed(s) => SharedText::from_static(s),
            Cow::Owned(s) => s.into(),
        };
        entry
            .structured_metadata
            .push((SharedText::from_static(DETECTED_LEVEL), level));
    }
}

/// `increment_duplicate_timestamp`: an entry whose line differs from the previous kept
/// entry's, and whose timestamp equals that entry's (possibly already incremented)
/// timestamp or the last original timestamp, moves to 1 ns after the previous entry, so
/// that push order survives. Equal lines keep their timestamp (they are duplicates).
fn increment_duplicate(entry: &mut PushEntry, prev: &mut Option<PrevEntry>) {
    match prev {
        Some(p)
            if p.line != entry.line && (entry.ts == p.stored_ts || entry.ts == p.original_ts) =>
        {
            entry.ts = p.stored_ts.saturating_add(1);
        }
        Some(p) => p.original_ts = entry.ts,
        None => {}
    }
    let original_ts = prev.as_ref().map_or(entry.ts, |p| p.original_ts);
    *prev = Some(PrevEntry {
        stored_ts: entry.ts,
        original_ts,
        line: entry.line.clone(),
    });
}

/// The previous kept entry of a stream, for [`increment_duplicate`].
struct PrevEntry {
    stored_ts: i64,
    original_ts: i64,
    line: SharedText,
}

/// Validation messages counted by text, in order of first appearance.
#[derive(Default)]
struct ErrorGroups {
    order: Vec<(String, usize)>,
    index: HashMap<String, usize>,
}

impl ErrorGroups {
    fn add(&mut self, msg: String) {
        match self.index.get(&msg) {
            Some(&i) => self.order[i].1 += 1,
            None => {
                self.index.insert(msg.clone(), self.order.len());
                self.order.push((msg, 1));
            }
        }
    }

    /// Loki's grouped text: messages joined with `; `, each prefixed `<n> errors like: `
    /// unless there is exactly one message that occurred once.
    fn message(&self) -> Option<String> {
        match self.order.as_slice() {
            [] => None,
            [(msg, 1)] => Some(msg.clone()),
            groups => Some(
                groups
                    .iter()
                    .map(|(msg, n)| format!("{n} errors like: {msg}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawStream;
    use fenrir_common::Entry;

    /// 2024-07-07T08:00:00Z.
    const NOW: i64 = 1_720_339_200_000_000_000;

    fn push(streams: &[(&str, Vec<Entry>)]) -> RawPush {
        RawPush {
            streams: streams
                .iter()
                .map(|(l, e)| RawStream {
                    labels: l.to_string(),
                    entries: e.iter().cloned().map(PushEntry::from).collect(),
                })
                .collect(),
        }
    }

    fn entry(line: &str) -> Entry {
        Entry::new(NOW, line)
    }

    fn sm_entry(line: &str, sm: &[(&str, &str)]) -> Entry {
        Entry {
            ts: NOW,
            line: line.into(),
            structured_metadata: sm
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn run(p: RawPush, cfg: &ValidationConfig) -> ValidatedPush {
        validate(p, &Tenant::single(), cfg, NOW).unwrap()
    }

    fn no_levels() -> ValidationConfig {
        ValidationConfig {
            discover_log_levels: false,
            ..Default::default()
        }
    }

    /// The single error message of a push holding one stream with `entries`.
    fn error_of(labels: &str, entries: Vec<Entry>, cfg: &ValidationConfig) -> String {
        let out = run(push(&[(labels, entries)]), cfg);
        assert!(out.streams.is_empty(), "{out:?}");
        out.errors.expect("an error")
    }

    #[test]
    fn labels_are_canonical_with_service_name() {
        let out = run(
            push(&[(r#"{job="x",  app="a"}"#, vec![entry("l")])]),
            &no_levels(),
        );
        assert_eq!(
            out.streams[0].labels.to_string(),
            r#"{app="a", job="x", service_name="a"}"#
        );
        assert_eq!(out.errors, None);
        assert_eq!((out.accepted_entries, out.accepted_bytes), (1, 1));
    }

    #[test]
    fn service_name_discovery_follows_list_order() {
        let cases = [
            (
                r#"{job="j", container="c"}"#,
                r#"{container="c", job="j", service_name="c"}"#,
            ),
            (
                r#"{job="j", name="n"}"#,
                r#"{job="j", name="n", service_name="n"}"#,
            ),
            (
                r#"{service="s", app="a"}"#,
                r#"{app="a", service="s", service_name="s"}"#,
            ),
            (
                r#"{service_name="own", app="a"}"#,
                r#"{app="a", service_name="own"}"#,
            ),
            (r#"{app="", job="j"}"#, r#"{job="j", service_name="j"}"#),
            (
                r#"{env="prod"}"#,
                r#"{env="prod", service_name="unknown_service"}"#,
            ),
            ("{}", r#"{service_name="unknown_service"}"#),
            ("", r#"{service_name="unknown_service"}"#),
            (r#"{__pattern__="p"}"#, r#"{__pattern__="p"}"#),
        ];
        for (input, want) in cases {
            let out = run(push(&[(input, vec![entry("l")])]), &no_levels());
            assert_eq!(out.streams[0].labels.to_string(), want, "{input}");
        }
        let off = ValidationConfig {
            discover_service_name: vec![],
            ..no_levels()
        };
        let out = run(push(&[(r#"{app="a"}"#, vec![entry("l")])]), &off);
        assert_eq!(out.streams[0].labels.to_string(), r#"{app="a"}"#);
        assert_eq!(
            error_of("{}", vec![entry("l")], &off),
            "error at least one label pair is required per stream"
        );
    }

    #[test]
    fn one_bad_label_string_rejects_the_whole_request() {
        let p = push(&[(r#"{a="b"}"#, vec![entry("ok")]), (r#"{a="b""#, vec![])]);
        let err = validate(p, &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.to_string(),
            "couldn't parse labels: 1:7: parse error: unexpected end of input inside braces"
        );
        // JSON stream objects with non-identifier names end up here too.
        let p = push(&[(r#"{service.name="x"}"#, vec![entry("ok")])]);
        let err = validate(p, &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("couldn't parse labels: 1:9: parse error: "));
    }

    #[test]
    fn empty_requests() {
        let err = validate(RawPush::default(), &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (
                422,
                "error at least one valid stream is required for ingestion"
            )
        );
        // Streams without entries are skipped silently: nothing stored, no error (204).
        let out = run(
            push(&[(r#"{a="b"}"#, vec![]), ("{}", vec![])]),
            &no_levels(),
        );
        assert_eq!(out, ValidatedPush::default());
    }

    #[test]
    fn stream_label_limits() {
        let many: String = (0..16).map(|i| format!("l{i:02}=\"v\",")).collect();
        let many = format!("{{{many}}}");
        let canonical_many = {
            let pairs: Vec<String> = (0..16).map(|i| format!("l{i:02}=\"v\"")).collect();
            format!("{{{}, service_name=\"unknown_service\"}}", pairs.join(", "))
        };
        assert_eq!(
            error_of(&many, vec![entry("l")], &no_levels()),
            format!("entry for stream '{canonical_many}' has 16 label names; limit 15")
        );
        // service_name is not counted: 15 labels plus service_name pass.
        let fifteen: String = (0..15).map(|i| format!("l{i:02}=\"v\",")).collect();
        let out = run(
            push(&[(&format!("{{{fifteen}}}"), vec![entry("l")])]),
            &no_levels(),
        );
        assert_eq!(out.streams[0].labels.len(), 16);

        let long_name = "n".repeat(1025);
        let labels = format!("{{{long_name}=\"v\"}}");
        assert_eq!(
            error_of(&labels, vec![entry("l")], &no_levels()),
            format!("stream '{{{long_name}=\"v\", service_name=\"unknown_service\"}}' has label name too long: '{long_name}'")
        );
        let long_value = "v".repeat(2049);
        let labels = format!("{{app=\"{long_value}\"}}");
        assert_eq!(
            error_of(&labels, vec![entry("l")], &no_levels()),
            format!("stream '{{app=\"{long_value}\", service_name=\"{long_value}\"}}' has label value too long: '{long_value}'")
        );
        assert_eq!(
            error_of(r#"{b="2", a="1", b="3"}"#, vec![entry("l")], &no_levels()),
            r#"stream '{a="1", b="2", b="3", service_name="unknown_service"}' has duplicate label name: 'b'"#
        );
    }

    #[test]
    fn entry_timestamps() {
        let cfg = no_levels();
        let week = 168 * NANOS_PER_HOUR;
        let too_old = Entry::new(NOW - week - 1, "old");
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![too_old.clone()], &cfg),
            "entry for stream '{app=\"a\", service_name=\"a\"}' has timestamp too old: 2024-06-30T07:59:59Z, oldest acceptable timestamp is: 2024-06-30T08:00:00Z"
        );
        let too_new = Entry::new(NOW + 10 * NANOS_PER_MINUTE + 1, "new");
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![too_new], &cfg),
            "entry for stream '{app=\"a\", service_name=\"a\"}' has timestamp too new: 2024-07-07T08:10:00Z"
        );
        // Both bounds are inclusive.
        let edges = vec![
            Entry::new(NOW - week, "oldest"),
            Entry::new(NOW + 10 * NANOS_PER_MINUTE, "newest"),
        ];
        assert_eq!(
            run(push(&[(r#"{app="a"}"#, edges)]), &cfg).accepted_entries,
            2
        );
        let lenient = ValidationConfig {
            reject_old_samples: false,
            ..no_levels()
        };
        assert_eq!(
            run(push(&[(r#"{app="a"}"#, vec![too_old])]), &lenient).accepted_entries,
            1
        );
    }

    #[test]
    fn line_size_limit_and_truncation() {
        let cfg = ValidationConfig {
            max_line_size: 10,
            ..no_levels()
        };
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![entry("0123456789X")], &cfg),
            "max entry size '10' bytes exceeded for stream '{app=\"a\", service_name=\"a\"}' while adding an entry with length '11' bytes"
        );
        let truncating = ValidationConfig {
            max_line_size_truncate: true,
            max_line_size_truncate_identifier: "…".into(), // 3 bytes
            ..cfg
        };
        let out = run(
            push(&[(r#"{app="a"}"#, vec![entry("0123456789X"), entry("short")])]),
            &truncating,
        );
        assert_eq!(out.errors, None);
        let lines: Vec<&str> = out.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["0123456…", "short"]);
        // Cutting never splits a character.
        let out = run(
            push(&[(r#"{app="a"}"#, vec![entry("ab결제결제")])]),
            &truncating,
        );
        assert_eq!(out.streams[0].entries[0].line, "ab결…");
    }

    #[test]
    fn structured_metadata_limits() {
        let disallowed = ValidationConfig {
            allow_structured_metadata: false,
            ..no_levels()
        };
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![sm_entry("l", &[("k", "v")])], &disallowed),
            "stream '{app=\"a\", service_name=\"a\"}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
        );
        let small = ValidationConfig {
            max_structured_metadata_size: 4,
            max_structured_metadata_entries_count: 2,
            ..no_levels()
        };
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![sm_entry("l", &[("kk", "vvv")])], &small),
            "stream '{app=\"a\", service_name=\"a\"}' has structured metadata too large: '5' bytes, limit: '4' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it."
        );
        let few = ValidationConfig {
            max_structured_metadata_size: 100,
            ..small
        };
        assert_eq!(
            error_of(r#"{app="a"}"#, vec![sm_entry("l", &[("a", "1"), ("b", "2"), ("c", "")])], &few),
            "stream '{app=\"a\", service_name=\"a\"}' has too many structured metadata labels: '3', limit: '2'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it."
        );
    }

    #[test]
    fn structured_metadata_names_are_normalised() {
        let cases = [
            ("trace.id", "trace_id"),
            ("a..b", "a_b"),
            ("a__b", "a_b"),
            ("1x", "key_1x"),
            ("__x__", "__x__"),
            ("___x", "__x"),
            ("_x", "_x"),
            ("x_", "x_"),
            ("http.status-code", "http_status_code"),
            ("결.x", "_x"),
            ("user_agent", "user_agent"),
        ];
        for (name, want) in cases {
            match normalize_metadata_name(name) {
                Ok(got) => assert_eq!(got, want, "{name}"),
                Err(e) => assert_eq!(e.to_string(), "", "{name}: unexpected error"),
            }
        }
    }

    #[test]
    fn unusable_metadata_names_reject_the_request() {
        let p = push(&[(r#"{app="a"}"#, vec![sm_entry("l", &[("..", "v")])])]);
        let err = validate(p, &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.to_string(),
            r#"normalization for label name ".." resulted in invalid name "_""#
        );
        let p = push(&[(r#"{app="a"}"#, vec![sm_entry("l", &[("결제", "v")])])]);
        let err = validate(p, &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"normalization for label name "결제" resulted in invalid name "_""#
        );
        let p = push(&[(r#"{app="a"}"#, vec![sm_entry("l", &[("", "v")])])]);
        let err = validate(p, &Tenant::single(), &no_levels(), NOW).unwrap_err();
        assert_eq!(err.to_string(), "label name is empty");
    }

    #[test]
    fn metadata_normalised_after_validation_and_values_cleaned() {
        let out = run(
            push(&[(
                r#"{app="a"}"#,
                vec![sm_entry("l", &[("trace.id", "a\u{fffd}b")])],
            )]),
            &no_levels(),
        );
        let sm = &out.streams[0].entries[0].structured_metadata;
        assert_eq!(sm, &vec![("trace_id".into(), "ab".into())]);
    }

    #[test]
    fn the_grouped_message_has_the_look_of_a_result() {
        assert!(ErrorGroups::default().message().is_none());
        let mut g = ErrorGroups::default();
        g.add("a".into());
        assert_eq!(g.message().unwrap(), "a");
        g.add("a".into());
        assert_eq!(g.message().unwrap(), "2 errors like: a");
        g.add("b".into());
        assert_eq!(g.message().unwrap(), "2 errors like: a; 1 errors like: b");
    }

    #[test]
    fn partial_success_keeps_good_entries_and_groups_errors() {
        let cfg = ValidationConfig {
            max_line_size: 3,
            ..no_levels()
        };
        let p = push(&[
            (
                r#"{app="a"}"#,
                vec![entry("ok"), entry("long1"), entry("long2")],
            ),
            (r#"{app="b"}"#, vec![entry("toolong")]),
        ]);
        let out = run(p, &cfg);
        assert_eq!(out.streams.len(), 1);
        assert_eq!(out.streams[0].entries, vec![entry("ok")]);
        assert_eq!(
            out.errors.unwrap(),
            "2 errors like: max entry size '3' bytes exceeded for stream '{app=\"a\", service_name=\"a\"}' while adding an entry with length '5' bytes; \
             1 errors like: max entry size '3' bytes exceeded for stream '{app=\"b\", service_name=\"b\"}' while adding an entry with length '7' bytes"
        );
    }

    #[test]
    fn dropped_entries_are_counted_per_reason() {
        let cfg = ValidationConfig {
            max_line_size: 3,
            max_label_names_per_series: 2,
            ..no_levels()
        };
        let p = push(&[
            (
                r#"{app="a"}"#,
                vec![
                    entry("ok"),
                    entry("long1"),
                    sm_entry("long2", &[("k", "v")]),
                ],
            ),
            (r#"{a="1", b="2", c="3"}"#, vec![entry("x"), entry("yy")]),
            (
                r#"{app="b"}"#,
                vec![Entry::new(NOW + 3_600_000_000_000, "future")],
            ),
        ]);
        let out = run(p, &cfg);
        assert_eq!(out.accepted_entries, 1);
        assert_eq!(
            out.discarded,
            vec![
                Discarded {
                    reason: DiscardReason::MaxLabelNamesPerSeries,
                    entries: 2,
                    bytes: 3
                },
                Discarded {
                    reason: DiscardReason::TooFarInFuture,
                    entries: 1,
                    bytes: 6
                },
                Discarded {
                    reason: DiscardReason::LineTooLong,
                    entries: 2,
                    bytes: 12
                },
            ]
        );
        assert_eq!(DiscardReason::LineTooLong.as_str(), "line_too_long");
    }

    #[test]
    fn rules_come_from_a_tenants_limits() {
        let mut limits = fenrir_config::Limits::default();
        limits.max_line_size = 10;
        limits.max_line_size_truncate = true;
        limits.max_line_size_truncate_identifier = "…".into();
        let cfg = ValidationConfig::from_limits(&limits);
        assert_eq!(cfg.max_line_size, 10);
        assert!(cfg.max_line_size_truncate);
        let defaults = ValidationConfig::from_limits(&fenrir_config::Limits::default());
        assert_eq!(
            defaults,
            ValidationConfig::default(),
            "limits_config's defaults are the validation defaults"
        );
        let out = run(
            push(&[(r#"{app="a"}"#, vec![entry("0123456789abc")])]),
            &cfg,
        );
        assert_eq!(out.streams[0].entries[0].line, "0123456…");
        assert!(out.errors.is_none());
    }

    #[test]
    fn equal_canonical_labels_merge() {
        let p = push(&[
            (r#"{b="2", a="1"}"#, vec![entry("one")]),
            (r#"{c="3"}"#, vec![entry("other")]),
            (r#"{a="1",b="2",}"#, vec![entry("two")]),
        ]);
        let out = run(p, &no_levels());
        assert_eq!(out.streams.len(), 2);
        let lines: Vec<&str> = out.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(out.accepted_entries, 3);
    }

    #[test]
    fn detected_level_is_added_and_not_counted_as_bytes() {
        let out = run(
            push(&[(
                r#"{app="a"}"#,
                vec![
                    entry(r#"{"level":"WARN"}"#),
                    sm_entry("x", &[("detected_level", "ERROR")]),
                    sm_entry("plain", &[("k", "v")]),
                ],
            )]),
            &ValidationConfig::default(),
        );
        let sm: Vec<_> = out.streams[0]
            .entries
            .iter()
            .map(|e| e.structured_metadata.clone())
            .collect();
        let pair = |k: &str, v: &str| (SharedText::from(k), SharedText::from(v));
        assert_eq!(
            sm,
            vec![
                vec![pair("detected_level", "warn")],
                vec![pair("detected_level", "error")],
                vec![pair("k", "v"), pair("detected_level", "unknown")],
            ]
        );
        assert_eq!(out.accepted_bytes, 16 + 1 + 5 + 2);
        let off = ValidationConfig {
            allow_structured_metadata: false,
            ..Default::default()
        };
        let out = run(push(&[(r#"{app="a"}"#, vec![entry("error")])]), &off);
        assert!(out.streams[0].entries[0].structured_metadata.is_empty());
    }

    #[test]
    fn duplicate_timestamps_can_be_incremented() {
        let cfg = ValidationConfig {
            increment_duplicate_timestamp: true,
            ..no_levels()
        };
        let entries = vec![
            entry("a"),
            entry("b"),
            entry("c"),
            entry("c"),
            Entry::new(NOW + 5, "d"),
            Entry::new(NOW + 5, "e"),
        ];
        let out = run(push(&[(r#"{app="a"}"#, entries.clone())]), &cfg);
        let ts: Vec<i64> = out.streams[0].entries.iter().map(|e| e.ts - NOW).collect();
        assert_eq!(ts, [0, 1, 2, 0, 5, 6]);
        let out = run(push(&[(r#"{app="a"}"#, entries)]), &no_levels());
        let ts: Vec<i64> = out.streams[0].entries.iter().map(|e| e.ts - NOW).collect();
        assert_eq!(ts, [0, 0, 0, 0, 5, 5]);
    }
}
