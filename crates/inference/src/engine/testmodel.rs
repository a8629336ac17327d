//! Small deterministic models in real formats, for tests, benchmarks and the devnet.
//!
//! [`write_test_model`] writes a Llama-family model with seeded random weights, laid out and
//! named exactly as real checkpoints are (GGUF as llama.cpp writes it, or Hugging Face
//! safetensors with `config.json`), plus a byte-level BPE `tokenizer.json` trained on a
//! built-in text, a `tokenizer_config.json` with a ChatML chat template, and a
//! `generation_config.json`. The same spec always writes the same bytes.
//!
//! The same seed in another format gives the same weights (up to quantization), so
//! [`TestModelSpec::with_format`] makes "the same model, coarser quantization" and
//! [`TestModelSpec::with_seed`] "a different model": the two ways a cheating miner differs.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::config::{Arch, ModelConfig};
use super::error::{EngineError, Result};
use super::loader::{gguf_name, hf_shape, hf_tensor_names};

/// The text the test tokenizer is trained on.
const CORPUS: &str = include_str!("corpus.txt");

/// Special tokens, in id order from 0.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Starts a chat turn.
pub const IM_START: &str = "<|im_start|>";
/// Ends a chat turn; the chat end-of-sequence token.
pub const IM_END: &str = "<|im_end|>";

/// A ChatML template, as Qwen models ship it.
pub const CHAT_TEMPLATE: &str = "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/// GGUF storage types the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GgufQuant {
    /// Unquantized 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// 8-bit blocks of 32.
    Q8_0,
    /// 4-bit blocks of 32.
    Q4_0,
    /// 4-bit k-quants, super-blocks of 256 (dimensions must be multiples of 256).
    Q4K,
    /// 6-bit k-quants, super-blocks of 256.
    Q6K,
    /// llama.cpp's `Q4_K_M` mix: `Q4_K`, except `Q6_K` for the output matrix and for the
    /// value and MLP-down matrices of the first and last eighth of the layers and of every
    /// third layer between.
    Q4KM,
}

impl GgufQuant {
    fn ggml(self) -> GgmlDType {
        match self {
            GgufQuant::F32 => GgmlDType::F32,
            GgufQuant::F16 => GgmlDType::F16,
            GgufQuant::Q8_0 => GgmlDType::Q8_0,
            GgufQuant::Q4_0 => GgmlDType::Q4_0,
            GgufQuant::Q4K | GgufQuant::Q4KM => GgmlDType::Q4K,
            GgufQuant::Q6K => GgmlDType::Q6K,
        }
    }

    /// The storage type of matrix `name` (a GGUF tensor name) in a model of `layers`.
    fn matrix_type(self, name: &str, layers: usize) -> GgmlDType {
        if self != GgufQuant::Q4KM {
            return self.ggml();
        }
        let layer = name
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok());
        let more_bits =
            |i: usize| i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
        let sensitive = name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight");
        match layer {
            _ if name == "output.weight" => GgmlDType::Q6K,
            Some(i) if sensitive && more_bits(i) => GgmlDType::Q6K,
            _ => GgmlDType::Q4K,
        }
    }

    /// llama.cpp's `general.file_type` code.
    fn file_type(self) -> u32 {
        match self {
            GgufQuant::F32 => 0,
            GgufQuant::F16 => 1,
            GgufQuant::Q4_0 => 2,
            GgufQuant::Q8_0 => 7,
            // Q4_K_S ("mostly Q4_K") and Q4_K_M.
            GgufQuant::Q4K => 14,
            GgufQuant::Q4KM => 15,
            GgufQuant::Q6K => 18,
        }
    }

    /// Parses `f32`, `f16`, `q8_0`, `q4_0`, `q4k` (or `q4_k`), `q4_k_m`, `q6k` (or `q6_k`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(GgufQuant::F32),
            "f16" => Some(GgufQuant::F16),
            "q8_0" => Some(GgufQuant::Q8_0),
            "q4_0" => Some(GgufQuant::Q4_0),
            "q4k" | "q4_k" => Some(GgufQuant::Q4K),
            "q4_k_m" | "q4km" => Some(GgufQuant::Q4KM),
            "q6k" | "q6_k" => Some(GgufQuant::Q6K),
            _ => None,
        }
    }
}

