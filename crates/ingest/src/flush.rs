//! Sealing due heads and writing sealed chunks out: segment objects of one tenant each,
//! recorded in the index, after which the WAL segments they covered are released.
//!
//! A failed write leaves its chunks sealed in memory (their entries stay in the WAL) for
//! the next attempt, which writes them under a new key. The failed key is remembered: the
//! store may have written it after all, and once its chunks are safely elsewhere it is
//! deleted, so the bucket does not keep two copies. While the store is down the sealed
//! chunks pile up; [`Ingester::push`] refuses new entries once they exceed
//! `max_unflushed_bytes`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fenrir_chunk::{EncodedChunk, SegmentWriter};
use fenrir_common::{LabelSet, Tenant};
use fenrir_index::ChunkRef;

use crate::ingester::{lock, read, write};
use crate::stream::Sealed;
use crate::{Error, Ingester, Result};

/// Largest segment object a flush writes; a bigger backlog becomes several objects.
const MAX_SEGMENT_BYTES: usize = 64 << 20;

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

/// The write path's backlog and flush counters, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushBacklog {
    /// Compressed bytes of sealed chunks not yet in the object store.
    pub unflushed_bytes: u64,
    /// Sealed chunks not yet in the object store.
    pub unflushed_chunks: u64,
    /// `max_unflushed_bytes`: pushes are refused beyond it.
    pub max_unflushed_bytes: u64,
    /// Flushes that failed since start.
    pub flush_failures: u64,
    /// Chunks written since start.
    pub flushed_chunks: u64,
    /// Compressed bytes written since start.
    pub flushed_bytes: u64,
    /// Pushes refused because the backlog was full.
    pub refused_pushes: u64,
    /// Bytes held by open blocks, compressed parts and sealed chunks.
    pub memory_bytes: u64,
    /// `memory_budget` (0: none).
    pub memory_budget: u64,
}

/// Backlog accounting shared by pushes and flushes.
#[derive(Debug, Default)]
pub(crate) struct FlushState {
    unflushed_bytes: AtomicU64,
    unflushed_chunks: AtomicU64,
    flush_failures: AtomicU64,
    flushed_chunks: AtomicU64,
    flushed_bytes: AtomicU64,
    refused_pushes: AtomicU64,
    /// Segment keys whose write failed, with the chunks they held that are not yet
    /// written anywhere else.
    maybe_written: Mutex<Vec<(String, Vec<Arc<EncodedChunk>>)>>,
}

