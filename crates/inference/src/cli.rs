//! The `agora model` and `agora bench decode` commands. The binary only parses arguments
//! and calls [`run_model`] and [`run_bench_decode`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};

use crate::engine::testmodel::{
    write_test_model, DenseDType, GgufQuant, ModelFormat, TestModelSpec,
};
use crate::engine::{Arch, Engine, EngineError, GenerateRequest, LoadOptions, Result};

/// `agora model ...`
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Writes a deterministic random-weight test model (weights, tokenizer, chat template).
    Init(ModelInitArgs),
}

/// Model families, as command-line values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ArchArg {
    /// Llama.
    Llama,
    /// Mistral.
    Mistral,
    /// Qwen2.
    Qwen2,
    /// Qwen3.
    Qwen3,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::Llama => Arch::Llama,
            ArchArg::Mistral => Arch::Mistral,
            ArchArg::Qwen2 => Arch::Qwen2,
            ArchArg::Qwen3 => Arch::Qwen3,
        }
    }
}

/// Weight file formats, as command-line values.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    /// One GGUF file (llama.cpp's format).
    Gguf,
    /// Hugging Face safetensors with config.json.
    Safetensors,
}

/// Test model sizes.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum SizeArg {
    /// About 100k parameters: forward passes in about a millisecond, for tests.
    Tiny,
    /// About 30M parameters, for decode benchmarks.
    Small,
    /// About 380M parameters, larger than the caches: decode benchmarks at a realistic
    /// balance of memory traffic and arithmetic.
    Medium,
}

/// Arguments of `agora model init`.
#[derive(Args, Debug)]
pub struct ModelInitArgs {
    /// The directory to write (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// The model family.
    #[arg(long, value_enum, default_value = "llama")]
    pub arch: ArchArg,
    /// The weights format.
    #[arg(long, value_enum, default_value = "gguf")]
    pub format: FormatArg,
    /// GGUF storage type: f32, f16, q8_0, q4_0, q4k, q4_k_m (the Q4_K/Q6_K mix), q6k.
    #[arg(long, default_value = "q8_0")]
    pub quant: String,
    /// Safetensors element type: f32, f16, bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The model's size.
    #[arg(long, value_enum, default_value = "tiny")]
    pub size: SizeArg,
}

/// Runs `agora model ...`, printing `name: value` lines to `out`.
pub fn run_model(cmd: &ModelCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ModelCommand::Init(a) => {
            let format = match a.format {
                FormatArg::Gguf => ModelFormat::Gguf {
                    quant: GgufQuant::parse(&a.quant).ok_or_else(|| {
                        EngineError::invalid_request(format!(
                            "unknown quantization {:?} (f32, f16, q8_0, q4_0, q4k, q4_k_m, q6k)",
                            a.quant
                        ))
                    })?,
                },
                FormatArg::Safetensors => ModelFormat::Safetensors {
                    dtype: DenseDType::parse(&a.dtype).ok_or_else(|| {
                        EngineError::invalid_request(format!(
                            "unknown dtype {:?} (f32, f16, bf16)",
                            a.dtype
                        ))
                    })?,
                },
            };
            let spec = match a.size {
                SizeArg::Tiny => TestModelSpec::tiny(a.arch.into(), format, a.seed),
                SizeArg::Small => TestModelSpec::small(a.arch.into(), format, a.seed),
                SizeArg::Medium => TestModelSpec::medium(a.arch.into(), format, a.seed),
            };
            let written = write_test_model(&a.out, &spec)?;
            let w = |e: std::io::Error| EngineError::io(&a.out, &e);
            writeln!(out, "path: {}", written.dir.display()).map_err(w)?;
            writeln!(out, "weights: {}", written.weights_file.display()).map_err(w)?;
            writeln!(out, "weights_sha256: {}", written.weights_sha256).map_err(w)?;
            writeln!(out, "parameters: {}", written.parameters).map_err(w)?;
            Ok(())
        }
    }
}

