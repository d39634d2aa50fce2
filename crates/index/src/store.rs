//! Opening the index and writing to it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use fenrir_common::{Fingerprint, LabelSet, Tenant};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Batch;

use crate::keys::{self, SeriesRecord};
use crate::{ChunkRef, Error, Result};

/// The label index of all tenants: stream label postings and chunk references by time.
///
/// Cheap to clone; clones share the database. Every call is synchronous and may do disk
/// I/O, so async callers run it on a blocking thread.
#[derive(Clone)]
pub struct Index {
    pub(crate) db: sled::Db,
    pub(crate) series: sled::Tree,
    pub(crate) postings: sled::Tree,
    pub(crate) chunks: sled::Tree,
    pub(crate) chunk_ids: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// Serialises writers: updates read series records, then write all trees in one
    /// transaction, and sled transactions cannot scan ranges, so the read-modify-write
    /// must not interleave with another writer's.
    write_lock: Arc<Mutex<()>>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no counts: `Tree::len` scans the whole tree.
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

/// One batch per tree, applied together in one transaction.
#[derive(Default)]
struct Batches {
    series: Batch,
    postings: Batch,
    chunks: Batch,
    chunk_ids: Batch,
}

impl Index {
    /// Opens (or creates) the index stored in directory `path`.
    pub fn open(path: &Path) -> Result<Index> {
        let db = sled::Config::new().path(path).open()?;
        tracing::info!(path = %path.display(), "opened label index");
        Index::from_db(db)
    }

    /// An index in a temporary directory that is removed when the last clone is dropped.
    pub fn temporary() -> Result<Index> {
        Index::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Index> {
        let index = Index {
            series: db.open_tree(keys::SERIES_TREE)?,
            postings: db.open_tree(keys::POSTINGS_TREE)?,
            chunks: db.open_tree(keys::CHUNKS_TREE)?,
            chunk_ids: db.open_tree(keys::CHUNK_IDS_TREE)?,
            meta: db.open_tree(keys::META_TREE)?,
            db,
            write_lock: Arc::default(),
        };
        index.check_version()?;
        Ok(index)
    }

    fn check_version(&self) -> Result<()> {
        let supported = keys::FORMAT_VERSION;
        match self.meta.get(keys::VERSION_KEY)? {
            Some(raw) => {
                let found = keys::decode_version(&raw)?;
                if found != supported {
                    return Err(Error::IncompatibleVersion { found, supported });
                }
            }
            // Data without a version was not written by us: refuse rather than misread it.
            None if !self.series.is_empty() || !self.chunks.is_empty() => {
                return Err(Error::IncompatibleVersion {
                    found: 0,
                    supported,
                });
            }
            None => {
                self.meta
                    .insert(keys::VERSION_KEY, &supported.to_be_bytes())?;
            }
        }
        Ok(())
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic in another writer leaves nothing broken.
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records chunks and their series. Idempotent: a chunk whose `chunk_id` is already
    /// recorded for its series is skipped. All changes of one call commit atomically.
    pub fn add_chunks(&self, tenant: &Tenant, chunks: &[(LabelSet, ChunkRef)]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let tp = keys::tenant_prefix(tenant)?;
        let _guard = self.lock_writes();
        let mut batches = Batches::default();
        // Per touched series: its updated record and whether it is new.
        let mut touched: BTreeMap<Fingerprint, (SeriesRecord, bool)> = BTreeMap::new();
        let mut seen: HashSet<(Fingerprint, u64)> = HashSet::new();
        let mut added = 0usize;
        for (labels, chunk) in chunks {
            let fp = labels.fingerprint();
            if !seen.insert((fp, chunk.chunk_id)) {
                continue;
            }
            let id_key = keys::chunk_id_key(&tp, fp, chunk.chunk_id);
            if self.chunk_ids.contains_key(&id_key)? {
                continue;
            }
            let (record, _) = match touched.entry(fp) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let existing = self.series_record(&tp, fp)?;
                    let is_new = existing.is_none();
                    let record = existing.unwrap_or_else(|| SeriesRecord::new(labels.clone()));
                    e.insert((record, is_new))
                }
            };
            if record.labels != *labels {
                return Err(Error::FingerprintCollision {
                    tenant: tenant.to_string(),
                    fingerprint: fp,
                    existing: record.labels.to_string(),
                    new: labels.to_string(),
                });
            }
            record.extend(chunk);
            batches.chunks.insert(
                keys::chunk_key(&tp, fp, chunk.max_ts, chunk.chunk_id),
                keys::encode_chunk(chunk)?,
            );
            batches
                .chunk_ids
                .insert(id_key, &keys::encode_max_ts(chunk.max_ts));
            added += 1;
        }
        if added == 0 {
            tracing::debug!(%tenant, "all chunks already indexed");
            return Ok(());
        }
        let mut new_series = 0usize;
        for (fp, (record, is_new)) in &touched {
            batches
                .series
                .insert(keys::series_key(&tp, *fp), record.encode()?);
            if *is_new {
                new_series += 1;
                for (name, value) in record.labels.iter() {
                    batches
                        .postings
                        .insert(keys::posting_key(&tp, name, value, *fp)?, &[]);
                }
            }
        }
        self.apply(&batches)?;
        tracing::debug!(%tenant, chunks = added, new_series, "indexed chunks");
        Ok(())
    }

