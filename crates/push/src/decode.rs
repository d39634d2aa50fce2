//! The push body pipeline of Loki's distributor (spec §2.1.1): content encoding, media
//! type, then snappy-block protobuf or JSON. Every size is capped before it is allocated.

use std::io::Read;

use bytes::Bytes;
use fenrir_proto::{Message, PushEntry, PushRequest, SharedText};

use crate::json::{decode_legacy, decode_v1};
use crate::{PushError, Result};

const MIB: usize = 1024 * 1024;

/// Which JSON shape a push path speaks; protobuf is the same on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/loki/api/v1/push`: `{"streams":[{"stream":{…},"values":[[ns, line, {sm}]]}]}`.
    V1,
    /// `/api/prom/push`: `{"streams":[{"labels":"{…}","entries":[{"ts","line"}]}]}`.
    Legacy,
}

impl Dialect {
    /// Loki's rule: a path containing `/loki/api/v1` (any case) is v1, anything else legacy.
    pub fn from_path(path: &str) -> Self {
        let needle = b"/loki/api/v1";
        let hay = path.as_bytes();
        if hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
        {
            Dialect::V1
        } else {
            Dialect::Legacy
        }
    }
}

/// Size caps for a push body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Cap on the body as received and on its gzip/deflate-decoded form
    /// (`distributor.max_recv_msg_size`, 100 MiB).
    pub max_recv_msg_size: usize,
    /// Cap on the snappy-decoded protobuf. Loki's default (5000 MiB) is far more than this
    /// process should ever allocate for one request, so ours is 50 × 10 MiB = 500 MiB.
    pub max_decompressed_size: usize,
    /// Cap on the streams of one push. Counted in the protobuf before it is decoded: an
    /// empty stream costs 2 bytes on the wire but ~100 in memory, so the byte caps alone
    /// would let a 500 MiB body become tens of GiB.
    pub max_streams: usize,
    /// Cap on the entries of one push, and separately on its structured-metadata pairs;
    /// counted like [`DecodeLimits::max_streams`].
    pub max_entries: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_recv_msg_size: 100 * MIB,
            max_decompressed_size: 500 * MIB,
            // Far above what clients batch (Promtail and Alloy send about 1 MiB), and at
            // most a few hundred MiB of decoded structures however the body is built.
            max_streams: 100_000,
            max_entries: 2_000_000,
        }
    }
}

/// A decoded push, before validation: label strings as sent, entries as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPush {
    /// The streams in request order.
    pub streams: Vec<RawStream>,
}

/// One stream of a decoded push.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawStream {
    /// The label string as sent (for v1 JSON: the `stream` object rendered as Loki does).
    pub labels: String,
    /// The entries in request order; their texts share the request body.
    pub entries: Vec<PushEntry>,
}

/// Decodes a push body as Loki does: `Content-Encoding` first (none, `snappy` as a no-op,
/// `gzip`, `deflate` raw or zlib-wrapped), then `Content-Type` (`application/json` → JSON
/// in `dialect`'s shape; anything else → snappy-block protobuf).
pub fn decode_push(
    dialect: Dialect,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<RawPush> {
    let decoded = decode_content(content_encoding, body, limits, false)?;
    let media_type = parse_media_type(content_type)?;
    let streams = if media_type == "application/json" {
        let streams = match dialect {
            Dialect::V1 => decode_v1(&decoded)?,
            Dialect::Legacy => decode_legacy(&decoded)?,
        };
        // JSON spends at least 8 bytes of body per entry, so the body cap already bounds
        // its memory; the counts are checked for the same answer as protobuf.
        check_counts(count_streams(&streams), limits)?;
        streams
    } else {
        decode_protobuf(&decoded, limits)?
    };
    Ok(RawPush { streams })
}

/// Applies `Content-Encoding`, refusing bodies over `max_recv_msg_size` before and after.
/// `otlp` selects the OTLP endpoint's set of encodings (no deflate).
pub(crate) fn decode_content<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limits: &DecodeLimits,
    otlp: bool,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let max = limits.max_recv_msg_size;
    if body.len() > max {
        return Err(PushError::BodyTooLarge {
            size: body.len(),
            max,
        });
    }
    match content_encoding.unwrap_or("") {
        "" => Ok(body.into()),
        "snappy" if !otlp => Ok(body.into()),
        "gzip" => read_capped(flate2::read::MultiGzDecoder::new(body), max).map(Into::into),
        "deflate" if !otlp => {
            if looks_like_zlib(body) {
                read_capped(flate2::read::ZlibDecoder::new(body), max).map(Into::into)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(body), max).map(Into::into)
            }
        }
        "zstd" if otlp => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|e| PushError::InvalidBody(e.to_string()))?;
            read_capped(decoder, max).map(Into::into)
        }
        other => Err(PushError::UnsupportedEncoding(other.to_string())),
    }
}

