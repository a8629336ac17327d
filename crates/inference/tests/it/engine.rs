//! Generation, scoring, sampling, stops, concurrency and input validation.

use std::time::{Duration, Instant};

use agora_inference::engine::{
    Arch, ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateEvent,
    GenerateRequest, LoadOptions, ScoredToken,
};

use crate::{load, load_with, prompt, tiny, GGUF_Q8, ST_F32};

fn sampled(prompt: Vec<u32>, n: usize, seed: u64) -> GenerateRequest {
    GenerateRequest {
        temperature: 0.9,
        top_p: 0.95,
        top_k: 50,
        seed: Some(seed),
        logprobs: true,
        top_logprobs: 5,
        ignore_eos: true,
        ..GenerateRequest::greedy(prompt, n)
    }
}

/// Generates `n` sampled tokens after the prompt (logprobs on), scores the whole sequence
/// in one pass with `top_k` alternatives, and checks that every scored logprob is the one
/// reported while generating, within `tolerance` (0: the same value). Returns both for
/// further checks.
fn generate_then_score(
    engine: &Engine,
    n: usize,
    seed: u64,
    top_k: usize,
    tolerance: f32,
    label: &str,
) -> (Completion, Vec<ScoredToken>) {
    let p = prompt(engine);
    let done = engine
        .generate(sampled(p.clone(), n, seed))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(done.tokens.len(), n);
    let mut all = p.clone();
    all.extend(done.token_ids());
    let scored = engine.score(&all, p.len(), top_k).unwrap();
    assert_eq!(scored.len(), n);
    for (s, t) in scored.iter().zip(&done.tokens) {
        let lp = t.logprob.expect("logprob asked for");
        assert!(
            (s.logprob - lp).abs() <= tolerance,
            "{label} pos {}: {} vs {lp}",
            s.position,
            s.logprob
        );
    }
    (done, scored)
}

#[test]
fn score_reproduces_the_logprobs_reported_while_generating() {
    for format in [GGUF_Q8, ST_F32] {
        let dir = tiny(Arch::Qwen2, format, 5);
        let engine = load(dir.path());
        let (done, scored) = generate_then_score(&engine, 40, 9, 5, 1e-4, &format!("{format:?}"));
        for (s, t) in scored.iter().zip(&done.tokens) {
            assert_eq!(s.id, t.id);
            let alts: Vec<u32> = s.top_logprobs.iter().map(|a| a.id).collect();
            let gen_alts: Vec<u32> = t.top_logprobs.iter().map(|a| a.id).collect();
            assert_eq!(alts, gen_alts);
        }
    }
}

/// A long generation grows each layer's key/value cache several times (at 64, 128 and
/// 256 positions); the logprobs it reports must still be those of one scoring pass. Qwen3
/// takes the other head-split path (normed queries and keys).
///
/// With int8 weights the two must agree to the bit: decoding runs the matrix products
/// and attention one row at a time, scoring in blocks, and the kernels give every row the
/// same arithmetic either way. A last-bit difference would round some int8 activation the
/// other way, and over 300 positions that moves logprobs by a tenth of a nat even on this
/// tiny model (more on larger ones): more than a validator may allow an honest miner.
/// f32 weights go through candle's products, which sum in another order for one row.
#[test]
fn logprobs_hold_across_key_value_cache_growth() {
    for arch in [Arch::Llama, Arch::Qwen3] {
        for (format, tolerance) in [(GGUF_Q8, 0.0), (ST_F32, 1e-4)] {
            let dir = tiny(arch, format, 3);
            let engine = load(dir.path());
            let n = 300 - prompt(&engine).len();
            let label = format!("{arch:?} {format:?}");
            let (done, scored) = generate_then_score(&engine, n, 4, 0, tolerance, &label);
            if tolerance == 0.0 {
                for (s, t) in scored.iter().zip(&done.tokens) {
                    assert_eq!(s.logprob.to_bits(), t.logprob.unwrap().to_bits(), "{label}");
                }
            }
        }
    }
}

