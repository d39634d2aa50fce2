//! The messages of `pkg/push/push.proto`.

use bytes::Bytes;

/// `logproto.PushRequest`: the body of a push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams, each with its label string and entries.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    /// Internal marker ("loki"/"otlp") that clients leave empty.
    #[prost(bytes = "bytes", tag = "2")]
    pub format: Bytes,
}

/// `logproto.StreamAdapter`: one stream of a push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label-set string, such as `{app="x", env="prod"}`.
    #[prost(bytes = "bytes", tag = "1")]
    pub labels: Bytes,
    /// The entries of the stream.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Internal hash; ignored on input.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the entry happened.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(bytes = "bytes", tag = "2")]
    pub line: Bytes,
    /// Structured metadata: non-indexed key/value pairs.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// Used only in Loki's internal query responses; clients must not send it.
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one name/value pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    /// The value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, in `[0, 1e9)`.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp for `ns` nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(ns: i64) -> Self {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
}

impl LabelPairAdapter {
    /// A pair from two strings.
    pub fn new(name: &str, value: &str) -> Self {
        LabelPairAdapter {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> PushRequest {
        PushRequest {
            streams: vec![StreamAdapter {
                labels: Bytes::from_static(br#"{app="x"}"#),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_005)),
                    line: Bytes::from_static(b"hello"),
                    structured_metadata: vec![LabelPairAdapter::new("trace_id", "abc")],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: Bytes::new(),
        }
    }

    #[test]
    fn round_trip() {
        let req = sample();
        let bytes = req.encode_to_vec();
        let back = PushRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, req);
        let ts = back.streams[0].entries[0].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 5));
    }

    #[test]
    fn golden_bytes_decode() {
        // Hand-assembled wire bytes: PushRequest{streams:[{labels:`{a="b"}`,
        // entries:[{ts:{seconds:1,nanos:2}, line:"hi", sm:[{name:"k",value:"v"}]}], hash:7}]}
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0x0a, 0x21,                                     // streams (1), len 33
              0x0a, 0x07, b'{', b'a', b'=', b'"', b'b', b'"', b'}', // labels (1)
              0x12, 0x14,                                   // entries (2), len 20
                0x0a, 0x04, 0x08, 0x01, 0x10, 0x02,         // timestamp {1: 1, 2: 2}
                0x12, 0x02, b'h', b'i',                     // line (2)
                0x1a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // structured metadata (3)
                0x22, 0x00,                                 // parsed (4), empty pair
              0x18, 0x07,                                   // hash (3)
        ];
        let req = PushRequest::decode(golden).unwrap();
        assert_eq!(req.streams.len(), 1);
        let s = &req.streams[0];
        assert_eq!(&s.labels[..], br#"{a="b"}"#);
        assert_eq!(s.hash, 7);
        let e = &s.entries[0];
        assert_eq!(
            e.timestamp,
            Some(Timestamp {
                seconds: 1,
                nanos: 2
            })
        );
        assert_eq!(&e.line[..], b"hi");
        assert_eq!(e.structured_metadata, vec![LabelPairAdapter::new("k", "v")]);
        assert_eq!(e.parsed, vec![LabelPairAdapter::new("", "")]);
    }

    #[test]
    fn unknown_fields_are_skipped_and_garbage_fails() {
        // Field 9 (varint) is unknown and must be ignored.
        let bytes = [0x48, 0x01];
        assert_eq!(
            PushRequest::decode(&bytes[..]).unwrap(),
            PushRequest::default()
        );
        // A length prefix that runs past the end is an error, not a panic.
        assert!(PushRequest::decode(&[0x0a, 0x10, 0x00][..]).is_err());
    }

    #[test]
    fn negative_timestamps_split_euclidean() {
        let ts = Timestamp::from_unix_nanos(-1);
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_999));
    }
}
