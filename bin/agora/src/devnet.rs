//! `agora devnet`: a whole network on one machine.
//!
//! Starts a node on a fresh data directory, funds a coldkey per neuron from the dev account
//! `//Alice`, creates the compute, inference and training subnets (inference serving a tiny
//! test model written on the spot, or `--model DIR`, behind an OpenAI-compatible gateway;
//! training running rounds of a tiny Mixture-of-Experts model whose checkpoints the inference
//! engine can serve), writes a wallet per neuron (Bittensor layout, keys
//! unencrypted: they hold devnet tokens only), starts miners and validators as child processes
//! on loopback ports, writes `devnet.json` and waits. Ctrl-C or SIGTERM stops every child
//! cleanly (SIGTERM, then SIGKILL after a grace period).

use crate::children::{spawn, Children};
use agora_client::{api::AgoraApiClient, Client};
use agora_inference::engine::testmodel::{write_test_model, GgufQuant, ModelFormat, TestModelSpec};
use agora_inference::engine::Arch;
use agora_ledger::{Call, TxPayload};
use agora_primitives::{crypto::Pair, hashing::blake2_256, NetUid, RAO_PER_TOKEN};
use agora_wallet::{Keypair, Wallet};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `agora devnet` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct DevnetArgs {
    /// Where the node's database, the wallets, the logs and devnet.json go (wiped at start).
    #[arg(long, default_value = ".devnet")]
    pub data_dir: PathBuf,
    /// Miners on the compute subnet.
    #[arg(long, default_value_t = 8)]
    pub miners: usize,
    /// Validators on the compute subnet.
    #[arg(long, default_value_t = 2)]
    pub validators: usize,
    /// Behaviour of each miner in order (`honest`, `wrong`, `lazy`, `slow:<ms>`), comma
    /// separated; miners beyond the list are honest.
    #[arg(long, value_delimiter = ',', default_value = "honest")]
    pub miner_behaviours: Vec<String>,
    /// The node's RPC port (0 picks a free one).
    #[arg(long, default_value_t = 9944)]
    pub rpc_port: u16,
    /// Time between blocks.
    #[arg(long, default_value = "500ms")]
    pub block_time: String,
    /// Matrix side of the validators' challenges.
    #[arg(long, default_value_t = 64)]
    pub matrix_size: u16,
    /// Miners on the inference subnet (0 leaves the inference subnet and gateway out).
    #[arg(long, default_value_t = 2)]
    pub inference_miners: usize,
    /// Behaviour of each inference miner in order (`honest`, `truncate`, `fabricate`),
    /// comma separated; miners beyond the list are honest.
    #[arg(long, value_delimiter = ',', default_value = "honest")]
    pub inference_miner_behaviours: Vec<String>,
    /// The model the inference subnet serves, a local directory; by default a tiny
    /// deterministic test model is written into the data directory.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The name clients ask the gateway for the served model by.
    #[arg(long, default_value = DEVNET_MODEL_ID)]
    pub served_model_name: String,
    /// The gateway's port (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    pub gateway_port: u16,
    /// Miners on the training subnet (0 leaves the training subnet out). They train a tiny
    /// Mixture-of-Experts model on the Shakespeare cache when present, else on synthetic
    /// text; one validator runs the rounds and writes the checkpoints.
    #[arg(long, default_value_t = 2)]
    pub training_miners: usize,
    /// Behaviour of each training miner in order (`honest`, `zeros`, `noise`, `copy`,
    /// `wrong-data`, `stale`), comma separated; miners beyond the list are honest.
    #[arg(long, value_delimiter = ',', default_value = "honest")]
    pub training_miner_behaviours: Vec<String>,
    /// INSECURE, development only: the inference miners attest with the test PKI and the
    /// gateway serves private requests (`agora private chat --insecure-mock-tee ...`).
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee")]
    pub insecure_mock_tee: bool,
}

impl DevnetArgs {
    fn mock_tee(&self) -> bool {
        #[cfg(feature = "insecure-mock-tee")]
        return self.insecure_mock_tee;
        #[cfg(not(feature = "insecure-mock-tee"))]
        false
    }
}

/// The model id the devnet's inference neurons serve and ask for.
const DEVNET_MODEL_ID: &str = "agora-devnet-llama";
/// The gateway's hotkey (a dev derivation; it holds nothing).
const GATEWAY_KEY_URI: &str = "//AgoraDevnetGateway";

