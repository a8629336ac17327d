//! The per-block hooks: accrue emission to subnets, and every tempo run a subnet's epoch and
//! pay what it computes.
//!
//! Payment order at an epoch (Bittensor's, before dynamic pools):
//! 1. the owner's cut (`subnet_owner_cut` of the accrued emission) to the owner's coldkey;
//! 2. the rest through Yuma Consensus: each neuron's server (miner) emission is staked to its
//!    hotkey from the hotkey's owner;
//! 3. each validator's emission: the take to the hotkey's owner, the remainder to everyone
//!    staking on the hotkey (the owner included) in proportion to stake, staked back in place.
//!
//! Only what is paid is minted, so issuance always equals free + staked + locked balances.

use crate::emission::{block_emission_for_issuance, split_proportional};
use crate::events::Event;
use crate::exec::{add, epoch_index, mul_div, mul_u16_proportion};
use crate::state::State;
use crate::types::*;
use crate::{BlockError, KvStore};
use agora_primitives::{fixed::I64F64, AccountId, BlockNumber, NetUid};
use agora_yuma::{run_epoch, EpochInputs, YumaParams};

/// True when subnet `netuid` with `tempo` runs its epoch at `block` (subtensor's schedule:
/// subnets are staggered by netuid so their epochs do not all land on one block).
pub fn is_epoch_block(netuid: NetUid, tempo: u16, block: BlockNumber) -> bool {
    let period = u64::from(tempo).saturating_add(1);
    block
        .saturating_add(u64::from(netuid.0))
        .saturating_add(1)
        .checked_rem(period)
        == Some(0)
}

/// Runs the hooks of `block`, before its transactions.
pub(crate) fn on_initialize<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), BlockError> {
    let params = st.params()?;
    let totals = st.totals()?;
    let mut subnets = st.subnets()?;
    if subnets.is_empty() {
        return Ok(());
    }
    // 1. Accrue this block's emission.
    let emission = block_emission_for_issuance(
        params.block_emission_rao,
        params.supply_cap_rao,
        totals.issuance_rao,
    );
    let weights: Vec<u64> = subnets.iter().map(|(_, s)| s.stake_snapshot_rao).collect();
    let shares = split_proportional(emission, &weights);
    for ((netuid, s), share) in subnets.iter_mut().zip(shares) {
        s.pending_emission_rao = s.pending_emission_rao.saturating_add(share);
        adjust_burn(s, block);
        st.put_subnet(*netuid, s);
    }
    // 2. Epochs due at this block.
    for (netuid, s) in subnets {
        if is_epoch_block(netuid, s.hyperparams.tempo, block) {
            run_subnet_epoch(st, netuid, s, &params, block, events)?;
        }
    }
    Ok(())
}

/// subtensor's burn adjustment: every `adjustment_interval` blocks,
/// `burn * (regs + target) / (2 * target)`, clamped to `[min_burn, max_burn]`.
fn adjust_burn(s: &mut SubnetInfo, block: BlockNumber) {
    let hp = &s.hyperparams;
    if block.saturating_sub(s.last_adjustment_block) < u64::from(hp.adjustment_interval) {
        return;
    }
    let target = u64::from(hp.target_registrations_per_interval);
    let regs = u64::from(s.registrations_this_interval);
    let next = if target == 0 {
        s.burn_rao
    } else {
        mul_div(
            s.burn_rao,
            regs.saturating_add(target),
            target.saturating_mul(2),
        )
    };
    s.burn_rao = next.clamp(hp.min_burn_rao, hp.max_burn_rao.max(hp.min_burn_rao));
    s.registrations_this_interval = 0;
    s.last_adjustment_block = block;
}

