//! The records the ledger stores, and the chain and subnet parameters.
//!
//! Every record is SCALE-encoded in state; its field order is part of the state root, so
//! fields are only ever appended in a new version.

use agora_primitives::{AccountId, BlockNumber, Hash};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// A plain account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// Transferable balance, rao.
    pub free_rao: u64,
}

/// Chain-wide parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ChainParams {
    /// Emission per block before any halving, rao (Bittensor: 1 token).
    pub block_emission_rao: u64,
    /// The issuance the halving schedule converges to, rao (Bittensor: 21M tokens).
    pub supply_cap_rao: u64,
    /// Share of each subnet's emission paid to its owner, u16 proportion (subtensor: 11796, 18%).
    pub subnet_owner_cut: u16,
    /// Most subnets that may exist.
    pub max_subnets: u16,
    /// Smallest subnet lock cost, rao.
    pub min_lock_cost_rao: u64,
    /// Blocks over which a doubled lock cost decays back (subtensor: 14 * 7200).
    pub lock_reduction_interval: u64,
    /// Flat fee per fee-paying transaction, rao. Burned.
    pub base_fee_rao: u64,
    /// Fee per encoded byte, rao. Burned.
    pub byte_fee_rao: u64,
    /// Largest encoded transaction accepted.
    pub max_tx_bytes: u32,
    /// Highest delegate take, u16 proportion.
    pub max_take: u16,
    /// The take a hotkey gets when first registered, u16 proportion.
    pub default_take: u16,
    /// Most pending weight commits per hotkey and subnet.
    pub max_pending_commits: u32,
    /// Hyperparameters a new subnet starts with.
    pub default_hyperparams: Hyperparams,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            block_emission_rao: 1_000_000_000,
            supply_cap_rao: 21_000_000 * 1_000_000_000,
            subnet_owner_cut: 11_796,
            max_subnets: 1024,
            min_lock_cost_rao: 100 * 1_000_000_000,
            lock_reduction_interval: 14 * 7200,
            base_fee_rao: 100_000,
            byte_fee_rao: 100,
            max_tx_bytes: 64 * 1024,
            max_take: 11_796,
            default_take: 11_796,
            max_pending_commits: 10,
            default_hyperparams: Hyperparams::default(),
        }
    }
}

/// A subnet's owner-settable hyperparameters (Bittensor's names and defaults).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Hyperparams {
    /// Blocks between epochs.
    pub tempo: u16,
    /// Most neurons on the subnet.
    pub max_allowed_uids: u16,
    /// Most neurons holding a validator permit.
    pub max_allowed_validators: u16,
    /// Blocks after registration during which a neuron cannot be pruned.
    pub immunity_period: u16,
    /// Blocks without setting weights after which a validator counts as inactive.
    pub activity_cutoff: u64,
    /// Consensus majority, u16 proportion (32767 = 50%).
    pub kappa: u16,
    /// Bond EMA memory, in millionths (900_000 keeps 90% of old bonds).
    pub bonds_moving_average: u64,
    /// How much weight above consensus is penalised in bonds, u16 proportion.
    pub bonds_penalty: u16,
    /// Blocks between two weight submissions of one hotkey.
    pub weights_rate_limit: u64,
    /// The lowest weights version key accepted.
    pub weights_version: u64,
    /// Fewest non-zero weights a submission must carry.
    pub min_allowed_weights: u16,
    /// Weights must be committed then revealed.
    pub commit_reveal_enabled: bool,
    /// Epochs between a commit and its reveal.
    pub commit_reveal_period: u64,
    /// Yuma3 bonds instead of classic.
    pub yuma3: bool,
    /// Liquid alpha (Yuma3 only).
    pub liquid_alpha_enabled: bool,
    /// Lower liquid-alpha bound, u16 proportion.
    pub alpha_low: u16,
    /// Upper liquid-alpha bound, u16 proportion.
    pub alpha_high: u16,
    /// Liquid-alpha sigmoid steepness.
    pub alpha_sigmoid_steepness: i16,
    /// Lowest registration burn, rao.
    pub min_burn_rao: u64,
    /// Highest registration burn, rao.
    pub max_burn_rao: u64,
    /// Registrations per adjustment interval the burn steers toward.
    pub target_registrations_per_interval: u16,
    /// Blocks between burn adjustments.
    pub adjustment_interval: u16,
    /// Most registrations in one block.
    pub max_registrations_per_block: u16,
    /// Stake (whole rao) below which a neuron's stake counts as zero in the epoch.
    pub stake_threshold_rao: u64,
}

