//! Agora's OpenAI-compatible inference gateway.
//!
//! Users call `POST /v1/chat/completions`, `POST /v1/completions` and `GET /v1/models` with an
//! API key, exactly as they would call OpenAI (the official clients work unchanged); the
//! gateway checks the key, its rate and quota, validates the request ([`agora_openai`]),
//! picks a miner serving the model by on-chain standing, observed latency and errors, and
//! current load, forwards the request signed with the gateway's hotkey (`agora-wire`,
//! btauth/1), checks the miner's signed answer, meters usage, and passes the answer (JSON, or
//! server-sent events ending in `data: [DONE]`) back.
//!
//! - [`keys`]: the keys file (SHA-256 hashes of keys, never the keys), [`limit`]: per-key
//!   token buckets (429 `rate_limit_exceeded` with `retry-after`), [`usage`]: per-key
//!   requests and tokens, written to a JSON file periodically and at shutdown and readable at
//!   `GET /v1/usage`.
//! - [`miners`]: the pool and the pure choice of a miner; [`discovery`]: a static list
//!   (`--miner URL=HOTKEY`) or the subnet's metagraph, and the `/health` + `/v1/models` probes.
//! - [`proxy`]: forwarding, with retries on another miner only before the first byte reached
//!   the user; [`server`]: routes, limits and OpenAI-shaped errors; [`metrics`]: Prometheus
//!   text on `/metrics`.
//! - [`private`]: the private path — `GET /v1/private/attestations` lists the miners whose
//!   TEE evidence verified under the subnet's policy and matches the digest on chain (and
//!   that the validators have not zeroed), and `POST /v1/private/chat/completions` relays
//!   an HPKE-sealed request to one of them and its sealed answer back, bytes in and bytes
//!   out: the gateway never holds a key. [`private_client`]: the client side, which
//!   verifies the evidence itself (and, with a node, against the chain) before it encrypts
//!   anything.
//! - [`echo`]: a deterministic loopback miner for the benchmark and tests (not an engine).
//! - [`cli`]: `agora gateway ...`; [`bench`]: `agora bench gateway`.
//!
//! Invariants: every refusal has OpenAI's body `{"error": {"message", "type", "param",
//! "code"}}`; nothing reaches a miner before the key, rate, quota, body size and request
//! checks passed; a request is never sent to a second miner once a byte of the first one's
//! answer went to the user. Miners must admit the gateway's hotkey (see
//! `agora_wire::GuardConfig::trusted_hotkeys`).

pub mod bench;
pub mod cli;
pub mod discovery;
pub mod echo;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod miners;
pub mod private;
pub mod private_client;
pub mod proxy;
pub mod server;
pub mod usage;

pub use discovery::{MinerSource, StaticMiner};
pub use keys::{ApiKey, KeyStore};
pub use server::{router, Gateway};

use agora_openai::Limits;
use agora_primitives::crypto::Pair;
use agora_wire::{ClientConfig, SystemClock, WireClient};
use axum::serve::ListenerExt;
use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Why the gateway could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The keys file is invalid.
    #[error("keys file: {0}")]
    Keys(String),
    /// The usage file is invalid.
    #[error("usage file: {0}")]
    UsageFile(String),
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("wire client: {0}")]
    Wire(#[from] agora_wire::WireError),
    /// The node could not be reached.
    #[error("node: {0}")]
    Client(#[from] agora_client::ClientError),
    /// The wallet could not be read.
    #[error("wallet: {0}")]
    Wallet(#[from] agora_wallet::WalletError),
    /// The server failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// The benchmark could not run.
    #[error("bench: {0}")]
    Bench(String),
}

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body; larger ones get 413 (default 1 MiB).
    pub max_body_bytes: usize,
    /// Limit from the request's arrival to a whole answer, or to a stream's first event
    /// (default 120 s).
    pub request_timeout: Duration,
    /// Longest pause between two chunks of a stream (default 60 s).
    pub stream_idle_timeout: Duration,
    /// Miners tried per request (default 3).
    pub max_attempts: usize,
    /// Time between probe rounds (default 10 s).
    pub probe_interval: Duration,
    /// Limit on one probe (default 3 s).
    pub probe_timeout: Duration,
    /// Time between writes of the usage file (default 10 s).
    pub usage_flush_interval: Duration,
    /// The usage file, if usage is persisted.
    pub usage_path: Option<PathBuf>,
    /// Request limits beyond OpenAI's ranges (the model's context length comes from miners).
    pub limits: Limits,
    /// The private path, when enabled: which TEE evidence the gateway accepts.
    pub private: Option<PrivateConfig>,
}

/// What a miner's TEE evidence must satisfy before the gateway relays private requests to it.
#[derive(Debug, Clone)]
pub struct PrivateConfig {
    /// The subnet whose miners serve private requests.
    pub netuid: u16,
    /// The subnet's policy (TCB statuses, debug, measurement allow-list, freshness).
    pub policy: agora_tee::Policy,
    /// The roots evidence must chain to (the vendors' in production).
    pub anchors: agora_tee::TrustAnchors,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(120),
            stream_idle_timeout: proxy::DEFAULT_STREAM_IDLE,
            max_attempts: 3,
            probe_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
            usage_flush_interval: Duration::from_secs(10),
            usage_path: None,
            limits: Limits::default(),
            private: None,
        }
    }
}

