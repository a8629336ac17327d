//! One training round, as pure logic (no sockets, files or clocks):
//!
//! 1. the validator publishes the checkpoint id and a round seed;
//! 2. each miner trains the whole model for `inner_steps` AdamW steps on its assigned shard,
//!    keeps the change to the parameters it owns (the shared backbone plus its experts) as
//!    its update, and commits to the hash of that update and of the optimizer state it
//!    started from;
//! 3. miners reveal; the validator checks commitments, layout, duplicates and norms,
//!    measures each update's held-out loss improvement and whether it helps the miner's
//!    assigned data more than random data, replays one miner bit-exactly, aggregates the
//!    accepted updates (each expert from its owners, the backbone from all) with a Nesterov
//!    outer step, and updates smoothed scores that become weights.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::checkpoint::checkpoint_id;
use crate::config::{expert_of, ModelConfig};
use crate::data::{
    assigned_batches, heldout_batches, random_train_batches, BatchShape, Corpus, HeldoutPart, Shard,
};
use crate::error::TrainingError;
use crate::model::{Batch, MoeModel};
use crate::optim::{AdamWConfig, AdamWState};
use crate::params::{Digest32, ParamSet};
use crate::rng::{below, derive_rng};
use crate::train::{StepStats, Trainer};
use crate::update::{encode_delta, TensorDelta, Update, ValueEncoding};

/// Everything miners and validators of one run agree on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    /// Run id (mixed into every shard).
    pub run: u64,
    /// The model's shape.
    pub model: ModelConfig,
    /// Seed of the initial weights.
    pub init_seed: u64,
    /// Inner optimizer.
    pub inner: AdamWConfig,
    /// Windows per inner step and their length.
    pub shape: BatchShape,
    /// Inner steps per round (H).
    pub inner_steps: usize,
    /// Outer (Nesterov) learning rate.
    pub outer_lr: f64,
    /// Outer momentum.
    pub outer_momentum: f64,
    /// Owners per expert.
    pub replication: usize,
    /// Top-k share kept per tensor (with error feedback); `None` sends dense updates.
    pub density: Option<f64>,
    /// How the values of updated matrices travel (f32 when a run file leaves it out).
    #[serde(default)]
    pub values: ValueEncoding,
}