#[test]
fn score_in_small_chunks_equals_one_pass() {
    let dir = tiny(Arch::Llama, ST_F32, 2);
    let whole = load(dir.path());
    let chunked = load_with(
        dir.path(),
        LoadOptions {
            prefill_chunk: 3,
            ..LoadOptions::default()
        },
    );
    let p = prompt(&whole);
    let done = whole
        .generate(GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::greedy(p.clone(), 20)
        })
        .unwrap()
        .collect_blocking()
        .unwrap();
    let mut all = p.clone();
    all.extend(done.token_ids());
    let a = whole.score(&all, 2, 3).unwrap();
    let b = chunked.score(&all, 2, 3).unwrap();
    assert_eq!(a.len(), all.len() - 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.position, x.id, x.rank), (y.position, y.id, y.rank));
        assert!((x.logprob - y.logprob).abs() < 1e-4);
    }
    // Greedy tokens are the most likely ones at their positions.
    assert!(a[p.len() - 2..].iter().all(|s| s.rank == 0));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let engine = load(dir.path());
    let p = prompt(&engine);
    let run = |seed| {
        let req = GenerateRequest {
            temperature: 2.0,
            top_p: 1.0,
            top_k: 0,
            ..sampled(p.clone(), 32, seed)
        };
        let done = engine.generate(req).unwrap().collect_blocking().unwrap();
        assert_eq!(done.finished.seed, seed);
        done.token_ids()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn stop_sequences_cut_the_text_and_max_tokens_bounds_it() {
    let dir = tiny(Arch::Llama, ST_F32, 3);
    let engine = load(dir.path());
    let p = prompt(&engine);
    let base = GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::greedy(p.clone(), 48)
    };
    let full = engine
        .generate(base.clone())
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(full.finished.finish_reason, FinishReason::Length);
    assert_eq!(full.finished.completion_tokens, 48);
    assert_eq!(full.text, engine.decode(&full.token_ids(), true).unwrap());
    // A stop string taken from the middle of the greedy text.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 20, "text too short: {:?}", full.text);
    let stop: String = chars[12..15].iter().collect();
    let cut = full.text.find(&stop).unwrap();
    let stopped = engine
        .generate(GenerateRequest {
            stop: vec!["never appears ~~~".into(), stop.clone()],
            ..base.clone()
        })
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(stopped.text, full.text[..cut]);
    assert_eq!(stopped.finished.finish_reason, FinishReason::Stop);
    assert_eq!(
        stopped.finished.stop_sequence.as_deref(),
        Some(stop.as_str())
    );
    assert!(stopped.finished.completion_tokens < 48);
    let short = engine
        .generate(GenerateRequest {
            max_tokens: 5,
            ..base
        })
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(short.token_ids(), full.token_ids()[..5]);
    assert_eq!(short.finished.finish_reason, FinishReason::Length);
}

#[test]
fn generation_ends_at_an_eos_token() {
    let dir = tiny(Arch::Qwen3, ST_F32, 4);
    let engine = load(dir.path());
    let p = prompt(&engine);
    let greedy = engine
        .generate(GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::greedy(p.clone(), 12)
        })
        .unwrap()
        .collect_blocking()
        .unwrap();
    // Make the first generated token an end-of-sequence token by serving the same weights
    // with that token declared as EOS.
    let first = greedy.tokens[0].id;
    std::fs::write(
        dir.path().join("generation_config.json"),
        format!("{{\"eos_token_id\": {first}}}"),
    )
    .unwrap();
    let engine = load(dir.path());
    let done = engine
        .generate(GenerateRequest::greedy(p, 12))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(done.finished.finish_reason, FinishReason::Stop);
    assert_eq!(done.finished.eos_token, Some(first));
    assert_eq!(done.finished.completion_tokens, 0);
}