/// A running gateway (from [`start`]).
#[derive(Debug)]
pub struct GatewayHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), GatewayError>>,
}

impl GatewayHandle {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, writes usage, and waits.
    pub async fn stop(mut self) -> Result<(), GatewayError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(GatewayError::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Builds the gateway's state: keys, usage book, miner pool, signing clients.
pub fn build(
    config: GatewayConfig,
    keys: KeyStore,
    hotkey: Pair,
) -> Result<(Arc<Gateway>, WireClient), GatewayError> {
    let usage = usage::UsageBook::open(config.usage_path.clone())?;
    // Streams may run long: the client's own timeout only bounds a runaway; the proxy enforces
    // the request and idle timeouts.
    let wire = WireClient::new(
        hotkey,
        ClientConfig {
            timeout: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
    )?;
    // Probes read public answers too (`/health` may sit outside a miner's guard): a signature
    // is checked when present but not required.
    let probe = wire.with_config(ClientConfig {
        timeout: config.probe_timeout,
        connect_timeout: config.probe_timeout,
        require_signed_responses: false,
        ..ClientConfig::default()
    })?;
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let gw = Arc::new(Gateway {
        config,
        keys,
        limiter: limit::KeyLimiter::default(),
        usage,
        pool: Arc::new(miners::MinerPool::default()),
        metrics: metrics::Metrics::default(),
        wire,
        models: RwLock::new(Arc::default()),
        clock: Arc::new(SystemClock),
        started_unix_s,
    });
    Ok((gw, probe))
}

/// Serves on `listener` until `shutdown` resolves: probes miners first (so the first request
/// finds them), then keeps probing and writing usage in the background. On shutdown, waits
/// for in-flight requests and writes the usage file.
pub async fn serve(
    gw: Arc<Gateway>,
    probe_client: WireClient,
    source: MinerSource,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let background = spawn_background(gw.clone(), probe_client, source);
    // Answers leave as soon as they are written: without TCP_NODELAY a response split over
    // two writes can wait for the peer's delayed ACK (tens of milliseconds).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, router(gw.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(GatewayError::Serve);
    background.abort();
    let flushed = gw.usage.flush();
    served.and(flushed)
}

fn spawn_background(
    gw: Arc<Gateway>,
    probe_client: WireClient,
    source: MinerSource,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut probe_tick = tokio::time::interval(gw.config.probe_interval);
        let mut flush_tick = tokio::time::interval(gw.config.usage_flush_interval);
        probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = probe_tick.tick() => discovery::refresh(&gw, &source, &probe_client).await,
                _ = flush_tick.tick() => {
                    if let Err(e) = gw.usage.flush() {
                        tracing::warn!(error = %e, "could not write the usage file");
                    }
                }
            }
        }
    })
}

/// Binds `listen`, runs one probe round, and serves in a task until [`GatewayHandle::stop`].
pub async fn start(
    config: GatewayConfig,
    keys: KeyStore,
    hotkey: Pair,
    source: MinerSource,
    listen: SocketAddr,
) -> Result<GatewayHandle, GatewayError> {
    let (gw, probe_client) = build(config, keys, hotkey)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(GatewayError::Serve)?;
    discovery::refresh(&gw, &source, &probe_client).await;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        gw.clone(),
        probe_client,
        source,
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    Ok(GatewayHandle {
        addr,
        gateway: gw,
        shutdown: Some(tx),
        task,
    })
}