impl RunConfig {
    /// A tiny run for tests.
    pub fn tiny() -> Self {
        Self {
            run: 1,
            model: ModelConfig::tiny(),
            init_seed: 0,
            inner: AdamWConfig {
                warmup_steps: 5,
                ..AdamWConfig::default()
            },
            shape: BatchShape {
                batch: 4,
                seq_len: 32,
            },
            inner_steps: 8,
            outer_lr: 1.0,
            outer_momentum: 0.0,
            replication: 1,
            density: None,
            values: ValueEncoding::Int8,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TrainingError> {
        self.model.validate()?;
        let bad = |w: &str| Err(TrainingError::InvalidConfig(w.to_string()));
        if self.inner_steps == 0 || self.shape.batch == 0 || self.shape.seq_len == 0 {
            return bad("inner_steps, batch and seq_len must be positive");
        }
        if self.shape.seq_len > self.model.max_position_embeddings {
            return bad("seq_len exceeds max_position_embeddings");
        }
        if !(self.outer_lr > 0.0 && (0.0..1.0).contains(&self.outer_momentum)) {
            return bad("outer_lr must be positive and outer_momentum in [0, 1)");
        }
        if self.replication == 0 {
            return bad("replication must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.inner.min_lr_ratio) {
            return bad("min_lr_ratio must be in [0, 1]");
        }
        if let Some(d) = self.density {
            if !(d > 0.0 && d <= 1.0) {
                return bad("density must be in (0, 1]");
            }
        }
        Ok(())
    }

    /// The initial checkpoint.
    pub fn initial_params(&self) -> Result<ParamSet, TrainingError> {
        MoeModel::init(&self.model, self.init_seed)?.params()
    }
}

/// Which miners own which experts: expert `e` goes to the `replication` miners following
/// position `e` in the sorted uid list, so every expert has an owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    owners: Vec<Vec<u16>>,
}

impl Ownership {
    /// Assigns `num_experts` experts to `miners`.
    pub fn assign(num_experts: usize, miners: &[u16], replication: usize) -> Self {
        let mut uids = miners.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let n = uids.len();
        let owners = (0..num_experts)
            .map(|e| {
                let mut o: Vec<u16> = (0..replication.min(n)).map(|j| uids[(e + j) % n]).collect();
                o.sort_unstable();
                o
            })
            .collect();
        Self { owners }
    }

    /// The owners of expert `e`.
    pub fn owners_of(&self, e: usize) -> &[u16] {
        self.owners.get(e).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `uid` trains parameter `name` (everyone trains the backbone).
    pub fn owns(&self, uid: u16, name: &str) -> bool {
        match expert_of(name) {
            None => true,
            Some(e) => self.owners_of(e).contains(&uid),
        }
    }
}

/// What a miner carries from round to round: the inner optimizer's state and the
/// compression residual. Committed by hash at the start of every round.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerState {
    /// AdamW moments of the whole model (a miner trains all of it locally).
    pub opt: AdamWState,
    /// Error-feedback residual (empty when updates are dense).
    pub residual: ParamSet,
}

impl MinerState {
    /// The state of a miner that has not trained yet: zero moments for every parameter,
    /// whichever experts `_uid` owns under `_ownership`, since every miner trains the whole
    /// model locally and sends only what it owns.
    pub fn fresh(params: &ParamSet, _ownership: &Ownership, _uid: u16) -> Self {
        Self {
            opt: AdamWState::new(params),
            residual: ParamSet::default(),
        }
    }

    /// Digest of the optimizer state and the residual.
    pub fn hash(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update(b"agora-training/miner-state/v1");
        h.update(self.opt.hash());
        h.update(self.residual.content_hash());
        h.finalize().into()
    }
}

/// Magic of [`MinerState::encode`].
const STATE_MAGIC: &[u8; 4] = b"AGMS";

impl MinerState {
    /// Canonical bytes (what a miner sends when its round is replayed): magic `AGMS`, the
    /// optimizer step (u64 LE), then the first moments, second moments and residual, each
    /// as a u32 length and a dense [`Update`] encoding (round 0, uid 0, zero base).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&self.opt.step.to_le_bytes());
        for set in [&self.opt.m, &self.opt.v, &self.residual] {
            let bytes = Update::dense(0, 0, [0; 32], set).encode();
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Parses [`Self::encode`]'s bytes (structure, bounds, finiteness; whether the layout
    /// fits the miner's parameters is checked when it is used).
    pub fn decode(bytes: &[u8]) -> Result<Self, TrainingError> {
        let bad = |why: &str| TrainingError::InvalidInput(format!("miner state: {why}"));
        let rest = bytes
            .strip_prefix(STATE_MAGIC.as_slice())
            .ok_or_else(|| bad("not a miner state (magic)"))?;
        let (step, mut rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("truncated"))?;
        let mut sets = Vec::with_capacity(3);
        for _ in 0..3 {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("truncated"))?;
            let len = u32::from_le_bytes(*len) as usize;
            let body = tail.get(..len).ok_or_else(|| bad("truncated"))?;
            let u = Update::decode(body)?;
            if u.tensors
                .values()
                .any(|(_, d)| !matches!(d, TensorDelta::Dense(_)))
            {
                return Err(bad("sparse tensors"));
            }
            sets.push(u.to_dense());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let residual = sets.pop().unwrap_or_default();
        let v = sets.pop().unwrap_or_default();
        let m = sets.pop().unwrap_or_default();
        m.check_same_layout(&v)?;
        Ok(Self {
            opt: AdamWState {
                step: u64::from_le_bytes(*step),
                m,
                v,
            },
            residual,
        })
    }

    /// Whether this state fits `params` and what `uid` sends under `ownership`: the
    /// optimizer covers the whole model (miners train all of it locally), the compression
    /// residual only the owned tensors, so it stops fitting when the set of miners, and so
    /// the expert assignment, changed.
    pub fn fits(&self, params: &ParamSet, ownership: &Ownership, uid: u16) -> bool {
        let owned = params.filter(|n| ownership.owns(uid, n));
        params.check_same_layout(&self.opt.m).is_ok()
            && (self.residual.is_empty() || owned.check_same_layout(&self.residual).is_ok())
    }
}

/// What a miner publishes before revealing its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The miner.
    pub uid: u16,
    /// [`Update::commitment`] of the update it will reveal.
    pub update_hash: Digest32,
    /// [`MinerState::hash`] of the state it started the round from.
    pub state_hash: Digest32,
}

/// The inputs of one miner's round, all public except the state.
#[derive(Debug, Clone, Copy)]
pub struct RoundInputs<'a> {
    /// The run.
    pub run: &'a RunConfig,
    /// The corpus.
    pub corpus: &'a Corpus,
    /// The checkpoint to train from.
    pub base: &'a ParamSet,
    /// Its id.
    pub base_id: Digest32,
    /// Expert owners.
    pub ownership: &'a Ownership,
    /// Round number.
    pub round: u64,
    /// The validator's round seed.
    pub round_seed: u64,
}

impl RoundInputs<'_> {
    /// The shard of `uid` this round.
    pub fn shard(&self, uid: u16) -> Shard {
        Shard {
            run: self.run.run,
            round: self.round,
            round_seed: self.round_seed,
            uid,
        }
    }
}

