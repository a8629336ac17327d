//! The LLM engine: loads a local model directory and serves many concurrent generations
//! and scoring calls from it.
//!
//! A model directory holds the weights (one `.gguf` file, or `.safetensors` files with a
//! `config.json`), `tokenizer.json`, and optionally `tokenizer_config.json` (chat template,
//! special tokens) and `generation_config.json` (end-of-sequence ids). Nothing is ever
//! downloaded.
//!
//! [`Engine`] is `Send + Sync`; share it with an `Arc`. Generations go through a bounded
//! queue to one scheduler thread that decodes all running sequences in one batched forward
//! step; [`Engine::score`] runs on the caller's thread.

mod config;
mod error;
mod loader;
mod model;
mod sampling;
mod scheduler;
mod stops;
pub mod testmodel;
mod tokenizer;
mod types;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

pub use config::{Arch, ModelConfig};
pub use error::{EngineError, Result};
pub use loader::WeightFormat;
pub use tokenizer::ChatMessage;
pub use types::{
    Capacity, Completion, FinishReason, Finished, GenerateEvent, GenerateRequest, GenerationStream,
    LoadOptions, ModelInfo, ScoredToken, TokenEvent, TokenLogprob, MAX_STOP_BYTES,
    MAX_STOP_SEQUENCES, MAX_TEMPERATURE, MAX_TOP_LOGPROBS,
};

use model::{KvCache, Model, Segment};
use tokenizer::TextCodec;

/// What the scheduler thread and the callers share.
#[derive(Debug)]
pub(crate) struct Shared {
    model: Model,
    codec: TextCodec,
    info: ModelInfo,
    opts: LoadOptions,
    in_flight: AtomicUsize,
}

