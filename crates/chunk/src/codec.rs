//! Little-endian fixed-width integers, LEB128 varints and zigzag, with a bounds-checked reader.

use crate::{Error, Result};

/// Longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Reads from a byte slice, failing with [`Error::Truncated`] or [`Error::Corrupt`] instead of
/// panicking. `what` names the structure in error messages.
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: self.what,
                need: n as u64,
                have: self.remaining() as u64,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// The next byte, not consumed.
    pub(crate) fn peek_u8(&self) -> Result<u8> {
        self.buf.get(self.pos).copied().ok_or(Error::Truncated {
            what: self.what,
            need: 1,
            have: 0,
        })
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    #[inline]
    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        // With ten bytes left (the longest varint), no byte needs its own bounds check.
        if let Some(bytes) = self.buf.get(self.pos..self.pos + MAX_VARINT_LEN) {
            let mut value = 0u64;
            for (i, &b) in bytes.iter().enumerate() {
                value |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    // The tenth byte may only carry the top bit of a u64.
                    if i == MAX_VARINT_LEN - 1 && b > 1 {
                        break;
                    }
                    self.pos += i + 1;
                    return Ok(value);
                }
            }
            return Err(Error::corrupt(self.what, "varint overflows 64 bits"));
        }
        self.uvarint_slow()
    }

    #[inline(never)]
    fn uvarint_slow(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(Error::corrupt(self.what, "varint overflows 64 bits"));
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::corrupt(self.what, "varint overflows 64 bits"))
    }

    /// A varint that must fit in `usize` and be at most `limit`.
    pub(crate) fn uvarint_len(&mut self, limit: usize) -> Result<usize> {
        let v = self.uvarint()?;
        match usize::try_from(v) {
            Ok(n) if n <= limit => Ok(n),
            _ => Err(Error::corrupt(
                self.what,
                format!("length {v} exceeds {limit}"),
            )),
        }
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64> {
        Ok(unzigzag(self.uvarint()?))
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let n = self.uvarint_len(self.remaining())?;
        let bytes = self.bytes(n)?;
        std::str::from_utf8(bytes).map_err(|e| Error::corrupt(self.what, format!("string: {e}")))
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::corrupt(
                self.what,
                format!("{} trailing bytes", self.remaining()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            let mut c = Cursor::new(&buf, "test");
            assert_eq!(c.uvarint().unwrap(), v);
            assert!(c.is_empty());
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX, -300] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let eleven = [0xffu8; 11];
        assert!(matches!(
            Cursor::new(&eleven, "t").uvarint(),
            Err(Error::Corrupt { .. })
        ));
        let mut top = vec![0xffu8; 9];
        top.push(0x02);
        assert!(Cursor::new(&top, "t").uvarint().is_err());
        assert!(matches!(
            Cursor::new(&[0x80], "t").uvarint(),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut c = Cursor::new(&[1, 2, 3], "t");
        assert!(c.u32().is_err());
        assert_eq!(c.u16().unwrap(), 0x0201);
        assert!(c.finish().is_err());
        assert_eq!(c.u8().unwrap(), 3);
        c.finish().unwrap();
        assert!(Cursor::new(&[5, b'a'], "t").str().is_err());
        assert!(Cursor::new(&[1, 0xff], "t").str().is_err());
        assert_eq!(Cursor::new(&[2, b'h', b'i'], "t").str().unwrap(), "hi");
    }
}
