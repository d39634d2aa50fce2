//! The memory budget of the write path: open blocks, compressed head parts and sealed chunks
//! of every stream together. Without it memory grows with the data held until the flush
//! tick; with it, the push that goes over the budget makes room, cheapest first:
//! 1. sealed chunks are only waiting for a flush: ask for one now;
//! 2. compressed parts of heads: seal the largest into chunks (the open block stays) and
//!    flush them;
//! 3. raw open blocks: compress the largest early (smaller blocks compress a little worse,
//!    so this is the last resort).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::ingester::{lock, read};
use crate::stream::{Footprint, Stream};
use crate::{Ingester, Result};

/// Pushes wait for the relief in progress once memory exceeds the budget by a quarter.
const OVERSHOOT_DIVISOR: usize = 4;

/// Open blocks smaller than this are not worth compressing early.
const MIN_EARLY_CUT: usize = 8 << 10;

/// Compressed data (parts and sealed chunks) only waits for a flush, and a flush briefly
/// holds a copy of what it writes (the segment object): it gets an eighth of the budget,
/// and is flushed in quarters of that, which bounds the copy too. Raw open blocks get the
/// rest: they are what makes blocks large enough to compress well.
fn compressed_limit(limit: usize) -> usize {
    limit / 8
}

/// Shared state of the budget.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// One push at a time makes room; the others go on while the budget is exceeded by
    /// less than a quarter (`OVERSHOOT_DIVISOR`), and wait for it (backpressure) past that.
    relieving: Mutex<()>,
    /// A flush was asked for and has not started collecting yet.
    flush_requested: AtomicBool,
}

impl Budget {
    /// Whether a flush was asked for since the last call.
    pub(crate) fn take_flush_request(&self) -> bool {
        self.flush_requested.swap(false, Ordering::AcqRel)
    }
}

impl Ingester {
    /// Makes room when the write path holds more than its budget. Blocking (it may
    /// compress): call it from a blocking thread.
    pub(crate) fn relieve_memory(&self) -> Result<()> {
        let limit = self.inner.cfg.memory_budget;
        let gauge = &self.inner.gauge;
        if limit == 0 || (gauge.get() <= limit && gauge.compressed() <= compressed_limit(limit)) {
            return Ok(());
        }
        let budget = &self.inner.budget;
        // Far over the budget the pushes are faster than one relief (tens of MB of blocks
        // to compress while the others append at full speed): they wait for it instead.
        let _relieving = if gauge.get() > limit + limit / OVERSHOOT_DIVISOR {
            lock(&budget.relieving)
        } else {
            match budget.relieving.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            }
        };
        // The relief this push waited for may have made room already.
        if gauge.get() <= limit && gauge.compressed() <= compressed_limit(limit) {
            return Ok(());
        }
        let mut streams = self.footprints();
        let total = |streams: &[(Footprint, Arc<Mutex<Stream>>)], f: fn(&Footprint) -> usize| {
            streams.iter().map(|(fp, _)| f(fp)).sum::<usize>()
        };
        let policy = self.inner.cfg.seal_policy();

        let sealed = total(&streams, |f| f.sealed);
        let mut parts = total(&streams, |f| f.parts);
        let mut flush = sealed > compressed_limit(limit) / 4;
        if parts + sealed > compressed_limit(limit) {
            streams.sort_by_key(|(f, _)| std::cmp::Reverse(f.parts));
            for (f, st) in &streams {
                // Fullest first, down to half: bigger chunks, fewer index entries.
                if parts <= compressed_limit(limit) / 2 || f.parts == 0 {
                    break;
                }
                let mut s = lock(st);
                let before = s.sealed.len();
                s.seal_parts(policy)?;
                self.note_sealed(&s.sealed[before..]);
                drop(s);
                parts -= f.parts;
                flush = true;
            }
        }
        if flush {
            self.request_flush();
        }

        let mut open = total(&streams, |f| f.open);
        if open > limit * 3 / 4 {
            // Fullest first: compressing a nearly empty block saves little and compresses
            // badly.
            streams.sort_by_key(|(f, _)| std::cmp::Reverse(f.open_used));
            for (f, st) in &streams {
                if open <= limit / 2 || f.open_used < MIN_EARLY_CUT {
                    break;
                }
                lock(st).cut_open_block(policy)?;
                open -= f.open;
            }
        }
        tracing::debug!(
            used = self.inner.gauge.get(),
            limit,
            "ingester memory over budget"
        );
        Ok(())
    }

    fn footprints(&self) -> Vec<(Footprint, Arc<Mutex<Stream>>)> {
        let tenants: Vec<_> = read(&self.inner.tenants).values().cloned().collect();
        let mut out = Vec::new();
        for map in tenants {
            let streams: Vec<_> = read(&map).values().cloned().collect();
            out.extend(streams.into_iter().map(|st| {
                let footprint = lock(&st).footprint();
                (footprint, st)
            }));
        }
        out
    }

    /// Starts a flush in the background unless one was already asked for. Without a
    /// runtime (WAL replay at start) the next flush tick does it.
    fn request_flush(&self) {
        if self
            .inner
            .budget
            .flush_requested
            .swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            if let Err(e) = this.flush_due().await {
                tracing::warn!(error = %e, "early flush for the memory budget failed");
            }
        });
    }
}