/// Safetensors element types the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DenseDType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    BF16,
}

impl DenseDType {
    fn candle(self) -> DType {
        match self {
            DenseDType::F32 => DType::F32,
            DenseDType::F16 => DType::F16,
            DenseDType::BF16 => DType::BF16,
        }
    }

    fn torch_name(self) -> &'static str {
        match self {
            DenseDType::F32 => "float32",
            DenseDType::F16 => "float16",
            DenseDType::BF16 => "bfloat16",
        }
    }

    /// Parses `f32`, `f16`, `bf16`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(DenseDType::F32),
            "f16" => Some(DenseDType::F16),
            "bf16" => Some(DenseDType::BF16),
            _ => None,
        }
    }
}

/// How the weights are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelFormat {
    /// One `model.gguf`.
    Gguf {
        /// Storage type of the matrices (norms stay F32).
        quant: GgufQuant,
    },
    /// `model.safetensors` and `config.json`.
    Safetensors {
        /// Element type of every tensor.
        dtype: DenseDType,
    },
}

/// Everything that determines a test model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TestModelSpec {
    /// The family (its tensor layout and metadata).
    pub arch: Arch,
    /// The file format.
    pub format: ModelFormat,
    /// Seed of the weights. The tokenizer does not depend on it.
    pub seed: u64,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP.
    pub intermediate: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Vocabulary size (the tokenizer is padded with reserved tokens up to it).
    pub vocab: usize,
    /// Context length written into the metadata.
    pub context_length: usize,
}

impl TestModelSpec {
    /// A model whose forward pass takes about a millisecond: for tests.
    pub fn tiny(arch: Arch, format: ModelFormat, seed: u64) -> Self {
        TestModelSpec {
            arch,
            format,
            seed,
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vocab: 512,
            context_length: 512,
        }
    }

    /// About 30M parameters: for decode benchmarks.
    pub fn small(arch: Arch, format: ModelFormat, seed: u64) -> Self {
        TestModelSpec {
            arch,
            format,
            seed,
            hidden: 512,
            intermediate: 1536,
            layers: 8,
            heads: 8,
            kv_heads: 4,
            vocab: 4096,
            context_length: 2048,
        }
    }

    /// About 380M parameters (about 400 MB as Q8_0): larger than a CPU's caches, so that
    /// decoding is bound by memory bandwidth as it is for real models.
    pub fn medium(arch: Arch, format: ModelFormat, seed: u64) -> Self {
        TestModelSpec {
            arch,
            format,
            seed,
            hidden: 1024,
            intermediate: 4096,
            layers: 24,
            heads: 16,
            kv_heads: 4,
            vocab: 8192,
            context_length: 2048,
        }
    }

    /// The same weights written in another format (e.g. a coarser quantization).
    pub fn with_format(mut self, format: ModelFormat) -> Self {
        self.format = format;
        self
    }

