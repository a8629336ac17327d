//! The guard as a tower layer, driven with `oneshot` (no sockets).

use crate::common::*;
use agora_wire::{
    protocol::{verify_response, HEADER_NONCE, HEADER_RECEIVER, HEADER_SIGNATURE},
    ConcurrencyConfig, ErrorBody, GuardConfig, RateLimit,
};
use axum::{
    body::{to_bytes, Body},
    http::{HeaderValue, Request, StatusCode},
    response::Response,
    routing::post,
    Router,
};
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Response) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    (resp.status(), resp)
}

async fn error_type(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let (status, resp) = call(app, req).await;
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let err: ErrorBody = serde_json::from_slice(&body).expect("error body");
    (status, err.error.error_type)
}

#[tokio::test]
async fn good_request_is_admitted_and_response_signed() {
    let (guard, _clock) = manual_guard(config());
    let app = app(guard);
    let body = br#"{"prompt":"hi"}"#;
    let (status, resp) = call(&app, good("/echo?x=1", body, T0)).await;
    assert_eq!(status, StatusCode::OK);
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["caller"], validator().account().to_ss58());
    assert_eq!(v["uid"], 0);
    assert_eq!(v["priority"], 1_000_000_000_000u64);
    assert_eq!(v["len"], body.len());
    verify_response(
        &headers,
        200,
        "/echo?x=1",
        &bytes,
        T0,
        &server().account(),
        &validator().account(),
    )
    .expect("response signed by the server");
}

#[tokio::test]
async fn forged_signature_is_401() {
    let app = app(manual_guard(config()).0);
    let mut req = good("/echo", b"{}", T0);
    let sig = req.headers()[&HEADER_SIGNATURE]
        .to_str()
        .unwrap()
        .to_owned();
    let flipped = format!(
        "{}{}",
        &sig[..10],
        if &sig[10..11] == "0" { "1" } else { "0" }
    ) + &sig[11..];
    req.headers_mut()
        .insert(HEADER_SIGNATURE, HeaderValue::from_str(&flipped).unwrap());
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );

    // A valid signature by another key, presented under the validator's hotkey.
    let mut req = signed(&stranger(), "/echo", b"{}", Some(&server().account()), T0);
    let real = good("/echo", b"{}", T0);
    req.headers_mut().insert(
        agora_wire::protocol::HEADER_HOTKEY,
        real.headers()[&agora_wire::protocol::HEADER_HOTKEY].clone(),
    );
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );

    // The body was changed after signing.
    let (parts, _) = good("/echo", b"{}", T0 + 1).into_parts();
    let req = Request::from_parts(parts, Body::from("{\"x\":1}"));
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
}

#[tokio::test]
async fn missing_or_garbled_headers_are_401() {
    let app = app(manual_guard(config()).0);
    let req = Request::post("/echo").body(Body::from("{}")).unwrap();
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "malformed_auth".into())
    );
    let mut req = good("/echo", b"{}", T0);
    req.headers_mut()
        .insert(HEADER_NONCE, HeaderValue::from_static("soon"));
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "malformed_auth".into())
    );
    let mut req = good("/echo", b"{}", T0);
    req.headers_mut()
        .append(HEADER_NONCE, HeaderValue::from_static("1"));
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::UNAUTHORIZED, "malformed_auth".into())
    );
}

#[tokio::test]
async fn replay_is_401() {
    let app = app(manual_guard(config()).0);
    assert_eq!(call(&app, good("/echo", b"{}", T0)).await.0, StatusCode::OK);
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0)).await,
        (StatusCode::UNAUTHORIZED, "replayed_nonce".into())
    );
}

#[tokio::test]
async fn expired_and_future_nonces_are_401() {
    let app = app(manual_guard(config()).0);
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0 - 10 * SEC - 1)).await,
        (StatusCode::UNAUTHORIZED, "expired_nonce".into())
    );
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0 + 2 * SEC + 1)).await,
        (StatusCode::UNAUTHORIZED, "future_nonce".into())
    );
    // The edges of the window are inside it.
    assert_eq!(
        call(&app, good("/echo", b"{}", T0 - 10 * SEC)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, good("/echo", b"{}", T0 + 2 * SEC)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_or_missing_receiver_is_403() {
    let app = app(manual_guard(config()).0);
    let req = signed(
        &validator(),
        "/echo",
        b"{}",
        Some(&unpermitted().account()),
        T0,
    );
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::FORBIDDEN, "wrong_receiver".into())
    );
    let req = signed(&validator(), "/echo", b"{}", None, T0);
    assert!(req.headers().get(&HEADER_RECEIVER).is_none());
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::FORBIDDEN, "wrong_receiver".into())
    );
}

