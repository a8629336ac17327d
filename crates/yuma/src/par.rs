//! Data parallelism over contiguous row (or column) ranges with scoped std threads.
//!
//! Results never depend on the number of threads: every stage that is split returns per-range
//! partial results that are combined in range order, and the only cross-range reductions are
//! saturating sums of non-negative values (equal to `min(exact sum, MAX)` in any order) and
//! maxima.

use core::ops::Range;
use std::sync::Mutex;

/// Below this much work (entries) a stage runs on the calling thread only.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// The most threads a stage uses.
const MAX_THREADS: usize = 8;

#[cfg(test)]
thread_local! {
    /// Tests: split every stage into this many ranges, whatever its size.
    pub(crate) static FORCE_PARTS: core::cell::Cell<Option<usize>> =
        const { core::cell::Cell::new(None) };
}

/// How many ranges to split `work` entries into.
pub(crate) fn parts_for(work: usize) -> usize {
    #[cfg(test)]
    if let Some(parts) = FORCE_PARTS.with(core::cell::Cell::get) {
        return parts;
    }
    if work < MIN_PARALLEL_WORK {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, core::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
}

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

/// Runs `f` on every item, the first on the calling thread and the others on scoped threads,
/// and returns the results in item order. An item whose thread cannot be started (or that its
/// thread did not take) runs on the calling thread.
pub(crate) fn map<I, T, F>(items: Vec<I>, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn(I) -> T + Sync,
{
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let take = |slot: &Mutex<Option<I>>| {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    let mut iter = items.into_iter();
    let first = iter.next();
    let slots: Vec<Mutex<Option<I>>> = iter.map(|item| Mutex::new(Some(item))).collect();
    let (f, take) = (&f, &take);
    std::thread::scope(|scope| {
        let handles: Vec<_> = slots
            .iter()
            .map(|slot| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || take(slot).map(f))
                    .ok()
            })
            .collect();
        let mut out = Vec::with_capacity(slots.len().saturating_add(1));
        out.extend(first.map(f));
        for (slot, handle) in slots.iter().zip(handles) {
            let done = match handle.map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(v)) => v,
                // Re-raise a panic from the thread (the stages never panic).
                Some(Err(payload)) => std::panic::resume_unwind(payload),
                None => None,
            };
            out.extend(done.or_else(|| take(slot).map(f)));
        }
        out
    })
}
