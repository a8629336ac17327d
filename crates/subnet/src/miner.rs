//! The miner side: an axon serving one [`Protocol`] behind `agora-wire`.

use crate::{chain, metrics::NeuronMetrics, Protocol, SubnetError};
use agora_client::{Client, MetagraphCache};
use agora_primitives::{crypto::Pair, AccountId, NetUid, Uid};
use agora_wire::{AdmissionPolicy, Caller, Guard, GuardConfig, MetagraphView, NeuronRole};
use axum::{extract::State, http::StatusCode, routing::get, routing::post, Json, Router};
use std::{future::Future, net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

/// What a miner does with one request. The framework has already checked the caller's
/// signature and admission and decoded the body.
pub trait MinerHandler: Send + Sync + 'static {
    /// The protocol served.
    type P: Protocol;

    /// Answers one request, or refuses it with a reason sent back to the caller.
    fn handle(
        &self,
        caller: &Caller,
        request: <Self::P as Protocol>::Request,
    ) -> impl Future<Output = Result<<Self::P as Protocol>::Response, String>> + Send;
}

/// Where and how a miner runs.
#[derive(Debug)]
pub struct MinerConfig {
    /// Node RPC URL (`ws://` so that the metagraph follows new heads).
    pub rpc_url: String,
    /// The subnet.
    pub netuid: NetUid,
    /// Pays the registration burn.
    pub coldkey: Pair,
    /// Signs the axon, the responses, and identifies the miner.
    pub hotkey: Pair,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The IP published on chain (the listen IP when it is routable).
    pub external_ip: String,
    /// Callers must hold a validator permit (Bittensor miners usually do this; off by default
    /// so a new subnet's validators can query before their first epoch).
    pub require_validator_permit: bool,
    /// Hotkeys served whatever their standing and rate (gateways forwarding users' requests).
    pub trusted_hotkeys: Vec<AccountId>,
    /// The port published on chain, when it differs from the bound one (a port forward or
    /// relay in front of the axon).
    pub external_port: Option<u16>,
    /// Digest of the attestation bundle the axon serves, published with it (`serve_axon`)
    /// so that anyone can check the bundle a miner serves is the one on chain.
    pub attestation_digest: Option<[u8; 32]>,
}

/// [`MetagraphView`] over the client's live metagraph cache.
#[derive(Clone, Debug)]
pub struct CachedMetagraph(pub MetagraphCache);

impl MetagraphView for CachedMetagraph {
    fn neuron(&self, hotkey: &AccountId) -> Option<NeuronRole> {
        let mg = self.0.get()?;
        mg.neurons
            .iter()
            .find(|n| n.hotkey == *hotkey)
            .map(|n| NeuronRole {
                uid: Uid(n.uid),
                stake_rao: n.stake,
                validator_permit: n.validator_permit,
            })
    }
}

struct AppState<H> {
    handler: H,
    metrics: Arc<NeuronMetrics>,
}

async fn serve_one<H: MinerHandler>(
    State(state): State<Arc<AppState<H>>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<<H::P as Protocol>::Response>, (StatusCode, Json<serde_json::Value>)> {
    let bad = |status: StatusCode, kind: &str, message: String| {
        (
            status,
            Json(serde_json::json!({"error": {"type": kind, "message": message}})),
        )
    };
    let m = &state.metrics;
    let request: <H::P as Protocol>::Request = serde_json::from_slice(&body).map_err(|e| {
        NeuronMetrics::inc(&m.requests_failed);
        bad(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
    })?;
    let started = std::time::Instant::now();
    let result = state.handler.handle(&caller, request).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    m.handler_micros
        .fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(r) => {
            NeuronMetrics::inc(&m.requests_ok);
            Ok(Json(r))
        }
        Err(msg) => {
            NeuronMetrics::inc(&m.requests_failed);
            Err(bad(StatusCode::UNPROCESSABLE_ENTITY, "refused", msg))
        }
    }
}

/// Registers (if needed), publishes the axon and serves `H`'s one route until `shutdown`
/// resolves. `ready` receives the uid and bound address once the axon is on chain.
pub async fn run_miner<H: MinerHandler>(
    config: MinerConfig,
    handler: H,
    ready: impl FnOnce(u16, SocketAddr) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SubnetError> {
    let routes = move |metrics: Arc<NeuronMetrics>| AxonRoutes {
        signed: Router::new()
            .route(H::P::ROUTE, post(serve_one::<H>))
            .with_state(Arc::new(AppState { handler, metrics })),
        public: Router::new().route("/health", get(|| async { "ok" })),
    };
    run_axon(config, routes, ready, shutdown).await
}

/// The routes of an axon built by [`run_axon`].
#[derive(Debug)]
pub struct AxonRoutes {
    /// Served behind the `agora-wire` guard: every request is signed, fresh and admitted by
    /// the live metagraph, and every buffered response is signed.
    pub signed: Router,
    /// Served without checks (health probes for load balancers). `/metrics` is added.
    pub public: Router,
}

/// Registers (if needed), publishes the axon and serves the routes `build` returns until
/// `shutdown` resolves: the general form of [`run_miner`] for subnets whose miners answer
/// more than one request type, or stream. `build` gets the metrics the axon exports on
/// `/metrics` so that handlers can count what they do.
pub async fn run_axon(
    config: MinerConfig,
    build: impl FnOnce(Arc<NeuronMetrics>) -> AxonRoutes,
    ready: impl FnOnce(u16, SocketAddr) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SubnetError> {
    let client = Arc::new(Client::connect(&config.rpc_url).await?);
    let uid =
        chain::ensure_registered(&client, config.netuid, &config.coldkey, &config.hotkey).await?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| SubnetError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
    let bound = listener.local_addr().map_err(SubnetError::Serve)?;
    let (cache, _follow) = MetagraphCache::spawn(client.clone(), config.netuid, 1).await?;
    let admission = AdmissionPolicy {
        require_registered: true,
        require_validator_permit: config.require_validator_permit,
        min_stake_rao: 0,
    };
    let guard = Arc::new(Guard::new(
        config.hotkey.clone(),
        Arc::new(CachedMetagraph(cache)),
        GuardConfig {
            admission,
            trusted_hotkeys: config.trusted_hotkeys.clone(),
            ..GuardConfig::default()
        },
    ));
    let metrics = Arc::new(NeuronMetrics::default());
    let exported = metrics.clone();
    let netuid = config.netuid.0;
    let routes = build(metrics);
    let app = routes
        .signed
        .layer(guard.layer())
        .merge(routes.public)
        .route(
            "/metrics",
            get(move || async move { exported.render("miner", netuid, uid) }),
        );
    chain::serve_axon(
        &client,
        config.netuid,
        &config.hotkey,
        &config.external_ip,
        config.external_port.unwrap_or(bound.port()),
        config.attestation_digest,
    )
    .await?;
    tracing::info!(uid, %bound, hotkey = %config.hotkey.account(), "miner serving");
    ready(uid, bound);
    // Streamed answers are many small writes: without TCP_NODELAY each can wait for the
    // peer's delayed ACK (tens of milliseconds).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SubnetError::Serve)
}
