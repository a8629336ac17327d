//! `agora bench tee`: attestation verification, the HPKE channel, and what the private path
//! adds to a real request.
//!
//! Prints `name: value unit` lines:
//! - `verify_ms`: one verification of TEE evidence with its collateral — the TDX quote of
//!   `../shared/tee-fixtures` (or `--fixtures`) when present, else (in builds with
//!   `insecure-mock-tee`) a test-PKI SEV-SNP bundle; skipped with a note otherwise.
//! - `hpke_seal_open_4k_us`: sealing a 4 KiB request to an enclave key and opening it,
//!   replay check included: mean on-CPU time of the thread (Linux `schedstat`), so that a
//!   busy machine does not inflate it; the wall-clock mean goes to stderr.
//! - `private_overhead_pct`: one miner axon on loopback serves the same greedy chat request
//!   in the clear (`/v1/chat/completions`) and sealed (`/v1/private/chat/completions`,
//!   sealed by the client, opened by the enclave, answer sealed in frames and opened by the
//!   client), alternating, same model, prompt and process. The overhead is the median of
//!   the paired differences (private - clear, wall-clock) over the median clear time, which
//!   is the inference time plus one local HTTP exchange. Both answers must be equal.
//!   `private_overhead_cpu_pct` is the same comparison of the process's on-CPU time per
//!   request (all threads). Both differences of two large numbers are at the mercy of other
//!   load on the machine, so the bench also measures the added work on its own:
//!   `private_added_us` (on-CPU: seal and serialize the real request, parse and open it,
//!   frame the real answer, open the frames) and `private_added_pct`, that over the median
//!   clear request time.

use crate::engine::testmodel::{write_test_model, GgufQuant, ModelFormat, TestModelSpec};
use crate::engine::{Arch, Engine, LoadOptions};
use crate::miner::{Behaviour, InferenceMiner};
use crate::private::Enclave;
use agora_subnet::metrics::NeuronMetrics;
use agora_tee::channel::{
    open_events, open_request, seal_request, EnclaveKeypair, ReplayGuard, RequestMetadata,
};
use agora_tee::{AttestationBundle, Platform, Policy, TrustAnchors};
use rand_chacha09::rand_core::SeedableRng;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Inside the TDX fixture's collateral window.
const TDX_FIXTURE_NOW: u64 = 1_750_377_600;

/// Arguments of `agora bench tee`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchTeeArgs {
    /// The model served (default: a ~30M-parameter test model written to a temporary
    /// directory).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Requests of each kind (clear, private).
    #[arg(long, default_value_t = 12)]
    pub rounds: usize,
    /// Completion tokens per request (greedy; the model may stop earlier).
    #[arg(long, default_value_t = 32)]
    pub max_tokens: u32,
    /// Seal/open iterations for `hpke_seal_open_4k_us`.
    #[arg(long, default_value_t = 20_000)]
    pub hpke_iterations: u32,
    /// The TEE fixtures directory (default: `$AGORA_TEE_FIXTURES` or `../shared/tee-fixtures`).
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
}

type BenchResult<T> = Result<T, String>;

/// Runs the benchmark and prints its lines to `out`.
pub fn run_bench_tee(args: &BenchTeeArgs, out: &mut dyn Write) -> BenchResult<()> {
    let io = |e: std::io::Error| e.to_string();
    match verify_ms(args)? {
        Some((ms, what)) => {
            eprintln!("verify: {what}");
            writeln!(out, "verify_ms: {ms:.3} ms").map_err(io)?;
        }
        None => eprintln!(
            "SKIP verify_ms: no TEE fixtures found (give --fixtures DIR or set AGORA_TEE_FIXTURES)"
        ),
    }
    let us = hpke_seal_open_4k_us(args.hpke_iterations.max(1))?;
    writeln!(out, "hpke_seal_open_4k_us: {us:.2} us").map_err(io)?;
    let o = private_overhead(args)?;
    eprintln!(
        "private path: clear median {:.3} ms, private median {:.3} ms, median paired difference \
         {:.3} ms; on-CPU per request: clear {:.3} ms, private {:.3} ms",
        o.clear_ms, o.private_ms, o.paired_diff_ms, o.clear_cpu_ms, o.private_cpu_ms
    );
    writeln!(out, "private_overhead_pct: {:.3} %", o.wall_pct).map_err(io)?;
    if let Some(pct) = o.cpu_pct {
        writeln!(out, "private_overhead_cpu_pct: {pct:.3} %").map_err(io)?;
    }
    writeln!(out, "private_added_us: {:.1} us", o.added_us).map_err(io)?;
    writeln!(out, "private_added_pct: {:.4} %", o.added_pct).map_err(io)?;
    Ok(())
}

