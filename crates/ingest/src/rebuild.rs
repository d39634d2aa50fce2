//! Rebuilding the label index from the object store alone: every segment's footer lists
//! its chunks with labels and time bounds.
//!
//! One unreadable object (truncated, corrupt, foreign, deleted while listed) must not cost
//! the index every segment after it: it is skipped with a warning naming its key. An
//! object store that cannot be reached fails the rebuild, since skipping would silently
//! leave flushed data out of the index.

use fenrir_chunk::{footer_len_from_trailer, parse_footer, SegmentFooter, SEGMENT_TRAILER_LEN};
use fenrir_common::Tenant;
use fenrir_index::Index;
use fenrir_storage::{ObjectMeta, ObjectStore};

use crate::flush::chunk_ref;
use crate::{Error, Result};

/// Bytes read from a segment's end in the first request: footer and trailer of a typical
/// segment fit.
const FOOTER_GUESS_BYTES: u64 = 256 << 10;

/// What a rebuild found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RebuildStats {
    /// Segment objects whose chunks were indexed.
    pub segments: usize,
    /// Chunks indexed.
    pub chunks: usize,
    /// Segment objects skipped because they could not be read as segments.
    pub skipped: usize,
}

/// Why one object was not indexed.
enum Skip {
    /// Not a segment of ours, or damaged: skipped with this reason.
    Unreadable(String),
    /// The store or the index failed: the rebuild stops.
    Fatal(Error),
}

impl From<Error> for Skip {
    fn from(e: Error) -> Self {
        match e {
            // The object is damaged or not a segment.
            Error::Chunk(e) => Skip::Unreadable(e.to_string()),
            // Gone or changed between listing and reading: nothing to index from it.
            Error::Storage(
                e @ (fenrir_storage::Error::NotFound { .. }
                | fenrir_storage::Error::InvalidRange { .. }),
            ) => Skip::Unreadable(e.to_string()),
            other => Skip::Fatal(other),
        }
    }
}

impl From<fenrir_storage::Error> for Skip {
    fn from(e: fenrir_storage::Error) -> Self {
        Error::Storage(e).into()
    }
}

impl From<fenrir_chunk::Error> for Skip {
    fn from(e: fenrir_chunk::Error) -> Self {
        Error::Chunk(e).into()
    }
}

/// Reads every segment footer in `store` and records its chunks in `index`. Segments that
/// cannot be read are skipped with a warning and counted; an unreachable store or a
/// failing index is an error.
pub async fn rebuild_index(store: &dyn ObjectStore, index: &Index) -> Result<RebuildStats> {
    let mut stats = RebuildStats::default();
    for obj in store.list("").await? {
        let Some((tenant, rest)) = obj.key.split_once('/') else {
            continue;
        };
        if !rest.starts_with("seg/") || !obj.key.ends_with(".seg") {
            continue;
        }
        let Ok(tenant) = Tenant::new(tenant) else {
            tracing::warn!(key = obj.key, "skipping segment of an invalid tenant");
            stats.skipped += 1;
            continue;
        };
        let footer = match read_footer(store, &obj).await {
            Ok(footer) if footer.tenant == tenant.as_str() => footer,
            Ok(footer) => {
                // Indexing it would show one tenant's lines to another.
                tracing::warn!(
                    key = obj.key,
                    owner = footer.tenant,
                    "skipping segment whose footer names another tenant"
                );
                stats.skipped += 1;
                continue;
            }
            Err(Skip::Unreadable(reason)) => {
                tracing::warn!(key = obj.key, reason, "skipping unreadable segment");
                stats.skipped += 1;
                continue;
            }
            Err(Skip::Fatal(e)) => return Err(e),
        };
        let refs: Vec<_> = footer
            .chunks
            .iter()
            .map(|c| {
                (
                    c.labels.clone(),
                    chunk_ref(&obj.key, c.offset, c.len, &c.meta),
                )
            })
            .collect();
        stats.chunks += refs.len();
        stats.segments += 1;
        let index = index.clone();
        tokio::task::spawn_blocking(move || index.add_chunks(&tenant, &refs))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    }
    if stats.skipped > 0 {
        tracing::warn!(
            skipped = stats.skipped,
            segments = stats.segments,
            "index rebuilt without the segments that could not be read"
        );
    }
    Ok(stats)
}

