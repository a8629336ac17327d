//! The application side of consensus: answers every request Malachite makes, builds and
//! checks blocks with the ledger, and commits decided blocks to the store.

use super::codec::{decode_commit_cert, encode_commit_cert, WireCodec};
use super::context::{
    proposer_of, round_code, round_from, Address, AgoraContext, BlockValue, Height, KeySigner,
    KeyVerifier, ProposalPart, ValidatorSet,
};
use super::db::{ConsensusDb, StoredProposal};
use super::{tcp_multiaddr, BftSettings};
use crate::service::{lock, Shared};
use crate::verify::verify_all;
use agora_ledger::{build_block, execute_block, query, Block, ExecutedBlock, SignatureCheck};
use agora_primitives::codec::{DecodeAll, Encode};
use agora_primitives::Hash;
use arc_malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig as EngineNodeConfig, P2pConfig, ValueSyncConfig,
};
use arc_malachitebft_app_channel::app::consensus::ProposedValue;
use arc_malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, LinearTimeouts, Round, Validity, VoteExtensions,
};
use arc_malachitebft_app_channel::app::types::sync::RawDecidedValue;
use arc_malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, PeerId};
use arc_malachitebft_app_channel::{
    start_engine, AppMsg, ByzantineContext, Channels, ConsensusContext, EngineBuilder,
    NetworkContext, NetworkIdentity, NetworkMsg, RequestContext, Signer, SyncContext, WalContext,
};
use arc_malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Bytes of encoded block in one proposal part: well under the gossip message limit.
const PART_BYTES: usize = 512 * 1024;

/// Largest proposal or sync message on the wire.
const MAX_MESSAGE_BYTES: u64 = 8 * 1024 * 1024;

/// Largest assembled proposal: bounds what a faulty peer can make a node buffer.
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Partial proposal streams kept at once; the oldest go first.
const MAX_STREAMS: usize = 64;

/// Most blocks in one sync response.
const MAX_SYNC_BLOCKS: u64 = 16;

/// How long a proposal for the next height waits for this node to commit the current one.
const EARLY_PROPOSAL_WAIT: Duration = Duration::from_secs(3);

/// How far ahead of this node's clock a proposed block's timestamp may be.
const MAX_CLOCK_AHEAD_MS: u64 = 10_000;

#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl EngineNodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct PartBuf {
    height: u64,
    parts: BTreeMap<u64, ProposalPart>,
    fin: Option<u64>,
    bytes: usize,
}

/// State shared by the application loop and the tasks it spawns.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    db: ConsensusDb,
    address: Address,
    /// The validator set read from the committed head's state, with that head's hash.
    validators: Mutex<Option<(Hash, ValidatorSet)>>,
    timeouts: LinearTimeouts,
    block_time: Duration,
    max_block_txs: usize,
    /// Executed blocks of proposals seen at the current height, by hash.
    executed: Mutex<HashMap<Hash, ExecutedBlock>>,
    /// Threads that check the signatures of proposed blocks. Admission verifies on the
    /// shared rayon pool, which a burst of submitted (and forwarded) transactions can fill
    /// for seconds; a proposal checked behind that queue makes its validator miss the
    /// round and, when it proposes next, costs everyone a propose timeout.
    verifier: rayon::ThreadPool,
}

/// The application answering Malachite.
#[derive(Debug)]
pub(crate) struct App {
    inner: Arc<Inner>,
    streams: HashMap<(PeerId, StreamId), PartBuf>,
    key: arc_malachitebft_signing_ed25519::PrivateKey,
}