impl Default for Hyperparams {
    fn default() -> Self {
        Hyperparams {
            tempo: 360,
            max_allowed_uids: 256,
            max_allowed_validators: 64,
            immunity_period: 4096,
            activity_cutoff: 5000,
            kappa: 32_767,
            bonds_moving_average: 900_000,
            bonds_penalty: 65_535,
            weights_rate_limit: 100,
            weights_version: 0,
            min_allowed_weights: 1,
            commit_reveal_enabled: false,
            commit_reveal_period: 1,
            yuma3: false,
            liquid_alpha_enabled: false,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1000,
            min_burn_rao: 500_000,
            max_burn_rao: 100 * 1_000_000_000,
            target_registrations_per_interval: 2,
            adjustment_interval: 360,
            max_registrations_per_block: 1,
            stake_threshold_rao: 0,
        }
    }
}

/// One owner-settable hyperparameter and its new value.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name", content = "value")]
pub enum Hyperparameter {
    /// See [`Hyperparams::tempo`].
    #[codec(index = 0)]
    Tempo(u16),
    /// See [`Hyperparams::max_allowed_uids`].
    #[codec(index = 1)]
    MaxAllowedUids(u16),
    /// See [`Hyperparams::max_allowed_validators`].
    #[codec(index = 2)]
    MaxAllowedValidators(u16),
    /// See [`Hyperparams::immunity_period`].
    #[codec(index = 3)]
    ImmunityPeriod(u16),
    /// See [`Hyperparams::activity_cutoff`].
    #[codec(index = 4)]
    ActivityCutoff(u64),
    /// See [`Hyperparams::kappa`].
    #[codec(index = 5)]
    Kappa(u16),
    /// See [`Hyperparams::bonds_moving_average`].
    #[codec(index = 6)]
    BondsMovingAverage(u64),
    /// See [`Hyperparams::bonds_penalty`].
    #[codec(index = 7)]
    BondsPenalty(u16),
    /// See [`Hyperparams::weights_rate_limit`].
    #[codec(index = 8)]
    WeightsRateLimit(u64),
    /// See [`Hyperparams::weights_version`].
    #[codec(index = 9)]
    WeightsVersion(u64),
    /// See [`Hyperparams::min_allowed_weights`].
    #[codec(index = 10)]
    MinAllowedWeights(u16),
    /// See [`Hyperparams::commit_reveal_enabled`].
    #[codec(index = 11)]
    CommitRevealEnabled(bool),
    /// See [`Hyperparams::commit_reveal_period`].
    #[codec(index = 12)]
    CommitRevealPeriod(u64),
    /// See [`Hyperparams::yuma3`].
    #[codec(index = 13)]
    Yuma3(bool),
    /// See [`Hyperparams::liquid_alpha_enabled`].
    #[codec(index = 14)]
    LiquidAlphaEnabled(bool),
    /// Both liquid-alpha bounds: (low, high).
    #[codec(index = 15)]
    AlphaValues(u16, u16),
    /// See [`Hyperparams::alpha_sigmoid_steepness`].
    #[codec(index = 16)]
    AlphaSigmoidSteepness(i16),
    /// See [`Hyperparams::min_burn_rao`].
    #[codec(index = 17)]
    MinBurn(u64),
    /// See [`Hyperparams::max_burn_rao`].
    #[codec(index = 18)]
    MaxBurn(u64),
    /// See [`Hyperparams::target_registrations_per_interval`].
    #[codec(index = 19)]
    TargetRegistrationsPerInterval(u16),
    /// See [`Hyperparams::adjustment_interval`].
    #[codec(index = 20)]
    AdjustmentInterval(u16),
    /// See [`Hyperparams::max_registrations_per_block`].
    #[codec(index = 21)]
    MaxRegistrationsPerBlock(u16),
    /// See [`Hyperparams::stake_threshold_rao`].
    #[codec(index = 22)]
    StakeThreshold(u64),
}

/// Hard bounds on subnet sizes, chosen so that one epoch stays cheap for every node.
pub const MAX_UIDS_LIMIT: u16 = 4096;

