//! Key and value layouts of the sled trees (format version [`FORMAT_VERSION`]).
//!
//! Every key starts with the tenant as `len: u8 | bytes`, so one tenant's keys can never
//! be a prefix of another's. Strings inside keys are `len: u32 BE | bytes`, so label
//! values may hold any byte without breaking prefix scans. Integers are big-endian, and
//! timestamps are stored with the sign bit flipped so that byte order is time order.
//!
//! - `series`:    tenant | fp                          → min_ts | max_ts | max_span | labels
//! - `postings`:  tenant | name | value | fp           → ()
//! - `chunks`:    tenant | fp | max_ts | chunk_id      → min_ts | offset | len | entries | raw_bytes | object_key
//! - `chunk_ids`: tenant | fp | chunk_id               → max_ts (finds a chunk's key by id)
//! - `meta`:      "format_version"                     → u32

use fenrir_common::{Fingerprint, LabelSet, Tenant};

use crate::{ChunkRef, Error, Result};

/// The key layout version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The `meta` key holding the format version.
pub(crate) const VERSION_KEY: &[u8] = b"format_version";

pub(crate) const SERIES_TREE: &str = "series";
pub(crate) const POSTINGS_TREE: &str = "postings";
pub(crate) const CHUNKS_TREE: &str = "chunks";
pub(crate) const CHUNK_IDS_TREE: &str = "chunk_ids";
pub(crate) const META_TREE: &str = "meta";

/// `tenant` as the leading part of every key.
pub(crate) fn tenant_prefix(tenant: &Tenant) -> Result<Vec<u8>> {
    let id = tenant.as_str().as_bytes();
    let len = u8::try_from(id.len()).map_err(|_| Error::TooLong {
        what: "tenant id",
        len: id.len(),
    })?;
    let mut out = Vec::with_capacity(1 + id.len() + 8);
    out.push(len);
    out.extend_from_slice(id);
    Ok(out)
}

/// Decodes the tenant at the start of `key`, returning it and its prefix length.
pub(crate) fn split_tenant(key: &[u8], tree: &'static str) -> Result<(Tenant, usize)> {
    let mut r = Reader::new(key, tree);
    let len = usize::from(r.u8()?);
    let id = std::str::from_utf8(r.take(len)?).map_err(|_| r.corrupt("tenant id is not utf-8"))?;
    let tenant = Tenant::new(id).map_err(|e| r.corrupt(format!("bad tenant id: {e}")))?;
    Ok((tenant, 1 + len))
}

/// `tenant | fp`: the `series` key, and the prefix of the series' `chunks` and
/// `chunk_ids` keys.
pub(crate) fn series_key(tenant: &[u8], fp: Fingerprint) -> Vec<u8> {
    let mut out = Vec::with_capacity(tenant.len() + 24);
    out.extend_from_slice(tenant);
    out.extend_from_slice(&fp.to_be_bytes());
    out
}

/// Decodes the fingerprint of a `series` key whose tenant prefix is `tenant_len` long.
pub(crate) fn series_key_fp(key: &[u8], tenant_len: usize) -> Result<Fingerprint> {
    let mut r = Reader::new(key, SERIES_TREE);
    r.take(tenant_len)?;
    let fp = r.u64()?;
    r.finish()?;
    Ok(fp)
}

pub(crate) fn chunk_key(tenant: &[u8], fp: Fingerprint, max_ts: i64, chunk_id: u64) -> Vec<u8> {
    let mut out = series_key(tenant, fp);
    out.extend_from_slice(&sortable_ts(max_ts));
    out.extend_from_slice(&chunk_id.to_be_bytes());
    out
}

/// The inclusive key range of one series' chunks whose `max_ts` is in `[from, to]`.
pub(crate) fn chunk_range(
    tenant: &[u8],
    fp: Fingerprint,
    from: i64,
    to: i64,
) -> std::ops::RangeInclusive<Vec<u8>> {
    chunk_key(tenant, fp, from, 0)..=chunk_key(tenant, fp, to, u64::MAX)
}

pub(crate) fn chunk_id_key(tenant: &[u8], fp: Fingerprint, chunk_id: u64) -> Vec<u8> {
    let mut out = series_key(tenant, fp);
    out.extend_from_slice(&chunk_id.to_be_bytes());
    out
}

