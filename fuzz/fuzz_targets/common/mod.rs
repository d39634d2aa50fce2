//! Helpers shared by the push targets: the API's decode-then-validate path.

#![allow(dead_code)]

use fenrir_common::Tenant;
use fenrir_push::{decode_push, validate, DecodeLimits, Dialect, RawPush, ValidationConfig};

/// 2024-07-07T08:00:00Z, inside the conformance dataset's range, so that timestamps from the
/// seeds pass the age checks and reach the deeper validation steps.
pub const NOW_NS: i64 = 1_720_339_200_000_000_000;

/// Smaller than the server's caps so that a bomb costs milliseconds, not seconds, per run;
/// the capping code is the same. The item caps are low enough that inputs of a few KiB
/// cross them, so the fuzzer reaches the refusals and [`check_caps`] means something.
pub fn limits() -> DecodeLimits {
    DecodeLimits {
        max_recv_msg_size: 8 << 20,
        max_decompressed_size: 16 << 20,
        max_streams: 16,
        max_entries: 64,
    }
}

/// A decoded push holds no more streams, entries and metadata pairs than the caps: the
/// counts taken before decoding never miss items that decoding produces.
pub fn check_caps(raw: &RawPush) {
    let limits = limits();
    let entries = raw.streams.iter().flat_map(|s| &s.entries);
    let pairs: usize = entries.clone().map(|e| e.structured_metadata.len()).sum();
    let counts = (raw.streams.len(), entries.count(), pairs);
    assert!(
        counts.0 <= limits.max_streams
            && counts.1 <= limits.max_entries
            && counts.2 <= limits.max_entries,
        "decoded (streams, entries, pairs) {counts:?} past the caps"
    );
}

/// Decodes a push body as `POST /loki/api/v1/push` does, then validates what decoded.
pub fn decode_and_validate(
    dialect: Dialect,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) {
    if let Ok(raw) = decode_push(dialect, content_type, content_encoding, body, &limits()) {
        check_caps(&raw);
        validate_raw(raw);
    }
}

/// Runs Loki's validation on a decoded push with the default limits.
pub fn validate_raw(raw: RawPush) {
    let _ = validate(raw, &Tenant::single(), &ValidationConfig::default(), NOW_NS);
}