impl Hyperparams {
    /// Applies one change after checking its range; on error `self` is unchanged.
    pub fn apply(&mut self, p: &Hyperparameter) -> Result<(), crate::TxError> {
        use crate::TxError;
        use Hyperparameter as H;
        fn bad(name: &'static str, reason: impl Into<String>) -> TxError {
            TxError::InvalidHyperparameter {
                name,
                reason: reason.into(),
            }
        }
        let mut next = self.clone();
        match *p {
            H::Tempo(v) => {
                if v == 0 {
                    return Err(bad("tempo", "must be at least 1 block"));
                }
                next.tempo = v;
            }
            H::MaxAllowedUids(v) => {
                if v == 0 || v > MAX_UIDS_LIMIT {
                    return Err(bad(
                        "max_allowed_uids",
                        format!("must be in 1..={MAX_UIDS_LIMIT}"),
                    ));
                }
                next.max_allowed_uids = v;
            }
            H::MaxAllowedValidators(v) => next.max_allowed_validators = v,
            H::ImmunityPeriod(v) => next.immunity_period = v,
            H::ActivityCutoff(v) => {
                if v == 0 {
                    return Err(bad("activity_cutoff", "must be at least 1 block"));
                }
                next.activity_cutoff = v;
            }
            H::Kappa(v) => next.kappa = v,
            H::BondsMovingAverage(v) => {
                if v > 1_000_000 {
                    return Err(bad("bonds_moving_average", "must be at most 1000000"));
                }
                next.bonds_moving_average = v;
            }
            H::BondsPenalty(v) => next.bonds_penalty = v,
            H::WeightsRateLimit(v) => next.weights_rate_limit = v,
            H::WeightsVersion(v) => next.weights_version = v,
            H::MinAllowedWeights(v) => next.min_allowed_weights = v,
            H::CommitRevealEnabled(v) => next.commit_reveal_enabled = v,
            H::CommitRevealPeriod(v) => {
                if v == 0 || v > 100 {
                    return Err(bad("commit_reveal_period", "must be in 1..=100 epochs"));
                }
                next.commit_reveal_period = v;
            }
            H::Yuma3(v) => next.yuma3 = v,
            H::LiquidAlphaEnabled(v) => next.liquid_alpha_enabled = v,
            H::AlphaValues(low, high) => {
                // subtensor refuses a lower bound under 0.025 and requires low <= high.
                if low > high || low < 1638 {
                    return Err(bad("alpha_values", "need 1638 <= alpha_low <= alpha_high"));
                }
                next.alpha_low = low;
                next.alpha_high = high;
            }
            H::AlphaSigmoidSteepness(v) => next.alpha_sigmoid_steepness = v,
            H::MinBurn(v) => next.min_burn_rao = v,
            H::MaxBurn(v) => next.max_burn_rao = v,
            H::TargetRegistrationsPerInterval(v) => next.target_registrations_per_interval = v,
            H::AdjustmentInterval(v) => {
                if v == 0 {
                    return Err(bad("adjustment_interval", "must be at least 1 block"));
                }
                next.adjustment_interval = v;
            }
            H::MaxRegistrationsPerBlock(v) => next.max_registrations_per_block = v,
            H::StakeThreshold(v) => next.stake_threshold_rao = v,
        }
        if next.min_burn_rao > next.max_burn_rao {
            return Err(bad(
                "min_burn/max_burn",
                "min_burn must not exceed max_burn",
            ));
        }
        *self = next;
        Ok(())
    }
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SubnetInfo {
    /// The coldkey that created it.
    pub owner_coldkey: AccountId,
    /// The owner's hotkey, registered as uid 0 and never pruned.
    pub owner_hotkey: AccountId,
    /// Current hyperparameters.
    pub hyperparams: Hyperparams,
    /// Registered neurons (uids `0..n`).
    pub n: u16,
    /// The current registration burn, rao.
    pub burn_rao: u64,
    /// Tokens locked by the owner at creation, rao.
    pub locked_rao: u64,
    /// Block of creation.
    pub created_at: BlockNumber,
    /// Registrations since the last burn adjustment.
    pub registrations_this_interval: u16,
    /// Block of the last burn adjustment.
    pub last_adjustment_block: BlockNumber,
    /// Registrations in `registrations_block`.
    pub registrations_this_block: u16,
    /// The block `registrations_this_block` counts.
    pub registrations_block: BlockNumber,
    /// Emission accrued since the last epoch, rao.
    pub pending_emission_rao: u64,
    /// Block of the last epoch, 0 = none yet.
    pub last_epoch_block: BlockNumber,
    /// Total hotkey stake of its neurons at the last epoch, rao: its share of block emission.
    pub stake_snapshot_rao: u64,
}

/// A served endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AxonInfo {
    /// IPv4 or IPv6 address, as text (validated on entry).
    pub ip: String,
    /// TCP port.
    pub port: u16,
    /// Wire protocol identifier (0 = HTTP btauth/1).
    pub protocol: u8,
    /// The serving software's version.
    pub version: u32,
    /// Digest of the neuron's attestation bundle, if it runs in a TEE (BLAKE2b-256, see
    /// `agora_tee::AttestationBundle::digest`).
    pub attestation_digest: Option<[u8; 32]>,
    /// Block at which it was published.
    pub block: BlockNumber,
}