/// The validator set that decides the block after the committed head: the one in the
/// head's state. Heights are only ever started right after the head they follow (the
/// store keeps no older state, and no later one exists yet).
fn head_validators(inner: &Inner) -> Result<ValidatorSet, String> {
    let store = &inner.shared.store;
    let head = store.head().map_err(|e| e.to_string())?.hash();
    if let Some((at, set)) = lock(&inner.validators).as_ref() {
        if *at == head {
            return Ok(set.clone());
        }
    }
    let snap = store.snapshot().map_err(|e| e.to_string())?;
    let list = query::consensus_validators(&snap).map_err(|e| e.to_string())?;
    drop(snap);
    if list.is_empty() {
        return Err("the committed state holds no BFT validator set".into());
    }
    let set = super::validator_set(&list)?;
    // Only this engine commits, and heads only move forward: if the head is the same
    // after the read, the snapshot was taken at that head.
    if store.head().map_err(|e| e.to_string())?.hash() == head {
        *lock(&inner.validators) = Some((head, set.clone()));
    }
    Ok(set)
}

fn height_params(inner: &Inner) -> Result<HeightParams<AgoraContext>, AppError> {
    let set = head_validators(inner).map_err(AppError::Fatal)?;
    Ok(HeightParams::new(set, inner.timeouts, None))
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("cannot start consensus: {0}")]
    Start(String),
    #[error("fatal: {0}")]
    Fatal(String),
}

