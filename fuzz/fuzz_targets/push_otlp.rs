//! `POST /otlp/v1/logs`: first byte bit 0 picks protobuf or OTLP/JSON, bits 1-2 the
//! encoding (none, gzip, zstd, or deflate which the endpoint refuses); the rest is the body.
//! Decoded requests go through validation like any push.
#![no_main]

use fenrir_push::decode_otlp;
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let content_type = if mode & 1 == 0 {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    let encoding = match (mode >> 1) & 3 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("zstd"),
        _ => Some("deflate"),
    };
    if let Ok(raw) = decode_otlp(
        Some(content_type),
        encoding,
        body,
        &common::limits(),
        common::NOW_NS,
    ) {
        common::check_caps(&raw);
        common::validate_raw(raw);
    }
});
