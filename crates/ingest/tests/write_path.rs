//! The write path end to end on a temporary directory: WAL replay, flush, index rebuild.

use std::sync::Arc;

use fenrir_common::{Entry, LabelSet, MatchOp, Matcher, Tenant};
use fenrir_index::Index;
use fenrir_ingest::{rebuild_index, IngestConfig, Ingester};
use fenrir_storage::{LocalFsStore, ObjectStore};

fn entries(n: i64, base: i64) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry::new(base + i, format!("line {i} level=info")))
        .collect()
}

fn open(dir: &std::path::Path, store: Arc<dyn ObjectStore>) -> Ingester {
    let mut cfg = IngestConfig::with_wal_dir(dir.join("wal"));
    cfg.head_max_bytes = 4096;
    Ingester::open(cfg, Index::temporary().unwrap(), store).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_restart_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFsStore::new(dir.path().join("chunks")));
    let tenant = Tenant::new("t1").unwrap();
    let labels = LabelSet::from_pairs([("app", "api")]);
    let all = Matcher::new(MatchOp::Eq, "app", "api").unwrap();

    let ing = open(dir.path(), store.clone());
    ing.push(&tenant, vec![(labels.clone(), entries(500, 1_000))])
        .await
        .unwrap();
    // A retried batch is stored once.
    ing.push(&tenant, vec![(labels.clone(), entries(10, 1_490))])
        .await
        .unwrap();
    let recent = ing.recent_streams(&tenant, std::slice::from_ref(&all), 0, i64::MAX);
    assert_eq!(recent.len(), 1);
    ing.shutdown_wal();
    drop(ing);

    // Restart without a flush: the WAL brings everything back.
    let ing = open(dir.path(), store.clone());
    let recent = ing.recent_streams(&tenant, std::slice::from_ref(&all), 0, i64::MAX);
    assert_eq!(recent.len(), 1);
    let count: u32 =
        recent[0].chunks.iter().map(|c| c.meta.entries).sum::<u32>() + recent[0].head.len() as u32;
    assert!(count >= 500, "replayed {count} entries");

    let stats = ing.flush_all().await.unwrap();
    assert!(stats.chunks >= 1 && stats.objects == 1, "{stats:?}");
    assert!(ing
        .recent_streams(&tenant, std::slice::from_ref(&all), 0, i64::MAX)
        .is_empty());
    let series = ing
        .index()
        .series(&tenant, std::slice::from_ref(&all), 0, i64::MAX)
        .unwrap();
    assert_eq!(series.len(), 1);
    let refs = ing
        .index()
        .chunks(&tenant, series[0].0, 0, i64::MAX)
        .unwrap();
    let indexed: u32 = refs.iter().map(|r| r.entries).sum();
    assert_eq!(indexed, count);

    // The index can be rebuilt from the object store alone, identically.
    let rebuilt = Index::temporary().unwrap();
    let stats = rebuild_index(store.as_ref(), &rebuilt).await.unwrap();
    assert_eq!((stats.chunks, stats.skipped), (refs.len(), 0));
    let rebuilt_refs = rebuilt.chunks(&tenant, series[0].0, 0, i64::MAX).unwrap();
    assert_eq!(rebuilt_refs, refs);
    // Another tenant sees nothing.
    let other = Tenant::new("t2").unwrap();
    assert!(rebuilt
        .series(&other, &[all], 0, i64::MAX)
        .unwrap()
        .is_empty());
    ing.shutdown_wal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_too_far_behind_are_refused_with_lokis_message() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFsStore::new(dir.path().join("chunks")));
    let ing = open(dir.path(), store);
    let tenant = Tenant::new("t1").unwrap();
    let labels = LabelSet::from_pairs([("app", "api")]);
    let hour = 3_600_000_000_000i64;
    let base = 1_720_339_200_000_000_000i64;
    ing.push(
        &tenant,
        vec![(labels.clone(), vec![Entry::new(base + 2 * hour, "new")])],
    )
    .await
    .unwrap();
    let err = ing
        .push(
            &tenant,
            vec![(
                labels,
                vec![
                    Entry::new(base, "old"),
                    Entry::new(base + 2 * hour - 1, "ok"),
                ],
            )],
        )
        .await
        .unwrap_err();
    assert!(err.is_client_error());
    let msg = err.to_string();
    assert!(msg.starts_with("entry with timestamp 2024-07-07 08:00:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2024-07-07T08:00:00Z, oldest acceptable timestamp is: 2024-07-07T09:00:00Z',"), "{msg}");
    assert!(
        msg.ends_with("user 't1', total ignored: 1 out of 2 for stream: {app=\"api\"}"),
        "{msg}"
    );
    ing.shutdown_wal();
}