impl App {
    pub(crate) fn new(
        shared: Arc<Shared>,
        db: ConsensusDb,
        settings: BftSettings,
        block_time: Duration,
        max_block_txs: usize,
    ) -> Result<Self, AppError> {
        let address = Address::of(&settings.key.public_key());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let verifier = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("agora-bft-verify-{i}"))
            .build()
            .map_err(|e| AppError::Start(format!("verification threads: {e}")))?;
        Ok(App {
            inner: Arc::new(Inner {
                shared,
                db,
                address,
                validators: Mutex::new(None),
                timeouts: settings.timeouts,
                block_time,
                max_block_txs,
                executed: Mutex::new(HashMap::new()),
                verifier,
            }),
            streams: HashMap::new(),
            key: settings.key,
        })
    }

    /// Starts Malachite and serves it until the node shuts down.
    pub(crate) async fn run(mut self, settings: BftSettings, wal: PathBuf) -> Result<(), AppError> {
        let p2p = P2pConfig {
            listen_addr: tcp_multiaddr(settings.listen),
            persistent_peers: settings.peers.iter().map(|a| tcp_multiaddr(*a)).collect(),
            // Inbound connections come from ephemeral ports that match no configured
            // address; votes are authenticated by signature, not by connection.
            persistent_peers_only: false,
            pubsub_max_size: bytesize::ByteSize::b(MAX_MESSAGE_BYTES),
            rpc_max_size: bytesize::ByteSize::b(MAX_STREAM_BYTES as u64),
            ..P2pConfig::default()
        };
        let consensus = ConsensusConfig {
            p2p,
            ..ConsensusConfig::default()
        };
        let value_sync = ValueSyncConfig {
            status_update_interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            max_response_size: bytesize::ByteSize::b(MAX_STREAM_BYTES as u64),
            ..ValueSyncConfig::default()
        };
        let config = EngineConfig {
            moniker: settings.moniker.clone(),
            consensus,
            value_sync,
        };
        let mut seed = self.key.inner().to_bytes();
        let keypair = Keypair::ed25519_from_bytes(&mut seed)
            .map_err(|e| AppError::Start(format!("network key: {e}")))?;
        let signer = KeySigner::new(self.key.clone());
        let peer_id = keypair.public().to_peer_id();
        let proof = signer
            .sign_validator_proof(self.inner.address.0.to_vec(), peer_id.to_bytes())
            .await
            .map_err(|e| AppError::Start(format!("validator proof: {e}")))?;
        let proof_bytes =
            arc_malachitebft_app_channel::app::types::codec::Codec::encode(&WireCodec, &proof)
                .map_err(|e| AppError::Start(e.to_string()))?;
        let identity = NetworkIdentity::new_validator(
            settings.moniker.clone(),
            keypair,
            self.inner.address.to_string(),
            proof_bytes,
        );
        let started = match &settings.byzantine {
            None => {
                start_engine(
                    AgoraContext,
                    config,
                    WalContext::new(wal.join("consensus.wal"), WireCodec),
                    NetworkContext::new(identity, WireCodec),
                    ConsensusContext::new_validator(
                        self.inner.address,
                        Box::new(KeyVerifier),
                        Box::new(signer),
                    ),
                    SyncContext::new(WireCodec),
                    RequestContext::new(100),
                )
                .await
            }
            Some(b) => {
                tracing::warn!(?b, "this validator injects byzantine faults");
                let always = |on: bool| if on { Trigger::Always } else { Trigger::Never };
                let faults = ByzantineConfig {
                    equivocate_votes: always(b.equivocate_votes),
                    equivocate_proposals: always(b.equivocate_proposals),
                    ..ByzantineConfig::default()
                };
                let flip = |h: Hash| {
                    let mut h = h;
                    h.0[31] ^= 1;
                    h
                };
                let byz = ByzantineContext {
                    identity,
                    codec: WireCodec,
                    config: faults,
                    signer: Box::new(signer.clone()),
                    address: self.inner.address,
                    conflicting_value_fn: Some(Box::new(move |v: &BlockValue| {
                        BlockValue(flip(v.0))
                    })),
                    conflicting_vote_value_fn: Some(Box::new(move |v: Option<&Hash>| {
                        flip(v.copied().unwrap_or_default())
                    })),
                };
                async {
                    EngineBuilder::new(AgoraContext, config)
                        .with_default_wal(WalContext::new(wal.join("consensus.wal"), WireCodec))
                        .with_byzantine_network(byz)
                        .await?
                        .with_default_sync(SyncContext::new(WireCodec))
                        .with_default_consensus(ConsensusContext::new_validator(
                            self.inner.address,
                            Box::new(KeyVerifier),
                            Box::new(signer),
                        ))
                        .with_default_request(RequestContext::new(100))
                        .build()
                        .await
                }
                .await
            }
        };
        let (mut channels, _engine) = started.map_err(|e| AppError::Start(format!("{e:#}")))?;
        tracing::info!(
            address = %self.inner.address,
            p2p = %settings.listen,
            peers = settings.peers.len(),
            "consensus started"
        );
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                msg = channels.consensus.recv() => {
                    let Some(msg) = msg else {
                        return Err(AppError::Fatal("consensus stopped".into()));
                    };
                    self.handle(msg, &channels).await?;
                }
                _ = tick.tick() => {
                    if self.inner.shared.is_shutting_down() {
                        tracing::info!("consensus engine stopped");
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn handle(
        &mut self,
        msg: AppMsg<AgoraContext>,
        channels: &Channels<AgoraContext>,
    ) -> Result<(), AppError> {
        let inner = self.inner.clone();
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let next = Height(inner.shared.head().number.saturating_add(1));
                tracing::info!(height = %next, "consensus ready");
                let params = height_params(&inner)?;
                tracing::info!(
                    validators = params.validator_set.validators().len(),
                    "validator set read from the committed state"
                );
                let _ = reply.send((next, params));
            }
            AppMsg::StartedRound {
                height,
                round,
                reply_value,
                ..
            } => {
                // After a crash, the proposals this node had stored for the round.
                let stored = inner
                    .db
                    .proposals_at(height.0, round_code(round))
                    .unwrap_or_default();
                let values = stored
                    .into_iter()
                    .map(|(hash, p)| ProposedValue {
                        height,
                        round,
                        valid_round: round_from(p.valid_round),
                        proposer: Address(p.proposer),
                        value: BlockValue(hash),
                        validity: Validity::Valid,
                    })
                    .collect();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let inner = inner.clone();
                let network = channels.network.clone();
                tokio::spawn(async move {
                    propose(inner, network, height, round, timeout, reply).await;
                });
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                if let Ok(Some(p)) = inner.db.proposal(&value_id) {
                    let init = ProposalPart::Init {
                        height,
                        round,
                        proposer: Address(p.proposer),
                        valid_round,
                    };
                    stream_parts(&channels.network, init, &p.block, value_id).await;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let peer = published_by.unwrap_or(from);
                match self.accept_part(peer, part) {
                    Some((init, block_bytes, hash)) => {
                        let inner = inner.clone();
                        tokio::spawn(async move {
                            let v = check_proposal(inner, init, block_bytes, hash).await;
                            let _ = reply.send(v);
                        });
                    }
                    None => {
                        let _ = reply.send(None);
                    }
                }
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                let inner = inner.clone();
                let r = tokio::task::spawn_blocking(move || commit_decided(&inner, &certificate))
                    .await
                    .map_err(|e| AppError::Fatal(format!("commit task: {e}")))?;
                let _ = reply.send(());
                if let Err(e) = r {
                    return Err(AppError::Fatal(e));
                }
                let head = self.inner.shared.head().number;
                self.streams.retain(|_, s| s.height > head);
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let head = inner.shared.head().number;
                let params = height_params(&inner)?;
                let next = if head >= certificate.height.0 {
                    Next::Start(Height(head.saturating_add(1)), params)
                } else {
                    Next::Restart(certificate.height, params)
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let inner = inner.clone();
                let values = tokio::task::spawn_blocking(move || decided_values(&inner, range))
                    .await
                    .unwrap_or_default();
                let _ = reply.send(values);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    let out = synced_value(inner, height, round, proposer, value_bytes).await;
                    let _ = reply.send(out);
                });
            }
        }
        Ok(())
    }

    /// Adds a part to its stream; returns the stream's header, block bytes and announced
    /// hash once every part is in.
    fn accept_part(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Option<(ProposalPart, Vec<u8>, Hash)> {
        let head = self.inner.shared.head().number;
        let key = (peer, msg.stream_id.clone());
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Drop the oldest partial stream to make room.
            let oldest = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.height)
                .map(|(k, _)| k.clone())?;
            self.streams.remove(&oldest);
        }
        let buf = self.streams.entry(key.clone()).or_default();
        match msg.content {
            StreamContent::Fin => buf.fin = Some(msg.sequence),
            StreamContent::Data(part) => {
                if let ProposalPart::Init { height, .. } = &part {
                    buf.height = height.0;
                }
                if let ProposalPart::Data(d) = &part {
                    buf.bytes = buf.bytes.saturating_add(d.len());
                }
                buf.parts.insert(msg.sequence, part);
            }
        }
        if buf.bytes > MAX_STREAM_BYTES || (buf.height != 0 && buf.height <= head) {
            self.streams.remove(&key);
            return None;
        }
        let fin = buf.fin?;
        if u64::try_from(buf.parts.len()).ok()? != fin {
            return None;
        }
        let buf = self.streams.remove(&key)?;
        let mut parts = buf.parts.into_values();
        let init = parts.next()?;
        if !matches!(init, ProposalPart::Init { .. }) {
            return None;
        }
        let mut bytes = Vec::with_capacity(buf.bytes);
        let mut hash = None;
        for p in parts {
            match p {
                ProposalPart::Data(d) => bytes.extend_from_slice(&d),
                ProposalPart::Fin(h) => hash = Some(h),
                ProposalPart::Init { .. } => return None,
            }
        }
        Some((init, bytes, hash?))
    }
}