/// Trains `uid`'s owned parameters for the round on the batches of `data_uid`'s shard
/// (always `uid` for an honest miner) and returns the update and the next state.
/// `on_step` sees each step's losses (for progress bars and logs).
pub fn train_round(
    inp: &RoundInputs<'_>,
    uid: u16,
    data_uid: u16,
    state: &MinerState,
    on_step: &mut dyn FnMut(usize, &StepStats),
) -> Result<(Update, MinerState), TrainingError> {
    let owned = |n: &str| inp.ownership.owns(uid, n);
    let model = MoeModel::from_params(&inp.run.model, inp.base)?;
    // The whole model trains locally, so that the backbone and router co-adapt with experts
    // that keep learning (as they will once every owner's update is in); only the backbone
    // and the owned experts are sent. Frozen foreign experts made each miner's router favour
    // its own experts and left the backbone tuned to stale ones.
    let mut trainer = Trainer::new(
        model,
        inp.run.inner.clone(),
        |_| true,
        Some(state.opt.clone()),
    )?;
    let batches = assigned_batches(
        inp.corpus,
        inp.shard(data_uid),
        inp.run.inner_steps,
        inp.run.shape,
    )?;
    for (i, b) in batches.iter().enumerate() {
        let s = trainer.step(b)?;
        on_step(i, &s);
    }
    let delta = trainer.trainable().filter(owned).delta_from(inp.base)?;
    let (_, opt) = trainer.into_parts();
    let mut residual = state.residual.clone();
    let update = Update {
        round: inp.round,
        uid,
        base: inp.base_id,
        tensors: encode_delta(&delta, &mut residual, inp.run.density, inp.run.values)?,
    };
    Ok((update, MinerState { opt, residual }))
}

/// Why an update was not aggregated.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// The miner committed but revealed nothing.
    NotRevealed,
    /// The revealed update does not hash to the commitment.
    CommitMismatch,
    /// Wrong round, wrong uid or wrong base checkpoint.
    WrongRoundOrBase,
    /// A tensor the miner does not own, or one of the wrong shape, or a non-finite value.
    BadLayout(String),
    /// Nearly the same as the update of an earlier committer.
    Duplicate(u16),
    /// Nearly the same as the previous round's aggregate change.
    CopiesLastAggregate,
    /// Its norm is far from the round's median (or zero).
    NormOutlier,
    /// Applied alone, at the weight the aggregate gives it, it does not lower the held-out
    /// loss.
    NoHeldoutGain,
    /// The replay from the committed state did not reproduce it.
    ReplayMismatch,
    /// The miner failed a replay recently.
    Banned,
}