/// Reads a decompressor to the end, stopping one byte past `max` so that a compression
/// bomb costs at most `max + 1` bytes before it is refused.
fn read_capped(reader: impl Read, max: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| PushError::InvalidBody(e.to_string()))?;
    if out.len() > max {
        return Err(PushError::BodyTooLarge {
            size: out.len(),
            max,
        });
    }
    Ok(out)
}

/// RFC 1950 header check: deflate method, window ≤ 32 KiB, and the FCHECK multiple of 31.
/// Clients disagree on whether `deflate` means raw or zlib-wrapped, so accept both.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Go's `mime.ParseMediaType`, reduced to what Loki looks at: the lower-cased
/// `type/subtype`, parameters ignored.
pub(crate) fn parse_media_type(content_type: Option<&str>) -> Result<String> {
    let raw = content_type.unwrap_or("");
    let essence = raw.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return Err(PushError::MediaType("mime: no media type".into()));
    }
    let Some((ty, subtype)) = essence.split_once('/') else {
        return Err(PushError::MediaType(
            "mime: expected slash after first token".into(),
        ));
    };
    if !is_token(ty) || !is_token(subtype) {
        return Err(PushError::MediaType(
            "mime: expected token after slash".into(),
        ));
    }
    Ok(essence.to_ascii_lowercase())
}

/// An RFC 2045 token: visible ASCII except tspecials.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Snappy-block decodes and unmarshals a `PushRequest`, checking the announced size first.
fn decode_protobuf(body: &[u8], limits: &DecodeLimits) -> Result<Vec<RawStream>> {
    let invalid = |e: snap::Error| PushError::InvalidBody(e.to_string());
    let size = snap::raw::decompress_len(body).map_err(invalid)?;
    if size > limits.max_decompressed_size {
        return Err(PushError::DecompressedTooLarge {
            size,
            max: limits.max_decompressed_size,
        });
    }
    // A snappy block cannot expand more than ~22x (a 3-byte copy emits at most 64 bytes),
    // so a larger announced size is a lie: refuse it before allocating.
    if size > body.len().saturating_mul(32).saturating_add(64) {
        return Err(PushError::InvalidBody("snappy: corrupt input".into()));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(invalid)?;
    check_counts(count_proto_items(&raw), limits)?;
    // Decoding from `Bytes` lets prost hand out slices of `raw` instead of copies.
    let req = PushRequest::decode(Bytes::from(raw))
        .map_err(|e| PushError::InvalidBody(format!("proto: {e}")))?;
    req.streams.into_iter().map(convert_stream).collect()
}

/// Streams, entries and structured-metadata pairs of one push.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemCounts {
    pub(crate) streams: usize,
    pub(crate) entries: usize,
    pub(crate) pairs: usize,
}

