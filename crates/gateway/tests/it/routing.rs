//! Routing: failover before the first byte, never after it.

use crate::common::*;
use agora_gateway::{echo::EchoConfig, GatewayConfig};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

#[tokio::test]
async fn fails_over_to_a_working_miner_before_the_first_byte() {
    let down = miner("Down", EchoConfig::default()).await;
    let broken = miner(
        "Broken",
        EchoConfig {
            fail_status: Some(500),
            ..EchoConfig::default()
        },
    )
    .await;
    let good = miner("Good", EchoConfig::default()).await;
    let gw = gateway(&[&down, &broken, &good], vec![], GatewayConfig::default()).await;
    // All three answered the first probe; now one goes away.
    let down_url = down.url.clone();
    down.stop().await;

    let chat = format!("{}/v1/chat/completions", gw.url());
    for i in 0..12 {
        let (status, v) = post(&chat, &chat_body(&format!("request {i}"))).await;
        assert_eq!(status, 200, "request {i}: {v}");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("request {i}")
        );
        let mut body = chat_body(&format!("stream {i}"));
        body["stream"] = json!(true);
        let (status, _, events) = post_stream(&chat, &body).await;
        assert_eq!(status, 200);
        assert!(events.last().is_some_and(|e| e.is_done()), "stream {i}");
    }
    // Only the good miner can answer: every request and stream above was its.
    assert_eq!(good.served.load(Ordering::Relaxed), 24);

    // Which failing miner the requests above tried first depends on the probes' latencies.
    // With the good one gone too, one request tries all three (the default three attempts)
    // in whatever order: each failure is retried, counted against its miner, and the
    // client gets OpenAI's 503 after the last.
    let good_url = good.url.clone();
    good.stop().await;
    let (status, v) = post(&chat, &chat_body("nobody left")).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "service_unavailable", "{v}");
    let metrics = http()
        .get(format!("{}/metrics", gw.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retries: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("agora_gateway_retries_total "))
        .and_then(|v| v.parse().ok())
        .expect("retries metric");
    assert!(retries >= 2, "{metrics}");
    for url in [&down_url, &broken.url, &good_url] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "agora_gateway_miner_failures_total{{miner=\"{url}\""
            )) && !l.ends_with(" 0")),
            "no failure counted against {url}: {metrics}"
        );
    }
    gw.stop().await.unwrap();
    broken.stop().await;
}

#[tokio::test]
async fn no_miner_means_503() {
    let broken = miner(
        "Broken2",
        EchoConfig {
            fail_status: Some(503),
            ..EchoConfig::default()
        },
    )
    .await;
    let gw = gateway(&[&broken], vec![], GatewayConfig::default()).await;
    let (status, v) = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("hi"),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(error_of(&v)["type"], "server_error");
    gw.stop().await.unwrap();
    broken.stop().await;
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_byte_is_not_retried() {
    // Two miners that both cut their streams after two events: a retry would show as a
    // second request served. The pause between events lets each reach the gateway before the
    // cut (a body that fails at once may lose what it had not flushed).
    let cut = EchoConfig {
        cut_stream_after: Some(2),
        event_delay: std::time::Duration::from_millis(20),
        ..EchoConfig::default()
    };
    let a = miner("CutA", cut.clone()).await;
    let b = miner("CutB", cut).await;
    let gw = gateway(&[&a, &b], vec![], GatewayConfig::default()).await;
    let mut body = chat_body("several words that will not all arrive");
    body["stream"] = json!(true);
    let (status, _, events) =
        post_stream(&format!("{}/v1/chat/completions", gw.url()), &body).await;
    assert_eq!(status, 200);
    assert!(
        !events.iter().any(|e| e.is_done()),
        "no [DONE] after a failure"
    );
    let (last, first) = events.split_last().expect("events");
    assert_eq!(first.len(), 2, "the two events sent before the cut");
    let err: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error_of(&err)["type"], "server_error");
    let served = a.served.load(Ordering::Relaxed) + b.served.load(Ordering::Relaxed);
    assert_eq!(served, 1);
    gw.stop().await.unwrap();
    a.stop().await;
    b.stop().await;
}
