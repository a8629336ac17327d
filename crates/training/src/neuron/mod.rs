//! `agora miner training` and `agora validator training`: the round protocol of
//! [`round`](crate::round) run by real processes over [`protocol`](crate::protocol).
//!
//! - [`miner`]: an axon (through the subnet framework's [`run_axon`]) that downloads the
//!   checkpoint it is told to, trains its shard for the round, commits, and reveals its
//!   update (and, when picked for the replay, the state it started from);
//! - [`validator`]: registers and stakes through the framework, serves its checkpoints
//!   over HTTP, runs rounds against every miner on the metagraph, writes each new
//!   checkpoint (content-addressed, with a `latest` pointer and a `rounds.jsonl` log) and
//!   sets weights from the smoothed scores within the subnet's rate limit.
//!
//! Both train on one thread ([`crate::cli::force_single_thread`], called by the binary
//! before any thread starts): the validator's replay of a miner must be bit-exact.

pub mod miner;
pub mod validator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agora_subnet::cli::{print_miner_ready, ready_line, shutdown_signal, AxonArgs, NeuronArgs};
use agora_subnet::run_axon;

use crate::bench::CorpusSource;
use crate::data::{default_cache_dir, Corpus};
use crate::error::TrainingError;
use crate::round::{RunConfig, ValidatorConfig};
use crate::sim::Behaviour;

/// Size of the synthetic corpus when no Shakespeare cache is present.
const SYNTHETIC_BYTES: usize = 1_000_000;

/// Where the text comes from; miners and their validator must agree (rounds name the
/// corpus by hash, and a miner refuses a round for another one).
#[derive(clap::Args, Debug, Clone)]
pub struct CorpusArgs {
    /// Folder holding the Shakespeare texts (default: the user cache); used when present.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Use the synthetic corpus even when Shakespeare is available.
    #[arg(long)]
    pub synthetic: bool,
}

impl CorpusArgs {
    /// Loads the corpus these flags name.
    pub fn load(&self) -> Result<Corpus, TrainingError> {
        let source = if self.synthetic {
            CorpusSource::Synthetic {
                seed: 0,
                bytes: SYNTHETIC_BYTES,
            }
        } else {
            let cache = self.data_dir.clone().unwrap_or_else(default_cache_dir);
            CorpusSource::choose(&cache, false, SYNTHETIC_BYTES)?
        };
        source.load()
    }
}

/// How a training miner behaves: `honest`, or a cheat for testing validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinerBehaviour(pub Behaviour);

impl std::str::FromStr for MinerBehaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(match s {
            "honest" => Behaviour::Honest,
            "zeros" => Behaviour::Zeros,
            "noise" => Behaviour::Noise,
            // A miner cannot see another's update before the reveal; what it can copy is the
            // last public change (the difference of two checkpoints), rescaled.
            "copy" => Behaviour::RescaledAggregate,
            "wrong-data" => Behaviour::WrongData,
            "stale" => Behaviour::Stale,
            _ => {
                return Err(format!(
                    "unknown behaviour '{s}': use honest, zeros, noise, copy, wrong-data or stale"
                ))
            }
        }))
    }
}

/// Arguments of a training miner.
#[derive(clap::Args, Debug, Clone)]
pub struct MinerArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// The axon.
    #[command(flatten)]
    pub axon: AxonArgs,
    /// The corpus.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Refuse runs whose model has more parameters than this.
    #[arg(long, default_value_t = 50_000_000)]
    pub max_params: usize,
    /// `honest`, or a cheat for testing validators: `zeros` (an all-zero update), `noise`
    /// (Gaussian noise of an honest norm), `copy` (the last public change, rescaled),
    /// `wrong-data` (trains on a shard nobody was assigned), `stale` (trains from the
    /// previous checkpoint).
    #[arg(long, default_value = "honest")]
    pub behaviour: MinerBehaviour,
}

/// Arguments of a training validator.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidatorArgs {
    /// Chain, subnet and keys.
    #[command(flatten)]
    pub neuron: NeuronArgs,
    /// The corpus.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Stake to keep on the hotkey, in tokens.
    #[arg(long, default_value = "100")]
    pub stake: agora_primitives::Balance,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 1.0)]
    pub round_interval_s: f64,
    /// Seconds miners have to download the checkpoint, train and commit.
    #[arg(long, default_value_t = 120.0)]
    pub round_timeout_s: f64,
    /// Seconds miners have to reveal.
    #[arg(long, default_value_t = 30.0)]
    pub reveal_timeout_s: f64,
    /// Blocks between weight submissions (at least the subnet's rate limit).
    #[arg(long, default_value_t = 5)]
    pub weights_every_blocks: u64,
    /// The validator's secret seed (round seeds, spot checks); random when not given.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The run miners train, as JSON (`RunConfig`); default: the tiny test run.
    #[arg(long)]
    pub run_config: Option<PathBuf>,
    /// Inner steps per round (overrides the run's).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Where checkpoints, the `latest` pointer and `rounds.jsonl` go.
    #[arg(long, default_value = "training-validator")]
    pub checkpoint_dir: PathBuf,
    /// Address the checkpoint server listens on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub checkpoint_addr: SocketAddr,
    /// The checkpoint server's public base URL, when miners reach it by another address.
    #[arg(long)]
    pub checkpoint_url: Option<String>,
    /// Checkpoints kept on disk.
    #[arg(long, default_value_t = 4)]
    pub keep_checkpoints: usize,
}

