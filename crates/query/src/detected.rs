//! Detected labels and fields (Logs Drilldown): which stream labels are worth breaking
//! down by, and which fields the lines carry — structured metadata, JSON keys, logfmt
//! pairs — with a value type and a cardinality, from a sample of recent lines.

use std::collections::{BTreeMap, HashSet};

use fenrir_common::LabelSet;

use crate::LogResult;

/// Distinct values remembered per field; past it cardinality stops growing.
const MAX_TRACKED_VALUES: usize = 10_000;
/// Nesting depth followed in JSON lines.
const MAX_JSON_DEPTH: usize = 16;
/// Stream labels shown even with one value or many (Loki's fixed set).
const STATIC_LABELS: [&str; 5] = ["cluster", "namespace", "instance", "pod", "service_name"];
/// Above this cardinality a non-static label is not useful to break down by.
const MAX_LABEL_CARDINALITY: usize = 50;

/// A stream label and its number of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedLabel {
    /// The label name.
    pub label: String,
    /// Distinct values over the selected streams.
    pub cardinality: u64,
}

/// Value type of a detected field, Loki's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Anything else.
    String,
    /// Integer.
    Int,
    /// Floating-point number.
    Float,
    /// `true`/`false` and Go's other boolean spellings.
    Boolean,
    /// A Go duration such as `150ms` or `1h2m`.
    Duration,
    /// A byte size such as `12KB` or `3 MiB`.
    Bytes,
}

impl FieldType {
    /// Loki's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
        }
    }

    /// The type of one value: Loki tries int, float, boolean, duration, bytes, in order.
    pub fn of(value: &str) -> FieldType {
        if value.parse::<i64>().is_ok() {
            FieldType::Int
        } else if is_go_float(value) {
            FieldType::Float
        } else if matches!(
            value,
            "1" | "t"
                | "T"
                | "TRUE"
                | "true"
                | "True"
                | "0"
                | "f"
                | "F"
                | "FALSE"
                | "false"
                | "False"
        ) {
            FieldType::Boolean
        } else if is_go_duration(value) {
            FieldType::Duration
        } else if is_byte_size(value) {
            FieldType::Bytes
        } else {
            FieldType::String
        }
    }

    /// The type of a field whose values had types `self` and `other`.
    fn widen(self, other: FieldType) -> FieldType {
        match (self, other) {
            (a, b) if a == b => a,
            (FieldType::Int, FieldType::Float) | (FieldType::Float, FieldType::Int) => {
                FieldType::Float
            }
            _ => FieldType::String,
        }
    }
}

/// Where a field came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldParser {
    /// A JSON key of the line.
    Json,
    /// A logfmt pair of the line.
    Logfmt,
}

impl FieldParser {
    /// Loki's parser name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldParser::Json => "json",
            FieldParser::Logfmt => "logfmt",
        }
    }
}

/// A field found in the sampled lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedField {
    /// The label name a parser would give it.
    pub label: String,
    /// Its value type.
    pub field_type: FieldType,
    /// Distinct values seen (capped).
    pub cardinality: u64,
    /// The parsers that produce it; empty for structured metadata (Loki answers `null`).
    pub parsers: Vec<FieldParser>,
    /// For JSON fields, the key path in the line.
    pub json_path: Vec<String>,
}

#[derive(Default)]
struct FieldAcc {
    field_type: Option<FieldType>,
    values: HashSet<String>,
    parsers: Vec<FieldParser>,
    json_path: Vec<String>,
}

impl FieldAcc {
    fn add(&mut self, value: &str, parser: Option<FieldParser>, path: &[String]) {
        let t = FieldType::of(value);
        self.field_type = Some(self.field_type.map_or(t, |old| old.widen(t)));
        if self.values.len() < MAX_TRACKED_VALUES && !self.values.contains(value) {
            self.values.insert(value.to_string());
        }
        if let Some(p) = parser {
            if !self.parsers.contains(&p) {
                self.parsers.push(p);
                self.parsers.sort();
            }
            if p == FieldParser::Json && self.json_path.is_empty() {
                self.json_path = path.to_vec();
            }
        }
    }
}

/// One field occurrence: name, value, parser (`None`: structured metadata), JSON path.
type FieldVisit<'a> = dyn FnMut(&str, &str, Option<FieldParser>, &[String]) + 'a;

/// Visits the fields of every returned entry.
fn visit_fields(result: &LogResult, visit: &mut FieldVisit<'_>) {
    for stream in &result.streams {
        for e in &stream.entries {
            for (k, v) in &e.structured_metadata {
                visit(k, v, None, &[]);
            }
            parse_line(&e.line, &stream.labels, visit);
        }
    }
}

