//! A gateway, echo miners and an HTTP client for the tests.

use agora_gateway::{
    echo::{self, EchoConfig, EchoMiner},
    keys::{hash_key, KeyFile, KeySpec, KeyStore},
    GatewayConfig, GatewayHandle, MinerSource, StaticMiner,
};
use agora_openai::sse::{SseDecoder, SseEvent};
use agora_primitives::crypto::Pair;
use serde_json::Value;
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// A development key, derived once per test binary.
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

pub(crate) fn gateway_pair() -> Pair {
    dev("Gateway")
}

pub(crate) const KEY: &str = "sk-test-main";
pub(crate) const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

pub(crate) fn loopback() -> SocketAddr {
    LOOPBACK.into()
}

/// A key spec for `key` named `name`.
pub(crate) fn key_spec(name: &str, key: &str, rpm: u32, burst: u32, quota: Option<u64>) -> KeySpec {
    KeySpec {
        name: name.into(),
        sha256: hex::encode(hash_key(key)),
        requests_per_minute: rpm,
        burst: Some(burst),
        token_quota: quota,
    }
}

/// An echo miner admitting the gateway.
pub(crate) async fn miner(name: &str, config: EchoConfig) -> EchoMiner {
    echo::spawn(
        dev(name),
        EchoConfig {
            trusted: vec![gateway_pair().account()],
            ..config
        },
        loopback(),
    )
    .await
    .expect("echo miner")
}

/// A gateway over `miners` with the main key plus `extra` keys.
pub(crate) async fn gateway(
    miners: &[&EchoMiner],
    extra: Vec<KeySpec>,
    config: GatewayConfig,
) -> GatewayHandle {
    let mut keys = vec![key_spec("main", KEY, 6000, 1000, None)];
    keys.extend(extra);
    let store = KeyStore::from_file(&KeyFile { keys }).expect("keys");
    let source = MinerSource::Static(
        miners
            .iter()
            .map(|m| StaticMiner {
                url: m.url.clone(),
                hotkey: m.hotkey,
            })
            .collect(),
    );
    agora_gateway::start(
        GatewayConfig {
            probe_interval: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
            ..config
        },
        store,
        gateway_pair(),
        source,
        loopback(),
    )
    .await
    .expect("gateway starts")
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// POSTs raw bytes with `key`; returns the status, headers and body.
pub(crate) async fn post_raw(
    url: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// POSTs JSON with the main key; returns the status and the JSON body.
pub(crate) async fn post(url: &str, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = post_raw(url, Some(KEY), serde_json::to_vec(body).unwrap()).await;
    (status, serde_json::from_slice(&bytes).expect("json body"))
}

pub(crate) async fn get(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = http().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("json body"))
}

/// POSTs a streaming request; returns the status, content type and decoded events.
pub(crate) async fn post_stream(url: &str, body: &Value) -> (u16, String, Vec<SseEvent>) {
    let resp = http()
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("json"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut decoder = SseDecoder::new(1 << 20);
    let mut events = Vec::new();
    decoder
        .feed(&bytes, &mut events)
        .expect("valid event stream");
    (status, ct, events)
}

/// The error object of an OpenAI error body, checking it has exactly OpenAI's four fields.
pub(crate) fn error_of(body: &Value) -> &serde_json::Map<String, Value> {
    let e = body["error"].as_object().expect("an error object");
    let mut fields: Vec<&str> = e.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["code", "message", "param", "type"], "{body}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    e
}

pub(crate) fn chat_body(text: &str) -> Value {
    serde_json::json!({"model": "echo", "messages": [{"role": "user", "content": text}]})
}
