//! The client against a real server on 127.0.0.1 with an ephemeral port.

use crate::common::*;
use agora_wire::{ClientConfig, SystemClock, WireClient, WireError};
use axum::{http::HeaderMap, routing::post, Json, Router};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// Serves `app` on 127.0.0.1:0; the task ends with the test's runtime.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn client(pair: agora_primitives::crypto::Pair, timeout: Duration) -> WireClient {
    WireClient::new(
        pair,
        ClientConfig {
            timeout,
            connect_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
    )
    .expect("client")
}

#[tokio::test]
async fn client_and_server_over_a_socket() {
    let base = serve(app(guard_with(config(), Arc::new(SystemClock)))).await;
    let bob = server().account();
    let alice = client(validator(), Duration::from_secs(5));

    let v: Value = alice
        .post_json(&format!("{base}/echo?q=1"), &bob, &json!({"prompt": "hi"}))
        .await
        .expect("admitted, signed response verified");
    assert_eq!(v["caller"], validator().account().to_ss58());

    // Back-to-back requests get distinct nonces.
    for _ in 0..3 {
        let _: Value = alice
            .post_json(&format!("{base}/echo"), &bob, &json!({}))
            .await
            .unwrap();
    }

    // Handler errors arrive signed, as a typed status error.
    match alice
        .post_json::<_, Value>(&format!("{base}/fail"), &bob, &json!({}))
        .await
    {
        Err(WireError::Status {
            status: 400,
            error_type,
            signed: true,
            ..
        }) => assert_eq!(error_type, "bad_prompt"),
        other => panic!("unexpected {other:?}"),
    }

    // Guard refusals arrive unsigned, with their stable type.
    let dave = client(stranger(), Duration::from_secs(5));
    match dave
        .post_json::<_, Value>(&format!("{base}/echo"), &bob, &json!({}))
        .await
    {
        Err(WireError::Status {
            status: 403,
            error_type,
            signed: false,
            ..
        }) => assert_eq!(error_type, "not_registered"),
        other => panic!("unexpected {other:?}"),
    }

    // Addressed to the wrong hotkey: the server refuses.
    match alice
        .post_json::<_, Value>(
            &format!("{base}/echo"),
            &unpermitted().account(),
            &json!({}),
        )
        .await
    {
        Err(WireError::Status {
            status: 403,
            error_type,
            ..
        }) => {
            assert_eq!(error_type, "wrong_receiver")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn client_refuses_unsigned_or_missigned_responses() {
    let plain = Router::new()
        .route("/unsigned", post(|| async { Json(json!({"ok": true})) }))
        .route(
            "/forged",
            post(|| async {
                let mut h = HeaderMap::new();
                let auth = agora_wire::protocol::sign_response(
                    &stranger(),
                    200,
                    "/forged",
                    b"{}",
                    1,
                    &validator().account().to_ss58(),
                );
                auth.write_to(&mut h);
                (h, "{}")
            }),
        );
    let base = serve(plain).await;
    let alice = client(validator(), Duration::from_secs(5));
    for path in ["unsigned", "forged"] {
        let r = alice
            .post_json::<_, Value>(&format!("{base}/{path}"), &server().account(), &json!({}))
            .await;
        assert!(
            matches!(r, Err(WireError::ResponseSignature(_))),
            "{path}: {r:?}"
        );
    }
}

#[tokio::test]
async fn client_times_out() {
    let slow = Router::new().route(
        "/slow",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let base = serve(slow).await;
    let alice = client(validator(), Duration::from_millis(200));
    let r = alice
        .post_json::<_, Value>(&format!("{base}/slow"), &server().account(), &json!({}))
        .await;
    assert!(matches!(r, Err(WireError::Timeout)), "{r:?}");
}