async fn stream_parts(
    network: &mpsc::Sender<NetworkMsg<AgoraContext>>,
    init: ProposalPart,
    block: &[u8],
    hash: Hash,
) {
    let (height, round) = match &init {
        ProposalPart::Init { height, round, .. } => (*height, *round),
        _ => return,
    };
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&height.0.to_be_bytes());
    id.extend_from_slice(&round_code(round).to_be_bytes());
    let id = StreamId::new(Bytes::from(id));
    let mut parts = vec![init];
    parts.extend(
        block
            .chunks(PART_BYTES)
            .map(|c| ProposalPart::Data(c.to_vec())),
    );
    parts.push(ProposalPart::Fin(hash));
    let mut seq = 0u64;
    for p in parts {
        let msg = StreamMessage::new(id.clone(), seq, StreamContent::Data(p));
        if network
            .send(NetworkMsg::PublishProposalPart(msg))
            .await
            .is_err()
        {
            return;
        }
        seq += 1;
    }
    let _ = network
        .send(NetworkMsg::PublishProposalPart(StreamMessage::new(
            id,
            seq,
            StreamContent::Fin,
        )))
        .await;
}

/// Builds this node's proposal: waits up to a block time for transactions, builds the
/// block on the committed head, stores it, answers consensus, then streams it.
async fn propose(
    inner: Arc<Inner>,
    network: mpsc::Sender<NetworkMsg<AgoraContext>>,
    height: Height,
    round: Round,
    timeout: Duration,
    reply: oneshot::Sender<LocallyProposedValue<AgoraContext>>,
) {
    let wait = inner.block_time.min(timeout / 2);
    let building = inner.clone();
    let built = tokio::task::spawn_blocking(move || {
        let inner = building;
        let deadline = Instant::now() + wait;
        {
            let mut pool = lock(&inner.shared.pool);
            while !pool.has_ready() && !inner.shared.is_shutting_down() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                pool = inner
                    .shared
                    .wake
                    .wait_timeout(pool, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        build_proposal(&inner, height, round)
    })
    .await;
    let (hash, bytes) = match built {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::warn!(%height, %round, error = %e, "cannot build a proposal");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "proposal task failed");
            return;
        }
    };
    let _ = reply.send(LocallyProposedValue::new(height, round, BlockValue(hash)));
    let init = ProposalPart::Init {
        height,
        round,
        proposer: inner.address,
        valid_round: Round::Nil,
    };
    stream_parts(&network, init, &bytes, hash).await;
}

