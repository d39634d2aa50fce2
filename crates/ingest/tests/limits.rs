//! The ingester's limits: active streams, per-stream rate, tenant rate.

use std::sync::Arc;

use fenrir_common::{Entry, LabelSet, Tenant};
use fenrir_index::Index;
use fenrir_ingest::{DiscardReason, ErrorKind, IngestConfig, Ingester, PushLimits};
use fenrir_storage::{InMemoryStore, ObjectStore};

fn open(dir: &std::path::Path) -> Ingester {
    let mut cfg = IngestConfig::with_wal_dir(dir.join("wal"));
    cfg.wal_fsync = false;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemoryStore::default());
    Ingester::open(cfg, Index::temporary().unwrap(), store).unwrap()
}

fn stream(app: &str, lines: &[&str], base: i64) -> (LabelSet, Vec<Entry>) {
    let entries = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Entry::new(base + i as i64, *l))
        .collect();
    (LabelSet::from_pairs([("app", app)]), entries)
}

fn stored(ing: &Ingester, tenant: &Tenant) -> usize {
    ing.recent_streams(tenant, &[], i64::MIN, i64::MAX)
        .iter()
        .map(|s| {
            s.head.len()
                + s.chunks
                    .iter()
                    .map(|c| c.meta.entries as usize)
                    .sum::<usize>()
        })
        .sum()
}

const T0: i64 = 1_720_339_200_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_streams_past_the_limit_are_refused_and_old_ones_stored() {
    let dir = tempfile::tempdir().unwrap();
    let ing = open(dir.path());
    let tenant = Tenant::new("acme").unwrap();
    let limits = PushLimits {
        max_streams: 2,
        ..PushLimits::unlimited()
    };
    ing.push_with_limits(
        &tenant,
        vec![stream("a", &["1"], T0), stream("b", &["1"], T0)],
        &limits,
    )
    .await
    .unwrap();
    let err = ing
        .push_with_limits(
            &tenant,
            vec![stream("a", &["2"], T0 + 10), stream("c", &["1", "2"], T0)],
            &limits,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRequests);
    assert_eq!(
        err.to_string(),
        "maximum active stream limit exceeded when trying to create stream {app=\"c\"}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'acme'"
    );
    let refused = err.refused().unwrap();
    assert_eq!(refused.discarded.len(), 1);
    assert_eq!(refused.discarded[0].reason, DiscardReason::StreamLimit);
    assert_eq!(refused.discarded[0].entries, 2);
    assert_eq!(refused.discarded[0].bytes, 2);
    assert_eq!(stored(&ing, &tenant), 3, "stream a's new entry is stored");
    // Another tenant has its own count.
    let other = Tenant::new("other").unwrap();
    ing.push_with_limits(&other, vec![stream("c", &["1"], T0)], &limits)
        .await
        .unwrap();
    ing.shutdown_wal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_its_rate_loses_the_entries_past_its_burst() {
    let dir = tempfile::tempdir().unwrap();
    let ing = open(dir.path());
    let tenant = Tenant::new("acme").unwrap();
    // 10 bytes of burst, refilled at 1 byte a second: the test is over long before.
    let limits = PushLimits {
        per_stream_rate: 1.0,
        per_stream_burst: 10.0,
        ..PushLimits::unlimited()
    };
    let err = ing
        .push_with_limits(
            &tenant,
            vec![
                stream("a", &["aaaa", "bbbb", "cccc", "dd"], T0),
                stream("b", &["eeee"], T0),
            ],
            &limits,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRequests);
    let msg = err.to_string();
    assert_eq!(
        msg,
        "entry with timestamp 2024-07-07 08:00:00.000000002 +0000 UTC ignored, reason: 'Per stream rate limit exceeded (limit: 1B/sec) while attempting to ingest for stream '{app=\"a\"}' totaling 4B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased',\nuser 'acme', total ignored: 1 out of 4 for stream: {app=\"a\"}"
    );
    let refused = err.refused().unwrap();
    assert_eq!(
        refused.discarded[0].reason,
        DiscardReason::PerStreamRateLimit
    );
    assert_eq!(
        (refused.discarded[0].entries, refused.discarded[0].bytes),
        (1, 4)
    );
    // "dd" still fitted after "cccc" was refused; stream b has its own bucket.
    assert_eq!(stored(&ing, &tenant), 4);
    ing.shutdown_wal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_rate_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ing = open(dir.path());
    let tenant = Tenant::new("acme").unwrap();
    let limits = PushLimits {
        ingestion_rate: 1.0,
        ingestion_burst: 100.0,
        ..PushLimits::unlimited()
    };
    ing.check_ingestion_rate(&tenant, &limits, 2, 60).unwrap();
    let err = ing
        .check_ingestion_rate(&tenant, &limits, 3, 50)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRequests);
    assert_eq!(
        err.to_string(),
        "ingestion rate limit exceeded for user acme (limit: 1 bytes/sec) while attempting to ingest '3' lines totaling '50' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
    );
    // The refused request took nothing: 40 bytes still fit.
    ing.check_ingestion_rate(&tenant, &limits, 1, 40).unwrap();
    // Tenants have their own buckets; a request over the burst never passes.
    let other = Tenant::new("other").unwrap();
    assert!(ing.check_ingestion_rate(&other, &limits, 1, 101).is_err());
    ing.check_ingestion_rate(&other, &limits, 1, 100).unwrap();
    ing.shutdown_wal();
}
