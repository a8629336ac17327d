//! Builders for small hand-written subnets.

use agora_primitives::fixed::I64F64;
use agora_yuma::{EpochInputs, EpochOutputs, YumaParams};

/// subtensor's default hyperparameters (as in its test runtime), classic bonds.
pub(crate) fn default_params() -> YumaParams {
    YumaParams {
        kappa: 32_767,
        bonds_moving_average: 900_000,
        bonds_penalty: u16::MAX,
        max_allowed_validators: 100,
        tempo: 360,
        activity_cutoff: 5_000,
        yuma3: false,
        liquid_alpha: false,
        alpha_low: 45_875,
        alpha_high: 58_982,
        alpha_sigmoid_steepness: 1_000,
        stake_threshold: 0,
        commit_reveal_enabled: false,
    }
}

/// `n` uids registered at block 0, no stake, no weights, no bonds, no permits.
pub(crate) fn empty_subnet(n: u16, block: u64) -> EpochInputs {
    let nu = usize::from(n);
    EpochInputs {
        n,
        owner_uid: None,
        stake: vec![I64F64::from_num(0); nu],
        last_update: vec![0; nu],
        block_at_registration: vec![0; nu],
        validator_permit: vec![false; nu],
        weights: vec![Vec::new(); nu],
        bonds: vec![Vec::new(); nu],
        commit_blocks: None,
        current_block: block,
        last_mechanism_step_block: 0,
        rao_emission: 1_000_000_000,
    }
}

/// Sets integer stakes in rao.
pub(crate) fn with_stake(mut inputs: EpochInputs, stake: &[u64]) -> EpochInputs {
    inputs.stake = stake.iter().map(|&s| I64F64::from_num(s)).collect();
    inputs
}

/// Carries what the chain stores into the next epoch's inputs.
pub(crate) fn carry(inputs: &mut EpochInputs, out: &EpochOutputs) {
    inputs.bonds.clone_from(&out.bonds);
    inputs
        .validator_permit
        .clone_from(&out.new_validator_permit);
}

/// The sum of a stored u16 vector.
pub(crate) fn total(v: &[u16]) -> u64 {
    v.iter().map(|&x| u64::from(x)).sum()
}
