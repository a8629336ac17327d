//! Command-line arguments every subnet's miner and validator share, with Bittensor's flag
//! names (`--netuid`, `--wallet.*`, `--axon.*`, `--subtensor.chain_endpoint`).

use crate::{MinerConfig, SubnetError, ValidatorConfig};
use agora_primitives::{crypto::Pair, AccountId, Balance, NetUid};
use agora_wallet::cli::{PasswordArgs, WalletArgs};
use std::{net::SocketAddr, time::Duration};

/// Which chain, which subnet, which keys.
#[derive(clap::Args, Debug, Clone)]
pub struct NeuronArgs {
    /// The node's RPC endpoint (`ws://` so that the metagraph follows new blocks).
    #[arg(
        long = "subtensor.chain_endpoint",
        visible_alias = "rpc-url",
        default_value = "ws://127.0.0.1:9944"
    )]
    pub rpc_url: String,
    /// The subnet.
    #[arg(long)]
    pub netuid: u16,
    /// The wallet holding the coldkey (pays registration and stake) and the hotkey.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Where the coldkey's password comes from, if it is encrypted.
    #[command(flatten)]
    pub password: PasswordArgs,
}

impl NeuronArgs {
    /// The subnet id.
    pub fn netuid(&self) -> NetUid {
        NetUid(self.netuid)
    }

    /// Loads the coldkey and hotkey pairs.
    pub fn keys(&self) -> Result<(Pair, Pair), SubnetError> {
        let wallet = self.wallet.wallet();
        let source = self.password.source();
        Ok((wallet.coldkey_pair(&source)?, wallet.hotkey_pair(&source)?))
    }
}

/// Where a miner's axon listens and what it publishes.
#[derive(clap::Args, Debug, Clone)]
pub struct AxonArgs {
    /// IP to listen on.
    #[arg(long = "axon.ip", default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long = "axon.port", default_value_t = 8091)]
    pub port: u16,
    /// IP published on chain, when it differs from the listen IP (behind NAT).
    #[arg(long = "axon.external_ip")]
    pub external_ip: Option<String>,
    /// Port published on chain, when it differs from the listen port (a port forward).
    #[arg(long = "axon.external_port")]
    pub external_port: Option<u16>,
    /// Serve only callers holding a validator permit.
    #[arg(long = "axon.require_permit")]
    pub require_permit: bool,
    /// A hotkey (SS58) served whatever its standing on the subnet and without the
    /// per-hotkey rate limit: a gateway that forwards users' requests. Repeatable.
    #[arg(long = "axon.trusted_hotkey", value_name = "SS58")]
    pub trusted_hotkeys: Vec<AccountId>,
}

impl AxonArgs {
    /// The listen address.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The IP to publish.
    pub fn external_ip(&self) -> String {
        self.external_ip
            .clone()
            .unwrap_or_else(|| self.ip.to_string())
    }

    /// A miner's configuration from the shared flags: keys from the wallet, the axon's
    /// addresses and admission rules, no attestation.
    pub fn miner_config(&self, neuron: &NeuronArgs) -> Result<MinerConfig, SubnetError> {
        let (coldkey, hotkey) = neuron.keys()?;
        Ok(MinerConfig {
            rpc_url: neuron.rpc_url.clone(),
            netuid: neuron.netuid(),
            coldkey,
            hotkey,
            listen: self.listen(),
            external_ip: self.external_ip(),
            require_validator_permit: self.require_permit,
            trusted_hotkeys: self.trusted_hotkeys.clone(),
            external_port: self.external_port,
            attestation_digest: None,
        })
    }
}

/// How a validator paces itself.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidatorLoopArgs {
    /// Stake to keep on the hotkey, in tokens.
    #[arg(long, default_value = "100")]
    pub stake: Balance,
    /// Seconds between query rounds.
    #[arg(long, default_value_t = 2.0)]
    pub round_interval_s: f64,
    /// Per-query timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub query_timeout_s: f64,
    /// Weight of each new sample in a uid's moving-average score.
    #[arg(long, default_value_t = 0.3)]
    pub score_alpha: f64,
    /// Blocks between weight submissions (at least the subnet's rate limit).
    #[arg(long, default_value_t = 5)]
    pub weights_every_blocks: u64,
    /// Seed for reproducible challenges.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Serve Prometheus `/metrics` on this address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
}

fn seconds(name: &str, s: f64) -> Result<Duration, SubnetError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| SubnetError::Usage(format!("--{name} must be a positive number of seconds")))
}

impl ValidatorLoopArgs {
    /// A validator configuration for `neuron`.
    pub fn config(&self, neuron: &NeuronArgs) -> Result<ValidatorConfig, SubnetError> {
        let (coldkey, hotkey) = neuron.keys()?;
        if !(self.score_alpha > 0.0 && self.score_alpha <= 1.0) {
            return Err(SubnetError::Usage("--score-alpha must be in (0, 1]".into()));
        }
        Ok(ValidatorConfig {
            rpc_url: neuron.rpc_url.clone(),
            netuid: neuron.netuid(),
            coldkey,
            hotkey,
            stake_rao: self.stake.rao(),
            round_interval: seconds("round-interval-s", self.round_interval_s)?,
            query_timeout: seconds("query-timeout-s", self.query_timeout_s)?,
            score_alpha: self.score_alpha,
            weights_every_blocks: self.weights_every_blocks,
            seed: self.seed,
            metrics_addr: self.metrics_addr,
        })
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The line a neuron prints on stdout once it is on chain and serving, for scripts and
/// `agora devnet`: `{"event":"ready","role":..,"netuid":..,"uid":..,"hotkey":..,"url":..}`.
pub fn ready_line(
    role: &str,
    netuid: NetUid,
    uid: u16,
    hotkey: &Pair,
    url: Option<String>,
) -> String {
    serde_json::json!({
        "event": "ready",
        "role": role,
        "netuid": netuid.0,
        "uid": uid,
        "hotkey": hotkey.account().to_ss58(),
        "url": url,
    })
    .to_string()
}

/// What a miner calls once it serves: prints its [`ready_line`] with the axon's URL.
pub fn print_miner_ready(config: &MinerConfig) -> impl FnOnce(u16, SocketAddr) + Send + 'static {
    let (netuid, hotkey) = (config.netuid, config.hotkey.clone());
    move |uid, addr| {
        println!(
            "{}",
            ready_line(
                "miner",
                netuid,
                uid,
                &hotkey,
                Some(format!("http://{addr}"))
            )
        );
    }
}