type Pending = Vec<(Tenant, Vec<(LabelSet, Arc<EncodedChunk>)>)>;

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

    /// The backlog of sealed chunks and the flush counters.
    pub fn backlog(&self) -> FlushBacklog {
        let state = &self.inner.flush_state;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        FlushBacklog {
            unflushed_bytes: load(&state.unflushed_bytes),
            unflushed_chunks: load(&state.unflushed_chunks),
            max_unflushed_bytes: self.inner.cfg.max_unflushed_bytes,
            flush_failures: load(&state.flush_failures),
            flushed_chunks: load(&state.flushed_chunks),
            flushed_bytes: load(&state.flushed_bytes),
            refused_pushes: load(&state.refused_pushes),
            memory_bytes: self.inner.gauge.get() as u64,
            memory_budget: self.inner.cfg.memory_budget as u64,
        }
    }

    /// Refuses a push while the backlog is full: the store is not keeping up, and
    /// accepting more would grow memory without bound.
    pub(crate) fn check_backlog(&self) -> Result<()> {
        let state = &self.inner.flush_state;
        let unflushed_bytes = state.unflushed_bytes.load(Ordering::Relaxed);
        let limit = self.inner.cfg.max_unflushed_bytes;
        if unflushed_bytes < limit {
            return Ok(());
        }
        state.refused_pushes.fetch_add(1, Ordering::Relaxed);
        Err(Error::BacklogFull {
            unflushed_bytes,
            limit,
        })
    }

    /// Counts chunks just sealed into the backlog.
    pub(crate) fn note_sealed(&self, sealed: &[Sealed]) {
        let state = &self.inner.flush_state;
        let bytes: usize = sealed.iter().map(|s| s.chunk.bytes.len()).sum();
        state
            .unflushed_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        state
            .unflushed_chunks
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
    }

    async fn flush(&self, force: bool) -> Result<FlushStats> {
        let _one_at_a_time = self.inner.flush_lock.lock().await;
        let this = self.clone();
        let pending = tokio::task::spawn_blocking(move || this.seal_and_collect(force))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let mut stats = FlushStats::default();
        let mut outcome = Ok(());
        'tenants: for (tenant, chunks) in pending.unwrap_or_default() {
            for segment in split_segments(chunks) {
                match self.write_segment(&tenant, &segment).await {
                    Ok(written) => {
                        stats.objects += 1;
                        stats.chunks += segment.len();
                        stats.bytes += written;
                        self.forget_flushed(&tenant, &segment);
                    }
                    Err(e) => {
                        // The store is likely down: stop here, keep the rest for later.
                        self.inner
                            .flush_state
                            .flush_failures
                            .fetch_add(1, Ordering::Relaxed);
                        outcome = Err(e);
                        break 'tenants;
                    }
                }
            }
        }
        if stats.objects > 0 {
            let state = &self.inner.flush_state;
            state
                .flushed_chunks
                .fetch_add(stats.chunks as u64, Ordering::Relaxed);
            state
                .flushed_bytes
                .fetch_add(stats.bytes as u64, Ordering::Relaxed);
            // sled buffers writes in the process: the index records must be on disk before
            // the WAL that holds the same entries is released, or a crash loses them.
            let index = self.inner.index.clone();
            tokio::task::spawn_blocking(move || index.flush())
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        }
        // Release what the written segments covered, even after a failure.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.release_wal())
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        self.delete_superseded().await;
        outcome.map(|()| stats)
    }

    /// Deletes the WAL segments nothing in memory needs any more. When nothing needs any
    /// (every acknowledged entry is in a written segment object), the active segment is
    /// closed first so that it can go too: otherwise a restart would replay it and the next
    /// flush would store its lines a second time. Blocking (file creation and deletions).
    fn release_wal(&self) -> Result<()> {
        let wal = &self.inner.wal;
        if self.oldest_wal_segment_in_use().is_none() {
            // Only an optimisation: a failure leaves the segment to be replayed, as before.
            if let Err(e) = wal.rotate_if_written() {
                tracing::warn!(error = %e, "could not close the wal segment after a full flush");
            }
        }
        // Computed after the rotation: an append that raced with it is either in flight or
        // in a head by now, and keeps its segment.
        let keep_from = self.min_needed_wal_segment();
        if keep_from > 0 {
            wal.release_through(keep_from - 1)?;
        }
        Ok(())
    }

    /// Seals due heads; returns the sealed chunks to write, or `None` when it is not
    /// worth a flush yet.
    fn seal_and_collect(&self, force: bool) -> Result<Option<Pending>> {
        let cfg = &self.inner.cfg;
        let now = Instant::now();
        let mut pending: HashMap<Tenant, Vec<(LabelSet, Arc<EncodedChunk>)>> = HashMap::new();
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
                    let before = s.sealed.len();
                    s.seal(cfg.seal_policy())?;
                    self.note_sealed(&s.sealed[before..]);
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
        // Half the backlog limit is due too, so pushes are not refused while a flush that
        // could make room waits for its turn.
        let due = self.inner.budget.take_flush_request()
            || force
            || sealed_bytes >= cfg.flush_sealed_bytes
            || sealed_bytes as u64 >= cfg.max_unflushed_bytes / 2
            || now.duration_since(oldest_sealed) >= cfg.flush_sealed_age;
        let mut pending: Pending = pending.into_iter().collect();
        // Oldest data first, so a flush cut short by a failure still makes progress.
        pending.sort_by_key(|(_, chunks)| chunks.iter().map(|(_, c)| c.meta.min_ts).min());
        Ok((due && !pending.is_empty()).then_some(pending))
    }

    async fn write_segment(
        &self,
        tenant: &Tenant,
        chunks: &[(LabelSet, Arc<EncodedChunk>)],
    ) -> Result<usize> {
        let key = self.next_segment_key(tenant);
        let (bytes, refs) = {
            let (key, tenant, chunks) = (key.clone(), tenant.clone(), chunks.to_vec());
            tokio::task::spawn_blocking(move || build_segment(&key, &tenant, &chunks))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
        };
        let size = bytes.len();
        let written = async {
            self.inner.store.put(&key, bytes).await?;
            let index = self.inner.index.clone();
            let tenant = tenant.clone();
            tokio::task::spawn_blocking(move || index.add_chunks(&tenant, &refs))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(key, tenant = %tenant, chunks = chunks.len(), bytes = size, error = %e, "segment write failed; its chunks stay in memory and the wal for the next flush");
            let chunks = chunks.iter().map(|(_, c)| c.clone()).collect();
            lock(&self.inner.flush_state.maybe_written).push((key, chunks));
            return Err(e);
        }
        tracing::debug!(key, chunks = chunks.len(), bytes = size, "flushed segment");
        Ok(size)
    }

    fn forget_flushed(&self, tenant: &Tenant, chunks: &[(LabelSet, Arc<EncodedChunk>)]) {
        let is_flushed = |c: &Arc<EncodedChunk>| chunks.iter().any(|(_, f)| Arc::ptr_eq(c, f));
        for (_, still_pending) in lock(&self.inner.flush_state.maybe_written).iter_mut() {
            still_pending.retain(|c| !is_flushed(c));
        }
        let Some(map) = read(&self.inner.tenants).get(tenant).cloned() else {
            return;
        };
        let map = read(&map);
        let (mut bytes, mut count) = (0u64, 0u64);
        for (labels, chunk) in chunks {
            if let Some(st) = map.get(&labels.fingerprint()) {
                let mut s = lock(st);
                if s.sealed.iter().any(|c| Arc::ptr_eq(&c.chunk, chunk)) {
                    bytes += chunk.bytes.len() as u64;
                    count += 1;
                    s.forget_sealed(chunk);
                }
            }
        }
        let state = &self.inner.flush_state;
        state.unflushed_bytes.fetch_sub(bytes, Ordering::Relaxed);
        state.unflushed_chunks.fetch_sub(count, Ordering::Relaxed);
    }

    /// Deletes the keys of failed writes whose chunks have all been written since, in case
    /// the store kept them. Best effort: a key that cannot be deleted is tried again next
    /// time, and a leftover copy only costs space (queries collapse duplicates).
    async fn delete_superseded(&self) {
        let superseded: Vec<String> = {
            let mut maybe = lock(&self.inner.flush_state.maybe_written);
            let (done, waiting): (Vec<_>, Vec<_>) =
                maybe.drain(..).partition(|(_, chunks)| chunks.is_empty());
            *maybe = waiting;
            done.into_iter().map(|(key, _)| key).collect()
        };
        for key in superseded {
            if let Err(e) = self.inner.store.delete(&key).await {
                tracing::warn!(key, error = %e, "could not delete the key of a failed segment write; will retry");
                lock(&self.inner.flush_state.maybe_written).push((key, Vec::new()));
            }
        }
    }

    /// `<tenant>/seg/<YYYY-MM-DD>/<time-ordered id>.seg`: tenants never share an object or
    /// a prefix, the day lets retention drop whole days, and ids sort by write time.
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

