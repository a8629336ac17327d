//! Per-thread shelves of scratch vectors, reused from one epoch to the next so that the large
//! per-entry buffers are not faulted in afresh on every call. A vector handed out is empty
//! ([`Shelf::take`]) or of a given length with unspecified values ([`Shelf::take_len`]).
//! Nothing is shared between threads.

use core::cell::RefCell;

/// At most this many vectors of one type are kept per thread.
const KEEP: usize = 48;

/// Vectors of one element type, kept for reuse.
pub(crate) struct Shelf<T: 'static> {
    kept: &'static std::thread::LocalKey<RefCell<Vec<Vec<T>>>>,
}

impl<T: 'static> Shelf<T> {
    /// An empty vector with room for at least `capacity` elements.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        let reused = self
            .kept
            .try_with(|k| {
                let mut k = k.try_borrow_mut().ok()?;
                // The smallest kept vector that is large enough, else the largest.
                let pick = k
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.capacity() >= capacity)
                    .min_by_key(|(_, v)| v.capacity())
                    .or_else(|| k.iter().enumerate().max_by_key(|(_, v)| v.capacity()))
                    .map(|(i, _)| i)?;
                Some(k.swap_remove(pick))
            })
            .ok()
            .flatten();
        let mut v = reused.unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    /// A vector of exactly `len` elements whose values are unspecified (left over from an
    /// earlier use, or `T::default()`): reusing a kept vector writes nothing but what it lacks.
    pub(crate) fn take_len(&self, len: usize) -> Vec<T>
    where
        T: Clone + Default,
    {
        let reused = self
            .kept
            .try_with(|k| {
                let mut k = k.try_borrow_mut().ok()?;
                // The kept vector with the longest initialised length.
                let pick = k
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.len())
                    .map(|(i, _)| i)?;
                Some(k.swap_remove(pick))
            })
            .ok()
            .flatten();
        let mut v = reused.unwrap_or_default();
        v.resize(len, T::default());
        v
    }

    /// Keeps `v`'s allocation (and its initialised values, for [`Shelf::take_len`]) for later
    /// use on this thread.
    pub(crate) fn give(&self, v: Vec<T>) {
        // Dropped (freed) when the shelf is full or the thread is shutting down.
        let _ = self.kept.try_with(|k| {
            if let Ok(mut k) = k.try_borrow_mut() {
                if k.len() < KEEP {
                    k.push(v);
                }
            }
        });
    }
}

thread_local! {
    static U16: RefCell<Vec<Vec<u16>>> = const { RefCell::new(Vec::new()) };
    static I64: RefCell<Vec<Vec<i64>>> = const { RefCell::new(Vec::new()) };
    static U64: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
    static USIZE: RefCell<Vec<Vec<usize>>> = const { RefCell::new(Vec::new()) };
}

/// `u16` vectors (columns, stored values).
pub(crate) const U16S: Shelf<u16> = Shelf { kept: &U16 };
/// `i64` vectors (I32F32 values).
pub(crate) const I64S: Shelf<i64> = Shelf { kept: &I64 };
/// `u64` vectors (selection keys).
pub(crate) const U64S: Shelf<u64> = Shelf { kept: &U64 };
/// `usize` vectors (row pointers).
pub(crate) const USIZES: Shelf<usize> = Shelf { kept: &USIZE };
