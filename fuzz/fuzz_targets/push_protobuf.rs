//! `POST /loki/api/v1/push` with `Content-Type: application/x-protobuf`.
//!
//! First byte even: the rest is the body as sent (snappy block of a `PushRequest`).
//! First byte odd: the rest is the protobuf itself, snappy-compressed here, so that the
//! fuzzer reaches the protobuf decoder and validation without having to forge snappy.
#![no_main]

use fenrir_push::Dialect;
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    let dialect = if mode & 2 == 0 {
        Dialect::V1
    } else {
        Dialect::Legacy
    };
    common::decode_and_validate(dialect, Some("application/x-protobuf"), None, &body);
});
