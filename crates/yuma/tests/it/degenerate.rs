//! Degenerate subnets: nothing to agree on must still give a well-defined epoch.

use agora_yuma::run_epoch;

use crate::support::{carry, default_params, empty_subnet, total, with_stake};

fn all_modes() -> Vec<agora_yuma::YumaParams> {
    let classic = default_params();
    let mut yuma3 = default_params();
    yuma3.yuma3 = true;
    let mut liquid = yuma3.clone();
    liquid.liquid_alpha = true;
    vec![classic, yuma3, liquid]
}

#[test]
fn empty_subnet_gives_empty_outputs() {
    for params in all_modes() {
        let out = run_epoch(&empty_subnet(0, 100), &params).unwrap();
        assert!(out.active.is_empty() && out.bonds.is_empty() && out.emission.is_empty());
    }
}

#[test]
fn single_uid_with_self_weight_takes_everything_as_validator() {
    for params in all_modes() {
        let mut s = with_stake(empty_subnet(1, 10), &[5_000]);
        s.weights = vec![vec![(0, u16::MAX)]];
        s.last_update = vec![10];
        for _ in 0..3 {
            let out = run_epoch(&s, &params).unwrap();
            assert_eq!(out.new_validator_permit, [true]);
            assert_eq!(out.incentive, [0]);
            assert_eq!(out.server_emission, [0]);
            assert_eq!(out.validator_emission, [1_000_000_000]);
            carry(&mut s, &out);
            s.current_block += 10;
        }
    }
}

#[test]
fn single_owner_keeps_its_self_weight() {
    for params in all_modes() {
        let mut s = with_stake(empty_subnet(1, 10), &[5_000]);
        s.owner_uid = Some(0);
        s.weights = vec![vec![(0, u16::MAX)]];
        s.last_update = vec![10];
        let out = run_epoch(&s, &params).unwrap();
        // The owner always holds a permit, so its self-weight counts from the first epoch.
        assert_eq!(out.consensus, [65535]);
        assert_eq!(out.incentive, [65535]);
        assert_eq!(out.validator_trust, [65535]);
    }
}

#[test]
fn no_stake_anywhere() {
    for params in all_modes() {
        let mut s = empty_subnet(4, 100);
        s.weights = vec![vec![(1, 10), (2, 20)], vec![], vec![], vec![]];
        s.validator_permit = vec![true; 4];
        let out = run_epoch(&s, &params).unwrap();
        assert_eq!(out.new_validator_permit, [false; 4]);
        assert_eq!(out.stake_weight, [0; 4]);
        assert_eq!(out.consensus, [0; 4]);
        assert_eq!(out.emission, [0; 4]);
        assert!(out.bonds.iter().all(Vec::is_empty));
    }
}

#[test]
fn no_validators_sends_emission_to_stake() {
    for params in all_modes() {
        // Stake but no permits yet: nothing is active stake, so the emission follows stake.
        let s = with_stake(empty_subnet(3, 100), &[1, 1, 2]);
        let out = run_epoch(&s, &params).unwrap();
        assert_eq!(out.incentive, [0; 3]);
        assert_eq!(out.dividends, [0; 3]);
        assert_eq!(out.server_emission, [0; 3]);
        assert_eq!(
            out.validator_emission,
            [250_000_000, 250_000_000, 500_000_000]
        );
        assert_eq!(out.new_validator_permit, [true; 3]);
    }
}

#[test]
fn all_zero_weights_give_no_consensus() {
    for params in all_modes() {
        let mut s = with_stake(empty_subnet(4, 100), &[10, 10, 0, 0]);
        s.validator_permit = vec![true, true, false, false];
        s.weights = vec![vec![(2, 0), (3, 0)], vec![(2, 0)], vec![], vec![]];
        s.last_update = vec![100, 100, 0, 0];
        s.block_at_registration = vec![0, 0, 1, 1];
        let out = run_epoch(&s, &params).unwrap();
        assert_eq!(out.consensus, [0; 4]);
        assert_eq!(out.incentive, [0; 4]);
        assert_eq!(out.validator_trust, [0; 4]);
        // The emission falls back to active stake: half each to the two validators.
        assert_eq!(total(&out.dividends), 0);
        assert_eq!(out.validator_emission, [500_000_000, 500_000_000, 0, 0]);
    }
}

#[test]
fn inputs_and_outputs_round_trip_through_json() {
    let params = default_params();
    let mut s = with_stake(empty_subnet(3, 100), &[1, 2, 1 << 62]);
    // A fractional stake survives too (raw I64F64 bits).
    s.stake[0] = agora_primitives::fixed::I64F64::from_bits((3 << 64) | 12_345);
    s.weights[1] = vec![(0, 7), (2, 9)];
    s.commit_blocks = Some(vec![None, Some(5), None]);
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        serde_json::from_str::<agora_yuma::EpochInputs>(&json).unwrap(),
        s
    );
    let json = serde_json::to_string(&params).unwrap();
    assert_eq!(
        serde_json::from_str::<agora_yuma::YumaParams>(&json).unwrap(),
        params
    );
    let out = run_epoch(&s, &params).unwrap();
    let json = serde_json::to_string(&out).unwrap();
    assert_eq!(
        serde_json::from_str::<agora_yuma::EpochOutputs>(&json).unwrap(),
        out
    );
}