/// The validator's findings for one miner.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The miner.
    pub uid: u16,
    /// Why it was rejected, if it was.
    pub rejection: Option<Rejection>,
    /// L2 norm of the update.
    pub norm: f64,
    /// Relative held-out loss improvement when the update alone is applied, each tensor
    /// scaled by its weight in the aggregate (one over the number of updates carrying it).
    pub heldout_gain: f64,
    /// Loss improvement on a sample of its assigned batches.
    pub assigned_gain: f64,
    /// Loss improvement on random training batches.
    pub random_gain: f64,
    /// Whether the assigned-data gain beat the random-data gain (by the margin).
    pub data_test_passed: bool,
    /// Whether it was replayed and matched (`None`: not replayed).
    pub replay_ok: Option<bool>,
    /// Bytes of the revealed update.
    pub bytes: usize,
}

/// The outcome of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Round number.
    pub round: u64,
    /// Held-out loss before and after the outer step.
    pub heldout_before: f64,
    /// Held-out loss after the outer step.
    pub heldout_after: f64,
    /// Per miner, in commit order.
    pub verdicts: Vec<Verdict>,
    /// Id of the new checkpoint.
    pub new_id: Digest32,
}

/// Validator settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValidatorConfig {
    /// Held-out batches per evaluation.
    pub heldout_batches: usize,
    /// Assigned and random batches in the data test.
    pub probe_batches: usize,
    /// Updates whose norm is outside `[median / r, median * r]` are outliers.
    pub norm_ratio: f64,
    /// Cosine similarity above which two updates are duplicates.
    pub duplicate_cosine: f64,
    /// The assigned-data gain must exceed the random-data gain by this share of the
    /// random-data gain's magnitude.
    pub data_margin: f64,
    /// Weight of the newest round in the smoothed score.
    pub score_alpha: f64,
    /// Rounds a miner scores zero after failing a replay.
    pub ban_rounds: u64,
    /// The validator's private seed (spot-check order, probes, round seeds).
    pub secret: u64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            // With ten inner steps an honest update's gain on four batches was at times
            // below their noise, and its rejection left the other miner's backbone change
            // to be applied alone.
            heldout_batches: 16,
            probe_batches: 4,
            norm_ratio: 3.0,
            duplicate_cosine: 0.99,
            data_margin: 0.0,
            score_alpha: 0.3,
            ban_rounds: 1000,
            secret: 0,
        }
    }
}

/// The validator's state across rounds: the model, the outer momentum, smoothed scores.
#[derive(Debug)]
pub struct Validator {
    run: RunConfig,
    cfg: ValidatorConfig,
    params: ParamSet,
    id: Digest32,
    momentum: ParamSet,
    last_change: ParamSet,
    scores: BTreeMap<u16, f64>,
    banned_until: BTreeMap<u16, u64>,
    round: u64,
    heldout: Vec<Batch>,
    scratch: MoeModel,
}

impl Validator {
    /// Starts from `params` (the run's initial weights or a loaded checkpoint).
    pub fn new(
        run: RunConfig,
        cfg: ValidatorConfig,
        corpus: &Corpus,
        params: ParamSet,
    ) -> Result<Self, TrainingError> {
        run.validate()?;
        let scratch = MoeModel::from_params(&run.model, &params)?;
        let heldout = heldout_batches(
            corpus,
            HeldoutPart::Validation,
            cfg.heldout_batches.max(1),
            run.shape,
        )?;
        let id = checkpoint_id(&run.model, &params)?;
        Ok(Self {
            momentum: params.zeros_like(),
            last_change: ParamSet::default(),
            scores: BTreeMap::new(),
            banned_until: BTreeMap::new(),
            round: 0,
            run,
            cfg,
            params,
            id,
            heldout,
            scratch,
        })
    }

    /// The current round number.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The current checkpoint and its id.
    pub fn checkpoint(&self) -> (&ParamSet, Digest32) {
        (&self.params, self.id)
    }

    /// The change the last outer step made (public: anyone can diff two checkpoints).
    pub fn last_change(&self) -> &ParamSet {
        &self.last_change
    }

    /// The seed published with the round.
    pub fn round_seed(&self) -> u64 {
        round_seed(self.cfg.secret, self.round)
    }