/// Arguments of `agora bench decode`.
#[derive(Args, Debug)]
pub struct BenchDecodeArgs {
    /// The model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// The prompt text.
    #[arg(
        long,
        default_value = "The validator sends the same prompt and checks the answer"
    )]
    pub prompt: String,
    /// Concurrent generations for the batched-throughput line (0 skips it).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Skip the llama.cpp comparison.
    #[arg(long)]
    pub no_llamacpp: bool,
    /// Skip the fidelity lines, which load a second copy of the model dequantized to f32
    /// (four to eight times the file's size in memory).
    #[arg(long)]
    pub no_fidelity: bool,
}

/// Runs `agora bench decode`, printing `name: value unit` lines to `out`.
pub fn run_bench_decode(args: &BenchDecodeArgs, out: &mut dyn Write) -> Result<()> {
    let p = |out: &mut dyn Write, line: String| -> Result<()> {
        writeln!(out, "{line}").map_err(|e| EngineError::io(&args.model, &e))?;
        out.flush().map_err(|e| EngineError::io(&args.model, &e))
    };
    let opts = LoadOptions {
        max_concurrent: args.batch.max(1),
        ..LoadOptions::default()
    };
    let started = Instant::now();
    let engine = Arc::new(Engine::load(&args.model, &opts)?);
    let info = engine.info().clone();
    p(
        out,
        format!(
            "model: {} ({} {} {}, {} layers, hidden {}, vocab {})",
            info.model_id,
            info.arch,
            info.format,
            info.quantization,
            info.num_layers,
            info.hidden_size,
            info.vocab_size
        ),
    )?;
    p(
        out,
        format!("kernels: {:?}", agora_kernels::KernelKind::detect()),
    )?;
    p(
        out,
        format!("load_ms: {:.1} ms", started.elapsed().as_secs_f64() * 1e3),
    )?;
    let prompt = engine.encode(&args.prompt, false)?;
    if prompt.is_empty() {
        return Err(EngineError::invalid_request(
            "the prompt encodes to no tokens",
        ));
    }
    let tokens = args.tokens.max(2);
    let request = |n: usize| GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::greedy(prompt.clone(), n)
    };
    // Warm-up: first-touch allocations and weight repacking stay out of the numbers.
    engine.generate(request(4))?.collect_blocking()?;
    let done = engine.generate(request(tokens))?.collect_blocking()?;
    let f = &done.finished;
    p(out, format!("prompt_tokens: {} tokens", f.prompt_tokens))?;
    p(
        out,
        format!(
            "time_to_first_token_ms: {:.2} ms",
            ms(f.time_to_first_token)
        ),
    )?;
    p(
        out,
        format!("decode_tokens_per_s: {:.1} tokens/s", f.decode_tokens_per_s),
    )?;
    let generated = done.token_ids();
    let mut all = prompt.clone();
    all.extend(&generated);
    // Generation and its check alternate, and the ratio is the median over the pairs: on a
    // shared machine the load changes between runs, and a pair sees the same load.
    let mut pairs = Vec::with_capacity(VERIFY_PAIRS);
    let mut max_rank = 0;
    let mut rescored = Vec::new();
    for _ in 0..VERIFY_PAIRS {
        let generate_time = engine
            .generate(request(tokens))?
            .collect_blocking()?
            .finished
            .total_time;
        let t0 = Instant::now();
        let scored = engine.score(&all, prompt.len(), 0)?;
        let score_time = t0.elapsed();
        max_rank = scored
            .iter()
            .map(|s| s.rank)
            .max()
            .unwrap_or(0)
            .max(max_rank);
        pairs.push((generate_time, score_time));
        rescored = scored;
    }
    let seconds: Vec<(f64, f64)> = pairs
        .iter()
        .map(|(g, s)| (g.as_secs_f64(), s.as_secs_f64()))
        .collect();
    if let Some(((generate, score), n)) = median_ratio_pair(&seconds) {
        p(out, format!("generate_ms: {:.1} ms", generate * 1e3))?;
        p(out, format!("score_ms: {:.2} ms", score * 1e3))?;
        p(
            out,
            format!(
                "verify_cost_ratio: {:.4} (median of {n} generate/score pairs)",
                score / generate
            ),
        )?;
    }
    p(out, format!("score_max_rank_of_greedy_tokens: {max_rank}"))?;
    // What a validator compares: the log-probabilities a miner reports while decoding
    // against its own one-pass recomputation of the same tokens.
    let reported = engine
        .generate(GenerateRequest {
            logprobs: true,
            ..request(tokens)
        })?
        .collect_blocking()?;
    if reported.token_ids() == generated {
        let worst = reported
            .tokens
            .iter()
            .zip(&rescored)
            .map(|(t, s)| t.logprob.map_or(f32::INFINITY, |lp| (lp - s.logprob).abs()))
            .fold(0f32, f32::max);
        p(
            out,
            format!(
                "decode_vs_score_max_logprob_diff: {worst:.3e} nats over {} tokens",
                generated.len()
            ),
        )?;
    } else {
        p(
            out,
            "decode_vs_score_max_logprob_diff: not measured (a second greedy run chose \
             other tokens)"
                .into(),
        )?;
    }
    if args.batch > 1 {
        let t0 = Instant::now();
        let streams = (0..args.batch)
            .map(|_| engine.generate(request(tokens)))
            .collect::<Result<Vec<_>>>()?;
        let mut total = 0;
        for s in streams {
            total += s.collect_blocking()?.finished.completion_tokens;
        }
        p(
            out,
            format!(
                "batch{}_decode_tokens_per_s: {:.1} tokens/s",
                args.batch,
                total as f64 / t0.elapsed().as_secs_f64()
            ),
        )?;
    }
    // Fidelity: how far this engine's log-probabilities of its own greedy answer are from
    // the file's weights evaluated in f32, teacher-forced, so that one early near-tie does
    // not decide every later position as comparing two greedy answers would.
    let reference = if args.no_fidelity || !is_quantized(&info) {
        None
    } else {
        match reference_scores(&args.model, &all, prompt.len()) {
            Ok(r) => Some(r),
            Err(why) => {
                p(
                    out,
                    format!("fidelity_mean_abs_logprob_error: not measured ({why})"),
                )?;
                None
            }
        }
    };
    if let Some(reference) = &reference {
        let ours = engine.score(&all, prompt.len(), 1)?;
        let (logprobs, argmax) = logprobs_and_argmax(&ours);
        p(
            out,
            fidelity_line("fidelity", reference, &logprobs, &argmax),
        )?;
    }
    if args.no_llamacpp {
        p(
            out,
            "llamacpp_decode_tokens_per_s: not measured (--no-llamacpp)".into(),
        )?;
        return Ok(());
    }
    match info.format.as_str() {
        "gguf" => match llamacpp_decode(&args.model, &prompt, &generated) {
            Ok(run) => {
                let tps = run.tokens_per_s;
                p(out, format!("llamacpp_decode_tokens_per_s: {tps:.1} tokens/s"))?;
                p(out, format!("decode_vs_llamacpp: {:.2}", f.decode_tokens_per_s / tps))?;
                if let Some(((generate, score), n)) = median_ratio_pair(&run.pairs) {
                    p(out, format!("llamacpp_generate_ms: {:.1} ms", generate * 1e3))?;
                    p(out, format!("llamacpp_score_ms: {:.2} ms", score * 1e3))?;
                    p(out, format!(
                        "llamacpp_verify_cost_ratio: {:.4} (median of {n} generate/score pairs; \
                         the same check with llama.cpp as both miner and validator)",
                        score / generate
                    ))?;
                }
                if let Some(reference) = &reference {
                    p(out, fidelity_line("llamacpp_fidelity", reference, &run.logprobs, &run.argmax))?;
                }
            }
            Err(why) => p(out, format!("llamacpp_decode_tokens_per_s: not measured ({why})"))?,
        },
        _ => p(out, "llamacpp_decode_tokens_per_s: not measured (llama.cpp reads GGUF only; this model is safetensors)".into())?,
    }
    Ok(())
}

