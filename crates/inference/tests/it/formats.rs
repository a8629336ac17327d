//! Loading GGUF and safetensors models of every family, and refusing broken ones.

use agora_inference::engine::testmodel::{
    write_test_model, DenseDType, GgufQuant, ModelFormat, TestModelSpec,
};
use agora_inference::engine::{Arch, Engine, EngineError, GenerateRequest, LoadOptions};

use crate::{load, load_with, prompt, tiny, GGUF_F32, GGUF_Q8, ST_F32};

fn greedy_with_scores(engine: &Engine, n: usize) -> (Vec<u32>, Vec<f32>) {
    let p = prompt(engine);
    let done = engine
        .generate(GenerateRequest {
            ignore_eos: true,
            logprobs: true,
            ..GenerateRequest::greedy(p, n)
        })
        .unwrap()
        .collect_blocking()
        .unwrap();
    (
        done.token_ids(),
        done.tokens.iter().map(|t| t.logprob.unwrap()).collect(),
    )
}

#[test]
fn gguf_and_safetensors_of_the_same_weights_agree() {
    for arch in [Arch::Llama, Arch::Mistral, Arch::Qwen2, Arch::Qwen3] {
        let gguf = tiny(arch, GGUF_F32, 11);
        let st = tiny(arch, ST_F32, 11);
        let (a, b) = (load(gguf.path()), load(st.path()));
        assert_eq!(a.info().format, "gguf");
        assert_eq!(b.info().format, "safetensors");
        let (ta, la) = greedy_with_scores(&a, 24);
        let (tb, lb) = greedy_with_scores(&b, 24);
        assert_eq!(
            ta, tb,
            "{arch}: greedy tokens differ between GGUF and safetensors"
        );
        for (x, y) in la.iter().zip(&lb) {
            assert!((x - y).abs() < 1e-3, "{arch}: logprob {x} vs {y}");
        }
        // The tokenizer travels with the model: both directories encode alike.
        assert_eq!(prompt(&a), prompt(&b));
    }
}

#[test]
fn every_family_and_storage_type_loads_and_generates() {
    let formats = [
        GGUF_Q8,
        ModelFormat::Gguf {
            quant: GgufQuant::Q4_0,
        },
        ModelFormat::Gguf {
            quant: GgufQuant::F16,
        },
        ST_F32,
        ModelFormat::Safetensors {
            dtype: DenseDType::BF16,
        },
        ModelFormat::Safetensors {
            dtype: DenseDType::F16,
        },
    ];
    for (i, arch) in [Arch::Llama, Arch::Mistral, Arch::Qwen2, Arch::Qwen3]
        .into_iter()
        .enumerate()
    {
        for format in formats {
            let dir = tiny(arch, format, i as u64);
            let engine = load(dir.path());
            let info = engine.info();
            let want_arch = match (arch, format) {
                // llama.cpp writes Mistral models as Llama GGUFs.
                (Arch::Mistral, ModelFormat::Gguf { .. }) => Arch::Llama,
                _ => arch,
            };
            assert_eq!(info.arch, want_arch);
            assert_eq!(info.vocab_size, 512);
            assert_eq!(info.weights_sha256.len(), 64);
            let (tokens, _) = greedy_with_scores(&engine, 6);
            assert_eq!(tokens.len(), 6, "{arch} {format:?}");
        }
    }
}

#[test]
fn quantization_label_and_hash_identify_the_weights() {
    let q8 = tiny(Arch::Llama, GGUF_Q8, 1);
    let q4 = tiny(
        Arch::Llama,
        ModelFormat::Gguf {
            quant: GgufQuant::Q4_0,
        },
        1,
    );
    let (a, b) = (load(q8.path()), load(q4.path()));
    assert_eq!(a.info().quantization, "Q8_0");
    assert_eq!(b.info().quantization, "Q4_0");
    assert_ne!(a.info().weights_sha256, b.info().weights_sha256);
}

