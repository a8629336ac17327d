//! Model hyper-parameters, read from GGUF metadata or a Hugging Face `config.json`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

/// The model families the engine runs. All share the Llama layout (RMSNorm, rotary
/// positions, grouped-query attention, SwiGLU); they differ in small details, and Mixtral
/// replaces each block's MLP with routed experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama 2/3: the base layout.
    Llama,
    /// Mistral: the Llama layout under another name.
    Mistral,
    /// Qwen2 / Qwen2.5: biases on the query, key and value projections.
    Qwen2,
    /// Qwen3: RMSNorm on each head's queries and keys, no biases.
    Qwen3,
    /// Mixtral: a sparse mixture of SwiGLU experts in every block, top-k routed. The
    /// training subnet's checkpoints have this layout.
    Mixtral,
}

impl Arch {
    /// The name used in GGUF `general.architecture` and HF `model_type`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Mixtral => "mixtral",
        }
    }

    /// Parses `llama`, `mistral`, `qwen2`, `qwen3` or `mixtral`.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "mistral" => Some(Arch::Mistral),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "mixtral" => Some(Arch::Mixtral),
            _ => None,
        }
    }

    /// Whether the query, key and value projections carry a bias.
    pub fn qkv_bias(self) -> bool {
        matches!(self, Arch::Qwen2)
    }

    /// Whether queries and keys are RMS-normalised per head before the rotation.
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape of a model: everything the forward pass needs besides weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The family.
    pub arch: Arch,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's inner layer.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (fewer than query heads under grouped-query attention).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary rows of the embedding and output matrices.
    pub vocab_size: usize,
    /// The most positions the model was trained for.
    pub context_length: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Base of the rotary position frequencies.
    pub rope_theta: f64,
    /// The routed experts replacing the MLP (Mixtral); `None` for a dense MLP.
    pub experts: Option<ExpertsConfig>,
}

/// How a mixture-of-experts block routes: each token goes to its `per_token` most likely
/// experts of `count`, weighted by their renormalised router probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertsConfig {
    /// Experts per block.
    pub count: usize,
    /// Experts each token is sent to.
    pub per_token: usize,
}

/// More experts per block than any released model uses; a bound against hostile configs.
const MAX_EXPERTS: usize = 1024;

