//! BFT replication (cargo feature `bft`): Tendermint rounds among a fixed set of
//! validators, run by Malachite through its channel interface.
//!
//! # Flow
//! Malachite drives heights and rounds; this module answers it ([`app`]). The proposer
//! of a round builds the next block with the same `agora_ledger::build_block` as the solo
//! engine, stores it ([`db`]) and streams it to the other validators as proposal parts;
//! they re-execute it with `agora_ledger::execute_block` (signatures checked, roots
//! compared) before voting for its hash. A decided block is committed to the node's
//! `agora_store::Store` through the same path as a solo block, so receipts, waiters and
//! subscriptions behave alike. Transactions submitted to any node are forwarded to the
//! others ([`forward`]), so whoever proposes next has them.
//!
//! # Safety on restart
//! Malachite's write-ahead log (`wal/` in the data directory) restores votes and
//! proposals of the height in progress; proposal blocks are stored before consensus hears
//! of them, so a decided value is always available. A block is committed only if it is
//! the next one (`Store::commit_block` refuses anything else), and a decision at or below
//! the committed head is acknowledged without applying anything: a node killed while
//! committing never applies a block twice. Each commit certificate is stored before its
//! block, and peers that fell behind fetch blocks with certificates through value sync.
//!
//! # Configuration
//! One TOML file per node ([`BftFile`]): the consensus key, the P2P and RPC addresses,
//! and the validator set with the addresses this node reaches each validator at.
//! `agora testnet` writes such files for a local cluster.
//! The validator set is the configured one, fixed for the chain's life: the ledger holds
//! no registry of consensus keys yet from which a set could be derived per height.

mod app;
pub mod codec;
pub mod context;
mod db;
mod forward;

use crate::mempool::MempoolLimits;
use crate::service::{start_engine, EngineKind, Shared};
use crate::{NodeConfig, NodeError, NodeHandle};
use agora_ledger::GenesisConfig;
use arc_malachitebft_app_channel::app::net::Multiaddr;
use arc_malachitebft_app_channel::app::types::core::LinearTimeouts;
use arc_malachitebft_signing_ed25519::{PrivateKey, PublicKey};
use context::{Address, Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Most transactions in one BFT block: a block of typical transfers stays around 2 MiB,
/// which streams and re-executes on every validator well within a second.
pub const DEFAULT_BFT_MAX_BLOCK_TXS: usize = 10_000;

/// One validator as a node's configuration file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// The ed25519 consensus public key, hex.
    pub public_key: String,
    /// Voting power.
    #[serde(default = "one")]
    pub power: u64,
    /// Where this node dials the validator's P2P port (`host:port`).
    pub p2p_addr: SocketAddr,
    /// The validator's JSON-RPC address, where transactions are forwarded.
    pub rpc_addr: SocketAddr,
}

fn one() -> u64 {
    1
}

/// Round timeouts in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeoutsMs {
    /// Wait for a proposal (round 0), on top of the block time the proposer may wait for
    /// transactions.
    pub propose: u64,
    /// Wait for prevotes after seeing 2/3 of any.
    pub prevote: u64,
    /// Wait for precommits after seeing 2/3 of any.
    pub precommit: u64,
    /// Added per round, so rounds grow until the network's delay fits.
    pub delta: u64,
}

impl Default for TimeoutsMs {
    fn default() -> Self {
        TimeoutsMs {
            propose: 1000,
            prevote: 500,
            precommit: 500,
            delta: 250,
        }
    }
}

/// A BFT node's configuration file (`node.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BftFile {
    /// A name for logs.
    pub moniker: String,
    /// Data directory (database, genesis, consensus WAL); relative to the file's folder.
    pub data_dir: PathBuf,
    /// JSON-RPC listen address.
    pub rpc_addr: SocketAddr,
    /// P2P listen address.
    pub p2p_addr: SocketAddr,
    /// Prometheus `/metrics` listen address.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// This node's ed25519 consensus secret key (32-byte seed, hex).
    pub consensus_key: String,
    /// Longest wait for transactions before proposing an empty block, ms.
    #[serde(default = "default_block_time_ms")]
    pub block_time_ms: u64,
    /// Most transactions per block.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// Round timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsMs,
    /// The validator set (this node included), identical on every node but for the
    /// addresses.
    pub validators: Vec<ValidatorEntry>,
    /// Faults this validator injects on purpose (fault tests only).
    #[serde(default)]
    pub byzantine: Option<ByzantineFile>,
}

