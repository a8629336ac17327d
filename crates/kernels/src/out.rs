//! The product's output, written by several threads at once.
#![allow(unsafe_code)]

/// A row-major `m × n` output that work ranges write column slices of concurrently.
///
/// [`crate::PackedMatrix::matmul`] gives every panel of columns to exactly one work range, so
/// no two threads ever write the same element; that is the contract of [`SharedOut::new`].
pub(crate) struct SharedOut {
    ptr: *mut f32,
    len: usize,
    n: usize,
}

// SAFETY: writers touch disjoint elements (the contract of `new`), and the borrow of the
// output slice outlives every writer because `matmul` returns only after `Parallel::run`.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Wraps `out`, whose rows have `n` columns. Callers must hand each column range to a
    /// single thread.
    pub(crate) fn new(out: &mut [f32], n: usize) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            n,
        }
    }

    /// Writes `values` into row `row` from column `col`.
    pub(crate) fn write(&self, row: usize, col: usize, values: &[f32]) {
        let start = row * self.n + col;
        assert!(col + values.len() <= self.n && start + values.len() <= self.len);
        // SAFETY: in bounds (checked above); no other thread writes these columns.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(start), values.len()) }
    }

    /// The address of row `row`, column `col`, for a vector store of at most
    /// `n - col` values.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn at(&self, row: usize, col: usize) -> *mut f32 {
        let start = row * self.n + col;
        assert!(col < self.n && start < self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(start) }
    }
}