/// `tenant | name`: the prefix of every posting of label `name`.
pub(crate) fn posting_name_prefix(tenant: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(tenant.len() + 4 + name.len() + 24);
    out.extend_from_slice(tenant);
    put_str(&mut out, name, "label name")?;
    Ok(out)
}

/// `tenant | name | value`: the prefix of the postings of `name="value"`.
pub(crate) fn posting_value_prefix(tenant: &[u8], name: &str, value: &str) -> Result<Vec<u8>> {
    let mut out = posting_name_prefix(tenant, name)?;
    put_str(&mut out, value, "label value")?;
    Ok(out)
}

pub(crate) fn posting_key(
    tenant: &[u8],
    name: &str,
    value: &str,
    fp: Fingerprint,
) -> Result<Vec<u8>> {
    let mut out = posting_value_prefix(tenant, name, value)?;
    out.extend_from_slice(&fp.to_be_bytes());
    Ok(out)
}

/// Splits a posting key under a `tenant | name` prefix of length `name_prefix_len` into
/// the value part (`len | value`, to build a skip key from), the value, and the
/// fingerprint.
pub(crate) fn split_posting(
    key: &[u8],
    name_prefix_len: usize,
) -> Result<(usize, &str, Fingerprint)> {
    let mut r = Reader::new(key, POSTINGS_TREE);
    r.take(name_prefix_len)?;
    let value = r.str()?;
    let value_end = key.len() - r.remaining();
    let fp = r.u64()?;
    r.finish()?;
    Ok((value_end, value, fp))
}

/// Decodes the fingerprint at the end of a posting key.
pub(crate) fn posting_fp(key: &[u8]) -> Result<Fingerprint> {
    let tail = key
        .len()
        .checked_sub(8)
        .and_then(|at| key.get(at..))
        .ok_or_else(|| corrupt(POSTINGS_TREE, "posting key too short"))?;
    let mut r = Reader::new(tail, POSTINGS_TREE);
    r.u64()
}

/// The smallest key greater than every key starting with `prefix`, or `None` when no
/// such key exists (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// A timestamp as bytes whose order is the timestamps' order.
pub(crate) fn sortable_ts(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from_sortable(raw: u64) -> i64 {
    (raw ^ (1 << 63)) as i64
}

/// A series' labels and the time span of its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesRecord {
    pub(crate) labels: LabelSet,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    /// The longest `max_ts - min_ts` of its chunks: chunks whose `max_ts` exceeds
    /// `end + max_span` cannot start before `end`, which bounds time-range scans.
    pub(crate) max_span: u64,
}

impl SeriesRecord {
    /// A record with no chunks yet.
    pub(crate) fn new(labels: LabelSet) -> Self {
        SeriesRecord {
            labels,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            max_span: 0,
        }
    }

    pub(crate) fn extend(&mut self, chunk: &ChunkRef) {
        self.min_ts = self.min_ts.min(chunk.min_ts);
        self.max_ts = self.max_ts.max(chunk.max_ts);
        self.max_span = self.max_span.max(span(chunk.min_ts, chunk.max_ts));
    }

    /// The inclusive range of chunk `max_ts` values that can overlap `[start, end]`.
    pub(crate) fn chunk_max_ts_bounds(&self, start: i64, end: i64) -> (i64, i64) {
        let upper = (i128::from(end) + i128::from(self.max_span)).min(i128::from(i64::MAX));
        // `upper` is at least `end` and at most i64::MAX, so it fits.
        (start, i64::try_from(upper).unwrap_or(i64::MAX))
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(28 + 16 * self.labels.len());
        out.extend_from_slice(&self.min_ts.to_be_bytes());
        out.extend_from_slice(&self.max_ts.to_be_bytes());
        out.extend_from_slice(&self.max_span.to_be_bytes());
        let count = u32::try_from(self.labels.len()).map_err(|_| Error::TooLong {
            what: "label set",
            len: self.labels.len(),
        })?;
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in self.labels.iter() {
            put_str(&mut out, name, "label name")?;
            put_str(&mut out, value, "label value")?;
        }
        Ok(out)
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self> {
        let mut r = Reader::new(raw, SERIES_TREE);
        let min_ts = r.i64()?;
        let max_ts = r.i64()?;
        let max_span = r.u64()?;
        let count = r.u32()? as usize;
        // Each pair takes at least 8 bytes, which caps the allocation by the input size.
        if count > r.remaining() / 8 {
            return Err(r.corrupt(format!("{count} labels in {} bytes", r.remaining())));
        }
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.str()?;
            let value = r.str()?;
            pairs.push((name, value));
        }
        r.finish()?;
        Ok(SeriesRecord {
            labels: LabelSet::from_pairs(pairs),
            min_ts,
            max_ts,
            max_span,
        })
    }
}