/// Faults a validator injects through Malachite's byzantine network proxy: it signs and
/// sends a second, conflicting message beside each honest one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByzantineFile {
    /// Send a conflicting vote beside every vote.
    #[serde(default)]
    pub equivocate_votes: bool,
    /// Send a conflicting proposal beside every proposal.
    #[serde(default)]
    pub equivocate_proposals: bool,
}

fn default_block_time_ms() -> u64 {
    1000
}

fn default_max_block_txs() -> usize {
    DEFAULT_BFT_MAX_BLOCK_TXS
}

/// Everything the BFT engine needs besides the shared node state.
#[derive(Clone, Debug)]
pub struct BftSettings {
    /// A name for logs.
    pub moniker: String,
    /// The consensus key.
    pub key: PrivateKey,
    /// The validator set.
    pub validators: ValidatorSet,
    /// P2P listen address.
    pub listen: SocketAddr,
    /// P2P addresses of the other validators.
    pub peers: Vec<SocketAddr>,
    /// RPC addresses of the other validators.
    pub peer_rpcs: Vec<SocketAddr>,
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
    /// Injected faults, if any.
    pub byzantine: Option<ByzantineFile>,
}

fn parse_key(hex_key: &str) -> Result<PrivateKey, NodeError> {
    let bytes = hex::decode(hex_key.trim().trim_start_matches("0x"))
        .map_err(|e| NodeError::Config(format!("consensus_key is not hex: {e}")))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| NodeError::Config("consensus_key must be 32 bytes".into()))?;
    Ok(PrivateKey::from(seed))
}

fn parse_public(hex_key: &str) -> Result<PublicKey, NodeError> {
    let bytes = hex::decode(hex_key.trim().trim_start_matches("0x"))
        .map_err(|e| NodeError::Config(format!("validator public_key is not hex: {e}")))?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| NodeError::Config("validator public_key must be 32 bytes".into()))?;
    PublicKey::from_bytes(raw)
        .map_err(|e| NodeError::Config(format!("validator public_key is not a key: {e}")))
}

/// The hex public key of a hex secret key (for writing configuration files).
pub fn public_key_hex(secret_hex: &str) -> Result<String, NodeError> {
    Ok(hex::encode(parse_key(secret_hex)?.public_key().as_bytes()))
}

/// A fresh consensus secret key, hex.
pub fn generate_key_hex() -> String {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    hex::encode(seed)
}

impl BftFile {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<BftFile, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let mut file: BftFile = toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        if file.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            file.data_dir = base.join(&file.data_dir);
        }
        Ok(file)
    }

    /// Writes the file (TOML).
    pub fn save(&self, path: &Path) -> Result<(), NodeError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| NodeError::Config(format!("cannot encode configuration: {e}")))?;
        std::fs::write(path, text).map_err(|e| NodeError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// The node and engine settings this file describes; every field is checked.
    pub fn settings(&self) -> Result<(NodeConfig, BftSettings), NodeError> {
        let key = parse_key(&self.consensus_key)?;
        let me = Address::of(&key.public_key());
        let mut validators = Vec::with_capacity(self.validators.len());
        let mut peers = Vec::new();
        let mut peer_rpcs = Vec::new();
        for v in &self.validators {
            let public_key = parse_public(&v.public_key)?;
            let address = Address::of(&public_key);
            if address != me {
                peers.push(v.p2p_addr);
                peer_rpcs.push(v.rpc_addr);
            }
            validators.push(Validator {
                address,
                public_key,
                voting_power: v.power,
            });
        }
        let validators = ValidatorSet::new(validators).map_err(NodeError::Config)?;
        if validators.validators().iter().all(|v| v.address != me) {
            return Err(NodeError::Config(
                "this node's consensus key is not in the validator set".into(),
            ));
        }
        if self.block_time_ms == 0 || self.max_block_txs == 0 {
            return Err(NodeError::Config(
                "block_time_ms and max_block_txs must be positive".into(),
            ));
        }
        let t = &self.timeouts;
        if t.propose == 0 || t.prevote == 0 || t.precommit == 0 {
            return Err(NodeError::Config("timeouts must be positive".into()));
        }
        let ms = Duration::from_millis;
        // The proposer may wait up to a block time for transactions before building, so
        // the others wait that long on top of the propose timeout.
        let propose = ms(t.propose.saturating_add(self.block_time_ms));
        let timeouts = LinearTimeouts {
            propose,
            propose_delta: ms(t.delta),
            prevote: ms(t.prevote),
            prevote_delta: ms(t.delta),
            precommit: ms(t.precommit),
            precommit_delta: ms(t.delta),
            rebroadcast: propose + ms(t.prevote) + ms(t.precommit),
            max_timeout: Duration::from_secs(30),
        };
        let node = NodeConfig {
            data_dir: self.data_dir.clone(),
            genesis: Some(GenesisConfig::dev()),
            rpc_addr: self.rpc_addr,
            metrics_addr: self.metrics_addr,
            block_time: ms(self.block_time_ms),
            instant: false,
            max_block_txs: self.max_block_txs,
            mempool: MempoolLimits::default(),
        };
        let settings = BftSettings {
            moniker: self.moniker.clone(),
            key,
            validators,
            listen: self.p2p_addr,
            peers,
            peer_rpcs,
            timeouts,
            byzantine: self.byzantine.clone(),
        };
        Ok((node, settings))
    }
}

