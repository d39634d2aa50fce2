//! Token buckets with the semantics of Go's `x/time/rate` `AllowN`, which Loki's tenant
//! and per-stream rate limits use: a bucket holds at most `burst` tokens and refills at
//! `rate` per second; a request for `n` tokens passes only when all `n` are there, and a
//! refused request takes none.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ingester::lock;

/// Full buckets are dropped this often: a full bucket behaves exactly like a new one, so
/// memory follows the keys that were busy lately, not every key ever seen.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `n` tokens if they are all there.
    pub(crate) fn allow(&mut self, n: f64, now: Instant) -> bool {
        if self.rate == f64::INFINITY {
            return true;
        }
        self.refill(now);
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// New limits from a runtime override; the tokens already there stay, up to the new
    /// burst.
    fn set_limits(&mut self, rate: f64, burst: f64, now: Instant) {
        if self.rate != rate || self.burst != burst {
            self.refill(now);
            self.rate = rate;
            self.burst = burst;
            self.tokens = self.tokens.min(burst);
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// One bucket per key (a tenant, or a tenant's stream), created full on first use.
#[derive(Debug)]
pub(crate) struct RateLimiters<K> {
    state: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    buckets: HashMap<K, TokenBucket>,
    last_sweep: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiters<K> {
    pub(crate) fn new() -> Self {
        RateLimiters {
            state: Mutex::new(Buckets {
                buckets: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Runs `f` on `key`'s bucket with the given limits, so that a caller can take tokens
    /// for several items under one lock.
    pub(crate) fn with_bucket<T>(
        &self,
        key: &K,
        rate: f64,
        burst: f64,
        now: Instant,
        f: impl FnOnce(&mut TokenBucket) -> T,
    ) -> T {
        let mut state = lock(&self.state);
        if now.saturating_duration_since(state.last_sweep) >= SWEEP_EVERY {
            state.last_sweep = now;
            state.buckets.retain(|_, b| !b.is_full(now));
        }
        let bucket = match state.buckets.get_mut(key) {
            Some(bucket) => {
                bucket.set_limits(rate, burst, now);
                bucket
            }
            None => state
                .buckets
                .entry(key.clone())
                .or_insert_with(|| TokenBucket::new(rate, burst, now)),
        };
        f(bucket)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.state).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 250.0, t0);
        assert!(b.allow(200.0, t0));
        assert!(!b.allow(100.0, t0), "only 50 left");
        assert!(b.allow(50.0, t0));
        assert!(!b.allow(1.0, t0));
        // Half a second refills 50 tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert!(!b.allow(51.0, t1), "a refused request takes nothing");
        assert!(b.allow(50.0, t1));
        // Never more than the burst, however long the wait.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(!b.allow(251.0, t2), "more than the burst never passes");
        assert!(b.allow(250.0, t2));
    }

    #[test]
    fn zero_rate_never_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 10.0, t0);
        assert!(b.allow(10.0, t0));
        assert!(!b.allow(1.0, t0 + Duration::from_secs(1000)));
    }

    #[test]
    fn new_limits_apply_to_existing_buckets() {
        let limiters = RateLimiters::<u32>::new();
        let t0 = Instant::now();
        assert!(limiters.with_bucket(&1, 10.0, 100.0, t0, |b| b.allow(100.0, t0)));
        assert!(!limiters.with_bucket(&1, 10.0, 100.0, t0, |b| b.allow(1.0, t0)));
        // A raised limit refills faster from where the bucket was.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiters.with_bucket(&1, 1000.0, 5000.0, t1, |b| b.allow(10.0, t1)));
        let t2 = t1 + Duration::from_secs(1);
        assert!(limiters.with_bucket(&1, 1000.0, 5000.0, t2, |b| b.allow(1000.0, t2)));
        // A lowered burst caps what is there.
        let t3 = t2 + Duration::from_secs(100);
        assert!(!limiters.with_bucket(&1, 1.0, 3.0, t3, |b| b.allow(4.0, t3)));
        assert!(limiters.with_bucket(&1, 1.0, 3.0, t3, |b| b.allow(3.0, t3)));
    }

    #[test]
    fn full_buckets_are_swept() {
        let limiters = RateLimiters::<u32>::new();
        let t0 = Instant::now();
        for key in 0..100 {
            limiters.with_bucket(&key, 1.0, 10.0, t0, |b| b.allow(5.0, t0));
        }
        assert_eq!(limiters.len(), 100);
        // Eleven seconds later every bucket is full again: all are dropped but the one used.
        let later = t0 + Duration::from_secs(11);
        limiters.with_bucket(&7, 1.0, 10.0, later, |b| b.allow(5.0, later));
        assert_eq!(limiters.len(), 1);
    }
}