pub(crate) fn check_counts(counts: ItemCounts, limits: &DecodeLimits) -> Result<()> {
    for (what, count, max) in [
        ("streams", counts.streams, limits.max_streams),
        ("entries", counts.entries, limits.max_entries),
        (
            "structured metadata pairs",
            counts.pairs,
            limits.max_entries,
        ),
    ] {
        if count > max {
            return Err(PushError::TooManyItems { what, count, max });
        }
    }
    Ok(())
}

fn count_streams(streams: &[RawStream]) -> ItemCounts {
    let entries = streams.iter().map(|s| s.entries.len()).sum();
    let pairs = streams
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.structured_metadata.len())
        .sum();
    ItemCounts {
        streams: streams.len(),
        entries,
        pairs,
    }
}

/// Counts a `PushRequest`'s streams (field 1), their entries (`StreamAdapter` field 2)
/// and the entries' label pairs (`EntryAdapter` fields 3 and 4) by walking the wire
/// format, without allocating. Malformed input is left for prost to report: counting
/// stops where the walk cannot go on.
fn count_proto_items(buf: &[u8]) -> ItemCounts {
    let mut counts = ItemCounts::default();
    for_each_len_field(buf, |field, stream| {
        if field == 1 {
            counts.streams += 1;
            for_each_len_field(stream, |field, entry| {
                if field == 2 {
                    counts.entries += 1;
                    for_each_len_field(entry, |field, _| {
                        if field == 3 || field == 4 {
                            counts.pairs += 1;
                        }
                    });
                }
            });
        }
    });
    counts
}

/// Calls `f(field number, payload)` for each length-delimited field of one protobuf
/// message, skipping the others (groups included, as prost skips them); stops at the first
/// malformed field.
pub(crate) fn for_each_len_field(mut buf: &[u8], mut f: impl FnMut(u64, &[u8])) {
    while !buf.is_empty() {
        let Some(key) = read_varint(&mut buf) else {
            return;
        };
        let skip = match key & 7 {
            0 => {
                if read_varint(&mut buf).is_none() {
                    return;
                }
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let Some(len) = read_varint(&mut buf).and_then(|l| usize::try_from(l).ok()) else {
                    return;
                };
                let Some(payload) = buf.get(..len) else {
                    return;
                };
                f(key >> 3, payload);
                len
            }
            // prost skips an unknown field of the deprecated group type, so the walk must
            // too: stopping here would hide every item after it from the caps.
            3 if skip_group(&mut buf, key >> 3, 0) => 0,
            _ => return,
        };
        match buf.get(skip..) {
            Some(rest) => buf = rest,
            None => return,
        }
    }
}

/// Deepest group nesting the walk follows: prost's recursion limit (100) refuses deeper.
const MAX_GROUP_DEPTH: u32 = 100;