    /// The miner to replay this round, chosen after commits close: each epoch of
    /// `miners.len()` rounds walks a fresh secret permutation, so every miner is replayed
    /// once per epoch and none can tell in advance when.
    pub fn spot_check_target(&self, miners: &[u16]) -> Option<u16> {
        let mut uids = miners.to_vec();
        uids.sort_unstable();
        uids.dedup();
        let n = uids.len() as u64;
        if n == 0 {
            return None;
        }
        let epoch = self.round / n;
        let mut rng = derive_rng("spot-check", &[self.cfg.secret, epoch]);
        for i in (1..uids.len()).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            uids.swap(i, j);
        }
        uids.get((self.round % n) as usize).copied()
    }

    /// Records a zero sample for miners that were asked to train this round but did not
    /// commit (timeout, refusal, unreachable): their smoothed score decays as if they had
    /// sent a rejected update. Call before [`Self::finish_round`].
    pub fn record_absent(&mut self, uids: &[u16]) {
        for &uid in uids {
            let s = self.scores.entry(uid).or_insert(0.0);
            *s *= 1.0 - self.cfg.score_alpha;
        }
    }

    /// Forgets uids that are no longer miners (deregistered, or their slot changed hands).
    pub fn forget(&mut self, uids: &[u16]) {
        for uid in uids {
            self.scores.remove(uid);
            self.banned_until.remove(uid);
        }
    }

    /// Smoothed scores by uid.
    pub fn scores(&self) -> &BTreeMap<u16, f64> {
        &self.scores
    }

    /// Scores normalised to sum to one (all zero when nobody has earned anything).
    pub fn weights(&self) -> Vec<(u16, f64)> {
        let sum: f64 = self.scores.values().sum();
        self.scores
            .iter()
            .map(|(&u, &s)| (u, if sum > 0.0 { s / sum } else { 0.0 }))
            .collect()
    }

    fn eval_with(&self, delta: &ParamSet, batches: &[Batch]) -> Result<f64, TrainingError> {
        let mut p = self.params.filter(|n| delta.tensors.contains_key(n));
        p.add_scaled(delta, 1.0)?;
        self.scratch.set_params(&p)?;
        let loss = self.scratch.eval_loss(batches);
        self.scratch
            .set_params(&self.params.filter(|n| delta.tensors.contains_key(n)))?;
        loss
    }

    /// Scores the revealed updates of the round, aggregates the accepted ones and advances
    /// to the next round. `commits` are in commit order; `reveals` holds what each miner
    /// revealed; `replay_state` is the committed state of [`Self::spot_check_target`] if it
    /// sent one.
    pub fn finish_round(
        &mut self,
        corpus: &Corpus,
        ownership: &Ownership,
        commits: &[Commit],
        reveals: &BTreeMap<u16, Update>,
        replay_state: Option<&MinerState>,
    ) -> Result<RoundReport, TrainingError> {
        let miners: Vec<u16> = commits.iter().map(|c| c.uid).collect();
        let target = self.spot_check_target(&miners);
        let round_seed = self.round_seed();
        let heldout_before = self.scratch.eval_loss(&self.heldout)?;
        let probe_seed = [self.cfg.secret, self.round, 1];
        let random =
            random_train_batches(corpus, &probe_seed, self.cfg.probe_batches, self.run.shape)?;
        let random_before = self.scratch.eval_loss(&random)?;
        let mut verdicts = Vec::new();
        let mut deltas: Vec<Option<ParamSet>> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for c in commits {
            let mut v = Verdict {
                uid: c.uid,
                rejection: None,
                norm: 0.0,
                heldout_gain: 0.0,
                assigned_gain: 0.0,
                random_gain: 0.0,
                data_test_passed: false,
                replay_ok: None,
                bytes: 0,
            };
            let delta = match reveals.get(&c.uid) {
                _ if !seen.insert(c.uid) => {
                    v.rejection = Some(Rejection::Duplicate(c.uid));
                    None
                }
                None => {
                    v.rejection = Some(Rejection::NotRevealed);
                    None
                }
                Some(u) => {
                    v.bytes = u.encode().len();
                    match self.check_structure(c, u, ownership) {
                        Ok(d) => {
                            v.norm = d.l2_norm();
                            Some(d)
                        }
                        Err(r) => {
                            v.rejection = Some(r);
                            None
                        }
                    }
                }
            };
            verdicts.push(v);
            deltas.push(delta);
        }
        // Duplicates of an earlier committer, or of last round's public change.
        for i in 0..deltas.len() {
            let Some(di) = &deltas[i] else { continue };
            let mut why = None;
            if cosine(di, &self.last_change) > self.cfg.duplicate_cosine {
                why = Some(Rejection::CopiesLastAggregate);
            }
            for (j, dj) in deltas.iter().enumerate().take(i) {
                if why.is_none()
                    && dj
                        .as_ref()
                        .is_some_and(|dj| cosine(di, dj) > self.cfg.duplicate_cosine)
                {
                    why = Some(Rejection::Duplicate(verdicts[j].uid));
                }
            }
            if why.is_some() {
                verdicts[i].rejection = why;
                deltas[i] = None;
            }
        }
        // Norm outliers against the median of the remaining updates.
        let mut norms: Vec<f64> = deltas
            .iter()
            .zip(&verdicts)
            .filter(|(d, _)| d.is_some())
            .map(|(_, v)| v.norm)
            .collect();
        norms.sort_by(f64::total_cmp);
        let median = norms.get(norms.len() / 2).copied().unwrap_or(0.0);
        for (d, v) in deltas.iter_mut().zip(verdicts.iter_mut()) {
            if d.is_some()
                && (v.norm == 0.0
                    || v.norm > median * self.cfg.norm_ratio
                    || v.norm < median / self.cfg.norm_ratio)
            {
                v.rejection = Some(Rejection::NormOutlier);
                *d = None;
            }
        }
        // Held-out gain and the assigned-versus-random data test.
        let inputs = RoundInputs {
            run: &self.run,
            corpus,
            base: &self.params,
            base_id: self.id,
            ownership,
            round: self.round,
            round_seed,
        };
        // Each tensor enters the aggregate averaged over the updates that carry it, so an
        // update is judged at that weight: a backbone change that helps as one of n averaged
        // changes can overshoot on its own (each miner's endpoint carries its own noise).
        let mut carriers: BTreeMap<String, usize> = BTreeMap::new();
        for d in deltas.iter().flatten() {
            for name in d.tensors.keys() {
                *carriers.entry(name.clone()).or_insert(0) += 1;
            }
        }
        for (d, v) in deltas.iter_mut().zip(verdicts.iter_mut()) {
            let Some(delta) = d.as_ref() else { continue };
            let mut weighted = delta.clone();
            for (name, t) in weighted.tensors.iter_mut() {
                let share = 1.0 / carriers.get(name).copied().unwrap_or(1).max(1) as f32;
                t.data.iter_mut().for_each(|x| *x *= share);
            }
            let after = self.eval_with(&weighted, &self.heldout)?;
            v.heldout_gain = (heldout_before - after) / heldout_before;
            let assigned = self.probe_batches(corpus, &inputs, v.uid)?;
            let assigned_before = self.scratch.eval_loss(&assigned)?;
            v.assigned_gain = assigned_before - self.eval_with(delta, &assigned)?;
            v.random_gain = random_before - self.eval_with(delta, &random)?;
            if v.heldout_gain <= 0.0 {
                v.rejection = Some(Rejection::NoHeldoutGain);
            }
            // Early in training most of what any update teaches is generic, so the margin
            // is small and noisy: a failed test costs the round's score, not aggregation
            // (an update that lowers held-out loss still helps the model).
            v.data_test_passed =
                v.assigned_gain > v.random_gain + self.cfg.data_margin * v.random_gain.abs();
        }
        // Bit-exact replay of one miner from its committed state.
        if let Some(t) = target {
            if let Some(i) = commits.iter().position(|c| c.uid == t) {
                let ok = match (replay_state, reveals.get(&t)) {
                    (Some(s), Some(u)) if s.hash() == commits[i].state_hash => {
                        match train_round(&inputs, t, t, s, &mut |_, _| {}) {
                            Ok((replayed, _)) => replayed.encode() == u.encode(),
                            Err(_) => false,
                        }
                    }
                    _ => false,
                };
                verdicts[i].replay_ok = Some(ok);
                if !ok {
                    verdicts[i].rejection = Some(Rejection::ReplayMismatch);
                    self.banned_until
                        .insert(t, self.round + self.cfg.ban_rounds);
                    self.scores.insert(t, 0.0);
                }
            }
        }
        for (d, v) in deltas.iter_mut().zip(verdicts.iter_mut()) {
            let banned = self
                .banned_until
                .get(&v.uid)
                .is_some_and(|&r| r > self.round);
            if banned && v.rejection.is_none() {
                v.rejection = Some(Rejection::Banned);
            }
            if v.rejection.is_some() {
                *d = None;
            }
        }
        // Scores: smoothed relative held-out gain of accepted updates that pass the data test.
        for (d, v) in deltas.iter().zip(&verdicts) {
            let raw = if d.is_some() && v.data_test_passed {
                v.heldout_gain.max(0.0)
            } else {
                0.0
            };
            let s = self.scores.entry(v.uid).or_insert(0.0);
            *s = self.cfg.score_alpha * raw + (1.0 - self.cfg.score_alpha) * *s;
        }
        self.outer_step(ownership, &deltas, &verdicts)?;
        let heldout_after = self.scratch.eval_loss(&self.heldout)?;
        self.round += 1;
        Ok(RoundReport {
            round: self.round - 1,
            heldout_before,
            heldout_after,
            verdicts,
            new_id: self.id,
        })
    }

    fn probe_batches(
        &self,
        corpus: &Corpus,
        inputs: &RoundInputs<'_>,
        uid: u16,
    ) -> Result<Vec<Batch>, TrainingError> {
        let all = assigned_batches(
            corpus,
            inputs.shard(uid),
            self.run.inner_steps,
            self.run.shape,
        )?;
        let mut rng = derive_rng("probe-pick", &[self.cfg.secret, self.round, u64::from(uid)]);
        Ok((0..self.cfg.probe_batches.max(1))
            .map(|_| all[below(&mut rng, all.len() as u64) as usize].clone())
            .collect())
    }

    fn check_structure(
        &self,
        c: &Commit,
        u: &Update,
        ownership: &Ownership,
    ) -> Result<ParamSet, Rejection> {
        if u.commitment() != c.update_hash {
            return Err(Rejection::CommitMismatch);
        }
        if u.round != self.round || u.uid != c.uid || u.base != self.id {
            return Err(Rejection::WrongRoundOrBase);
        }
        let owned = self.params.filter(|n| ownership.owns(c.uid, n));
        let d = u.to_dense();
        owned
            .check_same_layout(&d)
            .map_err(|e| Rejection::BadLayout(e.to_string()))?;
        if !d.all_finite() {
            return Err(Rejection::BadLayout("non-finite values".into()));
        }
        Ok(d)
    }

    /// Averages accepted updates per tensor (an expert over its accepted owners, the
    /// backbone over everyone accepted) into a pseudo-gradient and takes a Nesterov step.
    fn outer_step(
        &mut self,
        _ownership: &Ownership,
        deltas: &[Option<ParamSet>],
        _verdicts: &[Verdict],
    ) -> Result<(), TrainingError> {
        let accepted: Vec<&ParamSet> = deltas.iter().flatten().collect();
        let old = self.params.clone();
        let mu = self.run.outer_momentum as f32;
        let lr = self.run.outer_lr as f32;
        for (name, p) in self.params.tensors.iter_mut() {
            let contributors: Vec<&[f32]> = accepted
                .iter()
                .filter_map(|d| d.tensors.get(name).map(|t| t.data.as_slice()))
                .collect();
            let Some(m) = self.momentum.tensors.get_mut(name) else {
                continue;
            };
            let k = contributors.len() as f32;
            for (i, (x, u)) in p.data.iter_mut().zip(m.data.iter_mut()).enumerate() {
                let mut avg = 0.0f32;
                for c in &contributors {
                    avg += c[i];
                }
                // The pseudo-gradient points against the average change.
                let g = if k > 0.0 { -avg / k } else { 0.0 };
                *u = mu * *u + g;
                *x -= lr * (g + mu * *u);
            }
        }
        self.last_change = self.params.delta_from(&old)?;
        self.scratch.set_params(&self.params)?;
        self.id = checkpoint_id(&self.run.model, &self.params)?;
        Ok(())
    }
}

