//! How often the validator's check catches each kind of cheating miner, and how often it
//! wrongly rejects an honest one: answers are produced by real engines (the honest model,
//! the same weights quantized coarser, another model, truncated and fabricated output) and
//! checked by the validator's own copy, exactly as `validator::check_answer` does on the
//! network. The rates are printed; run with `--nocapture` to see them.

use crate::{load, tiny, GGUF_Q8};
use agora_inference::challenge::Challenge;
use agora_inference::engine::testmodel::{GgufQuant, ModelFormat};
use agora_inference::engine::{Arch, ChatMessage, Engine, FinishReason, GenerateRequest};
use agora_inference::miner::{chat_prompt_ids, TokenIds};
use agora_inference::validator::{check_answer, Answer};
use agora_inference::verify::VerifyPolicy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CHALLENGES: usize = 24;
const MAX_TOKENS: u32 = 12;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cheat {
    None,
    Truncate,
    Fabricate,
}

/// What a miner running `engine` answers to `challenge`, possibly cheating.
fn answer(engine: &Engine, challenge: &Challenge, cheat: Cheat, rng: &mut ChaCha20Rng) -> Answer {
    let messages = [ChatMessage::new("user", challenge.prompt.clone())];
    let prompt = chat_prompt_ids(engine, &messages).expect("prompt");
    if cheat == Cheat::Fabricate {
        let vocab = engine.info().vocab_size as u32;
        let ids: Vec<u32> = (0..challenge.max_tokens)
            .map(|_| rng.gen_range(0..vocab))
            .collect();
        return Answer {
            text: engine.decode(&ids, true).expect("decode"),
            reported_logprobs: vec![-1.0; ids.len()],
            finish_reason: "length".into(),
            ids: TokenIds {
                prompt_token_ids: prompt,
                completion_token_ids: ids,
                eos_token_id: None,
            },
        };
    }
    let mut req = GenerateRequest::greedy(prompt.clone(), challenge.max_tokens as usize);
    req.temperature = challenge.temperature;
    req.seed = Some(challenge.seed);
    req.logprobs = true;
    if cheat == Cheat::Truncate {
        req.max_tokens = req.max_tokens.div_ceil(2);
    }
    let done = engine
        .generate(req)
        .expect("generate")
        .collect_blocking()
        .expect("collect");
    let finish_reason = match (cheat, done.finished.finish_reason) {
        (Cheat::Truncate, _) | (_, FinishReason::Length) => "length",
        (_, FinishReason::Stop) => "stop",
    };
    Answer {
        text: done.text.clone(),
        reported_logprobs: done
            .tokens
            .iter()
            .map(|t| t.logprob.unwrap_or(f32::NAN))
            .collect(),
        finish_reason: finish_reason.into(),
        ids: TokenIds {
            prompt_token_ids: prompt,
            completion_token_ids: done.token_ids(),
            eos_token_id: if cheat == Cheat::Truncate {
                None
            } else {
                done.finished.eos_token
            },
        },
    }
}

/// Share of `challenges` answers of up to `max_tokens` from `miner` that the validator
/// rejects.
fn rejection_rate(
    validator: &Engine,
    miner: &Engine,
    cheat: Cheat,
    greedy_share: f64,
    log_rejections: bool,
) -> f64 {
    rejection_rate_of(
        validator,
        miner,
        cheat,
        greedy_share,
        log_rejections,
        (CHALLENGES, MAX_TOKENS),
    )
}

fn rejection_rate_of(
    validator: &Engine,
    miner: &Engine,
    cheat: Cheat,
    greedy_share: f64,
    log_rejections: bool,
    (challenges, max_tokens): (usize, u32),
) -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let policy = VerifyPolicy::default();
    let mut rejected = 0;
    for _ in 0..challenges {
        let challenge = Challenge::generate(&mut rng, max_tokens, greedy_share);
        let a = answer(miner, &challenge, cheat, &mut rng);
        let messages = [ChatMessage::new("user", challenge.prompt.clone())];
        if let Err(reason) = check_answer(validator, &messages, &challenge, &a, &policy) {
            if log_rejections {
                eprintln!("honest answer rejected: {reason}");
            }
            rejected += 1;
        }
    }
    rejected as f64 / challenges as f64
}

