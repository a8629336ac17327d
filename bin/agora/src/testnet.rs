//! `agora testnet`: a local BFT cluster on loopback.
//!
//! Writes the chain's `genesis.json` (the development chain with fresh ed25519 consensus
//! keys as its validator set) and one `node.toml` per validator (its key, its addresses,
//! the others as static peers), starts each as a child process `agora node --bft --config
//! …`, prints where they serve RPC and waits. Ctrl-C or SIGTERM stops every child
//! (SIGTERM, then SIGKILL after a grace period).

use crate::children::{spawn, Children};
use agora_ledger::GenesisConfig;
use agora_node::bft::{local_cluster, save_genesis};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `agora testnet` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct TestnetArgs {
    /// Validators to start.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Where the configuration files, data and logs go (wiped at start).
    #[arg(long, default_value = ".testnet")]
    pub dir: PathBuf,
    /// RPC port of node 0; node i uses this plus i.
    #[arg(long, default_value_t = 26_657)]
    pub rpc_port: u16,
    /// P2P port of node 0; node i uses this plus i.
    #[arg(long, default_value_t = 27_657)]
    pub p2p_port: u16,
    /// Longest wait for transactions before an empty block, ms.
    #[arg(long, default_value_t = 1000)]
    pub block_time_ms: u64,
}

pub(crate) async fn run(a: TestnetArgs) -> Result<()> {
    let mut genesis = GenesisConfig::dev();
    genesis.chain_name = "agora-testnet".into();
    let cluster = local_cluster(a.nodes, a.rpc_port, a.p2p_port, a.block_time_ms, genesis)?;
    let files = cluster.files;
    if a.dir.exists() {
        std::fs::remove_dir_all(&a.dir).with_context(|| format!("wiping {}", a.dir.display()))?;
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    save_genesis(&cluster.genesis, &a.dir.join("genesis.json"))?;
    let exe = std::env::current_exe().context("locating the agora binary")?;
    let mut children = Children(Vec::new());
    let mut ready = Vec::new();
    for f in &files {
        let dir = a.dir.join(&f.moniker);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = dir.join("node.toml");
        f.save(&config)?;
        let log = dir.join("node.log");
        let args = ["node", "--bft", "--config", &config.display().to_string()].map(String::from);
        let (child, rx) = spawn(&exe, &args, &log)?;
        children.0.push((f.moniker.clone(), child));
        ready.push((f.moniker.clone(), rx, log));
    }
    for (name, rx, log) in &ready {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("agora node: rpc=") => {
                    println!("{name}: {}", line.trim_start_matches("agora node: "));
                    break;
                }
                Ok(_) => {}
                Err(_) => bail!("{name} did not start; see {}", log.display()),
            }
        }
    }
    println!(
        "testnet: {} validators running; configuration and logs in {}; Ctrl-C stops them",
        files.len(),
        a.dir.display()
    );
    agora_subnet::cli::shutdown_signal().await;
    drop(children);
    Ok(())
}