/// Whether the projections are stored quantized (a dequantized copy would then differ).
fn is_quantized(info: &crate::engine::ModelInfo) -> bool {
    !matches!(info.quantization.as_str(), "F32" | "F16" | "BF16")
}

/// The log-probability of each scored token and the most likely token at each position.
fn logprobs_and_argmax(scored: &[crate::engine::ScoredToken]) -> (Vec<f32>, Vec<u32>) {
    scored
        .iter()
        .map(|s| {
            let best = s.top_logprobs.first().map_or(s.id, |t| t.id);
            (s.logprob, best)
        })
        .unzip()
}

/// `tokens` scored by the model in `dir` with every matrix dequantized to f32; refused
/// up front when that copy would not fit in the memory this machine has free.
fn reference_scores(
    dir: &std::path::Path,
    tokens: &[u32],
    start: usize,
) -> std::result::Result<(Vec<f32>, Vec<u32>), String> {
    // GGUF's smallest k-quants hold about 2.6 bits a weight, so an f32 copy is at most
    // about 13 times the files.
    let file_bytes: u64 = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".gguf") || name.ends_with(".safetensors")
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    let needed = file_bytes.saturating_mul(13);
    if let Some(free) = available_memory() {
        if needed > free {
            return Err(format!(
                "the f32 reference needs up to {:.1} GB and {:.1} GB are free; --no-fidelity skips it",
                needed as f64 / 1e9,
                free as f64 / 1e9
            ));
        }
    }
    let opts = LoadOptions {
        max_concurrent: 1,
        dequantize: true,
        ..LoadOptions::default()
    };
    let reference = Engine::load(dir, &opts).map_err(|e| e.to_string())?;
    let scored = reference
        .score(tokens, start, 1)
        .map_err(|e| e.to_string())?;
    Ok(logprobs_and_argmax(&scored))
}