fn fixtures_dir(args: &BenchTeeArgs) -> Option<PathBuf> {
    let dir = args
        .fixtures
        .clone()
        .or_else(|| std::env::var_os("AGORA_TEE_FIXTURES").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/tee-fixtures"));
    dir.is_dir().then_some(dir)
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

fn verify_ms(args: &BenchTeeArgs) -> BenchResult<Option<(f64, String)>> {
    let policy = Policy::default();
    let (evidence, collateral, now, anchors, what) = match fixtures_dir(args) {
        Some(dir) => {
            let read = |n: &str| {
                std::fs::read(dir.join(n)).map_err(|e| format!("{}: {e}", dir.join(n).display()))
            };
            (
                read("tdx_quote")?,
                read("tdx_quote_collateral.json")?,
                TDX_FIXTURE_NOW,
                TrustAnchors::production(),
                format!("TDX quote fixture in {}", dir.display()),
            )
        }
        None => match mock_bundle()? {
            Some((bundle, anchors, now)) => (
                bundle.evidence,
                bundle.collateral,
                now,
                anchors,
                "insecure-mock-tee SEV-SNP bundle".to_owned(),
            ),
            None => return Ok(None),
        },
    };
    let check = || {
        agora_tee::verify_evidence(None, &evidence, &collateral, now, &policy, &anchors)
            .map_err(|e| format!("verification failed: {e}"))
    };
    check()?;
    let mut samples = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = Instant::now();
        check()?;
        samples.push(t.elapsed());
    }
    Ok(Some((median_ms(&mut samples), what)))
}

#[cfg(feature = "insecure-mock-tee")]
fn mock_bundle() -> BenchResult<Option<(AttestationBundle, TrustAnchors, u64)>> {
    use agora_tee::mock::{MockPki, DEV_MEASUREMENT};
    let pki = MockPki::dev().map_err(|e| e.to_string())?;
    let kp = EnclaveKeypair::derive(b"agora bench tee enclave key").map_err(|e| e.to_string())?;
    let bundle = pki
        .snp_bundle(&kp.public_key(), DEV_MEASUREMENT)
        .map_err(|e| e.to_string())?;
    let anchors =
        TrustAnchors::production().with_mock_root(pki.roots().map_err(|e| e.to_string())?);
    Ok(Some((bundle, anchors, unix_now())))
}

#[cfg(not(feature = "insecure-mock-tee"))]
fn mock_bundle() -> BenchResult<Option<(AttestationBundle, TrustAnchors, u64)>> {
    Ok(None)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hpke_seal_open_4k_us(iterations: u32) -> BenchResult<f64> {
    let kp = EnclaveKeypair::derive(b"agora bench tee enclave key").map_err(|e| e.to_string())?;
    let pk = kp.public_key();
    let body = vec![0x42u8; 4096];
    let mut rng = rand_chacha09::ChaCha20Rng::seed_from_u64(7);
    let mut guard = ReplayGuard::new(3600, usize::try_from(iterations).unwrap_or(usize::MAX));
    let mut run = |i: u32| -> BenchResult<()> {
        let meta = RequestMetadata {
            model: "bench-model".into(),
            request_id: u128::from(i).to_le_bytes(),
            netuid: 1,
            uid: 0,
            issued_at: 1_000,
        };
        let (req, _) = seal_request(&pk, meta, &body, &mut rng).map_err(|e| e.to_string())?;
        let (opened, _) = open_request(&kp, &req, 1_000, &mut guard).map_err(|e| e.to_string())?;
        if opened.len() != body.len() {
            return Err("opened body differs".into());
        }
        Ok(())
    };
    let warmup = iterations.min(200);
    for i in 0..warmup {
        run(u32::MAX - i)?;
    }
    let n = iterations.saturating_sub(warmup).max(1);
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    for i in 0..n {
        run(i)?;
    }
    let wall_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => {
            eprintln!("hpke seal+open 4 KiB: {wall_us:.2} us wall-clock per operation");
            Ok(b.saturating_sub(a) as f64 / 1e3 / f64::from(n))
        }
        _ => Ok(wall_us),
    }
}

/// Nanoseconds the calling thread has run on a CPU (Linux `schedstat`): unlike wall-clock
/// time, it does not count time other processes held the core, so numbers taken on a
/// shared machine stay comparable.
fn thread_cpu_ns() -> Option<u64> {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"))
}

/// Nanoseconds all threads of this process have run on a CPU.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        total = total.saturating_add(schedstat_ns(&task.ok()?.path().join("schedstat"))?);
    }
    Some(total)
}

