//! OTLP logs ingestion (`POST /otlp/v1/logs`, spec §2.8): an `ExportLogsServiceRequest`
//! in protobuf or OTLP/JSON becomes a [`RawPush`] that then goes through [`crate::validate`]
//! like any other push.
//!
//! One stream per `ResourceLogs`: resource attributes in Loki's default index list become
//! stream labels, every other attribute (resource, scope, record) becomes structured
//! metadata, names normalised as Loki does (`service.name` → `service_name`).

use std::fmt::Write;

use bytes::Bytes;
use fenrir_common::{Entry, LabelSet};
use fenrir_proto::otlp::{
    any_value::Value, AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope,
    KeyValue, KeyValueList, LogRecord, Resource, ResourceLogs, ScopeLogs,
};
use fenrir_proto::Message;
use fenrir_proto::PushEntry;

use crate::decode::{
    check_counts, decode_content, for_each_len_field, parse_media_type, ItemCounts,
};
use crate::validate::normalize_metadata_name;
use crate::{DecodeLimits, PushError, RawPush, RawStream, Result};

/// Resource attributes Loki indexes as stream labels by default
/// (`distributor.otlp_config.default_resource_attributes_as_index_labels`).
const INDEX_LABEL_ATTRIBUTES: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Decodes an OTLP logs request. `now_ns` stamps records that carry neither a time nor an
/// observed time, as Loki does. Encodings: none, `gzip`, `zstd` (no `deflate`, no `lz4`).
pub fn decode_otlp(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &DecodeLimits,
    now_ns: i64,
) -> Result<RawPush> {
    let decoded = decode_content(content_encoding, body, limits, true)?;
    let unsupported = || PushError::UnsupportedContentType(content_type.unwrap_or("").to_string());
    let media_type = parse_media_type(content_type).map_err(|_| unsupported())?;
    let request = match media_type.as_str() {
        "application/x-protobuf" => {
            check_counts(count_wire_items(&decoded), limits)?;
            ExportLogsServiceRequest::decode(&decoded[..])
                .map_err(|e| PushError::InvalidBody(format!("proto: {e}")))?
        }
        "application/json" => json::decode(&decoded)?,
        _ => return Err(unsupported()),
    };
    // Every record gets its resource's and scope's attributes: a few bytes of attributes
    // shared by many empty records would become far more pairs than the body holds.
    check_counts(count_output_items(&request), limits)?;
    let mut streams = Vec::with_capacity(request.resource_logs.len());
    for resource_logs in &request.resource_logs {
        if let Some(stream) = resource_stream(resource_logs, now_ns)? {
            streams.push(stream);
        }
    }
    Ok(RawPush { streams })
}

/// Counts an `ExportLogsServiceRequest` on the wire, before prost allocates it: resource
/// and scope logs as streams, log records as entries, attributes of resources, scopes and
/// records as pairs (values nested in attributes are not counted).
fn count_wire_items(buf: &[u8]) -> ItemCounts {
    let mut counts = ItemCounts::default();
    let attributes = |msg: &[u8], field: u64, counts: &mut ItemCounts| {
        for_each_len_field(msg, |f, _| counts.pairs += usize::from(f == field));
    };
    for_each_len_field(buf, |f, resource_logs| {
        if f != 1 {
            return;
        }
        counts.streams += 1;
        for_each_len_field(resource_logs, |f, msg| match f {
            1 => attributes(msg, 1, &mut counts),
            2 => {
                counts.streams += 1;
                for_each_len_field(msg, |f, msg| match f {
                    1 => attributes(msg, 3, &mut counts),
                    2 => {
                        counts.entries += 1;
                        attributes(msg, 6, &mut counts);
                    }
                    _ => {}
                });
            }
            _ => {}
        });
    });
    counts
}

