//! The validator side: challenge every served miner, score, remember, set weights.

use crate::{chain, metrics::NeuronMetrics, scores::ScoreBook, Protocol, SubnetError};
use agora_client::{api::AgoraApiClient, Client, MetagraphCache};
use agora_ledger::{commit_hash, Call};
use agora_primitives::{crypto::Pair, AccountId, NetUid};
use agora_wire::{ClientConfig, WireClient};
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::{future::Future, sync::Arc, time::Duration, time::Instant};

/// What came of one query.
#[derive(Debug)]
pub enum QueryOutcome<R> {
    /// The miner answered in time (correctness is for the scorer to judge).
    Answered {
        /// The answer.
        response: R,
        /// Time from sending to the whole answer.
        latency: Duration,
    },
    /// No usable answer: timeout, refused, unreachable, bad signature, undecodable.
    Failed {
        /// Why.
        error: String,
    },
}

/// A miner as a validator queries it: what the metagraph says about its axon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its uid.
    pub uid: u16,
    /// Its hotkey (requests are signed for it, answers must be signed by it).
    pub hotkey: AccountId,
    /// The axon's base URL, `http://ip:port`.
    pub url: String,
    /// The TEE attestation digest it published with its axon, if any.
    pub attestation_digest: Option<[u8; 32]>,
}

/// How a validator tests miners.
pub trait ValidatorLogic: Send + Sync + 'static {
    /// The protocol spoken.
    type P: Protocol;
    /// What the validator keeps to judge the answer (never sent to the miner).
    type Check: Send + 'static;

    /// A fresh challenge for `uid`.
    fn challenge(
        &self,
        uid: u16,
        rng: &mut ChaCha20Rng,
    ) -> (<Self::P as Protocol>::Request, Self::Check);

    /// Sends one challenge to the miner `target` and waits for the outcome. The default
    /// posts the request as JSON to [`Protocol::ROUTE`] on its axon and times the whole
    /// answer; a subnet that streams, checks the answer with expensive work better done off
    /// the scoring path, or checks the miner's attestation, overrides it.
    fn query(
        &self,
        wire: &WireClient,
        target: &Target,
        request: <Self::P as Protocol>::Request,
    ) -> impl Future<Output = QueryOutcome<<Self::P as Protocol>::Response>> + Send {
        async move {
            let url = format!("{}{}", target.url, Self::P::ROUTE);
            let started = Instant::now();
            match wire
                .post_json::<_, <Self::P as Protocol>::Response>(&url, &target.hotkey, &request)
                .await
            {
                Ok(response) => QueryOutcome::Answered {
                    response,
                    latency: started.elapsed(),
                },
                Err(e) => QueryOutcome::Failed {
                    error: e.to_string(),
                },
            }
        }
    }

    /// The score of one outcome, in `[0, 1]`.
    fn score(
        &self,
        check: Self::Check,
        outcome: QueryOutcome<<Self::P as Protocol>::Response>,
    ) -> f64;

    /// Subnet-specific lines appended to the validator's Prometheus `/metrics` (text
    /// exposition format); none by default.
    fn render_metrics(&self, _out: &mut String) {}
}

/// Where and how a validator runs.
#[derive(Debug)]
pub struct ValidatorConfig {
    /// Node RPC URL (`ws://` so that the metagraph follows new heads).
    pub rpc_url: String,
    /// The subnet.
    pub netuid: NetUid,
    /// Pays the registration burn and the stake.
    pub coldkey: Pair,
    /// Signs queries and weights.
    pub hotkey: Pair,
    /// Stake the coldkey keeps on the hotkey, rao.
    pub stake_rao: u64,
    /// Time between query rounds.
    pub round_interval: Duration,
    /// Per-query timeout.
    pub query_timeout: Duration,
    /// Weight of a new sample in the moving average.
    pub score_alpha: f64,
    /// Blocks between weight submissions (raised to the subnet's rate limit).
    pub weights_every_blocks: u64,
    /// Seed of the challenge generator; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Where to serve Prometheus `/metrics`; none by default.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

struct PendingReveal {
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: Vec<u16>,
    version_key: u64,
}

/// Puts a validator's weights on chain at the pace the subnet allows: at most once per
/// `max(every_blocks, weights_rate_limit)` blocks, only while the validator holds a permit,
/// and through commit then reveal when the subnet has commit-reveal on. Subnets whose
/// validators run their own loop (rounds rather than per-miner queries) use it directly.
pub struct WeightSetter {
    netuid: NetUid,
    hotkey: Pair,
    my_uid: u16,
    every_blocks: u64,
    last: Option<u64>,
    pending: Option<PendingReveal>,
}

impl std::fmt::Debug for WeightSetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSetter")
            .field("netuid", &self.netuid)
            .field("my_uid", &self.my_uid)
            .field("every_blocks", &self.every_blocks)
            .field("last", &self.last)
            .field("pending_reveal", &self.pending.is_some())
            .finish()
    }
}

impl WeightSetter {
    /// A setter for validator `my_uid` signing with `hotkey`.
    pub fn new(netuid: NetUid, hotkey: Pair, my_uid: u16, every_blocks: u64) -> Self {
        WeightSetter {
            netuid,
            hotkey,
            my_uid,
            every_blocks,
            last: None,
            pending: None,
        }
    }