/// Moves `buf` past the fields of a group (its start key already read) and its end key;
/// false if the group does not end with its own field number, which prost refuses too.
fn skip_group(buf: &mut &[u8], field: u64, depth: u32) -> bool {
    if depth > MAX_GROUP_DEPTH {
        return false;
    }
    loop {
        let Some(key) = read_varint(buf) else {
            return false;
        };
        let skip = match key & 7 {
            0 => match read_varint(buf) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            5 => 4,
            2 => match read_varint(buf).and_then(|l| usize::try_from(l).ok()) {
                Some(len) => len,
                None => return false,
            },
            3 if skip_group(buf, key >> 3, depth + 1) => 0,
            4 => return key >> 3 == field,
            _ => return false,
        };
        match buf.get(skip..) {
            Some(rest) => *buf = rest,
            None => return false,
        }
    }
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

fn convert_stream(s: fenrir_proto::StreamAdapter) -> Result<RawStream> {
    let labels = String::from_utf8(s.labels.to_vec()).map_err(|_| {
        PushError::InvalidLabels("1:1: parse error: invalid UTF-8 in label string".into())
    })?;
    let entries = s
        .entries
        .into_iter()
        .map(|e| {
            let ts = e.timestamp.unwrap_or_default();
            Ok(PushEntry {
                ts: proto_timestamp_nanos(ts.seconds, ts.nanos)?,
                line: SharedText::from_utf8_lossy(e.line),
                structured_metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| {
                        (
                            SharedText::from_utf8_lossy(p.name),
                            SharedText::from_utf8_lossy(p.value),
                        )
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RawStream { labels, entries })
}

/// Seconds of 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, the valid proto range.
const MIN_PROTO_SECONDS: i64 = -62_135_596_800;
const MAX_PROTO_SECONDS: i64 = 253_402_300_800;

fn proto_timestamp_nanos(seconds: i64, nanos: i32) -> Result<i64> {
    if !(MIN_PROTO_SECONDS..MAX_PROTO_SECONDS).contains(&seconds) {
        return Err(PushError::InvalidBody(format!(
            "timestamp: seconds:{seconds} nanos:{nanos} before 0001-01-01 or after 10000-01-01"
        )));
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(PushError::InvalidBody(format!(
            "timestamp: seconds:{seconds} nanos:{nanos}: nanos not in range [0, 1e9)"
        )));
    }
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(i64::from(nanos)))
        .ok_or_else(|| {
            PushError::InvalidBody(format!(
                "timestamp: seconds:{seconds} nanos:{nanos} does not fit in int64 nanoseconds"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenrir_proto::{EntryAdapter, LabelPairAdapter, StreamAdapter, Timestamp};
    use std::io::Write;

    fn proto_body() -> Vec<u8> {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: Bytes::from_static(br#"{job="x"}"#),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_007)),
                    line: Bytes::from_static(b"hello"),
                    structured_metadata: vec![LabelPairAdapter::new("trace_id", "t1")],
                    parsed: vec![],
                }],
                hash: 99,
            }],
            format: Bytes::new(),
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn expected_push() -> RawPush {
        RawPush {
            streams: vec![RawStream {
                labels: r#"{job="x"}"#.into(),
                entries: vec![PushEntry {
                    ts: 1_700_000_000_000_000_007,
                    line: "hello".into(),
                    structured_metadata: vec![("trace_id".into(), "t1".into())],
                }],
            }],
        }
    }

    const JSON_V1: &[u8] = br#"{"streams":[{"stream":{"job":"x"},"values":[["1700000000000000007","hello",{"trace_id":"t1"}]]}]}"#;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn deflate_raw(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Name, content type, content encoding, body.
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Vec<u8>,
    );

    fn decode(ct: Option<&str>, ce: Option<&str>, body: &[u8]) -> Result<RawPush> {
        decode_push(Dialect::V1, ct, ce, body, &DecodeLimits::default())
    }

    #[test]
    fn dialect_by_path() {
        assert_eq!(Dialect::from_path("/loki/api/v1/push"), Dialect::V1);
        assert_eq!(Dialect::from_path("/prefix/LOKI/API/V1/push"), Dialect::V1);
        assert_eq!(Dialect::from_path("/api/prom/push"), Dialect::Legacy);
    }

    #[test]
    fn every_decode_path_yields_the_same_push() {
        let proto = proto_body();
        let cases: Vec<Case> = vec![
            (
                "protobuf+snappy",
                Some("application/x-protobuf"),
                None,
                proto.clone(),
            ),
            (
                "protobuf, snappy encoding tolerated",
                Some("application/x-protobuf"),
                Some("snappy"),
                proto.clone(),
            ),
            (
                "protobuf, typo content type",
                Some("application/jsonn"),
                None,
                proto.clone(),
            ),
            (
                "gzip(protobuf+snappy)",
                Some("application/x-protobuf"),
                Some("gzip"),
                gzip(&proto),
            ),
            ("json", Some("application/json"), None, JSON_V1.to_vec()),
            (
                "json with params",
                Some("Application/JSON; charset=utf-8"),
                None,
                JSON_V1.to_vec(),
            ),
            (
                "gzip json",
                Some("application/json"),
                Some("gzip"),
                gzip(JSON_V1),
            ),
            (
                "raw deflate json",
                Some("application/json"),
                Some("deflate"),
                deflate_raw(JSON_V1),
            ),
            (
                "zlib deflate json",
                Some("application/json"),
                Some("deflate"),
                zlib(JSON_V1),
            ),
        ];
        for (name, ct, ce, body) in cases {
            assert_eq!(
                decode(ct, ce, &body).expect(name),
                expected_push(),
                "{name}"
            );
        }
    }

    #[test]
    fn legacy_json_on_the_legacy_path() {
        let body = br#"{"streams":[{"labels":"{job=\"x\"}","entries":[{"ts":"2023-11-14T22:13:20.000000007Z","line":"hello","structuredMetadata":{"trace_id":"t1"}}]}]}"#;
        let push = decode_push(
            Dialect::Legacy,
            Some("application/json"),
            None,
            body,
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(push, expected_push());
    }

    #[test]
    fn header_errors_have_loki_texts() {
        let cases: &[(Option<&str>, Option<&str>, u16, &str)] = &[
            (None, None, 400, "mime: no media type"),
            (Some(""), None, 400, "mime: no media type"),
            (Some("  ; charset=utf-8"), None, 400, "mime: no media type"),
            (
                Some("json"),
                None,
                400,
                "mime: expected slash after first token",
            ),
            (
                Some("application/json"),
                Some("zstd"),
                400,
                "Content-Encoding \"zstd\" not supported",
            ),
            (
                Some("application/json"),
                Some("br"),
                400,
                "Content-Encoding \"br\" not supported",
            ),
            (
                Some("application/json"),
                Some("GZIP"),
                400,
                "Content-Encoding \"GZIP\" not supported",
            ),
        ];
        for (ct, ce, status, text) in cases {
            let err = decode(*ct, *ce, JSON_V1).unwrap_err();
            assert_eq!((err.status(), err.to_string().as_str()), (*status, *text));
        }
    }

    #[test]
    fn corrupt_bodies_are_400() {
        let proto = proto_body();
        let framed = {
            let mut w = snap::write::FrameEncoder::new(Vec::new());
            w.write_all(&PushRequest::default().encode_to_vec())
                .unwrap();
            w.into_inner().unwrap()
        };
        let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
            ("unsnappied protobuf", None, b"\x0a\x05hello".to_vec()),
            ("truncated snappy", None, proto[..proto.len() / 2].to_vec()),
            ("framed snappy", None, framed),
            ("bad gzip", Some("gzip"), b"\x1f\x8b garbage".to_vec()),
            (
                "snappy of garbage",
                None,
                snap::raw::Encoder::new()
                    .compress_vec(b"\xff\xff\xff")
                    .unwrap(),
            ),
        ];
        for (name, ce, body) in cases {
            let err = decode(Some("application/x-protobuf"), ce, &body).expect_err(name);
            assert_eq!(err.status(), 400, "{name}: {err}");
        }
    }

    #[test]
    fn body_over_max_recv_is_413() {
        let limits = DecodeLimits {
            max_recv_msg_size: 10,
            max_decompressed_size: 100,
            ..DecodeLimits::default()
        };
        let err = decode_push(
            Dialect::V1,
            Some("application/json"),
            None,
            JSON_V1,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(
            err.to_string(),
            format!(
                "request body too large: message size too large than max ({} vs 10)",
                JSON_V1.len()
            )
        );
    }

    #[test]
    fn snappy_bomb_stops_at_the_announced_size() {
        // A real snappy block of 4 MiB of zeros is a few hundred KiB; refuse it by its
        // header before decompressing anything.
        let bomb = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4 * MIB])
            .unwrap();
        let limits = DecodeLimits {
            max_recv_msg_size: MIB,
            max_decompressed_size: MIB,
            ..DecodeLimits::default()
        };
        let err = decode_push(
            Dialect::V1,
            Some("application/x-protobuf"),
            None,
            &bomb,
            &limits,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PushError::DecompressedTooLarge {
                size: 4 * MIB,
                max: MIB
            }
        );
        assert_eq!(err.status(), 413);
        // A forged header announcing 2 GiB in a few bytes is refused without allocating.
        let forged = [0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let limits = DecodeLimits {
            max_recv_msg_size: MIB,
            max_decompressed_size: usize::MAX,
            ..DecodeLimits::default()
        };
        let err = decode_push(
            Dialect::V1,
            Some("application/x-protobuf"),
            None,
            &forged,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn gzip_bomb_stops_at_the_cap() {
        let limits = DecodeLimits {
            max_recv_msg_size: MIB,
            max_decompressed_size: MIB,
            ..DecodeLimits::default()
        };
        let eight_mib = vec![b'a'; 8 * MIB];
        for (encoding, bomb) in [
            ("gzip", gzip(&eight_mib)),
            ("deflate", deflate_raw(&eight_mib)),
            ("deflate", zlib(&eight_mib)),
        ] {
            assert!(bomb.len() < MIB);
            let err = decode_push(
                Dialect::V1,
                Some("application/json"),
                Some(encoding),
                &bomb,
                &limits,
            )
            .unwrap_err();
            // Decoding stopped one byte past the cap, not at 8 MiB.
            assert_eq!(
                err,
                PushError::BodyTooLarge {
                    size: MIB + 1,
                    max: MIB
                },
                "{encoding}"
            );
        }
    }

    /// `n_streams` streams of `per_stream` entries with `pairs` metadata pairs each, as
    /// small as protobuf allows (empty labels, timestamps and lines).
    fn tiny_proto(n_streams: usize, per_stream: usize, pairs: usize) -> Vec<u8> {
        let entry = EntryAdapter {
            timestamp: None,
            line: Bytes::new(),
            structured_metadata: vec![LabelPairAdapter::new("", ""); pairs],
            parsed: vec![],
        };
        let stream = StreamAdapter {
            labels: Bytes::new(),
            entries: vec![entry; per_stream],
            hash: 0,
        };
        let req = PushRequest {
            streams: vec![stream; n_streams],
            format: Bytes::new(),
        };
        req.encode_to_vec()
    }

    #[test]
    fn items_are_counted_on_the_wire_as_prost_decodes_them() {
        for (streams, entries, pairs) in [(0, 0, 0), (1, 0, 0), (3, 5, 0), (2, 4, 3)] {
            let wire = tiny_proto(streams, entries, pairs);
            assert_eq!(
                count_proto_items(&wire),
                ItemCounts {
                    streams,
                    entries: streams * entries,
                    pairs: streams * entries * pairs,
                }
            );
        }
        assert_eq!(
            count_proto_items(
                &snap::raw::Decoder::new()
                    .decompress_vec(&proto_body())
                    .unwrap()
            ),
            ItemCounts {
                streams: 1,
                entries: 1,
                pairs: 1
            }
        );
        // Truncated or garbage input counts what it can and never panics.
        let wire = tiny_proto(2, 3, 1);
        for cut in 0..wire.len() {
            let _ = count_proto_items(&wire[..cut]);
        }
        let _ = count_proto_items(&[0xff; 11]);
    }

    /// Empty entries cost 2 bytes on the wire and ~100 in memory: the counts are refused
    /// before prost allocates them, whatever the byte caps allow.
    #[test]
    fn too_many_streams_entries_or_pairs_are_413_before_decoding() {
        let limits = DecodeLimits {
            max_streams: 10,
            max_entries: 100,
            ..DecodeLimits::default()
        };
        let proto = |wire: Vec<u8>| {
            let body = snap::raw::Encoder::new().compress_vec(&wire).unwrap();
            decode_push(
                Dialect::V1,
                Some("application/x-protobuf"),
                None,
                &body,
                &limits,
            )
        };
        assert!(proto(tiny_proto(10, 10, 1)).is_ok());
        for (wire, what, count) in [
            (tiny_proto(11, 0, 0), "streams", 11),
            (tiny_proto(1, 101, 0), "entries", 101),
            (tiny_proto(1, 50, 3), "structured metadata pairs", 150),
        ] {
            let err = proto(wire).unwrap_err();
            assert_eq!(
                err,
                PushError::TooManyItems {
                    what,
                    count,
                    max: if what == "streams" { 10 } else { 100 }
                }
            );
            assert_eq!(err.status(), 413);
        }
        let entries: Vec<String> = (0..101).map(|i| format!("[\"{i}\",\"\"]")).collect();
        let json = format!(
            "{{\"streams\":[{{\"stream\":{{\"a\":\"b\"}},\"values\":[{}]}}]}}",
            entries.join(",")
        );
        let err = decode_push(
            Dialect::V1,
            Some("application/json"),
            None,
            json.as_bytes(),
            &limits,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body too large: 101 entries exceed the limit of 100 per push request"
        );
    }

    /// prost skips unknown fields of the deprecated group wire types (3 and 4); the counting
    /// walk stopped at them, so a group in front of the items hid them from the caps
    /// (found reviewing the caps for the fuzz campaign).
    #[test]
    fn unknown_groups_do_not_hide_items_from_the_counts() {
        let limits = DecodeLimits {
            max_streams: 10,
            max_entries: 100,
            ..DecodeLimits::default()
        };
        // Field 15 as a group holding a varint, a nested group (field 2) and bytes.
        let group = [0x7b, 0x08, 0x01, 0x13, 0x14, 0x0a, 0x01, b'x', 0x7c];
        let decode = |wire: &[u8]| {
            let body = snap::raw::Encoder::new().compress_vec(wire).unwrap();
            decode_push(
                Dialect::V1,
                Some("application/x-protobuf"),
                None,
                &body,
                &limits,
            )
        };
        let mut streams = group.to_vec();
        streams.extend_from_slice(&tiny_proto(11, 0, 0));
        let mut entries = group.to_vec();
        for _ in 0..101 {
            entries.extend_from_slice(&[0x12, 0x00]);
        }
        let mut one_stream = vec![0x0a];
        one_stream.extend_from_slice(&[entries.len() as u8 | 0x80, (entries.len() >> 7) as u8]);
        one_stream.extend_from_slice(&entries);
        for (wire, what, count) in [(streams, "streams", 11), (one_stream, "entries", 101)] {
            assert_eq!(
                count_proto_items(&wire),
                ItemCounts {
                    streams: if what == "streams" { 11 } else { 1 },
                    entries: if what == "streams" { 0 } else { 101 },
                    pairs: 0
                }
            );
            assert!(matches!(
                decode(&wire),
                Err(PushError::TooManyItems { what: w, count: c, .. }) if w == what && c == count
            ));
        }
        // Groups that do not end, or end with another field number, stop the walk; prost
        // refuses them as well.
        for wire in [&[0x7b, 0x08][..], &[0x7b, 0x84, 0x01], &[0x7c]] {
            assert!(PushRequest::decode(wire).is_err());
            let _ = count_proto_items(wire);
        }
        // Deep nesting ends the walk without exhausting the stack.
        let deep: Vec<u8> = std::iter::repeat_n(0x7b, 100_000).collect();
        assert_eq!(count_proto_items(&deep), ItemCounts::default());
    }

    #[test]
    fn proto_timestamps_are_range_checked() {
        assert_eq!(proto_timestamp_nanos(1, 2).unwrap(), 1_000_000_002);
        assert_eq!(proto_timestamp_nanos(-1, 0).unwrap(), -1_000_000_000);
        assert!(proto_timestamp_nanos(0, -1).is_err());
        assert!(proto_timestamp_nanos(0, 1_000_000_000).is_err());
        assert!(proto_timestamp_nanos(MAX_PROTO_SECONDS, 0).is_err());
        // Valid for protobuf, but beyond int64 nanoseconds (year 2262).
        assert!(proto_timestamp_nanos(10_000_000_000, 0).is_err());
    }

    #[test]
    fn invalid_utf8_lines_are_kept_lossily() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: Bytes::from_static(b"{}"),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp::from_unix_nanos(1)),
                    line: Bytes::from_static(b"a\xffb"),
                    ..Default::default()
                }],
                hash: 0,
            }],
            format: Bytes::new(),
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let push = decode(Some("application/x-protobuf"), None, &body).unwrap();
        assert_eq!(push.streams[0].entries[0].line, "a\u{fffd}b");
    }

    mod fuzz {
        use super::*;
        use crate::{parse_label_set, validate, ValidationConfig};
        use fenrir_common::Tenant;
        use proptest::prelude::*;

        const SMALL: DecodeLimits = DecodeLimits {
            max_recv_msg_size: 64 * 1024,
            max_decompressed_size: 64 * 1024,
            max_streams: 1000,
            max_entries: 1000,
        };

        fn any_header() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
            (
                prop::sample::select(vec![
                    None,
                    Some("application/json"),
                    Some("application/x-protobuf"),
                ]),
                prop::sample::select(vec![None, Some("gzip"), Some("deflate"), Some("snappy")]),
            )
        }

        /// Decodes and, when that works, validates: neither may panic.
        fn decode_and_validate(dialect: Dialect, ct: Option<&str>, ce: Option<&str>, body: &[u8]) {
            if let Ok(push) = decode_push(dialect, ct, ce, body, &SMALL) {
                let _ = validate(push, &Tenant::single(), &ValidationConfig::default(), 0);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic(
                body in prop::collection::vec(any::<u8>(), 0..512),
                (ct, ce) in any_header(),
                v1 in any::<bool>(),
            ) {
                let dialect = if v1 { Dialect::V1 } else { Dialect::Legacy };
                decode_and_validate(dialect, ct, ce, &body);
            }

            #[test]
            fn arbitrary_otlp_bytes_never_panic(
                body in prop::collection::vec(any::<u8>(), 0..512),
                json in any::<bool>(),
                gzip in any::<bool>(),
            ) {
                let ct = if json { "application/json" } else { "application/x-protobuf" };
                let ce = gzip.then_some("gzip");
                if let Ok(push) = crate::decode_otlp(Some(ct), ce, &body, &SMALL, 0) {
                    let _ = validate(push, &Tenant::single(), &ValidationConfig::default(), 0);
                }
            }

            #[test]
            fn snappy_wrapped_garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
                let wrapped = snap::raw::Encoder::new().compress_vec(&body).unwrap();
                decode_and_validate(Dialect::V1, Some("application/x-protobuf"), None, &wrapped);
            }

            #[test]
            fn mutated_valid_bodies_never_panic(
                flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                json in any::<bool>(),
            ) {
                let (ct, mut body) = if json {
                    ("application/json", JSON_V1.to_vec())
                } else {
                    ("application/x-protobuf", proto_body())
                };
                for (at, byte) in flips {
                    let i = at.index(body.len());
                    body[i] = byte;
                }
                decode_and_validate(Dialect::V1, Some(ct), None, &body);
            }

            #[test]
            fn arbitrary_label_strings_never_panic(s in "\\PC{0,64}") {
                let _ = parse_label_set(&s);
            }

            #[test]
            fn label_like_strings_never_panic(s in r#"[a-z_:{}=,"'`\\ \nxuU0-9]{0,40}"#) {
                let _ = parse_label_set(&s);
            }
        }
    }
}
