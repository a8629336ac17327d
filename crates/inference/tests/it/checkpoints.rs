//! The training subnet's checkpoints (Mixtral layout, byte tokenizer) are served by the
//! engine exactly as the trainer computes them.

use agora_inference::engine::{ChatMessage, Engine, LoadOptions};
use agora_training::checkpoint;
use agora_training::config::ModelConfig;
use agora_training::model::{Batch, MoeModel};

/// Log-softmax of one row, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    row.iter().map(|&l| l as f64 - max - sum.ln()).collect()
}

#[test]
fn a_training_checkpoint_is_served_as_trained() {
    // Four experts, two per token: routing matters, and differs from token to token.
    let cfg = ModelConfig::small(64, 2, 4, 2);
    let model = MoeModel::init(&cfg, 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &cfg, &model.params().unwrap()).unwrap();

    let engine = Engine::load(dir.path(), &LoadOptions::default()).unwrap();
    let info = engine.info();
    assert_eq!(info.arch.to_string(), "mixtral");
    assert_eq!(info.vocab_size, 256);

    // The tokenizer is the trainer's: one token per byte, id = byte, and back again.
    let text = "To be, or not to be: that is the question. Ça va? \n\t~";
    let ids = engine.encode(text, false).unwrap();
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    assert_eq!(ids, bytes);
    assert_eq!(engine.decode(&ids, false).unwrap(), text);
    let chat = engine
        .apply_chat_template(&[ChatMessage::new("user", "Who is there?")], true)
        .unwrap();
    assert_eq!(chat, "USER: Who is there?\nASSISTANT:");

    // Every position's log-probabilities agree with the trainer's forward pass.
    let scored = engine.score(&ids, 1, 0).unwrap();
    let t = ids.len() - 1;
    let batch = Batch {
        batch: 1,
        seq_len: t,
        inputs: ids[..t].to_vec(),
        targets: ids[1..].to_vec(),
    };
    let (logits, _) = model.forward(&batch).unwrap();
    let logits = logits.to_vec2::<f32>().unwrap();
    assert_eq!(scored.len(), t);
    let mut worst = 0f64;
    for (s, row) in scored.iter().zip(&logits) {
        let want = log_softmax(row)[s.id as usize];
        worst = worst.max((want - s.logprob as f64).abs());
    }
    println!("largest logprob difference from the trainer: {worst:e}");
    assert!(
        worst < 1e-4,
        "served logprobs differ from the trainer's by {worst}"
    );
}

#[test]
fn a_mixtral_config_without_experts_is_refused() {
    let cfg = ModelConfig::small(32, 1, 2, 1);
    let model = MoeModel::init(&cfg, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &cfg, &model.params().unwrap()).unwrap();
    let path = dir.path().join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["num_experts_per_tok"] = serde_json::json!(3);
    std::fs::write(&path, json.to_string()).unwrap();
    let err = Engine::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("num_experts_per_tok"), "{err}");
}