fn span(min_ts: i64, max_ts: i64) -> u64 {
    let span = (i128::from(max_ts) - i128::from(min_ts)).max(0);
    u64::try_from(span).unwrap_or(u64::MAX)
}

pub(crate) fn encode_chunk(chunk: &ChunkRef) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(40 + chunk.object_key.len());
    out.extend_from_slice(&chunk.min_ts.to_be_bytes());
    out.extend_from_slice(&chunk.offset.to_be_bytes());
    out.extend_from_slice(&chunk.len.to_be_bytes());
    out.extend_from_slice(&chunk.entries.to_be_bytes());
    out.extend_from_slice(&chunk.raw_bytes.to_be_bytes());
    put_str(&mut out, &chunk.object_key, "object key")?;
    Ok(out)
}

/// The `min_ts` of an encoded chunk value, without decoding the rest.
pub(crate) fn chunk_min_ts(value: &[u8]) -> Result<i64> {
    Reader::new(value, CHUNKS_TREE).i64()
}

/// Decodes a `chunks` entry; `series_key_len` is the length of its `tenant | fp` prefix.
pub(crate) fn decode_chunk(key: &[u8], value: &[u8], series_key_len: usize) -> Result<ChunkRef> {
    let mut k = Reader::new(key, CHUNKS_TREE);
    k.take(series_key_len)?;
    let max_ts = ts_from_sortable(k.u64()?);
    let chunk_id = k.u64()?;
    k.finish()?;
    let mut v = Reader::new(value, CHUNKS_TREE);
    let chunk = ChunkRef {
        chunk_id,
        max_ts,
        min_ts: v.i64()?,
        offset: v.u64()?,
        len: v.u64()?,
        entries: v.u32()?,
        raw_bytes: v.u64()?,
        object_key: v.str()?.to_owned(),
    };
    v.finish()?;
    Ok(chunk)
}

pub(crate) fn encode_max_ts(max_ts: i64) -> [u8; 8] {
    sortable_ts(max_ts)
}

pub(crate) fn decode_max_ts(value: &[u8]) -> Result<i64> {
    let mut r = Reader::new(value, CHUNK_IDS_TREE);
    let ts = ts_from_sortable(r.u64()?);
    r.finish()?;
    Ok(ts)
}