/// The seed a validator with `secret` publishes for `round`.
pub fn round_seed(secret: u64, round: u64) -> u64 {
    below(&mut derive_rng("round-seed", &[secret, round]), u64::MAX)
}

/// Trains the whole model in one process on exactly the tokens `miners` miners would see
/// in `rounds` rounds: step `s` of round `r` takes every miner's batch `s` of round `r`
/// together. This is the baseline the network is measured against.
pub fn train_centralized(
    run: &RunConfig,
    corpus: &Corpus,
    miners: u16,
    rounds: u64,
    secret: u64,
    on_step: &mut dyn FnMut(u64, &StepStats),
) -> Result<MoeModel, TrainingError> {
    run.validate()?;
    if miners == 0 {
        return Err(TrainingError::InvalidConfig(
            "the baseline needs the tokens of at least one miner".into(),
        ));
    }
    let model = MoeModel::init(&run.model, run.init_seed)?;
    let mut trainer = Trainer::new(model, run.inner.clone(), |_| true, None)?;
    let mut step = 0u64;
    for round in 0..rounds {
        let shards: Vec<Vec<Batch>> = (0..miners)
            .map(|uid| {
                let shard = Shard {
                    run: run.run,
                    round,
                    round_seed: round_seed(secret, round),
                    uid,
                };
                assigned_batches(corpus, shard, run.inner_steps, run.shape)
            })
            .collect::<Result<_, _>>()?;
        for s in 0..run.inner_steps {
            let mut batch = shards[0][s].clone();
            for shard in &shards[1..] {
                batch = batch.concat(&shard[s])?;
            }
            let stats = trainer.step(&batch)?;
            on_step(step, &stats);
            step += 1;
        }
    }
    Ok(trainer.into_parts().0)
}

