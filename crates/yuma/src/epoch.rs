//! The epoch, staged like subtensor's production sparse epoch. Names follow Yuma's notation:
//! `S` stake, `A` active stake, `W` weights, `C` consensus, `W̄` clipped weights, `Tv`
//! validator trust, `I` incentive, `B` bonds, `D` dividends.

use core::ops::Range;

use agora_primitives::fixed::{I32F32, I64F64};

use crate::fx::{self, Div, Fx, ONE};
use crate::median::{weighted_median_columns, VoteCounts};
use crate::par::{self, Par};
use crate::sparse::{Csr, Scratch, Weights};
use crate::{EpochInputs, EpochOutputs, FixedBits, Parallelism, YumaError, YumaParams};

/// Runs one Yuma Consensus epoch on the calling thread. Pure and deterministic; rejects
/// malformed inputs with a [`YumaError`] and never panics.
pub fn run_epoch(inputs: &EpochInputs, params: &YumaParams) -> Result<EpochOutputs, YumaError> {
    run_epoch_with(inputs, params, Parallelism::Serial)
}

/// [`run_epoch`], with large stages split over the threads `parallelism` allows. The output
/// does not depend on the number of threads.
pub fn run_epoch_with(
    inputs: &EpochInputs,
    params: &YumaParams,
    parallelism: Parallelism,
) -> Result<EpochOutputs, YumaError> {
    Par::new(parallelism).run(|par| epoch(inputs, params, par))
}

/// The epoch, on the thread (and pool) `par` says.
fn epoch(inputs: &EpochInputs, params: &YumaParams, par: Par) -> Result<EpochOutputs, YumaError> {
    validate(inputs, par)?;
    let n = usize::from(inputs.n);
    let owner = inputs.owner_uid.map(usize::from);
    let current_block = inputs.current_block;

    // ======================
    // == Active & updated ==
    // ======================

    // active_i = !(last_update_i + activity_cutoff < current_block)
    let active: Vec<bool> = inputs
        .last_update
        .iter()
        .map(|&u| u.saturating_add(params.activity_cutoff) >= current_block)
        .collect();

    // ===========
    // == Stake ==
    // ===========

    // Stake below the threshold counts as 0, except the owner's; S = normalize_64(stake),
    // narrowed to I32F32 by truncation.
    let zero64 = I64F64::from_bits(0);
    let filtered: Vec<I64F64> = inputs
        .stake
        .iter()
        .enumerate()
        .map(|(uid, &s)| {
            if owner != Some(uid) && s.saturating_to_num::<u64>() < params.stake_threshold {
                zero64
            } else {
                s
            }
        })
        .collect();
    let stake_total = filtered
        .iter()
        .fold(zero64, |acc, &s| acc.saturating_add(s));
    let stake: Vec<Fx> = filtered
        .iter()
        .map(|&s| normalise_stake(s, stake_total))
        .collect();

    // =======================
    // == Validator permits ==
    // =======================

    // Old permits (as stored), with the owner forced; they gate weights and active stake.
    let mut validator_permits: Vec<bool> = inputs.validator_permit.clone();
    if let Some(p) = owner.and_then(|o| validator_permits.get_mut(o)) {
        *p = true;
    }
    // New permits: top-k non-zero normalised stake, the owner forced.
    let mut new_validator_permits =
        is_topk_nonzero(&stake, usize::from(params.max_allowed_validators));
    if let Some(p) = owner.and_then(|o| new_validator_permits.get_mut(o)) {
        *p = true;
    }

    // ==================
    // == Active Stake ==
    // ==================

    // A = normalize(S masked by inactive and by no old permit)
    let mut active_stake: Vec<Fx> = stake
        .iter()
        .zip(active.iter().zip(&validator_permits))
        .map(|(&s, (&a, &p))| if a && p { s } else { 0 })
        .collect();
    fx::inplace_normalize(&mut active_stake);

    // =============
    // == Weights ==
    // =============

    // W: rows of permitted validators only; no self-weight (the owner's kept); no weight set
    // at or before the target registered (last_update_i <= block_at_registration_j); with
    // commit-reveal, no weight committed before the target registered
    // (commit_block_i < block_at_registration_j); then each row normalised to sum 1.
    // Voting rows' stake, renormalised: s = normalize(A_i for A_i > 0); rows with s_i > 0 vote
    // in consensus (their positive weights are counted per column while masking).
    let mut voter_stake: Vec<Fx> = active_stake.iter().map(|&a| a.max(0)).collect();
    fx::inplace_normalize(&mut voter_stake);
    // When the voting rows are dense, consensus gives every column room for every voter and
    // needs no per-column counts.
    let voter_entries: usize = inputs
        .weights
        .iter()
        .zip(&voter_stake)
        .filter(|&(_, &s)| s > 0)
        .map(|(row, _)| row.len())
        .sum();
    let voter_count = voter_stake.iter().filter(|&&s| s > 0).count();
    let count_votes = voter_entries.saturating_mul(2) < voter_count.saturating_mul(n);
    #[cfg(test)]
    let count_votes = count_votes || FORCE_SPARSE.with(core::cell::Cell::get);
    let (weights, votes) = prepare_weights(
        inputs,
        params,
        &validator_permits,
        &voter_stake,
        count_votes,
        owner,
        n,
        par,
    );

    // ================================
    // == Consensus, Validator Trust ==
    // ================================

    // kappa in [0, 1]
    let kappa: Fx = fx::safe_div(fx::from_u16(params.kappa), fx::from_u16(u16::MAX));
    // C_j = stake-weighted median of column j over rows with A_i > 0 (stake renormalised).
    let consensus = consensus(&weights, &active_stake, &voter_stake, votes, kappa, n, par);

    // beta in [0, 1]; W_b = W + beta (W̄ - W): W (beta = 0), W̄ (beta = 1) or a new matrix.
    let beta: Fx = fx::safe_div(fx::from_u16(params.bonds_penalty), fx::from_u16(u16::MAX));

    // W̄_ij = min(W_ij, C_j), dropped when C_j < W_ij and C_j <= 0.
    // Tv_i = sum_j W̄_ij
    // R_j = sum_i A_i * W̄_ij
    // Classic bonds with beta = 0 also need sum_i W_ij * A_i, taken in the same pass.
    let plain_delta = !params.yuma3 && beta == 0;
    let (validator_trust, ranks, plain_delta_sum) =
        clip(&weights, &consensus, &active_stake, plain_delta, par);

    // =============================
    // == Ranks, Trust, Incentive ==
    // =============================

    // Classic bonds with beta = 1 column-normalise W̄ ∘ A, whose column sums are the ranks.
    let delta_sum = if !params.yuma3 && beta == ONE {
        Some(ranks.clone())
    } else {
        plain_delta_sum
    };
    // I = normalize(R)
    let mut incentive = ranks;
    fx::inplace_normalize(&mut incentive);

    // =========================
    // == Bonds and Dividends ==
    // =========================

    // W_b: W (beta = 0), W̄ (beta = 1) or a new matrix.
    let weights_for_bonds = if beta == 0 {
        BondWeights::Plain(&weights)
    } else if beta == ONE {
        BondWeights::Clipped(&weights, &consensus)
    } else {
        BondWeights::Interpolated(interpolate(&weights, &consensus, beta, n))
    };

    // Bonds to neurons registered since the last epoch are dropped:
    // last_tempo <= block_at_registration_j, with last_tempo the block after the previous
    // epoch (or current_block - tempo when there was none).
    let last_tempo: u64 = if inputs.last_mechanism_step_block == 0 {
        current_block.saturating_sub(u64::from(params.tempo))
    } else {
        inputs.last_mechanism_step_block.saturating_add(1)
    };

    let (mut dividends, ema_bonds_stored) = if params.yuma3 {
        yuma3_bonds(
            inputs,
            params,
            &weights_for_bonds,
            &consensus,
            &incentive,
            &active_stake,
            &new_validator_permits,
            last_tempo,
            n,
            par,
        )
    } else {
        classic_bonds(
            inputs,
            params,
            &weights_for_bonds,
            delta_sum,
            &incentive,
            &active_stake,
            &new_validator_permits,
            last_tempo,
            n,
            par,
        )
    };
    fx::inplace_normalize(&mut dividends);
    if let BondWeights::Interpolated(m) = weights_for_bonds {
        m.recycle();
    }
    weights.recycle();

    // =================================
    // == Emission and Pruning scores ==
    // =================================

    // Both shares are divided by the same sum(I + D); the combined emission is normalised on
    // its own (to the same sum).
    let combined: Vec<Fx> = incentive
        .iter()
        .zip(&dividends)
        .map(|(&i, &d)| i.saturating_add(d))
        .collect();
    let emission_sum = fx::sum(&combined);
    let (server_share, validator_share, combined_share): (Vec<Fx>, Vec<Fx>, Vec<Fx>) =
        if emission_sum == 0 {
            // No weights, outdated weights or only self-weights: emission follows active
            // stake, or stake when no stake is active.
            let fallback = if fx::sum(&active_stake) == 0 {
                stake.clone()
            } else {
                active_stake.clone()
            };
            (incentive.clone(), fallback.clone(), fallback)
        } else {
            let d = Div::new(emission_sum);
            (
                incentive.iter().map(|&x| d.safe_div(x)).collect(),
                dividends.iter().map(|&x| d.safe_div(x)).collect(),
                combined.iter().map(|&x| d.safe_div(x)).collect(),
            )
        };
    // RAO: floor(share * rao_emission) in I96F32.
    let rao = i128::from(inputs.rao_emission);
    let to_rao = |shares: &[Fx]| -> Vec<u64> {
        shares
            .iter()
            .map(|&x| {
                // |x| < 2^63 and rao < 2^64: the product fits in an i128.
                let bits = i128::from(x).saturating_mul(rao) >> 32;
                u64::try_from(bits.max(0)).unwrap_or(u64::MAX)
            })
            .collect()
    };
    let server_emission = to_rao(&server_share);
    let validator_emission = to_rao(&validator_share);
    let emission = to_rao(&combined_share);

    // ===========================
    // == Populate epoch output ==
    // ===========================

    let to_u16 = |v: &[Fx]| -> Vec<u16> { v.iter().map(|&x| fx::to_u16(x)).collect() };
    let bonds = ema_bonds_stored;

    Ok(EpochOutputs {
        active,
        new_validator_permit: new_validator_permits,
        stake_weight: to_u16(&stake),
        consensus: to_u16(&consensus),
        incentive: to_u16(&incentive),
        dividends: to_u16(&dividends),
        validator_trust: to_u16(&validator_trust),
        bonds,
        server_emission,
        validator_emission,
        emission,
        fixed_bits: FixedBits {
            stake,
            active_stake,
            consensus,
            validator_trust,
            incentive,
            dividends,
        },
    })
}

