//! Read-only views of state for RPC and tools.

use crate::kv::KvStore;
use crate::state::State;
use crate::types::{AccountInfo, AxonInfo, HotkeyInfo, SubnetInfo};
use crate::BlockError;
use agora_primitives::{AccountId, BlockNumber, NetUid};
use serde::{Deserialize, Serialize};

/// One neuron as the metagraph shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetagraphNeuron {
    /// Slot.
    pub uid: u16,
    /// Hotkey.
    pub hotkey: AccountId,
    /// Owning coldkey.
    pub coldkey: AccountId,
    /// Total stake on the hotkey, rao.
    pub stake: u64,
    /// Validator trust as a u16 proportion (the sum of the neuron's weights that survived
    /// consensus clipping); Agora's epoch computes no separate miner trust.
    pub trust: u16,
    /// Validator trust, u16 proportion (same value as `trust`, under Bittensor's other name).
    pub validator_trust: u16,
    /// Consensus, u16 proportion.
    pub consensus: u16,
    /// Incentive, u16 proportion.
    pub incentive: u16,
    /// Dividends, u16 proportion.
    pub dividends: u16,
    /// Emission at the last epoch, rao.
    pub emission: u64,
    /// Holds a validator permit.
    pub validator_permit: bool,
    /// Active at the last epoch.
    pub active: bool,
    /// Block of the last weights.
    pub last_update: BlockNumber,
    /// Block of registration.
    pub registered_at: BlockNumber,
    /// Served endpoint.
    pub axon: Option<AxonInfo>,
}

/// An account's view.
pub fn account<S: KvStore + ?Sized>(kv: &S, id: &AccountId) -> Result<AccountInfo, BlockError> {
    State::new(kv).account(id)
}

/// Every subnet.
pub fn subnets<S: KvStore + ?Sized>(kv: &S) -> Result<Vec<(NetUid, SubnetInfo)>, BlockError> {
    State::new(kv).subnets()
}

/// One subnet.
pub fn subnet<S: KvStore + ?Sized>(
    kv: &S,
    netuid: NetUid,
) -> Result<Option<SubnetInfo>, BlockError> {
    State::new(kv).subnet_opt(netuid)
}

/// A hotkey's ownership record.
pub fn hotkey<S: KvStore + ?Sized>(
    kv: &S,
    hotkey: &AccountId,
) -> Result<Option<HotkeyInfo>, BlockError> {
    State::new(kv).hotkey(hotkey)
}

/// A coldkey's stakes: `(hotkey, rao)` pairs.
pub fn stakes_of<S: KvStore + ?Sized>(
    kv: &S,
    coldkey: &AccountId,
) -> Result<Vec<(AccountId, u64)>, BlockError> {
    let st = State::new(kv);
    st.hotkeys_staked_by(coldkey)?
        .into_iter()
        .map(|h| Ok((h, st.stake(&h, coldkey)?)))
        .collect()
}

/// The metagraph of a subnet, in uid order; `None` if the subnet does not exist.
pub fn metagraph<S: KvStore + ?Sized>(
    kv: &S,
    netuid: NetUid,
) -> Result<Option<Vec<MetagraphNeuron>>, BlockError> {
    let st = State::new(kv);
    if st.subnet_opt(netuid)?.is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (uid, n) in (0u16..).zip(st.neurons(netuid)?) {
        let stake = st
            .hotkey(&n.hotkey)?
            .map(|h| h.total_stake_rao)
            .unwrap_or(0);
        out.push(MetagraphNeuron {
            uid,
            hotkey: n.hotkey,
            coldkey: n.coldkey,
            stake,
            trust: n.validator_trust,
            validator_trust: n.validator_trust,
            consensus: n.consensus,
            incentive: n.incentive,
            dividends: n.dividends,
            emission: n.emission_rao,
            validator_permit: n.validator_permit,
            active: n.active,
            last_update: n.last_update,
            registered_at: n.registered_at,
            axon: n.axon,
        });
    }
    Ok(Some(out))
}

/// What creating a subnet in block `block` would lock, rao.
pub fn lock_cost<S: KvStore + ?Sized>(kv: &S, block: BlockNumber) -> Result<u64, BlockError> {
    let st = State::new(kv);
    Ok(crate::exec::lock_cost(&st.params()?, &st.totals()?, block))
}

/// The BFT validator set in this state (empty on a chain without one).
pub fn consensus_validators<S: KvStore + ?Sized>(
    kv: &S,
) -> Result<Vec<crate::types::ConsensusValidator>, BlockError> {
    State::new(kv).consensus_validators()
}
