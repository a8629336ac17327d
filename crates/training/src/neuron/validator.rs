//! The training validator's loop. A round is a synchronised commit/reveal across all miners,
//! which the framework's per-query `ValidatorLogic` does not express, so this loop drives
//! [`round::Validator`](crate::round::Validator) itself (in the order
//! [`sim::Network::round`](crate::sim::Network::round) does) and uses the framework for the
//! chain: registration, stake, the metagraph and [`WeightSetter`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_client::{Client, MetagraphCache};
use agora_primitives::{crypto::Pair, AccountId, NetUid};
use agora_subnet::scores::weights_from_scores;
use agora_subnet::{axon_url, chain, SubnetError, WeightSetter};
use agora_wire::{ClientConfig, WireClient};
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::{FuturesUnordered, StreamExt};
use http::{header::CONTENT_TYPE, Method, StatusCode};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use crate::checkpoint::{self, WEIGHTS_FILE};
use crate::data::Corpus;
use crate::error::TrainingError;
use crate::params::Digest32;
use crate::protocol::{
    corpus_fingerprint, max_payload_bytes, max_state_bytes, parse_digest, CommitResponse,
    RevealRequest, RoundRequest, CHECKPOINT_ROUTE, REVEAL_ROUTE, ROUND_ROUTE, STATE_ROUTE,
};
use crate::round::{
    Commit, MinerState, Ownership, RoundReport, RunConfig, Validator, ValidatorConfig,
};
use crate::update::Update;

/// The file in the data directory naming the latest checkpoint directory (one line, an
/// absolute path): what `agora miner inference --model "$(cat .../latest)"` serves.
pub const LATEST_FILE: &str = "latest";
/// The file in the data directory with one JSON line per finished round.
pub const ROUNDS_FILE: &str = "rounds.jsonl";
/// The folder in the data directory holding the checkpoints, one folder per id.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Where and how a training validator runs.
#[derive(Debug)]
pub struct TrainingValidatorConfig {
    /// Node RPC URL (`ws://` so that the metagraph follows new heads).
    pub rpc_url: String,
    /// The subnet.
    pub netuid: NetUid,
    /// Pays the registration burn and the stake.
    pub coldkey: Pair,
    /// Signs requests and weights.
    pub hotkey: Pair,
    /// Stake the coldkey keeps on the hotkey, rao.
    pub stake_rao: u64,
    /// Pause between rounds.
    pub round_interval: Duration,
    /// How long miners have to download, train and commit.
    pub round_timeout: Duration,
    /// How long miners have to reveal.
    pub reveal_timeout: Duration,
    /// Blocks between weight submissions (raised to the subnet's rate limit).
    pub weights_every_blocks: u64,
    /// The run miners train.
    pub run: RunConfig,
    /// The checks and scores.
    pub scoring: ValidatorConfig,
    /// The corpus (miners must hold the same).
    pub corpus: Corpus,
    /// Checkpoints, the `latest` pointer and the round log go here.
    pub data_dir: PathBuf,
    /// Where to serve checkpoints to miners.
    pub checkpoint_listen: SocketAddr,
    /// The base URL miners download from, when it is not `http://<listen address>`.
    pub checkpoint_url: Option<String>,
    /// Checkpoints kept on disk (older ones are deleted); at least 2.
    pub keep_checkpoints: usize,
}

/// One miner's line in a round's record.
#[derive(Debug, Serialize)]
struct MinerRecord {
    uid: u16,
    rejection: Option<String>,
    heldout_gain: f64,
    data_test_passed: bool,
    replay_ok: Option<bool>,
    bytes: usize,
    score: f64,
}

/// A finished round as `rounds.jsonl` records it.
#[derive(Debug, Serialize)]
struct RoundRecord {
    round: u64,
    checkpoint: String,
    checkpoint_dir: String,
    heldout_before: f64,
    heldout_after: f64,
    miners: Vec<MinerRecord>,
    absent: Vec<u16>,
    seconds: f64,
}

/// A miner the metagraph lists with an axon.
#[derive(Debug, Clone)]
struct Target {
    uid: u16,
    hotkey: AccountId,
    url: String,
}

struct Served {
    dir: PathBuf,
}