/// Checks lengths, uid ranges and duplicate uids, so that every later stage is well defined.
#[inline(never)] // a stage of its own in profiles
fn validate(inputs: &EpochInputs, par: Par) -> Result<(), YumaError> {
    let n = usize::from(inputs.n);
    let check_len = |field: &'static str, actual: usize| {
        if actual == n {
            Ok(())
        } else {
            Err(YumaError::LengthMismatch {
                field,
                expected: n,
                actual,
            })
        }
    };
    check_len("stake", inputs.stake.len())?;
    check_len("last_update", inputs.last_update.len())?;
    check_len("block_at_registration", inputs.block_at_registration.len())?;
    check_len("validator_permit", inputs.validator_permit.len())?;
    check_len("weights", inputs.weights.len())?;
    check_len("bonds", inputs.bonds.len())?;
    if let Some(c) = &inputs.commit_blocks {
        check_len("commit_blocks", c.len())?;
    }
    if let Some(owner) = inputs.owner_uid {
        if usize::from(owner) >= n {
            return Err(YumaError::OwnerOutOfRange { owner, n: inputs.n });
        }
    }
    if let Some(uid) = inputs.stake.iter().position(|s| s.is_negative()) {
        return Err(YumaError::NegativeStake { uid });
    }
    // Rows in ranges, in parallel; the first error in (field, row, entry) order wins.
    let total: usize = inputs
        .weights
        .iter()
        .chain(&inputs.bonds)
        .map(Vec::len)
        .sum();
    let parts = par.parts_for(total);
    let mut items: Vec<(&'static str, &[crate::SparseRow], Range<usize>)> = Vec::new();
    for (field, rows) in [("weights", &inputs.weights), ("bonds", &inputs.bonds)] {
        for r in par::split(rows.len(), parts, |i| {
            rows.get(i).map_or(0, Vec::len).saturating_add(1)
        }) {
            items.push((field, rows.as_slice(), r));
        }
    }
    type Item<'a> = (&'static str, &'a [crate::SparseRow], Range<usize>);
    let check = |(field, rows, range): Item<'_>| {
        // stamp[j] == id when the row with that id has already named uid j.
        let mut stamp: Vec<u32> = Vec::new();
        let mut row_id: u32 = 0;
        for row in range {
            let entries: &[(u16, u16)] = rows.get(row).map_or(&[], Vec::as_slice);
            // Fast path: strictly ascending uids below n have no duplicate and none out of
            // range.
            let mut prev = -1i32;
            let mut ascending = true;
            for &(uid, _) in entries {
                ascending &= i32::from(uid) > prev;
                prev = i32::from(uid);
            }
            if ascending && usize::try_from(prev).map_or(true, |last| last < n) {
                continue;
            }
            if stamp.is_empty() {
                stamp = vec![0; n];
            }
            row_id = row_id.saturating_add(1);
            for &(uid, _) in entries {
                let Some(s) = stamp.get_mut(usize::from(uid)) else {
                    return Some(YumaError::UidOutOfRange {
                        field,
                        row,
                        uid,
                        n: inputs.n,
                    });
                };
                if *s == row_id {
                    return Some(YumaError::DuplicateUid { field, row, uid });
                }
                *s = row_id;
            }
        }
        None
    };
    // One range per field when the input is small: no threads then.
    let errors = if parts > 1 {
        par.map(items, check)
    } else {
        items.into_iter().map(check).collect()
    };
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `s / total` in I64F64 (subtensor's `safe_div`), narrowed to I32F32 bits by truncation.
///
/// Both steps floor, so for `0 <= s <= total` the result is `floor(s * 2^32 / total)` on the raw
/// bits, computed here by a 33-step restoring division instead of a 256-bit one.
fn normalise_stake(s: I64F64, total: I64F64) -> Fx {
    let zero = I64F64::from_bits(0);
    if total == zero {
        return I32F32::saturating_from_num(s).to_bits();
    }
    let (Ok(x), Ok(d)) = (u128::try_from(s.to_bits()), u128::try_from(total.to_bits())) else {
        let q = s.checked_div(total).unwrap_or(zero);
        return I32F32::saturating_from_num(q).to_bits();
    };
    if x > d {
        let q = s.checked_div(total).unwrap_or(zero);
        return I32F32::saturating_from_num(q).to_bits();
    }
    // d < 2^127 (positive i128), so doubling a remainder below d cannot overflow.
    let (mut q, mut r): (u64, u128) = if x == d { (1, 0) } else { (0, x) };
    for _ in 0..32 {
        r <<= 1;
        q <<= 1;
        if r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
    }
    i64::try_from(q).unwrap_or(i64::MAX)
}

/// `is_topk_nonzero`: non-zero entries, and when `n >= k` the `n - k` smallest (stable
/// ascending sort, so ties favour the higher uid) lose.
fn is_topk_nonzero(stake: &[Fx], k: usize) -> Vec<bool> {
    let mut result: Vec<bool> = stake.iter().map(|&s| s != 0).collect();
    let n = stake.len();
    if n < k {
        return result;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|&i| stake.get(i).copied().unwrap_or(0));
    for &i in idx.iter().take(n.saturating_sub(k)) {
        if let Some(r) = result.get_mut(i) {
            *r = false;
        }
    }
    result
}

/// The masked weights `W`, row-normalised, rows in stored order, explicit zeros kept.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a stage of its own in profiles
fn prepare_weights(
    inputs: &EpochInputs,
    params: &YumaParams,
    validator_permits: &[bool],
    voter_stake: &[Fx],
    count_votes: bool,
    owner: Option<usize>,
    n: usize,
    par: Par,
) -> (Weights, VoteCounts) {
    let nnz: usize = inputs.weights.iter().map(Vec::len).sum();
    let commit_blocks = if params.commit_reveal_enabled {
        inputs.commit_blocks.as_deref()
    } else {
        None
    };
    let bar = &inputs.block_at_registration;
    // The latest registration: rows set after it mask nothing but the diagonal.
    let bar_max = bar.iter().copied().max().unwrap_or(0);
    #[cfg(test)]
    let bar_max = if FORCE_SPARSE.with(core::cell::Cell::get) {
        u64::MAX
    } else {
        bar_max
    };
    // Row ranges are masked in parallel, each into its own slots of the shared buffers (as
    // many as its rows have entries before masking); the slots masking leaves unused stay
    // between the rows, so nothing is copied afterwards.
    let chunks = par::split(n, par.parts_for(nnz), |i| {
        inputs.weights.get(i).map_or(0, Vec::len).saturating_add(1)
    });
    let mut col = crate::pool::U16S.take_len(nnz);
    let mut val = crate::pool::I64S.take_len(nnz);
    type Item<'a> = (Range<usize>, usize, &'a mut [u16], &'a mut [Fx]);
    let mut items: Vec<Item<'_>> = Vec::with_capacity(chunks.len());
    let (mut col_rest, mut val_rest): (&mut [u16], &mut [Fx]) = (&mut col, &mut val);
    let mut base = 0usize;
    for rows in chunks {
        let len: usize = inputs
            .weights
            .get(rows.clone())
            .map_or(0, |r| r.iter().map(Vec::len).sum());
        let (c, c_rest) = col_rest.split_at_mut(len.min(col_rest.len()));
        let (v, v_rest) = val_rest.split_at_mut(len.min(val_rest.len()));
        items.push((rows, base, c, v));
        (col_rest, val_rest) = (c_rest, v_rest);
        base = base.saturating_add(len);
    }
    let parts = par.map(items, |(rows, base, cols, vals): Item<'_>| {
        let mut starts: Vec<usize> = Vec::with_capacity(rows.len());
        let mut ends: Vec<usize> = Vec::with_capacity(rows.len());
        // Per column (at j + 1): positive weights of voting rows; whether those rows ascend.
        let mut counts: Vec<usize> = Vec::new();
        let mut ascending = true;
        // The next free slot of this range.
        let mut at = 0usize;
        for i in rows {
            let row: &[(u16, u16)] = inputs.weights.get(i).map_or(&[], Vec::as_slice);
            let row_start = at;
            if validator_permits.get(i).copied().unwrap_or(false) {
                let updated = inputs.last_update.get(i).copied().unwrap_or(0);
                // No active commit reads as u64::MAX, which masks nothing.
                let committed = commit_blocks.map_or(u64::MAX, |c| {
                    c.get(i).copied().flatten().unwrap_or(u64::MAX)
                });
                // Kept iff last_update_i > bar_j and commit_block_i >= bar_j, i.e. bar_j < limit.
                let limit = if committed < updated {
                    committed.saturating_add(1)
                } else {
                    updated
                };
                // The diagonal is dropped unless it is the owner's.
                let diagonal = if owner == Some(i) { usize::MAX } else { i };
                // At most 65535 entries of at most 65535: no overflow in the row sums.
                let mut row_sum: u64 = 0;
                if bar_max < limit {
                    // Every uid registered before these weights were set: only the diagonal
                    // can be dropped. The row is copied in (at most) two runs around it.
                    let diagonal_at = row.iter().position(|&(j, _)| usize::from(j) == diagonal);
                    let (head, tail) = match diagonal_at {
                        Some(k) => (
                            row.get(..k).unwrap_or(&[]),
                            row.get(k.saturating_add(1)..).unwrap_or(&[]),
                        ),
                        None => (row, &[][..]),
                    };
                    for run in [head, tail] {
                        let end = at.saturating_add(run.len());
                        let dst = cols.get_mut(at..end).zip(vals.get_mut(at..end));
                        if let Some((dst_cols, dst_vals)) = dst {
                            for ((&(j, r), c), v) in run.iter().zip(dst_cols).zip(dst_vals) {
                                *c = j;
                                *v = i64::from(r);
                                row_sum = row_sum.wrapping_add(u64::from(r));
                            }
                            at = end;
                        }
                    }
                } else {
                    for &(j, r) in row {
                        let ju = usize::from(j);
                        let registered = bar.get(ju).copied().unwrap_or(u64::MAX);
                        if registered < limit && ju != diagonal {
                            if let (Some(c), Some(v)) = (cols.get_mut(at), vals.get_mut(at)) {
                                *c = j;
                                *v = i64::from(r);
                            }
                            row_sum = row_sum.wrapping_add(u64::from(r));
                            at = at.wrapping_add(1);
                        }
                    }
                }
                // Normalised in place: W_ij = safe_div(w_ij, sum_j w_ij).
                let norm = fx::IntNormaliser::new(row_sum);
                let row_cols = cols.get(row_start..at).unwrap_or(&[]);
                let row_vals = vals.get_mut(row_start..at).unwrap_or(&mut []);
                let votes = voter_stake.get(i).is_some_and(|&s| s > 0);
                if votes && !count_votes {
                    ascending &= self::ascending(row_cols);
                }
                if votes && count_votes {
                    if counts.is_empty() {
                        counts = vec![0; n.saturating_add(1)];
                    }
                    let mut prev = -1i32;
                    for (&j, v) in row_cols.iter().zip(row_vals) {
                        *v = norm.apply(*v as u16);
                        ascending &= i32::from(j) > prev;
                        prev = i32::from(j);
                        if let Some(c) = counts.get_mut(usize::from(j).wrapping_add(1)) {
                            // At most one per entry: no overflow.
                            *c = c.wrapping_add(usize::from(*v > 0));
                        }
                    }
                } else {
                    for v in row_vals {
                        *v = norm.apply(*v as u16);
                    }
                }
            }
            starts.push(base.saturating_add(row_start));
            ends.push(base.saturating_add(at));
        }
        (starts, ends, counts, ascending)
    });
    let mut ptr = crate::pool::USIZES.take(n.saturating_add(1));
    let mut end = crate::pool::USIZES.take(n);
    let mut votes = VoteCounts {
        counts: count_votes.then(|| vec![0; n.saturating_add(1)]),
        ascending: true,
    };
    for (starts, ends, counts, ascending) in parts {
        ptr.extend(starts);
        end.extend(ends);
        if let Some(total) = votes.counts.as_mut() {
            for (t, c) in total.iter_mut().zip(counts) {
                *t = t.wrapping_add(c);
            }
        }
        votes.ascending &= ascending;
    }
    ptr.push(nnz);
    (Weights { ptr, end, col, val }, votes)
}

