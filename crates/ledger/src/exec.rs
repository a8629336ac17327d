//! Dispatch: what each [`Call`] does to state. Every function checks everything before it
//! writes; on error the caller drops the transaction's overlay, so a failure changes nothing.

use crate::events::Event;
use crate::state::{ExecError, Row, State};
use crate::tx::{commit_hash, Call};
use crate::types::*;
use crate::TxError;
use agora_primitives::{AccountId, BlockNumber, NetUid};
use std::net::IpAddr;

/// `a + b`, or `Overflow`.
pub(crate) fn add(a: u64, b: u64) -> Result<u64, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

/// `a - b`, or `Overflow` (callers check balances first and report those errors).
pub(crate) fn sub(a: u64, b: u64) -> Result<u64, TxError> {
    a.checked_sub(b).ok_or(TxError::Overflow)
}

/// `value * part / 65535`, floored, in 128 bits so it cannot overflow.
pub(crate) fn mul_u16_proportion(value: u64, part: u16) -> u64 {
    let wide = u128::from(value)
        .saturating_mul(u128::from(part))
        .checked_div(u128::from(u16::MAX))
        .unwrap_or(0);
    u64::try_from(wide).unwrap_or(u64::MAX)
}

/// `value * num / den`, floored; 0 when `den` is 0.
pub(crate) fn mul_div(value: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return 0;
    }
    let wide = u128::from(value)
        .saturating_mul(u128::from(num))
        .checked_div(u128::from(den))
        .unwrap_or(0);
    u64::try_from(wide).unwrap_or(u64::MAX)
}

/// The epoch index subtensor uses for commit-reveal windows.
pub(crate) fn epoch_index(netuid: NetUid, tempo: u16, block: BlockNumber) -> u64 {
    block
        .saturating_add(u64::from(netuid.0))
        .saturating_add(1)
        .checked_div(u64::from(tempo).saturating_add(1))
        .unwrap_or(0)
}

/// The first block of epoch `index`.
fn epoch_start(netuid: NetUid, tempo: u16, index: u64) -> u64 {
    index
        .saturating_mul(u64::from(tempo).saturating_add(1))
        .saturating_sub(u64::from(netuid.0))
        .saturating_sub(1)
}

