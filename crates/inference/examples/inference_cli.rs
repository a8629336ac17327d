//! The `agora model` and `agora bench decode` commands without building the whole `agora`
//! binary: `cargo run -p agora-inference --example inference_cli -- bench-decode --model DIR`.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// As `agora model`.
    #[command(subcommand)]
    Model(agora_inference::cli::ModelCommand),
    /// As `agora bench decode`.
    BenchDecode(agora_inference::cli::BenchDecodeArgs),
}

fn main() {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match &cli.command {
        Command::Model(cmd) => agora_inference::cli::run_model(cmd, &mut out),
        Command::BenchDecode(args) => agora_inference::cli::run_bench_decode(args, &mut out),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
