//! The node-facing verbs of the `agora` command line, as a library: the binary parses with
//! these `clap` types and calls the `run_*` functions.
//!
//! Client verbs talk to a node over JSON-RPC (`--rpc-url`, default
//! `http://127.0.0.1:9944`), print readable tables by default and JSON with `--json`.
//! Amounts are in tokens (`1.5`). Until wallets are wired, signing verbs take
//! `--key <SECRET_URI>`: a development secret URI such as `//Alice` or a phrase with a
//! derivation path; never use it for keys that hold real value.

use crate::mempool::MempoolLimits;
use crate::{NodeConfig, NodeError, DB_FILE, DEFAULT_MAX_BLOCK_TXS};
use agora_client::api::AgoraApiClient;
use agora_client::types::{Metagraph, TxReceipt};
use agora_client::{Client, TxOptions, DEFAULT_RPC_URL};
use agora_ledger::query::MetagraphNeuron;
use agora_ledger::types::Hyperparameter;
use agora_ledger::{commit_hash, Call, GenesisConfig};
use agora_primitives::{crypto::Pair, AccountId, Balance, NetUid};
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Parses `500ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 500ms, 2s or 1m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("unknown unit in '{s}': use ms, s or m")),
    };
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

/// `agora node`: run a node, or `agora node replay`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// Maintenance commands.
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
    /// Development chain: the well-known dev accounts (//Alice ... //Ferdie) funded, short
    /// tempos. Needed to create a new data directory.
    #[arg(long)]
    pub dev: bool,
    /// Directory for the database and genesis file (created if missing).
    #[arg(long, default_value = "agora-data")]
    pub data_dir: PathBuf,
    /// JSON-RPC listen address (HTTP and WebSocket on one port; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9944")]
    pub rpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address; none by default.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Time between blocks (e.g. 500ms, 1s); with --instant, the wait before an empty
    /// block.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub block_time: Duration,
    /// Seal a block as soon as transactions arrive (for tests and local development).
    #[arg(long)]
    pub instant: bool,
    /// Most transactions per block.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOCK_TXS)]
    pub max_block_txs: usize,
    /// Run as a BFT validator: blocks are decided with the other validators listed in
    /// `--config` (needs a binary built with the `bft` feature).
    #[arg(long, requires = "config")]
    pub bft: bool,
    /// The BFT node's configuration file (`node.toml`, as `agora testnet` writes).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `agora node` subcommands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Re-executes every stored block into a fresh store and checks every state root.
    Replay {
        /// The node's data directory (the node must be stopped).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// Runs a node until Ctrl-C or SIGTERM, then finishes the current block and exits.
pub async fn run_node(args: NodeArgs) -> Result<(), NodeError> {
    if let Some(NodeCommand::Replay { data_dir }) = args.command {
        return run_replay(&data_dir);
    }
    if args.bft {
        return run_bft_node(args.config.as_deref()).await;
    }
    let config = NodeConfig {
        data_dir: args.data_dir,
        genesis: args.dev.then(GenesisConfig::dev),
        rpc_addr: args.rpc_addr,
        metrics_addr: args.metrics_addr,
        block_time: args.block_time,
        instant: args.instant,
        max_block_txs: args.max_block_txs,
        mempool: MempoolLimits::default(),
    };
    let node = crate::start(config).await?;
    // A line scripts and tests can wait for.
    println!(
        "agora node: rpc=http://{} genesis={}",
        node.rpc_addr(),
        node.genesis_hash()
    );
    if let Some(m) = node.metrics_addr() {
        println!("agora node: metrics=http://{m}/metrics");
    }
    let _ = std::io::stdout().flush();
    wait_for_stop(&node).await;
    tracing::info!("shutting down");
    node.stop().await;
    Ok(())
}

#[cfg(feature = "bft")]
async fn run_bft_node(config: Option<&std::path::Path>) -> Result<(), NodeError> {
    let path = config.ok_or_else(|| NodeError::Input("--bft needs --config <node.toml>".into()))?;
    let file = crate::bft::BftFile::load(path)?;
    let (config, settings) = file.settings()?;
    let node = crate::bft::start(config, settings).await?;
    println!(
        "agora node: rpc=http://{} genesis={} bft={}",
        node.rpc_addr(),
        node.genesis_hash(),
        file.p2p_addr
    );
    if let Some(m) = node.metrics_addr() {
        println!("agora node: metrics=http://{m}/metrics");
    }
    let _ = std::io::stdout().flush();
    wait_for_stop(&node).await;
    tracing::info!("shutting down");
    node.stop().await;
    Ok(())
}

#[cfg(not(feature = "bft"))]
async fn run_bft_node(_config: Option<&std::path::Path>) -> Result<(), NodeError> {
    Err(NodeError::Input(
        "this binary was built without BFT support (cargo feature `bft`)".into(),
    ))
}

async fn wait_for_stop(node: &crate::NodeHandle) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        #[cfg(unix)]
        let term_fut = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term_fut = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term_fut => return,
            _ = tick.tick() => {
                if node.engine_stopped() {
                    tracing::error!("the block engine stopped");
                    return;
                }
            }
        }
    }
}

/// `agora node replay`: prints progress, and the mismatch if any.
pub fn run_replay(data_dir: &std::path::Path) -> Result<(), NodeError> {
    let genesis = crate::load_or_store_genesis(data_dir, None)?;
    let src = agora_store::Store::open(&data_dir.join(DB_FILE))?;
    let head = src.head()?;
    let tmp = tempfile::tempdir().map_err(|e| NodeError::Io {
        path: "temporary directory".into(),
        source: e,
    })?;
    let dst = tmp.path().join(DB_FILE);
    println!("replaying {} blocks of {}", head.number, data_dir.display());
    let step = (head.number / 10).max(1);
    let result = agora_store::replay(&src, &dst, &genesis, |done, total| {
        if done % step == 0 || done == total {
            println!("replayed {done}/{total}");
        }
    });
    match result {
        Ok(report) if report.state_root == head.state_root => {
            println!(
                "replay ok: {} blocks, state_root: {}",
                report.blocks, report.state_root
            );
            Ok(())
        }
        Ok(report) => {
            println!(
                "mismatch: replayed state root {} differs from head {}",
                report.state_root, head.state_root
            );
            Err(NodeError::Input(
                "replay found a state root mismatch".into(),
            ))
        }
        Err(e) => {
            println!("mismatch: {e}");
            Err(NodeError::Input(format!("replay failed: {e}")))
        }
    }
}

/// Where a client verb connects and how it prints.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "AGORA_RPC_URL", default_value = DEFAULT_RPC_URL, global = true)]
    pub rpc_url: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Who signs: a Bittensor-compatible wallet (`--wallet.name`, `--wallet.hotkey`,
/// `--wallet.path`; the coldkey for balance, subnet, registration and stake calls, the hotkey
/// for weights), or, for development, `--key` with a secret URI such as `//Alice`.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Sign with this development secret URI (e.g. `//Alice`, or a phrase with a path)
    /// instead of the wallet. Do not use it for valuable keys.
    #[arg(long = "key", value_name = "SECRET_URI")]
    pub key: Option<String>,
    /// The wallet.
    #[command(flatten)]
    pub wallet: agora_wallet::cli::WalletArgs,
    /// Where an encrypted coldkey's password comes from.
    #[command(flatten)]
    pub password: agora_wallet::cli::PasswordArgs,
    /// Tip in tokens, burned, to be ordered first.
    #[arg(long, default_value = "0")]
    pub tip: Balance,
}