/// The footer of one segment object, with one ranged GET for all but huge footers.
async fn read_footer(store: &dyn ObjectStore, obj: &ObjectMeta) -> Result<SegmentFooter, Skip> {
    let size = obj.size;
    let trailer_len = SEGMENT_TRAILER_LEN as u64;
    if size < trailer_len {
        return Err(Skip::Unreadable(format!(
            "{size} bytes is shorter than a segment trailer"
        )));
    }
    let guess_from = size.saturating_sub(FOOTER_GUESS_BYTES);
    let guess = store.get_range(&obj.key, guess_from..size).await?;
    let Some(trailer_at) = guess.len().checked_sub(SEGMENT_TRAILER_LEN) else {
        return Err(Skip::Unreadable("the store returned it short".into()));
    };
    let footer_len = footer_len_from_trailer(&guess.slice(trailer_at..))?;
    let Some(from) = size.checked_sub(trailer_len + footer_len) else {
        return Err(Skip::Unreadable(format!(
            "its footer of {footer_len} bytes is longer than the object"
        )));
    };
    let tail = if from >= guess_from {
        guess.slice((from - guess_from) as usize..)
    } else {
        store.get_range(&obj.key, from..size).await?
    };
    Ok(parse_footer(&tail)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use fenrir_common::{Entry, LabelSet, MatchOp, Matcher};
    use fenrir_storage::InMemoryStore;

    use super::*;
    use crate::{IngestConfig, Ingester};

    /// Two tenants' segments in a fresh store, flushed by a real ingester.
    async fn flushed_store(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemoryStore::new());
        let cfg = IngestConfig::with_wal_dir(dir.join("wal"));
        let ing = Ingester::open(cfg, Index::temporary().unwrap(), store.clone()).unwrap();
        for (tenant, round) in [("a", 0), ("b", 0), ("a", 1)] {
            let labels = LabelSet::from_pairs([("app", "api")]);
            let entries = (0..10)
                .map(|i| Entry::new(round * 100 + i, format!("{tenant} line {i}")))
                .collect();
            ing.push(&Tenant::new(tenant).unwrap(), vec![(labels, entries)])
                .await
                .unwrap();
            ing.flush_all().await.unwrap();
        }
        ing.shutdown_wal();
        store
    }

    fn entries_of(index: &Index, tenant: &str) -> u32 {
        let tenant = Tenant::new(tenant).unwrap();
        let all = [Matcher::new(MatchOp::Eq, "app", "api").unwrap()];
        index
            .series(&tenant, &all, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|(fp, _)| index.chunks(&tenant, fp, 0, i64::MAX).unwrap())
            .map(|c| c.entries)
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreadable_segments_are_skipped_and_the_rest_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = flushed_store(dir.path()).await;
        let keys: Vec<String> = store
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys.len(), 2);
        // The first of tenant a's segments loses its last byte (a broken trailer).
        let first = store.get(&keys[0]).await.unwrap();
        store
            .put(&keys[0], first.slice(..first.len() - 1))
            .await
            .unwrap();
        let b_key = store.list("b/").await.unwrap().remove(0).key;
        let b = store.get(&b_key).await.unwrap();
        // Foreign bytes, an object shorter than a trailer, and b's segment under a's prefix.
        for (key, bytes) in [
            (
                "a/seg/2020-01-01/0-foreign.seg",
                Bytes::from(vec![7u8; 4096]),
            ),
            ("a/seg/2020-01-01/1-tiny.seg", Bytes::from_static(b"x")),
            ("a/seg/2020-01-01/2-copied.seg", b),
        ] {
            store.put(key, bytes).await.unwrap();
        }

        let index = Index::temporary().unwrap();
        let stats = rebuild_index(store.as_ref(), &index).await.unwrap();
        assert_eq!(
            (stats.segments, stats.skipped),
            (2, 4),
            "a's second segment and b's are indexed: {stats:?}"
        );
        assert_eq!(entries_of(&index, "a"), 10);
        assert_eq!(entries_of(&index, "b"), 10);
    }

    /// A store that lists but cannot be read.
    #[derive(Debug)]
    struct Down(Arc<dyn ObjectStore>);

    #[async_trait::async_trait]
    impl ObjectStore for Down {
        async fn put(&self, key: &str, data: Bytes) -> fenrir_storage::Result<()> {
            self.0.put(key, data).await
        }
        async fn get(&self, _: &str) -> fenrir_storage::Result<Bytes> {
            Err(unavailable())
        }
        async fn get_range(
            &self,
            _: &str,
            _: std::ops::Range<u64>,
        ) -> fenrir_storage::Result<Bytes> {
            Err(unavailable())
        }
        async fn head(&self, key: &str) -> fenrir_storage::Result<ObjectMeta> {
            self.0.head(key).await
        }
        async fn list(&self, prefix: &str) -> fenrir_storage::Result<Vec<ObjectMeta>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> fenrir_storage::Result<()> {
            self.0.delete(key).await
        }
    }

    fn unavailable() -> fenrir_storage::Error {
        fenrir_storage::Error::Unavailable {
            message: "503 SlowDown".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_store_fails_the_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = Down(flushed_store(dir.path()).await);
        let err = rebuild_index(&store, &Index::temporary().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Storage(fenrir_storage::Error::Unavailable { .. })
            ),
            "{err}"
        );
    }
}