fn build_proposal(inner: &Inner, height: Height, round: Round) -> Result<(Hash, Vec<u8>), String> {
    let parent = inner.shared.head().header;
    if parent.number.saturating_add(1) != height.0 {
        return Err(format!(
            "asked for height {height} but the committed head is {}",
            parent.number
        ));
    }
    let candidates = lock(&inner.shared.pool).select(inner.max_block_txs);
    let snap = inner.shared.store.snapshot().map_err(|e| e.to_string())?;
    let (executed, rejected) =
        build_block(&snap, &parent, now_ms(), candidates, inner.max_block_txs)
            .map_err(|e| e.to_string())?;
    drop(snap);
    let dropped = inner.shared.drop_rejected(rejected);
    inner.shared.notify_dropped(&dropped);
    let hash = executed.block.header.hash();
    let bytes = executed.block.encode();
    inner
        .db
        .put_proposal(
            &hash,
            &StoredProposal {
                height: height.0,
                round: round_code(round),
                valid_round: -1,
                proposer: inner.address.0,
                block: bytes.clone(),
            },
        )
        .map_err(|e| e.to_string())?;
    tracing::debug!(%height, %round, txs = executed.block.txs.len(), "proposing");
    lock(&inner.executed).insert(hash, executed);
    Ok((hash, bytes))
}