/// The fields of sampled lines, most frequent names first is not needed: sorted by name,
/// at most `limit`.
pub(crate) fn detect_fields(result: &LogResult, limit: usize) -> Vec<DetectedField> {
    let mut acc: BTreeMap<String, FieldAcc> = BTreeMap::new();
    visit_fields(result, &mut |name, value, parser, path| {
        acc.entry(name.to_string())
            .or_default()
            .add(value, parser, path);
    });
    acc.into_iter()
        .take(limit)
        .map(|(label, a)| DetectedField {
            label,
            field_type: a.field_type.unwrap_or(FieldType::String),
            cardinality: a.values.len() as u64,
            parsers: a.parsers,
            json_path: a.json_path,
        })
        .collect()
}

/// Distinct values of field `name` in the sampled lines, sorted, at most `limit`.
pub(crate) fn field_values(result: &LogResult, name: &str, limit: usize) -> Vec<String> {
    let mut values: std::collections::BTreeSet<String> = Default::default();
    visit_fields(result, &mut |field, value, _, _| {
        if field == name && !value.is_empty() {
            values.insert(value.to_string());
        }
    });
    values.into_iter().take(limit).collect()
}

/// Labels of `series` worth breaking down by, with their cardinality, sorted by name.
pub(crate) fn detect_labels(series: &[LabelSet]) -> Vec<DetectedLabel> {
    let mut values: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for labels in series {
        for (k, v) in labels.iter() {
            values.entry(k).or_default().insert(v);
        }
    }
    values
        .into_iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .filter(|(name, vals)| {
            STATIC_LABELS.contains(name) || (vals.len() > 1 && vals.len() <= MAX_LABEL_CARDINALITY)
        })
        .map(|(name, vals)| DetectedLabel {
            label: name.to_string(),
            cardinality: vals.len() as u64,
        })
        .collect()
}

/// A label name as Loki's parsers make it: invalid characters become `_`, and a name
/// that collides with a stream label gets `_extracted`.
fn field_name(raw: &str, stream: &LabelSet) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if stream.get(&name).is_some() {
        name.push_str("_extracted");
    }
    name
}

/// Parses a line as a JSON object, or else as logfmt, and visits its fields.
fn parse_line(line: &str, stream: &LabelSet, visit: &mut FieldVisit<'_>) {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) {
            let mut path = Vec::new();
            walk_json(&map, &mut path, stream, visit);
            return;
        }
    }
    for (k, v) in logfmt_pairs(line) {
        if !k.is_empty() {
            visit(&field_name(k, stream), &v, Some(FieldParser::Logfmt), &[]);
        }
    }
}

fn walk_json(
    map: &serde_json::Map<String, serde_json::Value>,
    path: &mut Vec<String>,
    stream: &LabelSet,
    visit: &mut FieldVisit<'_>,
) {
    if path.len() >= MAX_JSON_DEPTH {
        return;
    }
    for (key, value) in map {
        path.push(key.clone());
        let text = match value {
            serde_json::Value::Object(inner) => {
                walk_json(inner, path, stream, visit);
                None
            }
            // Loki's JSON parser skips arrays and nulls.
            serde_json::Value::Array(_) | serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        if let Some(text) = text {
            let name = field_name(&path.join("_"), stream);
            visit(&name, &text, Some(FieldParser::Json), path);
        }
        path.pop();
    }
}

/// `key=value` pairs of a logfmt line (values may be double-quoted with escapes). Bare
/// words are not fields.
fn logfmt_pairs(line: &str) -> Vec<(&str, String)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        let key = &line[key_start..i];
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        i += 1;
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut escaped = false;
            let start = i;
            while i < bytes.len() {
                let b = bytes[i];
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    break;
                }
                i += 1;
            }
            value.push_str(&unescape(&line[start..i.min(bytes.len())]));
            i += 1;
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            value.push_str(&line[start..i]);
        }
        out.push((key, value));
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Go's `strconv.ParseFloat` on plain decimal and exponent forms.
fn is_go_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return true;
    }
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.parse::<f64>().is_ok()
}

