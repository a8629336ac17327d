//! The kappa-clipped stake-weighted median of each column (consensus `C`).
//!
//! subtensor finds, per column, the smallest score `w` with `sum(s | score <= w) > minority`,
//! where `minority = sum(s) - kappa`, by a pivoting search. Since the sums are exact, this is
//! the largest `w` with `sum(s | score >= w) >= kappa'` (`kappa' = sum(s) - minority`), or the
//! column minimum when no score qualifies. Rows without an entry in the column score 0.
//!
//! Here each column's positive entries are gathered once into its own segment of a key buffer
//! (segments sized by counts taken while masking, or one slot per voter when the votes are
//! dense) and a radix selection finds the answer in linear time; zero scores are handled by
//! counting them, never stored.

use crate::fx::Fx;
use crate::sparse::Weights;

/// Columns per tile of the two-level scatter: a tile's column segments stay within a few
/// hundred pages, so the second-level scatter does not thrash the TLB.
const TILE_SHIFT: u32 = 8;

/// Unused key slots after each column's segment in a tile (one cache line).
const PAD: usize = 8;

/// Packs a positive score and its voter's stake into one sortable key: the score minus one in
/// the high 32 bits, the stake minus one in the low 32 bits (both are in `[1, 2^32]` bits: a
/// normalised weight above 0 and a voter's renormalised stake above 0). Within one column,
/// keys order by score, and the selection reads the stake without a lookup.
#[inline]
fn pack(score: Fx, stake_minus_one: u64) -> u64 {
    let s = u64::try_from(score.saturating_sub(1)).unwrap_or(0) & 0xFFFF_FFFF;
    (s << 32) | stake_minus_one
}

#[inline]
fn key_score(key: u64) -> Fx {
    i64::try_from(key >> 32).unwrap_or(0).saturating_add(1)
}

#[inline]
fn key_stake(key: u64) -> Fx {
    // At most 2^32: a sum of at most 65535 of them stays below 2^48, so the masses below are
    // added without overflow checks.
    ((key & 0xFFFF_FFFF) as i64).wrapping_add(1)
}

/// What masking the weights counts for consensus, over the voting rows (`s_i > 0`).
#[derive(Clone, Debug)]
pub(crate) struct VoteCounts {
    /// At `j + 1`: the number of positive weights in column `j` (length `n + 1`). Not counted
    /// when the voting rows are dense.
    pub(crate) counts: Option<Vec<usize>>,
    /// Whether every voting row's columns ascend.
    pub(crate) ascending: bool,
}