    /// Another model of the same shape.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    fn config(&self) -> ModelConfig {
        ModelConfig {
            arch: self.arch,
            hidden_size: self.hidden,
            intermediate_size: self.intermediate,
            num_layers: self.layers,
            num_heads: self.heads,
            num_kv_heads: self.kv_heads,
            head_dim: self.head_dim(),
            vocab_size: self.vocab,
            context_length: self.context_length,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            experts: None,
        }
    }

    /// Number of weights.
    pub fn parameter_count(&self) -> usize {
        let cfg = self.config();
        hf_tensor_names(&cfg, false)
            .iter()
            .map(|n| hf_shape(&cfg, n).iter().product::<usize>())
            .sum()
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::invalid_request(m));
        if self.arch == Arch::Mixtral {
            return bad(
                "test models are dense; a mixtral model comes from the training subnet's \
                 checkpoints"
                    .into(),
            );
        }
        if self.heads == 0 || self.hidden % self.heads != 0 {
            return bad(format!(
                "hidden {} is not a multiple of heads {}",
                self.hidden, self.heads
            ));
        }
        if self.vocab < 300 {
            return bad(format!(
                "vocab {} is below 300 (bytes plus special tokens)",
                self.vocab
            ));
        }
        self.config()
            .validate()
            .map_err(|e| EngineError::invalid_request(e.to_string()))?;
        if let ModelFormat::Gguf { quant } = self.format {
            let block = quant.ggml().block_size();
            for (what, n) in [
                ("hidden", self.hidden),
                ("intermediate", self.intermediate),
                ("heads x head_dim", self.heads * self.head_dim()),
            ] {
                if n % block != 0 {
                    return bad(format!(
                        "{quant:?} packs blocks of {block}; {what} {n} is not a multiple (pick a larger size)"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What [`write_test_model`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenModel {
    /// The model directory.
    pub dir: PathBuf,
    /// The weights file.
    pub weights_file: PathBuf,
    /// Lowercase hex SHA-256 of the weights file (equals the engine's `weights_sha256`).
    pub weights_sha256: String,
    /// Number of weights.
    pub parameters: usize,
}

/// Writes the model `spec` describes into `dir` (created if needed).
pub fn write_test_model(dir: &Path, spec: &TestModelSpec) -> Result<WrittenModel> {
    spec.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, &e))?;
    let tok = build_tokenizer(spec.vocab)?;
    let tokenizer_json = tok
        .to_string(true)
        .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    write(&dir.join("tokenizer.json"), tokenizer_json.as_bytes())?;
    let id_of = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| EngineError::Tokenizer(format!("{t} missing from the test vocabulary")))
    };
    let (eot, im_end) = (id_of(END_OF_TEXT)?, id_of(IM_END)?);
    let tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "add_bos_token": false,
        "model_max_length": spec.context_length,
        "chat_template": CHAT_TEMPLATE,
    });
    write_json(&dir.join("tokenizer_config.json"), &tokenizer_config)?;
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({ "eos_token_id": [im_end, eot] }),
    )?;
    let cfg = spec.config();
    let weights = random_weights(&cfg, spec.seed)?;
    let weights_file = match spec.format {
        ModelFormat::Safetensors { dtype } => {
            let path = dir.join("model.safetensors");
            write_safetensors(&path, &cfg, weights, dtype)?;
            path
        }
        ModelFormat::Gguf { quant } => {
            let path = dir.join("model.gguf");
            let bytes = gguf_bytes(&cfg, &weights, quant, &tok, im_end, eot)?;
            write(&path, &bytes)?;
            path
        }
    };
    let bytes = std::fs::read(&weights_file).map_err(|e| EngineError::io(&weights_file, &e))?;
    Ok(WrittenModel {
        dir: dir.to_path_buf(),
        weights_file,
        weights_sha256: hex::encode(Sha256::digest(&bytes)),
        parameters: spec.parameter_count(),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| EngineError::io(path, &e))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| EngineError::Execution(e.to_string()))?;
    write(path, text.as_bytes())
}

/// A byte-level BPE (GPT-2 style) trained on [`CORPUS`], padded with reserved special
/// tokens to exactly `vocab` entries.
fn build_tokenizer(vocab: usize) -> Result<Tokenizer> {
    let err = |e: tokenizers::Error| EngineError::Tokenizer(e.to_string());
    let specials: Vec<AddedToken> = [END_OF_TEXT, IM_START, IM_END]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.with_post_processor(Some(ByteLevel::new(false, true, true)));
    tok.train(&mut trainer, CORPUS.lines()).map_err(err)?;
    let have = tok.get_vocab_size(true);
    let reserved: Vec<AddedToken> = (0..vocab.saturating_sub(have))
        .map(|i| AddedToken::from(format!("<|reserved_{i}|>"), true))
        .collect();
    tok.add_special_tokens(reserved).map_err(err)?;
    let got = tok.get_vocab_size(true);
    if got != vocab {
        return Err(EngineError::Tokenizer(format!(
            "test tokenizer has {got} entries, wanted {vocab}"
        )));
    }
    Ok(tok)
}

