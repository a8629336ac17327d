//! Refusals: each with OpenAI's status, body shape, type and code.

use crate::common::*;
use agora_gateway::{echo::EchoConfig, GatewayConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let m = miner("Miner3", EchoConfig::default()).await;
    let gw = gateway(
        &[&m],
        vec![],
        GatewayConfig {
            max_body_bytes: 4096,
            ..GatewayConfig::default()
        },
    )
    .await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let body = serde_json::to_vec(&chat_body("hi")).unwrap();

    let check =
        |status: u16, got: (u16, Vec<u8>), ty: &str, code: Option<&str>, param: Option<&str>| {
            assert_eq!(got.0, status, "{}", String::from_utf8_lossy(&got.1));
            let v: Value = serde_json::from_slice(&got.1).expect("json error body");
            let e = error_of(&v);
            assert_eq!(e["type"], ty, "{v}");
            assert_eq!(e["code"].as_str(), code, "{v}");
            assert_eq!(e["param"].as_str(), param, "{v}");
        };
    let send = |key: Option<&'static str>, body: Vec<u8>| {
        let chat = chat.clone();
        async move {
            let (s, _, b) = post_raw(&chat, key, body).await;
            (s, b)
        }
    };

    // Keys.
    check(
        401,
        send(None, body.clone()).await,
        "invalid_request_error",
        None,
        None,
    );
    check(
        401,
        send(Some("sk-wrong"), body.clone()).await,
        "invalid_request_error",
        Some("invalid_api_key"),
        None,
    );
    let (s, v) = get(&format!("{}/v1/models", gw.url()), Some("sk-wrong")).await;
    assert_eq!(s, 401);
    error_of(&v);

    // Bodies.
    check(
        400,
        send(Some(KEY), b"{\"model\": \"echo\", \"messages\": [".to_vec()).await,
        "invalid_request_error",
        None,
        None,
    );
    check(
        400,
        send(Some(KEY), b"[1, 2]".to_vec()).await,
        "invalid_request_error",
        None,
        None,
    );
    let big = serde_json::to_vec(&chat_body(&"x".repeat(5000))).unwrap();
    check(
        413,
        send(Some(KEY), big).await,
        "invalid_request_error",
        Some("request_too_large"),
        None,
    );

    // Models and limits learned from the miner.
    let mut unknown = chat_body("hi");
    unknown["model"] = json!("no-such-model");
    check(
        404,
        send(Some(KEY), serde_json::to_vec(&unknown).unwrap()).await,
        "invalid_request_error",
        Some("model_not_found"),
        Some("model"),
    );
    let mut too_many = chat_body("hi");
    too_many["max_tokens"] = json!(5000);
    check(
        400,
        send(Some(KEY), serde_json::to_vec(&too_many).unwrap()).await,
        "invalid_request_error",
        Some("context_length_exceeded"),
        Some("max_tokens"),
    );

    // Parameters.
    for (field, value, param, code) in [
        (
            "temperature",
            json!(3),
            "temperature",
            "decimal_above_max_value",
        ),
        ("n", json!(2), "n", "unsupported_value"),
        (
            "stop",
            json!(["a", "b", "c", "d", "e"]),
            "stop",
            "array_above_max_length",
        ),
        ("top_logprobs", json!(5), "top_logprobs", "invalid_value"),
    ] {
        let mut b = chat_body("hi");
        b[field] = value;
        check(
            400,
            send(Some(KEY), serde_json::to_vec(&b).unwrap()).await,
            "invalid_request_error",
            Some(code),
            Some(param),
        );
    }
    let bad_role = json!({"model": "echo", "messages": [{"role": "wizard", "content": "hi"}]});
    check(
        400,
        send(Some(KEY), serde_json::to_vec(&bad_role).unwrap()).await,
        "invalid_request_error",
        Some("invalid_value"),
        Some("messages.[0].role"),
    );

    // Routes.
    let (s, v) = get(&format!("{}/v1/engines", gw.url()), Some(KEY)).await;
    assert_eq!(s, 404);
    assert_eq!(error_of(&v)["type"], "invalid_request_error");

    // Nothing above reached the miner.
    assert_eq!(m.served.load(std::sync::atomic::Ordering::Relaxed), 0);
    gw.stop().await.unwrap();
    m.stop().await;
}

#[tokio::test]
async fn rate_limits_and_quotas_answer_429() {
    let m = miner("Miner4", EchoConfig::default()).await;
    let gw = gateway(
        &[&m],
        vec![
            key_spec("slow", "sk-slow", 60, 2, None),
            key_spec("small", "sk-small", 6000, 100, Some(5)),
        ],
        GatewayConfig::default(),
    )
    .await;
    let chat = format!("{}/v1/chat/completions", gw.url());
    let body = serde_json::to_vec(&chat_body("three little words")).unwrap();

    for _ in 0..2 {
        assert_eq!(post_raw(&chat, Some("sk-slow"), body.clone()).await.0, 200);
    }
    let (status, headers, bytes) = post_raw(&chat, Some("sk-slow"), body.clone()).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_of(&v)["type"], "requests");
    assert_eq!(error_of(&v)["code"], "rate_limit_exceeded");
    // Other keys are not affected.
    assert_eq!(post_raw(&chat, Some(KEY), body.clone()).await.0, 200);

    // The quota (5 tokens) is spent by the first answer (6 tokens); the next is refused.
    assert_eq!(post_raw(&chat, Some("sk-small"), body.clone()).await.0, 200);
    let (status, _, bytes) = post_raw(&chat, Some("sk-small"), body.clone()).await;
    assert_eq!(status, 429);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_of(&v)["code"], "insufficient_quota");
    gw.stop().await.unwrap();
    m.stop().await;
}