/// Consensus per column from the weights `w`, the renormalised stake `s` of each row (0 for rows
/// that do not take part), the number of such voting rows and `target = sum(s) - minority`.
pub(crate) fn weighted_median_columns(
    w: &Weights,
    s: &[Fx],
    votes: VoteCounts,
    voters: usize,
    target: Fx,
    n: usize,
    par: crate::par::Par,
) -> Vec<Fx> {
    let mut consensus: Vec<Fx> = vec![0; n];
    if voters == 0 {
        return consensus;
    }
    // Voter k's stake minus one (in `[0, 2^32)`: normalised stakes are at most 1), with k
    // dense over the voting rows.
    let mut voter_stake: Vec<u64> = Vec::with_capacity(voters);
    let mut voter_rows: Vec<usize> = Vec::with_capacity(voters);
    for (i, &si) in s.iter().enumerate() {
        if si > 0 {
            voter_stake.push(si.unsigned_abs().saturating_sub(1) & 0xFFFF_FFFF);
            voter_rows.push(i);
        }
    }

    let all_ascending = votes.ascending;
    // Room for each column's keys: column j's segment is `start[j]..start[j + 1]`. Without
    // counts (dense votes), every column has room for every voter: at most twice the entries.
    let mut start: Vec<usize> = match votes.counts {
        Some(counts) => counts,
        None if all_ascending => (0..=n).map(|_| voters).collect(),
        None => {
            // Rows out of order need exact segments: counted here.
            let mut counts: Vec<usize> = vec![0; n.saturating_add(1)];
            for &i in &voter_rows {
                let (cols, vals) = w.row(i);
                for (&j, &r) in cols.iter().zip(vals) {
                    if let Some(c) = counts.get_mut(usize::from(j).wrapping_add(1)) {
                        // At most one per entry: no overflow.
                        *c = c.wrapping_add(usize::from(r > 0));
                    }
                }
            }
            counts
        }
    };
    start.resize(n.saturating_add(1), 0);
    if let Some(first) = start.first_mut() {
        *first = 0;
    }
    let mut acc = 0usize;
    for c in start.iter_mut() {
        acc = acc.saturating_add(*c);
        *c = acc;
    }
    let total = acc;
    let at = |j: usize| start.get(j).copied().unwrap_or(total);
    let tiles = (n >> TILE_SHIFT).saturating_add(1);
    let tile_bounds = |t: usize| {
        let first = t.checked_shl(TILE_SHIFT).unwrap_or(usize::MAX).min(n);
        let last = t
            .saturating_add(1)
            .checked_shl(TILE_SHIFT)
            .unwrap_or(usize::MAX)
            .min(n);
        (first, last)
    };
    let put = |fill: &mut [usize], keys: &mut [u64], base: usize, column: u16, key: u64| {
        if let Some(f) = fill.get_mut(usize::from(column)) {
            if let Some(slot) = keys.get_mut(f.saturating_sub(base)) {
                *slot = key;
            }
            *f = f.saturating_add(1);
        }
    };
    // Writes column j's answer to `out[j - offset]`.
    let select_tile = |keys: &mut [u64],
                       base: usize,
                       first: usize,
                       last: usize,
                       offset: usize,
                       out: &mut [Fx]| {
        for j in first..last {
            let lo = at(j).saturating_sub(base);
            let hi = at(j.saturating_add(1)).saturating_sub(base);
            let c = out.get_mut(j.saturating_sub(offset));
            if let (Some(col), Some(c)) = (keys.get_mut(lo..hi), c) {
                *c = column_median(col, target, col.len() < voters);
            }
        }
    };

    if all_ascending {
        // Tile by tile: gather the tile's keys through a cursor per voting row into one
        // reused buffer, then select each of its columns. Ranges of tiles run in parallel,
        // each writing its own columns of `consensus`.
        let tile_ranges = crate::par::split(tiles, par.parts_for(total), |t| {
            let (first, last) = tile_bounds(t);
            at(last).saturating_sub(at(first)).saturating_add(1)
        });
        // Per range: its tiles, its columns of `consensus` and its key buffer (taken from the
        // epoch thread's shelf, reused across epochs).
        let mut items: Vec<(core::ops::Range<usize>, &mut [Fx], Vec<u64>)> = Vec::new();
        let mut rest: &mut [Fx] = &mut consensus;
        let mut done = 0usize;
        for r in tile_ranges {
            let (_, last) = tile_bounds(r.end.saturating_sub(1));
            let last = if r.end >= tiles { n } else { last };
            let (head, tail) = rest.split_at_mut(last.saturating_sub(done).min(rest.len()));
            done = done.saturating_add(head.len());
            let largest_tile = r
                .clone()
                .map(|t| {
                    let (first, last) = tile_bounds(t);
                    let padding = last.saturating_sub(first).saturating_mul(PAD);
                    at(last).saturating_sub(at(first)).saturating_add(padding)
                })
                .max()
                .unwrap_or(0);
            // Only the slots a column fills are read: reused keys need no zeroing.
            let keys = crate::pool::U64S.take_len(largest_tile);
            items.push((r, head, keys));
            rest = tail;
        }
        let (at, tile_bounds) = (&at, &tile_bounds);
        let voter_rows = &voter_rows;
        par.map(
            items,
            |(range, out, mut keys): (core::ops::Range<usize>, &mut [Fx], Vec<u64>)| {
                let (col0, _) = tile_bounds(range.start);
                // Each voting row's first entry at or after this range's first column.
                let mut cursor: Vec<usize> = voter_rows
                    .iter()
                    .map(|&i| {
                        let r = w.range(i);
                        let cols = w.col.get(r.clone()).unwrap_or(&[]);
                        let below = cols.partition_point(|&j| usize::from(j) < col0);
                        r.start.saturating_add(below)
                    })
                    .collect();
                // Per column of a tile: where its keys start, and the next free slot. Each
                // column's segment is followed by `PAD` unused slots, so that segments of
                // 2^k keys do not all fall into the same few cache sets.
                let mut seg_start: Vec<usize> = Vec::new();
                let mut fill: Vec<usize> = Vec::new();
                for t in range {
                    let (first, last) = tile_bounds(t);
                    seg_start.clear();
                    let mut offset = 0usize;
                    for j in first..last {
                        seg_start.push(offset);
                        let count = at(j.saturating_add(1)).saturating_sub(at(j));
                        offset = offset.saturating_add(count).saturating_add(PAD);
                    }
                    fill.clear();
                    fill.extend_from_slice(&seg_start);
                    for ((&i, &stake), cur) in voter_rows
                        .iter()
                        .zip(voter_stake.iter())
                        .zip(cursor.iter_mut())
                    {
                        let end = w.range(i).end;
                        let cols = w.col.get(*cur..end).unwrap_or(&[]);
                        let vals = w.val.get(*cur..end).unwrap_or(&[]);
                        let mut taken = 0usize;
                        for (&j, &r) in cols.iter().zip(vals) {
                            let local = usize::from(j).wrapping_sub(first);
                            let Some(f) = fill.get_mut(local) else { break };
                            taken = taken.wrapping_add(1);
                            if r > 0 {
                                if let Some(slot) = keys.get_mut(*f) {
                                    *slot = pack(r, stake);
                                }
                                *f = f.wrapping_add(1);
                            }
                        }
                        *cur = cur.saturating_add(taken);
                    }
                    let out = out.get_mut(first.saturating_sub(col0)..).unwrap_or(&mut []);
                    for ((&lo, &hi), c) in seg_start.iter().zip(&fill).zip(out) {
                        if let Some(col) = keys.get_mut(lo..hi) {
                            *c = column_median(col, target, col.len() < voters);
                        }
                    }
                }
                keys
            },
        )
        .into_iter()
        .for_each(|keys| crate::pool::U64S.give(keys));
    } else {
        // Two-level scatter: by tile (few sequential streams), then by column within a tile.
        let mut tile_fill: Vec<usize> = (0..=tiles).map(|t| at(tile_bounds(t).0)).collect();
        let mut by_tile: Vec<(u16, u64)> = vec![(0, 0); total];
        for (&i, &stake) in voter_rows.iter().zip(&voter_stake) {
            let (cols, vals) = w.row(i);
            for (&j, &r) in cols.iter().zip(vals) {
                if r > 0 {
                    let t = usize::from(j) >> TILE_SHIFT;
                    if let Some(f) = tile_fill.get_mut(t) {
                        if let Some(slot) = by_tile.get_mut(*f) {
                            *slot = (j, pack(r, stake));
                        }
                        *f = f.saturating_add(1);
                    }
                }
            }
        }
        let mut keys: Vec<u64> = vec![0; total];
        let mut fill: Vec<usize> = start.clone();
        for &(j, key) in &by_tile {
            put(&mut fill, &mut keys, 0, j, key);
        }
        drop(by_tile);
        select_tile(&mut keys, 0, 0, n, 0, &mut consensus);
    }
    consensus
}

