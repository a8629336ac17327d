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
    let put = |fill: &mut [usize], keys: &mut [u64], key: u64| {
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
/// reaches `need > 0`.
///
/// A most-significant-digit radix descent on the 32-bit score field, 8 bits per level: a
/// stake histogram of the candidates' next digit gives the highest digit whose mass (with
/// the mass above it) reaches `need`; only the candidates with that digit go on. Four levels
/// at most, each linear and free of data-dependent branches in its inner loop.
fn select_largest_reaching(buf: &mut [u64], stake: &[Fx], mut need: Fx) -> Fx {
    let stake_of = |key: u64| stake.get(key_voter(key)).copied().unwrap_or(0);
    let mut len = buf.len();
    let mut prefix: u64 = 0;
    let mut hist = [0i64; 256];
    for level in 0..4u32 {
        let shift = 56u32.saturating_sub(level.saturating_mul(8));
        let digit = |key: u64| usize::from((key >> shift) as u8);
        hist.iter_mut().for_each(|h| *h = 0);
        let candidates = buf.get(..len).unwrap_or(&[]);
        for &key in candidates {
            if let Some(h) = hist.get_mut(digit(key)) {
                *h = h.saturating_add(stake_of(key));
            }
        }
        // Highest digit whose cumulative mass from the top reaches `need`.
        let mut above: Fx = 0;
        let mut chosen: Option<usize> = None;
        for d in (0..256usize).rev() {
            let mass = hist.get(d).copied().unwrap_or(0);
            let with = above.saturating_add(mass);
            if with >= need {
                chosen = Some(d);
                break;
            }
            above = with;
        }
        let Some(d) = chosen else {
            // Unreachable when the precondition holds; the smallest candidate is the safe answer.
            return candidates.iter().copied().min().map_or(0, key_score);
        };
        need = need.saturating_sub(above);
        prefix |= (d as u64) << shift;
        // Keep the candidates with this digit at the front (branch-free compaction).
        let mut kept = 0usize;
        for r in 0..len {
            let Some(&key) = buf.get(r) else { break };
            if let Some(slot) = buf.get_mut(kept) {
                *slot = key;
            }
            kept = kept.saturating_add(usize::from(digit(key) == d));
        }
        len = kept;
    }
    key_score(prefix)
}