/// Builds Yuma's inputs from state.
pub fn gather_epoch_inputs<S: KvStore + ?Sized>(
    st: &State<'_, S>,
    netuid: NetUid,
    s: &SubnetInfo,
    block: BlockNumber,
    rao_emission: u64,
) -> Result<(EpochInputs, YumaParams, Vec<NeuronInfo>), BlockError> {
    let hp = &s.hyperparams;
    let neurons = st.neurons(netuid)?;
    let n = u16::try_from(neurons.len())
        .map_err(|_| BlockError::CorruptState("too many neurons".into()))?;
    let mut stake = Vec::with_capacity(neurons.len());
    let mut weights = Vec::with_capacity(neurons.len());
    let mut bonds = Vec::with_capacity(neurons.len());
    let mut commit_blocks = Vec::with_capacity(neurons.len());
    let now_epoch = epoch_index(netuid, hp.tempo, block);
    let mut owner_uid = None;
    for (uid, nr) in (0u16..).zip(neurons.iter()) {
        let total = st
            .hotkey(&nr.hotkey)?
            .map(|h| h.total_stake_rao)
            .unwrap_or(0);
        stake.push(I64F64::saturating_from_num(total));
        weights.push(st.weights(netuid, uid)?);
        bonds.push(st.bonds(netuid, uid)?);
        if hp.commit_reveal_enabled {
            let earliest = st
                .commits(netuid, &nr.hotkey)?
                .iter()
                .filter(|c| {
                    epoch_index(netuid, hp.tempo, c.block).saturating_add(hp.commit_reveal_period)
                        >= now_epoch
                })
                .map(|c| c.block)
                .min();
            commit_blocks.push(earliest);
        }
        if nr.hotkey == s.owner_hotkey {
            owner_uid = Some(uid);
        }
    }
    let inputs = EpochInputs {
        n,
        owner_uid,
        stake,
        last_update: neurons.iter().map(|x| x.last_update).collect(),
        block_at_registration: neurons.iter().map(|x| x.registered_at).collect(),
        validator_permit: neurons.iter().map(|x| x.validator_permit).collect(),
        weights,
        bonds,
        commit_blocks: hp.commit_reveal_enabled.then_some(commit_blocks),
        current_block: block,
        last_mechanism_step_block: s.last_epoch_block,
        rao_emission,
    };
    let params = YumaParams {
        kappa: hp.kappa,
        bonds_moving_average: hp.bonds_moving_average,
        bonds_penalty: hp.bonds_penalty,
        max_allowed_validators: hp.max_allowed_validators,
        tempo: hp.tempo,
        activity_cutoff: hp.activity_cutoff,
        yuma3: hp.yuma3,
        liquid_alpha: hp.liquid_alpha_enabled,
        alpha_low: hp.alpha_low,
        alpha_high: hp.alpha_high,
        alpha_sigmoid_steepness: hp.alpha_sigmoid_steepness,
        stake_threshold: hp.stake_threshold_rao,
        commit_reveal_enabled: hp.commit_reveal_enabled,
    };
    Ok((inputs, params, neurons))
}