/// Bytes of memory free for new allocations (Linux's `MemAvailable`); `None` elsewhere.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `NAME_mean_abs_logprob_error` and `NAME_argmax_agreement` of one engine's scores
/// against the f32 reference's.
fn fidelity_line(
    name: &str,
    (ref_logprobs, ref_argmax): &(Vec<f32>, Vec<u32>),
    logprobs: &[f32],
    argmax: &[u32],
) -> String {
    let n = ref_logprobs.len().min(logprobs.len()).max(1);
    let error = ref_logprobs
        .iter()
        .zip(logprobs)
        .map(|(r, o)| f64::from((r - o).abs()))
        .sum::<f64>()
        / n as f64;
    let agree = ref_argmax
        .iter()
        .zip(argmax)
        .filter(|(r, o)| r == o)
        .count();
    format!(
        "{name}_mean_abs_logprob_error: {error:.4} nats; {name}_argmax_agreement: {agree}/{} \
         positions (teacher-forced, against the weights in f32)",
        ref_argmax.len().min(argmax.len())
    )
}

/// The (generation, scoring) pair whose ratio is the median of `pairs`, and how many
/// pairs there were; `None` for no pairs.
fn median_ratio_pair(pairs: &[(f64, f64)]) -> Option<((f64, f64), usize)> {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|(g1, s1), (g2, s2)| (s1 / g1).total_cmp(&(s2 / g2)));
    Some((*sorted.get(sorted.len() / 2)?, sorted.len()))
}

/// Generate-then-score pairs timed for `verify_cost_ratio`.
const VERIFY_PAIRS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The Python program that times llama.cpp (llama-cpp-python) on the same GGUF and prompt
/// tokens: greedy, same token count, timed from the first generated token as ours is.
const LLAMACPP_SCRIPT: &str = r#"
import json, os, sys, time
import llama_cpp
path, n, prompt, pairs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[5])
llm = llama_cpp.Llama(model_path=path, n_ctx=len(prompt) + n + 8, n_threads=os.cpu_count(), n_batch=512, verbose=False)
def run(count):
    llm.reset()
    out, first = [], None
    start = time.perf_counter()
    for tok in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        if first is None:
            first = time.perf_counter()
        out.append(tok)
        if len(out) >= count:
            break
    end = time.perf_counter()
    return out, end - first, end - start
