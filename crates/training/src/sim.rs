//! A whole training subnet in one process: one validator, miners with chosen behaviours
//! (honest or one of the known attacks), rounds run in order. Used by the benchmark, the
//! adversary tests, and as the reference the networked miners and validator must agree with.

use std::collections::BTreeMap;

use crate::data::Corpus;
use crate::error::TrainingError;
use crate::params::{Digest32, ParamSet};
use crate::rng::{derive_rng, normal_vec};
use crate::round::{
    train_round, Commit, MinerState, Ownership, RoundInputs, RoundReport, RunConfig, Validator,
    ValidatorConfig,
};
use crate::train::StepStats;
use crate::update::Update;

/// How a simulated miner behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Trains its shard and reports truthfully.
    Honest,
    /// Sends Gaussian noise with the norm an honest update would have.
    Noise,
    /// Sends an all-zero update.
    Zeros,
    /// Copies another miner's update (committing after it).
    Copy(u16),
    /// Sends the previous round's public change, rescaled to an honest norm.
    RescaledAggregate,
    /// Trains honestly, but on another miner's data.
    WrongData,
    /// Trains from the checkpoint of the round before, claiming the current one.
    Stale,
}

/// What a miner can see besides the round's inputs, for the attacks that need it.
#[derive(Debug, Clone, Copy)]
pub struct MinerView<'a> {
    /// The round's miners (a wrong-data miner trains on a shard none of them is assigned).
    pub miners: &'a [u16],
    /// The checkpoint of the round before, if the miner kept it (for [`Behaviour::Stale`]).
    pub previous: Option<&'a ParamSet>,
    /// The last outer step's change (public: the difference of two checkpoints).
    pub last_change: &'a ParamSet,
    /// The update a [`Behaviour::Copy`] miner copies, if it got hold of it.
    pub copy_of: Option<&'a Update>,
}

/// One miner's round as `behaviour` plays it: the update it commits to and the state it
/// carries on. Honest miners run [`train_round`]; every attack also trains (so its state
/// moves like an honest one's) and then sends something else.
pub fn play_round(
    inputs: &RoundInputs<'_>,
    uid: u16,
    behaviour: Behaviour,
    state: &MinerState,
    seen: &MinerView<'_>,
    on_step: &mut dyn FnMut(usize, &StepStats),
) -> Result<(Update, MinerState), TrainingError> {
    let round = inputs.round;
    let id = inputs.base_id;
    let n = (seen.miners.len() as u16).max(1);
    // A shard no miner of the round is assigned.
    let mut foreign = ((uid % n + 1) % n).saturating_add(n);
    for _ in 0..seen.miners.len() {
        if !seen.miners.contains(&foreign) {
            break;
        }
        foreign = foreign.wrapping_add(1);
    }
    let mut honest =
        |inp: &RoundInputs<'_>, data_uid| train_round(inp, uid, data_uid, state, &mut *on_step);
    Ok(match behaviour {
        Behaviour::Honest => honest(inputs, uid)?,
        Behaviour::WrongData => honest(inputs, foreign)?,
        Behaviour::Stale => match seen.previous {
            Some(old) => {
                let stale = RoundInputs {
                    base: old,
                    ..*inputs
                };
                let (mut u, s) = honest(&stale, uid)?;
                u.base = id;
                (u, s)
            }
            None => honest(inputs, uid)?,
        },
        Behaviour::Noise | Behaviour::RescaledAggregate | Behaviour::Zeros => {
            let (u, s) = honest(inputs, uid)?;
            let real = u.to_dense();
            let norm = real.l2_norm();
            let mut fake = real.zeros_like();
            match behaviour {
                Behaviour::Noise => {
                    let mut rng = derive_rng("noise", &[round, u64::from(uid)]);
                    for t in fake.tensors.values_mut() {
                        t.data = normal_vec(&mut rng, t.data.len(), 1.0);
                    }
                }
                Behaviour::RescaledAggregate => {
                    for (name, t) in fake.tensors.iter_mut() {
                        if let Some(l) = seen.last_change.tensors.get(name) {
                            t.data.clone_from(&l.data);
                        }
                    }
                }
                _ => {}
            }
            let f = fake.l2_norm();
            if f > 0.0 {
                for t in fake.tensors.values_mut() {
                    t.data.iter_mut().for_each(|x| *x *= (norm / f) as f32);
                }
            }
            (Update::dense(round, uid, id, &fake), s)
        }
        Behaviour::Copy(_) => {
            let (_, s) = honest(inputs, uid)?;
            let mut u = seen
                .copy_of
                .cloned()
                .ok_or_else(|| TrainingError::InvalidInput("copy of nobody".into()))?;
            u.uid = uid;
            (u, s)
        }
    })
}

/// Bytes moved in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundBytes {
    /// Updates uploaded by all miners.
    pub upload: u64,
    /// What all miners download to reach the new checkpoint: the other accepted updates
    /// (to replay the outer step) or the checkpoint itself, whichever is smaller.
    pub download: u64,
}

impl RoundBytes {
    /// Both directions.
    pub fn total(&self) -> u64 {
        self.upload + self.download
    }
}

#[derive(Debug)]
struct SimMiner {
    uid: u16,
    behaviour: Behaviour,
    state: MinerState,
}