/// Which of the wallet's keys signs a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyRole {
    Coldkey,
    Hotkey,
}

impl KeyArgs {
    fn pair(&self, role: KeyRole) -> Result<Pair, NodeError> {
        if let Some(uri) = &self.key {
            return Pair::from_uri(uri)
                .map_err(|e| NodeError::Input(format!("invalid --key secret URI: {e}")));
        }
        let wallet = self.wallet.wallet();
        let source = self.password.source();
        let loaded = match role {
            KeyRole::Coldkey => wallet.coldkey_pair(&source),
            KeyRole::Hotkey => wallet.hotkey_pair(&source),
        };
        loaded.map_err(|e| NodeError::Input(format!("{e} (or pass --key for a development key)")))
    }

    fn opts(&self) -> TxOptions {
        TxOptions {
            tip_rao: self.tip.rao(),
            ..TxOptions::default()
        }
    }
}

/// An account given as SS58 or, for development, as a secret URI starting with `//`.
fn parse_account(s: &str) -> Result<AccountId, NodeError> {
    if s.starts_with("//") {
        return Pair::from_uri(s)
            .map(|p| p.account())
            .map_err(|e| NodeError::Input(format!("invalid secret URI '{s}': {e}")));
    }
    AccountId::from_str(s.trim())
        .map_err(|e| NodeError::Input(format!("invalid SS58 address '{s}': {e}")))
}

