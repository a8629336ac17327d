//! The `agora` command line: parses arguments and hands off to the library crates.

mod children;
mod devnet;
mod tee;
#[cfg(feature = "bft")]
mod testnet;

use agora_node::cli;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "agora",
    version,
    about = "Agora: an open incentive network for AI work"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a node (`--dev` for a local chain), or `node replay` to check a data directory.
    Node(cli::NodeArgs),
    /// Sends tokens.
    Transfer(cli::TransferArgs),
    /// Creates, lists, shows and configures subnets.
    Subnet(cli::SubnetArgs),
    /// Registers a hotkey on a subnet.
    Register(cli::RegisterArgs),
    /// Adds, removes and lists stake.
    Stake(cli::StakeArgs),
    /// Sets, commits and reveals weights.
    Weights(cli::WeightsArgs),
    /// Shows a subnet's metagraph.
    Metagraph(cli::MetagraphArgs),
    /// Measures throughput and latency.
    #[command(subcommand)]
    Bench(BenchTarget),
    /// Model files: `model init` writes a deterministic test model.
    #[command(subcommand)]
    Model(agora_inference::cli::ModelCommand),
    /// Trains the training subnet's model (`--centralized`: in this one process).
    Train(agora_training::cli::TrainArgs),
    /// Creates, restores and shows wallets (bittensor-wallet compatible key files).
    Wallet(agora_wallet::cli::WalletCli),
    /// Runs a miner on a subnet.
    #[command(subcommand)]
    Miner(MinerSubnet),
    /// Runs a validator on a subnet.
    #[command(subcommand)]
    Validator(ValidatorSubnet),
    /// Starts a whole network on this machine: a node, subnets, miners and validators.
    Devnet(devnet::DevnetArgs),
    /// Trusted-execution tools.
    #[command(subcommand)]
    Tee(tee::TeeCommand),
    /// Runs the OpenAI-compatible inference gateway, or manages its API keys.
    Gateway(agora_gateway::cli::GatewayCli),
    /// End-to-end encrypted requests to attested miners, through a gateway.
    Private(agora_gateway::private_client::PrivateCli),
    /// Starts a local BFT cluster of validators on loopback.
    #[cfg(feature = "bft")]
    Testnet(testnet::TestnetArgs),
}

/// Benchmarks.
#[derive(Subcommand, Debug)]
enum BenchTarget {
    /// Transfers and 256-weight `set_weights` through a real node.
    Ledger(agora_node::bench::LedgerBenchArgs),
    /// A BFT cluster on loopback: finality and transfer throughput, with the solo
    /// engine's transfer throughput measured in the same run.
    #[cfg(feature = "bft")]
    Bft(agora_node::bench::BftBenchArgs),
    /// The gateway's added latency over calling a miner directly, at a fixed request rate.
    Gateway(agora_gateway::bench::GatewayBenchArgs),
    /// LLM decode speed, compared with llama.cpp, and the cost of verifying by scoring.
    Decode(agora_inference::cli::BenchDecodeArgs),
    /// Centralized versus a two-miner network on the same tokens: loss, bytes, tokens/s.
    Training(agora_training::cli::BenchArgs),
    /// TEE attestation verification, the HPKE channel, and the private path's overhead.
    Tee(agora_inference::tee_bench::BenchTeeArgs),
}

/// The subnets a miner can serve.
#[derive(Subcommand, Debug)]
enum MinerSubnet {
    /// Verifiable compute: matrix products checked by the validators.
    Compute(agora_compute::cli::MinerArgs),
    /// LLM inference: OpenAI-compatible completions from a local model.
    Inference(agora_inference::neuron_cli::MinerArgs),
    /// Training: trains its experts of a Mixture-of-Experts model each round, DiLoCo-style.
    Training(agora_training::neuron::MinerArgs),
}

/// The subnets a validator can validate.
#[derive(Subcommand, Debug)]
enum ValidatorSubnet {
    /// Verifiable compute: matrix products checked by the validators.
    Compute(agora_compute::cli::ValidatorArgs),
    /// LLM inference: checks miners' answers against its own copy of the model.
    Inference(agora_inference::neuron_cli::ValidatorArgs),
    /// Training: runs the rounds, scores updates on held-out loss, writes checkpoints.
    Training(agora_training::neuron::ValidatorArgs),
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line with the whole cause chain; no backtrace for users.
        eprintln!("error: {}", cause_chain(&e));
        std::process::exit(1);
    }
}