/// `C`: the kappa-clipped stake-weighted median per column, over rows with `A_i > 0`.
#[inline(never)] // a stage of its own in profiles
fn consensus(
    weights: &Weights,
    active_stake: &[Fx],
    voter_stake: &[Fx],
    votes: VoteCounts,
    kappa: Fx,
    n: usize,
    par: Par,
) -> Vec<Fx> {
    let voters = active_stake.iter().filter(|&&a| a > 0).count();
    // minority = sum(s) - kappa; a score qualifies when sum(s | score >= w) >= sum(s) - minority.
    let stake_sum = fx::sum(voter_stake);
    let minority = stake_sum.saturating_sub(kappa);
    let target = stake_sum.saturating_sub(minority);
    weighted_median_columns(weights, voter_stake, votes, voters, target, n, par)
}

/// `min(w, c)`, or `None` where clipping drops the entry (`c < w` and `c <= 0`).
#[inline]
fn clipped(w: Fx, c: Fx) -> Option<Fx> {
    if w <= c || c > 0 {
        Some(w.min(c))
    } else {
        None
    }
}

/// [`clipped`] with a dropped entry read as 0: `w` when `w <= c`, else `max(c, 0)` (without
/// branches).
#[inline]
fn clipped_or_zero(w: Fx, c: Fx) -> Fx {
    if w <= c {
        w
    } else {
        c.max(0)
    }
}

/// The clipping stage: returns `(Tv, R)` and, when asked, `sum_i W_ij * A_i` per column. Row
/// ranges run in parallel; their column sums are non-negative, so adding them up in any order
/// gives the same saturating sum.
#[inline(never)] // a stage of its own in profiles
fn clip(
    weights: &Weights,
    consensus: &[Fx],
    active_stake: &[Fx],
    plain_delta: bool,
    par: Par,
) -> (Vec<Fx>, Vec<Fx>, Option<Vec<Fx>>) {
    let rows = weights.rows();
    let n = consensus.len();
    let chunks = par::split(rows, par.parts_for(weights.col.len()), |i| {
        weights.range(i).len().saturating_add(1)
    });
    // Every addend below is in [0, 1] (normalised weights, consensus and stake, and products
    // of them) and a sum has at most 65535 of them, far below 2^63: plain additions give the
    // saturating sums exactly.
    let parts = par.map(chunks, |range: Range<usize>| {
        let mut ranks: Vec<Fx> = vec![0; n];
        let mut delta: Vec<Fx> = if plain_delta { vec![0; n] } else { Vec::new() };
        let mut validator_trust: Vec<Fx> = Vec::with_capacity(range.len());
        for i in range {
            let a_i = active_stake.get(i).copied().unwrap_or(0);
            let (cols, vals) = weights.row(i);
            let mut trust: Fx = 0;
            if a_i == 0 {
                // Every product with A_i is 0: only the trust.
                for (&j, &w) in cols.iter().zip(vals) {
                    let c = consensus.get(usize::from(j)).copied().unwrap_or(0);
                    trust = trust.wrapping_add(clipped_or_zero(w, c));
                }
            } else if let Some(gap) = one_gap(cols, n) {
                // Every column but at most one: walked by position, in two runs around the gap.
                let (head, tail) = vals.split_at(gap.min(vals.len()));
                let after = gap.saturating_add(1);
                for (run, start, end) in [(head, 0, gap), (tail, after, n)] {
                    let c_run = consensus.get(start..end).unwrap_or(&[]);
                    let r_run = ranks.get_mut(start..end).unwrap_or(&mut []);
                    for ((&w, &c), rank) in run.iter().zip(c_run).zip(r_run) {
                        let v = clipped_or_zero(w, c);
                        trust = trust.wrapping_add(v);
                        *rank = rank.wrapping_add(fx::mul_unit(a_i, v));
                    }
                }
            } else {
                for (&j, &w) in cols.iter().zip(vals) {
                    let ju = usize::from(j);
                    let c = consensus.get(ju).copied().unwrap_or(0);
                    // A dropped entry adds 0 (branch-free).
                    let v = clipped_or_zero(w, c);
                    trust = trust.wrapping_add(v);
                    if let Some(rank) = ranks.get_mut(ju) {
                        *rank = rank.wrapping_add(fx::mul_unit(a_i, v));
                    }
                }
            }
            if a_i != 0 && plain_delta {
                for (&j, &w) in cols.iter().zip(vals) {
                    if let Some(d) = delta.get_mut(usize::from(j)) {
                        *d = d.wrapping_add(fx::mul_unit(w, a_i));
                    }
                }
            }
            validator_trust.push(trust);
        }
        (validator_trust, ranks, delta)
    });
    let mut validator_trust: Vec<Fx> = Vec::with_capacity(rows);
    let mut rank_parts: Vec<Vec<Fx>> = Vec::with_capacity(parts.len());
    let mut delta_parts: Vec<Vec<Fx>> = Vec::with_capacity(parts.len());
    for (t, r, d) in parts {
        validator_trust.extend(t);
        rank_parts.push(r);
        delta_parts.push(d);
    }
    let delta = plain_delta.then(|| sum_columns(delta_parts, n));
    (validator_trust, sum_columns(rank_parts, n), delta)
}

