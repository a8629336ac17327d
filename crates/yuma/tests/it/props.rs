//! Properties over random small subnets: no panic, normalised outputs sum to one within the
//! stored precision, and relabelling uids relabels the outputs.

use agora_primitives::fixed::I64F64;
use agora_yuma::{run_epoch, EpochInputs, EpochOutputs, YumaParams};
use proptest::prelude::*;

use crate::support::total;

/// A sparse row over `0..n`: ascending uids, each at most once, random values.
fn row(n: u16) -> impl Strategy<Value = Vec<(u16, u16)>> {
    proptest::collection::vec((any::<bool>(), any::<u16>()), usize::from(n)).prop_map(|cells| {
        cells
            .into_iter()
            .enumerate()
            .filter(|(_, (present, _))| *present)
            .map(|(j, (_, v))| (j as u16, v))
            .collect()
    })
}

fn params() -> impl Strategy<Value = YumaParams> {
    (
        (
            any::<u16>(),
            0u64..1_200_000,
            any::<u16>(),
            0u16..12,
            1u16..400,
            1u64..200,
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<u16>(),
            any::<u16>(),
            any::<i16>(),
        ),
        (0u64..2_000_000, any::<bool>()),
    )
        .prop_map(
            |(
                (kappa, bma, penalty, max_validators, tempo, cutoff),
                (yuma3, liquid_alpha, a, b, steepness),
                (stake_threshold, commit_reveal_enabled),
            )| YumaParams {
                kappa,
                bonds_moving_average: bma,
                bonds_penalty: penalty,
                max_allowed_validators: max_validators,
                tempo,
                activity_cutoff: cutoff,
                yuma3,
                liquid_alpha,
                alpha_low: a.min(b),
                alpha_high: a.max(b),
                alpha_sigmoid_steepness: steepness,
                stake_threshold,
                commit_reveal_enabled,
            },
        )
}

fn subnet() -> impl Strategy<Value = EpochInputs> {
    (1u16..10).prop_flat_map(|n| {
        let nu = usize::from(n);
        (
            proptest::collection::vec(prop_oneof![Just(0u64), 1u64..10_000_000_000_000], nu),
            proptest::collection::vec(0u64..300, nu),
            proptest::collection::vec(0u64..300, nu),
            proptest::collection::vec(any::<bool>(), nu),
            proptest::collection::vec(row(n), nu),
            proptest::collection::vec(row(n), nu),
            proptest::collection::vec(proptest::option::of(0u64..300), nu),
            proptest::option::of(0..n),
            (250u64..400, 0u64..300, any::<u64>()),
        )
            .prop_map(
                move |(
                    stake,
                    last_update,
                    bar,
                    permit,
                    weights,
                    bonds,
                    commits,
                    owner,
                    (block, lms, rao),
                )| {
                    EpochInputs {
                        n,
                        owner_uid: owner,
                        stake: stake.into_iter().map(I64F64::from_num).collect(),
                        last_update,
                        block_at_registration: bar,
                        validator_permit: permit,
                        weights,
                        bonds,
                        commit_blocks: Some(commits),
                        current_block: block,
                        last_mechanism_step_block: lms,
                        rao_emission: rao,
                    }
                },
            )
    })
}

/// The same subnet with uid `u` renamed `perm[u]`; rows re-sorted by the new uids.
fn relabel(s: &EpochInputs, perm: &[usize]) -> EpochInputs {
    let n = perm.len();
    let mut inv = vec![0usize; n];
    for (old, &new) in perm.iter().enumerate() {
        inv[new] = old;
    }
    let gather = |v: &[u64]| -> Vec<u64> { inv.iter().map(|&o| v[o]).collect() };
    let rows = |m: &[Vec<(u16, u16)>]| -> Vec<Vec<(u16, u16)>> {
        inv.iter()
            .map(|&o| {
                let mut r: Vec<(u16, u16)> = m[o]
                    .iter()
                    .map(|&(j, v)| (perm[usize::from(j)] as u16, v))
                    .collect();
                r.sort_unstable();
                r
            })
            .collect()
    };
    EpochInputs {
        n: s.n,
        owner_uid: s.owner_uid.map(|o| perm[usize::from(o)] as u16),
        stake: inv.iter().map(|&o| s.stake[o]).collect(),
        last_update: gather(&s.last_update),
        block_at_registration: gather(&s.block_at_registration),
        validator_permit: inv.iter().map(|&o| s.validator_permit[o]).collect(),
        weights: rows(&s.weights),
        bonds: rows(&s.bonds),
        commit_blocks: s
            .commit_blocks
            .as_ref()
            .map(|c| inv.iter().map(|&o| c[o]).collect()),
        ..s.clone()
    }
}

