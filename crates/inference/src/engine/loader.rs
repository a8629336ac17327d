//! Reading a model directory: GGUF or safetensors weights, checked against the configuration.
//!
//! Files are read whole into memory (no memory mapping: the workspace forbids `unsafe`).
//! Every tensor's shape is compared with what the configuration implies before it is used,
//! so a file that lies about its contents fails to load instead of failing mid-request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::config::{Arch, ModelConfig};
use super::error::{EngineError, Result};
use super::model::{expect_shape, Block, Expert, Ffn, Linear, Model, RopeStyle};

/// How the weights of a loaded model are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFormat {
    /// One GGUF file.
    Gguf,
    /// One or more safetensors files with a `config.json`.
    Safetensors,
}

/// What was loaded, besides the weights.
#[derive(Debug)]
pub(crate) struct LoadedWeights {
    pub(crate) model: Model,
    pub(crate) format: WeightFormat,
    /// The storage type of the projection weights, e.g. `Q8_0`, `Q4K`, `F16`, `BF16`.
    pub(crate) quantization: String,
    /// Lowercase hex SHA-256; see [`super::ModelInfo::weights_sha256`].
    pub(crate) weights_sha256: String,
    pub(crate) weight_files: Vec<PathBuf>,
    /// GGUF metadata, for tokenizer facts a directory may lack (empty for safetensors).
    pub(crate) gguf_eos: Option<u32>,
}

/// Finds and loads the weights in `dir`; `dequantize` turns quantized GGUF matrices into
/// f32 ones (see [`super::LoadOptions::dequantize`]).
pub(crate) fn load_weights(
    dir: &Path,
    max_context: Option<usize>,
    dequantize: bool,
) -> Result<LoadedWeights> {
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, &e))?;
    let mut ggufs = Vec::new();
    let mut safetensors = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| EngineError::io(dir, &e))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("gguf") => ggufs.push(path),
            Some("safetensors") => safetensors.push(path),
            _ => {}
        }
    }
    ggufs.sort();
    safetensors.sort();
    match (ggufs.len(), safetensors.len()) {
        (1, _) => load_gguf(&ggufs[0], max_context, dequantize),
        (0, 0) => Err(EngineError::invalid_model(format!(
            "{} holds no .gguf or .safetensors file",
            dir.display()
        ))),
        (0, _) => load_safetensors(dir, &safetensors, max_context),
        (n, _) => Err(EngineError::invalid_model(format!(
            "{} holds {n} .gguf files; keep exactly one",
            dir.display()
        ))),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| EngineError::io(path, &e))
}

/// SHA-256 of the weights: of the file itself when there is one, otherwise of the
/// concatenated per-file digests in file-name order.
fn weights_digest(digests: &[[u8; 32]]) -> String {
    match digests {
        [one] => hex::encode(one),
        many => {
            let mut h = Sha256::new();
            for d in many {
                h.update(d);
            }
            hex::encode(h.finalize())
        }
    }
}

/// Runs a third-party parser on untrusted bytes, turning a panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EngineError::invalid_model(format!("{what}: {e}"))),
        Err(_) => Err(EngineError::invalid_model(format!(
            "{what}: the file is malformed (parser aborted)"
        ))),
    }
}

/// Hugging Face tensor names of the whole model, in a fixed order.
pub(crate) fn hf_tensor_names(cfg: &ModelConfig, tied: bool) -> Vec<String> {
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        names.push(format!("{p}.input_layernorm.weight"));
        for proj in ["q", "k", "v"] {
            names.push(format!("{p}.self_attn.{proj}_proj.weight"));
            if cfg.arch.qkv_bias() {
                names.push(format!("{p}.self_attn.{proj}_proj.bias"));
            }
        }
        names.push(format!("{p}.self_attn.o_proj.weight"));
        if cfg.arch.qk_norm() {
            names.push(format!("{p}.self_attn.q_norm.weight"));
            names.push(format!("{p}.self_attn.k_norm.weight"));
        }
        names.push(format!("{p}.post_attention_layernorm.weight"));
        match cfg.experts {
            Some(experts) => {
                names.push(format!("{p}.block_sparse_moe.gate.weight"));
                for e in 0..experts.count {
                    for w in ["w1", "w2", "w3"] {
                        names.push(format!("{p}.block_sparse_moe.experts.{e}.{w}.weight"));
                    }
                }
            }
            None => {
                for proj in ["gate", "up", "down"] {
                    names.push(format!("{p}.mlp.{proj}_proj.weight"));
                }
            }
        }
    }
    names.push("model.norm.weight".to_string());
    if !tied {
        names.push("lm_head.weight".to_string());
    }
    names
}

