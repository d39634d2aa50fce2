//! The subset of OpenTelemetry's `opentelemetry/proto/collector/logs/v1/logs_service.proto`
//! (and the `logs/v1`, `common/v1`, `resource/v1` messages it uses) that log ingestion
//! needs: the body of `POST /otlp/v1/logs`.

use bytes::Bytes;

/// `ExportLogsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceRequest {
    /// Logs grouped by the resource that produced them.
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

/// `ResourceLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceLogs {
    /// The producing resource.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Logs grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Resource attributes (`service.name`, `k8s.pod.name`, …).
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeLogs {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The log records.
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Scope name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Scope version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Scope attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `LogRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// When the event happened, ns since the epoch; 0 if unknown.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// `SeverityNumber` (1–24).
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    /// Severity as text.
    #[prost(string, tag = "3")]
    pub severity_text: String,
    /// The log body.
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    /// Log attributes.
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    #[prost(uint32, tag = "7")]
    pub dropped_attributes_count: u32,
    /// W3C trace flags.
    #[prost(fixed32, tag = "8")]
    pub flags: u32,
    /// 16-byte trace ID.
    #[prost(bytes = "bytes", tag = "9")]
    pub trace_id: Bytes,
    /// 8-byte span ID.
    #[prost(bytes = "bytes", tag = "10")]
    pub span_id: Bytes,
    /// When the collector saw the event, ns since the epoch.
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Attribute value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`: one of the value kinds below, or nothing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

/// The kinds of [`AnyValue`].
pub mod any_value {
    /// The oneof of `AnyValue`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `array_value`.
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        /// `kvlist_value`.
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        /// `bytes_value`.
        #[prost(bytes = "bytes", tag = "7")]
        BytesValue(bytes::Bytes),
    }
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The elements.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn golden_log_record() {
        // LogRecord{time_unix_nano: 1 (fixed64), severity_number: 9, body: "hi",
        //           trace_id: [0xab]}
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0x09, 1, 0, 0, 0, 0, 0, 0, 0,  // time_unix_nano (1), fixed64
            0x10, 0x09,                    // severity_number (2)
            0x2a, 0x04, 0x0a, 0x02, b'h', b'i', // body (5) {string_value (1)}
            0x4a, 0x01, 0xab,              // trace_id (9)
        ];
        let rec = LogRecord::decode(golden).unwrap();
        assert_eq!(rec.time_unix_nano, 1);
        assert_eq!(rec.severity_number, 9);
        assert_eq!(
            rec.body.and_then(|b| b.value),
            Some(any_value::Value::StringValue("hi".into()))
        );
        assert_eq!(&rec.trace_id[..], &[0xab]);
    }

    #[test]
    fn nested_values_round_trip() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![KeyValue {
                                    key: "n".into(),
                                    value: Some(AnyValue {
                                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                                            values: vec![AnyValue {
                                                value: Some(any_value::Value::IntValue(-3)),
                                            }],
                                        })),
                                    }),
                                }],
                            })),
                        }),
                    }],
                }),
                scope_logs: vec![],
            }],
        };
        let back = ExportLogsServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, req);
    }
}
