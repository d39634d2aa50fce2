//! Push decoding throughput: a promtail-like request (protobuf + snappy block) of 2000
//! JSON lines of about 230 bytes, decoded and validated with Loki's defaults.
//! Reported in lines per second.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fenrir_common::Tenant;
use fenrir_proto::{
    EntryAdapter, LabelPairAdapter, Message, PushRequest, StreamAdapter, Timestamp,
};
use fenrir_push::{decode_push, validate, DecodeLimits, Dialect, ValidationConfig};

const LINES: usize = 2000;
const NOW: i64 = 1_720_339_200_000_000_000;

fn request() -> Vec<u8> {
    let levels = ["info", "info", "debug", "warn", "error"];
    let streams = (0..4)
        .map(|s| StreamAdapter {
            labels: Bytes::from(format!(
                r#"{{app="api", env="prod", namespace="prod", pod="api-7778ddfcf-{s:05}", container="default", stream="stdout"}}"#
            )),
            entries: (0..LINES / 4)
                .map(|i| {
                    let n = s * LINES + i;
                    let line = format!(
                        r#"{{"ts":"2024-07-07T08:00:{:02}.{:03}Z","level":"{}","logger":"com.example.OrderService","msg":"request completed","method":"GET","path":"/api/orders/{n}","status":200,"duration_ms":{},"user":"kim"}}"#,
                        i % 60,
                        i % 1000,
                        levels[n % levels.len()],
                        n % 900
                    );
                    EntryAdapter {
                        timestamp: Some(Timestamp::from_unix_nanos(NOW - 60_000_000_000 + n as i64)),
                        line: Bytes::from(line),
                        structured_metadata: if i % 2 == 0 {
                            vec![LabelPairAdapter::new("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]
                        } else {
                            vec![]
                        },
                        parsed: vec![],
                    }
                })
                .collect(),
            hash: 0,
        })
        .collect();
    let req = PushRequest {
        streams,
        format: Bytes::new(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy encode")
}

fn bench_decode(c: &mut Criterion) {
    let body = request();
    let limits = DecodeLimits::default();
    let cfg = ValidationConfig::default();
    let tenant = Tenant::single();
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("protobuf_snappy_decode", |b| {
        b.iter(|| {
            decode_push(
                Dialect::V1,
                Some("application/x-protobuf"),
                None,
                black_box(&body),
                &limits,
            )
            .expect("decode")
        })
    });
    group.bench_function("protobuf_snappy_decode_validate", |b| {
        b.iter(|| {
            let raw = decode_push(
                Dialect::V1,
                Some("application/x-protobuf"),
                None,
                black_box(&body),
                &limits,
            )
            .expect("decode");
            let out = validate(raw, &tenant, &cfg, NOW).expect("validate");
            assert_eq!(out.accepted_entries, LINES);
            out
        })
    });
    let no_levels = ValidationConfig {
        discover_log_levels: false,
        ..ValidationConfig::default()
    };
    group.bench_function("protobuf_snappy_decode_validate_no_levels", |b| {
        b.iter(|| {
            let raw = decode_push(
                Dialect::V1,
                Some("application/x-protobuf"),
                None,
                black_box(&body),
                &limits,
            )
            .expect("decode");
            validate(raw, &tenant, &no_levels, NOW).expect("validate")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