pub(crate) fn decode_version(value: &[u8]) -> Result<u32> {
    let mut r = Reader::new(value, META_TREE);
    let v = r.u32()?;
    r.finish()?;
    Ok(v)
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<()> {
    let len = u32::try_from(s.len()).map_err(|_| Error::TooLong { what, len: s.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn corrupt(tree: &'static str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        tree,
        reason: reason.into(),
    }
}

/// A bounds-checked cursor over stored bytes: corrupt input gives an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    tree: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], tree: &'static str) -> Self {
        Reader { buf, tree }
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        corrupt(self.tree, reason)
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(self.corrupt(format!("needs {n} bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn str(&mut self) -> Result<&'a str> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt("string is not utf-8"))
    }

    fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> Vec<u8> {
        tenant_prefix(&Tenant::new(id).unwrap()).unwrap()
    }

    fn sample_chunk() -> ChunkRef {
        ChunkRef {
            chunk_id: 42,
            object_key: "fake/seg/2024-01-01/01H.seg".into(),
            offset: 1024,
            len: 4096,
            min_ts: -5,
            max_ts: 1_700_000_000_000_000_000,
            entries: 7,
            raw_bytes: 999,
        }
    }

    #[test]
    fn sortable_timestamps_keep_order() {
        let ts = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        for pair in ts.windows(2) {
            assert!(sortable_ts(pair[0]) < sortable_ts(pair[1]), "{pair:?}");
        }
        for t in ts {
            assert_eq!(ts_from_sortable(u64::from_be_bytes(sortable_ts(t))), t);
        }
    }

    #[test]
    fn tenant_prefixes_never_nest() {
        let a = tenant("ab");
        let b = tenant("abc");
        assert!(!b.starts_with(&a));
        assert!(!a.starts_with(&b));
        let (t, len) = split_tenant(&series_key(&b, 7), SERIES_TREE).unwrap();
        assert_eq!(t.as_str(), "abc");
        assert_eq!(len, 4);
    }

    #[test]
    fn posting_prefixes_do_not_collide_on_odd_bytes() {
        let t = tenant("fake");
        // A value that is a prefix of another, and values with 0x00 / 0xff-ish chars.
        let short = posting_value_prefix(&t, "env", "a").unwrap();
        let long = posting_key(&t, "env", "a\u{0}b", 1).unwrap();
        assert!(!long.starts_with(&short));
        let name_a = posting_name_prefix(&t, "a").unwrap();
        let name_ab = posting_key(&t, "ab", "x", 1).unwrap();
        assert!(!name_ab.starts_with(&name_a));
        let key = posting_key(&t, "env", "\u{ff}\u{0}결제", 0xdead_beef).unwrap();
        let (end, value, fp) = split_posting(&key, name_a.len() + 2).unwrap();
        assert_eq!(value, "\u{ff}\u{0}결제");
        assert_eq!(fp, 0xdead_beef);
        assert_eq!(end, key.len() - 8);
        assert_eq!(posting_fp(&key).unwrap(), 0xdead_beef);
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn chunk_round_trips() {
        let t = tenant("fake");
        let c = sample_chunk();
        let key = chunk_key(&t, 9, c.max_ts, c.chunk_id);
        let value = encode_chunk(&c).unwrap();
        let prefix_len = series_key(&t, 9).len();
        assert_eq!(decode_chunk(&key, &value, prefix_len).unwrap(), c);
        assert_eq!(chunk_min_ts(&value).unwrap(), -5);
    }

    #[test]
    fn series_record_round_trips() {
        let mut rec = SeriesRecord::new(LabelSet::from_pairs([("app", "결제"), ("z", "\u{0}")]));
        rec.extend(&sample_chunk());
        let decoded = SeriesRecord::decode(&rec.encode().unwrap()).unwrap();
        assert_eq!(decoded, rec);
        assert_eq!(decoded.max_span, 1_700_000_000_000_000_005);
    }

    #[test]
    fn truncated_or_garbage_values_are_errors() {
        let mut rec = SeriesRecord::new(LabelSet::from_pairs([("app", "x")]));
        rec.extend(&sample_chunk());
        let raw = rec.encode().unwrap();
        for cut in 0..raw.len() {
            assert!(SeriesRecord::decode(&raw[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_count = raw.clone();
        huge_count[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            SeriesRecord::decode(&huge_count),
            Err(Error::Corrupt { .. })
        ));
        let value = encode_chunk(&sample_chunk()).unwrap();
        let key = chunk_key(&tenant("fake"), 1, 5, 6);
        for cut in 0..value.len() {
            assert!(
                decode_chunk(&key, &value[..cut], 13).is_err(),
                "cut at {cut}"
            );
        }
        assert!(decode_chunk(&key[..key.len() - 1], &value, 13).is_err());
        assert!(split_tenant(&[200, b'a'], SERIES_TREE).is_err());
        assert!(split_tenant(&[1, b'/'], SERIES_TREE).is_err());
        assert!(posting_fp(&[1, 2]).is_err());
        assert!(decode_version(&[0, 1]).is_err());
    }

    #[test]
    fn scan_bounds_cover_long_chunks() {
        let mut rec = SeriesRecord::new(LabelSet::empty());
        let mut c = sample_chunk();
        c.min_ts = 100;
        c.max_ts = 150;
        rec.extend(&c);
        assert_eq!(rec.chunk_max_ts_bounds(10, 120), (10, 170));
        assert_eq!(rec.chunk_max_ts_bounds(10, i64::MAX - 1), (10, i64::MAX));
    }
}
