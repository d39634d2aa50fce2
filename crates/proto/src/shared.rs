//! Pushed entries whose texts share the request buffer they were decoded from.
//!
//! A push of 2000 lines would otherwise allocate (and later free) a `String` per line and
//! per structured-metadata name and value: with 1000 streams that malloc traffic was the
//! part of ingest CPU that grew faster than the lines.

use bytes::Bytes;
use fenrir_common::{Entry, Timestamp};

/// UTF-8 text held in a [`Bytes`]: a slice of a request body, a static string or an owned
/// one, all cheap to clone. Checked on construction; without `unsafe` the `&str` view is
/// checked again on access (fast for the ASCII of log lines), so hot paths that only copy
/// use [`SharedText::as_bytes`].
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedText(Bytes);

impl SharedText {
    /// Text from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        SharedText(Bytes::from_static(s.as_bytes()))
    }

    /// Text borrowed from `b` when it is valid UTF-8; otherwise a copy with each invalid
    /// sequence replaced by U+FFFD (Go keeps the bytes; we store the same replacement
    /// everywhere).
    pub fn from_utf8_lossy(b: Bytes) -> Self {
        match std::str::from_utf8(&b) {
            Ok(_) => SharedText(b),
            Err(_) => SharedText::from(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Valid by construction; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The text's bytes, without the UTF-8 check of [`SharedText::as_str`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SharedText {
    fn from(s: String) -> Self {
        SharedText(Bytes::from(s))
    }
}

impl From<&str> for SharedText {
    fn from(s: &str) -> Self {
        SharedText(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for SharedText {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// An entry of a push on its way to the ingester: [`Entry`] with shared texts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushEntry {
    /// Nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The log line, as pushed.
    pub line: SharedText,
    /// Structured metadata in push order.
    pub structured_metadata: Vec<(SharedText, SharedText)>,
}

impl PushEntry {
    /// An entry without structured metadata.
    pub fn new(ts: Timestamp, line: impl Into<SharedText>) -> Self {
        PushEntry {
            ts,
            line: line.into(),
            structured_metadata: Vec::new(),
        }
    }

    /// Line plus structured-metadata bytes: what Loki counts as an entry's size.
    pub fn bytes(&self) -> usize {
        self.line.len()
            + self
                .structured_metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// The same entry with owned strings.
    pub fn to_entry(&self) -> Entry {
        Entry {
            ts: self.ts,
            line: self.line.as_str().to_owned(),
            structured_metadata: self
                .structured_metadata
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
                .collect(),
        }
    }
}

impl From<Entry> for PushEntry {
    fn from(e: Entry) -> Self {
        PushEntry {
            ts: e.ts,
            line: e.line.into(),
            structured_metadata: e
                .structured_metadata
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl PartialEq<Entry> for PushEntry {
    fn eq(&self, other: &Entry) -> bool {
        self.ts == other.ts
            && self.line == other.line
            && self.structured_metadata.len() == other.structured_metadata.len()
            && self
                .structured_metadata
                .iter()
                .zip(&other.structured_metadata)
                .all(|((k, v), (k2, v2))| k == k2 && v == v2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_borrow_valid_utf8_and_replace_invalid() {
        let body = Bytes::from_static(b"hello world");
        let t = SharedText::from_utf8_lossy(body.slice(0..5));
        assert_eq!(t.as_str(), "hello");
        assert_eq!(t.as_bytes().as_ptr(), body.as_ptr(), "no copy");
        let bad = SharedText::from_utf8_lossy(Bytes::from_static(b"a\xffb"));
        assert_eq!(bad.as_str(), "a\u{fffd}b");
    }

    #[test]
    fn entries_convert_both_ways() {
        let mut e = Entry::new(7, "line");
        e.structured_metadata.push(("k".into(), "v".into()));
        let p = PushEntry::from(e.clone());
        assert_eq!(p, e);
        assert_eq!(p.to_entry(), e);
        assert_eq!(p.bytes(), 6);
        assert_ne!(PushEntry::new(7, "line"), e);
    }
}
