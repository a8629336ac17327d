//! Block emission and its split across subnets.
//!
//! **Halving by issuance** (Bittensor's schedule): the emission per block is
//! `block_emission / 2^k`, where `k` is the number of halvings reached: the largest `k` with
//! `issuance >= cap * (1 - 2^-k)`. So emission halves at half the cap, again at three
//! quarters, and so on; issuance approaches the cap and never passes it. Computed in
//! integers, exactly.
//!
//! **Split across subnets**: proportional to the stake registered on each subnet (the sum of
//! its neurons' hotkey stake, snapshot at its last epoch), or equally while no subnet has any.
//! Why: stake is scarce, slashable-by-opportunity capital; putting it behind a subnet is a
//! costly vote for that subnet's usefulness, the rule Bittensor's root network approximated
//! with validator votes before dynamic pools. Subnet spam is bounded separately by the lock
//! cost, which doubles with every creation. Dynamic pools can replace this rule later without
//! touching the epoch.

/// Emission for the next block given current issuance.
pub fn block_emission_for_issuance(base_rao: u64, cap_rao: u64, issuance_rao: u64) -> u64 {
    if issuance_rao >= cap_rao {
        return 0;
    }
    let remaining = cap_rao.saturating_sub(issuance_rao);
    // k = max { k : remaining * 2^k <= cap }.
    let mut k: u32 = 0;
    while k < 64 && u128::from(remaining) << (k.saturating_add(1)) <= u128::from(cap_rao) {
        k = k.saturating_add(1);
    }
    let emission = base_rao.checked_shr(k).unwrap_or(0);
    // Never mint past the cap.
    emission.min(remaining)
}

/// Splits `total` over `weights` proportionally (floored); all-zero weights split equally.
/// The floored remainder is not minted.
pub fn split_proportional(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        let n = u64::try_from(weights.len()).unwrap_or(u64::MAX);
        let each = total.checked_div(n).unwrap_or(0);
        return vec![each; weights.len()];
    }
    weights
        .iter()
        .map(|&w| {
            let share = u128::from(total)
                .saturating_mul(u128::from(w))
                .checked_div(sum)
                .unwrap_or(0);
            u64::try_from(share).unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: u64 = 1_000_000_000;
    const CAP: u64 = 21_000_000 * TOKEN;

    #[test]
    fn halvings_at_bittensor_thresholds() {
        assert_eq!(block_emission_for_issuance(TOKEN, CAP, 0), TOKEN);
        assert_eq!(
            block_emission_for_issuance(TOKEN, CAP, 10_500_000 * TOKEN - 1),
            TOKEN
        );
        assert_eq!(
            block_emission_for_issuance(TOKEN, CAP, 10_500_000 * TOKEN),
            TOKEN / 2
        );
        assert_eq!(
            block_emission_for_issuance(TOKEN, CAP, 15_750_000 * TOKEN),
            TOKEN / 4
        );
        assert_eq!(
            block_emission_for_issuance(TOKEN, CAP, CAP - (CAP >> 10)),
            TOKEN >> 10
        );
        // Far enough into the schedule the emission rounds down to nothing.
        assert_eq!(block_emission_for_issuance(TOKEN, CAP, CAP - 1), 0);
        assert_eq!(block_emission_for_issuance(TOKEN, CAP, CAP), 0);
        assert_eq!(block_emission_for_issuance(TOKEN, CAP, u64::MAX), 0);
    }

    #[test]
    fn split_is_proportional_and_bounded() {
        assert_eq!(split_proportional(100, &[1, 3]), vec![25, 75]);
        assert_eq!(split_proportional(10, &[0, 0, 0]), vec![3, 3, 3]);
        assert_eq!(split_proportional(10, &[]), Vec::<u64>::new());
        let s = split_proportional(u64::MAX, &[u64::MAX, 1]);
        assert!(s.iter().map(|&x| u128::from(x)).sum::<u128>() <= u128::from(u64::MAX));
    }

    proptest::proptest! {
        #[test]
        fn emission_never_passes_cap(issuance: u64) {
            let e = block_emission_for_issuance(TOKEN, CAP, issuance);
            proptest::prop_assert!(e <= TOKEN);
            proptest::prop_assert!(issuance >= CAP || issuance + e <= CAP);
        }
    }
}