async fn serve_checkpoint(
    State(served): State<Arc<Served>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    // The id is checked as 64 hex digits before it touches a path.
    let id = match parse_digest("checkpoint id", &id) {
        Ok(id) => hex::encode(id),
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let path = served
        .dir
        .join(CHECKPOINTS_DIR)
        .join(&id)
        .join(WEIGHTS_FILE);
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, format!("no checkpoint {id}")).into_response(),
    }
}

fn checkpoint_dir(data_dir: &Path, id: &Digest32) -> PathBuf {
    data_dir.join(CHECKPOINTS_DIR).join(hex::encode(id))
}

/// Writes `text` to `path` through a temporary file and a rename, so readers never see
/// half of it.
fn write_atomically(path: &Path, text: &[u8]) -> Result<(), TrainingError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| TrainingError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainingError::io(path, e))
}

/// Saves the validator's checkpoint, points `latest` at it and deletes checkpoints beyond
/// the newest `keep`. Returns the checkpoint's directory.
fn publish(
    data_dir: &Path,
    run: &RunConfig,
    validator: &Validator,
    kept: &mut Vec<Digest32>,
    keep: usize,
) -> Result<PathBuf, TrainingError> {
    let (params, id) = validator.checkpoint();
    let dir = checkpoint_dir(data_dir, &id);
    checkpoint::save(&dir, &run.model, params)?;
    write_atomically(
        &data_dir.join(LATEST_FILE),
        format!("{}\n", dir.display()).as_bytes(),
    )?;
    kept.retain(|k| *k != id);
    kept.push(id);
    let excess = kept.len().saturating_sub(keep.max(2));
    for old in kept.drain(..excess) {
        let _ = std::fs::remove_dir_all(checkpoint_dir(data_dir, &old));
    }
    Ok(dir)
}

/// The checkpoint `latest` names, if it exists and fits `run`'s model (a restarted
/// validator continues from it).
fn resume(data_dir: &Path, run: &RunConfig) -> Option<crate::params::ParamSet> {
    let text = std::fs::read_to_string(data_dir.join(LATEST_FILE)).ok()?;
    match checkpoint::load(Path::new(text.trim()), None) {
        Ok((cfg, params, id)) if cfg == run.model => {
            tracing::info!(checkpoint = %hex::encode(id), "continuing from the latest checkpoint");
            Some(params)
        }
        Ok(_) => {
            tracing::warn!("the latest checkpoint is for another model; starting afresh");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "the latest checkpoint does not load; starting afresh");
            None
        }
    }
}

