//! Loki's two JSON push shapes, decoded with serde visitors straight into
//! [`RawStream`]s (no intermediate `serde_json::Value`, so memory stays near the body size).
//!
//! v1 (`/loki/api/v1/push`):
//! `{"streams":[{"stream":{"k":"v"},"values":[["<ns>","<line>",{"sm":"v"}]]}]}`
//! legacy (`/api/prom/push`):
//! `{"streams":[{"labels":"{k=\"v\"}","entries":[{"ts":"<RFC3339>","line":"…"}]}]}`

use std::collections::BTreeMap;
use std::fmt;

use fenrir_common::{write_go_quoted, Entry};
use fenrir_proto::PushEntry;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::time::parse_rfc3339_nanos;
use crate::{PushError, RawStream, Result};

/// Decodes a v1 JSON push body.
pub(crate) fn decode_v1(body: &[u8]) -> Result<Vec<RawStream>> {
    let parsed: Body<V1Stream> = from_slice(body)?;
    Ok(parsed
        .streams
        .unwrap_or_default()
        .into_iter()
        .map(|s| RawStream {
            labels: s.stream.map(|l| l.0).unwrap_or_else(|| "{}".to_string()),
            entries: s
                .values
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(|e| PushEntry::from(e.0))
                .collect(),
        })
        .collect())
}

/// Decodes a legacy JSON push body.
pub(crate) fn decode_legacy(body: &[u8]) -> Result<Vec<RawStream>> {
    let parsed: Body<LegacyStream> = from_slice(body)?;
    Ok(parsed
        .streams
        .unwrap_or_default()
        .into_iter()
        .map(|s| RawStream {
            labels: s.labels.unwrap_or_default(),
            entries: s
                .entries
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(|e| {
                    PushEntry::from(Entry {
                        ts: e.ts.0,
                        line: e.line,
                        structured_metadata: e.structured_metadata.map(|m| m.0).unwrap_or_default(),
                    })
                })
                .collect(),
        })
        .collect())
}

fn from_slice<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| PushError::InvalidBody(e.to_string()))
}

#[derive(serde::Deserialize)]
struct Body<S> {
    streams: Option<Vec<S>>,
}

#[derive(serde::Deserialize)]
struct V1Stream {
    stream: Option<StreamLabels>,
    values: Option<Vec<Option<V1Entry>>>,
}

#[derive(serde::Deserialize)]
struct LegacyStream {
    labels: Option<String>,
    entries: Option<Vec<Option<LegacyEntry>>>,
}

#[derive(serde::Deserialize)]
struct LegacyEntry {
    ts: Rfc3339Nanos,
    line: String,
    #[serde(rename = "structuredMetadata")]
    structured_metadata: Option<StructuredMetadata>,
}

/// A v1 `stream` object rendered as a label string, `{k1="v1", k2="v2"}` with keys sorted
/// and values Go-quoted, exactly as Loki does before parsing it like a protobuf label
/// string. Names are not quoted, so names that are not identifiers fail to parse later.
struct StreamLabels(String);

impl<'de> Deserialize<'de> for StreamLabels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StreamLabels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of label names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StreamLabels, A::Error> {
                let mut labels = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let raw: &RawValue = map.next_value()?;
                    labels.insert(name, label_value(raw.get()).map_err(de::Error::custom)?);
                }
                let mut out = String::from("{");
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    write_go_quoted(&mut out, v);
                }
                out.push('}');
                Ok(StreamLabels(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A label value from its raw JSON token: strings are unescaped, numbers, booleans and
/// null are taken literally (Loki reads the raw token text), objects and arrays refused.
fn label_value(raw: &str) -> std::result::Result<String, String> {
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw).map_err(|e| e.to_string()),
        Some(b'{' | b'[') => Err(format!("label value must be a string, got {raw}")),
        _ => Ok(raw.to_string()),
    }
}

/// One v1 `values` element: `[ "<ns>", "<line>" (, {sm})? (, ignored…)* ]`.
struct V1Entry(Entry);