/// Standard normal samples (Box-Muller), so weights need nothing beyond `rand`.
fn normals(rng: &mut ChaCha8Rng, n: usize, scale: f32, offset: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32 * scale + offset);
        out.push((r * a.sin()) as f32 * scale + offset);
    }
    out.truncate(n);
    out
}

/// Seeded weights under their Hugging Face names. Scales keep activations near unit size
/// and make the logits peaked enough that greedy choices are not near-ties.
fn random_weights(cfg: &ModelConfig, seed: u64) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for name in hf_tensor_names(cfg, false) {
        let shape = hf_shape(cfg, &name);
        let n: usize = shape.iter().product();
        let fan_in = *shape.last().unwrap_or(&1) as f32;
        let (scale, offset) = if name.ends_with(".bias") {
            (0.1, 0.0)
        } else if shape.len() == 1 {
            (0.1, 1.0) // norm weights
        } else if name == "model.embed_tokens.weight" {
            (1.0, 0.0)
        } else if name == "lm_head.weight" {
            (4.0 / fan_in.sqrt(), 0.0)
        } else {
            (1.0 / fan_in.sqrt(), 0.0)
        };
        let values = normals(&mut rng, n, scale, offset);
        out.push((name, Tensor::from_vec(values, shape, &Device::Cpu)?));
    }
    Ok(out)
}

fn write_safetensors(
    path: &Path,
    cfg: &ModelConfig,
    weights: Vec<(String, Tensor)>,
    dtype: DenseDType,
) -> Result<()> {
    let mut map = HashMap::new();
    for (name, t) in weights {
        map.insert(name, t.to_dtype(dtype.candle())?);
    }
    candle_core::safetensors::save(&map, path)
        .map_err(|e| EngineError::io(path, &std::io::Error::other(e.to_string())))?;
    let config = serde_json::json!({
        "architectures": [hf_class(cfg.arch)],
        "model_type": cfg.arch.name(),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "attention_bias": cfg.arch.qkv_bias(),
        "torch_dtype": dtype.torch_name(),
    });
    let dir = path.parent().unwrap_or(Path::new("."));
    write_json(&dir.join("config.json"), &config)
}

fn hf_class(arch: Arch) -> &'static str {
    match arch {
        Arch::Llama => "LlamaForCausalLM",
        Arch::Mistral => "MistralForCausalLM",
        Arch::Qwen2 => "Qwen2ForCausalLM",
        Arch::Qwen3 => "Qwen3ForCausalLM",
        Arch::Mixtral => "MixtralForCausalLM",
    }
}