/// Registers and stakes (if needed), serves checkpoints, then runs rounds until `shutdown`
/// resolves. `ready` receives the uid and the checkpoint server's base URL.
pub async fn run_training_validator(
    config: TrainingValidatorConfig,
    ready: impl FnOnce(u16, &str) + Send,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), TrainingError> {
    config.run.validate()?;
    std::fs::create_dir_all(config.data_dir.join(CHECKPOINTS_DIR))
        .map_err(|e| TrainingError::io(&config.data_dir, e))?;
    let data_dir = std::fs::canonicalize(&config.data_dir)
        .map_err(|e| TrainingError::io(&config.data_dir, e))?;
    let client = Arc::new(
        Client::connect(&config.rpc_url)
            .await
            .map_err(SubnetError::from)?,
    );
    let netuid = config.netuid;
    let my_uid = chain::ensure_registered(&client, netuid, &config.coldkey, &config.hotkey).await?;
    chain::ensure_stake(&client, &config.coldkey, &config.hotkey, config.stake_rao).await?;
    let (cache, _follow) = MetagraphCache::spawn(client.clone(), netuid, 1)
        .await
        .map_err(SubnetError::from)?;

    let run = config.run.clone();
    let corpus = Arc::new(config.corpus);
    let fingerprint = hex::encode(corpus_fingerprint(&corpus));
    let params = match resume(&data_dir, &run) {
        Some(p) => p,
        None => run.initial_params()?,
    };
    let mut validator = Validator::new(run.clone(), config.scoring.clone(), &corpus, params)?;
    let mut kept = Vec::new();
    publish(
        &data_dir,
        &run,
        &validator,
        &mut kept,
        config.keep_checkpoints,
    )?;

    let listener = tokio::net::TcpListener::bind(config.checkpoint_listen)
        .await
        .map_err(|source| SubnetError::Listen {
            addr: config.checkpoint_listen.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(SubnetError::Serve)?;
    let base_url = config
        .checkpoint_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{bound}"));
    let app = Router::new()
        .route(&format!("{CHECKPOINT_ROUTE}/{{id}}"), get(serve_checkpoint))
        .with_state(Arc::new(Served {
            dir: data_dir.clone(),
        }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "checkpoint server stopped");
        }
    });

    let round_client = WireClient::new(
        config.hotkey.clone(),
        ClientConfig {
            timeout: config.round_timeout,
            ..ClientConfig::default()
        },
    )
    .map_err(SubnetError::from)?;
    let reveal_client = round_client
        .with_config(ClientConfig {
            timeout: config.reveal_timeout,
            max_response_bytes: max_state_bytes(&run),
            ..ClientConfig::default()
        })
        .map_err(SubnetError::from)?;
    let mut weights = WeightSetter::new(
        netuid,
        config.hotkey.clone(),
        my_uid,
        config.weights_every_blocks,
    );
    let mut rng = ChaCha20Rng::seed_from_u64(config.scoring.secret);
    let mut known: BTreeMap<u16, AccountId> = BTreeMap::new();
    let mut misses: BTreeMap<u16, u32> = BTreeMap::new();
    tracing::info!(
        uid = my_uid,
        hotkey = %config.hotkey.account(),
        checkpoints = %base_url,
        params = run.model.num_params(),
        corpus = %corpus.source,
        "training validator running"
    );
    ready(my_uid, &base_url);

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(config.round_interval) => {}
        }
        let Some(mg) = cache.get() else { continue };
        let targets: Vec<Target> = mg
            .neurons
            .iter()
            .filter(|n| n.uid != my_uid)
            .filter_map(|n| {
                n.axon.as_ref().map(|a| Target {
                    uid: n.uid,
                    hotkey: n.hotkey,
                    url: axon_url(&a.ip, a.port),
                })
            })
            .collect();
        // A uid that changed hands (or left) starts again from nothing.
        let gone: Vec<u16> = known
            .iter()
            .filter(|(uid, hk)| mg.neurons.get(usize::from(**uid)).map(|n| n.hotkey) != Some(**hk))
            .map(|(uid, _)| *uid)
            .collect();
        validator.forget(&gone);
        misses.retain(|uid, _| !gone.contains(uid));
        known = targets.iter().map(|t| (t.uid, t.hotkey)).collect();
        let (playing, benched) = who_plays(&targets, &misses, validator.round());
        if playing.is_empty() {
            tracing::debug!("no miners serve yet");
            continue;
        }
        // Benched miners own no experts this round and score zero for it.
        validator.record_absent(&benched);
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = &mut shutdown => break,
            r = play_one_round(
                validator,
                &run,
                &corpus,
                &fingerprint,
                &base_url,
                &playing,
                &round_client,
                &reveal_client,
            ) => r,
        };
        let (v, mut absent, played) = outcome;
        validator = v;
        for t in &playing {
            let streak = misses.entry(t.uid).or_insert(0);
            *streak = if absent.contains(&t.uid) {
                streak.saturating_add(1)
            } else {
                0
            };
        }
        absent.extend(&benched);
        absent.sort_unstable();
        let report = match played {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "round failed; the checkpoint is unchanged");
                continue;
            }
        };
        let dir = publish(
            &data_dir,
            &run,
            &validator,
            &mut kept,
            config.keep_checkpoints,
        )?;
        log_round(&data_dir, &validator, &report, &absent, &dir, started);
        let (uids, values) = weights_from_scores(validator.scores().iter().map(|(&u, &s)| (u, s)));
        if let Err(e) = weights
            .maybe_set(&client, mg.block, uids, values, &mut rng)
            .await
        {
            tracing::warn!(error = %e, "setting weights failed; will retry");
        }
    }
    tracing::info!("training validator stopped");
    Ok(())
}