/// The weights for bonds, `W_b = W + beta (W̄ - W)`, read one row at a time.
enum BondWeights<'a> {
    /// `beta = 0`: `W` as it is.
    Plain(&'a Weights),
    /// `beta = 1`: `W̄`, dropped entries left out.
    Clipped(&'a Weights, &'a [Fx]),
    /// Any other beta: a new matrix, ascending, entries above 0.
    Interpolated(Csr),
}

impl BondWeights<'_> {
    /// Replaces `out` with row `i` of `W_b`, in its order.
    fn fill_row(&self, i: usize, out: &mut Vec<(u16, Fx)>) {
        out.clear();
        self.for_each_in_row(i, |j, v| out.push((j, v)));
    }

    /// Calls `g(j, W_b_ij)` for the entries of row `i`, in its order.
    #[inline]
    fn for_each_in_row(&self, i: usize, mut g: impl FnMut(u16, Fx)) {
        match self {
            Self::Plain(w) => {
                let (cols, vals) = w.row(i);
                for (&j, &v) in cols.iter().zip(vals) {
                    g(j, v);
                }
            }
            Self::Clipped(w, consensus) => {
                let (cols, vals) = w.row(i);
                for (&j, &v) in cols.iter().zip(vals) {
                    let c = consensus.get(usize::from(j)).copied().unwrap_or(0);
                    if let Some(v) = clipped(v, c) {
                        g(j, v);
                    }
                }
            }
            Self::Interpolated(m) => {
                let (cols, vals) = m.row(i);
                for (&j, &v) in cols.iter().zip(vals) {
                    g(j, v);
                }
            }
        }
    }

    /// Row `i`'s columns, with `out` replaced by `f(j, W_b_ij)` for each of them. Entries that
    /// clipping drops read as 0 here: for the EMA, whose addends are 0 for a 0 weight and whose
    /// entries are kept only above 0, a 0 entry and a missing one are the same.
    #[inline]
    fn map_row(&self, i: usize, out: &mut Vec<Fx>, f: impl Fn(u16, Fx) -> Fx) {
        out.clear();
        let (cols, vals, clip_by) = self.row_parts(i);
        out.extend(cols.iter().zip(vals).map(|(&j, &v)| match clip_by {
            Some(consensus) => {
                let c = consensus.get(usize::from(j)).copied().unwrap_or(0);
                f(j, clipped_or_zero(v, c))
            }
            None => f(j, v),
        }));
    }

    /// Row `i` as columns, values and, for `W̄`, the consensus that clips them (an entry
    /// clipping drops reads as 0, as in [`BondWeights::map_row`]).
    #[inline]
    fn row_parts(&self, i: usize) -> (&[u16], &[Fx], Option<&[Fx]>) {
        match self {
            Self::Plain(w) => {
                let (c, v) = w.row(i);
                (c, v, None)
            }
            Self::Clipped(w, consensus) => {
                let (c, v) = w.row(i);
                (c, v, Some(consensus))
            }
            Self::Interpolated(m) => {
                let (c, v) = m.row(i);
                (c, v, None)
            }
        }
    }

    /// The number of stored entries in row `i` (an upper bound on its entries).
    fn row_len(&self, i: usize) -> usize {
        match self {
            Self::Plain(w) | Self::Clipped(w, _) => w.range(i).len(),
            Self::Interpolated(m) => m.range(i).len(),
        }
    }

    /// An upper bound on the number of entries.
    fn nnz(&self) -> usize {
        match self {
            Self::Plain(w) | Self::Clipped(w, _) => w.col.len(),
            Self::Interpolated(m) => m.col.len(),
        }
    }
}

/// `interpolate_sparse` for `0 < beta < 1`: `W + beta (W̄ - W)`, entries above 0, ascending.
#[inline(never)] // a stage of its own in profiles
fn interpolate(weights: &Weights, consensus: &[Fx], beta: Fx, n: usize) -> Csr {
    let mut out = Csr::with_capacity(n, weights.col.len());
    let mut scratch = Scratch::new(n);
    for i in 0..weights.rows() {
        let (wc, vals) = weights.row(i);
        for (&j, &w) in wc.iter().zip(vals) {
            let c = consensus.get(usize::from(j)).copied().unwrap_or(0);
            // W̄_ij, or 0 where clipping drops the entry.
            let clipped = if c < w { c.max(0) } else { w };
            let v = w.saturating_add(fx::mul(beta, clipped.saturating_sub(w)));
            scratch.add(j, v);
        }
        scratch.drain_positive_into(&mut out);
    }
    out
}

/// Per column: whether bonds to it are dropped because it registered at or after `last_tempo`.
fn bond_column_mask(inputs: &EpochInputs, last_tempo: u64) -> Vec<bool> {
    inputs
        .block_at_registration
        .iter()
        .map(|&r| last_tempo <= r)
        .collect()
}

/// A column normalisation's divisor: `v / sum` with subtensor's `safe_div`, or `v` unchanged
/// where the column sum is 0 (`inplace_col_normalize_sparse` skips such columns). Compact (32
/// bytes), as one is read per entry.
#[derive(Clone, Copy, Debug)]
struct ColumnDivisor {
    /// Divides by the sum, or by 2^32 (which leaves `v` unchanged) when the sum is 0.
    recip: fx::Recip,
    /// The one-multiplication path takes `0 <= v < fast_below`: `1` (2^32 bits) for a sum of
    /// 0 or more, nothing for a negative sum.
    fast_below: u64,
    sum: Fx,
}

impl ColumnDivisor {
    fn new(sum: Fx) -> Self {
        let (recip, fast_below) = match sum {
            0 => (fx::Recip::new(ONE.unsigned_abs()), ONE.unsigned_abs()),
            1.. => (fx::Recip::new(sum.unsigned_abs()), ONE.unsigned_abs()),
            _ => (None, 0),
        };
        Self {
            recip: recip.unwrap_or(fx::Recip::ONE),
            fast_below,
            sum,
        }
    }

    #[inline]
    fn apply(&self, v: Fx) -> Fx {
        // A negative v reads as a u64 above 2^63: never below `fast_below`.
        if (v as u64) < self.fast_below {
            // floor((v << 32) / sum) with v < 2^32; beyond i64 it overflows: 0.
            let q = self.recip.div((v as u64) << 32);
            return if q > i64::MAX.unsigned_abs() {
                0
            } else {
                q as i64
            };
        }
        if self.sum == 0 {
            return v;
        }
        fx::safe_div(v, self.sum)
    }
}

fn column_divisors(col_sum: &[Fx]) -> Vec<ColumnDivisor> {
    col_sum.iter().map(|&s| ColumnDivisor::new(s)).collect()
}

#[inline]
fn divide_by(divs: &[ColumnDivisor], j: u16, v: Fx) -> Fx {
    divs.get(usize::from(j)).map_or(v, |d| d.apply(v))
}

/// `alpha = 1 - bonds_moving_average / 1e6`.
fn ema_alpha(params: &YumaParams) -> Fx {
    let bma = I64F64::saturating_from_num(params.bonds_moving_average)
        .checked_div(I64F64::saturating_from_num(1_000_000u32))
        .unwrap_or(I64F64::from_bits(0));
    ONE.saturating_sub(I32F32::saturating_from_num(bma).to_bits())
}

/// The EMA of one range of rows, with the column sums and maxima of its entries.
///
/// A row is kept either sparse (in `ema`: entries above 0, ascending) or, when its two addends
/// have at least `n / 2` entries together, dense (`n` values in `dense`, 0 where there is no
/// entry). A dense row is walked by position, side by side with the per-column data: no merge,
/// no column lookups, no pushes. Both forms cost at most a constant times the row's entries.
struct EmaChunk {
    rows: Range<usize>,
    /// Sparse rows (row `k` of the range is row `k` here; a dense row is empty here).
    ema: Csr,
    /// Dense rows, `n` values each, in row order.
    dense: Vec<Fx>,
    /// Per row of the range: where its dense values start in `dense`, if it is dense.
    dense_at: Vec<Option<usize>>,
    /// Per row of the range: its number of entries.
    len: Vec<usize>,
    sum: Vec<Fx>,
    /// Column maxima of its entries.
    max: Vec<Fx>,
}

/// One EMA row: sparse (columns, values) or dense (one value per column, 0 for none).
enum EmaRow<'a> {
    Sparse(&'a [u16], &'a [Fx]),
    Dense(&'a [Fx]),
}

impl EmaChunk {
    /// A chunk of sparse rows only.
    fn sparse(rows: Range<usize>, ema: Csr, sum: Vec<Fx>, max: Vec<Fx>) -> Self {
        let len = (0..ema.rows()).map(|k| ema.range(k).len()).collect();
        Self {
            rows,
            ema,
            dense: Vec::new(),
            dense_at: Vec::new(),
            len,
            sum,
            max,
        }
    }

    /// Row `local` of the range.
    #[inline]
    fn row(&self, local: usize, n: usize) -> EmaRow<'_> {
        match self.dense_at.get(local).copied().flatten() {
            Some(at) => EmaRow::Dense(self.dense.get(at..at.saturating_add(n)).unwrap_or(&[])),
            None => {
                let (c, v) = self.ema.row(local);
                EmaRow::Sparse(c, v)
            }
        }
    }

    /// Returns the buffers to this thread's shelves.
    fn recycle(self) {
        self.ema.recycle();
        crate::pool::I64S.give(self.dense);
    }
}

