//! Flat row-major sparse matrices (CSR) with I32F32 values, and the column operations the epoch
//! needs. Rows keep their stored order; nothing here allocates per entry.

use crate::fx::Fx;
use crate::pool;

/// A sparse `rows x n` matrix: row `i` holds `col[ptr[i]..ptr[i + 1]]` and the matching `val`,
/// or `col[ptr[i]..end[i]]` when `end` is not empty (rows filled in parallel into fixed
/// slots, with unused slots between them).
#[derive(Clone, Debug, Default)]
pub(crate) struct Csr {
    pub(crate) ptr: Vec<usize>,
    pub(crate) end: Vec<usize>,
    pub(crate) col: Vec<u16>,
    pub(crate) val: Vec<Fx>,
}

impl Csr {
    /// An empty matrix ready for `rows` rows of about `nnz` entries in all.
    pub(crate) fn with_capacity(rows: usize, nnz: usize) -> Self {
        let mut ptr = pool::USIZES.take(rows.saturating_add(1));
        ptr.push(0);
        Self {
            ptr,
            end: Vec::new(),
            col: pool::U16S.take(nnz),
            val: pool::I64S.take(nnz),
        }
    }

    /// Returns the buffers to this thread's shelves.
    pub(crate) fn recycle(self) {
        pool::USIZES.give(self.ptr);
        pool::USIZES.give(self.end);
        pool::U16S.give(self.col);
        pool::I64S.give(self.val);
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }

    /// Appends an entry to the row being built.
    #[inline]
    pub(crate) fn push(&mut self, j: u16, v: Fx) {
        self.col.push(j);
        self.val.push(v);
    }

    /// Closes the row being built.
    #[inline]
    pub(crate) fn end_row(&mut self) {
        self.ptr.push(self.col.len());
    }

    /// The range of row `i` in `col` / `val`.
    #[inline]
    pub(crate) fn range(&self, i: usize) -> core::ops::Range<usize> {
        let start = self.ptr.get(i).copied().unwrap_or(0);
        let end = if self.end.is_empty() {
            self.ptr.get(i.saturating_add(1)).copied()
        } else {
            self.end.get(i).copied()
        };
        start..end.unwrap_or(start).max(start)
    }

    /// Row `i` as (columns, values).
    #[inline]
    pub(crate) fn row(&self, i: usize) -> (&[u16], &[Fx]) {
        let r = self.range(i);
        (
            self.col.get(r.clone()).unwrap_or(&[]),
            self.val.get(r).unwrap_or(&[]),
        )
    }
}

/// The masked weights `W`, each row normalised to sum 1 once when built (every later stage
/// reads the I32F32 values), rows in stored order, explicit zeros kept.
pub(crate) type Weights = Csr;

/// A dense scratch row for accumulating one sparse row at a time, then emitting it in
/// ascending column order. Reset costs only the touched entries.
#[derive(Debug)]
pub(crate) struct Scratch {
    acc: Vec<Fx>,
    seen: Vec<bool>,
    touched: Vec<u16>,
}

impl Scratch {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            acc: vec![0; n],
            seen: vec![false; n],
            touched: Vec::new(),
        }
    }

    /// `acc[j] += v` (saturating).
    #[inline]
    pub(crate) fn add(&mut self, j: u16, v: Fx) {
        let ju = usize::from(j);
        if let (Some(a), Some(s)) = (self.acc.get_mut(ju), self.seen.get_mut(ju)) {
            *a = a.saturating_add(v);
            if !*s {
                *s = true;
                self.touched.push(j);
            }
        }
    }

    /// Appends the touched entries with a value above 0 to `out`, ascending, and resets.
    pub(crate) fn drain_positive_into(&mut self, out: &mut Csr) {
        if !self.touched.is_sorted() {
            self.touched.sort_unstable();
        }
        for &j in &self.touched {
            let ju = usize::from(j);
            if let (Some(a), Some(s)) = (self.acc.get_mut(ju), self.seen.get_mut(ju)) {
                if *a > 0 {
                    out.push(j, *a);
                }
                *a = 0;
                *s = false;
            }
        }
        self.touched.clear();
        out.end_row();
    }
}