impl ModelConfig {
    /// Checks that the numbers describe a model this engine can run.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("hidden size", self.hidden_size),
            ("intermediate size", self.intermediate_size),
            ("layer count", self.num_layers),
            ("head count", self.num_heads),
            ("key/value head count", self.num_kv_heads),
            ("head dimension", self.head_dim),
            ("vocabulary size", self.vocab_size),
            ("context length", self.context_length),
        ];
        for (what, n) in positive {
            if n == 0 {
                return Err(EngineError::invalid_model(format!("{what} is 0")));
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(EngineError::invalid_model(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.head_dim % 2 != 0 {
            return Err(EngineError::invalid_model(format!(
                "head dimension {} is odd; rotary embeddings need pairs",
                self.head_dim
            )));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(EngineError::invalid_model("vocabulary larger than u32"));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(EngineError::invalid_model(format!(
                "rms_norm_eps {} is not a positive number",
                self.rms_norm_eps
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(EngineError::invalid_model(format!(
                "rope_theta {} is not a positive number",
                self.rope_theta
            )));
        }
        match (self.arch, self.experts) {
            (Arch::Mixtral, None) => {
                return Err(EngineError::invalid_model(
                    "a mixtral model needs num_local_experts and num_experts_per_tok",
                ))
            }
            (Arch::Mixtral, Some(e)) => {
                if e.count == 0 || e.count > MAX_EXPERTS {
                    return Err(EngineError::invalid_model(format!(
                        "num_local_experts {} is not in 1..={MAX_EXPERTS}",
                        e.count
                    )));
                }
                if e.per_token == 0 || e.per_token > e.count {
                    return Err(EngineError::invalid_model(format!(
                        "num_experts_per_tok {} is not in 1..={}",
                        e.per_token, e.count
                    )));
                }
            }
            (_, Some(_)) => {
                return Err(EngineError::invalid_model(format!(
                    "{} models have no experts",
                    self.arch
                )))
            }
            (_, None) => {}
        }
        Ok(())
    }

    /// Reads the `<arch>.*` keys of a GGUF file's metadata.
    pub(crate) fn from_gguf(metadata: &HashMap<String, Value>, vocab_rows: usize) -> Result<Self> {
        let arch_name = metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| EngineError::invalid_model("GGUF lacks general.architecture"))?;
        let arch = Arch::from_name(arch_name)
            .filter(|a| *a != Arch::Mixtral)
            .ok_or_else(|| {
                EngineError::invalid_model(format!(
                    "unsupported GGUF architecture {arch_name:?} (llama, mistral, qwen2, qwen3)"
                ))
            })?;
        if metadata
            .get(&format!("{arch_name}.expert_count"))
            .and_then(gguf_int)
            .is_some_and(|n| n > 0)
        {
            return Err(EngineError::invalid_model(
                "mixture-of-experts GGUF files are not supported; serve the safetensors checkpoint",
            ));
        }
        let int = |key: &str| -> Result<usize> {
            let full = format!("{arch_name}.{key}");
            let value = metadata
                .get(&full)
                .ok_or_else(|| EngineError::invalid_model(format!("GGUF lacks {full}")))?;
            gguf_int(value).ok_or_else(|| {
                EngineError::invalid_model(format!("GGUF {full} is not a non-negative integer"))
            })
        };
        let float = |key: &str, default: f64| -> Result<f64> {
            let full = format!("{arch_name}.{key}");
            match metadata.get(&full) {
                None => Ok(default),
                Some(v) => gguf_float(v).ok_or_else(|| {
                    EngineError::invalid_model(format!("GGUF {full} is not a number"))
                }),
            }
        };
        let hidden_size = int("embedding_length")?;
        let num_heads = int("attention.head_count")?;
        let num_kv_heads =
            match metadata.contains_key(&format!("{arch_name}.attention.head_count_kv")) {
                true => int("attention.head_count_kv")?,
                false => num_heads,
            };
        let head_dim = match metadata.contains_key(&format!("{arch_name}.attention.key_length")) {
            true => int("attention.key_length")?,
            false if num_heads > 0 => hidden_size / num_heads,
            false => 0,
        };
        let cfg = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: int("feed_forward_length")?,
            num_layers: int("block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: vocab_rows,
            context_length: int("context_length")?,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-6)?,
            rope_theta: float("rope.freq_base", 10_000.0)?,
            experts: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `config.json`.
    pub(crate) fn from_hf_json(text: &str) -> Result<Self> {
        let hf: HfConfig = serde_json::from_str(text)
            .map_err(|e| EngineError::invalid_model(format!("config.json: {e}")))?;
        let arch = Arch::from_name(&hf.model_type).ok_or_else(|| {
            EngineError::invalid_model(format!(
                "config.json model_type {:?} is not supported (llama, mistral, qwen2, qwen3, mixtral)",
                hf.model_type
            ))
        })?;
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        let head_dim = match hf.head_dim {
            Some(d) => d,
            None if hf.num_attention_heads > 0 => hf.hidden_size / hf.num_attention_heads,
            None => 0,
        };
        let cfg = ModelConfig {
            arch,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads,
            head_dim,
            vocab_size: hf.vocab_size,
            context_length: hf.max_position_embeddings,
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            experts: match (hf.num_local_experts, hf.num_experts_per_tok) {
                (Some(count), Some(per_token)) if arch == Arch::Mixtral => {
                    Some(ExpertsConfig { count, per_token })
                }
                _ => None,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The fields of a Hugging Face `config.json` the engine reads (others are ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HfConfig {
    pub(crate) model_type: String,
    pub(crate) hidden_size: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    #[serde(default)]
    pub(crate) num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub(crate) head_dim: Option<usize>,
    pub(crate) vocab_size: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) rms_norm_eps: f64,
    #[serde(default)]
    pub(crate) rope_theta: Option<f64>,
    #[serde(default)]
    pub(crate) tie_word_embeddings: bool,
    #[serde(default)]
    pub(crate) torch_dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) num_local_experts: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) num_experts_per_tok: Option<usize>,
}

fn gguf_int(v: &Value) -> Option<usize> {
    let n: u64 = match v {
        Value::U8(x) => u64::from(*x),
        Value::U16(x) => u64::from(*x),
        Value::U32(x) => u64::from(*x),
        Value::U64(x) => *x,
        Value::I8(x) => u64::try_from(*x).ok()?,
        Value::I16(x) => u64::try_from(*x).ok()?,
        Value::I32(x) => u64::try_from(*x).ok()?,
        Value::I64(x) => u64::try_from(*x).ok()?,
        _ => return None,
    };
    usize::try_from(n).ok()
}

fn gguf_float(v: &Value) -> Option<f64> {
    match v {
        Value::F32(x) => Some(f64::from(*x)),
        Value::F64(x) => Some(*x),
        other => gguf_int(other).map(|n| n as f64),
    }
}
