//! The WAL record of one accepted push: tenant, then each stream's labels and entries.
//!
//! Layout (little endian): `u8 version | str tenant | u32 n_streams | streams…`, a stream
//! being `u32 n_labels | (str name, str value)… | u32 n_entries | entries…` and an entry
//! `i64 ts | str line | u32 n_metadata | (str, str)…`, where `str` is `u32 len | bytes`.
//! The WAL adds length and CRC framing around it.

use fenrir_common::{LabelSet, Tenant};
use fenrir_proto::{PushEntry, SharedText};

use crate::{Error, Result};

const RECORD_VERSION: u8 = 1;

/// One stream's share of a push record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordStream {
    pub(crate) labels: LabelSet,
    pub(crate) entries: Vec<PushEntry>,
}

pub(crate) fn encode(tenant: &Tenant, streams: &[RecordStream]) -> Vec<u8> {
    // The exact size: a record is as large as the request, and growing the buffer by
    // doubling would copy it several times and leave holes of every size in the heap.
    let str_len = |s: &str| 4 + s.len();
    let text_len = |s: &SharedText| 4 + s.len();
    let size: usize = streams
        .iter()
        .map(|s| {
            8 + s
                .labels
                .iter()
                .map(|(k, v)| str_len(k) + str_len(v))
                .sum::<usize>()
                + s.entries
                    .iter()
                    .map(|e| {
                        12 + text_len(&e.line)
                            + e.structured_metadata
                                .iter()
                                .map(|(k, v)| text_len(k) + text_len(v))
                                .sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum();
    let size = 1 + str_len(tenant.as_str()) + 4 + size;
    let mut out = Vec::with_capacity(size);
    out.push(RECORD_VERSION);
    put_str(&mut out, tenant.as_str());
    put_u32(&mut out, streams.len());
    for s in streams {
        put_u32(&mut out, s.labels.len());
        for (k, v) in s.labels.iter() {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        put_u32(&mut out, s.entries.len());
        for e in &s.entries {
            out.extend_from_slice(&e.ts.to_le_bytes());
            put_bytes(&mut out, e.line.as_bytes());
            put_u32(&mut out, e.structured_metadata.len());
            for (k, v) in &e.structured_metadata {
                put_bytes(&mut out, k.as_bytes());
                put_bytes(&mut out, v.as_bytes());
            }
        }
    }
    debug_assert_eq!(out.len(), size, "record size computed exactly");
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<(Tenant, Vec<RecordStream>)> {
    let mut r = Reader { bytes, pos: 0 };
    if r.u8()? != RECORD_VERSION {
        return Err(Error::CorruptRecord("unknown record version"));
    }
    let tenant = Tenant::new(&r.string()?).map_err(|_| Error::CorruptRecord("bad tenant"))?;
    let n_streams = r.count()?;
    let mut streams = Vec::with_capacity(n_streams.min(1024));
    for _ in 0..n_streams {
        let n_labels = r.count()?;
        let mut pairs = Vec::with_capacity(n_labels.min(64));
        for _ in 0..n_labels {
            pairs.push((r.string()?, r.string()?));
        }
        let n_entries = r.count()?;
        let mut entries = Vec::with_capacity(n_entries.min(4096));
        for _ in 0..n_entries {
            let ts = r.i64()?;
            let line = r.string()?.into();
            let n_md = r.count()?;
            let mut structured_metadata = Vec::with_capacity(n_md.min(64));
            for _ in 0..n_md {
                structured_metadata.push((r.string()?.into(), r.string()?.into()));
            }
            entries.push(PushEntry {
                ts,
                line,
                structured_metadata,
            });
        }
        streams.push(RecordStream {
            labels: LabelSet::from_pairs(pairs),
            entries,
        });
    }
    if r.pos != bytes.len() {
        return Err(Error::CorruptRecord("trailing bytes"));
    }
    Ok((tenant, streams))
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(Error::CorruptRecord("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count, checked against the bytes left so a corrupt count cannot make us allocate.
    fn count(&mut self) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > self.bytes.len() - self.pos {
            return Err(Error::CorruptRecord("count larger than record"));
        }
        Ok(n)
    }

    fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::CorruptRecord("invalid utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Tenant, Vec<RecordStream>) {
        let mut e = PushEntry::new(5, "line with ünïcode");
        e.structured_metadata
            .push(("trace_id".into(), "abc".into()));
        (
            Tenant::new("t1").unwrap(),
            vec![
                RecordStream {
                    labels: LabelSet::from_pairs([("app", "x"), ("env", "prod")]),
                    entries: vec![e, PushEntry::new(-3, "")],
                },
                RecordStream {
                    labels: LabelSet::from_pairs([("app", "y")]),
                    entries: vec![],
                },
            ],
        )
    }

    #[test]
    fn round_trips() {
        let (t, s) = sample();
        let bytes = encode(&t, &s);
        let (t2, s2) = decode(&bytes).unwrap();
        assert_eq!(t, t2);
        assert_eq!(s, s2);
    }

    #[test]
    fn truncations_and_flips_are_errors_not_panics() {
        let (t, s) = sample();
        let bytes = encode(&t, &s);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