/// Outputs of the relabelled subnet, mapped back to the original uids (bond rows sorted).
fn unlabel(out: &EpochOutputs, perm: &[usize]) -> EpochOutputs {
    let back = |new: u16| perm.iter().position(|&p| p == usize::from(new)).unwrap() as u16;
    let pick = |i: usize| perm[i];
    macro_rules! per_uid {
        ($field:ident) => {
            (0..perm.len())
                .map(|i| out.$field[pick(i)].clone())
                .collect()
        };
    }
    let bonds = (0..perm.len())
        .map(|i| {
            let mut r: Vec<(u16, u16)> = out.bonds[pick(i)]
                .iter()
                .map(|&(j, v)| (back(j), v))
                .collect();
            r.sort_unstable();
            r
        })
        .collect();
    EpochOutputs {
        active: per_uid!(active),
        new_validator_permit: per_uid!(new_validator_permit),
        stake_weight: per_uid!(stake_weight),
        consensus: per_uid!(consensus),
        incentive: per_uid!(incentive),
        dividends: per_uid!(dividends),
        validator_trust: per_uid!(validator_trust),
        bonds,
        server_emission: per_uid!(server_emission),
        validator_emission: per_uid!(validator_emission),
        emission: per_uid!(emission),
        fixed_bits: Default::default(),
    }
}

fn sorted_bonds(mut out: EpochOutputs) -> EpochOutputs {
    out.bonds.iter_mut().for_each(|r| r.sort_unstable());
    out.fixed_bits = Default::default();
    out
}

/// A normalised vector stored as u16: 0, or within `n + 1` of 65535 (each entry floors).
fn normalised(v: &[u16]) -> bool {
    let t = total(v);
    t == 0 || (t <= 65_535 && t + v.len() as u64 + 1 >= 65_535)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn extreme_values_never_fail(
        s in subnet(),
        p in params(),
        huge in proptest::collection::vec(0u64..=(i64::MAX as u64), 10),
        far in any::<u64>(),
    ) {
        // Stakes near the I64F64 limit (their sum saturates), blocks near u64::MAX.
        let mut s = s;
        for (x, &h) in s.stake.iter_mut().zip(&huge) {
            *x = I64F64::from_num(h);
        }
        s.current_block = far;
        s.last_update.iter_mut().for_each(|u| *u = u.wrapping_add(far));
        let mut p = p;
        p.activity_cutoff = far;
        p.bonds_moving_average = far;
        p.stake_threshold = far >> 40;
        prop_assert!(run_epoch(&s, &p).is_ok());
    }

    #[test]
    fn never_fails_on_valid_inputs_and_sums_are_bounded(s in subnet(), p in params()) {
        let out = run_epoch(&s, &p).expect("valid inputs");
        let n = usize::from(s.n);
        prop_assert_eq!(out.bonds.len(), n);
        prop_assert!(normalised(&out.stake_weight), "stake {:?}", out.stake_weight);
        prop_assert!(normalised(&out.incentive), "incentive {:?}", out.incentive);
        prop_assert!(normalised(&out.dividends), "dividends {:?}", out.dividends);
        let paid: u128 = out.server_emission.iter().chain(&out.validator_emission).map(|&x| u128::from(x)).sum();
        prop_assert!(paid <= u128::from(s.rao_emission));
        let combined: u128 = out.emission.iter().map(|&x| u128::from(x)).sum();
        prop_assert!(combined <= u128::from(s.rao_emission));
        for (i, row) in out.bonds.iter().enumerate() {
            prop_assert!(row.is_empty() || out.new_validator_permit[i]);
        }
    }

    #[test]
    fn relabelling_uids_relabels_outputs(s in subnet(), p in params(), seed in any::<u64>()) {
        let out = run_epoch(&s, &p).expect("valid inputs");
        // Equal non-zero stakes make the top-k tie-break depend on uid order.
        let mut nonzero: Vec<i64> = out.fixed_bits.stake.iter().copied().filter(|&x| x != 0).collect();
        nonzero.sort_unstable();
        prop_assume!(nonzero.windows(2).all(|w| w[0] != w[1]));

        let n = usize::from(s.n);
        let mut perm: Vec<usize> = (0..n).collect();
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            perm.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let relabelled = run_epoch(&relabel(&s, &perm), &p).expect("valid inputs");
        prop_assert_eq!(unlabel(&relabelled, &perm), sorted_bonds(out));
    }
}
