//! End to end: `agora devnet` runs the inference subnet — two miners serving a tiny model
//! (one honest, one fabricating its answers), a validator checking them against its own
//! copy, and the OpenAI-compatible gateway. Requests through the gateway succeed, streamed
//! and not; bad ones get OpenAI-shaped errors; and the fabricating miner earns nothing while
//! the honest one is paid.

use agora_client::{api::AgoraApiClient, Client};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for_file(path: &Path, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the raw body.
fn http(url: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        },
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

#[test]
fn gateway_serves_and_the_fabricating_miner_is_not_paid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["devnet", "--rpc-port", "0", "--gateway-port", "0"])
        .args([
            "--miners",
            "0",
            "--validators",
            "0",
            "--block-time",
            "200ms",
        ])
        .args([
            "--inference-miners",
            "2",
            "--inference-miner-behaviours",
            "honest,fabricate",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _devnet = Devnet(child);
    let info = wait_for_file(&data.join("devnet.json"), Duration::from_secs(120));
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(&url, "GET", "/v1/models", &key, "");
        if status == 200 && body.contains(&model) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "models never listed: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

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
