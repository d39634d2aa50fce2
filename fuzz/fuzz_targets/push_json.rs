//! `POST /loki/api/v1/push` (first byte even) or `POST /api/prom/push` (odd) with
//! `Content-Type: application/json`; the rest is the body.
#![no_main]

use fenrir_push::Dialect;
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dialect = if mode & 1 == 0 {
        Dialect::V1
    } else {
        Dialect::Legacy
    };
    let content_type = if mode & 2 == 0 {
        "application/json"
    } else {
        "Application/JSON; charset=utf-8"
    };
    common::decode_and_validate(dialect, Some(content_type), None, body);
});
