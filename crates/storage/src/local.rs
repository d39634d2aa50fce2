use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::store::{
    check_range, validate_key, validate_prefix, BlockingReader, ObjectMeta, ObjectStore,
    TEMP_MARKER,
};

/// An object store in a local directory: key `a/b/c` is the file `<root>/a/b/c`.
///
/// Writes go to a temporary file beside the target, are synced, then renamed into place, so a
/// crash leaves either the old object or the new one. Filesystem work runs on tokio's blocking
/// pool; [`ObjectStore::blocking_reader`] reads on the caller's thread instead.
///
/// Unlike S3, a key cannot be both an object and a prefix of other keys' directories
/// (`a/b` and `a/b/c`): the second write fails with [`Error::Io`]. Fenrir's key layout never
/// does this. Directories emptied by deletes are left in place.
#[derive(Debug, Clone)]
pub struct LocalFsStore {
    root: Arc<PathBuf>,
}

impl LocalFsStore {
    /// A store rooted at `root`. Nothing is touched until the first call; the directory is
    /// created by the first `put`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFsStore {
            root: Arc::new(root.into()),
        }
    }

    /// Validates `key` and runs `work` with its path on the blocking pool.
    async fn run<T, F>(&self, key: &str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &str) -> Result<T> + Send + 'static,
    {
        validate_key(key)?;
        let root = Arc::clone(&self.root);
        let key = key.to_owned();
        spawn_blocking(&key.clone(), move || work(&root.join(&key), &key)).await
    }
}

async fn spawn_blocking<T, F>(key: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| Error::Io {
            key: key.to_owned(),
            source: io::Error::other(format!("blocking task failed: {join}")),
        })?
}

/// Maps "this path is not a file" to [`Error::NotFound`] and the rest to [`Error::Io`].
fn read_error(key: &str, source: io::Error) -> Error {
    match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory => {
            Error::NotFound {
                key: key.to_owned(),
            }
        }
        _ => Error::Io {
            key: key.to_owned(),
            source,
        },
    }
}

fn io_error(key: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        key: key.to_owned(),
        source,
    }
}

/// Most files a [`LocalReader`] keeps open. A query reads each segment in many places
/// (a segment holds chunks of every stream), so the files it reads stay open until it ends;
/// past this many the least recently read one is closed, keeping descriptors bounded
/// however many queries run at once.
const READER_OPEN_FILES: usize = 64;

/// [`LocalFsStore`]'s blocking reader: `pread` on files kept open between reads, so that a
/// read costs one system call instead of open, stat, seek, read and close.
#[derive(Debug)]
struct LocalReader {
    root: Arc<PathBuf>,
    /// Open files with their keys and sizes, the most recently read last.
    open: Mutex<Vec<(String, Arc<File>, u64)>>,
}

impl LocalReader {
    fn file(&self, key: &str) -> Result<(Arc<File>, u64)> {
        if let Some(found) = self.cached(key) {
            return Ok(found);
        }
        // Opened without the lock, so that other threads' reads do not wait on it.
        let (file, size) = open_object(&self.root.join(key), key)?;
        let file = Arc::new(file);
        let mut open = self.lock();
        if let Some((_, file, size)) = open.iter().find(|(k, ..)| k == key) {
            // Another thread opened it meanwhile: one handle per key.
            return Ok((Arc::clone(file), *size));
        }
        if open.len() >= READER_OPEN_FILES {
            open.remove(0);
        }
        open.push((key.to_owned(), Arc::clone(&file), size));
        Ok((file, size))
    }

    fn cached(&self, key: &str) -> Option<(Arc<File>, u64)> {
        let mut open = self.lock();
        let i = open.iter().position(|(k, ..)| k == key)?;
        let entry = open.remove(i);
        let found = (Arc::clone(&entry.1), entry.2);
        open.push(entry);
        Some(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<File>, u64)>> {
        // Every update leaves the list consistent, so a poisoned lock is usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockingReader for LocalReader {
    fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        let (file, size) = self.file(key)?;
        let slice = check_range(key, &range, size)?;
        let mut data = vec![0u8; slice.len()];
        read_at(&file, &mut data, range.start).map_err(io_error(key))?;
        Ok(Bytes::from(data))
    }
}

/// Fills `buf` from `offset` without moving a shared file position.
#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens the object's file, refusing directories (which `File::open` accepts on Unix).
fn open_object(path: &Path, key: &str) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| read_error(key, e))?;
    let meta = file.metadata().map_err(|e| read_error(key, e))?;
    if !meta.is_file() {
        return Err(Error::NotFound {
            key: key.to_owned(),
        });
    }
    Ok((file, meta.len()))
}