fn log_round(
    data_dir: &Path,
    validator: &Validator,
    report: &RoundReport,
    absent: &[u16],
    dir: &Path,
    started: Instant,
) {
    let scores = validator.scores();
    let record = RoundRecord {
        round: report.round,
        checkpoint: hex::encode(report.new_id),
        checkpoint_dir: dir.display().to_string(),
        heldout_before: report.heldout_before,
        heldout_after: report.heldout_after,
        miners: report
            .verdicts
            .iter()
            .map(|v| MinerRecord {
                uid: v.uid,
                rejection: v.rejection.as_ref().map(|r| format!("{r:?}")),
                heldout_gain: v.heldout_gain,
                data_test_passed: v.data_test_passed,
                replay_ok: v.replay_ok,
                bytes: v.bytes,
                score: scores.get(&v.uid).copied().unwrap_or(0.0),
            })
            .collect(),
        absent: absent.to_vec(),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        round = report.round,
        heldout_before = format!("{:.4}", report.heldout_before),
        heldout_after = format!("{:.4}", report.heldout_after),
        accepted = report.verdicts.iter().filter(|v| v.rejection.is_none()).count(),
        absent = absent.len(),
        checkpoint = %hex::encode(report.new_id),
        seconds = format!("{:.2}", record.seconds),
        "round finished"
    );
    for m in &record.miners {
        tracing::info!(
            round = report.round,
            uid = m.uid,
            score = format!("{:.4}", m.score),
            heldout_gain = format!("{:.4}", m.heldout_gain),
            rejection = m.rejection.as_deref().unwrap_or("-"),
            replay_ok = ?m.replay_ok,
            "miner scored"
        );
    }
    let line = serde_json::to_string(&record).unwrap_or_default();
    let path = data_dir.join(ROUNDS_FILE);
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(error = %e, path = %path.display(), "cannot append the round record");
    }
}

/// What one round produced: its report, or `None` when no miner committed (the round is
/// not counted and the checkpoint stays).
type Played = Result<Option<RoundReport>, TrainingError>;

/// A miner that missed this many rounds in a row is benched: left out of the rounds (so
/// the experts it would own go to miners that answer) ...
const BENCH_AFTER_MISSES: u32 = 3;
/// ... except every this many rounds, when every miner is asked again.
const RETRY_EVERY_ROUNDS: u64 = 10;

/// Splits the metagraph's miners into those asked to play `round` and those benched.
fn who_plays(
    targets: &[Target],
    misses: &BTreeMap<u16, u32>,
    round: u64,
) -> (Vec<Target>, Vec<u16>) {
    let retry = round % RETRY_EVERY_ROUNDS == 0;
    let (playing, benched): (Vec<Target>, Vec<Target>) = targets
        .iter()
        .cloned()
        .partition(|t| retry || misses.get(&t.uid).copied().unwrap_or(0) < BENCH_AFTER_MISSES);
    (playing, benched.into_iter().map(|t| t.uid).collect())
}