/// Go's `time.ParseDuration`: `[-+]` then one or more `<decimal><unit>`.
fn is_go_duration(s: &str) -> bool {
    let mut rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num == 0 || rest[..num].bytes().all(|b| b == b'.') {
            return false;
        }
        rest = &rest[num..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

/// A humanized byte size: a number, optional space, a unit such as `B`, `KB`, `KiB`, `M`.
fn is_byte_size(s: &str) -> bool {
    let num = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    if num == 0 || s[..num].parse::<f64>().is_err() {
        return false;
    }
    let unit = s[num..].trim_start().to_ascii_lowercase();
    const UNITS: [&str; 22] = [
        "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib", "p", "pb",
        "pib", "e", "eb", "eib", "ki", "mi", "gi",
    ];
    UNITS.contains(&unit.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResultEntry, ResultStream};

    fn result(labels: &[(&str, &str)], lines: &[(&str, &[(&str, &str)])]) -> LogResult {
        LogResult {
            streams: vec![ResultStream {
                labels: LabelSet::from_pairs(labels.iter().copied()),
                entries: lines
                    .iter()
                    .enumerate()
                    .map(|(i, (line, md))| ResultEntry {
                        ts: i as i64,
                        line: line.to_string(),
                        structured_metadata: md
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        parsed: Vec::new(),
                    })
                    .collect(),
            }],
            ..LogResult::default()
        }
    }

    #[test]
    fn types() {
        assert_eq!(FieldType::of("42"), FieldType::Int);
        assert_eq!(FieldType::of("-4.5"), FieldType::Float);
        assert_eq!(FieldType::of("true"), FieldType::Boolean);
        assert_eq!(FieldType::of("1h2m3.5s"), FieldType::Duration);
        assert_eq!(FieldType::of("150ms"), FieldType::Duration);
        assert_eq!(FieldType::of("12KB"), FieldType::Bytes);
        assert_eq!(FieldType::of("3 MiB"), FieldType::Bytes);
        assert_eq!(FieldType::of("GET"), FieldType::String);
        assert_eq!(FieldType::Int.widen(FieldType::Float), FieldType::Float);
        assert_eq!(FieldType::Int.widen(FieldType::Duration), FieldType::String);
    }

    #[test]
    fn fields_from_json_logfmt_and_metadata() {
        let r = result(
            &[("app", "api"), ("level", "x")],
            &[
                (
                    r#"{"user":{"id":7,"name":"bob"},"took":"15ms","tags":["a"],"level":"info"}"#,
                    &[("trace_id", "abc")],
                ),
                (
                    r#"{"user":{"id":8,"name":"al"},"took":"1.5s"}"#,
                    &[("trace_id", "def")],
                ),
                (r#"level=warn msg="slow query" status=200 size=12KB"#, &[]),
                ("plain words only", &[]),
            ],
        );
        let fields = detect_fields(&r, 100);
        let by_name: BTreeMap<&str, &DetectedField> =
            fields.iter().map(|f| (f.label.as_str(), f)).collect();
        let names: Vec<&str> = by_name.keys().copied().collect();
        assert_eq!(
            names,
            [
                "level_extracted",
                "msg",
                "size",
                "status",
                "took",
                "trace_id",
                "user_id",
                "user_name"
            ]
        );
        assert_eq!(by_name["trace_id"].parsers, Vec::<FieldParser>::new());
        assert_eq!(by_name["trace_id"].cardinality, 2);
        assert_eq!(by_name["user_id"].field_type, FieldType::Int);
        assert_eq!(by_name["user_id"].json_path, ["user", "id"]);
        assert_eq!(by_name["took"].field_type, FieldType::Duration);
        assert_eq!(by_name["size"].field_type, FieldType::Bytes);
        assert_eq!(by_name["msg"].parsers, [FieldParser::Logfmt]);
        assert_eq!(
            by_name["level_extracted"].parsers,
            [FieldParser::Json, FieldParser::Logfmt]
        );
        assert_eq!(field_values(&r, "user_name", 10), ["al", "bob"]);
        assert_eq!(field_values(&r, "msg", 10), ["slow query"]);
        assert_eq!(detect_fields(&r, 2).len(), 2);
    }

    #[test]
    fn labels_worth_breaking_down() {
        let series: Vec<LabelSet> = (0..60)
            .map(|i| {
                LabelSet::from_pairs([
                    ("app", if i % 2 == 0 { "a" } else { "b" }.to_string()),
                    ("job", "one".to_string()),
                    ("pod", format!("p{i}")),
                    ("id", format!("{i}")),
                ])
            })
            .collect();
        let got: Vec<(String, u64)> = detect_labels(&series)
            .into_iter()
            .map(|l| (l.label, l.cardinality))
            .collect();
        assert_eq!(got, [("app".to_string(), 2), ("pod".to_string(), 60)]);
    }

    #[test]
    fn logfmt_quoting() {
        let pairs = logfmt_pairs(r#"a=1 b="x \"y\"" c= d"#);
        assert_eq!(
            pairs,
            [
                ("a", "1".to_string()),
                ("b", "x \"y\"".to_string()),
                ("c", String::new())
            ]
        );
    }
}
