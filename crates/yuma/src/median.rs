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

/// Columns per tile of the two-level scatter: a tile's column segments stay within a few
/// hundred pages, so the second-level scatter does not thrash the TLB.
const TILE_SHIFT: u32 = 8;

/// Packs a positive score, its voter and its column into one sortable key: the score minus one
/// (scores are in `[1, 2^32]` bits) in the high 32 bits, then the voter index, then the
/// column. Within one column, keys order by score.
#[inline]
fn pack(score: Fx, voter: u16, column: u16) -> u64 {
    let s = u64::try_from(score.saturating_sub(1)).unwrap_or(0) & 0xFFFF_FFFF;
    (s << 32) | (u64::from(voter) << 16) | u64::from(column)
}

#[inline]
fn key_score(key: u64) -> Fx {
    i64::try_from(key >> 32).unwrap_or(0).saturating_add(1)
}

#[inline]
fn key_voter(key: u64) -> usize {
    usize::from((key >> 16) as u16)
}

#[inline]
fn key_column(key: u64) -> usize {
    usize::from(key as u16)
}

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
    // Voter k's stake, with k dense over the voting rows (at most n <= 65535 of them).
    let mut voter_stake: Vec<Fx> = Vec::with_capacity(voters);
    let mut voter_rows: Vec<usize> = Vec::with_capacity(voters);
    for (i, &si) in s.iter().enumerate() {
        if si > 0 {
            voter_stake.push(si);
            voter_rows.push(i);
        }
    }

    // Pass 1: count the positive entries of voting rows per column; note whether every voting
    // row is in ascending column order.
    let mut start: Vec<usize> = vec![0; n.saturating_add(1)];
    let mut all_ascending = true;
    for &i in &voter_rows {
        let (cols, vals) = w.row(i);
        let mut prev: Option<u16> = None;
        for (&j, &v) in cols.iter().zip(vals) {
            all_ascending &= prev.is_none_or(|p| p < j);
            prev = Some(j);
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

    // Pass 2: scatter (score, voter) keys into their column's segment, one tile of columns at a
    // time so the write streams stay within a few hundred pages.
    let mut fill: Vec<usize> = start.clone();
    let mut keys: Vec<u64> = vec![0; total];
    let mut put = |fill: &mut [usize], keys: &mut [u64], key: u64| {
        if let Some(f) = fill.get_mut(key_column(key)) {
            if let Some(slot) = keys.get_mut(*f) {
                *slot = key;
            }
            *f = f.saturating_add(1);
        }
    };
    let tiles = (n >> TILE_SHIFT).saturating_add(1);
    if all_ascending {
        // Each voting row is consumed tile by tile through a cursor.
        let mut cursor: Vec<usize> = voter_rows.iter().map(|&i| w.range(i).start).collect();
        for t in 0..tiles {
            let tile_end = t
                .saturating_add(1)
                .checked_shl(TILE_SHIFT)
                .unwrap_or(usize::MAX);
            for (k, (&i, cur)) in voter_rows.iter().zip(cursor.iter_mut()).enumerate() {
                let voter = u16::try_from(k).unwrap_or(u16::MAX);
                let end = w.range(i).end;
                while *cur < end {
                    let (Some(&j), Some(&v)) = (w.col.get(*cur), w.val.get(*cur)) else {
                        break;
                    };
                    if usize::from(j) >= tile_end {
                        break;
                    }
                    *cur = cur.saturating_add(1);
                    if v > 0 {
                        put(&mut fill, &mut keys, pack(v, voter, j));
                    }
                }
            }
        }
    } else {
        // Two-level scatter: by tile (few sequential streams), then by column within a tile.
        let tile_start: Vec<usize> = (0..=tiles)
            .map(|t| {
                let col = t.checked_shl(TILE_SHIFT).unwrap_or(usize::MAX).min(n);
                start.get(col).copied().unwrap_or(total)
            })
            .collect();
        let mut tile_fill: Vec<usize> = tile_start;
        let mut by_tile: Vec<u64> = vec![0; total];
        for (k, &i) in voter_rows.iter().enumerate() {
            let voter = u16::try_from(k).unwrap_or(u16::MAX);
            let (cols, vals) = w.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                if v > 0 {
                    let t = usize::from(j) >> TILE_SHIFT;
                    if let Some(f) = tile_fill.get_mut(t) {
                        if let Some(slot) = by_tile.get_mut(*f) {
                            *slot = pack(v, voter, j);
                        }
                        *f = f.saturating_add(1);
                    }
                }
            }
        }
        for &key in &by_tile {
            put(&mut fill, &mut keys, key);
        }
    }

    // Pass 4: select per column.
    for (j, c) in consensus.iter_mut().enumerate() {
        let lo = start.get(j).copied().unwrap_or(0);
        let hi = start.get(j.saturating_add(1)).copied().unwrap_or(lo);
        let Some(col) = keys.get_mut(lo..hi) else {
            continue;
        };
        let has_zero = col.len() < voters;
        *c = column_median(col, &voter_stake, target, has_zero);
    }
    consensus
}