/// Executes `call` signed by `signer` at `block`.
pub(crate) fn dispatch<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    signer: &AccountId,
    call: &Call,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    match call {
        Call::Transfer { dest, amount_rao } => transfer(st, signer, dest, *amount_rao, events),
        Call::CreateSubnet { hotkey } => create_subnet(st, signer, hotkey, block, events),
        Call::SetHyperparameter { netuid, param } => {
            let mut s = st.subnet(*netuid)?;
            if s.owner_coldkey != *signer {
                return Err(TxError::NotSubnetOwner(netuid.0).into());
            }
            if let Hyperparameter::MaxAllowedUids(v) = param {
                if *v < s.n {
                    return Err(TxError::InvalidHyperparameter {
                        name: "max_allowed_uids",
                        reason: format!("cannot go below the {} neurons registered", s.n),
                    }
                    .into());
                }
            }
            s.hyperparams.apply(param)?;
            st.put_subnet(*netuid, &s);
            events.push(Event::HyperparameterSet {
                netuid: *netuid,
                param: param.clone(),
            });
            Ok(())
        }
        Call::BurnedRegister { netuid, hotkey } => {
            burned_register(st, signer, *netuid, hotkey, block, events)
        }
        Call::ServeAxon {
            netuid,
            ip,
            port,
            protocol,
            version,
            attestation_digest,
        } => {
            let uid = st
                .uid_of(*netuid, signer)?
                .ok_or(TxError::NotRegistered(netuid.0))?;
            let parsed: IpAddr = ip
                .parse()
                .map_err(|_| TxError::InvalidAxon(format!("'{ip}' is not an IP address")))?;
            if parsed.is_unspecified() || parsed.is_multicast() {
                return Err(TxError::InvalidAxon(format!("{ip} cannot be served")).into());
            }
            if *port == 0 {
                return Err(TxError::InvalidAxon("port 0".into()).into());
            }
            let mut n = st.neuron(*netuid, uid)?;
            if n.axon.as_ref().is_some_and(|a| a.block == block) {
                return Err(TxError::InvalidAxon("already served in this block".into()).into());
            }
            n.axon = Some(AxonInfo {
                ip: parsed.to_string(),
                port: *port,
                protocol: *protocol,
                version: *version,
                attestation_digest: *attestation_digest,
                block,
            });
            st.put_neuron(*netuid, uid, &n);
            events.push(Event::AxonServed {
                netuid: *netuid,
                uid,
            });
            Ok(())
        }
        Call::AddStake { hotkey, amount_rao } => add_stake(st, signer, hotkey, *amount_rao, events),
        Call::RemoveStake { hotkey, amount_rao } => {
            remove_stake(st, signer, hotkey, *amount_rao, events)
        }
        Call::SetTake { hotkey, take } => {
            let mut h = st.hotkey(hotkey)?.ok_or(TxError::UnknownHotkey)?;
            if h.owner != *signer {
                return Err(TxError::NotHotkeyOwner.into());
            }
            let max = st.params()?.max_take;
            if *take > max {
                return Err(TxError::TakeTooHigh { got: *take, max }.into());
            }
            h.take = *take;
            st.put_hotkey(hotkey, &h);
            events.push(Event::TakeSet {
                hotkey: *hotkey,
                take: *take,
            });
            Ok(())
        }
        Call::SetWeights {
            netuid,
            uids,
            values,
            version_key,
        } => {
            let s = st.subnet(*netuid)?;
            if s.hyperparams.commit_reveal_enabled {
                return Err(TxError::CommitRevealMismatch {
                    netuid: netuid.0,
                    state: "enabled",
                }
                .into());
            }
            set_weights(
                st,
                &s,
                *netuid,
                signer,
                uids,
                values,
                *version_key,
                block,
                events,
            )
        }
        Call::CommitWeights {
            netuid,
            commit_hash,
        } => {
            let s = st.subnet(*netuid)?;
            if !s.hyperparams.commit_reveal_enabled {
                return Err(TxError::CommitRevealMismatch {
                    netuid: netuid.0,
                    state: "disabled",
                }
                .into());
            }
            let uid = st
                .uid_of(*netuid, signer)?
                .ok_or(TxError::NotRegistered(netuid.0))?;
            let max = usize::try_from(st.params()?.max_pending_commits).unwrap_or(usize::MAX);
            let mut commits = live_commits(st, &s, *netuid, signer, block)?;
            if commits.len() >= max {
                return Err(TxError::TooManyCommits(max).into());
            }
            commits.push(WeightCommit {
                hash: *commit_hash,
                block,
            });
            st.put_commits(*netuid, signer, &commits);
            events.push(Event::WeightsCommitted {
                netuid: *netuid,
                uid,
                commit_hash: *commit_hash,
            });
            Ok(())
        }
        Call::RevealWeights {
            netuid,
            uids,
            values,
            salt,
            version_key,
        } => {
            let s = st.subnet(*netuid)?;
            if !s.hyperparams.commit_reveal_enabled {
                return Err(TxError::CommitRevealMismatch {
                    netuid: netuid.0,
                    state: "disabled",
                }
                .into());
            }
            let hash = commit_hash(signer, *netuid, uids, values, salt, *version_key);
            let mut commits = st.commits(*netuid, signer)?;
            let pos = commits
                .iter()
                .position(|c| c.hash == hash)
                .ok_or(TxError::NoMatchingCommit)?;
            let commit = commits.remove(pos);
            let hp = &s.hyperparams;
            let commit_epoch = epoch_index(*netuid, hp.tempo, commit.block);
            let reveal_epoch = commit_epoch.saturating_add(hp.commit_reveal_period);
            let now_epoch = epoch_index(*netuid, hp.tempo, block);
            if now_epoch < reveal_epoch {
                return Err(TxError::RevealTooEarly {
                    from: epoch_start(*netuid, hp.tempo, reveal_epoch),
                }
                .into());
            }
            if now_epoch > reveal_epoch {
                let until = epoch_start(*netuid, hp.tempo, reveal_epoch.saturating_add(1))
                    .saturating_sub(1);
                return Err(TxError::RevealExpired { until }.into());
            }
            st.put_commits(*netuid, signer, &commits);
            set_weights(
                st,
                &s,
                *netuid,
                signer,
                uids,
                values,
                *version_key,
                block,
                events,
            )
        }
    }
}

