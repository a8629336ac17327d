//! The values that cross the engine's API: options, requests, stream events and results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Arch;
use super::error::{EngineError, Result};
use super::loader::WeightFormat;

/// The most alternatives a caller may ask for per position (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;
/// The most stop sequences per request.
pub const MAX_STOP_SEQUENCES: usize = 16;
/// The longest stop sequence, in bytes.
pub const MAX_STOP_BYTES: usize = 256;
/// The highest temperature accepted.
pub const MAX_TEMPERATURE: f32 = 100.0;

/// How to load and serve a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Sequences decoded together in one batch; more wait in the queue.
    pub max_concurrent: usize,
    /// Requests admitted beyond `max_concurrent` that wait for a slot. Bounded so a
    /// flood gets a quick [`EngineError::Busy`] instead of unbounded latency and memory.
    pub max_queued: usize,
    /// Prompt tokens run per scheduler step, across all sequences. Long prompts are fed in
    /// chunks so the sequences already decoding keep getting tokens.
    pub prefill_chunk: usize,
    /// Caps the context length below the model's own (memory per sequence grows with it).
    pub max_context: Option<usize>,
    /// The name the model is served as; defaults to the directory's name.
    pub model_id: Option<String>,
    /// Dequantizes every quantized matrix to f32 at load, so that the forward pass computes
    /// the file's own weights without rounding the activations: the reference a quantized
    /// engine's fidelity is measured against. Four to eight times the memory and far
    /// slower; not for serving.
    pub dequantize: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_concurrent: 8,
            max_queued: 64,
            prefill_chunk: 256,
            max_context: None,
            model_id: None,
            dequantize: false,
        }
    }
}

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name requests refer to the model by.
    pub model_id: String,
    /// The family.
    pub arch: Arch,
    /// `gguf` or `safetensors`.
    pub format: String,
    /// Storage type of the projection weights: `Q8_0`, `Q4_0`, `Q4K`, `F32`, `F16`, `BF16`...
    pub quantization: String,
    /// The most positions (prompt plus completion) one sequence may use.
    pub context_length: usize,
    /// Rows of the embedding and output matrices; valid token ids are below it.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Lowercase hex SHA-256 of the weights: of the file when there is one (so it equals
    /// `sha256sum model.gguf`), otherwise of the per-file digests in file-name order.
    pub weights_sha256: String,
    /// Tokens that end a completion.
    pub eos_token_ids: Vec<u32>,
    /// Whether `apply_chat_template` works.
    pub has_chat_template: bool,
}

impl ModelInfo {
    pub(crate) fn format_name(f: &WeightFormat) -> &'static str {
        match f {
            WeightFormat::Gguf => "gguf",
            WeightFormat::Safetensors => "safetensors",
        }
    }
}

/// A completion request, in tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The prompt; at least one token, every id below the vocabulary size.
    pub prompt: Vec<u32>,
    /// The most tokens to generate; at least 1, and prompt plus this within the context.
    pub max_tokens: usize,
    /// 0 for greedy decoding; otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of most likely tokens whose probability reaches
    /// `top_p`, in (0, 1]. 1 disables it.
    pub top_p: f32,
    /// Sample among the `top_k` most likely tokens; 0 disables it.
    pub top_k: usize,
    /// Seed of the ChaCha20 sampler: the same seed, prompt and model give the same
    /// tokens. `None` draws one (reported in [`Finished::seed`]).
    pub seed: Option<u64>,
    /// Generation stops when the text contains one of these; the output ends before it.
    pub stop: Vec<String>,
    /// Report each generated token's log-probability.
    pub logprobs: bool,
    /// Also report this many most likely alternatives per position (needs `logprobs`).
    pub top_logprobs: usize,
    /// Keep generating past end-of-sequence tokens (for benchmarks).
    pub ignore_eos: bool,
}

impl GenerateRequest {
    /// Greedy decoding of up to `max_tokens` tokens after `prompt`.
    pub fn greedy(prompt: Vec<u32>, max_tokens: usize) -> Self {
        GenerateRequest {
            prompt,
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            stop: Vec::new(),
            logprobs: false,
            top_logprobs: 0,
            ignore_eos: false,
        }
    }