fn load_err(dir: &std::path::Path) -> EngineError {
    Engine::load(dir, &LoadOptions::default()).expect_err("a broken model must not load")
}

#[test]
fn truncated_or_corrupt_weights_give_clear_errors() {
    for format in [GGUF_Q8, ST_F32] {
        let dir = tiny(Arch::Llama, format, 1);
        let file = match format {
            ModelFormat::Gguf { .. } => dir.path().join("model.gguf"),
            ModelFormat::Safetensors { .. } => dir.path().join("model.safetensors"),
        };
        let bytes = std::fs::read(&file).unwrap();
        for cut in [bytes.len() / 2, 40, 3] {
            std::fs::write(&file, &bytes[..cut]).unwrap();
            let e = load_err(dir.path());
            assert!(
                matches!(e, EngineError::InvalidModel(_)),
                "{format:?} cut at {cut}: {e:?}"
            );
        }
        let mut garbage = bytes.clone();
        for (i, b) in garbage.iter_mut().enumerate().take(64).skip(8) {
            *b = (i * 37) as u8;
        }
        std::fs::write(&file, &garbage).unwrap();
        assert!(matches!(load_err(dir.path()), EngineError::InvalidModel(_)));
    }
}

#[test]
fn missing_or_wrong_files_give_clear_errors() {
    let dir = tiny(Arch::Qwen2, ST_F32, 1);
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    match load_err(dir.path()) {
        EngineError::InvalidModel(m) => assert!(m.contains("config.json"), "{m}"),
        e => panic!("{e:?}"),
    }
    let dir = tiny(Arch::Qwen2, ST_F32, 1);
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"hidden_size\": 64", "\"hidden_size\": 96"),
    )
    .unwrap();
    match load_err(dir.path()) {
        EngineError::InvalidModel(m) => assert!(m.contains("shape"), "{m}"),
        e => panic!("{e:?}"),
    }
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert!(matches!(load_err(dir.path()), EngineError::Io { .. }));
    let empty = tempfile::tempdir().unwrap();
    match load_err(empty.path()) {
        EngineError::InvalidModel(m) => assert!(m.contains("no .gguf or .safetensors"), "{m}"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        load_err(&empty.path().join("absent")),
        EngineError::Io { .. }
    ));
}

#[test]
fn k_quants_need_large_enough_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TestModelSpec::tiny(
        Arch::Llama,
        ModelFormat::Gguf {
            quant: GgufQuant::Q4K,
        },
        0,
    );
    match write_test_model(dir.path(), &spec) {
        Err(EngineError::InvalidRequest(m)) => assert!(m.contains("256"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// `dir`'s GGUF rewritten with every tensor dequantized to F32, beside its tokenizer files.
fn dequantized_copy(dir: &std::path::Path) -> tempfile::TempDir {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let out = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir).expect("read model dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_owned();
        if path.extension().is_some_and(|e| e == "gguf") {
            let mut file = std::fs::File::open(&path).expect("open gguf");
            let content = gguf_file::Content::read(&mut file).expect("read gguf");
            let tensors: Vec<(String, QTensor)> = content
                .tensor_infos
                .keys()
                .map(|n| {
                    let t = content
                        .tensor(&mut file, n, &candle_core::Device::Cpu)
                        .expect("tensor");
                    let f32s = t.dequantize(&candle_core::Device::Cpu).expect("dequantize");
                    (
                        n.clone(),
                        QTensor::quantize(&f32s, GgmlDType::F32).expect("f32"),
                    )
                })
                .collect();
            let metadata: Vec<_> = content
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            let tensors: Vec<_> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
            let mut dst = std::fs::File::create(out.path().join(name)).expect("create");
            gguf_file::write(&mut dst, &metadata, &tensors).expect("write gguf");
        } else {
            std::fs::copy(&path, out.path().join(name)).expect("copy");
        }
    }
    out
}

#[test]
fn dequantize_computes_the_files_weights_in_f32() {
    let q8 = tiny(Arch::Llama, GGUF_Q8, 5);
    let dense = load_with(
        q8.path(),
        LoadOptions {
            dequantize: true,
            ..LoadOptions::default()
        },
    );
    // The same values written as F32: the reference must match it exactly.
    let f32_copy = dequantized_copy(q8.path());
    let f32_engine = load(f32_copy.path());
    assert_eq!(dense.info().quantization, "Q8_0", "the file is still Q8_0");
    let (tokens, logprobs) = greedy_with_scores(&dense, 24);
    let (f32_tokens, f32_logprobs) = greedy_with_scores(&f32_engine, 24);
    assert_eq!(tokens, f32_tokens);
    assert_eq!(logprobs, f32_logprobs);
    // The quantized engine rounds its activations: close to the reference, not equal.
    let quantized = load(q8.path());
    let p = prompt(&quantized);
    let mut sequence = p.clone();
    sequence.extend(&tokens);
    let ours = quantized.score(&sequence, p.len(), 0).expect("score");
    let reference = dense.score(&sequence, p.len(), 0).expect("score");
    let errors: Vec<f32> = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a.logprob - b.logprob).abs())
        .collect();
    assert!(
        errors.iter().any(|&e| e > 0.0),
        "no rounding at all: {errors:?}"
    );
    assert!(
        errors.iter().all(|&e| e < 0.5),
        "far from the reference: {errors:?}"
    );
}