/// Decodes and re-executes a block: signatures verified, roots compared, timestamp sane.
fn execute_received(inner: &Inner, block_bytes: &[u8]) -> Result<ExecutedBlock, String> {
    let block =
        Block::decode_all(&mut &block_bytes[..]).map_err(|e| format!("undecodable block: {e}"))?;
    let parent = inner.shared.head().header;
    if block.header.timestamp_ms > now_ms().saturating_add(MAX_CLOCK_AHEAD_MS) {
        return Err("block timestamp is in the future".into());
    }
    // Transactions this node verified already (at admission: the pool and the verified
    // set are keyed by the hash, which covers the signature) are not verified again; every
    // other one is, before the block is executed.
    let hashes: Vec<Hash> = block.txs.iter().map(|t| t.hash()).collect();
    let unknown: Vec<usize> = {
        let pool = lock(&inner.shared.pool);
        let verified = lock(&inner.shared.verified);
        (0..hashes.len())
            .filter(|&i| !pool.contains(&hashes[i]) && !verified.contains(&hashes[i]))
            .collect()
    };
    let to_check: Vec<_> = unknown.iter().map(|&i| block.txs[i].clone()).collect();
    if let Some(k) = inner
        .verifier
        .install(|| verify_all(&to_check))
        .iter()
        .position(|ok| !ok)
    {
        return Err(format!(
            "transaction {} has a bad signature",
            unknown.get(k).copied().unwrap_or(k)
        ));
    }
    {
        let mut verified = lock(&inner.shared.verified);
        for &i in &unknown {
            verified.insert(hashes[i]);
        }
    }
    let snap = inner.shared.store.snapshot().map_err(|e| e.to_string())?;
    execute_block(&snap, &parent, &block, SignatureCheck::AlreadyVerified)
        .map_err(|e| e.to_string())
}

/// Checks a fully received proposal; stores it when valid.
async fn check_proposal(
    inner: Arc<Inner>,
    init: ProposalPart,
    block_bytes: Vec<u8>,
    announced: Hash,
) -> Option<ProposedValue<AgoraContext>> {
    let ProposalPart::Init {
        height,
        round,
        proposer,
        valid_round,
    } = init
    else {
        return None;
    };
    // A proposal for the height after the one being committed arrives while this node
    // finishes that commit: wait for it briefly rather than miss the proposal.
    let deadline = Instant::now() + EARLY_PROPOSAL_WAIT;
    while inner.shared.head().number.saturating_add(2) == height.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let head = inner.shared.head().number;
    if height.0 != head.saturating_add(1) {
        // Further behind: sync delivers the block with its certificate. Ahead: stale.
        return None;
    }
    // Only the round's proposer, in the set of the committed head's state, may stream a
    // proposal for it.
    let set = head_validators(&inner)
        .map_err(|e| tracing::error!(error = %e, "no validator set"))
        .ok()?;
    if proposer_of(&set, height, round).address != proposer {
        tracing::warn!(%height, %round, %proposer, "proposal parts from a validator that is not the proposer");
        return None;
    }
    let run = inner.clone();
    let bytes = block_bytes.clone();
    let result = tokio::task::spawn_blocking(move || execute_received(&run, &bytes))
        .await
        .ok()?;
    let validity = match result {
        Ok(executed) => {
            let hash = executed.block.header.hash();
            if hash != announced {
                tracing::warn!(%height, %round, "proposal hash does not match its parts");
                return None;
            }
            let stored = StoredProposal {
                height: height.0,
                round: round_code(round),
                valid_round: round_code(valid_round),
                proposer: proposer.0,
                block: block_bytes,
            };
            if let Err(e) = inner.db.put_proposal(&hash, &stored) {
                tracing::error!(error = %e, "cannot store a proposal");
                return None;
            }
            lock(&inner.executed).insert(hash, executed);
            Validity::Valid
        }
        Err(e) => {
            tracing::warn!(%height, %round, error = %e, "invalid proposal");
            Validity::Invalid
        }
    };
    Some(ProposedValue {
        height,
        round,
        valid_round,
        proposer,
        value: BlockValue(announced),
        validity,
    })
}

