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

/// An SSE body sent in the given pieces, a little apart so they travel separately.
fn sse_body(pieces: &'static [&'static str]) -> axum::body::Body {
    let stream = futures::stream::unfold(0usize, move |i| async move {
        let piece = pieces.get(i)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((Ok::<_, std::io::Error>(*piece), i + 1))
    });
    axum::body::Body::from_stream(stream)
}

fn sse_response(body: axum::body::Body) -> axum::response::Response {
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .expect("response")
}

/// Data that looks like the trailer's start inside a line, and a piece boundary inside it.
const PIECES: &[&str] = &[
    "data: {\"t\":\":btauth/1 not a trailer\"}\n\n",
    "data: {\"t\":2}\n\n:bt",
    "auth-comment\n\n",
    "data: [DONE]\n\n",
];

async fn read_stream(reply: agora_wire::WireReply) -> (Vec<u8>, Result<(), WireError>) {
    let agora_wire::WireReply::Stream(mut s) = reply else {
        panic!("expected a stream");
    };
    let mut got = Vec::new();
    loop {
        match s.next_chunk().await {
            Ok(Some(c)) => {
                assert!(!c.is_empty());
                got.extend_from_slice(&c)
            }
            Ok(None) => return (got, Ok(())),
            Err(e) => return (got, Err(e)),
        }
    }
}

#[tokio::test]
async fn event_streams_pass_through_and_are_signed_by_a_trailer() {
    let guard = guard_with(config(), Arc::new(SystemClock));
    let app = Router::new()
        .route("/stream", post(|| async { sse_response(sse_body(PIECES)) }))
        .layer(guard.layer());
    let base = serve(app).await;
    let alice = client(validator(), Duration::from_secs(5));
    let reply = alice
        .send_streaming(
            http::Method::POST,
            &format!("{base}/stream"),
            &server().account(),
            b"{}".to_vec(),
            Some("application/json"),
        )
        .await
        .expect("stream starts");
    let (got, end) = read_stream(reply).await;
    end.expect("trailer verifies");
    assert_eq!(String::from_utf8(got).unwrap(), PIECES.concat());

    // A plain JSON answer on the same call comes back buffered and checked.
    let reply = alice
        .send_streaming(
            http::Method::POST,
            &format!("{base}/missing"),
            &server().account(),
            b"{}".to_vec(),
            None,
        )
        .await
        .expect("answer");
    assert!(matches!(reply, agora_wire::WireReply::Buffered(r) if r.status == 404));
}

#[tokio::test]
async fn client_refuses_unmarked_or_missigned_streams() {
    let plain = Router::new()
        .route(
            "/unmarked",
            post(|| async { sse_response(sse_body(PIECES)) }),
        )
        .route(
            "/forged",
            post(|| async {
                // Marked as signed, but the trailer is signed by someone else.
                let body = PIECES.concat();
                let trailer = agora_wire::protocol::stream_trailer(
                    &stranger(),
                    200,
                    "/forged",
                    &agora_primitives::hashing::sha256(body.as_bytes()),
                    1,
                    &validator().account().to_ss58(),
                );
                let mut full = body.into_bytes();
                full.extend_from_slice(&trailer);
                let mut r = sse_response(axum::body::Body::from(full));
                r.headers_mut().insert(
                    agora_wire::protocol::HEADER_STREAM_SIGNATURE,
                    http::HeaderValue::from_static("trailer"),
                );
                r
            }),
        )
        .route(
            "/truncated",
            post(|| async {
                let mut r = sse_response(sse_body(PIECES));
                r.headers_mut().insert(
                    agora_wire::protocol::HEADER_STREAM_SIGNATURE,
                    http::HeaderValue::from_static("trailer"),
                );
                r
            }),
        );
    let base = serve(plain).await;
    let alice = client(validator(), Duration::from_secs(5));
    let send = |path: &'static str| {
        let alice = alice.clone();
        let url = format!("{base}/{path}");
        async move {
            alice
                .send_streaming(
                    http::Method::POST,
                    &url,
                    &server().account(),
                    b"{}".to_vec(),
                    None,
                )
                .await
        }
    };
    assert!(matches!(
        send("unmarked").await,
        Err(WireError::ResponseSignature(_))
    ));
    for path in ["forged", "truncated"] {
        let (got, end) = read_stream(send(path).await.expect("starts")).await;
        assert_eq!(String::from_utf8(got).unwrap(), PIECES.concat(), "{path}");
        assert!(
            matches!(end, Err(WireError::ResponseSignature(_))),
            "{path}: {end:?}"
        );
    }
}
