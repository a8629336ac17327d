//! Scenarios transcribed from subtensor's epoch tests: the same subnets, the same sequence of
//! events and the values its assertions check. The state is built directly instead of through
//! extrinsics; each epoch's stored bonds and permits are carried into the next.

use agora_yuma::run_epoch;

use crate::support::{carry, default_params, empty_subnet, with_stake};

/// Stored bond of validator `i` to uid `j` (0 when absent).
fn bond(bonds: &[Vec<(u16, u16)>], i: usize, j: u16) -> u16 {
    bonds[i].iter().find(|e| e.0 == j).map_or(0, |e| e.1)
}

/// subtensor `test_bonds`: four validators with stake 1..4 weight four servers 1:2:3:4, then
/// one by one switch to self-weights (which are masked), then validator 3 backs server 7 alone.
/// Classic bonds, tempo 1, bonds penalty 1, every uid registered at block 0.
#[test]
fn test_bonds_classic_checkpoints() {
    let mut params = default_params();
    params.tempo = 1;
    params.max_allowed_validators = 8;
    let mut s = with_stake(empty_subnet(8, 0), &[1, 2, 3, 4, 0, 0, 0, 0]);

    // First epoch at block 0 only hands out permits.
    let out = run_epoch(&s, &params).unwrap();
    assert_eq!(
        out.new_validator_permit,
        [true, true, true, true, false, false, false, false]
    );
    carry(&mut s, &out);

    // Block 1: every validator sets [4: 1/4, 5: 1/2, 6: 3/4, 7: 1] (u16::MAX / 4 multiples).
    let row = vec![
        (4, u16::MAX / 4),
        (5, u16::MAX / 2),
        (6, (u16::MAX / 4) * 3),
        (7, u16::MAX),
    ];
    for v in 0..4 {
        s.weights[v] = row.clone();
        s.last_update[v] = 1;
    }
    // (block, uid that switches to a self-weight before the epoch, column, expected bonds)
    let checkpoints: [(u64, Option<usize>, u16, [u16; 4]); 4] = [
        (1, None, 4, [16383, 32767, 49151, 65535]),
        (2, Some(0), 4, [14582, 32767, 49151, 65535]),
        (3, Some(1), 4, [12603, 28321, 49151, 65535]),
        (4, Some(2), 7, [12602, 28320, 49150, 65535]),
    ];
    for (block, self_weight, column, expected) in checkpoints {
        if let Some(uid) = self_weight {
            s.weights[uid] = vec![(uid as u16, u16::MAX)];
            s.last_update[uid] = block - 1;
        }
        s.current_block = block;
        let out = run_epoch(&s, &params).unwrap();
        let got: Vec<u16> = (0..4).map(|i| bond(&out.bonds, i, column)).collect();
        assert_eq!(
            got, expected,
            "bonds to uid {column} after the epoch at block {block}"
        );
        carry(&mut s, &out);
    }

    // Block 4: validator 2 sets [7: 1]; then three more epochs.
    s.weights[2] = vec![(7, u16::MAX)];
    s.last_update[2] = 4;
    let later: [(u64, [u16; 4]); 3] = [
        (5, [10951, 24609, 49150, 65535]),
        (6, [9559, 21482, 49150, 65535]),
        (7, [8376, 18824, 49150, 65535]),
    ];
    for (block, expected) in later {
        s.current_block = block;
        let out = run_epoch(&s, &params).unwrap();
        let got: Vec<u16> = (0..4).map(|i| bond(&out.bonds, i, 7)).collect();
        assert_eq!(
            got, expected,
            "bonds to uid 7 after the epoch at block {block}"
        );
        carry(&mut s, &out);
    }
}

/// subtensor `test_validator_permits`: with a stake threshold of `validators_n`, exactly the
/// staked validators above it get permits and servers none; once every server out-stakes every
/// validator, the top-k moves to the servers.
#[test]
fn test_validator_permits_follow_top_k_stake() {
    for (n, validators_n) in [(2u16, 1u16), (4, 2), (8, 4)] {
        for assignment in 0..=1u64 {
            let mut params = default_params();
            params.tempo = u16::MAX - 1;
            params.max_allowed_validators = validators_n;
            params.stake_threshold = u64::from(validators_n);
            let validators: Vec<usize> = (0..usize::from(validators_n)).collect();
            let servers: Vec<usize> = (usize::from(validators_n)..usize::from(n)).collect();
            let stake: Vec<u64> = (0..u64::from(n))
                .map(|uid| {
                    let is_validator = uid < u64::from(validators_n);
                    match (assignment, is_validator) {
                        (1, true) => uid + u64::from(n),
                        (1, false) => uid,
                        (_, true) => 1,
                        (_, false) => 0,
                    }
                })
                .collect();
            let mut s = with_stake(empty_subnet(n, 0), &stake);
            let out = run_epoch(&s, &params).unwrap();
            for &v in &validators {
                assert_eq!(
                    out.new_validator_permit[v],
                    stake[v] >= u64::from(validators_n),
                    "n={n} assignment={assignment} validator {v}"
                );
            }
            for &sv in &servers {
                assert!(!out.new_validator_permit[sv], "n={n} server {sv}");
            }
            carry(&mut s, &out);

            // Servers stake 2n more each: they now hold the top-k.
            let stake: Vec<u64> = stake
                .iter()
                .enumerate()
                .map(|(uid, &x)| {
                    if uid >= usize::from(validators_n) {
                        x + 2 * u64::from(n)
                    } else {
                        x
                    }
                })
                .collect();
            s = with_stake(s, &stake);
            s.current_block = 1;
            let out = run_epoch(&s, &params).unwrap();
            for &v in &validators {
                assert!(
                    !out.new_validator_permit[v],
                    "n={n} validator {v} keeps a permit"
                );
            }
            for &sv in &servers {
                assert!(
                    out.new_validator_permit[sv],
                    "n={n} server {sv} lacks a permit"
                );
            }
        }
    }
}

/// subtensor `test_1_graph`: one uid with all the stake and a self-weight. Self-weights are
/// masked, so there is no incentive; the emission falls back to stake and goes to it (no
/// permit exists before the first epoch).
#[test]
fn test_1_graph() {
    let params = default_params();
    let mut s = with_stake(empty_subnet(1, 1), &[1_000_000_000]);
    s.weights = vec![vec![(0, u16::MAX)]];
    s.last_update = vec![1];
    let out = run_epoch(&s, &params).unwrap();
    assert_eq!(out.stake_weight, [65535]);
    assert_eq!(out.incentive, [0]);
    assert_eq!(out.consensus, [0]);
    assert_eq!(out.dividends, [0]);
    assert_eq!(out.emission, [1_000_000_000]);
    assert_eq!(out.validator_emission, [1_000_000_000]);
    assert_eq!(out.server_emission, [0]);
}

/// subtensor `test_10_graph`: ten uids with equal stake, each weighting only itself, all with
/// before any permit exists: every self-weight is masked, so each uid gets a tenth of the
/// emission (floored to 99_999_999 rao) through the stake fallback, nothing as a server.
#[test]
fn test_10_graph() {
    let params = default_params();
    let mut s = with_stake(empty_subnet(10, 1), &[1; 10]);
    s.weights = (0..10).map(|i| vec![(i, u16::MAX)]).collect();
    s.last_update = vec![1; 10];
    let out = run_epoch(&s, &params).unwrap();
    assert_eq!(out.stake_weight, [6553; 10]);
    assert_eq!(out.incentive, [0; 10]);
    assert_eq!(out.emission, [99_999_999; 10]);
    assert_eq!(out.server_emission, [0; 10]);
}