/// Commits of `hotkey` whose reveal window has not passed.
fn live_commits<S: crate::KvStore + ?Sized>(
    st: &State<'_, S>,
    s: &SubnetInfo,
    netuid: NetUid,
    hotkey: &AccountId,
    block: BlockNumber,
) -> Result<Vec<WeightCommit>, ExecError> {
    let hp = &s.hyperparams;
    let now_epoch = epoch_index(netuid, hp.tempo, block);
    Ok(st
        .commits(netuid, hotkey)?
        .into_iter()
        .filter(|c| {
            epoch_index(netuid, hp.tempo, c.block).saturating_add(hp.commit_reveal_period)
                >= now_epoch
        })
        .collect())
}

fn transfer<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    if amount == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    if from == to {
        return Err(TxError::SelfTransfer.into());
    }
    let mut a = st.account(from)?;
    if a.free_rao < amount {
        return Err(TxError::InsufficientBalance {
            need: amount,
            have: a.free_rao,
        }
        .into());
    }
    let mut b = st.account(to)?;
    b.free_rao = add(b.free_rao, amount)?;
    a.free_rao = sub(a.free_rao, amount)?;
    st.put_account(from, &a);
    st.put_account(to, &b);
    events.push(Event::Transfer {
        from: *from,
        to: *to,
        amount_rao: amount,
    });
    Ok(())
}

/// subtensor's lock cost: twice the last lock, decaying linearly back over
/// `lock_reduction_interval` blocks, never below the minimum.
pub(crate) fn lock_cost(params: &ChainParams, totals: &Totals, block: BlockNumber) -> u64 {
    let last = totals.last_lock_cost_rao;
    let elapsed = block.saturating_sub(totals.last_lock_block);
    let decay = last
        .checked_div(params.lock_reduction_interval)
        .unwrap_or(0)
        .saturating_mul(elapsed);
    last.saturating_mul(2)
        .saturating_sub(decay)
        .max(params.min_lock_cost_rao)
}

fn create_subnet<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    owner: &AccountId,
    hotkey: &AccountId,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    let params = st.params()?;
    let mut totals = st.totals()?;
    let lock = lock_cost(&params, &totals, block);
    let mut acct = st.account(owner)?;
    if acct.free_rao < lock {
        return Err(TxError::InsufficientBalance {
            need: lock,
            have: acct.free_rao,
        }
        .into());
    }
    if let Some(h) = st.hotkey(hotkey)? {
        if h.owner != *owner {
            return Err(TxError::HotkeyOwnedByOther.into());
        }
    }
    let existing: Vec<NetUid> = st.subnets()?.into_iter().map(|(id, _)| id).collect();
    // Netuid 0 is reserved (Bittensor's root); take the lowest free id.
    let netuid = (1..=params.max_subnets)
        .map(NetUid)
        .find(|id| !existing.contains(id))
        .ok_or(TxError::TooManySubnets)?;
    acct.free_rao = sub(acct.free_rao, lock)?;
    st.put_account(owner, &acct);
    totals.last_lock_cost_rao = lock;
    totals.last_lock_block = block;
    st.put_totals(&totals);
    let hp = params.default_hyperparams.clone();
    let subnet = SubnetInfo {
        owner_coldkey: *owner,
        owner_hotkey: *hotkey,
        burn_rao: hp.min_burn_rao,
        hyperparams: hp,
        n: 0,
        locked_rao: lock,
        created_at: block,
        registrations_this_interval: 0,
        last_adjustment_block: block,
        registrations_this_block: 0,
        registrations_block: block,
        pending_emission_rao: 0,
        last_epoch_block: 0,
        stake_snapshot_rao: 0,
    };
    st.put_subnet(netuid, &subnet);
    events.push(Event::SubnetCreated {
        netuid,
        owner: *owner,
        lock_rao: lock,
    });
    let uid = append_or_replace_neuron(st, netuid, subnet, owner, hotkey, block, events)?;
    events.push(Event::NeuronRegistered {
        netuid,
        uid,
        hotkey: *hotkey,
        burn_rao: 0,
    });
    Ok(())
}

