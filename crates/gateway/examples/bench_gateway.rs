//! The `agora bench gateway` benchmark without building the whole `agora` binary:
//! `cargo run --release -p agora-gateway --example bench_gateway -- --rate 1000`.

use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    bench: agora_gateway::bench::GatewayBenchArgs,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = agora_gateway::bench::run(args.bench).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