/// A registered neuron and what the last epoch wrote for it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct NeuronInfo {
    /// The neuron's hotkey.
    pub hotkey: AccountId,
    /// The coldkey owning the hotkey.
    pub coldkey: AccountId,
    /// Block of registration.
    pub registered_at: BlockNumber,
    /// Block of the last weights (set or reveal); registration counts.
    pub last_update: BlockNumber,
    /// Validator permit from the last epoch.
    pub validator_permit: bool,
    /// Active in the last epoch.
    pub active: bool,
    /// Stake weight, u16 proportion.
    pub stake_weight: u16,
    /// Consensus, u16 proportion.
    pub consensus: u16,
    /// Incentive, u16 proportion.
    pub incentive: u16,
    /// Dividends, u16 proportion.
    pub dividends: u16,
    /// Validator trust, u16 proportion.
    pub validator_trust: u16,
    /// Emission paid at the last epoch, rao.
    pub emission_rao: u64,
    /// The served endpoint.
    pub axon: Option<AxonInfo>,
}

/// A hotkey's ownership and delegation record.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct HotkeyInfo {
    /// The coldkey that owns it.
    pub owner: AccountId,
    /// The share of validator emission the owner keeps before nominators, u16 proportion.
    pub take: u16,
    /// Total stake on it from all coldkeys, rao.
    pub total_stake_rao: u64,
}

/// A pending weight commit.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct WeightCommit {
    /// BLAKE2b-256 of SCALE(hotkey, netuid, uids, values, salt, version_key).
    pub hash: Hash,
    /// Block of the commit.
    pub block: BlockNumber,
}

/// Chain-wide mutable totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Totals {
    /// Every rao in existence (free + staked + locked).
    pub issuance_rao: u64,
    /// Every staked rao.
    pub stake_rao: u64,
    /// The last subnet lock cost paid, rao.
    pub last_lock_cost_rao: u64,
    /// Block of the last subnet creation.
    pub last_lock_block: BlockNumber,
}

/// A BFT validator's consensus public key: 32 bytes of an ed25519 key, shown as `0x`-hex.
/// The ledger stores it as given; the node checks that it is a valid curve point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct ConsensusKey(pub [u8; 32]);

impl Serialize for ConsensusKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        agora_primitives::Hash(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConsensusKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ConsensusKey(agora_primitives::Hash::deserialize(d)?.0))
    }
}

/// A member of the BFT validator set: who signs votes and with how much weight.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ConsensusValidator {
    /// Its ed25519 consensus public key.
    pub public_key: ConsensusKey,
    /// Its voting power.
    pub power: u64,
}

/// Checks a BFT validator set: no key twice, no zero power, a total that fits a `u64`.
/// An empty set is valid (a chain without BFT validators, run by the solo engine).
pub fn check_consensus_validators(set: &[ConsensusValidator]) -> Result<(), String> {
    let mut keys: Vec<&ConsensusKey> = set.iter().map(|v| &v.public_key).collect();
    keys.sort();
    if let Some(w) = keys.windows(2).find(|w| w.first() == w.get(1)) {
        let key = w.first().map(|k| Hash(k.0)).unwrap_or_default();
        return Err(format!("consensus validator {key} is listed twice"));
    }
    if let Some(v) = set.iter().find(|v| v.power == 0) {
        return Err(format!(
            "consensus validator {} has no voting power",
            Hash(v.public_key.0)
        ));
    }
    set.iter()
        .try_fold(0u64, |acc, v| acc.checked_add(v.power))
        .map(|_| ())
        .ok_or_else(|| "total voting power overflows".to_owned())
}