fn run_subnet_epoch<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    netuid: NetUid,
    mut s: SubnetInfo,
    params: &ChainParams,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), BlockError> {
    let pending = s.pending_emission_rao;
    let owner_cut = mul_u16_proportion(pending, params.subnet_owner_cut);
    let to_neurons = pending.saturating_sub(owner_cut);
    let (inputs, yparams, mut neurons) = gather_epoch_inputs(st, netuid, &s, block, to_neurons)?;
    // Inputs built from valid state always pass Yuma's checks; if they do not, the state is
    // corrupt and the block must not be produced.
    let out = run_epoch(&inputs, &yparams)
        .map_err(|e| BlockError::CorruptState(format!("epoch inputs: {e}")))?;

    let mut minted = 0u64;
    let mut owner = st.account(&s.owner_coldkey)?;
    owner.free_rao = owner.free_rao.saturating_add(owner_cut);
    st.put_account(&s.owner_coldkey, &owner);
    minted = minted.saturating_add(owner_cut);

    let mut paid = 0u64;
    let mut stake_snapshot = 0u64;
    for (uid, nr) in (0u16..).zip(neurons.iter_mut()) {
        let i = usize::from(uid);
        let get = |v: &Vec<u64>| v.get(i).copied().unwrap_or(0);
        let server = get(&out.server_emission);
        let validator = get(&out.validator_emission);
        pay_server(st, &nr.hotkey, server)?;
        pay_validator(st, &nr.hotkey, validator)?;
        paid = paid.saturating_add(server).saturating_add(validator);
        let g16 = |v: &Vec<u16>| v.get(i).copied().unwrap_or(0);
        nr.active = out.active.get(i).copied().unwrap_or(false);
        nr.validator_permit = out.new_validator_permit.get(i).copied().unwrap_or(false);
        nr.stake_weight = g16(&out.stake_weight);
        nr.consensus = g16(&out.consensus);
        nr.incentive = g16(&out.incentive);
        nr.dividends = g16(&out.dividends);
        nr.validator_trust = g16(&out.validator_trust);
        nr.emission_rao = get(&out.emission);
        st.put_neuron(netuid, uid, nr);
        st.put_bonds(netuid, uid, &out.bonds.get(i).cloned().unwrap_or_default());
        let hk_stake = st
            .hotkey(&nr.hotkey)?
            .map(|h| h.total_stake_rao)
            .unwrap_or(0);
        stake_snapshot = stake_snapshot.saturating_add(hk_stake);
    }
    minted = minted.saturating_add(paid);
    let mut totals = st.totals()?;
    totals.issuance_rao = totals.issuance_rao.saturating_add(minted);
    totals.stake_rao = totals.stake_rao.saturating_add(paid);
    st.put_totals(&totals);

    s.pending_emission_rao = 0;
    s.last_epoch_block = block;
    s.stake_snapshot_rao = stake_snapshot;
    st.put_subnet(netuid, &s);
    events.push(Event::EpochCompleted {
        netuid,
        owner_cut_rao: owner_cut,
        paid_rao: paid,
    });
    Ok(())
}

fn credit_stake<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    hotkey: &AccountId,
    h: &mut HotkeyInfo,
    coldkey: &AccountId,
    rao: u64,
) -> Result<(), BlockError> {
    if rao == 0 {
        return Ok(());
    }
    let current = st.stake(hotkey, coldkey)?;
    st.put_stake(hotkey, coldkey, current.saturating_add(rao));
    h.total_stake_rao = h.total_stake_rao.saturating_add(rao);
    Ok(())
}

/// The ownership record every registered hotkey has; its absence means corrupt state.
fn owned_hotkey<S: KvStore + ?Sized>(
    st: &State<'_, S>,
    hotkey: &AccountId,
) -> Result<HotkeyInfo, BlockError> {
    st.hotkey(hotkey)?
        .ok_or_else(|| BlockError::CorruptState("registered hotkey without owner".into()))
}

fn pay_server<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    hotkey: &AccountId,
    rao: u64,
) -> Result<(), BlockError> {
    if rao == 0 {
        return Ok(());
    }
    let mut h = owned_hotkey(st, hotkey)?;
    let owner = h.owner;
    credit_stake(st, hotkey, &mut h, &owner, rao)?;
    st.put_hotkey(hotkey, &h);
    Ok(())
}

fn pay_validator<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    hotkey: &AccountId,
    rao: u64,
) -> Result<(), BlockError> {
    if rao == 0 {
        return Ok(());
    }
    let mut h = owned_hotkey(st, hotkey)?;
    let owner = h.owner;
    let take = mul_u16_proportion(rao, h.take);
    let rest = rao.saturating_sub(take);
    let stakers = st.stakes_on(hotkey)?;
    let total: u64 = stakers.iter().fold(0u64, |a, (_, s)| a.saturating_add(*s));
    let mut distributed = 0u64;
    if total > 0 {
        for (cold, s) in &stakers {
            let share = mul_div(rest, *s, total);
            credit_stake(st, hotkey, &mut h, cold, share)?;
            distributed = distributed.saturating_add(share);
        }
    }
    // The take, plus what flooring left over (or everything when nobody stakes), goes to the
    // owner so that the whole validator emission is paid.
    let to_owner = add(take, rest.saturating_sub(distributed)).unwrap_or(take);
    credit_stake(st, hotkey, &mut h, &owner, to_owner)?;
    st.put_hotkey(hotkey, &h);
    Ok(())
}
