//! The synthetic subnet the benchmark and the profiling example run: `n` uids, `v` of them
//! validators, every validator weighting and bonding every uid (dense rows).

use agora_primitives::fixed::I64F64;
use agora_yuma::{EpochInputs, YumaParams};

/// xorshift64*: deterministic pseudo-random numbers for the synthetic subnet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn u16_in(&mut self, lo: u16, hi: u16) -> u16 {
        let span = u64::from(hi - lo) + 1;
        lo + (self.next() % span) as u16
    }
}

pub(crate) fn subnet(n: u16, validators: u16, seed: u64) -> EpochInputs {
    let mut rng = Rng(seed | 1);
    let nu = usize::from(n);
    let block = 1_000_000u64;
    let mut stake = vec![I64F64::from_num(0); nu];
    let mut permit = vec![false; nu];
    let mut weights = vec![Vec::new(); nu];
    let mut bonds = vec![Vec::new(); nu];
    for v in 0..usize::from(validators) {
        stake[v] = I64F64::from_num(1_000_000_000_000u64 + rng.next() % 1_000_000_000_000_000);
        permit[v] = true;
        // Dense, max-upscaled rows: one entry per uid.
        let mut row: Vec<(u16, u16)> = (0..n).map(|j| (j, rng.u16_in(0, 65535))).collect();
        let max = row.iter().map(|e| e.1).max().unwrap_or(1).max(1);
        for e in &mut row {
            e.1 = ((u32::from(e.1) * 65535) / u32::from(max)) as u16;
        }
        weights[v] = row;
        bonds[v] = (0..n).map(|j| (j, rng.u16_in(1, 65535))).collect();
    }
    EpochInputs {
        n,
        owner_uid: Some(0),
        stake,
        last_update: vec![block - 10; nu],
        block_at_registration: vec![block - 100_000; nu],
        validator_permit: permit,
        weights,
        bonds,
        commit_blocks: None,
        current_block: block,
        last_mechanism_step_block: block - 360,
        rao_emission: 1_000_000_000,
    }
}

pub(crate) fn params(yuma3: bool, liquid_alpha: bool, validators: u16) -> YumaParams {
    YumaParams {
        kappa: 32767,
        bonds_moving_average: 900_000,
        bonds_penalty: 65535,
        max_allowed_validators: validators,
        tempo: 360,
        activity_cutoff: 5000,
        yuma3,
        liquid_alpha,
        alpha_low: 45875,
        alpha_high: 58982,
        alpha_sigmoid_steepness: 1000,
        stake_threshold: 1000,
        commit_reveal_enabled: false,
    }
}
