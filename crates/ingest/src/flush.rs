//! Sealing due heads and writing sealed chunks out: one segment object per tenant per
//! flush, recorded in the index, after which the WAL segments they covered are released.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fenrir_chunk::{EncodedChunk, SegmentWriter};
use fenrir_common::{LabelSet, Tenant};
use fenrir_index::ChunkRef;

use crate::ingester::{lock, read, write};
use crate::{Error, Ingester, Result};

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Segment objects written.
    pub objects: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Compressed bytes written.
    pub bytes: usize,
}

type Pending = HashMap<Tenant, Vec<(LabelSet, Arc<EncodedChunk>)>>;

impl Ingester {
    /// Seals every head and writes every sealed chunk out (Loki's `POST /flush`).
    pub async fn flush_all(&self) -> Result<FlushStats> {
        self.flush(true).await
    }

    /// One background cycle: seals heads due by age or idleness, and writes sealed chunks
    /// once enough have gathered or the oldest has waited long enough.
    pub async fn flush_due(&self) -> Result<FlushStats> {
        self.flush(false).await
    }

    async fn flush(&self, force: bool) -> Result<FlushStats> {
        let _one_at_a_time = self.inner.flush_lock.lock().await;
        let this = self.clone();
        let pending = tokio::task::spawn_blocking(move || this.seal_and_collect(force))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let Some(pending) = pending else {
            return Ok(FlushStats::default());
        };
        let mut stats = FlushStats::default();
        for (tenant, chunks) in pending {
            let written = self.write_segment(&tenant, &chunks).await?;
            stats.objects += 1;
            stats.chunks += chunks.len();
            stats.bytes += written;
            self.forget_flushed(&tenant, &chunks);
        }
        if stats.objects > 0 {
            // sled buffers writes in the process: the index records must be on disk before
            // the WAL that holds the same entries is released, or a crash loses them.
            let index = self.inner.index.clone();
            tokio::task::spawn_blocking(move || index.flush())
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        }
        let keep_from = self.min_needed_wal_segment();
        if keep_from > 0 {
            self.inner.wal.release_through(keep_from - 1)?;
        }
        Ok(stats)
    }

    /// Seals due heads; returns the sealed chunks to write, or `None` when it is not
    /// worth a flush yet.
    fn seal_and_collect(&self, force: bool) -> Result<Option<Pending>> {
        let cfg = &self.inner.cfg;
        let now = Instant::now();
        let mut pending: Pending = HashMap::new();
        let mut sealed_bytes = 0usize;
        let mut oldest_sealed = now;
        let tenants: Vec<_> = read(&self.inner.tenants)
            .iter()
            .map(|(t, m)| (t.clone(), m.clone()))
            .collect();
        for (tenant, map) in tenants {
            let streams: Vec<_> = read(&map).values().cloned().collect();
            for st in streams {
                let mut s = lock(&st);
                if force || s.head_due(now, cfg.max_chunk_age, cfg.chunk_idle_period) {
                    s.seal(cfg.seal_policy())?;
                }
                for c in &s.sealed {
                    sealed_bytes += c.chunk.bytes.len();
                    oldest_sealed = oldest_sealed.min(c.sealed_at);
                    pending
                        .entry(tenant.clone())
                        .or_default()
                        .push((s.labels.clone(), c.chunk.clone()));
                }
            }
            // Streams with nothing left and nothing recent are forgotten, bounding memory.
            write(&map).retain(|_, st| {
                let s = lock(st);
                !(s.is_empty() && now.duration_since(s.last_append) >= cfg.chunk_idle_period)
            });
        }
        let due = force
            || sealed_bytes >= cfg.flush_sealed_bytes
            || now.duration_since(oldest_sealed) >= cfg.flush_sealed_age;
        Ok((due && !pending.is_empty()).then_some(pending))
    }

    async fn write_segment(
        &self,
        tenant: &Tenant,
        chunks: &[(LabelSet, Arc<EncodedChunk>)],
    ) -> Result<usize> {
        let key = self.next_segment_key(tenant);
        let (bytes, refs) = {
            let mut writer = SegmentWriter::new(tenant);
            let mut refs = Vec::with_capacity(chunks.len());
            for (labels, chunk) in chunks {
                let loc = writer.add(labels, EncodedChunk::clone(chunk));
                refs.push((
                    labels.clone(),
                    chunk_ref(&key, loc.offset, loc.len, &chunk.meta),
                ));
            }
            (writer.finish(), refs)
        };
        let size = bytes.len();
        self.inner.store.put(&key, Bytes::from(bytes)).await?;
        let index = self.inner.index.clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || index.add_chunks(&tenant, &refs))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        tracing::debug!(key, chunks = chunks.len(), bytes = size, "flushed segment");
        Ok(size)
    }

    fn forget_flushed(&self, tenant: &Tenant, chunks: &[(LabelSet, Arc<EncodedChunk>)]) {
        let Some(map) = read(&self.inner.tenants).get(tenant).cloned() else {
            return;
        };
        let map = read(&map);
        for (labels, chunk) in chunks {
            if let Some(st) = map.get(&labels.fingerprint()) {
                lock(st).sealed.retain(|s| !Arc::ptr_eq(&s.chunk, chunk));
            }
        }
    }

    /// `<tenant>/seg/<YYYY-MM-DD>/<time-ordered id>.seg`: the day prefix spreads keys and
    /// lets retention drop whole days; tenants never share an object.
    fn next_segment_key(&self, tenant: &Tenant) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.inner.next_object_id.fetch_add(1, Ordering::Relaxed);
        let id = ((now.as_millis() as u64) << 20) | (seq & 0xf_ffff);
        let (y, m, d) = fenrir_common::time::civil_from_days((now.as_secs() / 86_400) as i64);
        format!(
            "{tenant}/seg/{y:04}-{m:02}-{d:02}/{id:016x}-{:08x}.seg",
            std::process::id()
        )
    }
}

/// The index entry of a chunk inside a segment; its id is derived from where it lives, so
/// an index rebuilt from the store gets the same ids.
pub(crate) fn chunk_ref(
    key: &str,
    offset: u64,
    len: u64,
    meta: &fenrir_chunk::ChunkMeta,
) -> ChunkRef {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key.as_bytes());
    h.update(&offset.to_le_bytes());
    ChunkRef {
        chunk_id: h.digest(),
        object_key: key.to_string(),
        offset,
        len,
        min_ts: meta.min_ts,
        max_ts: meta.max_ts,
        entries: meta.entries,
        raw_bytes: meta.raw_bytes,
    }
}
