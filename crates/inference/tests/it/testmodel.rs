//! The test-model generator is deterministic, and its variants differ as intended.

use agora_inference::engine::testmodel::{write_test_model, GgufQuant, ModelFormat, TestModelSpec};
use agora_inference::engine::{Arch, GenerateRequest};

use crate::{load, prompt, GGUF_Q8};

#[test]
fn same_spec_same_bytes_other_seed_other_model() {
    let spec = TestModelSpec::tiny(Arch::Qwen3, GGUF_Q8, 42);
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wa = write_test_model(a.path(), &spec).unwrap();
    let wb = write_test_model(b.path(), &spec).unwrap();
    let wc = write_test_model(c.path(), &spec.clone().with_seed(43)).unwrap();
    assert_eq!(wa.weights_sha256, wb.weights_sha256);
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        assert_eq!(std::fs::read(a.path().join(f)).unwrap(), std::fs::read(b.path().join(f)).unwrap());
    }
    assert_ne!(wa.weights_sha256, wc.weights_sha256);
    let (ea, ec) = (load(a.path()), load(c.path()));
    assert_eq!(ea.info().weights_sha256, wa.weights_sha256);
    let greedy = |e: &agora_inference::engine::Engine| {
        let p = prompt(e);
        e.generate(GenerateRequest { ignore_eos: true, ..GenerateRequest::greedy(p, 16) })
            .unwrap()
            .collect_blocking()
            .unwrap()
            .token_ids()
    };
    assert_ne!(greedy(&ea), greedy(&ec), "another seed must be another model");
}

#[test]
fn coarser_quantization_is_close_but_not_identical() {
    let spec = TestModelSpec::tiny(Arch::Llama, GGUF_Q8, 3);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_test_model(a.path(), &spec).unwrap();
    write_test_model(b.path(), &spec.clone().with_format(ModelFormat::Gguf { quant: GgufQuant::Q4_0 })).unwrap();
    let (ea, eb) = (load(a.path()), load(b.path()));
    let p = prompt(&ea);
    let done = ea
        .generate(GenerateRequest { ignore_eos: true, ..GenerateRequest::greedy(p.clone(), 16) })
        .unwrap()
        .collect_blocking()
        .unwrap();
    let mut all = p.clone();
    all.extend(done.token_ids());
    let sa = ea.score(&all, p.len(), 0).unwrap();
    let sb = eb.score(&all, p.len(), 0).unwrap();
    let diff: f32 = sa.iter().zip(&sb).map(|(x, y)| (x.logprob - y.logprob).abs()).sum::<f32>() / sa.len() as f32;
    // Same weights: the Q4_0 copy still finds the Q8_0 text likely, yet measurably different.
    assert!(diff > 1e-4, "Q4_0 scores identical to Q8_0 ({diff})");
    assert!(diff < 2.0, "Q4_0 scores unrelated to Q8_0 ({diff})");
}