/// The answer for one column, given its positive entries' keys (in any order) and whether
/// some voting row scores 0 there.
fn column_median(col: &mut [u64], target: Fx, has_zero: bool) -> Fx {
    if col.is_empty() {
        return 0;
    }
    if target <= 0 {
        // Every score qualifies: the largest.
        return col.iter().copied().max().map_or(0, key_score);
    }
    // One pass for the mass of the positive scores and the score bits that vary among them.
    let (positive_mass, any, all) = col
        .iter()
        .fold((0i64, 0u64, u64::MAX), |(m, any, all), &k| {
            (m.wrapping_add(key_stake(k)), any | k, all & k)
        });
    if positive_mass < target {
        // No positive score qualifies: 0 if some row scores 0, else the column minimum.
        return if has_zero {
            0
        } else {
            col.iter().copied().min().map_or(0, key_score)
        };
    }
    select_largest_reaching(col, target, Some((any ^ all) >> 32))
}

/// The largest score `w` with `sum(stake | score >= w) >= need`, given that the whole slice
/// reaches `need > 0`.
///
/// A most-significant-digit radix descent on the scores, 8 bits at a time starting at the
/// highest bit in which the candidates differ: a stake histogram of the candidates' digit gives
/// the highest digit whose mass (with the mass above it) reaches `need`; only the candidates
/// with that digit go on. A few candidates are sorted instead.
fn select_largest_reaching(buf: &mut [u64], mut need: Fx, mut varying: Option<u64>) -> Fx {
    let score_bits = |key: u64| key >> 32;
    let mut len = buf.len();
    let mut hist = [0i64; 256];
    loop {
        let candidates = buf.get_mut(..len).unwrap_or(&mut []);
        if candidates.len() <= 48 {
            // Sort by score, descending, and walk the masses.
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let mut cum: Fx = 0;
            for &key in candidates.iter() {
                cum = cum.wrapping_add(key_stake(key));
                if cum >= need {
                    return key_score(key);
                }
            }
            // Unreachable when the precondition holds; the smallest score is the safe answer.
            return candidates.last().map_or(0, |&k| key_score(k));
        }
        // The score bits that are not the same in every candidate (given for the first
        // round): bits set in some but not all. The highest of them is the highest bit where
        // the smallest and the largest score differ (above it all scores share one prefix).
        // Bitwise folds, unlike 64-bit minima, vectorise with baseline SIMD.
        let varying = varying.take().unwrap_or_else(|| {
            let (any, all) = candidates
                .iter()
                .fold((0u64, u64::MAX), |(any, all), &k| (any | k, all & k));
            (any ^ all) >> 32
        });
        if varying == 0 {
            return candidates.first().map_or(0, |&k| key_score(k));
        }
        // The digit: 8 bits ending at the highest bit where the scores differ.
        let top = 63u32.saturating_sub(varying.leading_zeros());
        let shift = top.saturating_sub(7);
        let digit = |key: u64| usize::from((score_bits(key) >> shift) as u8);
        hist.iter_mut().for_each(|h| *h = 0);
        for &key in candidates.iter() {
            if let Some(h) = hist.get_mut(digit(key)) {
                *h = h.wrapping_add(key_stake(key));
            }
        }
        // Highest digit whose cumulative mass from the top reaches `need`.
        let mut above: Fx = 0;
        let mut chosen: Option<usize> = None;
        for d in (0..256usize).rev() {
            let with = above.wrapping_add(hist.get(d).copied().unwrap_or(0));
            if with >= need {
                chosen = Some(d);
                break;
            }
            above = with;
        }
        let Some(d) = chosen else {
            return candidates.iter().copied().min().map_or(0, key_score);
        };
        need = need.saturating_sub(above);
        // Keep the candidates with this digit at the front (branch-free compaction).
        let mut kept = 0usize;
        for r in 0..len {
            let Some(&key) = buf.get(r) else { break };
            if let Some(slot) = buf.get_mut(kept) {
                *slot = key;
            }
            kept = kept.wrapping_add(usize::from(digit(key) == d));
        }
        len = kept;
    }
}
