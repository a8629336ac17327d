//! The epoch's inputs, hyperparameters and outputs: plain data, serde-(de)serialisable.

use agora_primitives::fixed::I64F64;
use serde::{Deserialize, Serialize};

/// A sparse row of `(uid, value)` pairs, in stored order.
pub type SparseRow = Vec<(u16, u16)>;

/// The subnet hyperparameters an epoch reads. Names follow subtensor's storage items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct YumaParams {
    /// `Kappa`: the consensus majority, used as `kappa / 65535`.
    pub kappa: u16,
    /// `BondsMovingAverage`: the EMA factor is `alpha = 1 - bonds_moving_average / 1_000_000`.
    pub bonds_moving_average: u64,
    /// `BondsPenalty`: `beta = bonds_penalty / 65535` interpolates between weights (0) and
    /// clipped weights (1) for the bonds.
    pub bonds_penalty: u16,
    /// `MaxAllowedValidators`: the k of the top-k validator permits.
    pub max_allowed_validators: u16,
    /// `Tempo` in blocks; used by the bond registration mask when there was no previous epoch.
    pub tempo: u16,
    /// The effective activity cutoff in blocks: a uid whose last update is older is inactive.
    pub activity_cutoff: u64,
    /// `Yuma3On`: Yuma3 bonds (absolute, in [0, 1]) instead of classic bonds.
    pub yuma3: bool,
    /// `LiquidAlphaOn`: a per-bond EMA factor from a sigmoid; used only with `yuma3`.
    pub liquid_alpha: bool,
    /// `AlphaValues.0`: the lowest liquid alpha, used as `alpha_low / 65535`.
    pub alpha_low: u16,
    /// `AlphaValues.1`: the highest liquid alpha, used as `alpha_high / 65535`.
    pub alpha_high: u16,
    /// `AlphaSigmoidSteepness`: the liquid-alpha sigmoid steepness (may be negative).
    pub alpha_sigmoid_steepness: i16,
    /// `StakeThreshold` in rao: stake whose integer part is below it counts as 0 (the owner is
    /// exempt).
    pub stake_threshold: u64,
    /// `CommitRevealWeightsEnabled`: applies the commit-reveal column mask.
    pub commit_reveal_enabled: bool,
}

/// How many threads an epoch may use. The output never depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Parallelism {
    /// Everything on the calling thread (what [`crate::run_epoch`] does).
    #[default]
    Serial,
    /// The epoch runs on a persistent pool of this many threads (at most 8; 0 and 1 mean
    /// serial), started on first use and kept for the life of the process; large stages (from
    /// 2^16 entries) split their rows or columns among the pool's threads. The caller decides,
    /// e.g. from `std::thread::available_parallelism`.
    Threads(usize),
}

/// Everything the epoch reads from a subnet's state, gathered up front. Every per-uid vector
/// has length `n`; row entries have `uid < n` and no uid twice in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochInputs {
    /// Number of uids (`SubnetworkN`); uids are `0..n`.
    pub n: u16,
    /// The uid of the subnet owner's hotkey, if registered. It keeps its self-weight, always
    /// has a validator permit and is exempt from the stake threshold.
    pub owner_uid: Option<u16>,
    /// Stake weight per uid in rao, before normalisation (may have a fractional part; must not
    /// be negative). Serialised as the raw I64F64 bits.
    #[serde(with = "stake_bits")]
    pub stake: Vec<I64F64>,
    /// `LastUpdate`: the block at which each uid last set weights.
    pub last_update: Vec<u64>,
    /// `BlockAtRegistration`: the block at which each uid was last registered.
    pub block_at_registration: Vec<u64>,
    /// `ValidatorPermit` as stored by the previous epoch.
    pub validator_permit: Vec<bool>,
    /// `Weights` rows (max-upscaled u16), one per uid, in stored order.
    pub weights: Vec<SparseRow>,
    /// `Bonds` rows, one per uid, in stored order: column max-upscaled (classic) or absolute
    /// u16 proportions (Yuma3).
    pub bonds: Vec<SparseRow>,
    /// Per uid, the block of its earliest unexpired weight commit (`None`: no commit). Read only
    /// when commit-reveal is enabled; `None` as a whole means no uid has a commit.
    pub commit_blocks: Option<Vec<Option<u64>>>,
    /// The block at which the epoch runs.
    pub current_block: u64,
    /// `LastMechansimStepBlock`: the block of the previous successful epoch, 0 if none.
    pub last_mechanism_step_block: u64,
    /// The emission this epoch distributes, in rao.
    pub rao_emission: u64,
}

/// What the epoch returns and what the chain stores, per uid, in stored form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochOutputs {
    /// `Active`: `last_update + activity_cutoff >= current_block`.
    pub active: Vec<bool>,
    /// `ValidatorPermit` for the next epoch: top-k by stake, owner forced.
    pub new_validator_permit: Vec<bool>,
    /// `StakeWeight`: the normalised stake as a u16 proportion.
    pub stake_weight: Vec<u16>,
    /// `Consensus`: the kappa-clipped stake-weighted median weight per uid.
    pub consensus: Vec<u16>,
    /// `Incentive`: normalised rank per uid.
    pub incentive: Vec<u16>,
    /// `Dividends`: normalised bond-weighted incentive per uid.
    pub dividends: Vec<u16>,
    /// `ValidatorTrust`: the sum of each validator's clipped weights.
    pub validator_trust: Vec<u16>,
    /// `Bonds` rows to store: the new row for uids with a new permit, `[]` otherwise.
    pub bonds: Vec<SparseRow>,
    /// Miner (server) emission in rao.
    pub server_emission: Vec<u64>,
    /// Validator emission in rao.
    pub validator_emission: Vec<u64>,
    /// `Emission`: the combined emission in rao.
    pub emission: Vec<u64>,
    /// Diagnostics: raw I32F32 bits of intermediate vectors.
    pub fixed_bits: FixedBits,
}

/// Raw I32F32 bits (`value * 2^32`) of the epoch's main vectors, to locate a divergence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedBits {
    /// Normalised stake `S`.
    pub stake: Vec<i64>,
    /// Active stake `A`.
    pub active_stake: Vec<i64>,
    /// Consensus `C`.
    pub consensus: Vec<i64>,
    /// Validator trust `Tv`.
    pub validator_trust: Vec<i64>,
    /// Incentive `I`.
    pub incentive: Vec<i64>,
    /// Dividends `D`.
    pub dividends: Vec<i64>,
}

/// Serialises I64F64 stake as its raw i128 bits, which JSON carries exactly.
mod stake_bits {
    use agora_primitives::fixed::I64F64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[I64F64], s: S) -> Result<S::Ok, S::Error> {
        let bits: Vec<i128> = v.iter().map(|x| x.to_bits()).collect();
        bits.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<I64F64>, D::Error> {
        let bits = Vec::<i128>::deserialize(d)?;
        Ok(bits.into_iter().map(I64F64::from_bits).collect())
    }
}
