//! The training miner's axon: trains the round it is asked to, commits, reveals on request.

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use agora_subnet::metrics::NeuronMetrics;
use agora_subnet::AxonRoutes;
use agora_wire::{ApiError, Caller};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header::CONTENT_TYPE, StatusCode};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{checkpoint_id, from_safetensors};
use crate::data::Corpus;
use crate::params::{Digest32, ParamSet};
use crate::protocol::{
    corpus_fingerprint, max_payload_bytes, CommitResponse, RevealRequest, RoundRequest,
    REVEAL_ROUTE, ROUND_ROUTE, STATE_ROUTE,
};
use crate::round::{Commit, MinerState, Ownership, RoundInputs};
use crate::sim::{play_round, Behaviour, MinerView};
use crate::train::StepStats;

/// What the miner remembers of its last round until the validator asks for it.
struct Pending {
    round: u64,
    update: Vec<u8>,
    start_state: Vec<u8>,
}

#[derive(Default)]
struct Memory {
    /// The last two checkpoints trained from, newest last (the older one is what a stale
    /// miner trains from and what the last public change is measured against).
    checkpoints: Vec<(Digest32, Arc<ParamSet>)>,
    state: Option<MinerState>,
    pending: Option<Pending>,
}

/// How a training miner works, apart from its corpus.
#[derive(Debug, Clone)]
pub struct MinerSettings {
    /// Honest, or one of the attacks (for testing validators).
    pub behaviour: Behaviour,
    /// Runs whose model has more parameters are refused.
    pub max_params: usize,
    /// The miner's uid, set once the axon is on chain (rounds for other uids are refused).
    pub uid: Arc<OnceLock<u16>>,
    /// Downloads checkpoints ([`download_client`]).
    pub http: reqwest::Client,
}

/// The HTTP client checkpoints are downloaded with.
pub fn download_client() -> Result<reqwest::Client, crate::TrainingError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| crate::TrainingError::InvalidInput(format!("http client: {e}")))
}

/// A training miner: its corpus, its settings, and what it carries between rounds.
pub struct TrainingMiner {
    corpus: Arc<Corpus>,
    fingerprint: Digest32,
    behaviour: Behaviour,
    max_params: usize,
    uid: Arc<OnceLock<u16>>,
    http: reqwest::Client,
    metrics: Arc<NeuronMetrics>,
    /// One round at a time: the state moves from round to round.
    memory: tokio::sync::Mutex<Memory>,
}

impl std::fmt::Debug for TrainingMiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingMiner")
            .field("corpus", &self.corpus.source)
            .field("behaviour", &self.behaviour)
            .field("max_params", &self.max_params)
            .field("uid", &self.uid.get())
            .finish()
    }
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

