use std::ops::Range;

use bytes::Bytes;

use crate::error::{Error, Result};

/// An object's key and size, as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectMeta {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A flat key → bytes store: Fenrir's source of truth.
///
/// Keys are `/`-separated strings following [`validate_key`]; there are no directories, only
/// keys sharing prefixes (as on S3). Used as `Arc<dyn ObjectStore>`.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `data` under `key`, replacing any previous object. Atomic: readers see the old
    /// object or the new one, never a mix.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// The whole object, or [`Error::NotFound`].
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Bytes `range.start..range.end` of the object. A range that is reversed or ends past the
    /// object is [`Error::InvalidRange`], never clamped; an empty range within it is fine.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// The object's size, or [`Error::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Every object whose key starts with `prefix` (plain string prefix, not a path), sorted
    /// by key bytes.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes the object; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// A reader of ranges for threads that may block, for stores that need no async I/O
    /// (local files, memory): it saves `get_range`'s trip through the runtime on every
    /// read, which costs more than reading a small chunk from the page cache. `None` (the
    /// default, and S3): read with `get_range`.
    fn blocking_reader(&self) -> Option<Box<dyn BlockingReader>> {
        None
    }
}

/// Synchronous range reads (see [`ObjectStore::blocking_reader`]). Never call it from an
/// async task: it blocks on the filesystem.
///
/// Made for one query: it may keep the objects it read open until dropped, so each read
/// sees a whole version of its object, but not necessarily the newest.
pub trait BlockingReader: Send + Sync + std::fmt::Debug {
    /// [`ObjectStore::get_range`], with the same errors.
    fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
}

/// Part of a key, reserved for the local store's temporary files.
pub(crate) const TEMP_MARKER: &str = ".tmp-";

/// Checks the key rules shared by every store, so that a key valid on one is valid on all:
/// not empty, relative (no leading `/`), no empty, `.` or `..` segments (so no trailing or
/// doubled `/`), no backslash or NUL, and no segment containing `.tmp-` (reserved for
/// in-flight writes).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "empty key"));
    }
    validate_segments(key, key.split('/'))
}

/// Checks a list prefix: any string that could start a valid key.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    // The part after the last `/` may be a partial segment, possibly empty.
    match prefix.rsplit_once('/') {
        None => validate_characters(prefix, prefix),
        Some((dirs, last)) => {
            validate_segments(prefix, dirs.split('/'))?;
            validate_characters(prefix, last)
        }
    }
}

fn validate_segments<'a>(key: &str, segments: impl Iterator<Item = &'a str>) -> Result<()> {
    for segment in segments {
        match segment {
            "" => return Err(invalid(key, "empty path segment")),
            "." | ".." => return Err(invalid(key, "relative path segment")),
            _ => validate_characters(key, segment)?,
        }
    }
    Ok(())
}

fn validate_characters(key: &str, segment: &str) -> Result<()> {
    if segment.contains('\\') {
        return Err(invalid(key, "backslash"));
    }
    if segment.contains('\0') {
        return Err(invalid(key, "NUL byte"));
    }
    if segment.contains(TEMP_MARKER) {
        return Err(invalid(key, "reserved \".tmp-\" in key"));
    }
    Ok(())
}

fn invalid(key: &str, reason: &'static str) -> Error {
    Error::InvalidKey {
        key: key.to_owned(),
        reason,
    }
}

/// Checks `range` against an object of `size` bytes and converts it to slice indices.
pub(crate) fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<Range<usize>> {
    let out_of_range = || Error::InvalidRange {
        key: key.to_owned(),
        start: range.start,
        end: range.end,
        size,
    };
    if range.start > range.end || range.end > size {
        return Err(out_of_range());
    }
    let start = usize::try_from(range.start).map_err(|_| out_of_range())?;
    let end = usize::try_from(range.end).map_err(|_| out_of_range())?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for good in [
            "a",
            "tenant/seg/2024-01-01/01HX.seg",
            "a.b/c-d_e",
            "..a/b..",
            "ü/ß",
        ] {
            validate_key(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, reason) in [
            ("", "empty key"),
            ("/abs", "empty path segment"),
            ("a//b", "empty path segment"),
            ("a/", "empty path segment"),
            ("a/../b", "relative path segment"),
            ("..", "relative path segment"),
            ("./a", "relative path segment"),
            ("a\\b", "backslash"),
            ("a\0b", "NUL byte"),
            ("a/b.tmp-1234", "reserved \".tmp-\" in key"),
        ] {
            match validate_key(bad) {
                Err(Error::InvalidKey { key, reason: got }) => {
                    assert_eq!((key.as_str(), got), (bad, reason));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn prefix_rules() {
        for good in ["", "a", "a/", "a/b", "tenant/seg/"] {
            validate_prefix(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["/", "/a", "a//", "../", "a/../", "a\\", "a\0"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_checked_not_clamped() {
        assert_eq!(check_range("k", &(0..10), 10).unwrap(), 0..10);
        assert_eq!(check_range("k", &(10..10), 10).unwrap(), 10..10);
        assert!(check_range("k", &(5..11), 10).is_err());
        assert!(check_range("k", &(11..11), 10).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 6..5;
        assert!(check_range("k", &reversed, 10).is_err());
    }
}
