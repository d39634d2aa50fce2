use std::collections::BTreeMap;
use std::ops::Bound;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::store::{
    check_range, validate_key, validate_prefix, BlockingReader, ObjectMeta, ObjectStore,
};

/// An object store in a `BTreeMap`, for tests and single-process experiments.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    objects: Objects,
}

type Objects = Arc<Mutex<BTreeMap<String, Bytes>>>;

/// The objects, shared with blocking readers.
#[derive(Debug)]
struct Reader(Objects);

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
        lock(&self.objects)
    }

    fn object(&self, key: &str) -> Result<Bytes> {
        object(&self.objects, key)
    }
}

fn lock(objects: &Objects) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
    // The map is always consistent (single inserts/removes), so a poisoned lock is usable.
    objects
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn object(objects: &Objects, key: &str) -> Result<Bytes> {
    validate_key(key)?;
    lock(objects)
        .get(key)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })
}

fn read_range(objects: &Objects, key: &str, range: Range<u64>) -> Result<Bytes> {
    let data = object(objects, key)?;
    let range = check_range(key, &range, data.len() as u64)?;
    Ok(data.slice(range))
}

impl BlockingReader for Reader {
    fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        read_range(&self.0, key, range)
    }
}

#[async_trait::async_trait]
impl ObjectStore for InMemoryStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        self.objects().insert(key.to_owned(), data);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.object(key)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        read_range(&self.objects, key, range)
    }

    fn blocking_reader(&self) -> Option<Box<dyn BlockingReader>> {
        Some(Box::new(Reader(Arc::clone(&self.objects))))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let data = self.object(key)?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: data.len() as u64,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        Ok(self
            .objects()
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, data)| ObjectMeta {
                key: key.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        crate::testsuite::conformance_suite(Arc::new(InMemoryStore::new())).await;
    }
}
