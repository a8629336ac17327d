//! `agora bench training`: the centralized baseline and a two-miner network on the same
//! tokens, held-out loss, bytes per round and throughput, printed as `name: value unit`.
//!
//! Throughput of "two miners" is measured with two single-threaded worker processes (this
//! binary re-run as `agora train --worker-job ...`) training their shards at the same time;
//! "one process" is the centralized run on one thread. Loss and bytes come from the
//! in-process network, which computes exactly what the miners and validator compute.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::checkpoint::checkpoint_id;
use crate::data::{fetch_shakespeare, find_shakespeare_texts, Corpus};
use crate::data::{heldout_batches, HeldoutPart};
use crate::error::TrainingError;
use crate::model::MoeModel;
use crate::round::{
    round_seed, train_centralized, train_round, MinerState, Ownership, RoundInputs, RunConfig,
    ValidatorConfig,
};
use crate::sim::{dataparallel_bytes_per_round, Behaviour, Network};

/// Where the text comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CorpusSource {
    /// The Shakespeare plays under this cache folder.
    Shakespeare(PathBuf),
    /// The deterministic synthetic corpus.
    Synthetic {
        /// Its seed.
        seed: u64,
        /// Its size in bytes.
        bytes: usize,
    },
}

impl CorpusSource {
    /// Shakespeare from `cache` when present (fetching it first when `fetch`), else synthetic.
    pub fn choose(
        cache: &Path,
        fetch: bool,
        synthetic_bytes: usize,
    ) -> Result<Self, TrainingError> {
        if fetch {
            fetch_shakespeare(cache)?;
        }
        Ok(match find_shakespeare_texts(cache) {
            Some(_) => Self::Shakespeare(cache.to_path_buf()),
            None => Self::Synthetic {
                seed: 0,
                bytes: synthetic_bytes,
            },
        })
    }

    /// Reads the corpus.
    pub fn load(&self) -> Result<Corpus, TrainingError> {
        match self {
            Self::Shakespeare(cache) => {
                let dir = find_shakespeare_texts(cache).ok_or_else(|| {
                    TrainingError::InvalidInput(format!(
                        "no Shakespeare texts under {}",
                        cache.display()
                    ))
                })?;
                Corpus::from_text_dir(&dir)
            }
            Self::Synthetic { seed, bytes } => Ok(Corpus::synthetic(*seed, *bytes)),
        }
    }
}

/// What the benchmark runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchSettings {
    /// The run (its `density` is ignored: the network runs dense, then compressed).
    pub run: RunConfig,
    /// Miners in the network (and worker processes for throughput).
    pub miners: u16,
    /// Rounds.
    pub rounds: u64,
    /// Top-k share kept by the compressed network.
    pub density: f64,
    /// Held-out batches in the final evaluation.
    pub eval_batches: usize,
    /// The corpus.
    pub corpus: CorpusSource,
    /// Which parts run (experiments on one side skip the others); all when empty.
    #[serde(default)]
    pub parts: Vec<BenchPart>,
    /// The validator's settings.
    #[serde(default)]
    pub validator: ValidatorConfig,
}

/// A part of the benchmark.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum BenchPart {
    /// The centralized baseline.
    Centralized,
    /// The network with dense updates.
    Network,
    /// The network with compressed updates.
    Compressed,
    /// Tokens per second of one process and of two worker processes.
    Throughput,
}

impl BenchSettings {
    fn runs(&self, part: BenchPart) -> bool {
        self.parts.is_empty() || self.parts.contains(&part)
    }
}

/// Work for one throughput worker process.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerJob {
    /// The benchmark's settings.
    pub settings: BenchSettings,
    /// Which miner this process plays.
    pub uid: u16,
}

/// One `name: value unit` result.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name.
    pub name: &'static str,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: &'static str,
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.fract() == 0.0 && self.value.abs() < 1e15 {
            write!(f, "{}: {} {}", self.name, self.value as i64, self.unit)
        } else {
            write!(f, "{}: {:.4} {}", self.name, self.value, self.unit)
        }
    }
}

/// Runs one throughput worker: the miner `uid`'s inner loops for every round, from the
/// initial checkpoint, one thread. Returns the tokens trained.
pub fn run_worker(job: &WorkerJob) -> Result<u64, TrainingError> {
    let s = &job.settings;
    let corpus = s.corpus.load()?;
    let base = s.run.initial_params()?;
    let base_id = checkpoint_id(&s.run.model, &base)?;
    let uids: Vec<u16> = (0..s.miners).collect();
    let ownership = Ownership::assign(s.run.model.num_local_experts, &uids, s.run.replication);
    let mut state = MinerState::fresh(&base, &ownership, job.uid);
    let mut tokens = 0u64;
    for round in 0..s.rounds {
        let inputs = RoundInputs {
            run: &s.run,
            corpus: &corpus,
            base: &base,
            base_id,
            ownership: &ownership,
            round,
            round_seed: round_seed(0, round),
        };
        state = train_round(&inputs, job.uid, job.uid, &state, &mut |_, _| {})?.1;
        tokens += (s.run.inner_steps * s.run.shape.batch * s.run.shape.seq_len) as u64;
    }
    Ok(tokens)
}