fn burned_register<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    coldkey: &AccountId,
    netuid: NetUid,
    hotkey: &AccountId,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    let mut s = st.subnet(netuid)?;
    if st.uid_of(netuid, hotkey)?.is_some() {
        return Err(TxError::AlreadyRegistered(netuid.0).into());
    }
    if let Some(h) = st.hotkey(hotkey)? {
        if h.owner != *coldkey {
            return Err(TxError::HotkeyOwnedByOther.into());
        }
    }
    if s.registrations_block != block {
        s.registrations_block = block;
        s.registrations_this_block = 0;
    }
    let hp = &s.hyperparams;
    if s.registrations_this_block >= hp.max_registrations_per_block {
        return Err(TxError::TooManyRegistrations(netuid.0).into());
    }
    // subtensor allows three times the target per interval before refusing.
    if s.registrations_this_interval >= hp.target_registrations_per_interval.saturating_mul(3) {
        return Err(TxError::TooManyRegistrations(netuid.0).into());
    }
    let burn = s.burn_rao;
    let mut acct = st.account(coldkey)?;
    if acct.free_rao < burn {
        return Err(TxError::InsufficientBalance {
            need: burn,
            have: acct.free_rao,
        }
        .into());
    }
    acct.free_rao = sub(acct.free_rao, burn)?;
    st.put_account(coldkey, &acct);
    let mut totals = st.totals()?;
    totals.issuance_rao = totals.issuance_rao.saturating_sub(burn);
    st.put_totals(&totals);
    s.registrations_this_block = s.registrations_this_block.saturating_add(1);
    s.registrations_this_interval = s.registrations_this_interval.saturating_add(1);
    let uid = append_or_replace_neuron(st, netuid, s, coldkey, hotkey, block, events)?;
    events.push(Event::NeuronRegistered {
        netuid,
        uid,
        hotkey: *hotkey,
        burn_rao: burn,
    });
    Ok(())
}

/// Gives `hotkey` a uid: the next free one, or, when the subnet is full, the one of the
/// lowest-emission neuron out of immunity (ties: earliest registered, then lowest uid). The
/// owner's hotkey is never pruned.
fn append_or_replace_neuron<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    netuid: NetUid,
    mut s: SubnetInfo,
    coldkey: &AccountId,
    hotkey: &AccountId,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<u16, ExecError> {
    let uid = if s.n < s.hyperparams.max_allowed_uids {
        let uid = s.n;
        s.n = s.n.checked_add(1).ok_or(TxError::SubnetFull(netuid.0))?;
        uid
    } else {
        let immunity = u64::from(s.hyperparams.immunity_period);
        let candidates = st.neurons(netuid)?;
        let (uid, old) = candidates
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.hotkey != s.owner_hotkey && block.saturating_sub(n.registered_at) >= immunity
            })
            .min_by_key(|(i, n)| (n.emission_rao, n.registered_at, *i))
            .ok_or(TxError::SubnetFull(netuid.0))?;
        let uid = u16::try_from(uid).map_err(|_| TxError::SubnetFull(netuid.0))?;
        st.delete(crate::state::keys::hotkey_uid(netuid, &old.hotkey));
        st.put_commits(netuid, &old.hotkey, &[]);
        st.put_weights(netuid, uid, &Row::new());
        st.put_bonds(netuid, uid, &Row::new());
        // Weights others set to the old neuron no longer mean anything: zero them, keeping
        // the entries (the stored order matters to the epoch).
        for other in 0..s.n {
            let mut row = st.weights(netuid, other)?;
            let mut touched = false;
            for (target, w) in row.iter_mut() {
                if *target == uid && *w != 0 {
                    *w = 0;
                    touched = true;
                }
            }
            if touched {
                st.put_weights(netuid, other, &row);
            }
        }
        events.push(Event::NeuronPruned {
            netuid,
            uid,
            hotkey: old.hotkey,
        });
        uid
    };
    if st.hotkey(hotkey)?.is_none() {
        let take = st.params()?.default_take;
        st.put_hotkey(
            hotkey,
            &HotkeyInfo {
                owner: *coldkey,
                take,
                total_stake_rao: 0,
            },
        );
    }
    st.put_neuron(
        netuid,
        uid,
        &NeuronInfo {
            hotkey: *hotkey,
            coldkey: *coldkey,
            registered_at: block,
            last_update: block,
            validator_permit: false,
            active: true,
            stake_weight: 0,
            consensus: 0,
            incentive: 0,
            dividends: 0,
            validator_trust: 0,
            emission_rao: 0,
            axon: None,
        },
    );
    st.write(crate::state::keys::hotkey_uid(netuid, hotkey), &uid);
    st.put_subnet(netuid, &s);
    Ok(uid)
}