#[test]
fn a_q4_k_m_mix_loads_with_each_matrix_in_its_own_type() {
    use candle_core::quantized::{gguf_file, GgmlDType};
    // The smallest shape k-quants allow; eight layers put Q6_K in layers 0, 3, 6 and 7.
    let spec = TestModelSpec {
        hidden: 256,
        intermediate: 512,
        layers: 8,
        heads: 4,
        kv_heads: 2,
        vocab: 512,
        context_length: 256,
        ..TestModelSpec::tiny(
            Arch::Llama,
            ModelFormat::Gguf {
                quant: GgufQuant::Q4KM,
            },
            3,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    write_test_model(dir.path(), &spec).unwrap();
    let mut file = std::fs::File::open(dir.path().join("model.gguf")).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let dtype = |name: &str| content.tensor_infos[name].ggml_dtype;
    assert_eq!(dtype("output.weight"), GgmlDType::Q6K);
    assert_eq!(dtype("token_embd.weight"), GgmlDType::Q4K);
    for layer in 0..8 {
        let more_bits = [0, 3, 6, 7].contains(&layer);
        let want = if more_bits {
            GgmlDType::Q6K
        } else {
            GgmlDType::Q4K
        };
        assert_eq!(
            dtype(&format!("blk.{layer}.attn_v.weight")),
            want,
            "layer {layer}"
        );
        assert_eq!(
            dtype(&format!("blk.{layer}.ffn_down.weight")),
            want,
            "layer {layer}"
        );
        assert_eq!(dtype(&format!("blk.{layer}.attn_k.weight")), GgmlDType::Q4K);
    }
    // Query and key (Q4_K) and value (Q6_K) stay separate matrices: their outputs must
    // line up as one stacked projection's would, so the engine stays close to the same
    // weights computed in f32.
    let engine = load(dir.path());
    let reference = load_with(
        dir.path(),
        LoadOptions {
            dequantize: true,
            ..LoadOptions::default()
        },
    );
    let (tokens, _) = greedy_with_scores(&reference, 32);
    let p = prompt(&engine);
    let mut sequence = p.clone();
    sequence.extend(&tokens);
    let ours = engine.score(&sequence, p.len(), 0).unwrap();
    let exact = reference.score(&sequence, p.len(), 0).unwrap();
    let error = ours
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a.logprob - b.logprob).abs())
        .sum::<f32>()
        / ours.len() as f32;
    assert!(error < 0.1, "mean logprob error {error}");
}