/// Streams, entries and structured-metadata pairs the decoded request will become
/// (an upper bound: every optional record field counted as present).
fn count_output_items(request: &ExportLogsServiceRequest) -> ItemCounts {
    /// Record fields that may become pairs besides attributes (observed timestamp,
    /// severity number and text, dropped count, flags, trace and span ids).
    const RECORD_FIELDS: usize = 7;
    fn leaves(kvs: &[KeyValue]) -> usize {
        kvs.iter()
            .map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::KvlistValue(list)) => leaves(&list.values),
                    _ => 1,
                },
            )
            .fold(0, usize::saturating_add)
    }
    let mut counts = ItemCounts {
        streams: request.resource_logs.len(),
        ..ItemCounts::default()
    };
    for rl in &request.resource_logs {
        let resource = rl.resource.as_ref().map_or(0, |r| leaves(&r.attributes));
        for sl in &rl.scope_logs {
            let scope = sl.scope.as_ref().map_or(0, |s| leaves(&s.attributes) + 3);
            let shared = resource.saturating_add(scope);
            let records = sl.log_records.len();
            counts.entries = counts.entries.saturating_add(records);
            let own = sl
                .log_records
                .iter()
                .map(|r| leaves(&r.attributes).saturating_add(RECORD_FIELDS))
                .fold(0, usize::saturating_add);
            counts.pairs = counts
                .pairs
                .saturating_add(records.saturating_mul(shared))
                .saturating_add(own);
        }
    }
    counts
}

/// The stream of one `ResourceLogs`, or `None` when it holds no records.
fn resource_stream(rl: &ResourceLogs, now_ns: i64) -> Result<Option<RawStream>> {
    let record_count: usize = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
    if record_count == 0 {
        return Ok(None);
    }
    let mut labels = Vec::new();
    let mut resource_sm = Vec::new();
    let attributes = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
    for kv in attributes {
        let target = if INDEX_LABEL_ATTRIBUTES.contains(&kv.key.as_str()) {
            &mut labels
        } else {
            &mut resource_sm
        };
        flatten(kv, "", target)?;
    }
    let mut entries = Vec::with_capacity(record_count);
    for scope_logs in &rl.scope_logs {
        let mut scope_sm = resource_sm.clone();
        if let Some(scope) = &scope_logs.scope {
            scope_metadata(scope, &mut scope_sm)?;
        }
        for record in &scope_logs.log_records {
            entries.push(record_entry(record, &scope_sm, now_ns)?);
        }
    }
    Ok(Some(RawStream {
        labels: LabelSet::from_pairs(labels).to_string(),
        entries,
    }))
}

fn scope_metadata(scope: &InstrumentationScope, sm: &mut Vec<(String, String)>) -> Result<()> {
    for kv in &scope.attributes {
        flatten(kv, "", sm)?;
    }
    if !scope.name.is_empty() {
        sm.push(("scope_name".into(), scope.name.clone()));
    }
    if !scope.version.is_empty() {
        sm.push(("scope_version".into(), scope.version.clone()));
    }
    if scope.dropped_attributes_count != 0 {
        sm.push((
            "scope_dropped_attributes_count".into(),
            scope.dropped_attributes_count.to_string(),
        ));
    }
    Ok(())
}