/// llama.cpp's conversion of Hugging Face query/key rows to interleaved rotary pairs:
/// within each head, row `j` of the first half and row `j` of the second half become
/// rows `2j` and `2j + 1`.
fn interleave_rotary_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let hd = rows / heads;
    Ok(t.reshape((heads, 2, hd / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

fn gguf_bytes(
    cfg: &ModelConfig,
    weights: &[(String, Tensor)],
    quant: GgufQuant,
    tok: &Tokenizer,
    eos: u32,
    eot: u32,
) -> Result<Vec<u8>> {
    use gguf_file::Value;
    // llama.cpp has no separate Mistral architecture: Mistral GGUFs are Llama GGUFs.
    let arch = match cfg.arch {
        Arch::Mistral => "llama",
        other => other.name(),
    };
    let interleaved = matches!(cfg.arch, Arch::Llama | Arch::Mistral);
    let u32v = |n: usize| Value::U32(n as u32);
    let (tokens, token_types, merges) = gguf_vocab(tok)?;
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            "general.name".into(),
            Value::String(format!("agora-test-{}", cfg.arch)),
        ),
        ("general.file_type".into(), Value::U32(quant.file_type())),
        ("general.alignment".into(), Value::U32(32)),
        (format!("{arch}.context_length"), u32v(cfg.context_length)),
        (format!("{arch}.embedding_length"), u32v(cfg.hidden_size)),
        (format!("{arch}.block_count"), u32v(cfg.num_layers)),
        (
            format!("{arch}.feed_forward_length"),
            u32v(cfg.intermediate_size),
        ),
        (format!("{arch}.attention.head_count"), u32v(cfg.num_heads)),
        (
            format!("{arch}.attention.head_count_kv"),
            u32v(cfg.num_kv_heads),
        ),
        (format!("{arch}.attention.key_length"), u32v(cfg.head_dim)),
        (format!("{arch}.attention.value_length"), u32v(cfg.head_dim)),
        (format!("{arch}.rope.dimension_count"), u32v(cfg.head_dim)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (
            format!("{arch}.rope.freq_base"),
            Value::F32(cfg.rope_theta as f32),
        ),
        (format!("{arch}.vocab_size"), u32v(cfg.vocab_size)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(token_types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(eot)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(eot)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHAT_TEMPLATE.into()),
        ),
    ];
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(weights.len());
    for (hf, t) in weights {
        let name = gguf_name(hf)
            .ok_or_else(|| EngineError::Execution(format!("no GGUF name for {hf}")))?;
        let t = match (interleaved, hf.as_str()) {
            (true, n) if n.ends_with("q_proj.weight") => interleave_rotary_rows(t, cfg.num_heads)?,
            (true, n) if n.ends_with("k_proj.weight") => {
                interleave_rotary_rows(t, cfg.num_kv_heads)?
            }
            _ => t.clone(),
        };
        // Vectors (norms, biases) stay F32, as llama.cpp keeps them.
        let dtype = match t.rank() {
            1 => GgmlDType::F32,
            _ => quant.matrix_type(&name, cfg.num_layers),
        };
        tensors.push((name, QTensor::quantize(&t, dtype)?));
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta_refs, &tensor_refs)?;
    Ok(out.into_inner())
}

/// The vocabulary as GGUF lists it: tokens by id, their types (1 normal, 3 control) and
/// the BPE merges as `"left right"` strings.
fn gguf_vocab(tok: &Tokenizer) -> Result<(Vec<String>, Vec<i32>, Vec<String>)> {
    let vocab = tok.get_vocab(true);
    let mut tokens = vec![String::new(); vocab.len()];
    for (text, id) in &vocab {
        let slot = tokens.get_mut(*id as usize).ok_or_else(|| {
            EngineError::Tokenizer(format!("token id {id} beyond the vocabulary size"))
        })?;
        *slot = text.clone();
    }
    let special: std::collections::HashSet<u32> = tok
        .get_added_tokens_decoder()
        .iter()
        .filter(|(_, t)| t.special)
        .map(|(id, _)| *id)
        .collect();
    let types = (0..tokens.len() as u32)
        .map(|id| if special.contains(&id) { 3 } else { 1 })
        .collect();
    // The merges are only reachable through the serialised form.
    let json: serde_json::Value = serde_json::from_str(
        &tok.to_string(false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?,
    )
    .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    let merges = json["model"]["merges"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| match m {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Array(pair) => Some(format!(
                        "{} {}",
                        pair.first()?.as_str()?,
                        pair.get(1)?.as_str()?
                    )),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((tokens, types, merges))
}

/// Deserialises a spec from JSON (used by the devnet's configuration).
pub fn spec_from_json(text: &str) -> Result<TestModelSpec> {
    serde_json::from_str(text).map_err(|e| EngineError::invalid_request(format!("model spec: {e}")))
}