run(4)
out, secs, _ = run(n)
# Teacher-forced: the log-probability of each of our tokens and the most likely token.
import numpy as np
ours = json.loads(sys.argv[4])
seq = prompt + ours
scorer = llama_cpp.Llama(model_path=path, n_ctx=len(seq) + 8, n_threads=os.cpu_count(), n_batch=512, logits_all=True, verbose=False)
def score():
    # The last token is predicted, never read: as in our scoring pass.
    scorer.reset()
    start = time.perf_counter()
    scorer.eval(seq[:-1])
    return time.perf_counter() - start
score()
# Generation and its check alternate, as in our measurement.
timed = [(run(n)[2], score()) for _ in range(pairs)]
logprobs, argmax = [], []
for i in range(len(prompt) - 1, len(seq) - 1):
    row = np.asarray(scorer.scores[i], dtype=np.float64)
    top = row.max()
    lp = row - (top + np.log(np.exp(row - top).sum()))
    logprobs.append(float(lp[seq[i + 1]]))
    argmax.append(int(lp.argmax()))
print(json.dumps({"tokens_per_s": (len(out) - 1) / secs, "logprobs": logprobs, "argmax": argmax, "pairs": timed}))
"#;

/// What the llama.cpp run reports: its decode speed, and its teacher-forced scores of our
/// greedy answer (the log-probability of each token and the most likely token).
struct LlamaCppRun {
    tokens_per_s: f64,
    /// Generation and scoring times of the same request, in seconds, alternated.
    pairs: Vec<(f64, f64)>,
    logprobs: Vec<f32>,
    argmax: Vec<u32>,
}

fn llamacpp_decode(
    dir: &std::path::Path,
    prompt: &[u32],
    ours: &[u32],
) -> std::result::Result<LlamaCppRun, String> {
    let gguf = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .ok_or("no .gguf file")?;
    let probe = std::process::Command::new("python3")
        .args(["-c", "import llama_cpp"])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !probe.status.success() {
        return Err(
            "python3 cannot import llama_cpp; install it with `pip install llama-cpp-python`"
                .into(),
        );
    }
    let json = |ids: &[u32]| serde_json::to_string(ids).map_err(|e| e.to_string());
    let run = std::process::Command::new("python3")
        .args(["-c", LLAMACPP_SCRIPT])
        .arg(&gguf)
        .arg(ours.len().to_string())
        .arg(json(prompt)?)
        .arg(json(ours)?)
        .arg(VERIFY_PAIRS.to_string())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(format!("llama.cpp failed: {last}"));
    }
    let text = String::from_utf8_lossy(&run.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("unreadable llama.cpp output: {e}"))?;
    let tps = v["tokens_per_s"].as_f64().ok_or("no tokens_per_s")?;
    let numbers = |key: &str| -> Vec<f64> {
        v[key]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let logprobs: Vec<f32> = numbers("logprobs").iter().map(|&x| x as f32).collect();
    let argmax: Vec<u32> = numbers("argmax").iter().map(|&x| x as u32).collect();
    if logprobs.len() != ours.len() || argmax.len() != ours.len() {
        return Err(format!(
            "llama.cpp scored {} of {} tokens",
            logprobs.len().min(argmax.len()),
            ours.len()
        ));
    }
    let pairs: Vec<(f64, f64)> = v["pairs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .filter(|&(g, s)| g > 0.0 && s > 0.0)
                .collect()
        })
        .unwrap_or_default();
    Ok(LlamaCppRun {
        tokens_per_s: tps,
        pairs,
        logprobs,
        argmax,
    })
}

#[cfg(test)]
mod tests {
    use super::median_ratio_pair;

    #[test]
    fn the_median_pair_is_chosen_by_its_ratio_not_by_either_time() {
        assert_eq!(median_ratio_pair(&[]), None);
        // Ratios 0.5, 0.1 and 0.2: the median is the pair whose ratio is 0.2, though it
        // has neither the median generation time nor the median scoring time.
        let pairs = [(2.0, 1.0), (10.0, 1.0), (1.0, 0.2)];
        assert_eq!(median_ratio_pair(&pairs), Some(((1.0, 0.2), 3)));
    }
}