fn record_entry(rec: &LogRecord, scope_sm: &[(String, String)], now_ns: i64) -> Result<PushEntry> {
    let nanos = |v: u64| {
        i64::try_from(v).map_err(|_| {
            PushError::InvalidBody(format!("timestamp {v} does not fit in int64 nanoseconds"))
        })
    };
    let ts = match (rec.time_unix_nano, rec.observed_time_unix_nano) {
        (0, 0) => now_ns,
        (0, observed) => nanos(observed)?,
        (t, _) => nanos(t)?,
    };
    let mut sm = scope_sm.to_vec();
    for kv in &rec.attributes {
        flatten(kv, "", &mut sm)?;
    }
    if rec.time_unix_nano != 0 && rec.observed_time_unix_nano != 0 {
        sm.push((
            "observed_timestamp".into(),
            rec.observed_time_unix_nano.to_string(),
        ));
    }
    if rec.severity_number != 0 {
        sm.push(("severity_number".into(), rec.severity_number.to_string()));
    }
    if !rec.severity_text.is_empty() {
        sm.push(("severity_text".into(), rec.severity_text.clone()));
    }
    if rec.dropped_attributes_count != 0 {
        sm.push((
            "dropped_attributes_count".into(),
            rec.dropped_attributes_count.to_string(),
        ));
    }
    if rec.flags != 0 {
        sm.push(("flags".into(), rec.flags.to_string()));
    }
    if !rec.trace_id.is_empty() {
        sm.push(("trace_id".into(), hex(&rec.trace_id)));
    }
    if !rec.span_id.is_empty() {
        sm.push(("span_id".into(), hex(&rec.span_id)));
    }
    Ok(Entry {
        ts,
        line: rec.body.as_ref().map(as_string).unwrap_or_default(),
        structured_metadata: sm,
    }
    .into())
}

/// Appends an attribute as normalised `(name, value)` pairs; map values are flattened
/// into `parent_child` names.
fn flatten(kv: &KeyValue, prefix: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    let key = if prefix.is_empty() {
        kv.key.clone()
    } else {
        format!("{prefix}_{}", kv.key)
    };
    if let Some(Value::KvlistValue(list)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        for child in &list.values {
            flatten(child, &key, out)?;
        }
        return Ok(());
    }
    let name = normalize_metadata_name(&key)?.into_owned();
    out.push((name, kv.value.as_ref().map(as_string).unwrap_or_default()));
    Ok(())
}

/// pdata's `Value.AsString`: strings as is, numbers and booleans in Go's format, bytes in
/// base64, arrays and maps as JSON.
fn as_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => go_float(*d),
        Some(Value::BytesValue(b)) => base64(b),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => to_json(v).to_string(),
    }
}

