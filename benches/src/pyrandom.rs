//! Python's `random.Random` (MT19937 and the CPython 3 helpers built on it), so that the
//! workload is byte-for-byte the one `loki_bench.py` generates from the same seed and the
//! figures of the two tools are directly comparable.

const N: usize = 624;
const M: usize = 397;

pub(crate) struct PyRandom {
    state: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a seed below 2^32 (CPython's `init_by_array([seed])`).
    pub(crate) fn new(seed: u32) -> Self {
        let mut rng = PyRandom::init_genrand(19_650_218);
        let key = [seed];
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = rng.state[i - 1] ^ (rng.state[i - 1] >> 30);
            rng.state[i] = (rng.state[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                rng.state[0] = rng.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = rng.state[i - 1] ^ (rng.state[i - 1] >> 30);
            rng.state[i] = (rng.state[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                rng.state[0] = rng.state[N - 1];
                i = 1;
            }
        }
        rng.state[0] = 0x8000_0000;
        rng
    }

    fn init_genrand(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1] ^ (state[i - 1] >> 30);
            state[i] = prev.wrapping_mul(1_812_433_253).wrapping_add(i as u32);
        }
        PyRandom { state, index: N }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for k in 0..N {
            let y = (self.state[k] & UPPER) | (self.state[(k + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `getrandbits(k)` for `1 <= k <= 128`: 32-bit words, least significant first.
    pub(crate) fn getrandbits(&mut self, k: u32) -> u128 {
        debug_assert!((1..=128).contains(&k));
        if k <= 32 {
            return u128::from(self.next_u32() >> (32 - k));
        }
        let mut out = 0u128;
        let mut remaining = k;
        let mut shift = 0;
        while remaining > 0 {
            let mut word = self.next_u32();
            if remaining < 32 {
                word >>= 32 - remaining;
            }
            out |= u128::from(word) << shift;
            shift += 32;
            remaining = remaining.saturating_sub(32);
        }
        out
    }

    /// `_randbelow(n)`: rejection sampling over `n.bit_length()` random bits.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let bits = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(bits) as u64;
            if r < n {
                return r;
            }
        }
    }

    /// `randint(low, high)`, both ends included.
    pub(crate) fn randint(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// `choice(items)`.
    pub(crate) fn choice<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3.11's `random.Random(42)`.
    #[test]
    fn matches_cpython_for_seed_42() {
        let mut rng = PyRandom::new(42);
        let words: Vec<u128> = (0..3).map(|_| rng.getrandbits(32)).collect();
        assert_eq!(words, [2_746_317_213, 478_163_327, 107_420_369]);
        assert_eq!(rng.randint(1, 100_000), 97_197);
        assert_eq!(rng.choice(&[1, 2, 3, 4, 5]), 3);
        assert_eq!(
            format!("{:032x}", rng.getrandbits(128)),
            "bc8960a923b8c1e9392456de3eb13b90"
        );
        assert_eq!(rng.below(100), 13);
    }
}