#[test]
fn chat_template_renders_chatml_with_special_tokens() {
    let dir = tiny(Arch::Qwen2, GGUF_Q8, 1);
    let engine = load(dir.path());
    let msgs = [
        ChatMessage::new("system", "Be brief. "),
        ChatMessage::new("user", "Hi there"),
    ];
    let text = engine.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = engine.encode(&text, false).unwrap();
    let im_start = engine.encode("<|im_start|>", false).unwrap();
    assert_eq!(im_start.len(), 1, "special tokens are single ids");
    assert_eq!(ids.iter().filter(|&&t| t == im_start[0]).count(), 3);
    assert_eq!(engine.decode(&ids, false).unwrap(), text);
    assert!(engine
        .info()
        .eos_token_ids
        .contains(&engine.encode("<|im_end|>", false).unwrap()[0]));
    let no_prompt = engine.apply_chat_template(&msgs, false).unwrap();
    assert!(!no_prompt.ends_with("assistant\n"));
}

#[test]
fn concurrent_generations_match_sequential_ones() {
    let dir = tiny(Arch::Llama, GGUF_Q8, 6);
    let batched = std::sync::Arc::new(load_with(
        dir.path(),
        LoadOptions {
            max_concurrent: 4,
            prefill_chunk: 16,
            ..LoadOptions::default()
        },
    ));
    let single = load_with(
        dir.path(),
        LoadOptions {
            max_concurrent: 1,
            ..LoadOptions::default()
        },
    );
    let texts = [
        "one two three",
        "The quick brown fox jumps over the lazy dog",
        "a",
        "Numbers such as 42",
        "She wrote the report",
        "Stop sequences end",
    ];
    let reqs: Vec<GenerateRequest> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = batched.encode(t, false).unwrap();
            match i % 2 {
                0 => GenerateRequest {
                    logprobs: true,
                    ignore_eos: true,
                    ..GenerateRequest::greedy(p, 10 + 3 * i)
                },
                _ => sampled(p, 10 + 3 * i, i as u64),
            }
        })
        .collect();
    let expected: Vec<_> = reqs
        .iter()
        .map(|r| {
            single
                .generate(r.clone())
                .unwrap()
                .collect_blocking()
                .unwrap()
        })
        .collect();
    let handles: Vec<_> = reqs
        .iter()
        .cloned()
        .map(|r| {
            let e = batched.clone();
            std::thread::spawn(move || e.generate(r).unwrap().collect_blocking().unwrap())
        })
        .collect();
    for (h, want) in handles.into_iter().zip(&expected) {
        let got = h.join().unwrap();
        assert_eq!(got.token_ids(), want.token_ids());
        assert_eq!(got.text, want.text);
        for (a, b) in got.tokens.iter().zip(&want.tokens) {
            assert!((a.logprob.unwrap_or(0.0) - b.logprob.unwrap_or(0.0)).abs() < 1e-4);
        }
    }
    wait_idle(&batched);
}

fn wait_idle(engine: &agora_inference::engine::Engine) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.capacity().in_flight != 0 {
        assert!(
            Instant::now() < deadline,
            "requests still in flight: {:?}",
            engine.capacity()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_tokens_to_async_callers_and_dropping_cancels() {
    let dir = tiny(Arch::Mistral, ST_F32, 8);
    let engine = std::sync::Arc::new(load(dir.path()));
    let p = prompt(&engine);
    let mut stream = engine
        .generate(GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::greedy(p.clone(), 16)
        })
        .unwrap();
    let mut n = 0;
    let finished = loop {
        match stream.next().await.expect("stream ended early") {
            GenerateEvent::Token(t) => {
                assert_eq!(t.index, n);
                n += 1;
            }
            GenerateEvent::Finished(f) => break f,
            GenerateEvent::Error(e) => panic!("{e}"),
        }
    };
    assert_eq!(n, 16);
    assert_eq!(finished.completion_tokens, 16);
    assert_eq!(finished.prompt_tokens, p.len());
    // A long request whose receiver is dropped after one token frees its slot.
    let mut stream = engine
        .generate(GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::greedy(p, 400)
        })
        .unwrap();
    assert!(matches!(stream.next().await, Some(GenerateEvent::Token(_))));
    drop(stream);
    let e = engine.clone();
    tokio::task::spawn_blocking(move || wait_idle(&e))
        .await
        .unwrap();
}

