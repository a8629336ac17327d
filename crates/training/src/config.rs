//! The model's shape, written as a Hugging Face Mixtral `config.json` so that any Mixtral
//! loader (the inference subnet's engine included) can read a training checkpoint.

use serde::{Deserialize, Serialize};

use crate::error::TrainingError;

/// Shape of the Mixture-of-Experts decoder. Field names follow Hugging Face's
/// `MixtralConfig`; the fields Agora does not use keep their Mixtral meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Always `["MixtralForCausalLM"]`.
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
    /// Always `"mixtral"`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Number of token ids (256 for the byte-level tokenizer).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of each expert's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Key/value heads; equal to `num_attention_heads` (no grouped-query attention).
    pub num_key_value_heads: usize,
    /// Experts per block (E).
    pub num_local_experts: usize,
    /// Experts each token is routed to (top-k).
    pub num_experts_per_tok: usize,
    /// Longest sequence the rotary tables cover.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Weight of the load-balancing loss added to the language-model loss.
    #[serde(default = "default_aux")]
    pub router_aux_loss_coef: f64,
    /// Always `"silu"` (SwiGLU experts).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Always false: `lm_head` has its own weights.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Always `"float32"`.
    #[serde(default = "default_dtype")]
    pub torch_dtype: String,
}

fn default_architectures() -> Vec<String> {
    vec!["MixtralForCausalLM".to_string()]
}
fn default_model_type() -> String {
    "mixtral".to_string()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_aux() -> f64 {
    0.01
}
fn default_act() -> String {
    "silu".to_string()
}
fn default_dtype() -> String {
    "float32".to_string()
}

/// Upper bounds that keep a hostile `config.json` from asking for absurd allocations.
const MAX_DIM: usize = 1 << 14;
const MAX_LAYERS: usize = 256;
const MAX_EXPERTS: usize = 256;

impl ModelConfig {
    /// A small model for the byte-level tokenizer.
    pub fn small(
        hidden_size: usize,
        num_hidden_layers: usize,
        num_local_experts: usize,
        num_experts_per_tok: usize,
    ) -> Self {
        Self {
            architectures: default_architectures(),
            model_type: default_model_type(),
            vocab_size: crate::data::VOCAB_SIZE,
            hidden_size,
            intermediate_size: 2 * hidden_size,
            num_hidden_layers,
            num_attention_heads: (hidden_size / 16).max(1),
            num_key_value_heads: (hidden_size / 16).max(1),
            num_local_experts,
            num_experts_per_tok,
            max_position_embeddings: 512,
            rms_norm_eps: default_eps(),
            rope_theta: default_rope_theta(),
            router_aux_loss_coef: default_aux(),
            hidden_act: default_act(),
            tie_word_embeddings: false,
            torch_dtype: default_dtype(),
        }
    }

    /// The tiny model used by tests: d=32, 2 layers, 4 experts, top-2.
    pub fn tiny() -> Self {
        Self::small(32, 2, 4, 2)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the shape is one this crate can build.
    pub fn validate(&self) -> Result<(), TrainingError> {
        let bad = |why: &str| Err(TrainingError::InvalidConfig(why.to_string()));
        if self.model_type != "mixtral" {
            return bad("model_type must be \"mixtral\"");
        }
        if self.hidden_act != "silu" {
            return bad("hidden_act must be \"silu\"");
        }
        if self.tie_word_embeddings {
            return bad("tie_word_embeddings is not supported");
        }
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, 1 << 20),
            ("hidden_size", self.hidden_size, MAX_DIM),
            ("intermediate_size", self.intermediate_size, 4 * MAX_DIM),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_DIM),
            ("num_local_experts", self.num_local_experts, MAX_EXPERTS),
            ("num_experts_per_tok", self.num_experts_per_tok, MAX_EXPERTS),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 16,
            ),
        ] {
            if v == 0 || v > max {
                return bad(&format!("{name} must be in 1..={max}, got {v}"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 || self.head_dim() % 2 != 0 {
            return bad("hidden_size must split into heads of even width");
        }
        if self.num_key_value_heads != self.num_attention_heads {
            return bad("num_key_value_heads must equal num_attention_heads");
        }
        if self.num_experts_per_tok > self.num_local_experts {
            return bad("num_experts_per_tok must not exceed num_local_experts");
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return bad("rms_norm_eps must be positive");
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return bad("rope_theta must be above 1");
        }
        if !(self.router_aux_loss_coef >= 0.0 && self.router_aux_loss_coef.is_finite()) {
            return bad("router_aux_loss_coef must be finite and non-negative");
        }
        Ok(())
    }

    /// Every parameter's name and shape, in canonical (sorted) order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.hidden_size;
        let f = self.intermediate_size;
        let mut out = vec![
            (
                "model.embed_tokens.weight".to_string(),
                vec![self.vocab_size, d],
            ),
            ("model.norm.weight".to_string(), vec![d]),
            ("lm_head.weight".to_string(), vec![self.vocab_size, d]),
        ];
        for l in 0..self.num_hidden_layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![d]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
            for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                out.push((format!("{p}.self_attn.{proj}.weight"), vec![d, d]));
            }
            out.push((
                format!("{p}.block_sparse_moe.gate.weight"),
                vec![self.num_local_experts, d],
            ));
            for e in 0..self.num_local_experts {
                let q = format!("{p}.block_sparse_moe.experts.{e}");
                out.push((format!("{q}.w1.weight"), vec![f, d]));
                out.push((format!("{q}.w3.weight"), vec![f, d]));
                out.push((format!("{q}.w2.weight"), vec![d, f]));
            }
        }
        out.sort();
        out
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.param_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// Which expert a parameter belongs to, or `None` for the shared backbone.
pub fn expert_of(name: &str) -> Option<usize> {
    let rest = name.split(".block_sparse_moe.experts.").nth(1)?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_config_is_valid_and_round_trips() {
        let c = ModelConfig::tiny();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: ModelConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_configs_are_rejected() {
        let mut c = ModelConfig::tiny();
        c.num_experts_per_tok = 9;
        assert!(c.validate().is_err());
        let mut c = ModelConfig::tiny();
        c.hidden_size = 0;
        assert!(c.validate().is_err());
        let mut c = ModelConfig::tiny();
        c.num_attention_heads = 3;
        assert!(c.validate().is_err());
    }

    #[test]
    fn experts_are_found_by_name() {
        assert_eq!(
            expert_of("model.layers.1.block_sparse_moe.experts.3.w2.weight"),
            Some(3)
        );
        assert_eq!(
            expert_of("model.layers.1.block_sparse_moe.gate.weight"),
            None
        );
        assert_eq!(expert_of("lm_head.weight"), None);
    }
}
