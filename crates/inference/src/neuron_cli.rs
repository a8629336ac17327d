//! `agora miner inference` and `agora validator inference`.

use crate::engine::{Engine, LoadOptions};
use crate::miner::{Behaviour, InferenceMiner};
use crate::validator::InferenceValidator;
use agora_subnet::cli::{ready_line, shutdown_signal, AxonArgs, NeuronArgs, ValidatorLoopArgs};
use agora_subnet::{run_axon, run_validator, MinerConfig, SubnetError};
use std::path::PathBuf;
use std::sync::Arc;

/// The model a neuron loads.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Local model directory (GGUF, or safetensors with config.json; tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The model id served and asked for (default: the directory's own name for it).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent: usize,
}

impl ModelArgs {
    async fn load(&self) -> Result<Arc<Engine>, SubnetError> {
        let opts = LoadOptions {
            max_concurrent: self.max_concurrent.max(1),
            model_id: self.served_model_name.clone(),
            ..LoadOptions::default()
        };
        let dir = self.model.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::load(&dir, &opts))
            .await
            .map_err(|e| SubnetError::Usage(e.to_string()))?
            .map_err(|e| SubnetError::Usage(format!("--model {}: {e}", self.model.display())))?;
        tracing::info!(
            model = engine.model_id(),
            arch = ?engine.info().arch,
            "model loaded"
        );
        Ok(Arc::new(engine))
    }
}

/// Arguments of an inference miner.
#[derive(clap::Args, Debug, Clone)]
pub struct MinerArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// The axon.
    #[command(flatten)]
    pub axon: AxonArgs,
    /// The model served.
    #[command(flatten)]
    pub model: ModelArgs,
    /// `honest`, or a cheat for testing validators: `truncate`, `fabricate`.
    #[arg(long, default_value = "honest")]
    pub behaviour: Behaviour,
}

/// Arguments of an inference validator.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidatorArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// Pacing.
    #[command(flatten)]
    pub pacing: ValidatorLoopArgs,
    /// The validator's own copy of the model miners claim to serve.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Completion tokens per challenge.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// Share of greedy challenges (the rest are sampled).
    #[arg(long, default_value_t = 0.5)]
    pub greedy_share: f64,
    /// Rounds a miner scores zero after a failed check.
    #[arg(long, default_value_t = 8)]
    pub jail_rounds: u32,
}

/// Runs an inference miner until Ctrl-C or SIGTERM.
pub async fn run_inference_miner(args: MinerArgs) -> Result<(), SubnetError> {
    let engine = args.model.load().await?;
    let (coldkey, hotkey) = args.neuron.keys()?;
    let netuid = args.neuron.netuid();
    let ready_hotkey = hotkey.clone();
    let config = MinerConfig {
        rpc_url: args.neuron.rpc_url.clone(),
        netuid,
        coldkey,
        hotkey,
        listen: args.axon.listen(),
        external_ip: args.axon.external_ip(),
        require_validator_permit: args.axon.require_permit,
        trusted_hotkeys: args.axon.trusted_hotkeys.clone(),
    };
    let behaviour = args.behaviour;
    run_axon(
        config,
        move |metrics| Arc::new(InferenceMiner::new(engine, None, behaviour, metrics)).routes(),
        move |uid, addr| {
            println!(
                "{}",
                ready_line(
                    "miner",
                    netuid,
                    uid,
                    &ready_hotkey,
                    Some(format!("http://{addr}"))
                )
            );
        },
        shutdown_signal(),
    )
    .await
}

/// Runs an inference validator until Ctrl-C or SIGTERM.
pub async fn run_inference_validator(args: ValidatorArgs) -> Result<(), SubnetError> {
    if !(0.0..=1.0).contains(&args.greedy_share) {
        return Err(SubnetError::Usage(
            "--greedy-share must be in [0, 1]".into(),
        ));
    }
    if args.max_tokens == 0 {
        return Err(SubnetError::Usage("--max-tokens must be at least 1".into()));
    }
    let engine = args.model.load().await?;
    let config = args.pacing.config(&args.neuron)?;
    let netuid = config.netuid;
    let hotkey = config.hotkey.clone();
    let mut logic = InferenceValidator::new(engine, None);
    logic.max_tokens = args.max_tokens;
    logic.greedy_share = args.greedy_share;
    logic.jail_rounds = args.jail_rounds;
    run_validator(
        config,
        logic,
        move |uid| println!("{}", ready_line("validator", netuid, uid, &hotkey, None)),
        shutdown_signal(),
    )
    .await
}
