//! `agora bench gateway`: the gateway's added latency over calling a miner directly.
//!
//! Starts an [`echo`](crate::echo) miner and a gateway on loopback in this process, then
//! drives the same chat request open-loop at a fixed rate — requests leave on schedule
//! whether or not earlier ones have finished — first straight to the miner (signed with
//! `WireClient`, as the gateway itself signs) and then through the gateway (plain HTTP with
//! an API key, as a user calls it), in alternating rounds so that drift in the machine's load
//! falls on both. Prints each path's percentiles and the overhead, the difference of the
//! gateway's and the direct path's percentiles:
//!
//! ```text
//! gateway_overhead_p50_ms: 0.21 ms
//! gateway_overhead_p99_ms: 0.80 ms
//! ```

use crate::{
    discovery::{MinerSource, StaticMiner},
    echo::{self, EchoConfig},
    keys::{self, KeyFile, KeySpec, KeyStore},
    GatewayConfig, GatewayError,
};
use agora_primitives::crypto::Pair;
use agora_wire::{ClientConfig, WireClient};
use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// `agora bench gateway` settings.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayBenchArgs {
    /// Requests per second, on a fixed schedule.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Seconds of measured load per path and round.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of unmeasured load per path first (connections, caches).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Rounds of (direct, gateway).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
}

fn err(m: impl std::fmt::Display) -> GatewayError {
    GatewayError::Bench(m.to_string())
}

/// Latencies of one path and its failures.
#[derive(Debug, Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
    sent: usize,
    wall: Duration,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.sent += other.sent;
        self.wall += other.wall;
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies
            .get(i)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// Sends `count` requests made by `call`, one every `1/rate` s, each timed from when it left.
async fn open_loop<F, Fut>(rate: u32, seconds: f64, call: F) -> Samples
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let count = (f64::from(rate) * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let call = Arc::new(call);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = call().await;
            (t.elapsed(), ok)
        }));
    }
    let mut s = Samples {
        sent: count,
        ..Samples::default()
    };
    for t in tasks {
        match t.await {
            Ok((d, true)) => s.latencies.push(d),
            _ => s.errors += 1,
        }
    }
    s.wall = start.elapsed();
    s
}

/// Runs the benchmark and prints `name: value unit` lines.
pub async fn run(a: GatewayBenchArgs) -> Result<(), GatewayError> {
    if a.rate == 0
        || a.seconds.is_nan()
        || a.seconds <= 0.0
        || a.rounds == 0
        || a.warmup_seconds.is_nan()
        || a.warmup_seconds < 0.0
    {
        return Err(err("--rate, --seconds and --rounds must be positive"));
    }
    let pair = |uri: &str| Pair::from_uri(uri).map_err(|e| err(e.to_string()));
    let (miner_key, gateway_key, client_key) = (
        pair("//bench/miner")?,
        pair("//bench/gateway")?,
        pair("//bench/client")?,
    );
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let miner = echo::spawn(
        miner_key,
        EchoConfig {
            max_concurrency: 4096,
            trusted: vec![gateway_key.account(), client_key.account()],
            ..EchoConfig::default()
        },
        loopback,
    )
    .await
    .map_err(err)?;
    let api_key = keys::generate_key();
    let store = KeyStore::from_file(&KeyFile {
        keys: vec![KeySpec {
            name: "bench".into(),
            sha256: hex::encode(keys::hash_key(&api_key)),
            requests_per_minute: u32::MAX,
            burst: Some(u32::MAX),
            token_quota: None,
        }],
    })?;
    let gateway = crate::start(
        GatewayConfig::default(),
        store,
        gateway_key,
        MinerSource::Static(vec![StaticMiner {
            url: miner.url.clone(),
            hotkey: miner.hotkey,
        }]),
        loopback,
    )
    .await?;

    let body = serde_json::json!({
        "model": "echo",
        "messages": [{"role": "user", "content": "a short benchmark prompt of eight words"}],
        "max_tokens": 16,
    });
    let body = serde_json::to_vec(&body).map_err(err)?;

    let wire = WireClient::new(client_key, ClientConfig::default())?;
    let direct_url = format!("{}/v1/chat/completions", miner.url);
    let hotkey = miner.hotkey;
    let direct = {
        let body = body.clone();
        move || {
            let (wire, url, body) = (wire.clone(), direct_url.clone(), body.clone());
            async move {
                matches!(
                    wire.send(axum::http::Method::POST, &url, &hotkey, body, Some("application/json")).await,
                    Ok(r) if r.status.is_success()
                )
            }
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(err)?;
    let gateway_url = format!("{}/v1/chat/completions", gateway.url());
    let bearer = format!("Bearer {api_key}");
    let through = move || {
        let req = http
            .post(&gateway_url)
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .body(body.clone());
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    };
    let direct = Arc::new(direct);
    let through = Arc::new(through);
    let d = direct.clone();
    let g = through.clone();
    if a.warmup_seconds > 0.0 {
        open_loop(a.rate, a.warmup_seconds, move || d()).await;
        open_loop(a.rate, a.warmup_seconds, move || g()).await;
    }
    let (mut direct_all, mut gateway_all) = (Samples::default(), Samples::default());
    for _ in 0..a.rounds {
        let d = direct.clone();
        direct_all.extend(open_loop(a.rate, a.seconds, move || d()).await);
        let g = through.clone();
        gateway_all.extend(open_loop(a.rate, a.seconds, move || g()).await);
    }
    let served = miner.served.load(std::sync::atomic::Ordering::Relaxed);
    gateway.stop().await?;
    miner.stop().await;

    let (d50, d99) = (
        direct_all.percentile_ms(50.0),
        direct_all.percentile_ms(99.0),
    );
    let (g50, g99) = (
        gateway_all.percentile_ms(50.0),
        gateway_all.percentile_ms(99.0),
    );
    let rate_of = |s: &Samples| s.sent as f64 / s.wall.as_secs_f64().max(1e-9);
    println!("offered_rate: {} requests/s", a.rate);
    println!("direct_requests: {}", direct_all.sent);
    println!("direct_errors: {}", direct_all.errors);
    println!(
        "direct_achieved_rate: {:.0} requests/s",
        rate_of(&direct_all)
    );
    println!("direct_p50_ms: {d50:.3} ms");
    println!("direct_p99_ms: {d99:.3} ms");
    println!("gateway_requests: {}", gateway_all.sent);
    println!("gateway_errors: {}", gateway_all.errors);
    println!(
        "gateway_achieved_rate: {:.0} requests/s",
        rate_of(&gateway_all)
    );
    println!("gateway_p50_ms: {g50:.3} ms");
    println!("gateway_p99_ms: {g99:.3} ms");
    println!("miner_requests_served: {served}");
    println!("gateway_overhead_p50_ms: {:.3} ms", g50 - d50);
    println!("gateway_overhead_p99_ms: {:.3} ms", g99 - d99);
    Ok(())
}