/// Splits the rows for the bond stages: about equal numbers of weight and bond entries each.
fn bond_row_chunks(
    inputs: &EpochInputs,
    wb: &BondWeights<'_>,
    n: usize,
    par: Par,
) -> Vec<Range<usize>> {
    let work = |i: usize| {
        let bonds = inputs.bonds.get(i).map_or(0, Vec::len);
        wb.row_len(i).saturating_add(bonds).saturating_add(1)
    };
    let total = wb
        .nnz()
        .saturating_add(inputs.bonds.iter().map(Vec::len).sum::<usize>());
    par::split(n, par.parts_for(total), work)
}

/// Sums per-range column vectors (saturating; all addends are non-negative, so the order does
/// not matter).
fn sum_columns(parts: impl IntoIterator<Item = Vec<Fx>>, n: usize) -> Vec<Fx> {
    let mut parts = parts.into_iter();
    let mut total: Vec<Fx> = parts.next().unwrap_or_default();
    total.resize(n, 0);
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t = t.saturating_add(p);
        }
    }
    total
}

/// Column maxima over per-range column vectors.
fn max_columns(parts: impl IntoIterator<Item = Vec<Fx>>, n: usize) -> Vec<Fx> {
    let mut parts = parts.into_iter();
    let mut total: Vec<Fx> = parts.next().unwrap_or_default();
    total.resize(n, 0);
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t = (*t).max(p);
        }
    }
    total
}

/// Whether a row is walked densely: its entries (weights and bonds together) are at least half
/// the number of columns, so a walk over every column costs at most twice its entries.
#[inline]
fn is_dense(entries: usize, n: usize) -> bool {
    #[cfg(test)]
    if FORCE_SPARSE.with(core::cell::Cell::get) {
        return false;
    }
    entries.saturating_mul(2) >= n
}

