//! Data parallelism over contiguous row (or column) ranges on a persistent thread pool.
//!
//! An epoch with more than one thread runs on a rayon pool of that many threads, kept for the
//! life of the process (one pool per thread count), so a stage costs no thread start: the
//! idle workers are still spinning when the next stage begins, and a worker that the
//! scheduler leaves waiting is simply not there (the others take its ranges).
//!
//! Results never depend on the number of threads: every stage that is split returns per-range
//! partial results that are combined in range order, and the only cross-range reductions are
//! saturating sums of non-negative values (equal to `min(exact sum, MAX)` in any order) and
//! maxima.

use core::ops::Range;
use std::sync::OnceLock;

use rayon::iter::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};

use crate::Parallelism;

/// Below this much work (entries) a stage runs on one thread only: waking another costs
/// microseconds, and on a busy machine it may wait much longer to be scheduled.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// The most threads a stage uses.
const MAX_THREADS: usize = 8;

#[cfg(test)]
thread_local! {
    /// Tests: split every stage into this many ranges, whatever its size.
    pub(crate) static FORCE_PARTS: core::cell::Cell<Option<usize>> =
        const { core::cell::Cell::new(None) };
}

/// The pools, by thread count, started on first use; `None` when one could not be started.
static POOLS: [OnceLock<Option<rayon::ThreadPool>>; MAX_THREADS + 1] =
    [const { OnceLock::new() }; MAX_THREADS + 1];

fn pool(threads: usize) -> Option<&'static rayon::ThreadPool> {
    POOLS
        .get(threads)?
        .get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|k| format!("agora-yuma-{k}"))
                .build()
                .ok()
        })
        .as_ref()
}

/// The threads a stage may use, from the caller's [`Parallelism`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Par {
    threads: usize,
    /// Tests: the calling thread's [`FORCE_PARTS`], carried onto the pool's threads.
    #[cfg(test)]
    force_parts: Option<usize>,
}

impl Par {
    pub(crate) fn new(parallelism: Parallelism) -> Self {
        let threads = match parallelism {
            Parallelism::Serial => 1,
            Parallelism::Threads(t) => t.clamp(1, MAX_THREADS),
        };
        Self {
            threads,
            #[cfg(test)]
            force_parts: FORCE_PARTS.with(core::cell::Cell::get),
        }
    }

    /// Runs `f` (a whole epoch) on the pool for this many threads, so that its stages can
    /// share their ranges among the pool's threads; on the calling thread when serial or when
    /// no pool could be started (then every stage runs serially too).
    pub(crate) fn run<T: Send>(self, f: impl FnOnce(Par) -> T + Send) -> T {
        if self.threads > 1 {
            if let Some(pool) = pool(self.threads) {
                return pool.install(|| f(self));
            }
        }
        let mut serial = self;
        serial.threads = 1;
        f(serial)
    }

    /// How many ranges to split `work` entries into: a few per thread, so that a thread the
    /// scheduler leaves waiting holds up at most one small range (the others take the rest).
    pub(crate) fn parts_for(self, work: usize) -> usize {
        #[cfg(test)]
        if let Some(parts) = self.force_parts {
            return parts;
        }
        if work < MIN_PARALLEL_WORK || self.threads <= 1 {
            1
        } else {
            self.threads.saturating_mul(RANGES_PER_THREAD)
        }
    }

    /// Runs `f` on every item and returns the results in item order. On a pool's thread the
    /// items are shared among the pool's threads (each item one task, so which thread runs it
    /// never matters); elsewhere they run here, one after another.
    pub(crate) fn map<I, T, F>(self, items: Vec<I>, f: F) -> Vec<T>
    where
        I: Send,
        T: Send,
        F: Fn(I) -> T + Sync + Send,
    {
        if self.threads <= 1 || items.len() <= 1 || rayon::current_thread_index().is_none() {
            return items.into_iter().map(f).collect();
        }
        items.into_par_iter().with_max_len(1).map(f).collect()
    }
}

/// Ranges per thread for a large stage.
const RANGES_PER_THREAD: usize = 4;

/// Splits `0..len` into at most `parts` contiguous ranges of about equal cumulative `weight`.
/// Never returns an empty list (a single empty range for `len == 0`).
pub(crate) fn split(
    len: usize,
    parts: usize,
    weight: impl Fn(usize) -> usize,
) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    if parts == 1 || len == 0 {
        return core::iter::once(0..len).collect();
    }
    let total: usize = (0..len).fold(0usize, |acc, i| acc.saturating_add(weight(i)));
    let mut out = Vec::with_capacity(parts);
    let mut start = 0usize;
    let mut acc = 0usize;
    let mut k = 1usize;
    for i in 0..len {
        acc = acc.saturating_add(weight(i));
        // Close a range once its share of the total is reached.
        let threshold = total.saturating_mul(k).checked_div(parts).unwrap_or(total);
        if acc >= threshold && k < parts {
            let end = i.saturating_add(1);
            out.push(start..end);
            start = end;
            k = k.saturating_add(1);
        }
    }
    out.push(start..len);
    out.retain(|r| !r.is_empty());
    if out.is_empty() {
        out.extend(core::iter::once(0..len));
    }
    out
}