/// One round with every target: round requests, commits in arrival order, reveals, the
/// replay target's state, then scoring and the outer step off the async threads. The
/// validator is moved in and handed back whatever happens.
#[allow(clippy::too_many_arguments)]
async fn play_one_round(
    mut validator: Validator,
    run: &RunConfig,
    corpus: &Arc<Corpus>,
    fingerprint: &str,
    base_url: &str,
    targets: &[Target],
    round_client: &WireClient,
    reveal_client: &WireClient,
) -> (Validator, Vec<u16>, Played) {
    let round = validator.round();
    let (_, id) = validator.checkpoint();
    let mut miners: Vec<u16> = targets.iter().map(|t| t.uid).collect();
    miners.sort_unstable();
    miners.dedup();
    let checkpoint = hex::encode(id);
    let mut asks: FuturesUnordered<_> = targets
        .iter()
        .map(|t| {
            let req = RoundRequest {
                run: run.clone(),
                corpus: fingerprint.to_owned(),
                round,
                round_seed: validator.round_seed(),
                checkpoint: checkpoint.clone(),
                checkpoint_url: format!("{base_url}{CHECKPOINT_ROUTE}/{checkpoint}"),
                uid: t.uid,
                miners: miners.clone(),
            };
            async move {
                let url = format!("{}{ROUND_ROUTE}", t.url);
                let answer = round_client
                    .post_json::<_, CommitResponse>(&url, &t.hotkey, &req)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|c| c.to_commit(t.uid, round));
                (t, answer)
            }
        })
        .collect();
    // Commit order is arrival order: of two identical updates the later one is the copy.
    let mut commits: Vec<(Commit, &Target)> = Vec::new();
    let mut absent = Vec::new();
    while let Some((t, answer)) = asks.next().await {
        match answer {
            Ok(c) => commits.push((c, t)),
            Err(e) => {
                tracing::warn!(round, uid = t.uid, error = %e, "no commit; skipped this round");
                absent.push(t.uid);
            }
        }
    }
    drop(asks);
    absent.sort_unstable();
    validator.record_absent(&absent);
    if commits.is_empty() {
        return (validator, absent, Ok(None));
    }
    let update_limit = max_payload_bytes(run);
    let reveals: BTreeMap<u16, Update> = futures::future::join_all(commits.iter().map(|(c, t)| {
        let body = serde_json::to_vec(&RevealRequest { round }).unwrap_or_default();
        async move {
            let url = format!("{}{REVEAL_ROUTE}", t.url);
            let bytes = fetch_bytes(reveal_client, &url, &t.hotkey, body, update_limit).await;
            let update = bytes.and_then(|b| Update::decode(&b).map_err(|e| e.to_string()));
            match update {
                Ok(u) => Some((c.uid, u)),
                Err(e) => {
                    tracing::warn!(round, uid = c.uid, error = %e, "no usable reveal");
                    None
                }
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let committed: Vec<u16> = commits.iter().map(|(c, _)| c.uid).collect();
    let replay_state = match validator.spot_check_target(&committed) {
        Some(uid) => match commits.iter().find(|(c, _)| c.uid == uid) {
            Some((_, t)) => {
                let url = format!("{}{STATE_ROUTE}", t.url);
                let body = serde_json::to_vec(&RevealRequest { round }).unwrap_or_default();
                let bytes =
                    fetch_bytes(reveal_client, &url, &t.hotkey, body, max_state_bytes(run)).await;
                match bytes.and_then(|b| MinerState::decode(&b).map_err(|e| e.to_string())) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(round, uid, error = %e, "no usable state for the replay");
                        None
                    }
                }
            }
            None => None,
        },
        None => None,
    };
    let commits: Vec<Commit> = commits.into_iter().map(|(c, _)| c).collect();
    let ownership = Ownership::assign(run.model.num_local_experts, &miners, run.replication);
    let corpus = corpus.clone();
    let job = tokio::task::spawn_blocking(move || {
        let report = validator.finish_round(
            &corpus,
            &ownership,
            &commits,
            &reveals,
            replay_state.as_ref(),
        );
        (validator, report)
    });
    match job.await {
        Ok((validator, report)) => (validator, absent, report.map(Some)),
        // The blocking task cannot panic on input (the round logic does not); if it did,
        // the validator went with it and there is nothing to continue from.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// POSTs `body` signed to `url` and returns the signed answer's bytes (at most `limit`).
async fn fetch_bytes(
    client: &WireClient,
    url: &str,
    hotkey: &AccountId,
    body: Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let resp = client
        .send(Method::POST, url, hotkey, body, Some("application/json"))
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status.is_success() {
        return Err(format!(
            "status {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    if resp.body.len() > limit {
        return Err(format!(
            "answer of {} bytes exceeds {limit}",
            resp.body.len()
        ));
    }
    Ok(resp.body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uid: u16) -> Target {
        Target {
            uid,
            hotkey: AccountId([uid as u8; 32]),
            url: format!("http://127.0.0.1:{}", 9000 + uid),
        }
    }

    #[test]
    fn miners_that_keep_missing_are_benched_but_retried() {
        let targets = [target(1), target(2), target(3)];
        let misses: BTreeMap<u16, u32> = [(1, 0), (2, BENCH_AFTER_MISSES), (3, 1)].into();
        let (playing, benched) = who_plays(&targets, &misses, 7);
        let uids: Vec<u16> = playing.iter().map(|t| t.uid).collect();
        assert_eq!((uids, benched), (vec![1, 3], vec![2]));
        let (playing, benched) = who_plays(&targets, &misses, RETRY_EVERY_ROUNDS * 3);
        assert_eq!((playing.len(), benched.len()), (3, 0));
    }
}