/// The GGUF name llama.cpp gives a Hugging Face tensor.
pub(crate) fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, kind) = rest.rsplit_once('.')?;
    let short = match stem {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// The shape every Hugging Face tensor must have, `(out, in)` for matrices.
pub(crate) fn hf_shape(cfg: &ModelConfig, hf: &str) -> Vec<usize> {
    let q_out = cfg.num_heads * cfg.head_dim;
    let kv_out = cfg.num_kv_heads * cfg.head_dim;
    let h = cfg.hidden_size;
    let stem = hf.rsplit_once('.').map_or(hf, |(s, _)| s);
    let is_bias = hf.ends_with(".bias");
    let matrix = |out: usize, inp: usize| if is_bias { vec![out] } else { vec![out, inp] };
    if stem.ends_with("embed_tokens") || stem == "lm_head" {
        vec![cfg.vocab_size, h]
    } else if stem.ends_with("q_proj") {
        matrix(q_out, h)
    } else if stem.ends_with("k_proj") || stem.ends_with("v_proj") {
        matrix(kv_out, h)
    } else if stem.ends_with("o_proj") {
        vec![h, q_out]
    } else if stem.ends_with("q_norm") || stem.ends_with("k_norm") {
        vec![cfg.head_dim]
    } else if stem.ends_with("gate_proj") || stem.ends_with("up_proj") {
        vec![cfg.intermediate_size, h]
    } else if stem.ends_with("down_proj") {
        vec![h, cfg.intermediate_size]
    } else if stem.ends_with("block_sparse_moe.gate") {
        vec![cfg.experts.map_or(0, |e| e.count), h]
    } else if stem.ends_with(".w1") || stem.ends_with(".w3") {
        vec![cfg.intermediate_size, h]
    } else if stem.ends_with(".w2") {
        vec![h, cfg.intermediate_size]
    } else {
        vec![h]
    }
}

/// Where weights come from while a model is assembled.
trait Source {
    /// A matrix or vector by its Hugging Face name, shape-checked, as a projection.
    fn linear(&mut self, cfg: &ModelConfig, hf: &str) -> Result<QMatMul>;
    /// Several matrices with the same input width, stacked by rows into one projection:
    /// one matrix, or (when they are stored in different quantized types, as in a
    /// `Q4_K_M` file) the matrices as they are, in order.
    fn stacked(&mut self, cfg: &ModelConfig, hf: &[String]) -> Result<Vec<QMatMul>>;
    /// A vector (norm weight, bias) or the embedding, shape-checked, in f32.
    fn dense(&mut self, cfg: &ModelConfig, hf: &str) -> Result<Tensor>;
    fn has(&self, hf: &str) -> bool;
}

fn assemble(cfg: ModelConfig, src: &mut dyn Source, rope: RopeStyle) -> Result<Model> {
    let embed = src.dense(&cfg, "model.embed_tokens.weight")?;
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        let proj = |src: &mut dyn Source, names: &[&str], bias: bool| -> Result<Linear> {
            let weights: Vec<String> = names.iter().map(|n| format!("{p}.{n}.weight")).collect();
            let w = match weights.as_slice() {
                [one] => vec![src.linear(&cfg, one)?],
                many => src.stacked(&cfg, many)?,
            };
            let b = match bias {
                true => {
                    let parts = names
                        .iter()
                        .map(|n| src.dense(&cfg, &format!("{p}.{n}.bias")))
                        .collect::<Result<Vec<_>>>()?;
                    Some(Tensor::cat(&parts, 0)?)
                }
                false => None,
            };
            Linear::new(w, b)
        };
        let qkv = proj(
            src,
            &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
            cfg.arch.qkv_bias(),
        )?;
        let o = proj(src, &["self_attn.o_proj"], false)?;
        let ffn = match cfg.experts {
            None => Ffn::Dense(Expert {
                gate_up: proj(src, &["mlp.gate_proj", "mlp.up_proj"], false)?,
                down: proj(src, &["mlp.down_proj"], false)?,
            }),
            Some(routing) => {
                let moe = "block_sparse_moe";
                let experts = (0..routing.count)
                    .map(|e| -> Result<Expert> {
                        let [w1, w2, w3] =
                            ["w1", "w2", "w3"].map(|w| format!("{moe}.experts.{e}.{w}"));
                        Ok(Expert {
                            gate_up: proj(src, &[&w1, &w3], false)?,
                            down: proj(src, &[&w2], false)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ffn::Routed {
                    router: src.dense(&cfg, &format!("{p}.{moe}.gate.weight"))?,
                    experts,
                    per_token: routing.per_token,
                }
            }
        };
        let (q_norm, k_norm) = match cfg.arch.qk_norm() {
            true => (
                Some(src.dense(&cfg, &format!("{p}.self_attn.q_norm.weight"))?),
                Some(src.dense(&cfg, &format!("{p}.self_attn.k_norm.weight"))?),
            ),
            false => (None, None),
        };
        blocks.push(Block {
            attn_norm: src.dense(&cfg, &format!("{p}.input_layernorm.weight"))?,
            qkv,
            o,
            q_norm,
            k_norm,
            ffn_norm: src.dense(&cfg, &format!("{p}.post_attention_layernorm.weight"))?,
            ffn,
        });
    }
    let norm = src.dense(&cfg, "model.norm.weight")?;
    let lm_head = match src.has("lm_head.weight") {
        true => src.linear(&cfg, "lm_head.weight")?,
        // Tied embeddings: the output matrix is the embedding matrix.
        false => src.linear(&cfg, "model.embed_tokens.weight")?,
    };
    Model::new(
        cfg,
        embed,
        blocks,
        norm,
        Linear::new(vec![lm_head], None)?,
        rope,
    )
}

struct GgufSource {
    content: gguf_file::Content,
    bytes: Cursor<Vec<u8>>,
    /// Matrices become f32 tensors of their dequantized values.
    dequantize: bool,
}

impl GgufSource {
    fn qtensor(&mut self, cfg: &ModelConfig, hf: &str) -> Result<QTensor> {
        let name = gguf_name(hf)
            .ok_or_else(|| EngineError::Execution(format!("no GGUF name for {hf}")))?;
        let info = self
            .content
            .tensor_infos
            .get(&name)
            .ok_or_else(|| EngineError::invalid_model(format!("GGUF lacks tensor {name}")))?;
        expect_shape(&name, info.shape.dims(), &hf_shape(cfg, hf))?;
        let content = &self.content;
        let bytes = &mut self.bytes;
        guarded(&format!("GGUF tensor {name}"), || {
            content.tensor(bytes, &name, &Device::Cpu)
        })
    }
}

impl Source for GgufSource {
    fn linear(&mut self, cfg: &ModelConfig, hf: &str) -> Result<QMatMul> {
        let t = self.qtensor(cfg, hf)?;
        if self.dequantize {
            return Ok(QMatMul::Tensor(t.dequantize(&Device::Cpu)?));
        }
        Ok(QMatMul::from_qtensor(t)?)
    }

    fn stacked(&mut self, cfg: &ModelConfig, hf: &[String]) -> Result<Vec<QMatMul>> {
        let parts = hf
            .iter()
            .map(|n| self.qtensor(cfg, n))
            .collect::<Result<Vec<_>>>()?;
        let float = |d: GgmlDType| matches!(d, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        if self.dequantize || parts.iter().any(|t| float(t.dtype())) {
            let dense = parts
                .iter()
                .map(|t| t.dequantize(&Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Ok(vec![QMatMul::Tensor(Tensor::cat(&dense, 0)?)]);
        }
        let dtype = parts[0].dtype();
        if parts.iter().any(|t| t.dtype() != dtype) {
            // Each keeps its own quantized type: stacking them as f32 would take several
            // times the memory, all of it read by every decode step.
            return parts
                .into_iter()
                .map(|t| Ok(QMatMul::from_qtensor(t)?))
                .collect();
        }
        // Quantized rows are independent blocks: stacking matrices is concatenating bytes.
        let cols = parts[0].shape().dims()[1];
        let mut rows = 0;
        let mut bytes = Vec::new();
        for t in &parts {
            rows += t.shape().dims()[0];
            bytes.extend_from_slice(&t.data()?);
        }
        let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?;
        let stacked = QTensor::new(storage, (rows, cols))?;
        Ok(vec![QMatMul::from_qtensor(stacked)?])
    }

    fn dense(&mut self, cfg: &ModelConfig, hf: &str) -> Result<Tensor> {
        let t = self.qtensor(cfg, hf)?;
        Ok(t.dequantize(&Device::Cpu)?)
    }

    fn has(&self, hf: &str) -> bool {
        gguf_name(hf).is_some_and(|n| self.content.tensor_infos.contains_key(&n))
    }
}

fn load_gguf(path: &Path, max_context: Option<usize>, dequantize: bool) -> Result<LoadedWeights> {
    let bytes = read_file(path)?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let mut cursor = Cursor::new(bytes);
    let content = guarded(&format!("{}", path.display()), || {
        gguf_file::Content::read(&mut cursor)
    })?;
    let vocab_rows = content
        .tensor_infos
        .get("token_embd.weight")
        .map(|i| i.shape.dims().first().copied().unwrap_or(0))
        .ok_or_else(|| EngineError::invalid_model("GGUF lacks tensor token_embd.weight"))?;
    let mut cfg = ModelConfig::from_gguf(&content.metadata, vocab_rows)?;
    if let Some(m) = max_context {
        cfg.context_length = cfg.context_length.min(m.max(1));
    }
    let quantization = content
        .tensor_infos
        .get("blk.0.attn_q.weight")
        .map(|i| dtype_label(i.ggml_dtype))
        .unwrap_or_else(|| "unknown".into());
    let gguf_eos = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok());
    // llama.cpp stores Llama-layout query/key rows permuted for interleaved rotation.
    let rope = match cfg.arch {
        Arch::Llama | Arch::Mistral => RopeStyle::Interleaved,
        Arch::Qwen2 | Arch::Qwen3 | Arch::Mixtral => RopeStyle::Halves,
    };
    let mut src = GgufSource {
        content,
        bytes: cursor,
        dequantize,
    };
    let model = assemble(cfg, &mut src, rope)?;
    Ok(LoadedWeights {
        model,
        format: WeightFormat::Gguf,
        quantization,
        weights_sha256: weights_digest(&[digest]),
        weight_files: vec![path.to_path_buf()],
        gguf_eos,
    })
}

/// A readable label for a GGUF storage type.
pub(crate) fn dtype_label(d: GgmlDType) -> String {
    format!("{d:?}").to_uppercase()
}

struct SafetensorsSource {
    tensors: HashMap<String, Tensor>,
}

impl SafetensorsSource {
    fn take(&mut self, cfg: &ModelConfig, hf: &str) -> Result<Tensor> {
        let t = self
            .tensors
            .get(hf)
            .ok_or_else(|| EngineError::invalid_model(format!("safetensors lack tensor {hf}")))?;
        expect_shape(hf, t.dims(), &hf_shape(cfg, hf))?;
        Ok(t.to_dtype(DType::F32)?)
    }
}

impl Source for SafetensorsSource {
    fn linear(&mut self, cfg: &ModelConfig, hf: &str) -> Result<QMatMul> {
        Ok(QMatMul::Tensor(self.take(cfg, hf)?))
    }

    fn stacked(&mut self, cfg: &ModelConfig, hf: &[String]) -> Result<Vec<QMatMul>> {
        let parts = hf
            .iter()
            .map(|n| self.take(cfg, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![QMatMul::Tensor(Tensor::cat(&parts, 0)?)])
    }

    fn dense(&mut self, cfg: &ModelConfig, hf: &str) -> Result<Tensor> {
        self.take(cfg, hf)
    }

    fn has(&self, hf: &str) -> bool {
        self.tensors.contains_key(hf)
    }
}

fn load_safetensors(
    dir: &Path,
    files: &[PathBuf],
    max_context: Option<usize>,
) -> Result<LoadedWeights> {
    let config_path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| EngineError::io(&config_path, &e))?;
    let mut cfg = ModelConfig::from_hf_json(&text)?;
    if let Some(m) = max_context {
        cfg.context_length = cfg.context_length.min(m.max(1));
    }
    let mut tensors = HashMap::new();
    let mut digests = Vec::with_capacity(files.len());
    for file in files {
        let bytes = read_file(file)?;
        digests.push(Sha256::digest(&bytes).into());
        let part = guarded(&format!("{}", file.display()), || {
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        })?;
        tensors.extend(part);
    }
    let quantization = tensors
        .get("model.layers.0.self_attn.q_proj.weight")
        .map(|t| format!("{:?}", t.dtype()).to_uppercase())
        .unwrap_or_else(|| "unknown".into());
    let mut src = SafetensorsSource { tensors };
    let model = assemble(cfg, &mut src, RopeStyle::Halves)?;
    Ok(LoadedWeights {
        model,
        format: WeightFormat::Safetensors,
        quantization,
        weights_sha256: weights_digest(&digests),
        weight_files: files.to_vec(),
        gguf_eos: None,
    })
}