/// Commits a decided block: its certificate first, then the block through the node's
/// commit path. A decision at or below the head is already applied (WAL replay after a
/// crash) and changes nothing.
fn commit_decided(inner: &Inner, cert: &CommitCertificate<AgoraContext>) -> Result<(), String> {
    let started = Instant::now();
    let head = inner.shared.head();
    let height = cert.height.0;
    if height <= head.number {
        tracing::info!(height, head = head.number, "decision already committed");
        return Ok(());
    }
    if height != head.number.saturating_add(1) {
        return Err(format!(
            "decided height {height} is not next after head {}",
            head.number
        ));
    }
    let cached = lock(&inner.executed).remove(&cert.value_id);
    let executed = match cached {
        Some(e) if e.block.header.parent_hash == head.hash => e,
        _ => {
            // Not executed in this run (restarted since): the stored proposal holds it.
            let stored = inner
                .db
                .proposal(&cert.value_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("decided block {} is unknown here", cert.value_id))?;
            execute_received(inner, &stored.block)?
        }
    };
    if executed.block.header.hash() != cert.value_id {
        return Err("decided block does not match its certificate".into());
    }
    inner
        .db
        .put_cert(height, &encode_commit_cert(cert))
        .map_err(|e| e.to_string())?;
    inner
        .shared
        .commit_executed(executed, Vec::new(), started)
        .map_err(|e| e.to_string())?;
    lock(&inner.executed).retain(|_, e| e.block.header.number > height);
    if let Err(e) = inner.db.prune_proposals(height) {
        tracing::warn!(error = %e, "cannot prune proposals");
    }
    inner.shared.metrics.head.store(height, Ordering::Relaxed);
    tracing::debug!(height, round = %cert.round, "block decided and committed");
    Ok(())
}

fn decided_values(
    inner: &Inner,
    range: std::ops::RangeInclusive<Height>,
) -> Vec<RawDecidedValue<AgoraContext>> {
    let mut out = Vec::new();
    let (from, to) = (range.start().0, range.end().0);
    let to = to.min(from.saturating_add(MAX_SYNC_BLOCKS - 1));
    for h in from..=to {
        let (Ok(Some(block)), Ok(Some(cert))) = (inner.shared.store.block(h), inner.db.cert(h))
        else {
            break;
        };
        let Ok(cert) = decode_commit_cert(&cert) else {
            break;
        };
        let cert = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
            cert,
            VoteExtensions::default(),
        );
        out.push(RawDecidedValue::new(Bytes::from(block.encode()), cert));
    }
    out
}

async fn synced_value(
    inner: Arc<Inner>,
    height: Height,
    round: Round,
    proposer: Address,
    value_bytes: Bytes,
) -> SyncedValueOutcome<AgoraContext> {
    let Ok(block) = Block::decode_all(&mut &value_bytes[..]) else {
        return SyncedValueOutcome::PeerFault;
    };
    if block.header.number != height.0 {
        return SyncedValueOutcome::PeerFault;
    }
    let hash = block.header.hash();
    let value = ProposedValue {
        height,
        round,
        valid_round: Round::Nil,
        proposer,
        value: BlockValue(hash),
        validity: Validity::Valid,
    };
    let head = inner.shared.head().number;
    if height.0 <= head {
        return SyncedValueOutcome::Verdict(value);
    }
    if height.0 != head.saturating_add(1) {
        return SyncedValueOutcome::LocalTransientError;
    }
    let run = inner.clone();
    let bytes = value_bytes.to_vec();
    let Ok(result) = tokio::task::spawn_blocking(move || execute_received(&run, &bytes)).await
    else {
        return SyncedValueOutcome::LocalTransientError;
    };
    match result {
        Ok(executed) => {
            let stored = StoredProposal {
                height: height.0,
                round: round_code(round),
                valid_round: -1,
                proposer: proposer.0,
                block: value_bytes.to_vec(),
            };
            if inner.db.put_proposal(&hash, &stored).is_err() {
                return SyncedValueOutcome::LocalTransientError;
            }
            lock(&inner.executed).insert(hash, executed);
            SyncedValueOutcome::Verdict(value)
        }
        Err(e) => {
            tracing::warn!(%height, error = %e, "synced block is invalid");
            SyncedValueOutcome::Verdict(ProposedValue {
                validity: Validity::Invalid,
                ..value
            })
        }
    }
}
