//! Append throughput with fsync on: 1, 4 and 16 concurrent appenders of 100 KB records.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fenrir_wal::{Wal, WalOptions};

const RECORD_BYTES: usize = 100 * 1024;

fn append_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("wal_append_fsync");
    group.sample_size(10);
    for appenders in [1usize, 4, 16] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = WalOptions::new(dir.path());
        // Small segments so released ones keep the tempdir small during long runs.
        opts.segment_max_bytes = 8 << 20;
        let (wal, _) = Wal::open(opts).expect("open wal");
        let record = vec![0xA5u8; RECORD_BYTES];
        group.throughput(Throughput::Bytes((appenders * RECORD_BYTES) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(appenders),
            &appenders,
            |b, &appenders| {
                b.iter(|| {
                    runtime.block_on(async {
                        let tasks: Vec<_> = (0..appenders)
                            .map(|_| {
                                let wal = wal.clone();
                                let record = record.clone();
                                tokio::spawn(async move { wal.append(record).await })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("join").expect("append");
                        }
                    });
                    let active = wal.active_segment();
                    wal.release_through(active - 1).expect("release");
                });
            },
        );
        let stats = wal.stats();
        eprintln!(
            "{appenders} appenders: {} records in {} syncs",
            stats.records, stats.syncs
        );
        wal.shutdown();
    }
    group.finish();
}

criterion_group!(benches, append_throughput);
criterion_main!(benches);