fn add_stake<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    amount: u64,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    if amount == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    let mut h = st.hotkey(hotkey)?.ok_or(TxError::UnknownHotkey)?;
    let mut acct = st.account(coldkey)?;
    if acct.free_rao < amount {
        return Err(TxError::InsufficientBalance {
            need: amount,
            have: acct.free_rao,
        }
        .into());
    }
    let staked = add(st.stake(hotkey, coldkey)?, amount)?;
    h.total_stake_rao = add(h.total_stake_rao, amount)?;
    let mut totals = st.totals()?;
    totals.stake_rao = add(totals.stake_rao, amount)?;
    acct.free_rao = sub(acct.free_rao, amount)?;
    st.put_account(coldkey, &acct);
    st.put_stake(hotkey, coldkey, staked);
    st.put_hotkey(hotkey, &h);
    st.put_totals(&totals);
    events.push(Event::StakeAdded {
        coldkey: *coldkey,
        hotkey: *hotkey,
        amount_rao: amount,
    });
    Ok(())
}

fn remove_stake<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    coldkey: &AccountId,
    hotkey: &AccountId,
    amount: u64,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    if amount == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    let mut h = st.hotkey(hotkey)?.ok_or(TxError::UnknownHotkey)?;
    let have = st.stake(hotkey, coldkey)?;
    if have < amount {
        return Err(TxError::InsufficientStake { need: amount, have }.into());
    }
    let mut acct = st.account(coldkey)?;
    acct.free_rao = add(acct.free_rao, amount)?;
    h.total_stake_rao = sub(h.total_stake_rao, amount)?;
    let mut totals = st.totals()?;
    totals.stake_rao = sub(totals.stake_rao, amount)?;
    st.put_account(coldkey, &acct);
    st.put_stake(hotkey, coldkey, sub(have, amount)?);
    st.put_hotkey(hotkey, &h);
    st.put_totals(&totals);
    events.push(Event::StakeRemoved {
        coldkey: *coldkey,
        hotkey: *hotkey,
        amount_rao: amount,
    });
    Ok(())
}

/// Scales weights so the largest is 65535, as subtensor stores them (floor division).
pub fn max_upscale(values: &[u16]) -> Vec<u16> {
    let max = values.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return values.to_vec();
    }
    values
        .iter()
        .map(|&v| {
            u16::try_from(mul_div(u64::from(v), u64::from(u16::MAX), u64::from(max)))
                .unwrap_or(u16::MAX)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn set_weights<S: crate::KvStore + ?Sized>(
    st: &mut State<'_, S>,
    s: &SubnetInfo,
    netuid: NetUid,
    hotkey: &AccountId,
    uids: &[u16],
    values: &[u16],
    version_key: u64,
    block: BlockNumber,
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    let hp = &s.hyperparams;
    let uid = st
        .uid_of(netuid, hotkey)?
        .ok_or(TxError::NotRegistered(netuid.0))?;
    if uids.len() != values.len() {
        return Err(TxError::WeightLengthMismatch.into());
    }
    let mut seen = vec![false; usize::from(s.n)];
    for &u in uids {
        let slot = seen.get_mut(usize::from(u)).ok_or(TxError::UnknownUid {
            netuid: netuid.0,
            uid: u,
        })?;
        if *slot {
            return Err(TxError::DuplicateUid(u).into());
        }
        *slot = true;
    }
    if version_key < hp.weights_version {
        return Err(TxError::IncorrectWeightVersion {
            got: version_key,
            required: hp.weights_version,
        }
        .into());
    }
    let mut neuron = st.neuron(netuid, uid)?;
    let next = neuron.last_update.saturating_add(hp.weights_rate_limit);
    if neuron.last_update != neuron.registered_at && block < next {
        return Err(TxError::WeightsRateLimited { next }.into());
    }
    let self_only = uids == [uid];
    if !self_only {
        if !neuron.validator_permit {
            return Err(TxError::NoValidatorPermit(netuid.0).into());
        }
        let nonzero = values.iter().filter(|&&v| v > 0).count();
        let min = usize::from(hp.min_allowed_weights.min(s.n));
        if nonzero < min {
            return Err(TxError::TooFewWeights {
                min: hp.min_allowed_weights.min(s.n),
                got: nonzero,
            }
            .into());
        }
    }
    let row: Row = uids.iter().copied().zip(max_upscale(values)).collect();
    st.put_weights(netuid, uid, &row);
    neuron.last_update = block;
    st.put_neuron(netuid, uid, &neuron);
    events.push(Event::WeightsSet { netuid, uid });
    Ok(())
}