/// Memory stays near the budget however much is pushed: the push that goes over it seals
/// and flushes the largest heads early, and nothing is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_flushes_early_and_loses_nothing() {
    const BUDGET: usize = 256 << 10;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(fenrir_storage::InMemoryStore::new());
    let mut cfg = IngestConfig::with_wal_dir(dir.path().join("wal"));
    cfg.block_bytes = 8 << 10;
    cfg.memory_budget = BUDGET;
    let ing = Ingester::open(cfg, Index::temporary().unwrap(), store.clone()).unwrap();
    let tenant = Tenant::new("t1").unwrap();
    let (streams, per_push, pushes) = (20i64, 200i64, 80i64);
    let mut peak = 0;
    for round in 0..pushes {
        let batch = (0..streams)
            .map(|s| {
                let labels = LabelSet::from_pairs([("app", "api"), ("pod", &format!("p{s}"))]);
                let lines = (round * per_push..(round + 1) * per_push)
                    .map(|n| {
                        // Poorly compressible, like request ids.
                        let id = xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes());
                        Entry::new(n, format!("{{\"n\":{n},\"s\":{s},\"id\":\"{id:016x}\"}}"))
                    })
                    .collect();
                (labels, lines)
            })
            .collect();
        ing.push(&tenant, batch).await.unwrap();
        peak = peak.max(ing.memory_bytes());
    }
    // The early flushes run in the background.
    let mut waited = 0;
    while store.list("t1/").await.unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(waited < 100, "the budget flushed before any explicit flush");
    ing.flush_all().await.unwrap();
    assert_eq!(ing.memory_bytes(), 0);
    let stored_bytes: u64 = store
        .list("t1/")
        .await
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum();
    assert!(
        stored_bytes as usize > 8 * BUDGET && peak < 3 * BUDGET,
        "peak {peak} bytes in memory for {stored_bytes} bytes stored"
    );
    let all = Matcher::new(MatchOp::Eq, "app", "api").unwrap();
    let series = ing
        .index()
        .series(&tenant, std::slice::from_ref(&all), 0, i64::MAX)
        .unwrap();
    assert_eq!(series.len(), streams as usize);
    let mut stored = 0;
    for (fp, _) in series {
        let refs = ing.index().chunks(&tenant, fp, 0, i64::MAX).unwrap();
        stored += refs.iter().map(|r| i64::from(r.entries)).sum::<i64>();
    }
    assert_eq!(stored, streams * per_push * pushes);
    ing.shutdown_wal();
}

/// After a flush that stored everything, the WAL holds nothing to replay: a restart brings
/// nothing back into memory and the next flush writes no object (no duplicate lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flush_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFsStore::new(dir.path().join("chunks")));
    let tenant = Tenant::new("t1").unwrap();
    let labels = LabelSet::from_pairs([("app", "api")]);
    let all = Matcher::new(MatchOp::Eq, "app", "api").unwrap();
    let wal_files = || std::fs::read_dir(dir.path().join("wal")).unwrap().count();

    let ing = open(dir.path(), store.clone());
    ing.push(&tenant, vec![(labels.clone(), entries(300, 1_000))])
        .await
        .unwrap();
    assert_eq!(ing.flush_all().await.unwrap().objects, 1);
    let objects = store.list("t1/").await.unwrap().len();
    // Only the fresh active segment is left; a flush with nothing new keeps it.
    assert_eq!(wal_files(), 1);
    assert_eq!(ing.flush_all().await.unwrap().objects, 0);
    assert_eq!(wal_files(), 1);
    ing.shutdown_wal();
    drop(ing);

    let ing = open(dir.path(), store.clone());
    assert!(ing
        .recent_streams(&tenant, std::slice::from_ref(&all), 0, i64::MAX)
        .is_empty());
    assert_eq!(ing.memory_bytes(), 0);
    assert_eq!(ing.flush_all().await.unwrap().objects, 0);
    assert_eq!(store.list("t1/").await.unwrap().len(), objects);

    // What arrives after the flush is still replayed after a crash.
    ing.push(&tenant, vec![(labels.clone(), entries(5, 2_000))])
        .await
        .unwrap();
    ing.shutdown_wal();
    drop(ing);
    let ing = open(dir.path(), store.clone());
    let recent = ing.recent_streams(&tenant, std::slice::from_ref(&all), 0, i64::MAX);
    assert_eq!(recent.len(), 1);
    assert_eq!(ing.flush_all().await.unwrap().objects, 1);
    ing.shutdown_wal();
}