    /// Reveals a pending commit, or sets (commits) `uids`/`values` when the pace allows.
    /// `block` is the current head. Returns whether a set or commit was submitted.
    pub async fn maybe_set(
        &mut self,
        client: &Client,
        block: u64,
        uids: Vec<u16>,
        values: Vec<u16>,
        rng: &mut ChaCha20Rng,
    ) -> Result<bool, SubnetError> {
        let netuid = self.netuid;
        let subnet = client
            .rpc()
            .subnet(netuid.0)
            .await
            .map_err(agora_client::ClientError::from)?
            .ok_or(SubnetError::UnknownSubnet(netuid.0))?;
        let hp = subnet.hyperparams;
        if let Some(p) = self.pending.take() {
            let call = Call::RevealWeights {
                netuid,
                uids: p.uids.clone(),
                values: p.values.clone(),
                salt: p.salt.clone(),
                version_key: p.version_key,
            };
            match chain::submit(client, &self.hotkey, call).await {
                Ok(_) => tracing::info!(block, "weights revealed"),
                // Too early: keep it for the next round. Any other failure drops it.
                Err(SubnetError::Client(e)) if e.rpc_code() == Some(608) => self.pending = Some(p),
                Err(e) => tracing::warn!(error = %e, "reveal failed"),
            }
            return Ok(false);
        }
        let every = self.every_blocks.max(hp.weights_rate_limit).max(1);
        if self.last.is_some_and(|l| block < l.saturating_add(every)) {
            return Ok(false);
        }
        let me = client
            .rpc()
            .neuron(netuid.0, self.my_uid)
            .await
            .map_err(agora_client::ClientError::from)?;
        if !me.is_some_and(|n| n.validator_permit) {
            return Ok(false);
        }
        if uids.is_empty() {
            return Ok(false);
        }
        let version_key = hp.weights_version;
        if hp.commit_reveal_enabled {
            let salt: Vec<u16> = (0..8).map(|_| rng.gen()).collect();
            let hash = commit_hash(
                &self.hotkey.account(),
                netuid,
                &uids,
                &values,
                &salt,
                version_key,
            );
            chain::submit(
                client,
                &self.hotkey,
                Call::CommitWeights {
                    netuid,
                    commit_hash: hash,
                },
            )
            .await?;
            self.pending = Some(PendingReveal {
                uids,
                values,
                salt,
                version_key,
            });
        } else {
            let n = uids.len();
            chain::submit(
                client,
                &self.hotkey,
                Call::SetWeights {
                    netuid,
                    uids,
                    values,
                    version_key,
                },
            )
            .await?;
            tracing::info!(block, miners = n, "weights set");
        }
        self.last = Some(block);
        Ok(true)
    }
}

/// Registers and stakes (if needed), then runs query rounds until `shutdown` resolves.
pub async fn run_validator<L: ValidatorLogic>(
    config: ValidatorConfig,
    logic: L,
    ready: impl FnOnce(u16) + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SubnetError> {
    let client = Arc::new(Client::connect(&config.rpc_url).await?);
    let netuid = config.netuid;
    let my_uid = chain::ensure_registered(&client, netuid, &config.coldkey, &config.hotkey).await?;
    chain::ensure_stake(&client, &config.coldkey, &config.hotkey, config.stake_rao).await?;
    let (cache, _follow) = MetagraphCache::spawn(client.clone(), netuid, 1).await?;
    let wire = WireClient::new(
        config.hotkey.clone(),
        ClientConfig {
            timeout: config.query_timeout,
            ..ClientConfig::default()
        },
    )?;
    let mut rng = match config.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_entropy(),
    };
    let mut book = ScoreBook::new(config.score_alpha);
    let metrics = Arc::new(NeuronMetrics::default());
    let logic = Arc::new(logic);
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SubnetError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let (exported, exported_logic) = (metrics.clone(), logic.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                let mut text = exported.render("validator", netuid.0, my_uid);
                exported_logic.render_metrics(&mut text);
                text
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "metrics server stopped");
            }
        });
    }
    let mut weights = WeightSetter::new(
        netuid,
        config.hotkey.clone(),
        my_uid,
        config.weights_every_blocks,
    );
    tracing::info!(uid = my_uid, hotkey = %config.hotkey.account(), "validator running");
    ready(my_uid);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(config.round_interval) => {}
        }
        let Some(mg) = cache.get() else { continue };
        let hotkeys: Vec<AccountId> = mg.neurons.iter().map(|n| n.hotkey).collect();
        book.retain_current(&hotkeys);
        let targets: Vec<_> = mg
            .neurons
            .iter()
            .filter(|n| n.uid != my_uid)
            .filter_map(|n| {
                n.axon.as_ref().map(|a| Target {
                    uid: n.uid,
                    hotkey: n.hotkey,
                    url: axon_url(&a.ip, a.port),
                    attestation_digest: a.attestation_digest,
                })
            })
            .collect();
        let queries = targets.into_iter().map(|target| {
            let (request, check) = logic.challenge(target.uid, &mut rng);
            let (wire, logic) = (&wire, &logic);
            async move {
                let outcome = logic.query(wire, &target, request).await;
                (target.uid, target.hotkey, check, outcome)
            }
        });
        for (uid, hotkey, check, outcome) in join_all(queries).await {
            match &outcome {
                QueryOutcome::Failed { error } => {
                    NeuronMetrics::inc(&metrics.queries_failed);
                    tracing::debug!(uid, %error, "query failed");
                }
                QueryOutcome::Answered { .. } => NeuronMetrics::inc(&metrics.queries_ok),
            }
            let s = logic.score(check, outcome);
            book.record(uid, hotkey, s);
        }
        let (uids, values) = book.weights();
        if let Err(e) = weights
            .maybe_set(&client, mg.block, uids, values, &mut rng)
            .await
        {
            tracing::warn!(error = %e, "setting weights failed; will retry");
        }
    }
    tracing::info!("validator stopped");
    Ok(())
}

/// The base URL of an axon published at `ip` and `port`.
pub fn axon_url(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("http://[{v6}]:{port}"),
        _ => format!("http://{ip}:{port}"),
    }
}