fn seconds(name: &str, s: f64) -> Result<Duration, TrainingError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            TrainingError::InvalidConfig(format!("--{name} must be a positive number of seconds"))
        })
}

impl ValidatorArgs {
    fn run(&self) -> Result<RunConfig, TrainingError> {
        let mut run = match &self.run_config {
            Some(path) => serde_json::from_slice(
                &std::fs::read(path).map_err(|e| TrainingError::io(path, e))?,
            )?,
            None => RunConfig::tiny(),
        };
        if let Some(h) = self.inner_steps {
            run.inner_steps = h;
        }
        run.validate()?;
        Ok(run)
    }
}

/// Runs a training miner until Ctrl-C or SIGTERM.
pub async fn run_training_miner(args: MinerArgs) -> Result<(), TrainingError> {
    let corpus_args = args.corpus.clone();
    let corpus = tokio::task::spawn_blocking(move || corpus_args.load())
        .await
        .map_err(|e| TrainingError::InvalidInput(e.to_string()))??;
    tracing::info!(corpus = %corpus.source, bytes = corpus.train.len(), "corpus loaded");
    let config = args.axon.miner_config(&args.neuron)?;
    let ready = print_miner_ready(&config);
    let uid = Arc::new(OnceLock::new());
    let settings = miner::MinerSettings {
        behaviour: args.behaviour.0,
        max_params: args.max_params,
        uid: uid.clone(),
        http: miner::download_client()?,
    };
    run_axon(
        config,
        move |metrics| Arc::new(miner::TrainingMiner::new(corpus, settings, metrics)).routes(),
        move |my_uid, addr| {
            let _ = uid.set(my_uid);
            ready(my_uid, addr);
        },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// Runs a training validator until Ctrl-C or SIGTERM.
pub async fn run_training_validator(args: ValidatorArgs) -> Result<(), TrainingError> {
    let run = args.run()?;
    if let Some(url) = &args.checkpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(TrainingError::InvalidConfig(
                "--checkpoint-url must start with http:// or https://".into(),
            ));
        }
    }
    let (coldkey, hotkey) = args.neuron.keys()?;
    let corpus_args = args.corpus.clone();
    let corpus = tokio::task::spawn_blocking(move || corpus_args.load())
        .await
        .map_err(|e| TrainingError::InvalidInput(e.to_string()))??;
    let secret = args.seed.unwrap_or_else(rand::random);
    let netuid = args.neuron.netuid();
    let config = validator::TrainingValidatorConfig {
        rpc_url: args.neuron.rpc_url.clone(),
        netuid,
        coldkey,
        hotkey: hotkey.clone(),
        stake_rao: args.stake.rao(),
        round_interval: seconds("round-interval-s", args.round_interval_s)?,
        round_timeout: seconds("round-timeout-s", args.round_timeout_s)?,
        reveal_timeout: seconds("reveal-timeout-s", args.reveal_timeout_s)?,
        weights_every_blocks: args.weights_every_blocks,
        run,
        scoring: ValidatorConfig {
            secret,
            ..ValidatorConfig::default()
        },
        corpus,
        data_dir: args.checkpoint_dir.clone(),
        checkpoint_listen: args.checkpoint_addr,
        checkpoint_url: args.checkpoint_url.clone(),
        keep_checkpoints: args.keep_checkpoints,
    };
    validator::run_training_validator(
        config,
        move |uid, url| {
            println!(
                "{}",
                ready_line("validator", netuid, uid, &hotkey, Some(url.to_owned()))
            )
        },
        shutdown_signal(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse_and_unknown_ones_are_named() {
        let parse = |s: &str| s.parse::<MinerBehaviour>().map(|b| b.0);
        assert_eq!(parse("honest"), Ok(Behaviour::Honest));
        assert_eq!(parse("zeros"), Ok(Behaviour::Zeros));
        assert_eq!(parse("copy"), Ok(Behaviour::RescaledAggregate));
        assert!(parse("lazy").unwrap_err().contains("'lazy'"));
    }
}
