//! `agora miner compute` and `agora validator compute`.

use crate::neuron::{Behaviour, ComputeMiner, ComputeValidator};
use agora_subnet::cli::{
    print_miner_ready, ready_line, shutdown_signal, AxonArgs, NeuronArgs, ValidatorLoopArgs,
};
use agora_subnet::{run_miner, run_validator, SubnetError};

/// Arguments of a compute miner.
#[derive(clap::Args, Debug, Clone)]
pub struct MinerArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// The axon.
    #[command(flatten)]
    pub axon: AxonArgs,
    /// `honest`, or a cheat for testing validators: `wrong`, `lazy`, `slow:<ms>`.
    #[arg(long, default_value = "honest")]
    pub behaviour: Behaviour,
}

/// Arguments of a compute validator.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidatorArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// Pacing.
    #[command(flatten)]
    pub pacing: ValidatorLoopArgs,
    /// Matrix side of each challenge.
    #[arg(long, default_value_t = 128)]
    pub matrix_size: u16,
    /// Latency at which a correct answer scores one half, ms.
    #[arg(long, default_value_t = 200)]
    pub reference_ms: u64,
}

/// Runs a compute miner until Ctrl-C or SIGTERM.
pub async fn run_compute_miner(args: MinerArgs) -> Result<(), SubnetError> {
    let config = args.axon.miner_config(&args.neuron)?;
    let ready = print_miner_ready(&config);
    let handler = ComputeMiner {
        behaviour: args.behaviour,
    };
    run_miner(config, handler, ready, shutdown_signal()).await
}

/// Runs a compute validator until Ctrl-C or SIGTERM.
pub async fn run_compute_validator(args: ValidatorArgs) -> Result<(), SubnetError> {
    if args.matrix_size == 0 || args.matrix_size > crate::MAX_N {
        return Err(SubnetError::Usage(format!(
            "--matrix-size must be in 1..={}",
            crate::MAX_N
        )));
    }
    let config = args.pacing.config(&args.neuron)?;
    let netuid = config.netuid;
    let hotkey = config.hotkey.clone();
    let timeout_ms = u64::try_from(config.query_timeout.as_millis()).unwrap_or(u64::MAX);
    let logic = ComputeValidator {
        n: args.matrix_size,
        timeout_ms,
        reference_ms: args.reference_ms,
        ..ComputeValidator::default()
    };
    run_validator(
        config,
        logic,
        move |uid| println!("{}", ready_line("validator", netuid, uid, &hotkey, None)),
        shutdown_signal(),
    )
    .await
}
