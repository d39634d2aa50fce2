//! Label-set strings as pushed (`{app="api", "k.8s"="x"}`): parsing never panics, a parsed
//! set prints in Loki's canonical form and that form parses back to the same set; the
//! string also goes through push validation as a stream's labels.
#![no_main]

use fenrir_proto::PushEntry;
use fenrir_push::{parse_label_set, RawPush, RawStream};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(labels) = parse_label_set(text) {
        let printed = labels.to_string();
        let reparsed = parse_label_set(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse: {e}"));
        assert_eq!(reparsed, labels, "printed as {printed:?}, from {text:?}");
    }
    common::validate_raw(RawPush {
        streams: vec![RawStream {
            labels: text.to_owned(),
            entries: vec![PushEntry::new(common::NOW_NS, "level=warn msg=x")],
        }],
    });
});
