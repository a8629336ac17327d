//! Checkpoints on disk: `model.safetensors` (f32, Mixtral tensor names) and `config.json`
//! in a folder, which is what Hugging Face-style loaders (the inference subnet's engine
//! among them) read. A checkpoint's address is [`checkpoint_id`]: a hash of the canonical
//! config and the parameters' content hash.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};

use crate::config::ModelConfig;
use crate::error::TrainingError;
use crate::params::{Digest32, HostTensor, ParamSet};

/// File name of the weights inside a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the configuration inside a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer inside a checkpoint folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the tokenizer settings (the chat template) inside a checkpoint folder.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// The chat template served with checkpoints: `ROLE: text` lines, then `ASSISTANT:`.
const CHAT_TEMPLATE: &str = "{% for m in messages %}{{ m.role | upper }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
/// The safetensors metadata key holding the checkpoint id in hex.
const ID_KEY: &str = "agora_checkpoint_id";
/// Refuse weight files above this size (a hostile peer could send anything).
const MAX_WEIGHTS_BYTES: usize = 2 << 30;

/// The content address of a model: config and weights together.
pub fn checkpoint_id(cfg: &ModelConfig, params: &ParamSet) -> Result<Digest32, TrainingError> {
    let mut h = Sha256::new();
    h.update(b"agora-training/checkpoint/v1");
    let json = serde_json::to_vec(cfg)?;
    h.update((json.len() as u64).to_le_bytes());
    h.update(&json);
    h.update(params.content_hash());
    Ok(h.finalize().into())
}

/// The parameters as a safetensors file, with the checkpoint id in its metadata.
pub fn to_safetensors(cfg: &ModelConfig, params: &ParamSet) -> Result<Vec<u8>, TrainingError> {
    let id = hex::encode(checkpoint_id(cfg, params)?);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.shape.clone(),
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| TrainingError::InvalidInput(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta: HashMap<String, String> = [(ID_KEY.to_string(), id)].into_iter().collect();
    safetensors::serialize(views, Some(meta))
        .map_err(|e| TrainingError::InvalidInput(format!("safetensors: {e}")))
}

/// Parses a safetensors file into parameters that must fit `cfg` exactly (f32, every
/// tensor present with its shape, nothing extra, all finite). When the file carries a
/// checkpoint id it must match the content.
pub fn from_safetensors(cfg: &ModelConfig, bytes: &[u8]) -> Result<ParamSet, TrainingError> {
    cfg.validate()?;
    if bytes.len() > MAX_WEIGHTS_BYTES {
        return Err(TrainingError::InvalidInput("weights file too large".into()));
    }
    let bad =
        |e: safetensors::SafeTensorError| TrainingError::InvalidInput(format!("safetensors: {e}"));
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
    let expected = cfg.param_shapes();
    if st.len() != expected.len() {
        return Err(TrainingError::InvalidInput(format!(
            "file holds {} tensors, the config needs {}",
            st.len(),
            expected.len()
        )));
    }
    let mut params = ParamSet::default();
    for (name, shape) in expected {
        let view = st
            .tensor(&name)
            .map_err(|_| TrainingError::InvalidInput(format!("missing tensor {name}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
            return Err(TrainingError::InvalidInput(format!(
                "tensor {name}: {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !data.iter().all(|x| x.is_finite()) {
            return Err(TrainingError::InvalidInput(format!(
                "tensor {name} has non-finite values"
            )));
        }
        params.tensors.insert(name, HostTensor { shape, data });
    }
    if let Some(claimed) = meta.metadata().as_ref().and_then(|m| m.get(ID_KEY)) {
        let actual = hex::encode(checkpoint_id(cfg, &params)?);
        if claimed != &actual {
            return Err(TrainingError::InvalidInput(format!(
                "checkpoint id {claimed} does not match its content ({actual})"
            )));
        }
    }
    Ok(params)
}

/// Writes `config.json`, `model.safetensors`, and the byte tokenizer's `tokenizer.json` and
/// `tokenizer_config.json` (a chat template) into
/// `dir` (created if missing) and returns the checkpoint id. The folder is what the
/// inference subnet's engine loads (`agora miner inference --model DIR`).
pub fn save(dir: &Path, cfg: &ModelConfig, params: &ParamSet) -> Result<Digest32, TrainingError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainingError::io(dir, e))?;
    let weights = to_safetensors(cfg, params)?;
    let config = serde_json::to_vec_pretty(cfg)?;
    let tokenizer = serde_json::to_vec(&crate::data::byte_tokenizer_json())?;
    let tokenizer_config = serde_json::to_vec_pretty(&serde_json::json!({
        // A base model has no chat format of its own: a plain transcript keeps chat
        // requests meaningful to a model trained on plays.
        "chat_template": CHAT_TEMPLATE,
    }))?;
    // Write then rename, so a reader never sees half a file.
    for (name, bytes) in [
        (WEIGHTS_FILE, &weights),
        (CONFIG_FILE, &config),
        (TOKENIZER_FILE, &tokenizer),
        (TOKENIZER_CONFIG_FILE, &tokenizer_config),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| TrainingError::io(&tmp, e))?;
        let dst = dir.join(name);
        std::fs::rename(&tmp, &dst).map_err(|e| TrainingError::io(&dst, e))?;
    }
    checkpoint_id(cfg, params)
}

/// Reads a checkpoint folder; when `expected` is given the content must hash to it.
pub fn load(
    dir: &Path,
    expected: Option<&Digest32>,
) -> Result<(ModelConfig, ParamSet, Digest32), TrainingError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg: ModelConfig = serde_json::from_slice(
        &std::fs::read(&cfg_path).map_err(|e| TrainingError::io(&cfg_path, e))?,
    )?;
    let w_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&w_path).map_err(|e| TrainingError::io(&w_path, e))?;
    let params = from_safetensors(&cfg, &bytes)?;
    let id = checkpoint_id(&cfg, &params)?;
    if let Some(want) = expected {
        if want != &id {
            return Err(TrainingError::InvalidInput(format!(
                "checkpoint {} is not the expected {}",
                hex::encode(id),
                hex::encode(want)
            )));
        }
    }
    Ok((cfg, params, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MoeModel;

    #[test]
    fn save_and_load_round_trip_with_the_same_id() {
        let cfg = ModelConfig::tiny();
        let params = MoeModel::init(&cfg, 4).unwrap().params().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let id = save(dir.path(), &cfg, &params).unwrap();
        let (cfg2, params2, id2) = load(dir.path(), Some(&id)).unwrap();
        assert_eq!((cfg2, &params2, id2), (cfg.clone(), &params, id));
        assert!(load(dir.path(), Some(&[0; 32])).is_err());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(json["model_type"], "mixtral");
    }

    #[test]
    fn tampered_or_mismatched_weights_are_rejected() {
        let cfg = ModelConfig::tiny();
        let params = MoeModel::init(&cfg, 4).unwrap().params().unwrap();
        let mut bytes = to_safetensors(&cfg, &params).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        assert!(from_safetensors(&cfg, &bytes).is_err());
        let other = ModelConfig::small(64, 2, 4, 2);
        assert!(from_safetensors(&other, &to_safetensors(&cfg, &params).unwrap()).is_err());
        assert!(from_safetensors(&cfg, b"not a safetensors file").is_err());
    }
}
