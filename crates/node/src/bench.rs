//! `agora bench ledger`: throughput of the whole path — JSON-RPC → admission (signature
//! and envelope checks) → mempool → block → durable commit — on a real node started in
//! this process on a temporary data directory (redb, RPC on an ephemeral 127.0.0.1 port).
//!
//! Transactions are signed and hex-encoded before the clock starts (that is the clients'
//! work, not the node's); then several client tasks push them with `agora_submitBatch`, and
//! the clock stops when the node has committed every admitted one. Only committed
//! transactions count. Prints `transfers_per_s: N` and `set_weights_256_per_s: N`.
//!
//! `agora bench bft` (feature `bft`) runs the solo engine and then a loopback cluster on the
//! same transfers: `finality_ms`, `bft_transfers_per_s`, `solo_transfers_per_s`, and the
//! CPU bound of a cluster sharing one machine — `signature_checks_per_s` of the node's
//! batched verifier on all cores, and that divided by the number of replicas, each of which
//! checks every signature once.

use crate::{start, NodeConfig, NodeError, NodeHandle};
use agora_client::api::AgoraApiClient;
use agora_client::types::codes;
use agora_client::{tx_to_hex, Client, TxOptions};
use agora_ledger::{Call, Event, GenesisConfig, SignedTx, TxPayload};
use agora_primitives::{crypto::Pair, Hash, NetUid, RAO_PER_TOKEN};
use clap::{Args, Subcommand};
use rayon::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `agora bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchTarget {
    /// Transfers and 256-weight `set_weights` through a real node.
    Ledger(LedgerBenchArgs),
    /// A BFT cluster on loopback: finality and transfer throughput, with the solo
    /// engine's transfer throughput measured in the same run.
    #[cfg(feature = "bft")]
    Bft(BftBenchArgs),
}

/// `agora bench bft` settings.
#[cfg(feature = "bft")]
#[derive(Args, Debug, Clone)]
pub struct BftBenchArgs {
    /// Validators in the cluster.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Signed transfers to push (to every node in turn), for each engine.
    #[arg(long, default_value_t = 40_000)]
    pub transfers: usize,
    /// Accounts sending transfers.
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Transactions per `agora_submitBatch` request.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Single transfers timed from submission to commit.
    #[arg(long, default_value_t = 30)]
    pub finality_samples: usize,
    /// Most transactions per block (both engines).
    #[arg(long, default_value_t = crate::bft::DEFAULT_BFT_MAX_BLOCK_TXS)]
    pub max_block_txs: usize,
}

/// `agora bench ledger` settings.
#[derive(Args, Debug, Clone)]
pub struct LedgerBenchArgs {
    /// Signed transfers to push.
    #[arg(long, default_value_t = 60_000)]
    pub transfers: usize,
    /// Signed `set_weights` (256 weights each) to push.
    #[arg(long, default_value_t = 12_000)]
    pub set_weights: usize,
    /// Accounts sending transfers.
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Validators setting weights.
    #[arg(long, default_value_t = 16)]
    pub validators: usize,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Transactions per `agora_submitBatch` request.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Most transactions per block.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_BLOCK_TXS)]
    pub max_block_txs: usize,
}

const NEURONS: u16 = 256;
/// Far enough that no benchmark transaction expires.
const VALID_UNTIL: u64 = 1_000_000;

fn bench_err(msg: impl Into<String>) -> NodeError {
    NodeError::Input(format!("bench: {}", msg.into()))
}

fn sign_all(specs: Vec<(Pair, u64, Call)>, genesis_hash: Hash) -> Vec<SignedTx> {
    specs
        .into_par_iter()
        .map(|(pair, nonce, call)| {
            TxPayload {
                genesis_hash,
                nonce,
                valid_from: 0,
                valid_until: VALID_UNTIL,
                tip_rao: 0,
                call,
            }
            .sign(&pair)
        })
        .collect()
}

/// Pushes transactions through `clients` tasks and waits until the node committed every
/// admitted one; returns committed transactions per second.
async fn push(
    node: &NodeHandle,
    urls: &[String],
    txs: Vec<SignedTx>,
    clients: usize,
    batch: usize,
) -> Result<(f64, u64), NodeError> {
    let clients = clients.max(1);
    let batch = batch.clamp(1, crate::MAX_BATCH_TXS);
    // Shard by signer so that each account's nonces travel in order through one client.
    let mut shards: Vec<Vec<String>> = vec![Vec::new(); clients];
    let hexes: Vec<(usize, String)> = txs
        .par_iter()
        .map(|t| (usize::from(t.signer.0[0]) % clients, tx_to_hex(t)))
        .collect();
    for (i, h) in hexes {
        if let Some(s) = shards.get_mut(i) {
            s.push(h);
        }
    }
    let metrics = node.metrics();
    let before = metrics.txs.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let url = urls
            .get(i % urls.len().max(1))
            .ok_or_else(|| bench_err("no node to push to"))?;
        let client = Client::connect(url).await?;
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            let mut refused = 0u64;
            let mut first_error = None;
            for chunk in shard.chunks(batch) {
                let mut todo: Vec<String> = chunk.to_vec();
                while !todo.is_empty() {
                    let out = client.rpc().submit_batch(todo.clone()).await?;
                    let mut retry = Vec::new();
                    for (hex, o) in todo.into_iter().zip(out) {
                        match o.error {
                            None => admitted += 1,
                            Some(e)
                                if e.code == codes::MEMPOOL_FULL
                                    || e.code == codes::ACCOUNT_LIMIT =>
                            {
                                retry.push(hex)
                            }
                            Some(e) => {
                                refused += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    if !retry.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    todo = retry;
                }
            }
            Ok::<_, agora_client::ClientError>((admitted, refused, first_error))
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        let (a, r, e) = t
            .await
            .map_err(|e| bench_err(format!("client task failed: {e}")))??;
        admitted += a;
        if let Some(e) = e {
            eprintln!(
                "bench: {r} transactions refused, first: {} (code {})",
                e.message, e.code
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = metrics.txs.load(Ordering::Relaxed).saturating_sub(before);
        if done >= admitted {
            break;
        }
        if Instant::now() > deadline || node.engine_stopped() {
            return Err(bench_err(format!(
                "only {done} of {admitted} admitted transactions committed"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let committed = metrics.txs.load(Ordering::Relaxed).saturating_sub(before);
    Ok((committed as f64 / elapsed.max(1e-9), committed))
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<(), NodeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, NodeError>>,
{
    let deadline = Instant::now() + timeout;
    while !f().await? {
        if Instant::now() > deadline {
            return Err(bench_err(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs a benchmark.
pub async fn run(a: BenchArgs) -> Result<(), NodeError> {
    match a.target {
        BenchTarget::Ledger(l) => ledger(l).await,
        #[cfg(feature = "bft")]
        BenchTarget::Bft(b) => bft(b).await,
    }
}

#[cfg(feature = "bft")]
fn temp_dir() -> Result<tempfile::TempDir, NodeError> {
    tempfile::tempdir().map_err(|e| NodeError::Io {
        path: "temporary directory".into(),
        source: e,
    })
}

#[cfg(feature = "bft")]
/// The development genesis with `senders` funded.
fn funded_genesis(name: &str, senders: &[Pair]) -> GenesisConfig {
    let mut genesis = GenesisConfig::dev();
    genesis.chain_name = name.into();
    genesis
        .endowed
        .extend(senders.iter().map(|p| (p.account(), 1_000 * RAO_PER_TOKEN)));
    genesis
}

#[cfg(feature = "bft")]
/// Each sender pays the next one `per` times (nonces from 0).
fn transfer_specs(senders: &[Pair], per: usize) -> Vec<(Pair, u64, Call)> {
    senders
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let dest = senders[(i + 1) % senders.len()].account();
            (0..per as u64).map(move |n| {
                (
                    p.clone(),
                    n,
                    Call::Transfer {
                        dest,
                        amount_rao: 1 + n,
                    },
                )
            })
        })
        .collect()
}

/// Starts `n` BFT validators in this process on loopback, on `genesis` with the
/// validators' keys in its set.
#[cfg(feature = "bft")]
pub async fn start_bft_cluster(
    n: usize,
    root: &std::path::Path,
    genesis: &GenesisConfig,
    max_block_txs: usize,
    block_time_ms: u64,
) -> Result<Vec<NodeHandle>, NodeError> {
    let cluster = crate::bft::local_cluster(n, 1, 1, block_time_ms, genesis.clone())?;
    let mut files = cluster.files;
    let ports = crate::bft::loopback_ports(2 * n)?;
    let addrs: Vec<crate::bft::PeerEntry> = (0..n)
        .map(|i| crate::bft::PeerEntry {
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], ports[i])),
            p2p_addr: SocketAddr::from(([127, 0, 0, 1], ports[n + i])),
        })
        .collect();
    let mut nodes = Vec::with_capacity(n);
    for (i, f) in files.iter_mut().enumerate() {
        f.rpc_addr = addrs[i].rpc_addr;
        f.p2p_addr = addrs[i].p2p_addr;
        f.data_dir = root.join(&f.moniker);
        f.max_block_txs = max_block_txs;
        f.peers = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| a.clone())
            .collect();
        let (config, settings) = f.settings_with(cluster.genesis.clone())?;
        nodes.push(crate::bft::start(config, settings).await?);
    }
    Ok(nodes)
}

#[cfg(feature = "bft")]
async fn bft(a: BftBenchArgs) -> Result<(), NodeError> {
    if a.accounts == 0 || a.nodes == 0 {
        return Err(bench_err("need at least one account and one node"));
    }
    let senders: Vec<Pair> = (0..a.accounts)
        .into_par_iter()
        .map(|i| Pair::from_uri(&format!("//bench/sender/{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| bench_err(e.to_string()))?;
    let genesis = funded_genesis("agora-bench-bft", &senders);
    let per = a.transfers / a.accounts;

    // --- solo engine, same transactions ---
    let solo_dir = temp_dir()?;
    let config = NodeConfig {
        block_time: Duration::from_millis(100),
        instant: true,
        max_block_txs: a.max_block_txs,
        genesis: Some(genesis.clone()),
        ..NodeConfig::dev(
            solo_dir.path().join("node"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
    };
    let node = start(config).await?;
    let url = format!("http://{}", node.rpc_addr());
    let txs = sign_all(transfer_specs(&senders, per), node.genesis_hash());
    let (solo_rate, n) = push(&node, &[url], txs, a.clients, a.batch).await?;
    eprintln!("bench: solo engine committed {n} transfers");
    node.stop().await;

    // --- BFT cluster ---
    let dir = temp_dir()?;
    let nodes = start_bft_cluster(a.nodes, dir.path(), &genesis, a.max_block_txs, 1000).await?;
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}", n.rpc_addr()))
        .collect();
    eprintln!("bench: {} validators on {}", nodes.len(), urls.join(" "));
    wait_until("the first BFT block", Duration::from_secs(60), || {
        let h = nodes[0].head().number;
        async move { Ok(h >= 1) }
    })
    .await?;
    let gh = nodes[0].genesis_hash();

    // Finality: one transfer at a time, submitted to each node in turn, timed until the
    // node it was submitted to has committed it.
    let alice = Pair::from_uri("//Alice").map_err(|e| bench_err(e.to_string()))?;
    let bob = Pair::from_uri("//Bob").map_err(|e| bench_err(e.to_string()))?;
    let mut clients = Vec::new();
    for u in &urls {
        clients.push(Client::connect(u).await?);
    }
    let mut samples = Vec::with_capacity(a.finality_samples);
    for k in 0..a.finality_samples {
        let tx = TxPayload {
            genesis_hash: gh,
            nonce: k as u64,
            valid_from: 0,
            valid_until: VALID_UNTIL,
            tip_rao: 0,
            call: Call::Transfer {
                dest: bob.account(),
                amount_rao: 1,
            },
        }
        .sign(&alice);
        let c = &clients[k % clients.len()];
        let t0 = Instant::now();
        let r = c
            .rpc()
            .submit_and_wait(tx_to_hex(&tx), Some(30_000))
            .await
            .map_err(agora_client::ClientError::from)?;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        if let Some(e) = r.error {
            return Err(bench_err(format!("finality transfer failed: {e:?}")));
        }
    }
    samples.sort_by(f64::total_cmp);
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0.0);
    let p90 = samples
        .get(samples.len().saturating_mul(9) / 10)
        .copied()
        .unwrap_or(0.0);
    eprintln!(
        "bench: finality p90 {p90:.1} ms over {} samples",
        samples.len()
    );

    let txs = sign_all(transfer_specs(&senders, per), gh);
    let checks_per_s = signature_checks_per_s(&txs)?;
    let (bft_rate, n) = push(&nodes[0], &urls, txs, a.clients, a.batch).await?;
    eprintln!("bench: BFT cluster committed {n} transfers");
    // Every node must hold the same chain.
    let head = nodes[0].head().number;
    for (i, node) in nodes.iter().enumerate() {
        wait_until(
            "all nodes at the same height",
            Duration::from_secs(30),
            || {
                let h = node.head().number;
                async move { Ok(h >= head) }
            },
        )
        .await?;
        let b = node
            .block_hash(head)?
            .ok_or_else(|| bench_err(format!("node {i} lacks block {head}")))?;
        let b0 = nodes[0]
            .block_hash(head)?
            .ok_or_else(|| bench_err("node 0 lacks its head"))?;
        if b != b0 {
            return Err(bench_err(format!("node {i} diverged at block {head}")));
        }
    }
    println!("finality_ms: {median:.1} ms");
    println!("bft_transfers_per_s: {} tx/s", bft_rate.round() as u64);
    println!("solo_transfers_per_s: {} tx/s", solo_rate.round() as u64);
    println!(
        "signature_checks_per_s: {} sig/s",
        checks_per_s.round() as u64
    );
    // Every replica checks every transfer's signature once; when all of them share this
    // machine's cores, that alone caps the cluster at this rate.
    println!(
        "bft_signature_bound_transfers_per_s: {} tx/s",
        (checks_per_s / a.nodes as f64).round() as u64
    );
    for node in nodes {
        node.stop().await;
    }
    Ok(())
}

/// Signatures the node's batched verifier checks per second on this machine's cores (the
/// same code and chunking that admission uses), over `txs`.
#[cfg(feature = "bft")]
fn signature_checks_per_s(txs: &[SignedTx]) -> Result<f64, NodeError> {
    let t0 = Instant::now();
    let ok = crate::verify::verify_all(txs);
    let secs = t0.elapsed().as_secs_f64();
    if ok.iter().any(|v| !v) {
        return Err(bench_err("a benchmark signature did not verify"));
    }
    Ok(txs.len() as f64 / secs.max(1e-9))
}

async fn ledger(a: LedgerBenchArgs) -> Result<(), NodeError> {
    if a.accounts == 0 || a.validators == 0 || a.validators >= usize::from(NEURONS) {
        return Err(bench_err("need at least one account and 1..256 validators"));
    }
    let dir = tempfile::tempdir().map_err(|e| NodeError::Io {
        path: "temporary directory".into(),
        source: e,
    })?;
    let senders: Vec<Pair> = (0..a.accounts)
        .into_par_iter()
        .map(|i| Pair::from_uri(&format!("//bench/sender/{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| bench_err(e.to_string()))?;
    let hotkeys: Vec<Pair> = (0..NEURONS)
        .into_par_iter()
        .map(|i| Pair::from_uri(&format!("//bench/hotkey/{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| bench_err(e.to_string()))?;
    let mut genesis = GenesisConfig::dev();
    genesis.chain_name = "agora-bench".into();
    let hp = &mut genesis.params.default_hyperparams;
    hp.tempo = 5;
    hp.max_registrations_per_block = NEURONS;
    hp.target_registrations_per_interval = NEURONS;
    hp.max_allowed_uids = NEURONS;
    genesis
        .endowed
        .extend(senders.iter().map(|p| (p.account(), 1_000 * RAO_PER_TOKEN)));
    let config = NodeConfig {
        block_time: Duration::from_millis(100),
        instant: true,
        max_block_txs: a.max_block_txs,
        genesis: Some(genesis),
        ..NodeConfig::dev(
            dir.path().join("node"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
    };
    let node = start(config).await?;
    let url = format!("http://{}", node.rpc_addr());
    let gh = node.genesis_hash();
    println!("bench: node on {url}, data in {}", dir.path().display());

    // --- transfers ---
    let per = a.transfers / a.accounts;
    let specs: Vec<(Pair, u64, Call)> = senders
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let dest = senders[(i + 1) % senders.len()].account();
            (0..per as u64).map(move |n| {
                (
                    p.clone(),
                    n,
                    Call::Transfer {
                        dest,
                        amount_rao: 1 + n,
                    },
                )
            })
        })
        .collect();
    let txs = sign_all(specs, gh);
    let (rate, n) = push(&node, std::slice::from_ref(&url), txs, a.clients, a.batch).await?;
    eprintln!("bench: {n} transfers committed");
    println!("transfers_per_s: {}", rate.round() as u64);

    // --- set_weights setup: a subnet of 256 neurons, validators staked and permitted ---
    let client = Arc::new(Client::connect(&url).await?);
    let owner = Pair::from_uri("//Alice").map_err(|e| bench_err(e.to_string()))?;
    let r = client
        .sign_submit_and_wait(
            &owner,
            Call::CreateSubnet {
                hotkey: hotkeys[0].account(),
            },
            TxOptions::default(),
        )
        .await?;
    let netuid = r
        .events
        .iter()
        .find_map(|e| match e {
            Event::SubnetCreated { netuid, .. } => Some(*netuid),
            _ => None,
        })
        .ok_or_else(|| bench_err(format!("subnet not created: {:?}", r.error)))?;
    let mut nonce = client
        .rpc()
        .next_nonce(owner.account().to_ss58())
        .await
        .map_err(agora_client::ClientError::from)?;
    let mut setup = Vec::new();
    for hk in hotkeys.iter().skip(1) {
        setup.push((
            owner.clone(),
            nonce,
            Call::BurnedRegister {
                netuid,
                hotkey: hk.account(),
            },
        ));
        nonce += 1;
    }
    for hk in hotkeys.iter().take(a.validators) {
        setup.push((
            owner.clone(),
            nonce,
            Call::AddStake {
                hotkey: hk.account(),
                amount_rao: 1_000 * RAO_PER_TOKEN,
            },
        ));
        nonce += 1;
    }
    let setup = sign_all(setup, gh);
    let (_, n) = push(&node, std::slice::from_ref(&url), setup, 1, 1_000).await?;
    eprintln!("bench: {n} setup transactions committed");
    let validators: Vec<Pair> = hotkeys.iter().take(a.validators).cloned().collect();
    let vset: Vec<_> = validators.iter().map(Pair::account).collect();
    {
        let client = client.clone();
        wait_until("validator permits", Duration::from_secs(60), move || {
            let client = client.clone();
            let vset = vset.clone();
            async move {
                let m = client
                    .rpc()
                    .metagraph(netuid.0)
                    .await
                    .map_err(agora_client::ClientError::from)?
                    .ok_or_else(|| bench_err("subnet vanished"))?;
                Ok(m.neurons.len() == usize::from(NEURONS)
                    && m.neurons
                        .iter()
                        .filter(|n| vset.contains(&n.hotkey))
                        .all(|n| n.validator_permit))
            }
        })
        .await?;
    }

    // --- set_weights ---
    let per = a.set_weights / a.validators;
    let uids: Vec<u16> = (0..NEURONS).collect();
    let specs: Vec<(Pair, u64, Call)> = validators
        .iter()
        .enumerate()
        .flat_map(|(v, p)| {
            let uids = uids.clone();
            (0..per as u64).map(move |n| {
                let values: Vec<u16> = (0..NEURONS)
                    .map(|u| ((u64::from(u) * 7919 + n * 31 + v as u64) % 65_535) as u16 + 1)
                    .collect();
                (
                    p.clone(),
                    n,
                    Call::SetWeights {
                        netuid: NetUid(netuid.0),
                        uids: uids.clone(),
                        values,
                        version_key: 0,
                    },
                )
            })
        })
        .collect();
    let txs = sign_all(specs, gh);
    let (rate, n) = push(&node, std::slice::from_ref(&url), txs, a.clients, a.batch).await?;
    eprintln!("bench: {n} set_weights committed");
    println!("set_weights_256_per_s: {}", rate.round() as u64);
    node.stop().await;
    Ok(())
}