/// A loaded model ready to serve.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    jobs: Option<Sender<scheduler::Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Loads the model in `dir` and starts its scheduler thread.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Engine> {
        let dir = dir.as_ref();
        if opts.max_concurrent == 0 {
            return Err(EngineError::invalid_request(
                "max_concurrent must be at least 1",
            ));
        }
        if opts.prefill_chunk == 0 {
            return Err(EngineError::invalid_request(
                "prefill_chunk must be at least 1",
            ));
        }
        let weights = loader::load_weights(dir, opts.max_context, opts.dequantize)?;
        let cfg = weights.model.cfg.clone();
        let codec = TextCodec::load(dir, weights.gguf_eos, cfg.vocab_size)?;
        let model_id = match &opts.model_id {
            Some(id) => id.clone(),
            None => dir
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into()),
        };
        let info = ModelInfo {
            model_id,
            arch: cfg.arch,
            format: ModelInfo::format_name(&weights.format).into(),
            quantization: weights.quantization.clone(),
            context_length: cfg.context_length,
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_layers: cfg.num_layers,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            weights_sha256: weights.weights_sha256.clone(),
            eos_token_ids: codec.eos_ids().iter().copied().collect(),
            has_chat_template: codec.has_chat_template(),
        };
        tracing::info!(
            model = %info.model_id, arch = %info.arch, format = %info.format,
            quantization = %info.quantization, files = ?weights.weight_files,
            "model loaded"
        );
        let shared = Arc::new(Shared {
            model: weights.model,
            codec,
            info,
            opts: opts.clone(),
            in_flight: AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("agora-inference-scheduler".into())
            .spawn(move || scheduler::run(worker_shared, rx))
            .map_err(|e| EngineError::Execution(format!("cannot start the scheduler: {e}")))?;
        Ok(Engine {
            shared,
            jobs: Some(tx),
            worker: Some(worker),
        })
    }

    /// The name the model is served as.
    pub fn model_id(&self) -> &str {
        &self.shared.info.model_id
    }

    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.shared.info
    }

    /// Current load.
    pub fn capacity(&self) -> Capacity {
        Capacity {
            max_concurrent: self.shared.opts.max_concurrent,
            max_queued: self.shared.opts.max_queued,
            in_flight: self.shared.in_flight.load(Ordering::SeqCst),
        }
    }

    /// Tokenizes `text`; `add_special_tokens` adds what the tokenizer's post-processor adds
    /// (a BOS token for many models). Special tokens written in the text are recognised.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.shared.codec.encode(text, add_special_tokens)
    }

    /// Turns tokens back into text, optionally leaving out special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        types::validate_ids(ids, self.shared.info.vocab_size)?;
        self.shared.codec.decode(ids, skip_special_tokens)
    }

    /// Renders a conversation with the model's chat template. With
    /// `add_generation_prompt` the text ends where the assistant's reply begins.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.shared
            .codec
            .apply_chat_template(messages, add_generation_prompt)
    }

    /// Starts a generation. Errors at once for invalid requests and when the engine is
    /// full ([`EngineError::Busy`]); otherwise events arrive on the returned stream.
    pub fn generate(&self, req: GenerateRequest) -> Result<GenerationStream> {
        req.validate(&self.shared.info)?;
        let limit = self
            .shared
            .opts
            .max_concurrent
            .saturating_add(self.shared.opts.max_queued);
        self.shared
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|in_flight| EngineError::Busy { in_flight, limit })?;
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let seed = req.seed.unwrap_or_else(rand::random);
        let job = scheduler::Job {
            req,
            seed,
            events,
            admitted: Instant::now(),
        };
        let sent = self.jobs.as_ref().map(|tx| tx.send(job).is_ok());
        if sent != Some(true) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Stopped);
        }
        Ok(GenerationStream { rx })
    }

    /// Log-probabilities of `tokens[start..]`, each given all tokens before it, with the
    /// `top_k` most likely alternatives per position, from one prefill of the sequence
    /// (fed in chunks of `prefill_chunk`). This is what checking a completion costs: far
    /// less than generating it. Runs on the calling thread (use `spawn_blocking` in async
    /// code), alongside the scheduler.
    pub fn score(&self, tokens: &[u32], start: usize, top_k: usize) -> Result<Vec<ScoredToken>> {
        let info = &self.shared.info;
        types::validate_ids(tokens, info.vocab_size)?;
        if tokens.len() > info.context_length {
            return Err(EngineError::invalid_request(format!(
                "{} tokens exceed the context length ({})",
                tokens.len(),
                info.context_length
            )));
        }
        if start == 0 || start >= tokens.len() {
            return Err(EngineError::invalid_request(format!(
                "start {start} must be in 1..{} (the first scored token needs a prefix)",
                tokens.len()
            )));
        }
        if top_k > MAX_TOP_LOGPROBS {
            return Err(EngineError::invalid_request(format!(
                "top_k {top_k} is above {MAX_TOP_LOGPROBS}"
            )));
        }
        let codec = &self.shared.codec;
        let chunk = self.shared.opts.prefill_chunk.max(1);
        let inputs = &tokens[..tokens.len() - 1];
        let mut cache = KvCache::default();
        let mut out = Vec::with_capacity(tokens.len() - start);
        let mut pos = 0;
        while pos < inputs.len() {
            let end = (pos + chunk).min(inputs.len());
            // Row i of this chunk predicts token pos + i + 1.
            let first_wanted = (start - 1).saturating_sub(pos).min(end - pos);
            let mut segs = [Segment {
                tokens: &inputs[pos..end],
                cache: &mut cache,
                logits_from: first_wanted,
            }];
            let rows = self
                .shared
                .model
                .forward(&mut segs)?
                .pop()
                .unwrap_or_default();
            // Each row's distribution is independent of the others': the scoring runs
            // on the engine's threads rather than on the caller's alone.
            let scored: Vec<std::sync::OnceLock<ScoredToken>> =
                rows.iter().map(|_| std::sync::OnceLock::new()).collect();
            candle_core::utils::barrier_pool().execute_chunked(
                rows.len(),
                |range: std::ops::Range<usize>| {
                    for i in range {
                        let position = pos + first_wanted + i + 1;
                        let row = score_row(&rows[i], position, tokens[position], top_k, codec);
                        let _ = scored[i].set(row);
                    }
                },
            );
            out.extend(
                scored
                    .into_iter()
                    .filter_map(std::sync::OnceLock::into_inner),
            );
            pos = end;
        }
        Ok(out)
    }
}

/// The scores of token `id` at `position` from the logits `row` that predict it.
fn score_row(
    row: &[f32],
    position: usize,
    id: u32,
    top_k: usize,
    codec: &TextCodec,
) -> ScoredToken {
    let (lp, entropy, logprob_variance) = sampling::log_softmax_with_entropy(row);
    let logprob = lp[id as usize];
    let rank = lp.iter().filter(|&&l| l > logprob).count();
    let top_logprobs = sampling::top_k(&lp, top_k)
        .into_iter()
        .map(|(id, logprob)| TokenLogprob {
            id,
            token: codec.token_text(id),
            logprob,
        })
        .collect();
    ScoredToken {
        position,
        id,
        logprob,
        rank,
        top_logprobs,
        entropy,
        logprob_variance,
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the queue stops the scheduler after its current step.
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