#[test]
fn cheats_are_caught_and_honest_miners_are_not() {
    let honest_dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let coarse_dir = tiny(
        Arch::Llama,
        ModelFormat::Gguf {
            quant: GgufQuant::Q4_0,
        },
        1,
    );
    let other_dir = tiny(Arch::Llama, GGUF_Q8, 2);
    let validator = load(honest_dir.path());
    // The miner loads its own copy, as a separate machine would.
    let honest = load(honest_dir.path());
    let coarse = load(coarse_dir.path());
    let other = load(other_dir.path());
    for (greedy_share, label) in [(1.0, "greedy"), (0.0, "sampled")] {
        let fp = rejection_rate(&validator, &honest, Cheat::None, greedy_share, true);
        let rates = [
            (
                "coarser quantization (Q4_0 for Q8_0)",
                rejection_rate(&validator, &coarse, Cheat::None, greedy_share, false),
            ),
            (
                "another model",
                rejection_rate(&validator, &other, Cheat::None, greedy_share, false),
            ),
            (
                "truncated output",
                rejection_rate(&validator, &honest, Cheat::Truncate, greedy_share, false),
            ),
            (
                "fabricated output",
                rejection_rate(&validator, &honest, Cheat::Fabricate, greedy_share, false),
            ),
        ];
        println!("{label} challenges ({CHALLENGES} each): false-positive rate {fp:.2}");
        for (name, rate) in &rates {
            println!("  detection rate, {name}: {rate:.2}");
        }
        assert_eq!(fp, 0.0, "{label}: honest answers must never be rejected");
        for (name, rate) in rates {
            assert!(
                rate >= 0.75,
                "{label}: {name} caught in only {rate:.2} of answers"
            );
        }
    }
}

/// Long answers from an honest miner pass too. The miner decodes a token at a time and the
/// validator rescores the whole answer in one pass; on int8 weights the two must compute
/// the same bits, or a last-bit difference grows over the positions into log-probabilities
/// further apart than the validator's tolerance (on this model, within about 20 tokens).
#[test]
fn long_honest_answers_are_accepted() {
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let (validator, honest) = (load(dir.path()), load(dir.path()));
    for greedy_share in [1.0, 0.0] {
        let fp = rejection_rate_of(
            &validator,
            &honest,
            Cheat::None,
            greedy_share,
            true,
            (3, 300),
        );
        assert_eq!(fp, 0.0, "greedy share {greedy_share}");
    }
}

/// Where the honest miner on other kernels writes its answers (set for the child run).
const OTHER_KERNELS_ANSWERS: &str = "AGORA_TEST_OTHER_KERNELS_ANSWERS";
const OTHER_KERNELS_CHALLENGES: usize = 8;
const OTHER_KERNELS_TOKENS: u32 = 64;

