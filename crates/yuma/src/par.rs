//! Data parallelism over contiguous row (or column) ranges with scoped std threads.
//!
//! Results never depend on the number of threads: every stage that is split returns per-range
//! partial results that are combined in range order, and the only cross-range reductions are
//! saturating sums of non-negative values (equal to `min(exact sum, MAX)` in any order) and
//! maxima.

use core::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::Parallelism;

/// Below this much work (entries) a stage runs on the calling thread only. A helper thread can
/// wait milliseconds to be scheduled on a busy machine, and the stage waits for it to finish
/// (even with nothing left to claim), so only stages of several milliseconds are split.
const MIN_PARALLEL_WORK: usize = 1 << 19;

/// The most threads a stage uses.
const MAX_THREADS: usize = 8;

#[cfg(test)]
thread_local! {
    /// Tests: split every stage into this many ranges, whatever its size.
    pub(crate) static FORCE_PARTS: core::cell::Cell<Option<usize>> =
        const { core::cell::Cell::new(None) };
}

/// The threads a stage may use, from the caller's [`Parallelism`]: the calling thread and
/// `threads - 1` scoped helpers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Par {
    threads: usize,
}

impl Par {
    pub(crate) fn new(parallelism: Parallelism) -> Self {
        let threads = match parallelism {
            Parallelism::Serial => 1,
            Parallelism::Threads(t) => t.clamp(1, MAX_THREADS),
        };
        Self { threads }
    }

    /// How many ranges to split `work` entries into: a few per thread, so that a thread the
    /// scheduler leaves waiting holds up at most one small range (the others take the rest).
    pub(crate) fn parts_for(self, work: usize) -> usize {
        #[cfg(test)]
        if let Some(parts) = FORCE_PARTS.with(core::cell::Cell::get) {
            return parts;
        }
        if work < MIN_PARALLEL_WORK || self.threads <= 1 {
            1
        } else {
            self.threads.saturating_mul(RANGES_PER_THREAD)
        }
    }

    /// Runs `f` on every item and returns the results in item order. The calling thread and
    /// up to `threads - 1` scoped helpers claim items one at a time, so which thread runs an
    /// item never matters; a helper that cannot be started is simply not there.
    pub(crate) fn map<I, T, F>(self, items: Vec<I>, f: F) -> Vec<T>
    where
        I: Send,
        T: Send,
        F: Fn(I) -> T + Sync,
    {
        map(items, self.threads, f)
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

fn map<I, T, F>(items: Vec<I>, threads: usize, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn(I) -> T + Sync,
{
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let helpers = threads.saturating_sub(1).min(items.len().saturating_sub(1));
    if helpers == 0 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<(Option<I>, Option<T>)>> = items
        .into_iter()
        .map(|item| Mutex::new((Some(item), None)))
        .collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(k) else { break };
        let item = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .take();
        if let Some(item) = item {
            let result = f(item);
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1 = Some(result);
        }
    };
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        work();
        for handle in handles {
            if let Err(payload) = handle.join() {
                // Re-raise a panic from a helper (the stages never panic).
                std::panic::resume_unwind(payload);
            }
        }
    });
    slots
        .into_iter()
        .filter_map(|slot| {
            let (item, result) = slot
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Every item was claimed and run; an unclaimed one would run here.
            result.or_else(|| item.map(&f))
        })
        .collect()
}
