//! The kappa-clipped stake-weighted median of each column (consensus `C`).
//!
//! subtensor finds, per column, the smallest score `w` with `sum(s | score <= w) > minority`,
//! where `minority = sum(s) - kappa`, by a pivoting search. Since the sums are exact, this is
//! the largest `w` with `sum(s | score >= w) >= kappa'` (`kappa' = sum(s) - minority`), or the
//! column minimum when no score qualifies. Rows without an entry in the column score 0.
//!
//! Here each column's positive entries are gathered once (a counting sort by column) and a
//! weighted quickselect finds the answer in expected linear time; zero scores are handled by
//! counting them, never stored.

use crate::fx::Fx;
use crate::sparse::Csr;

/// Consensus per column from the row-normalised weights `w`, the renormalised stake `s` of each
/// row (0 for rows that do not take part) and `target = sum(s) - minority`.
pub(crate) fn weighted_median_columns(
    w: &Csr,
    s: &[Fx],
    voters: usize,
    target: Fx,
    n: usize,
) -> Vec<Fx> {
    let mut consensus: Vec<Fx> = vec![0; n];
    if voters == 0 {
        return consensus;
    }

    // Pass 1: count the positive entries of voting rows per column.
    let mut start: Vec<usize> = vec![0; n.saturating_add(1)];
    for (i, cols, vals) in w.iter_rows() {
        if s.get(i).copied().unwrap_or(0) <= 0 {
            continue;
        }
        for (&j, &v) in cols.iter().zip(vals) {
            if v > 0 {
                if let Some(c) = start.get_mut(usize::from(j).saturating_add(1)) {
                    *c = c.saturating_add(1);
                }
            }
        }
    }
    let mut acc = 0usize;
    for c in start.iter_mut() {
        acc = acc.saturating_add(*c);
        *c = acc;
    }
    let total = acc;

    // Pass 2: scatter (score, stake) pairs into their column's segment.
    let mut fill: Vec<usize> = start.clone();
    let mut pairs: Vec<(Fx, Fx)> = vec![(0, 0); total];
    for (i, cols, vals) in w.iter_rows() {
        let si = s.get(i).copied().unwrap_or(0);
        if si <= 0 {
            continue;
        }
        for (&j, &v) in cols.iter().zip(vals) {
            if v > 0 {
                if let Some(f) = fill.get_mut(usize::from(j)) {
                    if let Some(p) = pairs.get_mut(*f) {
                        *p = (v, si);
                    }
                    *f = f.saturating_add(1);
                }
            }
        }
    }

    // Pass 3: select per column.
    for (j, c) in consensus.iter_mut().enumerate() {
        let lo = start.get(j).copied().unwrap_or(0);
        let hi = start.get(j.saturating_add(1)).copied().unwrap_or(lo);
        let Some(col) = pairs.get_mut(lo..hi) else {
            continue;
        };
        let has_zero = col.len() < voters;
        *c = column_median(col, target, has_zero);
    }
    consensus
}

/// The answer for one column, given its positive `(score, stake)` pairs (in any order) and
/// whether some voting row scores 0 there.
fn column_median(col: &mut [(Fx, Fx)], target: Fx, has_zero: bool) -> Fx {
    if col.is_empty() {
        return 0;
    }
    if target <= 0 {
        // Every score qualifies: the largest.
        return col.iter().map(|p| p.0).max().unwrap_or(0);
    }
    let positive_mass = col.iter().fold(0i64, |a, p| a.saturating_add(p.1));
    if positive_mass < target {
        // No positive score qualifies: 0 if some row scores 0, else the column minimum.
        return if has_zero {
            0
        } else {
            col.iter().map(|p| p.0).min().unwrap_or(0)
        };
    }
    select_largest_reaching(col, target)
}

/// The largest score `w` with `sum(stake | score >= w) >= need`, given that the whole slice
/// reaches `need > 0`. Three-way partitioning around a median-of-three pivot; small or
/// stubborn slices are sorted instead, so the worst case stays O(m log m).
fn select_largest_reaching(mut buf: &mut [(Fx, Fx)], mut need: Fx) -> Fx {
    let mut rounds = 0u32;
    loop {
        if buf.len() <= 24 || rounds > 48 {
            buf.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            let mut cum: Fx = 0;
            for &(w, st) in buf.iter() {
                cum = cum.saturating_add(st);
                if cum >= need {
                    return w;
                }
            }
            // Unreachable when the precondition holds; the smallest score is the safe answer.
            return buf.last().map_or(0, |p| p.0);
        }
        rounds = rounds.saturating_add(1);
        let pivot = median_of_three(buf);
        // Dutch flag: [> pivot | == pivot | < pivot].
        let (mut gt, mut i, mut lt) = (0usize, 0usize, buf.len());
        let (mut sum_gt, mut sum_eq): (Fx, Fx) = (0, 0);
        while i < lt {
            let Some(&(w, st)) = buf.get(i) else { break };
            if w > pivot {
                buf.swap(gt, i);
                gt = gt.saturating_add(1);
                i = i.saturating_add(1);
                sum_gt = sum_gt.saturating_add(st);
            } else if w < pivot {
                lt = lt.saturating_sub(1);
                buf.swap(i, lt);
            } else {
                i = i.saturating_add(1);
                sum_eq = sum_eq.saturating_add(st);
            }
        }
        if sum_gt >= need {
            let Some(next) = buf.get_mut(..gt) else {
                return pivot;
            };
            buf = next;
        } else if sum_gt.saturating_add(sum_eq) >= need {
            return pivot;
        } else {
            need = need.saturating_sub(sum_gt.saturating_add(sum_eq));
            let Some(next) = buf.get_mut(lt..) else {
                return pivot;
            };
            if next.is_empty() {
                return pivot;
            }
            buf = next;
        }
    }
}

fn median_of_three(buf: &[(Fx, Fx)]) -> Fx {
    let a = buf.first().map_or(0, |p| p.0);
    let b = buf.get(buf.len() / 2).map_or(0, |p| p.0);
    let c = buf.last().map_or(0, |p| p.0);
    a.max(b).min(a.min(b).max(c))
}