/// A validator and its miners.
#[derive(Debug)]
pub struct Network {
    run: RunConfig,
    corpus: Corpus,
    ownership: Ownership,
    validator: Validator,
    miners: Vec<SimMiner>,
    previous: Option<(ParamSet, Digest32)>,
    /// Bytes of every finished round.
    pub bytes: Vec<RoundBytes>,
}

impl Network {
    /// Miner `i` gets uid `i` and `behaviours[i]`.
    pub fn new(
        run: RunConfig,
        vcfg: ValidatorConfig,
        corpus: Corpus,
        behaviours: &[Behaviour],
    ) -> Result<Self, TrainingError> {
        let params = run.initial_params()?;
        let uids: Vec<u16> = (0..behaviours.len() as u16).collect();
        let ownership = Ownership::assign(run.model.num_local_experts, &uids, run.replication);
        let miners = behaviours
            .iter()
            .zip(&uids)
            .map(|(&behaviour, &uid)| SimMiner {
                uid,
                behaviour,
                state: MinerState::fresh(&params, &ownership, uid),
            })
            .collect();
        let validator = Validator::new(run.clone(), vcfg, &corpus, params)?;
        Ok(Self {
            run,
            corpus,
            ownership,
            validator,
            miners,
            previous: None,
            bytes: Vec::new(),
        })
    }

    /// The validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Runs one round.
    pub fn round(&mut self) -> Result<RoundReport, TrainingError> {
        let (params, id) = self.validator.checkpoint();
        let (params, id) = (params.clone(), id);
        let round = self.validator.round();
        let inputs = RoundInputs {
            run: &self.run,
            corpus: &self.corpus,
            base: &params,
            base_id: id,
            ownership: &self.ownership,
            round,
            round_seed: self.validator.round_seed(),
        };
        let uids: Vec<u16> = self.miners.iter().map(|m| m.uid).collect();
        let mut produced: BTreeMap<u16, (Update, MinerState)> = BTreeMap::new();
        let mut start_states: BTreeMap<u16, MinerState> = BTreeMap::new();
        // Copiers go last so that what they copy exists.
        let mut order: Vec<usize> = (0..self.miners.len()).collect();
        order.sort_by_key(|&i| matches!(self.miners[i].behaviour, Behaviour::Copy(_)));
        for &i in &order {
            let m = &self.miners[i];
            start_states.insert(m.uid, m.state.clone());
            let copy_of = match m.behaviour {
                Behaviour::Copy(victim) => produced.get(&victim).map(|(u, _)| u),
                _ => None,
            };
            let seen = MinerView {
                miners: &uids,
                previous: self.previous.as_ref().map(|(p, _)| p),
                last_change: self.validator.last_change(),
                copy_of,
            };
            let out = play_round(&inputs, m.uid, m.behaviour, &m.state, &seen, &mut |_, _| {})?;
            produced.insert(m.uid, out);
        }
        let commits: Vec<Commit> = order
            .iter()
            .map(|&i| {
                let uid = self.miners[i].uid;
                Commit {
                    uid,
                    update_hash: produced[&uid].0.commitment(),
                    state_hash: start_states[&uid].hash(),
                }
            })
            .collect();
        let reveals: BTreeMap<u16, Update> = produced
            .iter()
            .map(|(&u, (up, _))| (u, up.clone()))
            .collect();
        let target = self
            .validator
            .spot_check_target(&commits.iter().map(|c| c.uid).collect::<Vec<_>>());
        let replay_state = target.and_then(|t| start_states.get(&t));
        let report = self.validator.finish_round(
            &self.corpus,
            &self.ownership,
            &commits,
            &reveals,
            replay_state,
        )?;
        for m in &mut self.miners {
            if let Some((_, s)) = produced.remove(&m.uid) {
                m.state = s;
            }
        }
        self.bytes
            .push(round_bytes(&report, self.run.model.num_params()));
        self.previous = Some((params, id));
        Ok(report)
    }
}

/// Bytes of a round: every revealed update goes up once; every miner then fetches either
/// the other accepted updates or the new checkpoint (4 bytes per parameter), the smaller.
pub fn round_bytes(report: &RoundReport, num_params: usize) -> RoundBytes {
    let accepted: u64 = report
        .verdicts
        .iter()
        .filter(|v| v.rejection.is_none())
        .map(|v| v.bytes as u64)
        .sum();
    let checkpoint = 4 * num_params as u64;
    let mut out = RoundBytes::default();
    for v in &report.verdicts {
        out.upload += v.bytes as u64;
        let own = if v.rejection.is_none() {
            v.bytes as u64
        } else {
            0
        };
        out.download += (accepted - own).min(checkpoint);
    }
    out
}

/// What per-step data-parallel training would exchange for the tokens of one round:
/// every worker sends its full gradient and receives the averaged one on each of the
/// `inner_steps` steps (4 bytes per parameter each way: data-parallel training exchanges
/// f32 gradients, whatever encoding the network's updates use).
pub fn dataparallel_bytes_per_round(num_params: usize, workers: usize, inner_steps: usize) -> u64 {
    (inner_steps * workers * 2 * 4 * num_params) as u64
}