fn octets(bytes: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

impl TrainingMiner {
    /// A miner training on `corpus` as `settings` say; `metrics` are the axon's counters.
    pub fn new(corpus: Corpus, settings: MinerSettings, metrics: Arc<NeuronMetrics>) -> Self {
        Self {
            fingerprint: corpus_fingerprint(&corpus),
            corpus: Arc::new(corpus),
            behaviour: settings.behaviour,
            max_params: settings.max_params,
            uid: settings.uid,
            http: settings.http,
            metrics,
            memory: tokio::sync::Mutex::new(Memory::default()),
        }
    }

    /// The axon's routes.
    pub fn routes(self: Arc<Self>) -> AxonRoutes {
        let signed = Router::new()
            .route(ROUND_ROUTE, post(round))
            .route(REVEAL_ROUTE, post(reveal))
            .route(STATE_ROUTE, post(committed_state))
            .with_state(self);
        let public = Router::new().route("/health", get(|| async { "ok" }));
        AxonRoutes { signed, public }
    }

    /// Downloads checkpoint `id` from `url` (at most `limit` bytes) and checks that its
    /// content hashes to `id`.
    async fn download(
        &self,
        url: &str,
        req: &RoundRequest,
        id: Digest32,
    ) -> Result<ParamSet, ApiError> {
        let limit = max_payload_bytes(&req.run);
        let fail = |e: String| refused(format!("checkpoint download from {url}: {e}"));
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("status {}", resp.status())));
        }
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(fail(format!("more than {limit} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if bytes.len() + chunk.len() > limit {
                return Err(fail(format!("more than {limit} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let model = req.run.model.clone();
        let params = tokio::task::spawn_blocking(move || -> Result<ParamSet, String> {
            let params = from_safetensors(&model, &bytes).map_err(|e| e.to_string())?;
            let actual = checkpoint_id(&model, &params).map_err(|e| e.to_string())?;
            if actual != id {
                return Err(format!(
                    "content hashes to {}, not the requested {}",
                    hex::encode(actual),
                    hex::encode(id)
                ));
            }
            Ok(params)
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(fail)?;
        Ok(params)
    }

    async fn train(&self, req: RoundRequest) -> Result<CommitResponse, ApiError> {
        let my_uid = *self
            .uid
            .get()
            .ok_or_else(|| refused("the miner is not serving yet"))?;
        let checked = req
            .check(my_uid, &self.fingerprint, self.max_params)
            .map_err(invalid)?;
        let id = checked.checkpoint;
        let mut memory = self.memory.lock().await;
        let cached = memory
            .checkpoints
            .iter()
            .find(|(cid, _)| *cid == id)
            .map(|(_, p)| p.clone());
        let base = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(self.download(&req.checkpoint_url, &req, id).await?);
                tracing::info!(checkpoint = %hex::encode(id), "checkpoint downloaded");
                memory.checkpoints.push((id, p.clone()));
                let excess = memory.checkpoints.len().saturating_sub(2);
                memory.checkpoints.drain(..excess);
                p
            }
        };
        let previous = memory
            .checkpoints
            .iter()
            .rev()
            .find(|(cid, _)| *cid != id)
            .map(|(_, p)| p.clone());
        let ownership = Ownership::assign(
            req.run.model.num_local_experts,
            &req.miners,
            req.run.replication,
        );
        // A new set of miners reassigns experts; the compression residual of experts this
        // miner no longer sends is useless, so it starts afresh (and commits to that).
        let state = match memory.state.take() {
            Some(s) if s.fits(&base, &ownership, my_uid) => s,
            _ => MinerState::fresh(&base, &ownership, my_uid),
        };
        let corpus = self.corpus.clone();
        let behaviour = self.behaviour;
        let round = req.round;
        let started = Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let last_change = match &previous {
                Some(old) => base.delta_from(old).unwrap_or_default(),
                None => ParamSet::default(),
            };
            let inputs = RoundInputs {
                run: &req.run,
                corpus: &corpus,
                base: &base,
                base_id: id,
                ownership: &ownership,
                round: req.round,
                round_seed: req.round_seed,
            };
            let seen = MinerView {
                miners: &req.miners,
                previous: previous.as_deref(),
                last_change: &last_change,
                copy_of: None,
            };
            let mut losses = Vec::new();
            let bar = step_bar(req.run.inner_steps, req.round);
            let out = play_round(
                &inputs,
                my_uid,
                behaviour,
                &state,
                &seen,
                &mut |_, s: &StepStats| {
                    losses.push(s.lm);
                    bar.inc(1);
                    bar.set_message(format!("loss {:.4}", s.lm));
                },
            );
            bar.finish_and_clear();
            (out, state, losses)
        });
        let (out, start_state, losses) = job.await.map_err(|e| internal(e.to_string()))?;
        let (update, next) = match out {
            Ok(x) => x,
            Err(e) => {
                // Keep the state the round started from: nothing was committed.
                memory.state = Some(start_state);
                return Err(refused(format!("training failed: {e}")));
            }
        };
        let commit = Commit {
            uid: my_uid,
            update_hash: update.commitment(),
            state_hash: start_state.hash(),
        };
        tracing::info!(
            round,
            steps = losses.len(),
            loss_first = losses.first().copied().unwrap_or(f32::NAN),
            loss_last = losses.last().copied().unwrap_or(f32::NAN),
            seconds = started.elapsed().as_secs_f64(),
            behaviour = ?behaviour,
            "round trained"
        );
        memory.pending = Some(Pending {
            round,
            update: update.encode(),
            start_state: start_state.encode(),
        });
        memory.state = Some(next);
        Ok(CommitResponse::from_commit(&commit, round))
    }

    async fn pending_part(
        &self,
        body: &[u8],
        part: fn(&Pending) -> &Vec<u8>,
    ) -> Result<Vec<u8>, ApiError> {
        let req: RevealRequest =
            serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let memory = self.memory.lock().await;
        match &memory.pending {
            Some(p) if p.round == req.round => Ok(part(p).clone()),
            Some(p) => Err(refused(format!(
                "nothing committed for round {}; the last committed round is {}",
                req.round, p.round
            ))),
            None => Err(refused("nothing committed yet")),
        }
    }
}

/// A bar over the round's inner steps when stderr is a terminal, else a hidden one.
fn step_bar(steps: usize, round: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("round {prefix} {bar:30} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(round.to_string());
    bar
}

/// Only callers with stake (validators) may start a round: training costs the miner real
/// work, so an unstaked registered hotkey must not be able to make it train.
fn require_stake(caller: &Caller) -> Result<(), ApiError> {
    match &caller.role {
        Some(r) if r.stake_rao > 0 || r.validator_permit => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only staked validators may ask for training rounds",
        )),
    }
}

async fn round(State(miner): State<Arc<TrainingMiner>>, caller: Caller, body: Bytes) -> Response {
    let result = async {
        require_stake(&caller)?;
        let req: RoundRequest =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        miner.train(req).await
    }
    .await;
    count(&miner, result.is_ok());
    match result {
        Ok(commit) => Json(commit).into_response(),
        Err(e) => {
            tracing::warn!(error = %e.message, "round refused");
            e.into_response()
        }
    }
}

async fn reveal(State(miner): State<Arc<TrainingMiner>>, body: Bytes) -> Response {
    let result = miner.pending_part(&body, |p| &p.update).await;
    count(&miner, result.is_ok());
    result.map_or_else(IntoResponse::into_response, octets)
}

async fn committed_state(State(miner): State<Arc<TrainingMiner>>, body: Bytes) -> Response {
    let result = miner.pending_part(&body, |p| &p.start_state).await;
    count(&miner, result.is_ok());
    result.map_or_else(IntoResponse::into_response, octets)
}

fn count(miner: &TrainingMiner, ok: bool) {
    NeuronMetrics::inc(if ok {
        &miner.metrics.requests_ok
    } else {
        &miner.metrics.requests_failed
    });
}
