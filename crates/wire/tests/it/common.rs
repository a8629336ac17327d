//! Keys, a metagraph and a router shared by the tests.

use agora_primitives::{crypto::Pair, AccountId, Uid};
use agora_wire::{
    protocol::sign_request, AdmissionPolicy, ApiError, Caller, Clock, Guard, GuardConfig,
    ManualClock, NeuronRole, StaticMetagraph,
};
use axum::{
    body::{Body, Bytes},
    http::{Request, StatusCode},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

/// 2025-07-09T16:00:00Z in ns, the SDK's fixed test nonce.
pub(crate) const T0: u64 = 1_752_076_800_000_000_000;
pub(crate) const SEC: u64 = 1_000_000_000;
pub(crate) const MIN_STAKE_RAO: u64 = 1_000;

/// A development key, derived once per test binary (derivation runs PBKDF2, too slow to repeat
/// in every property-test case).
pub(crate) fn dev(name: &str) -> Pair {
    static KEYS: OnceLock<Mutex<HashMap<String, Pair>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    keys.entry(name.to_owned())
        .or_insert_with(|| Pair::from_uri(&format!("//{name}")).expect("dev key"))
        .clone()
}

/// The server (a miner's axon).
pub(crate) fn server() -> Pair {
    dev("Bob")
}
/// A permitted validator with plenty of stake.
pub(crate) fn validator() -> Pair {
    dev("Alice")
}
/// Registered, no validator permit.
pub(crate) fn unpermitted() -> Pair {
    dev("Charlie")
}
/// Not on the metagraph.
pub(crate) fn stranger() -> Pair {
    dev("Dave")
}
/// Permitted, stake below the minimum.
pub(crate) fn poor() -> Pair {
    dev("Eve")
}
/// A second validator with little stake (priority tests).
pub(crate) fn small_validator() -> Pair {
    dev("Ferdie")
}

pub(crate) fn metagraph() -> StaticMetagraph {
    let role = |uid, stake_rao, validator_permit| NeuronRole {
        uid: Uid(uid),
        stake_rao,
        validator_permit,
    };
    let mut m = HashMap::new();
    m.insert(validator().account(), role(0, 1_000_000_000_000, true));
    m.insert(unpermitted().account(), role(1, 5_000_000, false));
    m.insert(poor().account(), role(2, 10, true));
    m.insert(small_validator().account(), role(3, 2_000, true));
    m.insert(server().account(), role(4, 0, false));
    StaticMetagraph(m)
}

pub(crate) fn config() -> GuardConfig {
    GuardConfig {
        admission: AdmissionPolicy::validators(MIN_STAKE_RAO),
        max_body_bytes: 1024,
        ..GuardConfig::default()
    }
}

pub(crate) fn guard_with(config: GuardConfig, clock: Arc<dyn Clock>) -> Arc<Guard> {
    Arc::new(Guard::new(server(), Arc::new(metagraph()), config).with_clock(clock))
}

pub(crate) fn manual_guard(config: GuardConfig) -> (Arc<Guard>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (guard_with(config, clock.clone()), clock)
}

async fn echo(caller: Caller, body: Bytes) -> Json<Value> {
    Json(json!({
        "caller": caller.hotkey_ss58,
        "uid": caller.role.map(|r| r.uid.0),
        "priority": caller.priority,
        "len": body.len(),
    }))
}

async fn fail(_caller: Caller) -> Result<Json<Value>, ApiError> {
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_prompt",
        "the prompt is empty",
    ))
}

/// `/echo` and `/fail` behind the guard.
pub(crate) fn app(guard: Arc<Guard>) -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route("/fail", post(fail))
        .layer(guard.layer())
}

/// A request to `path` signed by `sender` for `receiver` with `nonce_ns`.
pub(crate) fn signed(
    sender: &Pair,
    path: &str,
    body: &[u8],
    receiver: Option<&AccountId>,
    nonce_ns: u64,
) -> Request<Body> {
    let auth = sign_request(sender, "POST", path, body, receiver, nonce_ns);
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    auth.write_to(req.headers_mut());
    req
}

/// A good request from the validator to the server at `T0`.
pub(crate) fn good(path: &str, body: &[u8], nonce_ns: u64) -> Request<Body> {
    signed(
        &validator(),
        path,
        body,
        Some(&server().account()),
        nonce_ns,
    )
}