/// Starts a BFT node: store, RPC and metrics as for a solo node, blocks from consensus.
pub async fn start(config: NodeConfig, settings: BftSettings) -> Result<NodeHandle, NodeError> {
    start_engine(config, EngineKind::Bft(Box::new(settings))).await
}

pub(crate) fn tcp_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => format!("/ip4/{v4}"),
        std::net::IpAddr::V6(v6) => format!("/ip6/{v6}"),
    };
    // Both parts are well-formed by construction.
    format!("{ip}/tcp/{}", addr.port())
        .parse()
        .unwrap_or_else(|_| Multiaddr::empty())
}

/// Starts the engine thread (its own runtime: Malachite's actors and the application loop).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    settings: BftSettings,
    data_dir: &Path,
    block_time: Duration,
    max_block_txs: usize,
) -> Result<std::thread::JoinHandle<()>, NodeError> {
    let db = db::ConsensusDb::open(&data_dir.join("consensus.redb"))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let wal = data_dir.join("wal");
    std::fs::create_dir_all(&wal).map_err(|e| NodeError::Io {
        path: wal.display().to_string(),
        source: e,
    })?;
    let forward = forward::start(&shared, settings.peer_rpcs.clone());
    std::thread::Builder::new()
        .name("agora-bft".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("agora-bft-rt")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the consensus runtime");
                    shared
                        .shutdown
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            };
            rt.block_on(async move {
                let forwarder = tokio::spawn(forward.run());
                let app = app::App::new(
                    shared.clone(),
                    db,
                    settings.clone(),
                    block_time,
                    max_block_txs,
                );
                if let Err(e) = app.run(settings, wal).await {
                    tracing::error!(error = %e, "consensus engine stopped");
                    shared
                        .shutdown
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                forwarder.abort();
            });
            // Malachite's actors hold no durable state beyond the WAL: dropping the runtime
            // stops them without waiting.
            rt.shutdown_timeout(Duration::from_millis(200));
        })
        .map_err(|e| NodeError::Config(format!("cannot start the consensus thread: {e}")))
}

/// Configuration files for a local cluster of `n` validators on loopback: node `i` serves
/// RPC on `rpc_base + i` and P2P on `p2p_base + i`, keeps its data in `data` beside its file,
/// and knows every validator, itself included. Keys are fresh.
pub fn local_cluster(
    n: usize,
    rpc_base: u16,
    p2p_base: u16,
    block_time_ms: u64,
) -> Result<Vec<BftFile>, NodeError> {
    if n == 0 || n > 100 {
        return Err(NodeError::Config("a cluster needs 1 to 100 nodes".into()));
    }
    let port = |base: u16, i: usize| -> Result<u16, NodeError> {
        u16::try_from(i)
            .ok()
            .and_then(|i| base.checked_add(i))
            .ok_or_else(|| NodeError::Config("ports beyond 65535".into()))
    };
    let keys: Vec<String> = (0..n).map(|_| generate_key_hex()).collect();
    let mut validators = Vec::with_capacity(n);
    for (i, k) in keys.iter().enumerate() {
        validators.push(ValidatorEntry {
            public_key: public_key_hex(k)?,
            power: 1,
            p2p_addr: SocketAddr::from(([127, 0, 0, 1], port(p2p_base, i)?)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], port(rpc_base, i)?)),
        });
    }
    keys.into_iter()
        .enumerate()
        .map(|(i, consensus_key)| {
            Ok(BftFile {
                moniker: format!("node{i}"),
                data_dir: PathBuf::from("data"),
                rpc_addr: validators[i].rpc_addr,
                p2p_addr: validators[i].p2p_addr,
                metrics_addr: None,
                consensus_key,
                block_time_ms,
                max_block_txs: DEFAULT_BFT_MAX_BLOCK_TXS,
                timeouts: TimeoutsMs::default(),
                validators: validators.clone(),
                byzantine: None,
            })
        })
        .collect()
}
