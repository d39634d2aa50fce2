//! Steps 3–7 of Loki's push processing (spec §2.2): label parsing and canonical form,
//! `service_name` discovery, stream-label checks, entry checks, structured-metadata
//! normalisation and `detected_level`, with Loki's messages grouped as Loki groups them.

use std::borrow::Cow;
use std::collections::HashMap;

use fenrir_common::{Entry, LabelSet, Tenant};

use crate::labels::{parse_label_pairs, render_pairs};
use crate::level::{detect_level, normalize_level, DETECTED_LEVEL};
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
            discover_service_name: [
                "service",
                "app",
                "application",
                "app_name",
                "name",
                "app_kubernetes_io_name",
                "container",
                "container_name",
                "k8s_container_name",
                "component",
                "workload",
                "job",
                "k8s_job_name",
            ]
            .map(String::from)
            .to_vec(),
            discover_log_levels: true,
            increment_duplicate_timestamp: false,
        }
    }
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
}

/// One stream of a validated push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidStream {
    /// The canonical labels, `service_name` included.
    pub labels: LabelSet,
    /// Accepted entries in request order.
    pub entries: Vec<Entry>,
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
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    for (raw, pairs) in push.streams.into_iter().zip(parsed) {
        if raw.entries.is_empty() {
            continue;
        }
        // Step 4.
        let stream = StreamLabels::new(pairs, cfg);
        // Step 6b.
        if !stream.internal {
            if let Err(msg) = check_stream_labels(&stream, cfg) {
                tracing::debug!(tenant = %tenant, stream = %stream.text, error = %msg, "stream dropped");
                errors.add(msg);
                continue;
            }
        }
        let mut accepted = Vec::with_capacity(raw.entries.len());
        let mut prev: Option<(i64, String)> = None;
        for mut entry in raw.entries {
            // Step 6a.
            truncate_line(&mut entry.line, cfg);
            // Step 6c.
            if let Err(msg) = check_entry(&entry, &stream.text, cfg, now_ns) {
                tracing::debug!(tenant = %tenant, stream = %stream.text, error = %msg, "entry dropped");
                errors.add(msg);
                continue;
            }
            // Step 6d.
            normalize_structured_metadata(&mut entry.structured_metadata)?;
            let bytes = entry.line.len() + metadata_size(&entry.structured_metadata);
            if cfg.discover_log_levels && cfg.allow_structured_metadata {
                add_detected_level(&stream.labels, &mut entry);
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
) -> std::result::Result<(), String> {
    let pairs = &stream.sorted_pairs;
    let text = &stream.text;
    if pairs.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let counted = pairs.len() - usize::from(pairs.iter().any(|(k, _)| k == SERVICE_NAME));
    if counted > cfg.max_label_names_per_series {
        return Err(format!(
            "entry for stream '{text}' has {counted} label names; limit {}",
            cfg.max_label_names_per_series
        ));
    }
    let mut last: Option<&str> = None;
    for (name, value) in pairs {
        if name.len() > cfg.max_label_name_length {
            return Err(format!("stream '{text}' has label name too long: '{name}'"));
        }
        if value.len() > cfg.max_label_value_length {
            return Err(format!(
                "stream '{text}' has label value too long: '{value}'"
            ));
        }
        if last == Some(name.as_str()) {
            return Err(format!(
                "stream '{text}' has duplicate label name: '{name}'"
            ));
        }
        last = Some(name);
    }
    Ok(())
}

/// Spec §2.5, in Loki's order; the first failure drops the entry.
fn check_entry(
    entry: &Entry,
    labels: &str,
    cfg: &ValidationConfig,
    now_ns: i64,
) -> std::result::Result<(), String> {
    let oldest = now_ns.saturating_sub(cfg.reject_old_samples_max_age_ns);
    if cfg.reject_old_samples && entry.ts < oldest {
        return Err(format!(
            "entry for stream '{labels}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
            format_rfc3339(entry.ts),
            format_rfc3339(oldest)
        ));
    }
    if entry.ts > now_ns.saturating_add(cfg.creation_grace_period_ns) {
        return Err(format!(
            "entry for stream '{labels}' has timestamp too new: {}",
            format_rfc3339(entry.ts)
        ));
    }
    if cfg.max_line_size > 0 && entry.line.len() > cfg.max_line_size {
        return Err(format!(
            "max entry size '{}' bytes exceeded for stream '{labels}' while adding an entry with length '{}' bytes",
            cfg.max_line_size,
            entry.line.len()
        ));
    }
    let sm = &entry.structured_metadata;
    if sm.is_empty() {
        return Ok(());
    }
    if !cfg.allow_structured_metadata {
        return Err(format!(
            "stream '{labels}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
        ));
    }
    let size = metadata_size(sm);
    if cfg.max_structured_metadata_size > 0 && size > cfg.max_structured_metadata_size {
        return Err(format!(
            "stream '{labels}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.",
            cfg.max_structured_metadata_size
        ));
    }
    if cfg.max_structured_metadata_entries_count > 0
        && sm.len() > cfg.max_structured_metadata_entries_count
    {
        return Err(format!(
            "stream '{labels}' has too many structured metadata labels: '{}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
            sm.len(),
            cfg.max_structured_metadata_entries_count
        ));
    }
    Ok(())
}

/// Σ(len(name) + len(value)), excluding `detected_level` as Loki's rate limiter does.
fn metadata_size(sm: &[(String, String)]) -> usize {
    sm.iter()
        .filter(|(k, _)| k != DETECTED_LEVEL)
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// `max_line_size_truncate`: cut to `max − len(identifier)` bytes (at a character
/// boundary) and append the identifier.
fn truncate_line(line: &mut String, cfg: &ValidationConfig) {
    let max = cfg.max_line_size;
    if !cfg.max_line_size_truncate || max == 0 || line.len() <= max {
        return;
    }
    let mut cut = max.saturating_sub(cfg.max_line_size_truncate_identifier.len());
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str(&cfg.max_line_size_truncate_identifier);
}

/// Rewrites names to Prometheus-safe ones and strips U+FFFD from values.
fn normalize_structured_metadata(sm: &mut [(String, String)]) -> Result<()> {
    for (name, value) in sm.iter_mut() {
        if let Cow::Owned(n) = normalize_metadata_name(name)? {
            *name = n;
        }
        if value.contains('\u{fffd}') {
            value.retain(|c| c != '\u{fffd}');
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
fn add_detected_level(stream: &LabelSet, entry: &mut Entry) {
    if let Some((_, v)) = entry
        .structured_metadata
        .iter_mut()
        .find(|(k, _)| k == DETECTED_LEVEL)
    {
        if let Some(norm) = normalize_level(v) {
            if v != norm {
                *v = norm.to_string();
            }
        }
        return;
    }
    if let Some(level) = detect_level(stream, &entry.structured_metadata, &entry.line) {
        entry
            .structured_metadata
            .push((DETECTED_LEVEL.to_string(), level));
    }
}

/// `increment_duplicate_timestamp`: an entry with the previous entry's timestamp and a
/// different line moves 1 ns later, so that order survives.
fn increment_duplicate(entry: &mut Entry, prev: &mut Option<(i64, String)>) {
    if let Some((ts, line)) = prev.as_ref() {
        if entry.ts == *ts && entry.line != *line {
            entry.ts = ts.saturating_add(1);
        }
    }
    match prev {
        Some((ts, line)) => {
            *ts = entry.ts;
            line.clone_from(&entry.line);
        }
        None => *prev = Some((entry.ts, entry.line.clone())),
    }
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
