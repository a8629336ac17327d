//! The `agora` command line: parses arguments and hands off to the library crates.

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
    /// Measures throughput.
    Bench(agora_node::bench::BenchArgs),
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(match cli.command {
        Command::Node(_) => "info",
        _ => "warn",
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Node(a) => cli::run_node(a).await,
            Command::Transfer(a) => cli::run_transfer(a).await,
            Command::Subnet(a) => cli::run_subnet(a).await,
            Command::Register(a) => cli::run_register(a).await,
            Command::Stake(a) => cli::run_stake(a).await,
            Command::Weights(a) => cli::run_weights(a).await,
            Command::Metagraph(a) => cli::run_metagraph(a).await,
            Command::Bench(a) => agora_node::bench::run(a).await,
        }
    })?;
    Ok(())
}
