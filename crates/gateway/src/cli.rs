//! `agora gateway ...`: flags and the commands, so the binary only parses and hands off.
//!
//! ```text
//! agora gateway --keys FILE [--rpc-url URL --netuid N | --miner URL=HOTKEY ...]
//!               [--listen 127.0.0.1:8000] [--usage-file FILE] [wallet flags | --key URI]
//! agora gateway add-key --keys FILE --name NAME [--requests-per-minute 600] [--burst N]
//!               [--token-quota N]
//! ```

use crate::{
    discovery::{MinerSource, StaticMiner},
    keys::{self, KeyStore},
    GatewayConfig, GatewayError, PrivateConfig,
};
use agora_client::{Client, MetagraphCache};
use agora_primitives::{crypto::Pair, NetUid};
use agora_wallet::cli::{PasswordArgs, WalletArgs};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

/// `agora gateway`: serve (the default) or manage keys.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayCli {
    /// A key-management command; without one, the gateway serves.
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// Serving flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Key management.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum GatewayCommand {
    /// Creates an API key, adds its hash to the keys file, and prints the key (shown once).
    AddKey(AddKeyArgs),
}

/// `agora gateway add-key`.
#[derive(clap::Args, Debug, Clone)]
pub struct AddKeyArgs {
    /// The keys file (created if missing).
    #[arg(long)]
    pub keys: PathBuf,
    /// The key's unique name; usage is accounted under it.
    #[arg(long)]
    pub name: String,
    /// Sustained requests per minute.
    #[arg(long, default_value_t = 600)]
    pub requests_per_minute: u32,
    /// Requests at once after a quiet period (default: a tenth of a minute's).
    #[arg(long)]
    pub burst: Option<u32>,
    /// Total tokens the key may use.
    #[arg(long)]
    pub token_quota: Option<u64>,
}

/// `agora gateway` serving flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The keys file (see `agora gateway add-key`).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// The node's RPC endpoint (`ws://`, so that the metagraph follows new blocks).
    #[arg(long = "rpc-url", visible_alias = "subtensor.chain_endpoint")]
    pub rpc_url: Option<String>,
    /// The inference subnet whose miners serve requests.
    #[arg(long)]
    pub netuid: Option<u16>,
    /// A miner to use instead of the metagraph's: `URL=HOTKEY_SS58` (repeatable).
    #[arg(long = "miner", value_name = "URL=HOTKEY")]
    pub miners: Vec<StaticMiner>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Where usage is kept (default: the keys file's name with `.usage.json`).
    #[arg(long)]
    pub usage_file: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Seconds from a request's arrival to its whole answer or its first streamed event.
    #[arg(long, default_value_t = 120.0)]
    pub timeout_s: f64,
    /// Miners tried per request before giving up.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: usize,
    /// Seconds between probes of the miners' `/health` and `/v1/models`.
    #[arg(long, default_value_t = 10.0)]
    pub probe_interval_s: f64,
    /// Serve private requests (`/v1/private/...`): relay sealed requests to miners whose TEE
    /// evidence verifies under `--tee-policy` and matches the digest they put on chain.
    /// Needs `--rpc-url` and `--netuid`.
    #[arg(long)]
    pub private: bool,
    /// The subnet's TEE policy JSON for `--private` (default: UpToDate TCB only, no debug,
    /// any image).
    #[arg(long, requires = "private")]
    pub tee_policy: Option<PathBuf>,
    /// INSECURE, development only: with `--private`, also accept evidence signed by the
    /// public test PKI (`agora miner inference --insecure-mock-tee`).
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee", requires = "private")]
    pub insecure_mock_tee: bool,
    /// A development secret URI (e.g. `//Alice`) for the gateway's hotkey instead of the wallet.
    #[arg(long = "key", value_name = "SECRET_URI")]
    pub key_uri: Option<String>,
    /// The wallet holding the gateway's hotkey.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Where the hotkey's password comes from, if it is encrypted.
    #[command(flatten)]
    pub password: PasswordArgs,
}

fn seconds(name: &str, s: f64) -> Result<Duration, GatewayError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            GatewayError::Usage(format!("--{name} must be a positive number of seconds"))
        })
}

impl ServeArgs {
    /// The gateway's hotkey.
    pub fn hotkey(&self) -> Result<Pair, GatewayError> {
        match &self.key_uri {
            Some(uri) => Pair::from_uri(uri)
                .map_err(|e| GatewayError::Usage(format!("invalid --key secret URI: {e}"))),
            None => Ok(self.wallet.wallet().hotkey_pair(&self.password.source())?),
        }
    }