fn parse_u16_list(what: &str, s: &str) -> Result<Vec<u16>, NodeError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u16>()
                .map_err(|_| NodeError::Input(format!("{what}: '{x}' is not a number 0..=65535")))
        })
        .collect()
}

fn tokens(rao: u64) -> String {
    Balance::from_rao(rao).to_string()
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), NodeError> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| NodeError::Input(format!("cannot print JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

/// A plain text table: left-aligned columns padded to their widest cell.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&w)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

async fn submit(
    conn: &ConnArgs,
    key: &KeyArgs,
    role: KeyRole,
    call: Call,
) -> Result<TxReceipt, NodeError> {
    let pair = key.pair(role)?;
    let client = Client::connect(&conn.rpc_url).await?;
    let name = call.name();
    let receipt = client.sign_submit_and_wait(&pair, call, key.opts()).await?;
    if conn.json {
        print_json(&receipt)?;
    } else {
        println!(
            "{name}: included in block {} at index {} (tx {}), fee {} tokens",
            receipt.block_number,
            receipt.index,
            receipt.tx_hash,
            tokens(receipt.fee_rao)
        );
    }
    if let Some(e) = &receipt.error {
        return Err(NodeError::Input(format!(
            "{name} failed in block {}: {} (code {})",
            receipt.block_number, e.message, e.code
        )));
    }
    Ok(receipt)
}

/// `agora transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Recipient (SS58).
    #[arg(long)]
    pub dest: String,
    /// Amount in tokens.
    #[arg(long)]
    pub amount: Balance,
    /// Signer.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Sends tokens.
pub async fn run_transfer(a: TransferArgs) -> Result<(), NodeError> {
    let call = Call::Transfer {
        dest: parse_account(&a.dest)?,
        amount_rao: a.amount.rao(),
    };
    submit(&a.conn, &a.key, KeyRole::Coldkey, call)
        .await
        .map(|_| ())
}

/// `agora subnet`.
#[derive(Args, Debug)]
pub struct SubnetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SubnetCommand,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `agora subnet` subcommands.
#[derive(Subcommand, Debug)]
pub enum SubnetCommand {
    /// Creates a subnet owned by the signer (locks the current lock cost) with `--hotkey`
    /// as uid 0.
    Create {
        /// The owner's hotkey (SS58).
        #[arg(long)]
        hotkey: String,
        /// Signer (the owner coldkey).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Lists subnets.
    List,
    /// Shows one subnet and its hyperparameters.
    Show {
        /// Subnet.
        #[arg(long)]
        netuid: u16,
    },
    /// Sets a hyperparameter (owner only): `--param tempo=100`, `--param
    /// commit_reveal_enabled=true`, `--param alpha_values=45875,58982`.
    Set {
        /// Subnet.
        #[arg(long)]
        netuid: u16,
        /// `name=value`, with the snake_case names of the hyperparameters.
        #[arg(long)]
        param: String,
        /// Signer (the owner coldkey).
        #[command(flatten)]
        key: KeyArgs,
    },
}

fn parse_hyperparameter(s: &str) -> Result<Hyperparameter, NodeError> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| NodeError::Input(format!("--param '{s}' must look like name=value")))?;
    let value = value.trim();
    let json_value: serde_json::Value = if value.contains(',') {
        let parts: Result<Vec<serde_json::Value>, _> = value
            .split(',')
            .map(|v| serde_json::from_str(v.trim()))
            .collect();
        serde_json::Value::Array(
            parts.map_err(|_| NodeError::Input(format!("bad value list '{value}'")))?,
        )
    } else {
        serde_json::from_str(value).map_err(|_| {
            NodeError::Input(format!("bad value '{value}': use a number or true/false"))
        })?
    };
    let tagged = serde_json::json!({ "name": name.trim(), "value": json_value });
    serde_json::from_value(tagged).map_err(|e| {
        NodeError::Input(format!(
            "unknown hyperparameter or value out of range in '{s}': {e}"
        ))
    })
}

/// Runs `agora subnet ...`.
pub async fn run_subnet(a: SubnetArgs) -> Result<(), NodeError> {
    match a.command {
        SubnetCommand::Create { hotkey, key } => {
            let call = Call::CreateSubnet {
                hotkey: parse_account(&hotkey)?,
            };
            let r = submit(&a.conn, &key, KeyRole::Coldkey, call).await?;
            if !a.conn.json {
                for e in &r.events {
                    if let agora_ledger::Event::SubnetCreated {
                        netuid, lock_rao, ..
                    } = e
                    {
                        println!(
                            "created subnet {netuid}, locked {} tokens",
                            tokens(*lock_rao)
                        );
                    }
                }
            }
            Ok(())
        }
        SubnetCommand::Set { netuid, param, key } => {
            let call = Call::SetHyperparameter {
                netuid: NetUid(netuid),
                param: parse_hyperparameter(&param)?,
            };
            submit(&a.conn, &key, KeyRole::Coldkey, call)
                .await
                .map(|_| ())
        }
        SubnetCommand::List => {
            let client = Client::connect(&a.conn.rpc_url).await?;
            let subnets = client
                .rpc()
                .subnets()
                .await
                .map_err(agora_client::ClientError::from)?;
            if a.conn.json {
                return print_json(&subnets);
            }
            let rows: Vec<Vec<String>> = subnets
                .iter()
                .map(|s| {
                    vec![
                        s.netuid.to_string(),
                        s.subnet.n.to_string(),
                        s.subnet.hyperparams.max_allowed_uids.to_string(),
                        s.subnet.hyperparams.tempo.to_string(),
                        tokens(s.subnet.burn_rao),
                        tokens(s.subnet.locked_rao),
                        s.subnet.owner_coldkey.to_string(),
                    ]
                })
                .collect();
            print_table(
                &["NETUID", "N", "MAX_N", "TEMPO", "BURN", "LOCKED", "OWNER"],
                &rows,
            );
            Ok(())
        }
        SubnetCommand::Show { netuid } => {
            let client = Client::connect(&a.conn.rpc_url).await?;
            let s = client
                .rpc()
                .subnet(netuid)
                .await
                .map_err(agora_client::ClientError::from)?
                .ok_or_else(|| NodeError::Input(format!("subnet {netuid} does not exist")))?;
            if a.conn.json {
                return print_json(&s);
            }
            let mut rows = vec![
                vec!["owner_coldkey".into(), s.owner_coldkey.to_string()],
                vec!["owner_hotkey".into(), s.owner_hotkey.to_string()],
                vec!["neurons".into(), s.n.to_string()],
                vec!["burn".into(), tokens(s.burn_rao)],
                vec!["locked".into(), tokens(s.locked_rao)],
                vec!["created_at".into(), s.created_at.to_string()],
                vec!["last_epoch_block".into(), s.last_epoch_block.to_string()],
            ];
            let hp = serde_json::to_value(&s.hyperparams)
                .map_err(|e| NodeError::Input(e.to_string()))?;
            if let serde_json::Value::Object(m) = hp {
                for (k, v) in m {
                    rows.push(vec![k, v.to_string()]);
                }
            }
            print_table(&["FIELD", "VALUE"], &rows);
            Ok(())
        }
    }
}

/// `agora register`.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Subnet.
    #[arg(long)]
    pub netuid: u16,
    /// Hotkey to register (SS58); the signer pays the burn and owns it.
    #[arg(long)]
    pub hotkey: String,
    /// Signer (the coldkey).
    #[command(flatten)]
    pub key: KeyArgs,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Registers a hotkey on a subnet by burning.
pub async fn run_register(a: RegisterArgs) -> Result<(), NodeError> {
    let call = Call::BurnedRegister {
        netuid: NetUid(a.netuid),
        hotkey: parse_account(&a.hotkey)?,
    };
    let r = submit(&a.conn, &a.key, KeyRole::Coldkey, call).await?;
    if !a.conn.json {
        for e in &r.events {
            if let agora_ledger::Event::NeuronRegistered {
                netuid,
                uid,
                burn_rao,
                ..
            } = e
            {
                println!(
                    "registered as uid {uid} on subnet {netuid}, burned {} tokens",
                    tokens(*burn_rao)
                );
            }
        }
    }
    Ok(())
}

/// `agora stake`.
#[derive(Args, Debug)]
pub struct StakeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StakeCommand,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `agora stake` subcommands.
#[derive(Subcommand, Debug)]
pub enum StakeCommand {
    /// Stakes free balance onto a hotkey.
    Add {
        /// Hotkey (SS58).
        #[arg(long)]
        hotkey: String,
        /// Amount in tokens.
        #[arg(long)]
        amount: Balance,
        /// Signer (the coldkey).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Unstakes back to free balance.
    Remove {
        /// Hotkey (SS58).
        #[arg(long)]
        hotkey: String,
        /// Amount in tokens.
        #[arg(long)]
        amount: Balance,
        /// Signer (the coldkey).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Lists a coldkey's stakes.
    List {
        /// The coldkey (SS58).
        #[arg(long)]
        coldkey: String,
    },
}

/// Runs `agora stake ...`.
pub async fn run_stake(a: StakeArgs) -> Result<(), NodeError> {
    match a.command {
        StakeCommand::Add {
            hotkey,
            amount,
            key,
        } => {
            let call = Call::AddStake {
                hotkey: parse_account(&hotkey)?,
                amount_rao: amount.rao(),
            };
            submit(&a.conn, &key, KeyRole::Coldkey, call)
                .await
                .map(|_| ())
        }
        StakeCommand::Remove {
            hotkey,
            amount,
            key,
        } => {
            let call = Call::RemoveStake {
                hotkey: parse_account(&hotkey)?,
                amount_rao: amount.rao(),
            };
            submit(&a.conn, &key, KeyRole::Coldkey, call)
                .await
                .map(|_| ())
        }
        StakeCommand::List { coldkey } => {
            let id = parse_account(&coldkey)?;
            let client = Client::connect(&a.conn.rpc_url).await?;
            let stakes = client
                .rpc()
                .stakes(id.to_ss58())
                .await
                .map_err(agora_client::ClientError::from)?;
            if a.conn.json {
                return print_json(&stakes);
            }
            let rows: Vec<Vec<String>> = stakes
                .iter()
                .map(|s| vec![s.hotkey.to_string(), tokens(s.stake_rao)])
                .collect();
            print_table(&["HOTKEY", "STAKE"], &rows);
            Ok(())
        }
    }
}

/// `agora weights`.
#[derive(Args, Debug)]
pub struct WeightsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WeightsCommand,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Weights and their salt, as given on the command line.
#[derive(Args, Debug)]
pub struct WeightValues {
    /// Subnet.
    #[arg(long)]
    pub netuid: u16,
    /// Target uids, comma-separated.
    #[arg(long)]
    pub uids: String,
    /// Weight per uid, comma-separated (any scale).
    #[arg(long)]
    pub values: String,
    /// Weights version key.
    #[arg(long, default_value_t = 0)]
    pub version_key: u64,
}

impl WeightValues {
    fn parse(&self) -> Result<(Vec<u16>, Vec<u16>), NodeError> {
        let uids = parse_u16_list("--uids", &self.uids)?;
        let values = parse_u16_list("--values", &self.values)?;
        if uids.len() != values.len() {
            return Err(NodeError::Input(format!(
                "{} uids but {} values",
                uids.len(),
                values.len()
            )));
        }
        Ok((uids, values))
    }
}

/// `agora weights` subcommands. The signer is the validator's hotkey.
#[derive(Subcommand, Debug)]
pub enum WeightsCommand {
    /// Sets weights directly.
    Set {
        /// The weights.
        #[command(flatten)]
        w: WeightValues,
        /// Signer (the hotkey).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Commits to weights to reveal later (commit-reveal subnets).
    Commit {
        /// The weights.
        #[command(flatten)]
        w: WeightValues,
        /// Salt, comma-separated u16 values; keep it for the reveal.
        #[arg(long)]
        salt: String,
        /// Signer (the hotkey).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Reveals committed weights.
    Reveal {
        /// The weights.
        #[command(flatten)]
        w: WeightValues,
        /// The salt used in the commit.
        #[arg(long)]
        salt: String,
        /// Signer (the hotkey).
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Runs `agora weights ...`.
pub async fn run_weights(a: WeightsArgs) -> Result<(), NodeError> {
    let (key, call) = match a.command {
        WeightsCommand::Set { w, key } => {
            let (uids, values) = w.parse()?;
            let call = Call::SetWeights {
                netuid: NetUid(w.netuid),
                uids,
                values,
                version_key: w.version_key,
            };
            (key, call)
        }
        WeightsCommand::Commit { w, salt, key } => {
            let (uids, values) = w.parse()?;
            let salt = parse_u16_list("--salt", &salt)?;
            let hotkey = key.pair(KeyRole::Hotkey)?.account();
            let h = commit_hash(
                &hotkey,
                NetUid(w.netuid),
                &uids,
                &values,
                &salt,
                w.version_key,
            );
            let call = Call::CommitWeights {
                netuid: NetUid(w.netuid),
                commit_hash: h,
            };
            (key, call)
        }
        WeightsCommand::Reveal { w, salt, key } => {
            let (uids, values) = w.parse()?;
            let call = Call::RevealWeights {
                netuid: NetUid(w.netuid),
                uids,
                values,
                salt: parse_u16_list("--salt", &salt)?,
                version_key: w.version_key,
            };
            (key, call)
        }
    };
    submit(&a.conn, &key, KeyRole::Hotkey, call)
        .await
        .map(|_| ())
}

/// `agora metagraph`.
#[derive(Args, Debug)]
pub struct MetagraphArgs {
    /// Subnet.
    #[arg(long)]
    pub netuid: u16,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn proportion(x: u16) -> String {
    format!("{:.4}", f64::from(x) / 65535.0)
}

/// Prints a subnet's metagraph; JSON is an array of neurons.
pub async fn run_metagraph(a: MetagraphArgs) -> Result<(), NodeError> {
    let client = Client::connect(&a.conn.rpc_url).await?;
    let m: Metagraph = client
        .rpc()
        .metagraph(a.netuid)
        .await
        .map_err(agora_client::ClientError::from)?
        .ok_or_else(|| NodeError::Input(format!("subnet {} does not exist", a.netuid)))?;
    if a.conn.json {
        return print_json(&m.neurons);
    }
    println!(
        "subnet {} at block {}: {} neurons",
        m.netuid,
        m.block,
        m.neurons.len()
    );
    let rows: Vec<Vec<String>> = m.neurons.iter().map(neuron_row).collect();
    print_table(
        &[
            "UID",
            "HOTKEY",
            "STAKE",
            "TRUST",
            "CONSENSUS",
            "INCENTIVE",
            "DIVIDENDS",
            "EMISSION",
            "VPERMIT",
            "UPDATED",
            "AXON",
        ],
        &rows,
    );
    Ok(())
}

fn neuron_row(n: &MetagraphNeuron) -> Vec<String> {
    let hk = n.hotkey.to_string();
    let short = if hk.len() > 12 {
        format!("{}…{}", &hk[..6], &hk[hk.len() - 4..])
    } else {
        hk
    };
    vec![
        n.uid.to_string(),
        short,
        tokens(n.stake),
        proportion(n.trust),
        proportion(n.consensus),
        proportion(n.incentive),
        proportion(n.dividends),
        tokens(n.emission),
        if n.validator_permit { "yes" } else { "no" }.into(),
        n.last_update.to_string(),
        n.axon
            .as_ref()
            .map_or_else(|| "-".into(), |a| format!("{}:{}", a.ip, a.port)),
    ]
}
