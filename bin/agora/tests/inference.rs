//! End to end: `agora devnet` runs the inference subnet — two miners serving a tiny model
//! (one honest, one fabricating its answers), a validator checking them against its own
//! copy, and the OpenAI-compatible gateway. Requests through the gateway succeed, streamed
//! and not; bad ones get OpenAI-shaped errors; and the fabricating miner earns nothing while
//! the honest one is paid.

use agora_client::{api::AgoraApiClient, Client};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod support;
use support::{http, signal, wait_for_file, wait_for_model, Devnet};

/// A devnet with only the inference subnet: two miners behaving as `behaviours` says, a
/// validator and the gateway. Returns its data directory, the process and `devnet.json`.
fn inference_devnet(behaviours: &str) -> (tempfile::TempDir, Devnet, Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let devnet = Devnet::start(
        &[
            "--rpc-port",
            "0",
            "--gateway-port",
            "0",
            "--miners",
            "0",
            "--validators",
            "0",
            "--block-time",
            "200ms",
            "--training-miners",
            "0",
            "--inference-miners",
            "2",
            "--inference-miner-behaviours",
            behaviours,
        ],
        &data,
    );
    let info = wait_for_file(&data.join("devnet.json"), Duration::from_secs(120));
    (dir, devnet, info)
}

#[test]
fn gateway_serves_and_the_fabricating_miner_is_not_paid() {
    let (_dir, _devnet, info) = inference_devnet("honest,fabricate");
    let url = info["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let key = info["api_key"].as_str().expect("api_key").to_owned();
    let model = info["model"].as_str().expect("model").to_owned();
    let netuid = info["inference_netuid"].as_u64().unwrap() as u16;
    let rpc = info["rpc_url"].as_str().unwrap().to_owned();
    let miners = info["miners"].as_array().unwrap();
    assert_eq!(miners.len(), 2);
    let (honest, cheater) = (
        miners[0]["uid"].as_u64().unwrap() as usize,
        miners[1]["uid"].as_u64().unwrap() as usize,
    );

    // The gateway learns the miners' models from their health probes.
    wait_for_model(&url, &key, &model);

    // A chat completion, whole.
    let chat = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say something about rivers."}],
        "max_tokens": 8,
        "temperature": 0,
    });
    let (status, body) = http(
        &url,
        "POST",
        "/v1/chat/completions",
        &key,
        &chat.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{v}"
    );

    // The same, streamed: chunks, usage last, then [DONE].
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, body) = http(
        &url,
        "POST",
        "/v1/chat/completions",
        &key,
        &streamed.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("chat.completion.chunk"), "{body}");
    assert!(body.contains("\"usage\""), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // Legacy completions.
    let text = json!({"model": model, "prompt": "Once upon a time", "max_tokens": 4});
    let (status, body) = http(&url, "POST", "/v1/completions", &key, &text.to_string());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("text_completion"), "{body}");

    // Bad requests get OpenAI's error shape.
    let (status, body) = http(
        &url,
        "POST",
        "/v1/chat/completions",
        "wrong",
        &chat.to_string(),
    );
    assert_eq!(status, 401, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());
    let (status, _) = http(&url, "POST", "/v1/chat/completions", &key, "{not json");
    assert_eq!(status, 400);
    let unknown = json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]});
    let (status, _) = http(
        &url,
        "POST",
        "/v1/chat/completions",
        &key,
        &unknown.to_string(),
    );
    assert_eq!(status, 404);
    let mut too_long = chat.clone();
    too_long["max_tokens"] = json!(1_000_000);
    let (status, body) = http(
        &url,
        "POST",
        "/v1/chat/completions",
        &key,
        &too_long.to_string(),
    );
    assert_eq!(status, 400, "{body}");

    // The validator catches the fabricating miner: the honest one is paid, it is not.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(&rpc).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let mg = client.rpc().metagraph(netuid).await.unwrap().unwrap();
            let (h, c) = (&mg.neurons[honest], &mg.neurons[cheater]);
            if h.incentive > 0 {
                assert_eq!(c.incentive, 0, "the fabricating miner was paid: {mg:#?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no incentive reached the honest miner in time: {mg:#?}"
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    });
}

/// Two honest miners serve; one is killed with SIGKILL while a client keeps sending
/// requests. Whole (non-streamed) requests never fail: the gateway retries the next miner
/// when one cannot be reached. A stream already flowing from the killed miner may end early
/// (its first bytes were sent), but every stream started after the kill succeeds.
#[test]
fn requests_keep_succeeding_when_a_miner_is_killed() {
    let (_dir, _devnet, info) = inference_devnet("honest,honest");
    let url = info["gateway_url"].as_str().unwrap().to_owned();
    let key = info["api_key"].as_str().unwrap().to_owned();
    let model = info["model"].as_str().unwrap().to_owned();
    let victim = info["miners"][0]["pid"]
        .as_u64()
        .expect("devnet.json lists each miner's pid") as u32;
    wait_for_model(&url, &key, &model);

    let body = |i: usize, stream: bool| {
        json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("Question number {i}?")}],
            "max_tokens": 12,
            "stream": stream,
        })
        .to_string()
    };
    // Whole requests from a client thread, before, during and after the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (url, key, stop) = (url.clone(), key.clone(), stop.clone());
        let bodies: Vec<String> = (0..10_000).map(|i| body(i, false)).collect();
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            for b in &bodies {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                outcomes.push(http(&url, "POST", "/v1/chat/completions", &key, b));
                // Paced under the key's rate limit (6,000 a minute): a fast engine answers
                // this small model's requests in about a millisecond.
                std::thread::sleep(Duration::from_millis(15));
            }
            outcomes
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    signal(victim, "KILL");
    std::thread::sleep(Duration::from_millis(500));
    // Streams started after the kill all succeed.
    for i in 0..10 {
        let (status, text) = http(&url, "POST", "/v1/chat/completions", &key, &body(i, true));
        assert_eq!(status, 200, "stream {i} after the kill: {text}");
        assert!(
            text.trim_end().ends_with("data: [DONE]"),
            "stream {i}: {text}"
        );
        assert!(!text.contains("\"error\""), "stream {i}: {text}");
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let outcomes = client.join().unwrap();
    assert!(outcomes.len() >= 10, "too few requests: {}", outcomes.len());
    for (i, (status, text)) in outcomes.iter().enumerate() {
        assert_eq!(*status, 200, "request {i} of {}: {text}", outcomes.len());
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    }
    // The killed miner's connection failures were retried on the other miner.
    let (status, metrics) = http(&url, "GET", "/metrics", &key, "");
    assert_eq!(status, 200, "{metrics}");
    let retries: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("agora_gateway_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("agora_gateway_retries_total in /metrics");
    println!(
        "{} whole requests and 10 streams succeeded across the kill; {retries} retries",
        outcomes.len()
    );
}