    /// Checks every parameter against the model's limits.
    pub(crate) fn validate(&self, info: &ModelInfo) -> Result<()> {
        let bad = |m: String| Err(EngineError::invalid_request(m));
        if self.prompt.is_empty() {
            return bad("prompt is empty".into());
        }
        validate_ids(&self.prompt, info.vocab_size)?;
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        let total = self.prompt.len().saturating_add(self.max_tokens);
        if total > info.context_length {
            return bad(format!(
                "prompt ({} tokens) plus max_tokens ({}) exceeds the context length ({})",
                self.prompt.len(),
                self.max_tokens,
                info.context_length
            ));
        }
        if !(self.temperature.is_finite() && (0.0..=MAX_TEMPERATURE).contains(&self.temperature)) {
            return bad(format!(
                "temperature {} is outside [0, {MAX_TEMPERATURE}]",
                self.temperature
            ));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} is outside (0, 1]", self.top_p));
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            return bad(format!(
                "top_logprobs {} is above {MAX_TOP_LOGPROBS}",
                self.top_logprobs
            ));
        }
        if self.top_logprobs > 0 && !self.logprobs {
            return bad("top_logprobs needs logprobs to be true".into());
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return bad(format!(
                "{} stop sequences; at most {MAX_STOP_SEQUENCES}",
                self.stop.len()
            ));
        }
        for s in &self.stop {
            if s.is_empty() {
                return bad("a stop sequence is empty".into());
            }
            if s.len() > MAX_STOP_BYTES {
                return bad(format!(
                    "a stop sequence is {} bytes long; at most {MAX_STOP_BYTES}",
                    s.len()
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn validate_ids(ids: &[u32], vocab_size: usize) -> Result<()> {
    if let Some((pos, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= vocab_size)
    {
        return Err(EngineError::invalid_request(format!(
            "token id {id} at position {pos} is outside the vocabulary (size {vocab_size})"
        )));
    }
    Ok(())
}

/// A token and its log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token id.
    pub id: u32,
    /// The token's own text (special tokens included).
    pub token: String,
    /// Natural-log probability under the model (temperature 1, unfiltered).
    pub logprob: f32,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    /// 0 for the first generated token.
    pub index: usize,
    /// The token id.
    pub id: u32,
    /// The token's own text.
    pub token: String,
    /// New output text. It may be empty (held back while it could still become a stop
    /// sequence or an incomplete character) or span earlier tokens' text; the deltas
    /// concatenated are the completion.
    pub text: String,
    /// The token's log-probability, when `logprobs` was asked for.
    pub logprob: Option<f32>,
    /// The most likely alternatives at this position, most likely first.
    pub top_logprobs: Vec<TokenLogprob>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop sequence.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// The last event of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Text not yet sent in a token event, released at the end (held back while it could
    /// still have become a stop sequence or an unfinished character). Part of the completion.
    #[serde(default)]
    pub tail: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// The stop sequence that ended it, if one did.
    pub stop_sequence: Option<String>,
    /// The end-of-sequence token that ended it, if one did (not among the token events).
    pub eos_token: Option<u32>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the token events sent).
    pub completion_tokens: usize,
    /// From admission to the first sampled token (queueing and prefill included).
    pub time_to_first_token: Duration,
    /// From admission to the end.
    pub total_time: Duration,
    /// Tokens after the first divided by the time after the first (0 with one token).
    pub decode_tokens_per_s: f64,
    /// The sampler's seed.
    pub seed: u64,
}

/// One event of a generation stream: tokens, then exactly one `Finished` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateEvent {
    /// A generated token.
    Token(TokenEvent),
    /// The generation ended normally.
    Finished(Finished),
    /// The generation failed; no more events follow.
    Error(EngineError),
}

/// A finished generation, gathered from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Every token event, in order.
    pub tokens: Vec<TokenEvent>,
    /// The completion text (stop sequence excluded).
    pub text: String,
    /// The final event.
    pub finished: Finished,
}

impl Completion {
    /// The generated token ids.
    pub fn token_ids(&self) -> Vec<u32> {
        self.tokens.iter().map(|t| t.id).collect()
    }
}

/// The receiving end of a generation. Dropping it cancels the request.
#[derive(Debug)]
pub struct GenerationStream {
    pub(crate) rx: tokio::sync::mpsc::UnboundedReceiver<GenerateEvent>,
}

impl GenerationStream {
    /// The next event, or `None` after the last one (or if the engine stopped).
    pub async fn next(&mut self) -> Option<GenerateEvent> {
        self.rx.recv().await
    }

    /// The next event, blocking the thread. Must not be called from async code.
    pub fn blocking_next(&mut self) -> Option<GenerateEvent> {
        self.rx.blocking_recv()
    }

    /// Waits for the whole generation.
    pub async fn collect(mut self) -> Result<Completion> {
        let mut acc = Accumulator::default();
        while let Some(ev) = self.next().await {
            if let Some(done) = acc.push(ev)? {
                return Ok(done);
            }
        }
        Err(EngineError::Stopped)
    }

    /// Waits for the whole generation, blocking the thread. Must not be called from async code.
    pub fn collect_blocking(mut self) -> Result<Completion> {
        let mut acc = Accumulator::default();
        while let Some(ev) = self.blocking_next() {
            if let Some(done) = acc.push(ev)? {
                return Ok(done);
            }
        }
        Err(EngineError::Stopped)
    }
}

#[derive(Default)]
struct Accumulator {
    tokens: Vec<TokenEvent>,
    text: String,
}

impl Accumulator {
    fn push(&mut self, ev: GenerateEvent) -> Result<Option<Completion>> {
        match ev {
            GenerateEvent::Token(t) => {
                self.text.push_str(&t.text);
                self.tokens.push(t);
                Ok(None)
            }
            GenerateEvent::Finished(finished) => Ok(Some(Completion {
                text: std::mem::take(&mut self.text) + &finished.tail,
                tokens: std::mem::take(&mut self.tokens),
                finished,
            })),
            GenerateEvent::Error(e) => Err(e),
        }
    }
}

/// One position scored by [`super::Engine::score`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredToken {
    /// Index in the scored sequence.
    pub position: usize,
    /// The token found there.
    pub id: u32,
    /// Its log-probability given every token before it.
    pub logprob: f32,
    /// Its rank among all tokens at this position (0 = the greedy choice).
    pub rank: usize,
    /// The most likely tokens at this position, most likely first.
    pub top_logprobs: Vec<TokenLogprob>,
    /// Entropy of the model's distribution at this position, in nats.
    pub entropy: f32,
    /// Variance of the log-probability of a token drawn from that distribution: with the
    /// entropy, what a sampled completion's log-probabilities should look like.
    pub logprob_variance: f32,
}

/// How loaded the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Sequences decoded together.
    pub max_concurrent: usize,
    /// Requests that may wait beyond those.
    pub max_queued: usize,
    /// Requests admitted and not finished (running plus queued).
    pub in_flight: usize,
}