    /// The private path's settings, when `--private` is given.
    pub fn private_config(&self) -> Result<Option<PrivateConfig>, GatewayError> {
        if !self.private {
            return Ok(None);
        }
        let netuid =
            match (self.netuid, self.miners.is_empty()) {
                (Some(n), true) => n,
                _ => return Err(GatewayError::Usage(
                    "--private needs --rpc-url and --netuid: miners' attestation digests are read \
                     from the chain"
                        .into(),
                )),
            };
        let policy = match &self.tee_policy {
            Some(p) => Some(std::fs::read(p).map_err(|source| GatewayError::Io {
                path: p.display().to_string(),
                source,
            })?),
            None => None,
        };
        #[cfg(feature = "insecure-mock-tee")]
        let test_pki = self.insecure_mock_tee;
        #[cfg(not(feature = "insecure-mock-tee"))]
        let test_pki = false;
        if test_pki {
            tracing::warn!("INSECURE: trusting the test PKI's TEE evidence (--insecure-mock-tee)");
        }
        let (policy, anchors) = agora_tee::subnet_trust(policy.as_deref(), test_pki)
            .map_err(|e| GatewayError::Usage(format!("TEE trust: {e}")))?;
        Ok(Some(PrivateConfig {
            netuid,
            policy,
            anchors,
        }))
    }

    /// The configuration these flags describe.
    pub fn config(&self, keys: &std::path::Path) -> Result<GatewayConfig, GatewayError> {
        if self.max_attempts == 0 {
            return Err(GatewayError::Usage(
                "--max-attempts must be at least 1".into(),
            ));
        }
        let usage_path = self.usage_file.clone().unwrap_or_else(|| {
            let mut p = keys.as_os_str().to_owned();
            p.push(".usage.json");
            PathBuf::from(p)
        });
        Ok(GatewayConfig {
            private: self.private_config()?,
            max_body_bytes: self.max_body_bytes,
            request_timeout: seconds("timeout-s", self.timeout_s)?,
            max_attempts: self.max_attempts,
            probe_interval: seconds("probe-interval-s", self.probe_interval_s)?,
            usage_path: Some(usage_path),
            ..GatewayConfig::default()
        })
    }
}

/// Runs `agora gateway ...`.
pub async fn run(cli: GatewayCli) -> Result<(), GatewayError> {
    if let Some(GatewayCommand::AddKey(a)) = cli.command {
        let key = keys::add_key(
            &a.keys,
            &a.name,
            a.requests_per_minute,
            a.burst,
            a.token_quota,
        )?;
        println!("{key}");
        eprintln!(
            "added key {:?} to {} (only its hash is stored: keep the key now)",
            a.name,
            a.keys.display()
        );
        return Ok(());
    }
    serve(cli.serve).await
}

async fn serve(a: ServeArgs) -> Result<(), GatewayError> {
    let keys_path = a
        .keys
        .clone()
        .ok_or_else(|| GatewayError::Usage("--keys FILE is required".into()))?;
    let keys = KeyStore::load(&keys_path)?;
    let config = a.config(&keys_path)?;
    let hotkey = a.hotkey()?;
    let source = if !a.miners.is_empty() {
        MinerSource::Static(a.miners.clone())
    } else {
        let (Some(url), Some(netuid)) = (&a.rpc_url, a.netuid) else {
            return Err(GatewayError::Usage(
                "give --rpc-url and --netuid, or at least one --miner URL=HOTKEY".into(),
            ));
        };
        let client = Arc::new(Client::connect(url).await?);
        let (cache, _follow) = MetagraphCache::spawn(client, NetUid(netuid), 1).await?;
        MinerSource::Metagraph(cache)
    };
    let (gw, probe) = crate::build(config, keys, hotkey.clone())?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: a.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(GatewayError::Serve)?;
    crate::discovery::refresh(&gw, &source, &probe).await;
    tracing::info!(
        %addr,
        hotkey = %hotkey.account(),
        miners = gw.pool.snapshot().len(),
        models = gw.models().len(),
        "gateway serving"
    );
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "role": "gateway",
            "url": format!("http://{addr}"),
            "hotkey": hotkey.account().to_ss58(),
        })
    );
    crate::serve(gw, probe, source, listener, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    #[allow(clippy::large_enum_variant)]
    enum Top {
        Gateway(GatewayCli),
        Bench(crate::bench::GatewayBenchArgs),
    }

    #[test]
    fn flags_parse() {
        Cli::command().debug_assert();
        let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let cli = Cli::try_parse_from([
            "agora",
            "gateway",
            "--keys",
            "k.json",
            "--miner",
            &format!("http://127.0.0.1:1={alice}"),
            "--listen",
            "127.0.0.1:0",
            "--key",
            "//Alice",
        ])
        .unwrap();
        let Top::Gateway(g) = cli.command else {
            panic!("gateway")
        };
        assert!(g.command.is_none());
        assert_eq!(g.serve.miners.len(), 1);
        let config = g.serve.config(std::path::Path::new("k.json")).unwrap();
        assert_eq!(
            config.usage_path.unwrap(),
            PathBuf::from("k.json.usage.json")
        );
        let cli = Cli::try_parse_from([
            "agora", "gateway", "add-key", "--keys", "k.json", "--name", "a",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Top::Gateway(GatewayCli {
                command: Some(GatewayCommand::AddKey(_)),
                ..
            })
        ));
        assert!(Cli::try_parse_from(["agora", "gateway", "--miner", "nonsense"]).is_err());
    }
}
