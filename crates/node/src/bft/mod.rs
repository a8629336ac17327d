//! BFT replication (cargo feature `bft`): Tendermint rounds among the validator set in
//! the chain's state, run by Malachite through its channel interface.
//!
//! # Flow
//! Malachite drives heights and rounds; this module answers it ([`app`]). The proposer
//! of a round builds the next block with the same `agora_ledger::build_block` as the solo
//! engine, stores it ([`db`]) and streams it to the other validators as proposal parts;
//! they re-execute it with `agora_ledger::execute_block` (signatures checked, roots
//! compared) before voting for its hash. Each node verifies each transaction's signature
//! once, whichever way it arrives first: at admission (submitted or forwarded), or in a
//! proposed block it had not admitted, on threads of its own so that a burst of
//! admissions never delays a proposal's check. A decided block is committed to the node's
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
//! # The validator set
//! The chain's genesis lists the BFT validators (ed25519 consensus keys and voting power,
//! `consensus_validators` in the genesis file); the ledger stores them in its state, under
//! the state root. The set of each height is read from the state committed at the height
//! before ([`app`]), so every node derives the same set from the same chain, and no
//! node's configuration can change it: a node given a genesis with another set is on
//! another chain (its genesis hash differs) and a data directory refuses a genesis that
//! is not its own.
//!
//! # Configuration
//! One TOML file per node ([`BftFile`]): the genesis file, this node's consensus key, its
//! P2P and RPC listen addresses, and its static peers (where it dials them, where it
//! forwards transactions). `agora testnet` writes such files and one genesis for a local
//! cluster.

mod app;
pub mod codec;
pub mod context;
mod db;
mod forward;

use crate::mempool::MempoolLimits;
use crate::service::{start_engine, EngineKind, Shared};
use crate::{NodeConfig, NodeError, NodeHandle};
use agora_ledger::types::{ConsensusKey, ConsensusValidator};
use agora_ledger::GenesisConfig;
use agora_primitives::Hash;
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

/// A static peer as a node's configuration file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Where this node dials the peer's P2P port (`host:port`).
    pub p2p_addr: SocketAddr,
    /// The peer's JSON-RPC address, where transactions are forwarded.
    pub rpc_addr: SocketAddr,
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

/// A BFT node's configuration file (`node.toml`). It names no validator set: that is
/// the chain's, in its genesis and then in its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BftFile {
    /// A name for logs.
    pub moniker: String,
    /// Data directory (database, genesis, consensus WAL); relative to the file's folder.
    pub data_dir: PathBuf,
    /// The chain's genesis file (JSON, with its `consensus_validators`); relative to the
    /// file's folder. Needed to create the data directory; afterwards it must match the
    /// genesis stored there.
    pub genesis: PathBuf,
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
    /// The other nodes this one connects to.
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
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

/// The consensus validator set a list from the ledger stands for; every key is checked.
pub fn validator_set(list: &[ConsensusValidator]) -> Result<ValidatorSet, String> {
    let mut validators = Vec::with_capacity(list.len());
    for v in list {
        let public_key = PublicKey::from_bytes(v.public_key.0).map_err(|e| {
            format!(
                "consensus validator {} is not an ed25519 key: {e}",
                Hash(v.public_key.0)
            )
        })?;
        validators.push(Validator {
            address: Address::of(&public_key),
            public_key,
            voting_power: v.power,
        });
    }
    ValidatorSet::new(validators)
}