fn temp_name(file_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter separates writes within it.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{file_name}{TEMP_MARKER}{:016x}", hasher.finish())
}

fn write_atomically(path: &Path, key: &str, data: &[u8]) -> Result<()> {
    let to_io = io_error(key);
    let (Some(dir), Some(file_name)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: "no file name",
        });
    };
    fs::create_dir_all(dir).map_err(&to_io)?;
    let temp = dir.join(temp_name(&file_name.to_string_lossy()));
    let written = (|| {
        let mut file = File::options().write(true).create_new(true).open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        // Best effort: the temp file may not exist or may already be renamed.
        let _ = fs::remove_file(&temp);
        return Err(to_io(e));
    }
    Ok(())
}

/// Every file under `root/<dir part of prefix>` whose key starts with `prefix`, sorted.
fn list_files(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let to_io = io_error(prefix);
    let start_dir = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    let mut found = Vec::new();
    let mut pending = vec![start_dir];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err(to_io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(&to_io)?;
            let file_type = entry.file_type().map_err(&to_io)?;
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            if !file_type.is_file() {
                continue;
            }
            // Names that are not UTF-8 or are in-flight temp files are not objects.
            let Some(key) = relative_key(root, &path) else {
                continue;
            };
            if key.contains(TEMP_MARKER) || !key.starts_with(prefix) {
                continue;
            }
            match entry.metadata() {
                Ok(meta) => found.push(ObjectMeta {
                    key,
                    size: meta.len(),
                }),
                // Deleted or replaced while listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(to_io(e)),
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut key = String::new();
    for component in relative.components() {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(component.as_os_str().to_str()?);
    }
    Some(key)
}

#[async_trait::async_trait]
impl ObjectStore for LocalFsStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.run(key, move |path, key| write_atomically(path, key, &data))
            .await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.run(key, |path, key| {
            let (mut file, size) = open_object(path, key)?;
            // The size is the file's own, not a client's: a local object is ours.
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut data).map_err(io_error(key))?;
            Ok(Bytes::from(data))
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.run(key, move |path, key| {
            let (mut file, size) = open_object(path, key)?;
            let slice = check_range(key, &range, size)?;
            let mut data = vec![0u8; slice.len()];
            file.seek(SeekFrom::Start(range.start))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(io_error(key))?;
            Ok(Bytes::from(data))
        })
        .await
    }

    fn blocking_reader(&self) -> Option<Box<dyn BlockingReader>> {
        Some(Box::new(LocalReader {
            root: Arc::clone(&self.root),
            open: Mutex::new(Vec::new()),
        }))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run(key, |path, key| {
            let meta = fs::metadata(path).map_err(|e| read_error(key, e))?;
            if !meta.is_file() {
                return Err(Error::NotFound {
                    key: key.to_owned(),
                });
            }
            Ok(ObjectMeta {
                key: key.to_owned(),
                size: meta.len(),
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let root = Arc::clone(&self.root);
        let owned = prefix.to_owned();
        spawn_blocking(prefix, move || list_files(&root, &owned)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.run(key, |path, key| match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) => match read_error(key, e) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsStore::new(dir.path().join("objects"));
        crate::testsuite::conformance_suite(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn keys_map_to_files_and_temp_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsStore::new(dir.path());
        store
            .put("t1/seg/day/x.seg", Bytes::from_static(b"data"))
            .await
            .unwrap();
        assert_eq!(
            fs::read(dir.path().join("t1/seg/day/x.seg")).unwrap(),
            b"data"
        );
        // What a crash in the middle of a put leaves behind.
        fs::write(
            dir.path().join("t1/seg/day/y.seg.tmp-0123456789abcdef"),
            b"partial",
        )
        .unwrap();
        let listed = store.list("t1/").await.unwrap();
        assert_eq!(
            listed,
            vec![ObjectMeta {
                key: "t1/seg/day/x.seg".into(),
                size: 4
            }]
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("t1/seg/day"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "the put itself left no temp file");
    }

    #[tokio::test]
    async fn a_directory_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsStore::new(dir.path());
        store.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        assert!(matches!(store.get("a").await, Err(Error::NotFound { .. })));
        assert!(matches!(store.head("a").await, Err(Error::NotFound { .. })));
        assert!(matches!(
            store.get_range("a", 0..0).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store.get("a/b/c").await,
            Err(Error::NotFound { .. })
        ));
        store.delete("a").await.unwrap();
        assert_eq!(store.get("a/b").await.unwrap(), Bytes::from_static(b"x"));
    }

    #[tokio::test]
    async fn listing_a_missing_root_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsStore::new(dir.path().join("never-created"));
        assert!(store.list("").await.unwrap().is_empty());
        assert!(store.list("a/b/").await.unwrap().is_empty());
    }
}