/// The messages of `e` and its causes joined by ": ", leaving out a cause whose message
/// its parent already ends with (many error types print their source in their own
/// message, and a chain would otherwise say it twice).
fn cause_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if previous.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_logs(match cli.command {
        Command::Node(_) | Command::Miner(_) | Command::Validator(_) | Command::Gateway(_) => {
            "info"
        }
        _ => "warn",
    });
    // Commands that may prompt for a password or need no runtime run before it starts, so a
    // prompt never blocks a runtime thread.
    let command = match cli.command {
        Command::Wallet(w) => {
            agora_wallet::cli::run(&w, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        Command::Model(cmd) => {
            agora_inference::cli::run_model(&cmd, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        // The engine has its own threads; its blocking calls stay off the async runtime.
        Command::Bench(BenchTarget::Decode(a)) => {
            agora_inference::cli::run_bench_decode(&a, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        Command::Bench(BenchTarget::Tee(a)) => {
            agora_inference::tee_bench::run_bench_tee(&a, &mut std::io::stdout().lock())
                .map_err(|e| anyhow::anyhow!("bench tee: {e}"))?;
            return Ok(());
        }
        // Training is CPU-bound and single-threaded (bit-exact replay needs a fixed thread
        // count), so it runs without the async runtime.
        Command::Train(a) => {
            agora_training::cli::force_single_thread();
            agora_training::cli::run_train(&a)?;
            return Ok(());
        }
        Command::Bench(BenchTarget::Training(a)) => {
            agora_training::cli::force_single_thread();
            agora_training::cli::run_bench_cli(&a, &std::env::current_exe()?)?;
            return Ok(());
        }
        // Training neurons replay each other bit-exactly: one tensor thread, fixed before
        // the runtime (or anything else) starts threads.
        c @ (Command::Miner(MinerSubnet::Training(_))
        | Command::Validator(ValidatorSubnet::Training(_))) => {
            agora_training::cli::force_single_thread();
            c
        }
        Command::Tee(cmd) => {
            if !tee::run(cmd)? {
                std::process::exit(1);
            }
            return Ok(());
        }
        other => other,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
            Command::Node(a) => Ok(cli::run_node(a).await?),
            Command::Transfer(a) => Ok(cli::run_transfer(a).await?),
            Command::Subnet(a) => Ok(cli::run_subnet(a).await?),
            Command::Register(a) => Ok(cli::run_register(a).await?),
            Command::Stake(a) => Ok(cli::run_stake(a).await?),
            Command::Weights(a) => Ok(cli::run_weights(a).await?),
            Command::Metagraph(a) => Ok(cli::run_metagraph(a).await?),
            Command::Bench(BenchTarget::Ledger(a)) => {
                Ok(agora_node::bench::run(agora_node::bench::BenchArgs {
                    target: agora_node::bench::BenchTarget::Ledger(a),
                })
                .await?)
            }
            #[cfg(feature = "bft")]
            Command::Bench(BenchTarget::Bft(a)) => {
                Ok(agora_node::bench::run(agora_node::bench::BenchArgs {
                    target: agora_node::bench::BenchTarget::Bft(a),
                })
                .await?)
            }
            Command::Bench(BenchTarget::Gateway(a)) => Ok(agora_gateway::bench::run(a).await?),
            Command::Gateway(a) => Ok(agora_gateway::cli::run(a).await?),
            Command::Private(a) => {
                Ok(agora_gateway::private_client::run(a, &mut std::io::stdout().lock()).await?)
            }
            Command::Miner(MinerSubnet::Compute(a)) => {
                Ok(agora_compute::cli::run_compute_miner(a).await?)
            }
            Command::Validator(ValidatorSubnet::Compute(a)) => {
                Ok(agora_compute::cli::run_compute_validator(a).await?)
            }
            Command::Miner(MinerSubnet::Inference(a)) => {
                Ok(agora_inference::neuron_cli::run_inference_miner(a).await?)
            }
            Command::Validator(ValidatorSubnet::Inference(a)) => {
                Ok(agora_inference::neuron_cli::run_inference_validator(a).await?)
            }
            Command::Miner(MinerSubnet::Training(a)) => {
                Ok(agora_training::neuron::run_training_miner(a).await?)
            }
            Command::Validator(ValidatorSubnet::Training(a)) => {
                Ok(agora_training::neuron::run_training_validator(a).await?)
            }
            Command::Devnet(a) => devnet::run(a).await,
            #[cfg(feature = "bft")]
            Command::Testnet(a) => testnet::run(a).await,
            Command::Wallet(_)
            | Command::Tee(_)
            | Command::Model(_)
            | Command::Train(_)
            | Command::Bench(BenchTarget::Training(_))
            | Command::Bench(BenchTarget::Decode(_))
            | Command::Bench(BenchTarget::Tee(_)) => {
                unreachable!("handled before the runtime starts")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::cause_chain;

    #[test]
    fn a_cause_its_parent_already_prints_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(agora_node::NodeError::Bind {
            addr: "127.0.0.1:1".into(),
            source: io,
        })
        .context("starting the node");
        assert_eq!(
            cause_chain(&e),
            "starting the node: cannot listen on 127.0.0.1:1: Address already in use"
        );
        // Causes that add something are all kept.
        let e = anyhow::anyhow!("no such file").context("reading k.json");
        assert_eq!(cause_chain(&e), "reading k.json: no such file");
    }
}
