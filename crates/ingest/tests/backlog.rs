//! The write path while the object store fails: nothing acknowledged is lost, the WAL is
//! kept until the chunks are written, the backlog is counted, pushes are refused once it is
//! full, and a write the store kept despite failing leaves no second copy behind.

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fenrir_common::{Entry, LabelSet, MatchOp, Matcher, Tenant};
use fenrir_index::Index;
use fenrir_ingest::{rebuild_index, Error, IngestConfig, Ingester};
use fenrir_storage::{InMemoryStore, ObjectMeta, ObjectStore};

const HEALTHY: u8 = 0;
/// Every put fails before storing anything (the store is down).
const DOWN: u8 = 1;
/// Every put stores the object, then reports a failure (the answer was lost).
const LOSES_ANSWERS: u8 = 2;

/// An in-memory store whose puts can be made to fail.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemoryStore,
    mode: AtomicU8,
}

impl FlakyStore {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn unavailable() -> fenrir_storage::Error {
    fenrir_storage::Error::Unavailable {
        message: "connection refused".into(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for FlakyStore {
    async fn put(&self, key: &str, data: Bytes) -> fenrir_storage::Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Err(unavailable()),
            LOSES_ANSWERS => {
                self.inner.put(key, data).await?;
                Err(unavailable())
            }
            _ => self.inner.put(key, data).await,
        }
    }
    async fn get(&self, key: &str) -> fenrir_storage::Result<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> fenrir_storage::Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> fenrir_storage::Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> fenrir_storage::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> fenrir_storage::Result<()> {
        self.inner.delete(key).await
    }
}

fn open(dir: &std::path::Path, store: Arc<FlakyStore>, max_unflushed_bytes: u64) -> Ingester {
    let mut cfg = IngestConfig::with_wal_dir(dir.join("wal"));
    cfg.head_max_bytes = 2048;
    cfg.max_unflushed_bytes = max_unflushed_bytes;
    Ingester::open(cfg, Index::temporary().unwrap(), store).unwrap()
}

fn batch(from: i64, n: i64) -> Vec<Entry> {
    (from..from + n)
        .map(|i| Entry::new(1_000_000 + i, format!("entry {i} with some padding text")))
        .collect()
}

fn app() -> (Tenant, LabelSet, Matcher) {
    (
        Tenant::new("t1").unwrap(),
        LabelSet::from_pairs([("app", "api")]),
        Matcher::new(MatchOp::Eq, "app", "api").unwrap(),
    )
}

/// Entries the ingester holds in memory for the stream.
fn unflushed_entries(ing: &Ingester) -> u32 {
    let (tenant, _, all) = app();
    ing.recent_streams(&tenant, &[all], 0, i64::MAX)
        .iter()
        .map(|r| r.chunks.iter().map(|c| c.meta.entries).sum::<u32>() + r.head.len() as u32)
        .sum()
}

/// Entries the index says are in the store.
fn indexed_entries(index: &Index) -> u32 {
    let (tenant, _, all) = app();
    index
        .series(&tenant, &[all], 0, i64::MAX)
        .unwrap()
        .iter()
        .flat_map(|(fp, _)| index.chunks(&tenant, *fp, 0, i64::MAX).unwrap())
        .map(|r| r.entries)
        .sum()
}

fn wal_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_loses_nothing_and_keeps_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    let (tenant, labels, _) = app();
    let ing = open(dir.path(), store.clone(), u64::MAX);
    ing.push(&tenant, vec![(labels.clone(), batch(0, 300))])
        .await
        .unwrap();

    store.set(DOWN);
    let err = ing.flush_all().await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    let backlog = ing.backlog();
    assert!(backlog.unflushed_chunks >= 2, "{backlog:?}");
    assert!(backlog.unflushed_bytes > 0);
    assert_eq!(backlog.flush_failures, 1);
    assert_eq!(unflushed_entries(&ing), 300);
    assert!(store.list("").await.unwrap().is_empty());

    // Still down: more pushes are accepted and a crash loses nothing (the WAL has it all).
    ing.push(&tenant, vec![(labels.clone(), batch(300, 100))])
        .await
        .unwrap();
    assert!(ing.flush_all().await.is_err());
    ing.shutdown_wal();
    drop(ing);
    let ing = open(dir.path(), store.clone(), u64::MAX);
    assert_eq!(unflushed_entries(&ing), 400);
    assert!(ing.backlog().unflushed_chunks > 0, "replayed chunks count");

    // The store is back: everything is written once, and the WAL is released.
    store.set(HEALTHY);
    let stats = ing.flush_all().await.unwrap();
    assert!(stats.objects >= 1 && stats.chunks >= 2, "{stats:?}");
    assert_eq!(unflushed_entries(&ing), 0);
    assert_eq!(indexed_entries(ing.index()), 400);
    let backlog = ing.backlog();
    assert_eq!((backlog.unflushed_bytes, backlog.unflushed_chunks), (0, 0));
    assert_eq!(backlog.flushed_chunks, stats.chunks as u64);
    assert!(
        wal_files(dir.path()) <= 1,
        "only the active wal segment is left"
    );
    let rebuilt = Index::temporary().unwrap();
    rebuild_index(store.as_ref(), &rebuilt).await.unwrap();
    assert_eq!(indexed_entries(&rebuilt), 400);
    ing.shutdown_wal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_refused_only_while_the_backlog_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    let (tenant, labels, _) = app();
    let ing = open(dir.path(), store.clone(), 4096);
    store.set(DOWN);
    let mut accepted = 0;
    let refusal = loop {
        match ing
            .push(&tenant, vec![(labels.clone(), batch(accepted, 50))])
            .await
        {
            Ok(()) => accepted += 50,
            Err(e) => break e,
        }
        assert!(accepted < 100_000, "never refused");
    };
    assert!(
        matches!(refusal, Error::BacklogFull { limit: 4096, .. }),
        "{refusal:?}"
    );
    assert!(!refusal.is_client_error());
    let backlog = ing.backlog();
    assert!(backlog.unflushed_bytes >= 4096, "{backlog:?}");
    assert_eq!(backlog.refused_pushes, 1);
    // The refused batch was not stored.
    assert_eq!(unflushed_entries(&ing), accepted as u32);

    store.set(HEALTHY);
    ing.flush_all().await.unwrap();
    assert_eq!(ing.backlog().unflushed_bytes, 0);
    ing.push(&tenant, vec![(labels.clone(), batch(accepted, 50))])
        .await
        .unwrap();
    ing.flush_all().await.unwrap();
    assert_eq!(indexed_entries(ing.index()), accepted as u32 + 50);
    ing.shutdown_wal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_store_kept_despite_failing_is_not_left_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    let (tenant, labels, _) = app();
    let ing = open(dir.path(), store.clone(), u64::MAX);
    ing.push(&tenant, vec![(labels.clone(), batch(0, 200))])
        .await
        .unwrap();

    store.set(LOSES_ANSWERS);
    assert!(ing.flush_all().await.is_err());
    let kept = store.list("").await.unwrap();
    assert_eq!(
        kept.len(),
        1,
        "the store has the object the flush thinks failed"
    );

    store.set(HEALTHY);
    ing.flush_all().await.unwrap();
    let objects = store.list("").await.unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_ne!(objects[0].key, kept[0].key, "the failed key was deleted");
    let rebuilt = Index::temporary().unwrap();
    rebuild_index(store.as_ref(), &rebuilt).await.unwrap();
    assert_eq!(indexed_entries(&rebuilt), 200);
    assert_eq!(indexed_entries(ing.index()), 200);
    ing.shutdown_wal();
}