/// Reads a genesis file (JSON) for a BFT chain: it must list a valid, non-empty set of
/// consensus validators.
pub fn load_genesis(path: &Path) -> Result<GenesisConfig, NodeError> {
    let text = std::fs::read_to_string(path).map_err(|e| NodeError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let genesis: GenesisConfig = serde_json::from_str(&text).map_err(|e| {
        NodeError::Genesis(format!("{} is not a genesis file: {e}", path.display()))
    })?;
    check_bft_genesis(&genesis)
        .map_err(|e| NodeError::Genesis(format!("{}: {e}", path.display())))?;
    Ok(genesis)
}

fn check_bft_genesis(genesis: &GenesisConfig) -> Result<(), String> {
    if genesis.consensus_validators.is_empty() {
        return Err("a BFT chain's genesis must list its consensus_validators".into());
    }
    validator_set(&genesis.consensus_validators).map(|_| ())
}

/// Writes a genesis file (JSON).
pub fn save_genesis(genesis: &GenesisConfig, path: &Path) -> Result<(), NodeError> {
    let text = serde_json::to_string_pretty(genesis)
        .map_err(|e| NodeError::Genesis(format!("cannot encode genesis: {e}")))?;
    std::fs::write(path, text).map_err(|e| NodeError::Io {
        path: path.display().to_string(),
        source: e,
    })
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
        let mut file: BftFile = toml::from_str(&text).map_err(|e| {
            let hint = if e.message().contains("`validators`") {
                " (the validator set is the chain's: it comes from the genesis file's \
                 consensus_validators, not from a node's configuration)"
            } else {
                ""
            };
            NodeError::Config(format!("{}: {e}{hint}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if file.data_dir.is_relative() {
            file.data_dir = base.join(&file.data_dir);
        }
        if file.genesis.is_relative() {
            file.genesis = base.join(&file.genesis);
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

    /// The node and engine settings this file describes, with the genesis read from its
    /// genesis file; every field is checked.
    pub fn settings(&self) -> Result<(NodeConfig, BftSettings), NodeError> {
        self.settings_with(load_genesis(&self.genesis)?)
    }

    /// [`BftFile::settings`] with the genesis given rather than read from the file.
    pub fn settings_with(
        &self,
        genesis: GenesisConfig,
    ) -> Result<(NodeConfig, BftSettings), NodeError> {
        check_bft_genesis(&genesis).map_err(NodeError::Genesis)?;
        let key = parse_key(&self.consensus_key)?;
        let me = Address::of(&key.public_key());
        if genesis
            .consensus_validators
            .iter()
            .all(|v| v.public_key.0 != me.0)
        {
            tracing::warn!(
                key = %me,
                "this node's consensus key is not among the genesis validators: it follows \
                 the chain, and its votes count only once the set in state includes it"
            );
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
            genesis: Some(genesis),
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
            listen: self.p2p_addr,
            peers: self.peers.iter().map(|p| p.p2p_addr).collect(),
            peer_rpcs: self.peers.iter().map(|p| p.rpc_addr).collect(),
            timeouts,
            byzantine: self.byzantine.clone(),
        };
        Ok((node, settings))
    }
}

/// Starts a BFT node: store, RPC and metrics as for a solo node, blocks from consensus.
///
/// A P2P address that cannot be bound is refused here: Malachite's network task only
/// logs such a failure and the node would run without hearing its peers.
pub async fn start(config: NodeConfig, settings: BftSettings) -> Result<NodeHandle, NodeError> {
    std::net::TcpListener::bind(settings.listen).map_err(|e| NodeError::Bind {
        addr: format!("{} (p2p)", settings.listen),
        source: e,
    })?;
    start_engine(config, EngineKind::Bft(Box::new(settings))).await
}

/// Ports below the kernel's ephemeral range handed out by [`loopback_ports`] in this
/// process, so two calls never return the same port.
static NEXT_RESERVED_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The lowest port the kernel hands out for `bind(…:0)` and outgoing connections.
fn ephemeral_port_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        // IANA's range (macOS, Windows) starts higher; Linux's default is 32768.
        .unwrap_or(32768)
}

/// `n` distinct loopback ports that are free now, for a local cluster's configuration.
///
/// Ports are only written into configuration files here and bound later by the nodes, so
/// a port from `bind(127.0.0.1:0)` could be handed to another socket, or used as the local
/// end of an outgoing connection, in between. These ports come from below the kernel's
/// ephemeral range, which neither of those ever uses, so only an explicit bind to the
/// same number can take one.
pub fn loopback_ports(n: usize) -> Result<Vec<u16>, NodeError> {
    use std::sync::atomic::Ordering;
    const LOWEST: u16 = 10_000;
    let floor = ephemeral_port_floor();
    let span = u32::from(floor.saturating_sub(LOWEST));
    if span < 1_000 {
        return Err(NodeError::Config(format!(
            "the kernel's ephemeral ports start at {floor}, leaving no room below them for \
             a local cluster's ports"
        )));
    }
    // Start at a point that differs between processes, so concurrent test binaries or
    // benches rarely probe the same ports.
    let _ = NEXT_RESERVED_PORT.compare_exchange(
        0,
        std::process::id() % span + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut held = Vec::with_capacity(n);
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let k = NEXT_RESERVED_PORT.fetch_add(1, Ordering::Relaxed) % span;
        let port = LOWEST + k as u16;
        // Held until all are found: proof that each was free and that they differ.
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(NodeError::Config(format!(
            "found only {} free loopback ports between {LOWEST} and {floor}, needed {n}",
            held.len()
        )));
    }
    Ok(held
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect())
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
                let ran = match app {
                    Ok(app) => app.run(settings, wal).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = ran {
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

/// A local cluster's genesis and configuration files, as [`local_cluster`] makes them.
#[derive(Clone, Debug)]
pub struct LocalCluster {
    /// The chain's genesis: the given one with every node as a validator of power 1.
    pub genesis: GenesisConfig,
    /// One configuration file per node; each expects the genesis at [`LOCAL_GENESIS`].
    pub files: Vec<BftFile>,
}

/// Where [`local_cluster`]'s files expect the genesis, relative to each file's folder.
pub const LOCAL_GENESIS: &str = "../genesis.json";

/// A local cluster of `n` validators on loopback, on `base` with its validator set
/// replaced: node `i` serves RPC on `rpc_base + i` and P2P on `p2p_base + i`, keeps its
/// data in `data` beside its file, and peers with every other node. Keys are fresh.
pub fn local_cluster(
    n: usize,
    rpc_base: u16,
    p2p_base: u16,
    block_time_ms: u64,
    base: GenesisConfig,
) -> Result<LocalCluster, NodeError> {
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
    let mut genesis = base;
    genesis.consensus_validators = keys
        .iter()
        .map(|k| {
            Ok(ConsensusValidator {
                public_key: ConsensusKey(*parse_key(k)?.public_key().as_bytes()),
                power: 1,
            })
        })
        .collect::<Result<_, NodeError>>()?;
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        addrs.push(PeerEntry {
            p2p_addr: SocketAddr::from(([127, 0, 0, 1], port(p2p_base, i)?)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], port(rpc_base, i)?)),
        });
    }
    let files = keys
        .into_iter()
        .enumerate()
        .map(|(i, consensus_key)| BftFile {
            moniker: format!("node{i}"),
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from(LOCAL_GENESIS),
            rpc_addr: addrs[i].rpc_addr,
            p2p_addr: addrs[i].p2p_addr,
            metrics_addr: None,
            consensus_key,
            block_time_ms,
            max_block_txs: DEFAULT_BFT_MAX_BLOCK_TXS,
            timeouts: TimeoutsMs::default(),
            peers: addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect(),
            byzantine: None,
        })
        .collect();
    Ok(LocalCluster { genesis, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> (tempfile::TempDir, LocalCluster) {
        let dir = tempfile::tempdir().unwrap();
        let local = local_cluster(4, 9000, 9100, 500, GenesisConfig::dev()).unwrap();
        save_genesis(&local.genesis, &dir.path().join("genesis.json")).unwrap();
        for f in &local.files {
            let home = dir.path().join(&f.moniker);
            std::fs::create_dir_all(&home).unwrap();
            f.save(&home.join("node.toml")).unwrap();
        }
        (dir, local)
    }

    #[test]
    fn configuration_files_name_peers_and_the_genesis_not_a_validator_set() {
        let (dir, local) = cluster();
        assert_eq!(local.genesis.consensus_validators.len(), 4);
        let set = validator_set(&local.genesis.consensus_validators).unwrap();
        for (i, f) in local.files.iter().enumerate() {
            assert_eq!(f.peers.len(), 3);
            assert!(f.peers.iter().all(|p| p.p2p_addr != f.p2p_addr));
            let loaded = BftFile::load(&dir.path().join(&f.moniker).join("node.toml")).unwrap();
            assert_eq!(
                loaded.genesis,
                dir.path().join(&f.moniker).join(LOCAL_GENESIS)
            );
            let (node, settings) = loaded.settings().unwrap();
            assert_eq!(node.genesis.as_ref(), Some(&local.genesis));
            assert_eq!(settings.peers.len(), 3);
            let me = Address::of(&settings.key.public_key());
            assert!(
                set.validators().iter().any(|v| v.address == me),
                "node {i}'s key is in the genesis set"
            );
        }
    }

    #[test]
    fn a_configuration_cannot_bring_its_own_validator_set() {
        let (dir, local) = cluster();
        let path = dir.path().join("node0").join("node.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!(
                "{text}\n[[validators]]\npublic_key = \"{}\"\npower = 10\n",
                hex::encode(local.genesis.consensus_validators[0].public_key.0)
            ),
        )
        .unwrap();
        let e = BftFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("validators") && e.contains("genesis"), "{e}");

        // A genesis without validators, or with a key that is no ed25519 point, is refused.
        let mut g = local.genesis.clone();
        g.consensus_validators.clear();
        assert!(local.files[0].settings_with(g).is_err());
        let mut g = local.genesis.clone();
        // About half of all 32-byte strings are no point on the curve.
        let not_a_point = (1u8..=255)
            .map(|b| [b; 32])
            .find(|k| PublicKey::from_bytes(*k).is_err())
            .unwrap();
        g.consensus_validators[0].public_key = ConsensusKey(not_a_point);
        assert!(local.files[0].settings_with(g.clone()).is_err());
        let bad = dir.path().join("bad.json");
        save_genesis(&g, &bad).unwrap();
        assert!(load_genesis(&bad).is_err());
    }

    #[test]
    fn loopback_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let floor = ephemeral_port_floor();
        let a = loopback_ports(8).unwrap();
        let b = loopback_ports(8).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        assert!(all.iter().all(|&p| (10_000..floor).contains(&p)), "{all:?}");
        // Each is free once handed out.
        for &p in &all {
            drop(std::net::TcpListener::bind(("127.0.0.1", p)).unwrap());
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 16, "two calls returned the same port");
    }
}