#[cfg(test)]
thread_local! {
    /// Tests: walk every row sparsely (never by position), count the votes per column and look
    /// up every weight's registration block.
    static FORCE_SPARSE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// `EMA = new(W_b) + old(B)` per row range, as `mat_ema_sparse` builds it: the sum per column,
/// entries above 0, ascending. `new_value(column, W_b_ij, A_i)` and `old_value(column, stored
/// B_ij)` give the two addends from the column's data `columns[j]`; both are 0 for a 0 input,
/// and `old_value` is 0 for a masked bond column (so that an entry and its absence agree).
#[allow(clippy::too_many_arguments)]
fn ema_chunks<C: Sync>(
    inputs: &EpochInputs,
    wb: &BondWeights<'_>,
    active_stake: &[Fx],
    chunks: Vec<Range<usize>>,
    n: usize,
    par: Par,
    columns: &[C],
    new_value: impl Fn(&C, Fx, Fx) -> Fx + Sync,
    old_value: impl Fn(&C, u16) -> Fx + Sync,
) -> Vec<EmaChunk> {
    // The output buffers are taken here, on the epoch's thread, from its shelves (reused from
    // one epoch to the next, so their pages are not faulted in again).
    // A sparse row has at most as many EMA entries as its two addends together.
    let row_entries = |i: usize| {
        let bonds = inputs.bonds.get(i).map_or(0, Vec::len);
        wb.row_len(i).saturating_add(bonds)
    };
    let items: Vec<(Range<usize>, Csr, Vec<Fx>)> = chunks
        .into_iter()
        .map(|rows| {
            let (mut sparse, mut dense) = (0usize, 0usize);
            for i in rows.clone() {
                let e = row_entries(i);
                if is_dense(e, n) {
                    dense = dense.saturating_add(n);
                } else {
                    sparse = sparse.saturating_add(e);
                }
            }
            let ema = Csr::with_capacity(rows.len(), sparse);
            (rows, ema, crate::pool::I64S.take(dense))
        })
        .collect();
    let ascending_bonds = |row: &[(u16, u16)]| {
        let mut prev = -1i32;
        let mut ok = true;
        for &(j, _) in row {
            ok &= i32::from(j) > prev;
            prev = i32::from(j);
        }
        ok
    };
    type Item = (Range<usize>, Csr, Vec<Fx>);
    let (new_value, old_value) = (&new_value, &old_value);
    par.map(items, |(rows, mut ema, mut dense): Item| {
        // Per column: the sum and the maximum of its entries.
        let mut totals: Vec<(Fx, Fx)> = vec![(0, 0); n];
        let mut scratch: Option<Scratch> = None;
        let mut new_vals: Vec<Fx> = Vec::new();
        let mut new_buf: Vec<(u16, Fx)> = Vec::new();
        let mut old_buf: Vec<(u16, Fx)> = Vec::new();
        // Dense rows: both addends' inputs scattered by column (0 where there is no entry).
        let mut dense_w: Vec<Fx> = Vec::new();
        let mut dense_b: Vec<u16> = Vec::new();
        let mut dense_at: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        let mut len: Vec<usize> = Vec::with_capacity(rows.len());
        for i in rows.clone() {
            let a_i = active_stake.get(i).copied().unwrap_or(0);
            let (cols, vals, clip_by) = wb.row_parts(i);
            let bond_row: &[(u16, u16)] = inputs.bonds.get(i).map_or(&[], Vec::as_slice);
            let start = ema.col.len();
            if is_dense(cols.len().saturating_add(bond_row.len()), n) {
                dense_w.clear();
                if let Some(gap) = one_gap(cols, n) {
                    // Every column but at most one (a validator's own): the row is copied in
                    // two runs around the gap instead of scattered.
                    let (head, tail) = vals.split_at(gap.min(vals.len()));
                    let after = gap.saturating_add(1);
                    match clip_by {
                        Some(consensus) => {
                            let (c_head, c_tail) = (
                                consensus.get(..gap).unwrap_or(&[]),
                                consensus.get(after..).unwrap_or(&[]),
                            );
                            let clip = |(&w, &c): (&Fx, &Fx)| clipped_or_zero(w, c);
                            dense_w.extend(head.iter().zip(c_head).map(clip));
                            if gap < n {
                                dense_w.push(0);
                            }
                            dense_w.extend(tail.iter().zip(c_tail).map(clip));
                        }
                        None => {
                            dense_w.extend_from_slice(head);
                            if gap < n {
                                dense_w.push(0);
                            }
                            dense_w.extend_from_slice(tail);
                        }
                    }
                    dense_w.resize(n, 0);
                } else {
                    dense_w.resize(n, 0);
                    match clip_by {
                        Some(consensus) => {
                            for (&j, &w) in cols.iter().zip(vals) {
                                let ju = usize::from(j);
                                if let (Some(x), Some(&c)) =
                                    (dense_w.get_mut(ju), consensus.get(ju))
                                {
                                    *x = clipped_or_zero(w, c);
                                }
                            }
                        }
                        None => {
                            for (&j, &w) in cols.iter().zip(vals) {
                                if let Some(x) = dense_w.get_mut(usize::from(j)) {
                                    *x = w;
                                }
                            }
                        }
                    }
                }
                let at = dense.len();
                let count = if positional(bond_row, n) {
                    // Entry k is uid k: read in place.
                    let bonds = bond_row.iter().map(|&(_, b)| b);
                    fill_dense_row(
                        &mut dense,
                        &dense_w,
                        bonds,
                        columns,
                        &mut totals,
                        a_i,
                        new_value,
                        old_value,
                    )
                } else {
                    dense_b.clear();
                    dense_b.resize(n, 0);
                    for &(j, b) in bond_row {
                        if let Some(x) = dense_b.get_mut(usize::from(j)) {
                            *x = b;
                        }
                    }
                    fill_dense_row(
                        &mut dense,
                        &dense_w,
                        dense_b.iter().copied(),
                        columns,
                        &mut totals,
                        a_i,
                        new_value,
                        old_value,
                    )
                };
                dense_at.push(Some(at));
                len.push(count);
                ema.end_row();
                continue;
            }
            dense_at.push(None);
            if ascending(cols) && ascending_bonds(bond_row) {
                // One walk over both rows.
                let room = cols.len().saturating_add(bond_row.len());
                ema.col.reserve(room);
                ema.val.reserve(room);
                let mut emit = |j: u16, v: Fx| {
                    if v > 0 {
                        ema.push(j, v);
                        if let Some(t) = totals.get_mut(usize::from(j)) {
                            t.0 = t.0.saturating_add(v);
                            t.1 = t.1.max(v);
                        }
                    }
                };
                let old_of = |j: u16, b: u16| columns.get(usize::from(j)).map(|c| old_value(c, b));
                let mut rest = bond_row;
                for (&j, &w) in cols.iter().zip(vals) {
                    while let Some((&(jb, b), tail)) = rest.split_first() {
                        if jb >= j {
                            break;
                        }
                        rest = tail;
                        if let Some(old) = old_of(jb, b) {
                            emit(jb, old);
                        }
                    }
                    let Some(column) = columns.get(usize::from(j)) else {
                        continue;
                    };
                    let w = match clip_by {
                        Some(consensus) => {
                            let c = consensus.get(usize::from(j)).copied().unwrap_or(0);
                            clipped_or_zero(w, c)
                        }
                        None => w,
                    };
                    let mut v = new_value(column, w, a_i);
                    if let Some((&(jb, b), tail)) = rest.split_first() {
                        if jb == j {
                            rest = tail;
                            if let Some(old) = old_of(jb, b) {
                                v = v.saturating_add(old);
                            }
                        }
                    }
                    emit(j, v);
                }
                for &(jb, b) in rest {
                    if let Some(old) = old_of(jb, b) {
                        emit(jb, old);
                    }
                }
                ema.end_row();
            } else {
                wb.map_row(i, &mut new_vals, |j, w| {
                    columns
                        .get(usize::from(j))
                        .map_or(0, |c| new_value(c, w, a_i))
                });
                new_buf.clear();
                new_buf.extend(cols.iter().copied().zip(new_vals.iter().copied()));
                old_buf.clear();
                old_buf.extend(bond_row.iter().filter_map(|&(j, b)| {
                    columns.get(usize::from(j)).map(|c| (j, old_value(c, b)))
                }));
                // A row out of order: summed per column through the dense scratch row.
                let scratch = scratch.get_or_insert_with(|| Scratch::new(n));
                for &(j, v) in new_buf.iter().chain(&old_buf) {
                    scratch.add(j, v);
                }
                scratch.drain_positive_into(&mut ema);
                let (c, v) = (
                    ema.col.get(start..).unwrap_or(&[]),
                    ema.val.get(start..).unwrap_or(&[]),
                );
                for (&j, &x) in c.iter().zip(v) {
                    if let Some(t) = totals.get_mut(usize::from(j)) {
                        t.0 = t.0.saturating_add(x);
                        t.1 = t.1.max(x);
                    }
                }
            }
            len.push(ema.col.len().saturating_sub(start));
        }
        let (sum, max) = totals.into_iter().unzip();
        EmaChunk {
            rows,
            ema,
            dense,
            dense_at,
            len,
            sum,
            max,
        }
    })
}

/// Appends one dense EMA row (`n` values, 0 where there is no entry) to `dense` and adds its
/// entries to the column totals; returns its number of entries. `bonds` gives the stored bond
/// of every column in order (0 for none).
#[allow(clippy::too_many_arguments)]
#[inline]
fn fill_dense_row<C>(
    dense: &mut Vec<Fx>,
    weights: &[Fx],
    bonds: impl Iterator<Item = u16>,
    columns: &[C],
    totals: &mut [(Fx, Fx)],
    a_i: Fx,
    new_value: &impl Fn(&C, Fx, Fx) -> Fx,
    old_value: &impl Fn(&C, u16) -> Fx,
) -> usize {
    let mut count = 0usize;
    dense.extend(
        weights
            .iter()
            .zip(bonds)
            .zip(columns.iter().zip(totals.iter_mut()))
            .map(|((&w, b), (column, t))| {
                let v = new_value(column, w, a_i)
                    .saturating_add(old_value(column, b))
                    .max(0);
                t.0 = t.0.saturating_add(v);
                t.1 = t.1.max(v);
                count = count.wrapping_add(usize::from(v > 0));
                v
            }),
    );
    count
}

/// For a row holding every column `0..n` in order except at most one: the missing column (`n`
/// when none is missing). `None` for any other row.
#[inline]
fn one_gap(cols: &[u16], n: usize) -> Option<usize> {
    #[cfg(test)]
    if FORCE_SPARSE.with(core::cell::Cell::get) {
        return None;
    }
    if !(cols.len() == n || cols.len().saturating_add(1) == n)
        || !ascending(cols)
        || cols.last().is_some_and(|&j| usize::from(j) >= n)
    {
        return None;
    }
    // Ascending uids below n, at most one missing: entry k is uid k before the gap.
    Some(
        cols.iter()
            .enumerate()
            .position(|(k, &j)| usize::from(j) != k)
            .unwrap_or(cols.len()),
    )
}

/// Whether a stored row holds every uid `0..n` in order (entry `k` is uid `k`).
#[inline]
fn positional(row: &[(u16, u16)], n: usize) -> bool {
    // n strictly ascending uids below n are exactly 0..n (a fold that vectorises).
    let mut prev = -1i32;
    let mut ok = true;
    for &(j, _) in row {
        ok &= i32::from(j) > prev;
        prev = i32::from(j);
    }
    ok && row.len() == n && row.last().is_none_or(|&(j, _)| usize::from(j) < n)
}

/// Whether a row's columns are strictly ascending.
#[inline]
fn ascending(cols: &[u16]) -> bool {
    let mut prev = -1i32;
    let mut ok = true;
    for &j in cols {
        ok &= i32::from(j) > prev;
        prev = i32::from(j);
    }
    ok
}

/// Empty stored rows for one chunk: room for the EMA row of uids with a new permit, none for
/// the others. Allocated by the thread that fills them, so that the fresh pages of the returned
/// rows are faulted in by both threads at once.
fn stored_buffers(chunk: &EmaChunk, new_permits: &[bool]) -> Vec<Vec<(u16, u16)>> {
    chunk
        .rows
        .clone()
        .enumerate()
        .map(|(local, i)| {
            if new_permits.get(i).copied().unwrap_or(false) {
                Vec::with_capacity(chunk.len.get(local).copied().unwrap_or(0))
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// What the classic EMA reads per column, side by side.
#[derive(Clone, Copy, Debug)]
struct EmaColumn {
    /// The `ΔB` column normalisation.
    delta: ColumnDivisor,
    /// The `B` column normalisation.
    bonds: fx::IntNormaliser,
    /// Bonds to this column are dropped.
    masked: bool,
}

/// What the classic dividend pass reads per column, side by side.
#[derive(Clone, Copy, Debug)]
struct DividendColumn {
    /// The EMA column normalisation.
    ema: ColumnDivisor,
    /// The stored form's column max-upscaling.
    max: ColumnDivisor,
    incentive: Fx,
}

/// Classic Yuma bonds. Returns the dividends (not yet normalised) and the bond rows to store.
/// `delta_sum` is `sum_i W_b_ij * A_i` per column when the clipping stage already has it.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a stage of its own in profiles
fn classic_bonds(
    inputs: &EpochInputs,
    params: &YumaParams,
    weights_for_bonds: &BondWeights<'_>,
    delta_sum: Option<Vec<Fx>>,
    incentive: &[Fx],
    active_stake: &[Fx],
    new_permits: &[bool],
    last_tempo: u64,
    n: usize,
    par: Par,
) -> (Vec<Fx>, Vec<Vec<(u16, u16)>>) {
    let wb = weights_for_bonds;
    let masked = bond_column_mask(inputs, last_tempo);
    let chunks = bond_row_chunks(inputs, wb, n, par);

    // B: stored column max-upscaled u16 read as integers, masked, then column-normalised.
    // ΔB = W_b ∘ A (row i scaled by A_i), column-normalised.
    let partial = par.map(chunks.clone(), |rows: Range<usize>| {
        // At most 65535 rows of at most 65535: no overflow. Masked columns are cleared after.
        let mut bonds_sum: Vec<u64> = vec![0; n];
        for i in rows.clone() {
            for &(j, b) in inputs.bonds.get(i).map_or(&[][..], Vec::as_slice) {
                if let Some(s) = bonds_sum.get_mut(usize::from(j)) {
                    *s = s.wrapping_add(u64::from(b));
                }
            }
        }
        let delta_sum: Vec<Fx> = if delta_sum.is_some() {
            Vec::new()
        } else {
            let mut sum: Vec<Fx> = vec![0; n];
            for i in rows {
                let a_i = active_stake.get(i).copied().unwrap_or(0);
                if a_i != 0 {
                    wb.for_each_in_row(i, |j, w| {
                        if let Some(s) = sum.get_mut(usize::from(j)) {
                            *s = s.saturating_add(fx::mul(w, a_i));
                        }
                    });
                }
            }
            sum
        };
        (bonds_sum, delta_sum)
    });
    let mut bonds_sum: Vec<u64> = vec![0; n];
    let mut delta_parts: Vec<Vec<Fx>> = Vec::with_capacity(partial.len());
    for (b, d) in partial {
        for (t, x) in bonds_sum.iter_mut().zip(b) {
            *t = t.wrapping_add(x);
        }
        delta_parts.push(d);
    }
    for (s, &m) in bonds_sum.iter_mut().zip(&masked) {
        if m {
            *s = 0;
        }
    }
    let delta_sum = delta_sum.unwrap_or_else(|| sum_columns(delta_parts, n));
    // Per column, side by side: the ΔB normalisation, the B normalisation and the mask.
    let column_norms: Vec<EmaColumn> = delta_sum
        .iter()
        .zip(&bonds_sum)
        .zip(&masked)
        .map(|((&d, &b), &masked)| EmaColumn {
            delta: ColumnDivisor::new(d),
            bonds: fx::IntNormaliser::new(b),
            masked,
        })
        .collect();

    // EMA = alpha ΔB + (1 - alpha) B, each product floored; entries > 0, ascending.
    let alpha = ema_alpha(params);
    let one_minus_alpha = ONE.saturating_sub(alpha);
    let mut ema = ema_chunks(
        inputs,
        wb,
        active_stake,
        chunks,
        n,
        par,
        &column_norms,
        move |column: &EmaColumn, w, a_i| {
            fx::mul_unit(alpha, column.delta.apply(fx::mul_unit(w, a_i)))
        },
        move |column: &EmaColumn, b| {
            if column.masked {
                0
            } else {
                fx::mul_unit(one_minus_alpha, column.bonds.apply(b))
            }
        },
    );
    let ema_sum = sum_columns(ema.iter_mut().map(|c| core::mem::take(&mut c.sum)), n);

    // EMA column-normalised; D_i = sum_j B_ij I_j; stored column max-upscaled (max_i B_ij = 1).
    // Within a column, every EMA entry is positive and at most the column sum, where the
    // normalisation `floor(v 2^32 / sum)` is non-decreasing: the column maximum of the
    // normalised EMA is the normalised column maximum of the EMA, known before this pass.
    let ema_div = column_divisors(&ema_sum);
    let col_max = max_columns(ema.iter_mut().map(|c| core::mem::take(&mut c.max)), n);
    let col_max: Vec<Fx> = col_max
        .iter()
        .zip(&ema_div)
        .map(|(&m, d)| d.apply(m))
        .collect();
    let columns: Vec<DividendColumn> = ema_div
        .iter()
        .zip(&col_max)
        .zip(incentive)
        .map(|((&ema, &m), &incentive)| DividendColumn {
            ema,
            max: ColumnDivisor::new(m),
            incentive,
        })
        .collect();
    let items: Vec<&EmaChunk> = ema.iter().collect();
    let parts =
        par.map(items, |chunk: &EmaChunk| {
            let mut out = stored_buffers(chunk, new_permits);
            let mut dividends: Vec<Fx> = Vec::with_capacity(chunk.rows.len());
            for (local, (i, row)) in chunk.rows.clone().zip(out.iter_mut()).enumerate() {
                let store = new_permits.get(i).copied().unwrap_or(false);
                let mut acc: Fx = 0;
                let mut entry = |j: u16, v: Fx, column: &DividendColumn| {
                    let b = column.ema.apply(v);
                    acc = acc.saturating_add(fx::mul_unit(column.incentive, b));
                    if store {
                        row.push((j, fx::to_u16(column.max.apply(b))));
                    }
                };
                match chunk.row(local, n) {
                    EmaRow::Sparse(cols, vals) => {
                        for (&j, &v) in cols.iter().zip(vals) {
                            if let Some(column) = columns.get(usize::from(j)) {
                                entry(j, v, column);
                            }
                        }
                    }
                    EmaRow::Dense(vals) if store && chunk.len.get(local) == Some(&n) => {
                        // Every column has an entry: the stored row is one per column, written
                        // without a capacity check per entry.
                        row.extend(vals.iter().zip(&columns).zip(0u16..).map(
                            |((&v, column), j)| {
                                let b = column.ema.apply(v);
                                acc = acc.saturating_add(fx::mul_unit(column.incentive, b));
                                (j, fx::to_u16(column.max.apply(b)))
                            },
                        ));
                    }
                    EmaRow::Dense(vals) => {
                        for ((&v, column), j) in vals.iter().zip(&columns).zip(0u16..) {
                            if v > 0 {
                                entry(j, v, column);
                            }
                        }
                    }
                }
                dividends.push(acc);
            }
            (dividends, out)
        });
    let mut dividends: Vec<Fx> = Vec::with_capacity(n);
    let mut stored: Vec<Vec<(u16, u16)>> = Vec::with_capacity(n);
    for (d, s) in parts {
        dividends.extend(d);
        stored.extend(s);
    }
    ema.into_iter().for_each(EmaChunk::recycle);
    (dividends, stored)
}

/// Yuma3 bonds. Returns the dividends (not yet normalised) and the bond rows to store.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a stage of its own in profiles
fn yuma3_bonds(
    inputs: &EpochInputs,
    params: &YumaParams,
    weights_for_bonds: &BondWeights<'_>,
    consensus: &[Fx],
    incentive: &[Fx],
    active_stake: &[Fx],
    new_permits: &[bool],
    last_tempo: u64,
    n: usize,
    par: Par,
) -> (Vec<Fx>, Vec<Vec<(u16, u16)>>) {
    // B: stored u16 proportions read as absolute values in [0, 1], masked.
    let masked = bond_column_mask(inputs, last_tempo);

    let mut ema: Vec<EmaChunk> = if params.liquid_alpha && consensus.iter().any(|&c| c != 0) {
        let ema = liquid_alpha_ema(
            params,
            weights_for_bonds,
            &inputs.bonds,
            &masked,
            consensus,
            n,
        );
        let mut sum: Vec<Fx> = vec![0; n];
        for (&j, &v) in ema.col.iter().zip(&ema.val) {
            if let Some(s) = sum.get_mut(usize::from(j)) {
                *s = s.saturating_add(v);
            }
        }
        vec![EmaChunk::sparse(0..n, ema, sum, Vec::new())]
    } else {
        // EMA = alpha W_b + (1 - alpha) B with alpha = 1 - bonds_moving_average / 1e6.
        let bma = I64F64::saturating_from_num(params.bonds_moving_average)
            .saturating_div(I64F64::saturating_from_num(1_000_000u32));
        let alpha = ONE.saturating_sub(I32F32::saturating_from_num(bma).to_bits());
        let one_minus_alpha = ONE.saturating_sub(alpha);
        let chunks = bond_row_chunks(inputs, weights_for_bonds, n, par);
        ema_chunks(
            inputs,
            weights_for_bonds,
            active_stake,
            chunks,
            n,
            par,
            &masked,
            |_, w, _| fx::mul_unit(alpha, w),
            |&masked: &bool, b| {
                if masked {
                    0
                } else {
                    fx::mul_unit(one_minus_alpha, fx::from_u16_proportion(b))
                }
            },
        )
    };

    // D_i = A_i * sum_j colnorm(EMA)_ij I_j
    let ema_sum = sum_columns(ema.iter_mut().map(|c| core::mem::take(&mut c.sum)), n);
    let ema_div = column_divisors(&ema_sum);
    let items: Vec<&EmaChunk> = ema.iter().collect();
    let parts = par.map(items, |chunk: &EmaChunk| {
        let mut out = stored_buffers(chunk, new_permits);
        let mut dividends: Vec<Fx> = Vec::with_capacity(chunk.rows.len());
        for (local, (i, row)) in chunk.rows.clone().zip(out.iter_mut()).enumerate() {
            let store = new_permits.get(i).copied().unwrap_or(false);
            let total = match chunk.row(local, n) {
                EmaRow::Sparse(cols, vals) => {
                    if store {
                        row.extend(cols.iter().zip(vals).map(|(&j, &v)| (j, fx::to_u16(v))));
                    }
                    cols.iter().zip(vals).fold(0i64, |acc, (&j, &b)| {
                        let inc = incentive.get(usize::from(j)).copied().unwrap_or(0);
                        acc.saturating_add(fx::mul_unit(divide_by(&ema_div, j, b), inc))
                    })
                }
                EmaRow::Dense(vals) => {
                    if store && chunk.len.get(local) == Some(&n) {
                        // Every column has an entry.
                        row.extend(vals.iter().zip(0u16..).map(|(&v, j)| (j, fx::to_u16(v))));
                    } else if store {
                        row.extend(
                            vals.iter()
                                .zip(0u16..)
                                .filter(|&(&v, _)| v > 0)
                                .map(|(&v, j)| (j, fx::to_u16(v))),
                        );
                    }
                    // A 0 (no entry) adds 0.
                    vals.iter()
                        .zip(ema_div.iter().zip(incentive))
                        .fold(0i64, |acc, (&b, (d, &inc))| {
                            acc.saturating_add(fx::mul_unit(d.apply(b), inc))
                        })
                }
            };
            let a_i = active_stake.get(i).copied().unwrap_or(0);
            dividends.push(fx::checked_mul(total, a_i).unwrap_or(0));
        }
        (dividends, out)
    });
    let mut dividends: Vec<Fx> = Vec::with_capacity(n);
    let mut stored: Vec<Vec<(u16, u16)>> = Vec::with_capacity(n);
    for (d, s) in parts {
        dividends.extend(d);
        stored.extend(s);
    }
    ema.into_iter().for_each(EmaChunk::recycle);
    (dividends, stored)
}

/// Liquid-alpha EMA: per entry of `W_b`, `min(1, (1 - alpha) B + max(0, alpha W_b))` with
/// `alpha` from a sigmoid of how far the weight is from consensus (buying) or below the bond
/// (selling). The weight and bond fed to the sigmoid are found by walking each stored row as
/// if it were ascending: an entry is seen only if its uid exceeds every earlier uid in its row.
#[inline(never)] // a stage of its own in profiles
fn liquid_alpha_ema(
    params: &YumaParams,
    wb: &BondWeights<'_>,
    bonds: &[Vec<(u16, u16)>],
    masked: &[bool],
    consensus: &[Fx],
    n: usize,
) -> Csr {
    let is_masked = |j: u16| masked.get(usize::from(j)).copied().unwrap_or(false);
    let max = fx::from_u16(u16::MAX);
    let alpha_low = fx::safe_div(fx::from_u16(params.alpha_low), max);
    let alpha_high = fx::safe_div(fx::from_u16(params.alpha_high), max);
    let steepness = i64::from(params.alpha_sigmoid_steepness) << 32;
    // -steepness / 100
    let slope = fx::saturating_div(steepness, MINUS_HUNDRED);
    let sigmoid = Sigmoid {
        alpha_low,
        alpha_high,
        slope,
        exp: fx::Exp::new(),
    };

    let mut out = Csr::with_capacity(n, wb.nnz());
    let mut wb_row: Vec<(u16, Fx)> = Vec::new();
    // Per column of the current row: the actual old bond, and the one the walk sees.
    let mut bond_actual: Vec<Fx> = vec![0; n];
    let mut bond_seen: Vec<Fx> = vec![0; n];
    for i in 0..n {
        let row: &[(u16, u16)] = bonds.get(i).map_or(&[], Vec::as_slice);
        let mut running_max: Option<u16> = None;
        for &(j, stored) in row {
            if is_masked(j) {
                continue;
            }
            let b = fx::from_u16_proportion(stored);
            let ju = usize::from(j);
            if let Some(x) = bond_actual.get_mut(ju) {
                *x = b;
            }
            if running_max.is_none_or(|m| j > m) {
                running_max = Some(j);
                if let Some(x) = bond_seen.get_mut(ju) {
                    *x = b;
                }
            }
        }

        wb.fill_row(i, &mut wb_row);
        let mut running_max: Option<u16> = None;
        for &(j, w) in &wb_row {
            let ju = usize::from(j);
            let w_seen = if running_max.is_none_or(|m| j > m) {
                running_max = Some(j);
                w
            } else {
                0
            };
            let c = consensus.get(ju).copied().unwrap_or(0);
            let b_seen = bond_seen.get(ju).copied().unwrap_or(0);
            let b_old = bond_actual.get(ju).copied().unwrap_or(0);
            let alpha = sigmoid.alpha(c, w_seen, b_seen);
            let decayed = fx::mul(ONE.saturating_sub(alpha), b_old);
            let inc = fx::mul(alpha, w).max(0);
            let v = decayed.saturating_add(inc).min(ONE);
            if v > 0 {
                out.push(j, v);
            }
        }
        out.end_row();

        for &(j, _) in row {
            let ju = usize::from(j);
            if let Some(x) = bond_actual.get_mut(ju) {
                *x = 0;
            }
            if let Some(x) = bond_seen.get_mut(ju) {
                *x = 0;
            }
        }
    }
    out
}

/// 0.5
const HALF: Fx = 1 << 31;
/// -100.0
const MINUS_HUNDRED: Fx = -100 * ONE;

/// `alpha_sigmoid` with its per-subnet constants.
struct Sigmoid {
    alpha_low: Fx,
    alpha_high: Fx,
    /// `-steepness / 100`
    slope: Fx,
    exp: fx::Exp,
}

impl Sigmoid {
    /// alpha = low + (high - low) / (1 + exp(slope * (diff - 1/2))), clamped to [low, high],
    /// where diff = clamp(W - C) when W >= B (buying), else clamp(B - W) (selling).
    fn alpha(&self, consensus: Fx, weight: Fx, bond: Fx) -> Fx {
        let diff = if weight >= bond {
            weight.saturating_sub(consensus).clamp(0, ONE)
        } else {
            bond.saturating_sub(weight).clamp(0, ONE)
        };
        let x = fx::mul(self.slope, diff.saturating_sub(HALF));
        let sigmoid = fx::saturating_div(ONE, ONE.saturating_add(self.exp.exp_safe(x)));
        let alpha = self.alpha_low.saturating_add(fx::mul(
            sigmoid,
            self.alpha_high.saturating_sub(self.alpha_low),
        ));
        alpha.min(self.alpha_high).max(self.alpha_low)
    }
}

#[cfg(test)]
mod parallel_tests {
    //! Splitting the stages into ranges (threads) never changes a bit of the output.
    use super::*;
    use crate::par::FORCE_PARTS;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, k: u64) -> u64 {
            self.next() % k.max(1)
        }
    }

    fn row(rng: &mut Rng, n: u16, density: u64, shuffle: bool) -> Vec<(u16, u16)> {
        let mut r: Vec<(u16, u16)> = Vec::new();
        for j in 0..n {
            if rng.below(100) < density {
                let v = match rng.below(6) {
                    0 => 0,
                    1 => u16::MAX,
                    _ => rng.next() as u16,
                };
                r.push((j, v));
            }
        }
        if shuffle && r.len() > 1 {
            for k in (1..r.len()).rev() {
                let m = rng.below(k as u64 + 1) as usize;
                r.swap(k, m);
            }
        }
        r
    }

    fn case(seed: u64) -> (EpochInputs, YumaParams) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let n = [3u16, 40, 257, 600, 1100][rng.below(5) as usize];
        let nu = usize::from(n);
        let validators = 1 + rng.below(u64::from(n).min(70)) as usize;
        let block = 10_000u64;
        let shuffle_any = rng.below(3) == 0;
        let mut inputs = EpochInputs {
            n,
            owner_uid: if rng.below(2) == 0 {
                Some(rng.below(u64::from(n)) as u16)
            } else {
                None
            },
            stake: vec![I64F64::from_num(0); nu],
            last_update: (0..nu).map(|_| block - rng.below(300)).collect(),
            // Sometimes every uid registered before any weights were set.
            block_at_registration: if rng.below(3) == 0 {
                (0..nu).map(|_| block - 300 - rng.below(400)).collect()
            } else {
                (0..nu).map(|_| block - rng.below(400)).collect()
            },
            validator_permit: vec![false; nu],
            weights: vec![Vec::new(); nu],
            bonds: vec![Vec::new(); nu],
            commit_blocks: Some(
                (0..nu)
                    .map(|_| (rng.below(3) == 0).then(|| block - rng.below(400)))
                    .collect(),
            ),
            current_block: block,
            last_mechanism_step_block: block - rng.below(500),
            rao_emission: rng.next() >> rng.below(40),
        };
        for _ in 0..validators {
            let v = rng.below(u64::from(n)) as usize;
            inputs.stake[v] = I64F64::from_num(rng.next() >> (20 + rng.below(30)));
            inputs.validator_permit[v] = rng.below(8) != 0;
            let density = [100, 100, 60, 5][rng.below(4) as usize];
            let shuffle = shuffle_any && rng.below(3) == 0;
            inputs.weights[v] = row(&mut rng, n, density, shuffle);
            let density = [100, 90, 30, 0][rng.below(4) as usize];
            let shuffle = shuffle_any && rng.below(3) == 0;
            inputs.bonds[v] = row(&mut rng, n, density, shuffle);
        }
        let low = rng.next() as u16;
        let high = rng.next() as u16;
        let params = YumaParams {
            kappa: [32767, 0, 65535, rng.next() as u16][rng.below(4) as usize],
            bonds_moving_average: [900_000, 0, 1_000_000, 1_100_000, rng.below(1_000_000)]
                [rng.below(5) as usize],
            bonds_penalty: [65535, 0, rng.next() as u16][rng.below(3) as usize],
            max_allowed_validators: (1 + rng.below(80)) as u16,
            tempo: 360,
            activity_cutoff: 200,
            yuma3: rng.below(2) == 0,
            liquid_alpha: rng.below(2) == 0,
            alpha_low: low.min(high),
            alpha_high: low.max(high),
            alpha_sigmoid_steepness: rng.next() as i16,
            stake_threshold: rng.below(1000),
            commit_reveal_enabled: rng.below(2) == 0,
        };
        (inputs, params)
    }

    #[test]
    fn split_stages_match_one_range() {
        for seed in 0..60u64 {
            let (inputs, params) = case(seed);
            FORCE_PARTS.with(|f| f.set(Some(1)));
            let one = run_epoch(&inputs, &params).unwrap();
            for parts in [2usize, 3, 7] {
                FORCE_PARTS.with(|f| f.set(Some(parts)));
                for threads in [1usize, 2, 3] {
                    let split =
                        run_epoch_with(&inputs, &params, Parallelism::Threads(threads)).unwrap();
                    assert_eq!(one, split, "seed {seed}, {parts} parts, {threads} threads");
                }
            }
            FORCE_PARTS.with(|f| f.set(None));
        }
    }

    #[test]
    fn clipped_or_zero_reads_a_dropped_entry_as_zero() {
        let values = [
            i64::MIN,
            -ONE,
            -1,
            0,
            1,
            ONE / 2,
            ONE - 1,
            ONE,
            ONE + 1,
            i64::MAX,
        ];
        for &w in &values {
            for &c in &values {
                assert_eq!(clipped_or_zero(w, c), clipped(w, c).unwrap_or(0), "{w} {c}");
            }
        }
    }

    #[test]
    fn dense_rows_match_sparse_rows() {
        for seed in 100..160u64 {
            let (inputs, params) = case(seed);
            let dense = run_epoch(&inputs, &params).unwrap();
            FORCE_SPARSE.with(|f| f.set(true));
            let sparse = run_epoch(&inputs, &params);
            FORCE_SPARSE.with(|f| f.set(false));
            assert_eq!(dense, sparse.unwrap(), "seed {seed}");
        }
    }

    #[test]
    fn split_validation_reports_the_first_error() {
        for seed in 0..60u64 {
            let (mut inputs, params) = case(seed);
            let mut rng = Rng(seed | 1);
            // One or two bad entries: a duplicate uid or one out of range, anywhere.
            for _ in 0..1 + rng.below(2) {
                let nu = usize::from(inputs.n);
                let i = rng.below(nu as u64) as usize;
                let rows = if rng.below(2) == 0 {
                    &mut inputs.weights
                } else {
                    &mut inputs.bonds
                };
                let row = &mut rows[i];
                let at = rng.below(row.len() as u64 + 1) as usize;
                let entry = if row.is_empty() || rng.below(2) == 0 {
                    (inputs.n + rng.below(3) as u16, 1)
                } else {
                    row[rng.below(row.len() as u64) as usize]
                };
                row.insert(at, entry);
            }
            FORCE_PARTS.with(|f| f.set(Some(1)));
            let one = run_epoch(&inputs, &params);
            assert!(one.is_err(), "seed {seed}");
            for parts in [2usize, 3, 7] {
                FORCE_PARTS.with(|f| f.set(Some(parts)));
                assert_eq!(
                    one,
                    run_epoch_with(&inputs, &params, Parallelism::Threads(2)),
                    "seed {seed}, {parts} parts"
                );
            }
            FORCE_PARTS.with(|f| f.set(None));
        }
    }
}