fn to_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(Value::BytesValue(b)) => J::String(base64(b)),
        Some(Value::ArrayValue(a)) => J::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(l)) => J::Object(
            l.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, to_json)))
                .collect(),
        ),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn go_float(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    d.to_string()
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OTLP/JSON (protobuf JSON mapping): lowerCamelCase names, 64-bit integers as strings or
/// numbers, trace and span IDs in hex, bytes in base64.
mod json {
    use serde::de::{self, Deserializer};
    use serde::Deserialize;

    use super::*;

    pub(super) fn decode(body: &[u8]) -> Result<ExportLogsServiceRequest> {
        let req: JRequest =
            serde_json::from_slice(body).map_err(|e| PushError::InvalidBody(e.to_string()))?;
        req.into_proto()
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JRequest {
        #[serde(default, alias = "resource_logs")]
        resource_logs: Vec<JResourceLogs>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JResourceLogs {
        resource: Option<JResource>,
        #[serde(default, alias = "scope_logs")]
        scope_logs: Vec<JScopeLogs>,
    }

    #[derive(Deserialize)]
    struct JResource {
        #[serde(default)]
        attributes: Vec<JKeyValue>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JScopeLogs {
        scope: Option<JScope>,
        #[serde(default, alias = "log_records")]
        log_records: Vec<JLogRecord>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JScope {
        #[serde(default)]
        name: String,
        #[serde(default)]
        version: String,
        #[serde(default)]
        attributes: Vec<JKeyValue>,
        #[serde(default, alias = "dropped_attributes_count")]
        dropped_attributes_count: u32,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct JLogRecord {
        #[serde(deserialize_with = "int_or_string", alias = "time_unix_nano")]
        time_unix_nano: u64,
        #[serde(deserialize_with = "int_or_string", alias = "observed_time_unix_nano")]
        observed_time_unix_nano: u64,
        #[serde(deserialize_with = "severity_number", alias = "severity_number")]
        severity_number: i32,
        #[serde(alias = "severity_text")]
        severity_text: String,
        body: Option<JAnyValue>,
        attributes: Vec<JKeyValue>,
        #[serde(alias = "dropped_attributes_count")]
        dropped_attributes_count: u32,
        flags: u32,
        #[serde(alias = "trace_id")]
        trace_id: String,
        #[serde(alias = "span_id")]
        span_id: String,
    }

    #[derive(Deserialize)]
    struct JKeyValue {
        key: String,
        value: Option<JAnyValue>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct JAnyValue {
        #[serde(alias = "string_value")]
        string_value: Option<String>,
        #[serde(alias = "bool_value")]
        bool_value: Option<bool>,
        #[serde(deserialize_with = "opt_int_or_string", alias = "int_value")]
        int_value: Option<i64>,
        #[serde(alias = "double_value")]
        double_value: Option<f64>,
        #[serde(alias = "array_value")]
        array_value: Option<JArray>,
        #[serde(alias = "kvlist_value")]
        kvlist_value: Option<JKvList>,
        #[serde(alias = "bytes_value")]
        bytes_value: Option<String>,
    }

    #[derive(Deserialize)]
    struct JArray {
        #[serde(default)]
        values: Vec<JAnyValue>,
    }

    #[derive(Deserialize)]
    struct JKvList {
        #[serde(default)]
        values: Vec<JKeyValue>,
    }

    /// An integer as a JSON number or a decimal string (proto3 JSON for 64-bit ints).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Unsigned(u64),
        Signed(i64),
        Str(String),
    }

    fn int_or_string<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        let n = match IntOrString::deserialize(d)? {
            IntOrString::Unsigned(n) => i128::from(n),
            IntOrString::Signed(n) => i128::from(n),
            IntOrString::Str(s) => s.parse().map_err(de::Error::custom)?,
        };
        T::try_from(n).map_err(|_| de::Error::custom(format!("integer {n} out of range")))
    }

    fn opt_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        int_or_string(d).map(Some)
    }

    /// `SeverityNumber` as a number or its enum name (`SEVERITY_NUMBER_INFO2`).
    fn severity_number<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum NumOrName {
            Num(i32),
            Name(String),
        }
        match NumOrName::deserialize(d)? {
            NumOrName::Num(n) => Ok(n),
            NumOrName::Name(name) => {
                let rest = name.strip_prefix("SEVERITY_NUMBER_").unwrap_or(&name);
                if rest == "UNSPECIFIED" {
                    return Ok(0);
                }
                let (base, step) = match rest.find(|c: char| c.is_ascii_digit()) {
                    Some(i) => (&rest[..i], rest[i..].parse::<i32>().ok()),
                    None => (rest, Some(1)),
                };
                let group = NAMES.iter().position(|n| *n == base);
                match (group, step) {
                    (Some(g), Some(s @ 1..=4)) => Ok(g as i32 * 4 + s),
                    _ => Err(de::Error::custom(format!(
                        "unknown severity number {name:?}"
                    ))),
                }
            }
        }
    }

    fn unhex(s: &str) -> Result<Bytes> {
        let bad = || PushError::InvalidBody(format!("invalid hex id {s:?}"));
        if s.len() & 1 != 0 {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<u8>>>()
            .map(Bytes::from)
    }

    fn unbase64(s: &str) -> Result<Bytes> {
        let bad = || PushError::InvalidBody(format!("invalid base64 value {s:?}"));
        let digits = s.trim_end_matches('=');
        let mut out = Vec::with_capacity(digits.len() * 3 / 4);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in digits.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                _ => return Err(bad()),
            };
            acc = acc << 6 | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Ok(Bytes::from(out))
    }

    impl JRequest {
        fn into_proto(self) -> Result<ExportLogsServiceRequest> {
            Ok(ExportLogsServiceRequest {
                resource_logs: self
                    .resource_logs
                    .into_iter()
                    .map(|rl| {
                        Ok(ResourceLogs {
                            resource: rl
                                .resource
                                .map(|r| -> Result<Resource> {
                                    Ok(Resource {
                                        attributes: key_values(r.attributes)?,
                                    })
                                })
                                .transpose()?,
                            scope_logs: rl
                                .scope_logs
                                .into_iter()
                                .map(JScopeLogs::into_proto)
                                .collect::<Result<_>>()?,
                        })
                    })
                    .collect::<Result<_>>()?,
            })
        }
    }

    impl JScopeLogs {
        fn into_proto(self) -> Result<ScopeLogs> {
            Ok(ScopeLogs {
                scope: self
                    .scope
                    .map(|s| -> Result<InstrumentationScope> {
                        Ok(InstrumentationScope {
                            name: s.name,
                            version: s.version,
                            attributes: key_values(s.attributes)?,
                            dropped_attributes_count: s.dropped_attributes_count,
                        })
                    })
                    .transpose()?,
                log_records: self
                    .log_records
                    .into_iter()
                    .map(|r| {
                        Ok(LogRecord {
                            time_unix_nano: r.time_unix_nano,
                            severity_number: r.severity_number,
                            severity_text: r.severity_text,
                            body: r.body.map(JAnyValue::into_proto).transpose()?,
                            attributes: key_values(r.attributes)?,
                            dropped_attributes_count: r.dropped_attributes_count,
                            flags: r.flags,
                            trace_id: unhex(&r.trace_id)?,
                            span_id: unhex(&r.span_id)?,
                            observed_time_unix_nano: r.observed_time_unix_nano,
                        })
                    })
                    .collect::<Result<_>>()?,
            })
        }
    }

    fn key_values(list: Vec<JKeyValue>) -> Result<Vec<KeyValue>> {
        list.into_iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: kv.key,
                    value: kv.value.map(JAnyValue::into_proto).transpose()?,
                })
            })
            .collect()
    }

    impl JAnyValue {
        fn into_proto(self) -> Result<AnyValue> {
            let value = if let Some(s) = self.string_value {
                Some(Value::StringValue(s))
            } else if let Some(b) = self.bool_value {
                Some(Value::BoolValue(b))
            } else if let Some(i) = self.int_value {
                Some(Value::IntValue(i))
            } else if let Some(d) = self.double_value {
                Some(Value::DoubleValue(d))
            } else if let Some(a) = self.array_value {
                Some(Value::ArrayValue(ArrayValue {
                    values: a
                        .values
                        .into_iter()
                        .map(JAnyValue::into_proto)
                        .collect::<Result<_>>()?,
                }))
            } else if let Some(l) = self.kvlist_value {
                Some(Value::KvlistValue(KeyValueList {
                    values: key_values(l.values)?,
                }))
            } else if let Some(b) = self.bytes_value {
                Some(Value::BytesValue(unbase64(&b)?))
            } else {
                None
            };
            Ok(AnyValue { value })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn base64_round_trips() {
            for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\x10"] {
                assert_eq!(&unbase64(&base64(input)).unwrap()[..], input);
            }
            assert_eq!(base64(b"foob"), "Zm9vYg==");
        }

        #[test]
        fn severity_names() {
            let parse = |j: &str| {
                serde_json::from_str::<JLogRecord>(&format!(r#"{{"severityNumber":{j}}}"#))
                    .map(|r| r.severity_number)
            };
            assert_eq!(parse("9").unwrap(), 9);
            assert_eq!(parse(r#""SEVERITY_NUMBER_INFO""#).unwrap(), 9);
            assert_eq!(parse(r#""SEVERITY_NUMBER_WARN3""#).unwrap(), 15);
            assert_eq!(parse(r#""SEVERITY_NUMBER_UNSPECIFIED""#).unwrap(), 0);
            assert!(parse(r#""LOUD""#).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    fn sample() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("checkout")),
                        kv("k8s.pod.name", s("pod-1")),
                        kv("host.name", s("node-7")),
                        kv(
                            "process",
                            Value::KvlistValue(KeyValueList {
                                values: vec![kv("pid", Value::IntValue(42))],
                            }),
                        ),
                    ],
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 1_700_000_000_000_000_000,
                            observed_time_unix_nano: 1_700_000_000_000_000_500,
                            severity_number: 9,
                            severity_text: "INFO".into(),
                            body: Some(AnyValue {
                                value: Some(s("order placed")),
                            }),
                            attributes: vec![kv("http.status_code", Value::IntValue(200))],
                            trace_id: Bytes::from_static(&[0xab, 0x01]),
                            span_id: Bytes::from_static(&[0x0f]),
                            ..Default::default()
                        },
                        LogRecord {
                            observed_time_unix_nano: 5,
                            body: Some(AnyValue {
                                value: Some(Value::KvlistValue(KeyValueList {
                                    values: vec![
                                        kv("b", Value::BoolValue(true)),
                                        kv("a", Value::DoubleValue(1.5)),
                                    ],
                                })),
                            }),
                            ..Default::default()
                        },
                        LogRecord::default(),
                    ],
                }],
            }],
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(fenrir_proto::SharedText, fenrir_proto::SharedText)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn check(push: RawPush) {
        assert_eq!(push.streams.len(), 1);
        let stream = &push.streams[0];
        assert_eq!(
            stream.labels,
            r#"{k8s_pod_name="pod-1", service_name="checkout"}"#
        );
        let e = &stream.entries;
        assert_eq!(e[0].ts, 1_700_000_000_000_000_000);
        assert_eq!(e[0].line, "order placed");
        assert_eq!(
            e[0].structured_metadata,
            pairs(&[
                ("host_name", "node-7"),
                ("process_pid", "42"),
                ("scope_name", "lib"),
                ("scope_version", "1.0"),
                ("http_status_code", "200"),
                ("observed_timestamp", "1700000000000000500"),
                ("severity_number", "9"),
                ("severity_text", "INFO"),
                ("trace_id", "ab01"),
                ("span_id", "0f"),
            ])
        );
        assert_eq!((e[1].ts, e[1].line.as_str()), (5, r#"{"a":1.5,"b":true}"#));
        assert_eq!((e[2].ts, e[2].line.as_str()), (77, ""));
    }

    /// A few bytes of resource attributes shared by many empty records: refused by the
    /// count of pairs they would become, before any entry is built.
    #[test]
    fn shared_attributes_cannot_multiply_past_the_caps() {
        let limits = DecodeLimits {
            max_streams: 100,
            max_entries: 1000,
            ..DecodeLimits::default()
        };
        let request = |attrs: usize, records: usize| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: (0..attrs).map(|i| kv(&format!("a{i}"), s("v"))).collect(),
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![LogRecord::default(); records],
                }],
            }],
        };
        let decode = |r: ExportLogsServiceRequest| {
            decode_otlp(
                Some("application/x-protobuf"),
                None,
                &r.encode_to_vec(),
                &limits,
                77,
            )
        };
        // 30 records × (30 shared + 7 own) = 1110 pairs at most: over 1000.
        let err = decode(request(30, 30)).unwrap_err();
        assert!(
            matches!(
                err,
                PushError::TooManyItems {
                    what: "structured metadata pairs",
                    max: 1000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.status(), 413);
        assert_eq!(
            decode(request(10, 30)).unwrap().streams[0].entries.len(),
            30
        );
        // On the wire: 1001 empty records are refused before prost decodes them.
        let err = decode(request(0, 1001)).unwrap_err();
        assert_eq!(
            err,
            PushError::TooManyItems {
                what: "entries",
                count: 1001,
                max: 1000
            }
        );
        assert_eq!(
            count_wire_items(&sample().encode_to_vec()),
            ItemCounts {
                streams: 2,
                entries: 3,
                pairs: 5
            }
        );
    }

    #[test]
    fn protobuf_maps_resources_to_streams() {
        let body = sample().encode_to_vec();
        let push = decode_otlp(
            Some("application/x-protobuf"),
            None,
            &body,
            &DecodeLimits::default(),
            77,
        )
        .unwrap();
        check(push);
    }

    #[test]
    fn json_maps_like_protobuf() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"checkout"}},
            {"key":"k8s.pod.name","value":{"stringValue":"pod-1"}},
            {"key":"host.name","value":{"stringValue":"node-7"}},
            {"key":"process","value":{"kvlistValue":{"values":[{"key":"pid","value":{"intValue":"42"}}]}}}]},
          "scopeLogs":[{"scope":{"name":"lib","version":"1.0"},"logRecords":[
            {"timeUnixNano":"1700000000000000000","observedTimeUnixNano":1700000000000000500,
             "severityNumber":"SEVERITY_NUMBER_INFO","severityText":"INFO",
             "body":{"stringValue":"order placed"},
             "attributes":[{"key":"http.status_code","value":{"intValue":200}}],
             "traceId":"ab01","spanId":"0f"},
            {"observedTimeUnixNano":"5","body":{"kvlistValue":{"values":[
                {"key":"b","value":{"boolValue":true}},{"key":"a","value":{"doubleValue":1.5}}]}}},
            {}]}]}]}"#;
        let push = decode_otlp(
            Some("application/json"),
            None,
            body,
            &DecodeLimits::default(),
            77,
        )
        .unwrap();
        check(push);
    }

    #[test]
    fn gzip_is_accepted_and_deflate_is_not() {
        use std::io::Write;
        let body = sample().encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let limits = DecodeLimits::default();
        check(
            decode_otlp(
                Some("application/x-protobuf"),
                Some("gzip"),
                &gz,
                &limits,
                77,
            )
            .unwrap(),
        );
        let err = decode_otlp(
            Some("application/x-protobuf"),
            Some("deflate"),
            &body,
            &limits,
            77,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Content-Encoding \"deflate\" not supported"
        );
    }

    #[test]
    fn unsupported_content_types() {
        let limits = DecodeLimits::default();
        for (ct, text) in [
            (
                Some("text/plain"),
                "content type: text/plain is not supported",
            ),
            (None, "content type:  is not supported"),
        ] {
            let err = decode_otlp(ct, None, b"", &limits, 0).unwrap_err();
            assert_eq!((err.status(), err.to_string().as_str()), (400, text));
        }
    }

    #[test]
    fn empty_requests_yield_no_streams() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("x"))],
                }),
                scope_logs: vec![],
            }],
        };
        let push = decode_otlp(
            Some("application/x-protobuf"),
            None,
            &req.encode_to_vec(),
            &DecodeLimits::default(),
            0,
        )
        .unwrap();
        assert!(push.streams.is_empty());
        let err = crate::validate(
            push,
            &fenrir_common::Tenant::single(),
            &Default::default(),
            0,
        )
        .unwrap_err();
        assert_eq!(err.status(), 422);
    }

    #[test]
    fn values_render_like_pdata() {
        let v = |value| AnyValue { value: Some(value) };
        assert_eq!(as_string(&v(Value::DoubleValue(0.1))), "0.1");
        assert_eq!(
            as_string(&v(Value::DoubleValue(1e21))),
            "1000000000000000000000"
        );
        assert_eq!(as_string(&v(Value::DoubleValue(f64::INFINITY))), "+Inf");
        assert_eq!(
            as_string(&v(Value::BytesValue(Bytes::from_static(b"hi")))),
            "aGk="
        );
        assert_eq!(
            as_string(&v(Value::ArrayValue(ArrayValue {
                values: vec![v(s("a")), v(Value::IntValue(1))]
            }))),
            r#"["a",1]"#
        );
    }
}
