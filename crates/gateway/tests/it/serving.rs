//! Answers: JSON and streams, usage, models, metrics, persistence.

use crate::common::*;
use agora_gateway::{echo::EchoConfig, GatewayConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn chat_and_completions_answer_and_are_metered() {
    let m = miner("Miner1", EchoConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let usage_path = dir.path().join("usage.json");
    let gw = gateway(
        &[&m],
        vec![],
        GatewayConfig {
            usage_path: Some(usage_path.clone()),
            ..GatewayConfig::default()
        },
    )
    .await;
    let base = gw.url();

    let (status, v) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({
            "model": "echo",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello big world"}]}
            ],
            "temperature": 0.2, "seed": 7, "stop": ["\n"], "unknown_field": {"ignored": true},
        }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "hello big world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    );

    let (status, v) = post(
        &format!("{base}/v1/completions"),
        &json!({"model": "echo", "prompt": "one two three four", "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "one two");
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let (status, v) = get(&format!("{base}/v1/models"), Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "echo");
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["max_model_len"], 4096);
    let (status, v) = get(&format!("{base}/v1/models/echo"), Some(KEY)).await;
    assert_eq!((status, v["id"].as_str()), (200, Some("echo")));

    let (status, v) = get(&format!("{base}/v1/usage"), Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            v["key"].as_str(),
            v["requests"].as_u64(),
            v["prompt_tokens"].as_u64(),
            v["completion_tokens"].as_u64()
        ),
        (Some("main"), Some(2), Some(9), Some(5))
    );

    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agora_gateway_requests_total{route=\"chat\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_gateway_completion_tokens_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_gateway_miner_requests_total{miner="),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_gateway_request_duration_seconds_count"),
        "{metrics}"
    );

    // Usage is written at shutdown.
    gw.stop().await.expect("clean stop");
    let saved: Value = serde_json::from_slice(&std::fs::read(&usage_path).unwrap()).unwrap();
    assert_eq!(saved["keys"]["main"]["total_tokens"], 14);
    m.stop().await;
}

#[tokio::test]
async fn streams_end_with_done_and_carry_usage_only_when_asked() {
    let m = miner("Miner2", EchoConfig::default()).await;
    let gw = gateway(&[&m], vec![], GatewayConfig::default()).await;
    let url = format!("{}/v1/chat/completions", gw.url());

    for include_usage in [false, true] {
        let mut body = chat_body("streamed words arrive in order");
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let (status, ct, events) = post_stream(&url, &body).await;
        assert_eq!(status, 200);
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let (last, rest) = events.split_last().expect("events");
        assert!(last.is_done(), "ends with [DONE]");
        let chunks: Vec<Value> = rest
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "streamed words arrive in order");
        let usage_chunks: Vec<&Value> = chunks
            .iter()
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .collect();
        if include_usage {
            assert_eq!(usage_chunks.len(), 1);
            let u = usage_chunks[0];
            assert_eq!(u["choices"], json!([]));
            assert_eq!(u["usage"]["completion_tokens"], 5);
            assert_eq!(chunks.last(), Some(u), "the usage chunk comes last");
        } else {
            assert!(usage_chunks.is_empty(), "no usage chunk unless asked");
        }
    }
    // Both streams were metered, the first without the user seeing usage.
    let (_, v) = get(&format!("{}/v1/usage", gw.url()), Some(KEY)).await;
    assert_eq!(v["completion_tokens"], 10);

    let (status, _, events) = post_stream(
        &format!("{}/v1/completions", gw.url()),
        &json!({"model": "echo", "prompt": "a b c", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(events.last().unwrap().is_done());
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "a b c");
    gw.stop().await.unwrap();
    m.stop().await;
}