/// A neuron as `devnet.json` lists it.
#[derive(Serialize, Debug, Clone)]
struct NeuronEntry {
    netuid: u16,
    uid: u16,
    hotkey: String,
    url: Option<String>,
    /// The neuron's process id, for operators (and tests) that stop one on purpose.
    pid: u32,
}

#[derive(Serialize, Debug)]
struct DevnetFile {
    rpc_url: String,
    netuids: Vec<u16>,
    miners: Vec<NeuronEntry>,
    validators: Vec<NeuronEntry>,
    /// The OpenAI-compatible gateway of the inference subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_url: Option<String>,
    /// An API key for the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    /// The model the gateway serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// The inference subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_netuid: Option<u16>,
    /// The training subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    training_netuid: Option<u16>,
    /// The training validator's data directory (checkpoints, `rounds.jsonl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    training_dir: Option<PathBuf>,
    /// The file naming the latest checkpoint's directory (servable with
    /// `agora miner inference --model DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    training_latest: Option<PathBuf>,
}

/// One neuron the devnet starts.
struct Planned {
    /// Wallet and log name.
    name: String,
    /// `miner` or `validator`.
    role: &'static str,
    /// The subnet's subcommand: `compute`, `inference` or `training`.
    subnet: &'static str,
    netuid: u16,
    /// Flags after the common ones.
    extra: Vec<String>,
}

fn dev_pair(label: &str) -> Pair {
    Pair::from_seed(&blake2_256(format!("agora-devnet/{label}").as_bytes()))
}

/// Waits for the child's `{"event":"ready",...}` line.
fn wait_ready(
    name: &str,
    rx: &mpsc::Receiver<String>,
    log: &Path,
    timeout: Duration,
) -> Result<serde_json::Value> {
    wait_line(name, rx, log, timeout, |line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .filter(|v| v["event"] == "ready")
    })
}

/// The first of a child's stdout lines that `accept` takes, within `timeout`.
fn wait_line<T>(
    name: &str,
    rx: &mpsc::Receiver<String>,
    log: &Path,
    timeout: Duration,
    accept: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(v) = accept(&line) {
                    return Ok(v);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{name} exited before it was ready; see {}", log.display())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "{name} did not become ready within {timeout:?}; see {}",
                log.display()
            ),
        }
    }
}