/// The answer for one column, given its positive entries' keys (in any order) and whether
/// some voting row scores 0 there.
fn column_median(col: &mut [u64], stake: &[Fx], target: Fx, has_zero: bool) -> Fx {
    let stake_of = |key: u64| stake.get(key_voter(key)).copied().unwrap_or(0);
    let Some(&first) = col.first() else {
        return 0;
    };
    if target <= 0 {
        // Every score qualifies: the largest.
        return col.iter().copied().max().map_or(0, key_score);
    }
    let positive_mass = col.iter().fold(0i64, |a, &k| a.saturating_add(stake_of(k)));
    if positive_mass < target {
        // No positive score qualifies: 0 if some row scores 0, else the column minimum.
        return if has_zero {
            0
        } else {
            key_score(col.iter().copied().min().unwrap_or(first))
        };
    }
    select_largest_reaching(col, stake, target)
}

/// The largest score `w` with `sum(stake | score >= w) >= need`, given that the whole slice
/// reaches `need > 0`. Three-way partitioning around a median-of-three pivot score; small or
/// stubborn slices are sorted instead, so the worst case stays O(m log m).
fn select_largest_reaching(mut buf: &mut [u64], stake: &[Fx], mut need: Fx) -> Fx {
    let stake_of = |key: u64| stake.get(key_voter(key)).copied().unwrap_or(0);
    let mut rounds = 0u32;
    loop {
        if buf.len() <= 32 || rounds > 48 {
            buf.sort_unstable_by(|a, b| b.cmp(a));
            let mut cum: Fx = 0;
            for &key in buf.iter() {
                cum = cum.saturating_add(stake_of(key));
                if cum >= need {
                    return key_score(key);
                }
            }
            // Unreachable when the precondition holds; the smallest score is the safe answer.
            return buf.last().map_or(0, |&k| key_score(k));
        }
        rounds = rounds.saturating_add(1);
        let pivot = median_of_three(buf);
        // Dutch flag on scores: [> pivot | == pivot | < pivot].
        let (mut gt, mut i, mut lt) = (0usize, 0usize, buf.len());
        let (mut sum_gt, mut sum_eq): (Fx, Fx) = (0, 0);
        while i < lt {
            let Some(&key) = buf.get(i) else { break };
            let w = key_score(key);
            if w > pivot {
                buf.swap(gt, i);
                gt = gt.saturating_add(1);
                i = i.saturating_add(1);
                sum_gt = sum_gt.saturating_add(stake_of(key));
            } else if w < pivot {
                lt = lt.saturating_sub(1);
                buf.swap(i, lt);
            } else {
                i = i.saturating_add(1);
                sum_eq = sum_eq.saturating_add(stake_of(key));
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

fn median_of_three(buf: &[u64]) -> Fx {
    let a = buf.first().map_or(0, |&k| key_score(k));
    let b = buf.get(buf.len() >> 1).map_or(0, |&k| key_score(k));
    let c = buf.last().map_or(0, |&k| key_score(k));
    a.max(b).min(a.min(b).max(c))
}
