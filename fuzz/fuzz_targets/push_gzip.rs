//! Compressed push bodies through the API's decode entry, with `Content-Encoding`.
//!
//! First byte: bits 0-2 pick the encoding (gzip, deflate, snappy, none, or an unknown
//! one), bit 3 the media type (JSON or protobuf), bit 4 whether the rest is the body as sent
//! or a payload compressed here first (so the fuzzer also reaches the JSON and protobuf
//! decoders behind a valid stream), bit 5 zlib-wrapped or raw deflate.
#![no_main]

use std::io::Write;

use fenrir_push::Dialect;
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fn compress(encoding: &str, zlib: bool, payload: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::fast();
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(payload).expect("in memory");
            e.finish().expect("in memory")
        }
        "deflate" if zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(payload).expect("in memory");
            e.finish().expect("in memory")
        }
        "deflate" => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
            e.write_all(payload).expect("in memory");
            e.finish().expect("in memory")
        }
        _ => payload.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let encoding = match mode & 7 {
        0 | 1 => "gzip",
        2 | 3 => "deflate",
        4 => "snappy",
        5 => "",
        6 => "br",
        _ => "GZIP",
    };
    let json = mode & 8 != 0;
    let (content_type, payload) = if json {
        ("application/json", rest.to_vec())
    } else if mode & 16 != 0 {
        // A protobuf payload needs its snappy block framing before content encoding.
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => ("application/x-protobuf", b),
            Err(_) => return,
        }
    } else {
        ("application/x-protobuf", rest.to_vec())
    };
    let body = if mode & 16 != 0 {
        compress(encoding, mode & 32 != 0, &payload)
    } else {
        payload
    };
    let encoding = (!encoding.is_empty()).then_some(encoding);
    common::decode_and_validate(Dialect::V1, Some(content_type), encoding, &body);
});