/// Packs chunks into one segment; returns its bytes and the index entries of its chunks.
fn build_segment(
    key: &str,
    tenant: &Tenant,
    chunks: &[(LabelSet, Arc<EncodedChunk>)],
) -> (Bytes, Vec<(LabelSet, ChunkRef)>) {
    let mut writer = SegmentWriter::new(tenant);
    // One allocation of the final size: growing a segment by doubling copies it and
    // leaves holes of every size behind in the heap.
    // (The footer entry of a chunk is its labels plus under 80 bytes.)
    let footer: usize = chunks
        .iter()
        .map(|(labels, _)| {
            80 + labels
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>()
        })
        .sum();
    let data: usize = chunks.iter().map(|(_, c)| c.bytes.len()).sum();
    writer.reserve(data + footer + 128 + tenant.as_str().len());
    let mut refs = Vec::with_capacity(chunks.len());
    for (labels, chunk) in chunks {
        let loc = writer.add(labels, EncodedChunk::clone(chunk));
        refs.push((
            labels.clone(),
            chunk_ref(key, loc.offset, loc.len, &chunk.meta),
        ));
    }
    (Bytes::from(writer.finish()), refs)
}

/// Groups a tenant's chunks into segments of at most [`MAX_SEGMENT_BYTES`] (a bigger chunk
/// gets a segment of its own).
fn split_segments(
    chunks: Vec<(LabelSet, Arc<EncodedChunk>)>,
) -> Vec<Vec<(LabelSet, Arc<EncodedChunk>)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    let mut size = 0usize;
    for item in chunks {
        let len = item.1.bytes.len();
        if !current.is_empty() && size + len > MAX_SEGMENT_BYTES {
            segments.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(item);
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
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