impl<'de> Deserialize<'de> for V1Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = V1Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array [\"<timestamp ns>\", \"<line>\", {structured metadata}]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V1Entry, A::Error> {
                let missing = || de::Error::custom("each value needs a timestamp and a line");
                let ts = seq.next_element::<NanosString>()?.ok_or_else(missing)?.0;
                let line = seq.next_element::<String>()?.ok_or_else(missing)?;
                let structured_metadata = seq
                    .next_element::<Option<StructuredMetadata>>()?
                    .flatten()
                    .map(|m| m.0)
                    .unwrap_or_default();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(V1Entry(Entry {
                    ts,
                    line,
                    structured_metadata,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A JSON string holding a base-10 int64 of Unix nanoseconds (a JSON number is refused).
struct NanosString(i64);

impl<'de> Deserialize<'de> for NanosString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NanosString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of Unix nanoseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NanosString, E> {
                v.parse()
                    .map(NanosString)
                    .map_err(|_| E::custom(format!("invalid timestamp {v:?}: not an integer")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON string holding an RFC 3339 time.
struct Rfc3339Nanos(i64);

impl<'de> Deserialize<'de> for Rfc3339Nanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rfc3339Nanos;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rfc3339Nanos, E> {
                parse_rfc3339_nanos(v)
                    .map(Rfc3339Nanos)
                    .ok_or_else(|| E::custom(format!("invalid RFC 3339 time {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// An object of string values, kept in document order.
struct StructuredMetadata(Vec<(String, String)>);

impl<'de> Deserialize<'de> for StructuredMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StructuredMetadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of structured metadata names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StructuredMetadata, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    pairs.push((k, v));
                }
                Ok(StructuredMetadata(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(list: &[(&str, &str)]) -> Vec<(fenrir_proto::SharedText, fenrir_proto::SharedText)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn v1_with_structured_metadata() {
        let body = br#"{"streams":[{"stream":{"job":"x","app":"a\"b"},"values":[
            ["1700000000000000001","line one"],
            ["1700000000000000002","line two",{"trace_id":"abc","user":"kim"},"ignored"],
            null
        ]}]}"#;
        let streams = decode_v1(body).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].labels, r#"{app="a\"b", job="x"}"#);
        let e = &streams[0].entries;
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], Entry::new(1_700_000_000_000_000_001, "line one"));
        assert_eq!(e[1].ts, 1_700_000_000_000_000_002);
        assert_eq!(
            e[1].structured_metadata,
            sm(&[("trace_id", "abc"), ("user", "kim")])
        );
    }

    #[test]
    fn v1_label_values_taken_literally() {
        let body = br#"{"streams":[{"stream":{"n":5,"b":true,"f":1.50},"values":[]}]}"#;
        assert_eq!(
            decode_v1(body).unwrap()[0].labels,
            r#"{b="true", f="1.50", n="5"}"#
        );
    }

    #[test]
    fn v1_edge_shapes() {
        assert!(decode_v1(b"{}").unwrap().is_empty());
        assert!(decode_v1(br#"{"streams":null,"other":[1]}"#)
            .unwrap()
            .is_empty());
        let s = decode_v1(br#"{"streams":[{"values":null}]}"#).unwrap();
        assert_eq!((s[0].labels.as_str(), s[0].entries.len()), ("{}", 0));
        // A stream object with an odd name renders unquoted so that parsing fails later.
        let s = decode_v1(br#"{"streams":[{"stream":{"service.name":"x"}}]}"#).unwrap();
        assert_eq!(s[0].labels, r#"{service.name="x"}"#);
    }

    #[test]
    fn v1_rejects_bad_shapes() {
        let cases: &[&[u8]] = &[
            br#"{"streams":[{"values":[[1700000000000000000,"x"]]}]}"#,
            br#"{"streams":[{"values":[["12.5","x"]]}]}"#,
            br#"{"streams":[{"values":[["1",{"a":1}]]}]}"#,
            br#"{"streams":[{"values":[["1"]]}]}"#,
            br#"{"streams":[{"values":[["1","x",{"a":1}]]}]}"#,
            br#"{"streams":[{"values":[["1","x",{"a":{"b":"c"}}]]}]}"#,
            br#"{"streams":[{"stream":{"a":{"b":"c"}}}]}"#,
            br#"{"streams":[{"stream":{"a":["b"]}}]}"#,
            br#"{"streams":[{"stream":{"a":"b"}}]"#,
            b"not json",
            b"",
        ];
        for body in cases {
            let err = decode_v1(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn legacy_shape() {
        let body = br#"{"streams":[{"labels":"{job=\"py\"}","entries":[
            {"ts":"2019-11-01T10:00:00.123456+00:00","line":"hello"},
            {"ts":"2024-07-07T08:00:00Z","line":"x","structuredMetadata":{"k":"v"}}
        ]}]}"#;
        let s = decode_legacy(body).unwrap();
        assert_eq!(s[0].labels, r#"{job="py"}"#);
        assert_eq!(
            s[0].entries[0],
            Entry::new(1_572_602_400_123_456_000, "hello")
        );
        assert_eq!(s[0].entries[1].structured_metadata, sm(&[("k", "v")]));
        assert_eq!(s[0].entries[1].ts, 1_720_339_200_000_000_000);
    }

    #[test]
    fn legacy_rejects_v1_shape_and_bad_times() {
        // The v1 shape parses as legacy JSON with no labels and no entries…
        let v1 = br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}]}"#;
        let s = decode_legacy(v1).unwrap();
        assert!(s[0].entries.is_empty());
        // …and a legacy body on the v1 path fails.
        let legacy = br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"2024-07-07T08:00:00Z","line":"x"}]}]}"#;
        assert!(decode_v1(legacy).unwrap()[0].entries.is_empty());
        for body in [
            &br#"{"streams":[{"labels":"{}","entries":[{"ts":"yesterday","line":"x"}]}]}"#[..],
            br#"{"streams":[{"labels":"{}","entries":[{"ts":1,"line":"x"}]}]}"#,
            br#"{"streams":[{"labels":"{}","entries":[{"line":"x"}]}]}"#,
        ] {
            assert_eq!(decode_legacy(body).unwrap_err().status(), 400);
        }
    }
}