    /// Removes chunks of one series by id; unknown ids are ignored. A series left without
    /// chunks disappears from the index entirely.
    pub fn delete_chunks(&self, tenant: &Tenant, fp: Fingerprint, chunk_ids: &[u64]) -> Result<()> {
        if chunk_ids.is_empty() {
            return Ok(());
        }
        let tp = keys::tenant_prefix(tenant)?;
        let _guard = self.lock_writes();
        let Some(record) = self.series_record(&tp, fp)? else {
            return Ok(());
        };
        let mut batches = Batches::default();
        let mut doomed: HashSet<Vec<u8>> = HashSet::new();
        for &id in chunk_ids {
            let id_key = keys::chunk_id_key(&tp, fp, id);
            if let Some(raw) = self.chunk_ids.get(&id_key)? {
                let chunk_key = keys::chunk_key(&tp, fp, keys::decode_max_ts(&raw)?, id);
                batches.chunks.remove(chunk_key.as_slice());
                batches.chunk_ids.remove(id_key);
                doomed.insert(chunk_key);
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        // Recompute the series' time span from the chunks that stay.
        let series_key = keys::series_key(&tp, fp);
        let mut rebuilt = SeriesRecord::new(record.labels.clone());
        let mut survivors = 0usize;
        for item in self.chunks.scan_prefix(&series_key) {
            let (key, value) = item?;
            if doomed.contains(key.as_ref()) {
                continue;
            }
            rebuilt.extend(&keys::decode_chunk(&key, &value, series_key.len())?);
            survivors += 1;
        }
        if survivors == 0 {
            batches.series.remove(series_key);
            for (name, value) in record.labels.iter() {
                batches
                    .postings
                    .remove(keys::posting_key(&tp, name, value, fp)?);
            }
        } else {
            batches.series.insert(series_key, rebuilt.encode()?);
        }
        self.apply(&batches)?;
        tracing::debug!(%tenant, fingerprint = fp, chunks = doomed.len(), survivors, "deleted chunks");
        Ok(())
    }

    /// Drops every tenant's series and chunks, before a rebuild from segment footers.
    pub fn clear(&self) -> Result<()> {
        let _guard = self.lock_writes();
        for tree in [&self.series, &self.postings, &self.chunks, &self.chunk_ids] {
            tree.clear()?;
        }
        tracing::info!("cleared label index");
        Ok(())
    }

    /// Makes every completed write durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// The tenants that have at least one series, sorted.
    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        let mut tenants = Vec::new();
        let mut from = Vec::new();
        // One seek per tenant: jump past each tenant's keys once its name is known.
        while let Some(item) = self.series.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let (tenant, prefix_len) = keys::split_tenant(&key, keys::SERIES_TREE)?;
            tenants.push(tenant);
            match key.get(..prefix_len).and_then(keys::prefix_end) {
                Some(next) => from = next,
                None => break,
            }
        }
        tenants.sort();
        Ok(tenants)
    }

    pub(crate) fn series_record(&self, tp: &[u8], fp: Fingerprint) -> Result<Option<SeriesRecord>> {
        self.series
            .get(keys::series_key(tp, fp))?
            .map(|raw| SeriesRecord::decode(&raw))
            .transpose()
    }

    fn apply(&self, batches: &Batches) -> Result<()> {
        (&self.series, &self.postings, &self.chunks, &self.chunk_ids)
            .transaction(|(series, postings, chunks, chunk_ids)| {
                series.apply_batch(&batches.series)?;
                postings.apply_batch(&batches.postings)?;
                chunks.apply_batch(&batches.chunks)?;
                chunk_ids.apply_batch(&batches.chunk_ids)?;
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => Error::Storage(e),
            })
    }
}