fn schedstat_ns(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What `private_overhead_pct` found.
struct Overhead {
    /// On-CPU microseconds the private path adds to one request, measured on its own.
    added_us: f64,
    /// `added_us` over the median clear request time, percent.
    added_pct: f64,
    /// Median paired (private - clear) wall-clock difference over the clear median, percent.
    wall_pct: f64,
    /// The same over on-CPU time of the whole process (client, axon, enclave, engine).
    cpu_pct: Option<f64>,
    clear_ms: f64,
    private_ms: f64,
    paired_diff_ms: f64,
    clear_cpu_ms: f64,
    private_cpu_ms: f64,
}

fn private_overhead(args: &BenchTeeArgs) -> BenchResult<Overhead> {
    let scratch;
    let model_dir = match &args.model {
        Some(d) => d.clone(),
        None => {
            scratch = ScratchDir::new()?;
            let dir = scratch.0.join("small-llama");
            let spec = TestModelSpec::small(
                Arch::Llama,
                ModelFormat::Gguf {
                    quant: GgufQuant::Q8_0,
                },
                1,
            );
            write_test_model(&dir, &spec).map_err(|e| format!("writing the test model: {e}"))?;
            dir
        }
    };
    let engine = Engine::load(
        &model_dir,
        &LoadOptions {
            max_concurrent: 1,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| format!("--model {}: {e}", model_dir.display()))?;
    let engine = Arc::new(engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(overhead_on(engine, args.rounds.max(3), args.max_tokens))
}

async fn overhead_on(engine: Arc<Engine>, rounds: usize, max_tokens: u32) -> BenchResult<Overhead> {
    let model = engine.model_id().to_owned();
    let miner = Arc::new(InferenceMiner::new(
        engine,
        None,
        Behaviour::Honest,
        Arc::new(NeuronMetrics::default()),
    ));
    // The enclave's bundle is not verified here (that is `verify_ms`): only the channel and
    // the framing are measured.
    let keypair = EnclaveKeypair::derive(&rand::random::<[u8; 32]>()).map_err(|e| e.to_string())?;
    let bundle = AttestationBundle {
        platform: Platform::AmdSevSnp,
        evidence: Vec::new(),
        collateral: Vec::new(),
        hpke_public_key: keypair.public_key().to_vec(),
    };
    let enclave_pk = keypair.public_key();
    let enclave = Arc::new(Enclave::with_bundle(keypair, bundle, 1));
    enclave.attach(miner.clone());
    enclave.set_uid(0);
    let routes = miner.routes();
    let (private_signed, _) = enclave.routes();
    let app = routes.signed.merge(private_signed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // As the miner's axon does (`agora_subnet::run_axon`).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let request = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Tell me about the rivers of Europe and the towns along them."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    });
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let mut rng = rand_chacha09::ChaCha20Rng::from_seed(rand::random::<[u8; 32]>());

    let clear = |body: Vec<u8>| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let bytes = r.bytes().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("clear request: {status}"));
            }
            answer_text(&bytes)
        }
    };
    let private = |body: Vec<u8>, rng: &mut rand_chacha09::ChaCha20Rng| {
        let http = http.clone();
        let meta = RequestMetadata {
            model: model.clone(),
            request_id: rand::random::<[u8; 16]>(),
            netuid: 1,
            uid: 0,
            issued_at: unix_now(),
        };
        let sealed = seal_request(&enclave_pk, meta, &body, rng);
        async move {
            let (sealed, opener) = sealed.map_err(|e| e.to_string())?;
            let json = serde_json::to_vec(&sealed).map_err(|e| e.to_string())?;
            let r = http
                .post(format!("http://{addr}/v1/private/chat/completions"))
                .header("content-type", "application/json")
                .body(json)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() != 200 {
                return Err(format!("private request: {}", r.status()));
            }
            let raw = r.bytes().await.map_err(|e| e.to_string())?;
            let (head, plain) = open_events(opener, &raw, 16 << 20).map_err(|e| e.to_string())?;
            if head.status != 200 {
                return Err(format!("private request: inner status {}", head.status));
            }
            answer_text(&plain)
        }
    };
    let mut clear_t = Vec::with_capacity(rounds);
    let mut private_t = Vec::with_capacity(rounds);
    let mut diffs_ms = Vec::with_capacity(rounds);
    let (mut clear_cpu, mut private_cpu) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    // One of each to warm up caches and connections.
    let expected = clear(body.clone()).await?;
    if private(body.clone(), &mut rng).await? != expected {
        return Err("the clear and private answers differ".into());
    }
    for round in 0..rounds {
        // Alternate which goes first, so that whatever one request leaves behind (caches,
        // threads still spinning down) weighs on both kinds equally.
        let mut one = |is_private: bool| {
            let body = body.clone();
            let fut = if is_private {
                futures::future::Either::Left(private(body, &mut rng))
            } else {
                futures::future::Either::Right(clear(body))
            };
            async move {
                let (t, c0) = (Instant::now(), process_cpu_ns());
                let text = fut.await?;
                let cpu = match (c0, process_cpu_ns()) {
                    (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a))),
                    _ => None,
                };
                Ok::<_, String>((text, t.elapsed(), cpu))
            }
        };
        let private_first = round % 2 == 1;
        let (first, second) = if private_first {
            let p = one(true).await?;
            (p, one(false).await?)
        } else {
            let c = one(false).await?;
            (c, one(true).await?)
        };
        let (p, c) = if private_first {
            (first, second)
        } else {
            (second, first)
        };
        if p.0 != expected || c.0 != expected {
            return Err("the clear and private answers differ".into());
        }
        clear_t.push(c.1);
        private_t.push(p.1);
        diffs_ms.push((p.1.as_secs_f64() - c.1.as_secs_f64()) * 1e3);
        if let (Some(pc), Some(cc)) = (p.2, c.2) {
            private_cpu.push(pc);
            clear_cpu.push(cc);
        }
    }
    // The private path's added work alone, on this request and its real answer: seal and
    // serialize, parse and open, frame the answer, open the frames.
    let answer = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    server.abort();
    let added_us = added_work_us(&model, &body, &answer, &mut rng)?;
    let clear_ms = median_ms(&mut clear_t);
    let private_ms = median_ms(&mut private_t);
    diffs_ms.sort_by(f64::total_cmp);
    let paired_diff_ms = diffs_ms.get(diffs_ms.len() / 2).copied().unwrap_or(0.0);
    let pct = |diff: f64, base: f64| if base > 0.0 { diff / base * 100.0 } else { 0.0 };
    let (clear_cpu_ms, private_cpu_ms) = (median_ms(&mut clear_cpu), median_ms(&mut private_cpu));
    Ok(Overhead {
        added_us,
        added_pct: pct(added_us / 1e3, clear_ms),
        wall_pct: pct(paired_diff_ms, clear_ms),
        cpu_pct: (!clear_cpu.is_empty()).then(|| pct(private_cpu_ms - clear_cpu_ms, clear_cpu_ms)),
        clear_ms,
        private_ms,
        paired_diff_ms,
        clear_cpu_ms,
        private_cpu_ms,
    })
}