#[tokio::test]
async fn metagraph_admission_is_403() {
    let app = app(manual_guard(config()).0);
    let to = server().account();
    for (who, want) in [
        (stranger(), "not_registered"),
        (unpermitted(), "no_validator_permit"),
        (poor(), "insufficient_stake"),
    ] {
        let req = signed(&who, "/echo", b"{}", Some(&to), T0);
        assert_eq!(
            error_type(&app, req).await,
            (StatusCode::FORBIDDEN, want.into())
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = app(manual_guard(config()).0);
    let big = vec![b'x'; 2048];
    // No Content-Length: caught while reading.
    assert_eq!(
        error_type(&app, good("/echo", &big, T0)).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into())
    );
    // Declared up front: refused before reading.
    let mut req = good("/echo", &big, T0 + 1);
    req.headers_mut()
        .insert("content-length", HeaderValue::from(big.len()));
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into())
    );
    // At the limit is fine.
    assert_eq!(
        call(&app, good("/echo", &[b' '; 1024], T0 + 2)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_is_429_per_hotkey_and_replays_spend_no_tokens() {
    let (guard, clock) = manual_guard(GuardConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 2,
        }),
        ..config()
    });
    let app = app(guard);
    assert_eq!(call(&app, good("/echo", b"{}", T0)).await.0, StatusCode::OK);
    // A replay is refused before the rate limiter and costs the victim nothing.
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0)).await.1,
        "replayed_nonce"
    );
    assert_eq!(
        call(&app, good("/echo", b"{}", T0 + 1)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0 + 2)).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // Another hotkey is not affected.
    let other = signed(
        &small_validator(),
        "/echo",
        b"{}",
        Some(&server().account()),
        T0,
    );
    assert_eq!(call(&app, other).await.0, StatusCode::OK);
    clock.advance(SEC);
    assert_eq!(
        call(&app, good("/echo", b"{}", T0 + SEC)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reserved_slots_admit_only_high_priority() {
    // One slot, reserved for priority >= 1e9 rao: the small validator (2,000 rao) is refused.
    let (guard, _) = manual_guard(GuardConfig {
        concurrency: Some(ConcurrencyConfig {
            max_in_flight: 1,
            reserved: 1,
            priority_floor: 1_000_000_000,
        }),
        ..config()
    });
    let app = app(guard);
    let to = server().account();
    let req = signed(&small_validator(), "/echo", b"{}", Some(&to), T0);
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::TOO_MANY_REQUESTS, "overloaded".into())
    );
    assert_eq!(call(&app, good("/echo", b"{}", T0)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn handler_errors_keep_the_shape_and_are_signed() {
    let app = app(manual_guard(config()).0);
    let (status, resp) = call(&app, good("/fail", b"{}", T0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let err: ErrorBody = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(err.error.error_type, "bad_prompt");
    verify_response(
        &headers,
        400,
        "/fail",
        &bytes,
        T0,
        &server().account(),
        &validator().account(),
    )
    .unwrap();
}

#[tokio::test]
async fn nested_router_verifies_the_original_target() {
    let (guard, _) = manual_guard(config());
    let app = Router::new().nest("/v1", crate::common::app(guard));
    assert_eq!(
        call(&app, good("/v1/echo", b"{}", T0)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn caller_extractor_without_layer_is_500() {
    let app = Router::new().route(
        "/echo",
        post(|c: agora_wire::Caller| async move { c.hotkey_ss58 }),
    );
    assert_eq!(
        error_type(&app, good("/echo", b"{}", T0)).await,
        (StatusCode::INTERNAL_SERVER_ERROR, "internal".into())
    );
}

#[tokio::test]
async fn open_policy_admits_strangers_and_unbound_requests_when_allowed() {
    let (guard, _) = manual_guard(GuardConfig {
        admission: agora_wire::AdmissionPolicy::open(),
        require_receiver: false,
        ..config()
    });
    let app = app(guard);
    let req = signed(&stranger(), "/echo", b"{}", None, T0);
    let (status, resp) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value =
        serde_json::from_slice(&to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(v["uid"], Value::Null);
    assert_eq!(v["priority"], 0);
    // Bound to someone else is still refused.
    let req = signed(&stranger(), "/echo", b"{}", Some(&poor().account()), T0 + 1);
    assert_eq!(
        error_type(&app, req).await,
        (StatusCode::FORBIDDEN, "wrong_receiver".into())
    );
}

#[tokio::test]
async fn priority_hook_is_what_handlers_see() {
    let guard = agora_wire::Guard::new(server(), std::sync::Arc::new(metagraph()), config())
        .with_clock(std::sync::Arc::new(agora_wire::ManualClock::new(T0)))
        .with_priority(std::sync::Arc::new(|_, role| {
            role.map_or(0, |r| u64::from(r.uid.0) + 7)
        }));
    let app = app(std::sync::Arc::new(guard));
    let (_, resp) = call(&app, good("/echo", b"{}", T0)).await;
    let v: Value =
        serde_json::from_slice(&to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(v["priority"], 7);
}

#[tokio::test]
async fn trusted_hotkeys_skip_admission_and_the_rate_limit() {
    // A stranger (no uid) is refused by the validator-only policy unless it is trusted; a
    // trusted hotkey is not held to the per-hotkey rate.
    let (guard, _) = manual_guard(GuardConfig {
        trusted_hotkeys: vec![stranger().account()],
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 1,
        }),
        ..config()
    });
    let app = app(guard);
    for i in 0..5 {
        let req = signed(
            &stranger(),
            "/echo",
            b"{}",
            Some(&server().account()),
            T0 + i,
        );
        assert_eq!(call(&app, req).await.0, StatusCode::OK, "request {i}");
    }
    // Still signature-checked: a forged body is refused.
    let mut req = signed(
        &stranger(),
        "/echo",
        b"{}",
        Some(&server().account()),
        T0 + 9,
    );
    *req.body_mut() = axum::body::Body::from("{\"x\":1}");
    assert_eq!(call(&app, req).await.0, StatusCode::UNAUTHORIZED);
    // Others still meet the policy.
    let req = signed(
        &unpermitted(),
        "/echo",
        b"{}",
        Some(&server().account()),
        T0,
    );
    assert_eq!(call(&app, req).await.0, StatusCode::FORBIDDEN);
}