#[test]
fn bad_requests_are_rejected_with_clear_errors() {
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let engine = load_with(
        dir.path(),
        LoadOptions {
            max_concurrent: 1,
            max_queued: 0,
            ..LoadOptions::default()
        },
    );
    let p = prompt(&engine);
    let ctx = engine.info().context_length;
    let vocab = engine.info().vocab_size as u32;
    let base = GenerateRequest::greedy(p.clone(), 4);
    let cases: Vec<(GenerateRequest, &str)> = vec![
        (
            GenerateRequest {
                prompt: vec![],
                ..base.clone()
            },
            "prompt is empty",
        ),
        (
            GenerateRequest {
                prompt: vec![1, vocab],
                ..base.clone()
            },
            "outside the vocabulary",
        ),
        (
            GenerateRequest {
                max_tokens: 0,
                ..base.clone()
            },
            "max_tokens",
        ),
        (
            GenerateRequest {
                max_tokens: ctx,
                ..base.clone()
            },
            "context length",
        ),
        (
            GenerateRequest {
                prompt: vec![1; ctx + 1],
                ..base.clone()
            },
            "context length",
        ),
        (
            GenerateRequest {
                top_p: 0.0,
                ..base.clone()
            },
            "top_p",
        ),
        (
            GenerateRequest {
                top_p: 1.5,
                ..base.clone()
            },
            "top_p",
        ),
        (
            GenerateRequest {
                top_p: f32::NAN,
                ..base.clone()
            },
            "top_p",
        ),
        (
            GenerateRequest {
                temperature: -1.0,
                ..base.clone()
            },
            "temperature",
        ),
        (
            GenerateRequest {
                temperature: f32::INFINITY,
                ..base.clone()
            },
            "temperature",
        ),
        (
            GenerateRequest {
                logprobs: true,
                top_logprobs: 21,
                ..base.clone()
            },
            "top_logprobs",
        ),
        (
            GenerateRequest {
                top_logprobs: 2,
                ..base.clone()
            },
            "needs logprobs",
        ),
        (
            GenerateRequest {
                stop: vec![String::new()],
                ..base.clone()
            },
            "stop sequence is empty",
        ),
    ];
    for (req, needle) in cases {
        match engine.generate(req) {
            Err(EngineError::InvalidRequest(m)) => {
                assert!(m.contains(needle), "{m:?} lacks {needle:?}")
            }
            other => panic!("expected an invalid-request error about {needle}, got {other:?}"),
        }
    }
    for (tokens, start, k, needle) in [
        (p.clone(), 0, 0, "start"),
        (p.clone(), p.len(), 0, "start"),
        (vec![1, vocab + 5], 1, 0, "outside the vocabulary"),
        (p.clone(), 1, 21, "top_k"),
        (vec![1; ctx + 1], 1, 0, "context length"),
    ] {
        match engine.score(&tokens, start, k) {
            Err(EngineError::InvalidRequest(m)) => {
                assert!(m.contains(needle), "{m:?} lacks {needle:?}")
            }
            other => panic!("expected an invalid-request error about {needle}, got {other:?}"),
        }
    }
    assert!(matches!(
        engine.decode(&[vocab], false),
        Err(EngineError::InvalidRequest(_))
    ));
    // One slot, no queue: a second request while the first runs is turned away.
    let long = GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::greedy(p.clone(), 300)
    };
    let first = engine.generate(long).unwrap();
    match engine.generate(base) {
        Err(EngineError::Busy {
            in_flight: 1,
            limit: 1,
        }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(engine.capacity().in_flight, 1);
    assert_eq!(
        first.collect_blocking().unwrap().finished.completion_tokens,
        300
    );
    wait_idle(&engine);
}