async fn wait_for_node(url: &str, timeout: Duration) -> Result<Client> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(c) = Client::connect(url).await {
            if c.rpc().head().await.is_ok() {
                return Ok(c);
            }
        }
        if Instant::now() > deadline {
            bail!("the node did not answer on {url} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the devnet until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: DevnetArgs) -> Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating the agora binary")?;
    let dir = &args.data_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut children = Children(Vec::new());

    // 1. The node.
    // Port 0 lets the node take any free port and report it: a port picked here and
    // released for the node could be taken by another process in between.
    let node_args: Vec<String> = [
        "node",
        "--dev",
        "--data-dir",
        &dir.join("node").display().to_string(),
        "--rpc-addr",
        &format!("127.0.0.1:{}", args.rpc_port),
        "--block-time",
        &args.block_time,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let node_log = logs.join("node.log");
    // The receiver stays alive with the devnet: the node's later output has a reader.
    let (node, node_out) = spawn(&exe, &node_args, &node_log)?;
    children.0.push(("node".into(), node));
    let rpc_addr = wait_line(
        "the node",
        &node_out,
        &node_log,
        Duration::from_secs(15),
        |l| {
            l.strip_prefix("agora node: rpc=http://")?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        },
    )?;
    let rpc_http = format!("http://{rpc_addr}");
    let rpc_ws = format!("ws://{rpc_addr}");
    let client = wait_for_node(&rpc_ws, Duration::from_secs(15)).await?;
    eprintln!("node up at {rpc_http}");

    // 2. The subnets, owned by //Alice: compute, then inference.
    let alice = Pair::from_uri("//Alice").map_err(|e| anyhow::anyhow!("{e}"))?;
    let netuid = create_subnet(&client, &alice, "owner/hot").await?;
    let inference = args.inference_miners > 0;
    let inference_netuid = if inference {
        Some(create_subnet(&client, &alice, "inference-owner/hot").await?)
    } else {
        None
    };
    let training_netuid = if args.training_miners > 0 {
        Some(create_subnet(&client, &alice, "training-owner/hot").await?)
    } else {
        None
    };
    let model_dir = match (&args.model, inference) {
        (Some(dir), _) => Some(dir.clone()),
        (None, true) => {
            let dir = dir.join("models").join("tiny-llama");
            let spec = TestModelSpec::tiny(
                Arch::Llama,
                ModelFormat::Gguf {
                    quant: GgufQuant::Q8_0,
                },
                1,
            );
            let out = dir.clone();
            tokio::task::spawn_blocking(move || write_test_model(&out, &spec))
                .await?
                .context("writing the devnet's test model")?;
            Some(dir)
        }
        (None, false) => None,
    };
    let gateway_pair = Pair::from_uri(GATEWAY_KEY_URI).map_err(|e| anyhow::anyhow!("{e}"))?;

    // 3. A funded coldkey and a wallet per neuron.
    let wallets = dir.join("wallets");
    let mut neurons = Vec::new();
    for i in 0..args.miners {
        let behaviour = args
            .miner_behaviours
            .get(i)
            .cloned()
            .unwrap_or_else(|| "honest".into());
        neurons.push(Planned {
            name: format!("miner{i}"),
            role: "miner",
            subnet: "compute",
            netuid: netuid.0,
            extra: strings(&["--axon.port", "0", "--behaviour", &behaviour]),
        });
    }
    for i in 0..args.validators {
        neurons.push(Planned {
            name: format!("validator{i}"),
            role: "validator",
            subnet: "compute",
            netuid: netuid.0,
            extra: strings(&[
                "--matrix-size",
                &args.matrix_size.to_string(),
                "--round-interval-s",
                "1",
            ]),
        });
    }
    if let (Some(inetuid), Some(model)) = (inference_netuid, &model_dir) {
        let model = model.display().to_string();
        let gateway = gateway_pair.account().to_ss58();
        for i in 0..args.inference_miners {
            let behaviour = args
                .inference_miner_behaviours
                .get(i)
                .cloned()
                .unwrap_or_else(|| "honest".into());
            let mut extra = strings(&[
                "--axon.port",
                "0",
                "--axon.trusted_hotkey",
                &gateway,
                "--model",
                &model,
                "--served-model-name",
                &args.served_model_name,
                "--behaviour",
                &behaviour,
            ]);
            if args.mock_tee() {
                extra.push("--insecure-mock-tee".into());
            }
            neurons.push(Planned {
                name: format!("inference-miner{i}"),
                role: "miner",
                subnet: "inference",
                netuid: inetuid.0,
                extra,
            });
        }
        let mut extra = strings(&[
            "--model",
            &model,
            "--served-model-name",
            &args.served_model_name,
            "--round-interval-s",
            "2",
        ]);
        if args.mock_tee() {
            // The miners attest with the test PKI: the validator must accept it to check
            // them on the private path (and not score them 0).
            extra.push("--insecure-mock-tee".into());
        }
        neurons.push(Planned {
            name: "inference-validator0".into(),
            role: "validator",
            subnet: "inference",
            netuid: inetuid.0,
            extra,
        });
    }
    let training_dir = dir.join("training-validator0");
    if let Some(tnetuid) = training_netuid {
        for i in 0..args.training_miners {
            let behaviour = args
                .training_miner_behaviours
                .get(i)
                .cloned()
                .unwrap_or_else(|| "honest".into());
            neurons.push(Planned {
                name: format!("training-miner{i}"),
                role: "miner",
                subnet: "training",
                netuid: tnetuid.0,
                extra: strings(&["--axon.port", "0", "--behaviour", &behaviour]),
            });
        }
        neurons.push(Planned {
            name: "training-validator0".into(),
            role: "validator",
            subnet: "training",
            netuid: tnetuid.0,
            extra: strings(&[
                "--checkpoint-dir",
                &training_dir.display().to_string(),
                "--round-interval-s",
                "1",
                // A tiny model trains in well under a second: a miner silent this long is
                // skipped rather than holding every round up.
                "--round-timeout-s",
                "20",
            ]),
        });
    }
    let genesis = client.rpc().genesis_hash().await?;
    let head = client.rpc().head().await?;
    let mut nonce = client.rpc().next_nonce(alice.account().to_ss58()).await?;
    let mut funding = Vec::new();
    for n in &neurons {
        let name = &n.name;
        let cold = dev_pair(&format!("{name}/cold"));
        let hot = dev_pair(&format!("{name}/hot"));
        let w = Wallet::new(name, "default", &wallets);
        w.set_coldkey(&Keypair::from_pair(cold.clone()), None, true)?;
        w.set_hotkey(&Keypair::from_pair(hot), None, true)?;
        funding.push(
            TxPayload {
                genesis_hash: genesis,
                nonce,
                valid_from: head.number,
                valid_until: head.number + 200,
                tip_rao: 0,
                call: Call::Transfer {
                    dest: cold.account(),
                    amount_rao: 1000 * RAO_PER_TOKEN,
                },
            }
            .sign(&alice),
        );
        nonce += 1;
    }
    if let Some(last) = funding.pop() {
        client.submit_batch(&funding).await?;
        let receipt = client.submit_and_wait(&last).await?;
        if let Some(e) = receipt.error {
            bail!("funding failed: {}", e.message);
        }
    }

    // 4. Miners and validators.
    let first_child = children.0.len();
    let mut pending = Vec::new();
    for n in &neurons {
        let mut a: Vec<String> = strings(&[
            n.role,
            n.subnet,
            "--subtensor.chain_endpoint",
            &rpc_ws,
            "--netuid",
            &n.netuid.to_string(),
            "--wallet.path",
            &wallets.display().to_string(),
            "--wallet.name",
            &n.name,
            "--wallet.hotkey",
            "default",
        ]);
        a.extend(n.extra.iter().cloned());
        let log = logs.join(format!("{}.log", n.name));
        let (child, rx) = spawn(&exe, &a, &log)?;
        children.0.push((n.name.clone(), child));
        pending.push((n, rx, log));
    }
    let mut file = DevnetFile {
        rpc_url: rpc_http.clone(),
        netuids: std::iter::once(netuid.0)
            .chain(inference_netuid.map(|n| n.0))
            .chain(training_netuid.map(|n| n.0))
            .collect(),
        miners: vec![],
        validators: vec![],
        gateway_url: None,
        api_key: None,
        model: None,
        inference_netuid: inference_netuid.map(|n| n.0),
        training_netuid: training_netuid.map(|n| n.0),
        training_dir: training_netuid.map(|_| training_dir.clone()),
        training_latest: training_netuid
            .map(|_| training_dir.join(agora_training::neuron::validator::LATEST_FILE)),
    };
    for (i, (n, rx, log)) in pending.iter().enumerate() {
        // Loading a model takes longer than starting a compute neuron.
        let v = wait_ready(&n.name, rx, log, Duration::from_secs(60))?;
        let entry = NeuronEntry {
            netuid: n.netuid,
            uid: v["uid"]
                .as_u64()
                .and_then(|u| u16::try_from(u).ok())
                .unwrap_or(u16::MAX),
            hotkey: v["hotkey"].as_str().unwrap_or_default().to_owned(),
            url: v["url"].as_str().map(str::to_owned),
            pid: children.0[first_child + i].1.id(),
        };
        if n.role == "miner" {
            file.miners.push(entry);
        } else {
            file.validators.push(entry);
        }
    }

    // 5. The gateway, once the inference miners serve.
    if let Some(inetuid) = inference_netuid {
        let keys = dir.join("gateway-keys.json");
        let api_key = agora_gateway::keys::add_key(&keys, "devnet", 6000, None, None)?;
        let mut a = strings(&[
            "gateway",
            "--keys",
            &keys.display().to_string(),
            "--rpc-url",
            &rpc_ws,
            "--netuid",
            &inetuid.0.to_string(),
            "--listen",
            &format!("127.0.0.1:{}", args.gateway_port),
            "--usage-file",
            &dir.join("gateway-usage.json").display().to_string(),
            "--key",
            GATEWAY_KEY_URI,
        ]);
        if args.mock_tee() {
            a.extend(strings(&["--private", "--insecure-mock-tee"]));
        }
        let log = logs.join("gateway.log");
        let (child, rx) = spawn(&exe, &a, &log)?;
        children.0.push(("gateway".into(), child));
        let v = wait_ready("gateway", &rx, &log, Duration::from_secs(30))?;
        file.gateway_url = v["url"].as_str().map(str::to_owned);
        file.api_key = Some(api_key);
        file.model = Some(args.served_model_name.clone());
    }
    let json_path = dir.join("devnet.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&file)?)?;

    println!(
        "Agora devnet is up ({:.1} s):",
        started.elapsed().as_secs_f64()
    );
    println!("  node RPC      {rpc_http}  (WebSocket {rpc_ws})");
    println!(
        "  subnet        netuid {} (compute), {} miners, {} validators",
        netuid.0, args.miners, args.validators
    );
    if let (Some(inetuid), Some(url), Some(key)) =
        (inference_netuid, &file.gateway_url, &file.api_key)
    {
        println!(
            "  subnet        netuid {} (inference, model {}), {} miners, 1 validator",
            inetuid.0, args.served_model_name, args.inference_miners
        );
        println!("  gateway       {url}/v1  (API key {key})");
        println!("Ask the network (OpenAI-compatible):");
        println!(
            "  curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}],\"max_tokens\":16}}'",
            args.served_model_name
        );
        if args.mock_tee() {
            println!("Ask privately (end-to-end encrypted; INSECURE test PKI):");
            println!(
                "  agora private chat --gateway {url} --api-key {key} --model {} --insecure-mock-tee Hello",
                args.served_model_name
            );
        }
    }
    if let (Some(tnetuid), Some(latest)) = (training_netuid, &file.training_latest) {
        println!(
            "  subnet        netuid {} (training, tiny MoE), {} miners, 1 validator",
            tnetuid.0, args.training_miners
        );
        println!(
            "  checkpoints   {}  (round log {})",
            training_dir.join("checkpoints").display(),
            training_dir
                .join(agora_training::neuron::validator::ROUNDS_FILE)
                .display()
        );
        println!(
            "  latest model  {}  (names the newest checkpoint)",
            latest.display()
        );
    }
    println!("  wallets       {}", wallets.display());
    println!("  logs          {}", logs.display());
    println!("  for scripts   {}", json_path.display());
    println!("Watch emissions reach the miners:");
    println!(
        "  agora metagraph --netuid {} --rpc-url {rpc_http}",
        netuid.0
    );
    if let (Some(latest), Some(inetuid)) = (&file.training_latest, inference_netuid) {
        println!("Serve the latest trained checkpoint on the inference subnet:");
        println!(
            "  agora miner inference --model \"$(cat {})\" --served-model-name agora-moe --netuid {} --subtensor.chain_endpoint {rpc_ws} --wallet.path {} --wallet.name <NAME> --axon.port 0",
            latest.display(),
            inetuid.0,
            wallets.display()
        );
    }
    println!("Ctrl-C stops everything.");

    // 6. Run until a signal, or until the node or the gateway dies. A miner or validator
    // that dies is reported and the network goes on without it, as a real one would.
    let stop = agora_subnet::cli::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let exited = children
                    .0
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, (_, child))| child.try_wait().ok().flatten().map(|status| (i, status)));
                if let Some((i, status)) = exited {
                    let (name, _) = children.0.remove(i);
                    if name == "node" || name == "gateway" {
                        eprintln!("{name} exited ({status}); stopping the devnet. See {}", logs.display());
                        children.stop_all();
                        bail!("{name} exited unexpectedly");
                    }
                    eprintln!(
                        "{name} exited ({status}); the network goes on without it. See {}",
                        logs.join(format!("{name}.log")).display()
                    );
                }
            }
        }
    }
    eprintln!("stopping...");
    children.stop_all();
    eprintln!("devnet stopped");
    Ok(())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Creates a subnet owned by `owner`, with a dev hotkey named `hotkey_label`; returns its
/// netuid.
async fn create_subnet(client: &Client, owner: &Pair, hotkey_label: &str) -> Result<NetUid> {
    submit(
        client,
        owner,
        Call::CreateSubnet {
            hotkey: dev_pair(hotkey_label).account(),
        },
    )
    .await?;
    client
        .rpc()
        .subnets()
        .await?
        .iter()
        .map(|s| s.netuid)
        .max()
        .context("no subnet after creation")
}

async fn submit(client: &Client, signer: &Pair, call: Call) -> Result<()> {
    let name = call.name();
    let r = client
        .sign_submit_and_wait(signer, call, agora_client::TxOptions::default())
        .await?;
    if let Some(e) = r.error {
        bail!("{name} failed: {} (code {})", e.message, e.code);
    }
    Ok(())
}
