//! BFT replication with real processes: four `agora node --bft` validators on loopback.
//! Every check compares the block hash (which commits to the state root) of every height
//! on every live node, and looks up the receipt of every acknowledged transaction.

use crate::common::AGORA;
use agora_client::api::AgoraApiClient;
use agora_client::types::BlockId;
use agora_client::{tx_to_hex, Client};
use agora_ledger::types::ConsensusValidator;
use agora_ledger::GenesisConfig;
use agora_ledger::{Call, TxPayload};
use agora_node::bft::{
    local_cluster, loopback_ports, save_genesis, BftFile, ByzantineFile, PeerEntry,
};
use agora_primitives::{crypto::Pair, Hash};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP proxy for one directed link; `cut` drops its connections and refuses new ones.
struct Link {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Link {
    fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, k) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                {
                    let mut list = k.lock().unwrap();
                    list.push(inbound.try_clone().unwrap());
                    list.push(outbound.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Link { addr, cut, conns }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

struct Node {
    config: PathBuf,
    rpc: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(AGORA)
            .args(["node", "--bft", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info,libp2p=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start agora node --bft");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("agora node: rpc=") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            panic!(
                "bft node did not start; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        self.child = Some(child);
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.rpc)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    genesis: GenesisConfig,
    nodes: Vec<Node>,
    /// `links[i][j]`: how node i reaches node j, when proxied.
    links: Vec<Vec<Option<Link>>>,
}

impl Cluster {
    /// `n` validators; with `proxied`, every link between two nodes passes a [`Link`].
    fn start(n: usize, proxied: bool) -> Cluster {
        Cluster::start_with(n, proxied, None)
    }

    /// [`Cluster::start`]; node `byzantine`, if any, equivocates on every vote and
    /// proposal (Malachite's byzantine network proxy).
    fn start_with(n: usize, proxied: bool, byzantine: Option<usize>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = loopback_ports(2 * n).expect("free loopback ports");
        let local = local_cluster(n, 1, 1, 300, GenesisConfig::dev()).unwrap();
        save_genesis(&local.genesis, &dir.path().join("genesis.json")).unwrap();
        let mut files: Vec<BftFile> = local.files;
        let rpc: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], ports[i])))
            .collect();
        let p2p: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], ports[n + i])))
            .collect();
        let mut links: Vec<Vec<Option<Link>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut nodes = Vec::new();
        for (i, f) in files.iter_mut().enumerate() {
            f.rpc_addr = rpc[i];
            f.p2p_addr = p2p[i];
            f.peers.clear();
            for j in (0..n).filter(|&j| j != i) {
                let mut p2p_addr = p2p[j];
                if proxied {
                    let link = Link::start(p2p[j]);
                    p2p_addr = link.addr;
                    links[i][j] = Some(link);
                }
                f.peers.push(PeerEntry {
                    p2p_addr,
                    rpc_addr: rpc[j],
                });
            }
            if byzantine == Some(i) {
                f.byzantine = Some(ByzantineFile {
                    equivocate_votes: true,
                    equivocate_proposals: true,
                });
            }
            let home = dir.path().join(&f.moniker);
            std::fs::create_dir_all(&home).unwrap();
            let config = home.join("node.toml");
            f.save(&config).unwrap();
            nodes.push(Node {
                config,
                rpc: rpc[i],
                child: None,
                log: home.join("node.log"),
            });
        }
        for node in &mut nodes {
            node.start();
        }
        Cluster {
            dir,
            genesis: local.genesis,
            nodes,
            links,
        }
    }

    /// Cuts (or restores) every link between the two groups.
    fn partition(&self, a: &[usize], b: &[usize], cut: bool) {
        for &i in a {
            for &j in b {
                for (x, y) in [(i, j), (j, i)] {
                    if let Some(l) = &self.links[x][y] {
                        l.set_cut(cut);
                    }
                }
            }
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- node {i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn client(url: &str) -> Client {
    Client::connect(url).await.unwrap()
}

async fn head(url: &str) -> Option<u64> {
    let c = Client::connect(url).await.ok()?;
    c.rpc().head().await.ok().map(|h| h.number)
}

/// Waits until every listed node is at `height` or above.
async fn wait_height(cluster: &Cluster, which: &[usize], height: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut all = true;
        for &i in which {
            if head(&cluster.nodes[i].url()).await.unwrap_or(0) < height {
                all = false;
            }
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {which:?} did not reach height {height}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every height up to the lowest head among `which` holds the same block (hash, hence
/// state root) on each of them; returns that height.
async fn assert_same_chain(cluster: &Cluster, which: &[usize]) -> u64 {
    let mut clients = Vec::new();
    let mut min_head = u64::MAX;
    for &i in which {
        let c = client(&cluster.nodes[i].url()).await;
        min_head = min_head.min(c.rpc().head().await.unwrap().number);
        clients.push(c);
    }
    for h in 1..=min_head {
        let mut first: Option<(Hash, Hash)> = None;
        for (k, c) in clients.iter().enumerate() {
            let b = c
                .rpc()
                .block(BlockId::Number(h))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("node {} lacks block {h}", which[k]));
            let id = (b.hash, b.block.header.state_root);
            match first {
                None => first = Some(id),
                Some(f) => assert_eq!(f, id, "node {} diverges at height {h}", which[k]),
            }
        }
    }
    min_head
}

fn transfer(gh: Hash, from: &Pair, nonce: u64, amount: u64) -> String {
    let tx = TxPayload {
        genesis_hash: gh,
        nonce,
        valid_from: 0,
        valid_until: 1_000_000,
        tip_rao: 0,
        call: Call::Transfer {
            dest: Pair::from_uri("//Ferdie").unwrap().account(),
            amount_rao: amount,
        },
    }
    .sign(from);
    tx_to_hex(&tx)
}

/// Submits `count` transfers from `sender`, one at a time to the given nodes in turn,
/// each acknowledged as included; returns their hashes.
async fn submit_acked(
    cluster: &Cluster,
    to: &[usize],
    sender: &Pair,
    nonce: &mut u64,
    count: usize,
) -> Vec<Hash> {
    let gh = client(&cluster.nodes[to[0]].url())
        .await
        .rpc()
        .genesis_hash()
        .await
        .unwrap();
    let mut acked = Vec::new();
    for k in 0..count {
        let c = client(&cluster.nodes[to[k % to.len()]].url()).await;
        let r = c
            .rpc()
            .submit_and_wait(transfer(gh, sender, *nonce, 1 + k as u64), Some(30_000))
            .await
            .unwrap_or_else(|e| panic!("transfer {k} failed: {e}\n{}", cluster.logs()));
        assert!(r.error.is_none(), "transfer failed: {:?}", r.error);
        *nonce += 1;
        acked.push(r.tx_hash);
    }
    acked
}

async fn assert_all_included(cluster: &Cluster, which: &[usize], acked: &[Hash]) {
    for &i in which {
        let c = client(&cluster.nodes[i].url()).await;
        for h in acked {
            assert!(
                c.rpc().receipt(*h).await.unwrap().is_some(),
                "node {i} lost acknowledged transaction {h}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bft_agrees_survives_a_crash_catches_up_and_halts_without_quorum() {
    let mut cluster = Cluster::start(4, false);
    let all = [0, 1, 2, 3];
    wait_height(&cluster, &all, 2, Duration::from_secs(60)).await;
    let alice = Pair::from_uri("//Alice").unwrap();
    let mut nonce = 0;
    // Transactions submitted to every node are forwarded to the proposer and committed.
    let mut acked = submit_acked(&cluster, &all, &alice, &mut nonce, 8).await;
    let h = assert_same_chain(&cluster, &all).await;
    assert!(h >= 2);

    // One validator SIGKILLed: the other three keep deciding.
    cluster.nodes[3].kill();
    let before = head(&cluster.nodes[0].url()).await.unwrap();
    acked.extend(submit_acked(&cluster, &[0, 1, 2], &alice, &mut nonce, 4).await);
    wait_height(&cluster, &[0, 1, 2], before + 3, Duration::from_secs(30)).await;
    assert_same_chain(&cluster, &[0, 1, 2]).await;

    // Restarted, it catches up from its WAL and from the others.
    cluster.nodes[3].start();
    let target = head(&cluster.nodes[0].url()).await.unwrap();
    wait_height(&cluster, &all, target, Duration::from_secs(60)).await;
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;

    // Two of four down: no quorum, the chain halts safely...
    cluster.nodes[2].kill();
    cluster.nodes[3].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let halted = head(&cluster.nodes[0].url()).await.unwrap();
    let gh = client(&cluster.nodes[0].url())
        .await
        .rpc()
        .genesis_hash()
        .await
        .unwrap();
    let pending = client(&cluster.nodes[0].url())
        .await
        .rpc()
        .submit_transaction(transfer(gh, &alice, nonce, 77))
        .await
        .unwrap();
    nonce += 1;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in [0, 1] {
        assert_eq!(
            head(&cluster.nodes[i].url()).await.unwrap(),
            halted,
            "node {i} decided without a quorum"
        );
    }
    // ...and resumes when one returns, with the pending transaction.
    cluster.nodes[2].start();
    wait_height(&cluster, &[0, 1, 2], halted + 2, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let c0 = client(&cluster.nodes[0].url()).await;
    while c0.rpc().receipt(pending).await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "pending transaction never included"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acked.push(pending);
    cluster.nodes[3].start();
    let target = head(&cluster.nodes[0].url()).await.unwrap();
    wait_height(&cluster, &all, target, Duration::from_secs(60)).await;
    acked.extend(submit_acked(&cluster, &all, &alice, &mut nonce, 4).await);
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bft_partition_through_a_proxy_heals() {
    let cluster = Cluster::start(4, true);
    let all = [0, 1, 2, 3];
    wait_height(&cluster, &all, 2, Duration::from_secs(60)).await;
    let alice = Pair::from_uri("//Alice").unwrap();
    let mut nonce = 0;
    let mut acked = submit_acked(&cluster, &all, &alice, &mut nonce, 4).await;

    // Node 0 cut off: the majority side goes on, node 0 cannot decide alone.
    cluster.partition(&[0], &[1, 2, 3], true);
    let h0 = head(&cluster.nodes[0].url()).await.unwrap();
    acked.extend(submit_acked(&cluster, &[1, 2, 3], &alice, &mut nonce, 3).await);
    let majority = head(&cluster.nodes[1].url()).await.unwrap();
    assert!(majority > h0);
    assert!(head(&cluster.nodes[0].url()).await.unwrap() <= h0 + 1);

    // Healed: node 0 catches up and all agree.
    cluster.partition(&[0], &[1, 2, 3], false);
    wait_height(&cluster, &all, majority + 1, Duration::from_secs(60)).await;

    // A 2|2 split: neither side has a quorum; the chain halts, then resumes when healed.
    cluster.partition(&[0, 1], &[2, 3], true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck: Vec<u64> = {
        let mut v = Vec::new();
        for i in all {
            v.push(head(&cluster.nodes[i].url()).await.unwrap());
        }
        v
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in all {
        assert_eq!(
            head(&cluster.nodes[i].url()).await.unwrap(),
            stuck[i],
            "node {i} decided in a minority partition"
        );
    }
    cluster.partition(&[0, 1], &[2, 3], false);
    let top = stuck.iter().copied().max().unwrap_or(0);
    wait_height(&cluster, &all, top + 2, Duration::from_secs(90)).await;
    acked.extend(submit_acked(&cluster, &all, &alice, &mut nonce, 4).await);
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bft_node_killed_while_committing_never_applies_a_block_twice() {
    let mut cluster = Cluster::start(4, false);
    let all = [0, 1, 2, 3];
    wait_height(&cluster, &all, 2, Duration::from_secs(60)).await;
    let gh = client(&cluster.nodes[0].url())
        .await
        .rpc()
        .genesis_hash()
        .await
        .unwrap();
    // Background load from four senders through nodes 0..=2, so blocks carry
    // transactions while node 3 is killed at arbitrary moments of its commits.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (k, who) in ["//Bob", "//Charlie", "//Dave", "//Eve"]
        .into_iter()
        .enumerate()
    {
        let url = cluster.nodes[k % 3].url();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let pair = Pair::from_uri(who).unwrap();
            let c = Client::connect(&url).await.unwrap();
            let mut acked = Vec::new();
            let mut nonce = 0;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<String> =
                    (0..20).map(|i| transfer(gh, &pair, nonce + i, 1)).collect();
                let last = batch.last().cloned().unwrap();
                let out = c.rpc().submit_batch(batch).await.unwrap();
                assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
                let r = c.rpc().submit_and_wait(last, Some(30_000)).await;
                if let Ok(r) = r {
                    acked.extend(out.iter().filter_map(|o| o.hash));
                    let _ = r;
                }
                nonce += 20;
            }
            acked
        }));
    }
    for round in 0..4u64 {
        // Kill at a moment that moves relative to block commits.
        tokio::time::sleep(Duration::from_millis(700 + 173 * round)).await;
        cluster.nodes[3].kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.nodes[3].start();
        let target = head(&cluster.nodes[0].url()).await.unwrap();
        wait_height(&cluster, &all, target, Duration::from_secs(60)).await;
        assert_same_chain(&cluster, &all).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for l in load {
        acked.extend(l.await.unwrap());
    }
    assert!(!acked.is_empty());
    let target = head(&cluster.nodes[0].url()).await.unwrap();
    wait_height(&cluster, &all, target, Duration::from_secs(60)).await;
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;
    // The killed node's store replays block by block to every stored state root: a block
    // applied twice would have broken the chain of roots.
    cluster.nodes[3].kill();
    let data = cluster.nodes[3].config.parent().unwrap().join("data");
    let out = Command::new(AGORA)
        .args(["node", "replay", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bft_equivocating_validator_does_not_break_safety() {
    let cluster = Cluster::start_with(4, false, Some(3));
    let all = [0, 1, 2, 3];
    wait_height(&cluster, &[0, 1, 2], 3, Duration::from_secs(60)).await;
    let alice = Pair::from_uri("//Alice").unwrap();
    let mut nonce = 0;
    let acked = submit_acked(&cluster, &[0, 1, 2], &alice, &mut nonce, 6).await;
    let h = head(&cluster.nodes[0].url()).await.unwrap();
    wait_height(&cluster, &all, h + 2, Duration::from_secs(60)).await;
    // The honest three and the equivocator (whose application is honest) hold one chain.
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;
    let log = std::fs::read_to_string(&cluster.nodes[3].log).unwrap_or_default();
    assert!(
        log.contains("byzantine"),
        "the equivocating node did not run its proxy"
    );
    // The honest nodes saw the conflicting messages and kept them as evidence.
    let seen = (0..3).any(|i| {
        std::fs::read_to_string(&cluster.nodes[i].log)
            .unwrap_or_default()
            .contains("quivocation")
    });
    assert!(
        seen,
        "no honest node observed an equivocation\n{}",
        cluster.logs()
    );
}

/// Runs `agora node --bft --config <config>` expecting it to refuse to start; returns
/// what it printed.
fn refused_start(config: &std::path::Path) -> String {
    let mut child = Command::new(AGORA)
        .args(["node", "--bft", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a node that should have been refused kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn validators_of(url: &str) -> Vec<ConsensusValidator> {
    client(url)
        .await
        .rpc()
        .consensus_validators()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bft_validator_set_comes_from_committed_state_not_configuration() {
    let mut cluster = Cluster::start(4, false);
    let all = [0, 1, 2, 3];
    wait_height(&cluster, &all, 2, Duration::from_secs(60)).await;
    // Every node reads the genesis set back from its committed state.
    for i in all {
        assert_eq!(
            validators_of(&cluster.nodes[i].url()).await,
            cluster.genesis.consensus_validators,
            "node {i} holds another validator set"
        );
    }

    // While something else holds its P2P port, node 3 refuses to start rather than run
    // without hearing its peers.
    cluster.nodes[3].kill();
    let p2p = BftFile::load(&cluster.nodes[3].config).unwrap().p2p_addr;
    let squatter = TcpListener::bind(p2p).unwrap();
    let out = refused_start(&cluster.nodes[3].config);
    assert!(
        out.contains("p2p") && out.contains(&p2p.to_string()),
        "unexpected refusal: {out}"
    );
    drop(squatter);

    // Node 3 tries to claim all the voting power with a genesis of its own.
    let mut rogue = cluster.genesis.clone();
    let own = rogue.consensus_validators[3].clone();
    rogue.consensus_validators = vec![ConsensusValidator {
        public_key: own.public_key,
        power: 100,
    }];
    let rogue_path = cluster.dir.path().join("rogue-genesis.json");
    save_genesis(&rogue, &rogue_path).unwrap();
    let config = cluster.nodes[3].config.clone();
    let honest = BftFile::load(&config).unwrap();
    let original = std::fs::read_to_string(&config).unwrap();
    let mut file = honest.clone();
    file.genesis = rogue_path.clone();
    file.save(&config).unwrap();
    // On its existing data directory it cannot start: the chain there is the other one.
    let out = refused_start(&config);
    assert!(out.contains("genesis"), "unexpected refusal: {out}");
    // A configuration that lists validators is refused outright.
    std::fs::write(
        &config,
        format!(
            "{original}\n[[validators]]\npublic_key = \"{}\"\npower = 100\n",
            own.public_key
                .0
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    )
    .unwrap();
    let out = refused_start(&config);
    assert!(
        out.contains("validators") && out.contains("genesis"),
        "unexpected refusal: {out}"
    );

    // On a fresh data directory it runs, but on a chain of its own: the others neither
    // follow it nor stop, and keep the genesis set.
    file.data_dir = cluster.dir.path().join("rogue-data");
    file.save(&config).unwrap();
    cluster.nodes[3].start();
    let c3 = client(&cluster.nodes[3].url()).await;
    let c0 = client(&cluster.nodes[0].url()).await;
    assert_ne!(
        c3.rpc().genesis_hash().await.unwrap(),
        c0.rpc().genesis_hash().await.unwrap()
    );
    let before = head(&cluster.nodes[0].url()).await.unwrap();
    let alice = Pair::from_uri("//Alice").unwrap();
    let mut nonce = 0;
    let acked = submit_acked(&cluster, &[0, 1, 2], &alice, &mut nonce, 3).await;
    wait_height(&cluster, &[0, 1, 2], before + 3, Duration::from_secs(60)).await;
    assert_same_chain(&cluster, &[0, 1, 2]).await;
    for i in [0, 1, 2] {
        assert_eq!(
            validators_of(&cluster.nodes[i].url()).await,
            cluster.genesis.consensus_validators
        );
    }
    let rogue_head = head(&cluster.nodes[3].url()).await.unwrap();
    for h in 1..=rogue_head.min(head(&cluster.nodes[0].url()).await.unwrap()) {
        let theirs = c3.rpc().block(BlockId::Number(h)).await.unwrap();
        let ours = c0.rpc().block(BlockId::Number(h)).await.unwrap();
        assert_ne!(
            theirs.map(|b| b.hash),
            ours.map(|b| b.hash),
            "the honest chain took block {h} from the rogue genesis"
        );
    }

    // Back on its own configuration, it rejoins and agrees.
    cluster.nodes[3].kill();
    std::fs::write(&config, original).unwrap();
    cluster.nodes[3].start();
    let target = head(&cluster.nodes[0].url()).await.unwrap();
    wait_height(&cluster, &all, target, Duration::from_secs(60)).await;
    assert_same_chain(&cluster, &all).await;
    assert_all_included(&cluster, &all, &acked).await;
    assert_eq!(
        validators_of(&cluster.nodes[3].url()).await,
        cluster.genesis.consensus_validators
    );
}