/// The challenges of the other-kernels test: greedy, then sampled.
fn other_kernels_challenges() -> Vec<Challenge> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    [1.0, 0.0]
        .into_iter()
        .flat_map(|share| {
            (0..OTHER_KERNELS_CHALLENGES)
                .map(|_| Challenge::generate(&mut rng, OTHER_KERNELS_TOKENS, share))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The miner's side of [`honest_miners_on_other_kernels_are_accepted`], run by it in a
/// child process on other kernels; it does nothing when run on its own.
#[test]
#[ignore = "run by honest_miners_on_other_kernels_are_accepted in a child process"]
fn other_kernels_miner() {
    let Some(out) = std::env::var_os(OTHER_KERNELS_ANSWERS) else {
        return;
    };
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let miner = load(dir.path());
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let answers: Vec<(String, Vec<f32>, String, TokenIds)> = other_kernels_challenges()
        .iter()
        .map(|c| {
            let a = answer(&miner, c, Cheat::None, &mut rng);
            (a.text, a.reported_logprobs, a.finish_reason, a.ids)
        })
        .collect();
    std::fs::write(out, serde_json::to_vec(&answers).expect("encode")).expect("write answers");
}

/// The answers of [`other_kernels_miner`] run in a child process with
/// `AGORA_KERNELS=kernels`.
fn answers_on_other_kernels(kernels: &str) -> Vec<Answer> {
    let answers_file = tempfile::NamedTempFile::new().expect("temp file");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "verification::other_kernels_miner",
            "--ignored",
            "--quiet",
        ])
        .env("AGORA_KERNELS", kernels)
        .env(OTHER_KERNELS_ANSWERS, answers_file.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run the miner");
    assert!(status.success(), "the miner's process failed: {status}");
    let bytes = std::fs::read(answers_file.path()).expect("read answers");
    let answers: Vec<(String, Vec<f32>, String, TokenIds)> =
        serde_json::from_slice(&bytes).expect("decode answers");
    answers
        .into_iter()
        .map(|(text, reported_logprobs, finish_reason, ids)| Answer {
            text,
            reported_logprobs,
            finish_reason,
            ids,
        })
        .collect()
}

/// An honest miner whose CPU runs other kernels than the validator's must be accepted.
/// The AVX2 kernels (with and without VNNI) give the AVX-512 kernels' bits, so such a
/// miner's log-probs equal the validator's exactly. A CPU with none of them (here: the
/// portable setting, which multiplies with candle's products) rounds int8 activations
/// differently, and its answers must pass all the same. Each miner runs in a child
/// process with `AGORA_KERNELS` set.
#[test]
fn honest_miners_on_other_kernels_are_accepted() {
    use agora_kernels::KernelKind;
    let dir = tiny(Arch::Llama, GGUF_Q8, 1);
    let validator = load(dir.path());
    let challenges = other_kernels_challenges();
    let policy = VerifyPolicy::default();
    let ours = KernelKind::detect();
    for (kernels, kind) in [
        ("avxvnni", KernelKind::AvxVnni),
        ("avx2", KernelKind::Avx2),
        ("portable", KernelKind::Portable),
    ] {
        if !kind.supported() || kind == ours {
            println!("other kernels: {kernels} skipped (this CPU lacks it, or runs it itself)");
            continue;
        }
        let answers = answers_on_other_kernels(kernels);
        assert_eq!(answers.len(), challenges.len());
        let mut worst = 0f32;
        for (challenge, a) in challenges.iter().zip(&answers) {
            let messages = [ChatMessage::new("user", challenge.prompt.clone())];
            let mut sequence = a.ids.prompt_token_ids.clone();
            sequence.extend(&a.ids.completion_token_ids);
            let scored = validator
                .score(&sequence, a.ids.prompt_token_ids.len(), 0)
                .expect("score");
            for (s, r) in scored.iter().zip(&a.reported_logprobs) {
                worst = worst.max((s.logprob - r).abs());
            }
            if let Err(why) = check_answer(&validator, &messages, challenge, a, &policy) {
                panic!("an honest answer from the {kernels} kernels was rejected: {why}");
            }
        }
        if kind == KernelKind::Portable {
            // Candle's products round otherwise: were the difference zero, the child
            // would not have run other kernels and the test would prove nothing.
            assert!(
                worst > 0.0,
                "the {kernels} miner matched the validator to the bit"
            );
        } else {
            assert_eq!(
                worst, 0.0,
                "the {kernels} miner's log-probs differ from ours"
            );
        }
        println!(
            "other kernels: {kernels}: {} honest answers of {OTHER_KERNELS_TOKENS} tokens \
             accepted; largest log-prob difference {worst:.4} nats",
            challenges.len()
        );
    }
}