fn added_work_us(
    model: &str,
    body: &[u8],
    answer: &[u8],
    rng: &mut rand_chacha09::ChaCha20Rng,
) -> BenchResult<f64> {
    use agora_tee::channel::{ResponseHead, ResponseWriter, SealedRequest};
    let keypair = EnclaveKeypair::derive(&rand::random::<[u8; 32]>()).map_err(|e| e.to_string())?;
    let pk = keypair.public_key();
    let mut guard = ReplayGuard::new(3600, 100_000);
    let head = ResponseHead {
        status: 200,
        content_type: "application/json".into(),
    };
    let iterations = 300u32;
    let mut once = |i: u32| -> BenchResult<()> {
        let err = |e: agora_tee::TeeError| e.to_string();
        let meta = RequestMetadata {
            model: model.to_owned(),
            request_id: u128::from(i).to_le_bytes(),
            netuid: 1,
            uid: 0,
            issued_at: 1_000,
        };
        let (sealed, opener) = seal_request(&pk, meta, body, rng).map_err(err)?;
        let wire = serde_json::to_vec(&sealed).map_err(|e| e.to_string())?;
        let parsed: SealedRequest = serde_json::from_slice(&wire).map_err(|e| e.to_string())?;
        let (_, sealer) = open_request(&keypair, &parsed, 1_000, &mut guard).map_err(err)?;
        let (mut writer, mut events) = ResponseWriter::start(sealer, &head).map_err(err)?;
        events.extend(writer.chunk(answer).map_err(err)?);
        events.extend(writer.finish().map_err(err)?);
        let (_, plain) = open_events(opener, &events, 16 << 20).map_err(err)?;
        if plain != answer {
            return Err("the framed answer differs".into());
        }
        Ok(())
    };
    for i in 0..20 {
        once(u32::MAX - i)?;
    }
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    for i in 0..iterations {
        once(i)?;
    }
    let wall_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    Ok(match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e3 / f64::from(iterations),
        _ => wall_us,
    })
}

fn answer_text(body: &[u8]) -> BenchResult<String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no message in the answer: {v}"))
}

/// A temporary directory removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> BenchResult<Self> {
        let dir = std::env::temp_dir().join(format!(
            "agora-bench-tee-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