/// Runs the benchmark. `spawn_worker` starts a worker process for a job and returns it
/// (the binary supplies it); `progress` hears about each phase.
pub fn run_bench(
    settings: &BenchSettings,
    spawn_worker: &dyn Fn(&WorkerJob) -> std::io::Result<std::process::Child>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Metric>, TrainingError> {
    let corpus = settings.corpus.load()?;
    let run = RunConfig {
        density: None,
        ..settings.run.clone()
    };
    let eval = heldout_batches(
        &corpus,
        HeldoutPart::Evaluation,
        settings.eval_batches,
        run.shape,
    )?;
    let step_tokens = run.shape.batch * run.shape.seq_len * usize::from(settings.miners);
    let total_steps = settings.rounds * run.inner_steps as u64;
    let total_tokens = total_steps as f64 * step_tokens as f64;
    progress(&format!(
        "corpus {}: {} training / {} held-out bytes; model {} parameters",
        corpus.source,
        corpus.train.len(),
        corpus.heldout.len(),
        run.model.num_params()
    ));
    let m = |name, value, unit| Metric { name, value, unit };
    let mut out = Vec::new();

    let mut central = None;
    if settings.runs(BenchPart::Centralized) || settings.runs(BenchPart::Throughput) {
        let started = Instant::now();
        let model = train_centralized(
            &run,
            &corpus,
            settings.miners,
            settings.rounds,
            0,
            &mut |s, st| {
                if (s + 1) % 50 == 0 || s + 1 == total_steps {
                    progress(&format!(
                        "centralized step {}/{total_steps} loss {:.4}",
                        s + 1,
                        st.lm
                    ));
                }
            },
        )?;
        let secs = started.elapsed().as_secs_f64();
        let loss = model.eval_loss(&eval)?;
        progress(&format!("centralized held-out loss {loss:.4}"));
        out.push(m("centralized_loss", loss, "nats/token"));
        central = Some((loss, secs));
    }

    let mut network = |density: Option<f64>| -> Result<(f64, f64), TrainingError> {
        let run = RunConfig {
            density,
            ..run.clone()
        };
        let behaviours = vec![Behaviour::Honest; usize::from(settings.miners)];
        let mut net = Network::new(
            run.clone(),
            settings.validator.clone(),
            corpus.clone(),
            &behaviours,
        )?;
        for r in 0..settings.rounds {
            let rep = net.round()?;
            let accepted = rep
                .verdicts
                .iter()
                .filter(|v| v.rejection.is_none())
                .count();
            progress(&format!(
                "network{} round {}/{} held-out {:.4} -> {:.4}, {accepted}/{} accepted",
                if density.is_some() {
                    " (compressed)"
                } else {
                    ""
                },
                r + 1,
                settings.rounds,
                rep.heldout_before,
                rep.heldout_after,
                rep.verdicts.len()
            ));
        }
        let model = MoeModel::from_params(&run.model, net.validator().checkpoint().0)?;
        let loss = model.eval_loss(&eval)?;
        let bytes =
            net.bytes.iter().map(|b| b.total() as f64).sum::<f64>() / net.bytes.len().max(1) as f64;
        Ok((loss, bytes))
    };
    let dp_bytes = dataparallel_bytes_per_round(
        run.model.num_params(),
        usize::from(settings.miners),
        run.inner_steps,
    ) as f64;
    let mut versus = Vec::new();
    for (part, density, loss_name, bytes_name, vs_name, reduction_name) in [
        (
            BenchPart::Network,
            None,
            "network_loss",
            "bytes_per_round_dense",
            "network_vs_centralized_loss",
            "dense_reduction",
        ),
        (
            BenchPart::Compressed,
            Some(settings.density),
            "network_compressed_loss",
            "bytes_per_round_compressed",
            "network_compressed_vs_centralized_loss",
            "compressed_reduction",
        ),
    ] {
        if !settings.runs(part) {
            continue;
        }
        let (loss, bytes) = network(density)?;
        out.push(m(loss_name, loss, "nats/token"));
        out.push(m(bytes_name, bytes.round(), "bytes"));
        if let Some((central_loss, _)) = central {
            versus.push(m(vs_name, 100.0 * (loss / central_loss - 1.0), "%"));
        }
        versus.push(m(reduction_name, dp_bytes / bytes, "x"));
    }
    out.push(m("dataparallel_bytes_same_tokens", dp_bytes, "bytes"));
    out.extend(versus);

    if let (true, Some((_, central_secs))) = (settings.runs(BenchPart::Throughput), central) {
        progress("throughput: two single-threaded miner processes");
        let started = Instant::now();
        let children = (0..settings.miners)
            .map(|uid| {
                spawn_worker(&WorkerJob {
                    settings: settings.clone(),
                    uid,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| TrainingError::io(Path::new("worker"), e))?;
        for child in children {
            let out = child
                .wait_with_output()
                .map_err(|e| TrainingError::io(Path::new("worker"), e))?;
            if !out.status.success() {
                return Err(TrainingError::InvalidInput(format!(
                    "worker failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let worker_secs = started.elapsed().as_secs_f64();
        let one = total_tokens / central_secs;
        let two = total_tokens / worker_secs;
        out.push(m("tokens_per_s_one_process", one, "tokens/s"));
        out.push(m("tokens_per_s_two_miners", two, "tokens/s"));
        out.push(m("two_miner_speedup", two / one, "x"));
    }
    Ok(out)
}