/// Cosine similarity over shared names (0 when either side is zero).
pub fn cosine(a: &ParamSet, b: &ParamSet) -> f64 {
    let dot = a.dot(b);
    let na = a.filter(|n| b.tensors.contains_key(n)).l2_norm();
    let nb = b.filter(|n| a.tensors.contains_key(n)).l2_norm();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miner_state_bytes_round_trip_and_reject_garbage() {
        let run = RunConfig::tiny();
        let params = run.initial_params().unwrap();
        let own = Ownership::assign(run.model.num_local_experts, &[3, 5], 1);
        let mut state = MinerState::fresh(&params, &own, 5);
        state.opt.step = 7;
        if let Some(t) = state.opt.m.tensors.values_mut().next() {
            t.data[0] = 0.25;
        }
        let bytes = state.encode();
        let back = MinerState::decode(&bytes).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.hash(), state.hash());
        // The optimizer covers the whole model: a fresh state fits any miner.
        assert!(back.fits(&params, &own, 5));
        assert!(back.fits(&params, &own, 3));
        // The compression residual covers what uid 5 sends, which uid 3 does not.
        let mut with_residual = back.clone();
        with_residual.residual = params.filter(|n| own.owns(5, n));
        assert!(with_residual.fits(&params, &own, 5));
        assert!(!with_residual.fits(&params, &own, 3));
        assert!(!with_residual.fits(&params.filter(|n| own.owns(5, n)), &own, 5));
        for cut in [0, 3, 12, bytes.len() - 1] {
            assert!(MinerState::decode(&bytes[..cut]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(1);
        assert!(MinerState::decode(&extra).is_err());
    }

    #[test]
    fn absent_miners_decay() {
        let run = RunConfig::tiny();
        let corpus = Corpus::synthetic(0, 50_000);
        let params = run.initial_params().unwrap();
        let mut v = Validator::new(run, ValidatorConfig::default(), &corpus, params).unwrap();
        v.scores.insert(2, 1.0);
        v.record_absent(&[2, 4]);
        assert!((v.scores()[&2] - 0.7).abs() < 1e-12);
        assert_eq!(v.scores()[&4], 0.0);
        v.forget(&[2]);
        assert!(!v.scores().contains_key(&2));
    }
}
