//! A fast hasher for the evaluator's in-memory maps (the multiply-rotate scheme of
//! rustc's FxHash). The default SipHash was a large share of metric queries whose keys
//! are label sets hashed once per sample; these maps live for one query and hold at
//! most the query's series, so resistance to crafted collisions matters less than speed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Murmur3's 64-bit finaliser: spreads every input bit over the output, for hashes
/// that are combined (summed) before use.
#[inline]
pub(crate) fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn hash_of<T: Hash>(t: &T) -> u64 {
        let mut h = FxHasher::default();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn distinguishes_nearby_keys() {
        let keys = [
            "",
            "a",
            "a\0",
            "ab",
            "ba",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\0",
        ];
        let hashes: Vec<u64> = keys.iter().map(|k| hash_of(&k.as_bytes())).collect();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{:?} {:?}", keys[i], keys[j]);
            }
        }
        assert_eq!(hash_of(&"x"), hash_of(&"x"));
    }

    #[test]
    fn map_works_with_label_sets() {
        let mut m: FxHashMap<fenrir_common::LabelSet, usize> = FxHashMap::default();
        for i in 0..1000 {
            m.insert(
                fenrir_common::LabelSet::from_pairs([("pod", format!("p{i}"))]),
                i,
            );
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(
            m.get(&fenrir_common::LabelSet::from_pairs([("pod", "p7")])),
            Some(&7)
        );
        assert_ne!(mix64(1), mix64(2));
    }
}
