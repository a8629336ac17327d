//! The HTTP face: routes, API-key checks, rate limits, body limits, and OpenAI-shaped errors.

use crate::{
    keys::{ApiKey, KeyStore},
    limit::KeyLimiter,
    metrics::Metrics,
    miners::MinerPool,
    proxy::{self, Endpoint},
    usage::UsageBook,
    GatewayConfig,
};
use agora_openai::{Model, ModelList, OpenAiError};
use agora_wire::{Clock, WireClient};
use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc, RwLock},
    time::Instant,
};

/// Everything a request handler reads.
#[derive(Debug)]
pub struct Gateway {
    /// Settings.
    pub config: GatewayConfig,
    /// API keys.
    pub keys: KeyStore,
    /// Per-key request rates.
    pub limiter: KeyLimiter,
    /// Per-key usage.
    pub usage: UsageBook,
    /// The miners.
    pub pool: Arc<MinerPool>,
    /// Counters.
    pub metrics: Metrics,
    /// Signs requests to miners and checks their signed answers.
    pub wire: WireClient,
    /// The models served now and their context lengths, refreshed after each probe round.
    pub models: RwLock<Arc<BTreeMap<String, Option<u32>>>>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Unix seconds at start, the `created` of listed models.
    pub started_unix_s: u64,
}

impl Gateway {
    /// The models served now.
    pub fn models(&self) -> Arc<BTreeMap<String, Option<u32>>> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Recomputes the model table from the pool.
    pub fn refresh_models(&self) {
        let table = Arc::new(self.pool.models());
        *self.models.write().unwrap_or_else(|e| e.into_inner()) = table;
    }
}

/// The router: the OpenAI routes, `/v1/usage`, and the public `/health` and `/metrics`.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(one_model))
        .route("/v1/usage", get(usage))
        .route(
            "/v1/private/attestations",
            get(crate::private::attestations),
        )
        .route("/v1/private/chat/completions", post(crate::private::chat))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(gw)
}

/// An error answer: OpenAI's body, and `retry-after` on 429s that know when to retry.
pub fn error_response(e: &OpenAiError, retry_after_s: Option<u64>) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        e.to_json(),
    )
        .into_response();
    if let Some(s) = retry_after_s {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// A refusal before any miner is involved.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: OpenAiError,
    pub(crate) retry_after_s: Option<u64>,
}

impl From<OpenAiError> for Refusal {
    fn from(error: OpenAiError) -> Self {
        Refusal {
            error,
            retry_after_s: None,
        }
    }
}

/// The bearer token's key, or 401.
fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<ApiKey>, Refusal> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(OpenAiError::missing_api_key)?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(OpenAiError::missing_api_key)?;
    gw.keys
        .lookup(token)
        .ok_or_else(|| OpenAiError::invalid_api_key().into())
}

/// Authenticates, then spends one request of the key's rate and checks its quota.
pub(crate) fn admit(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<ApiKey>, Refusal> {
    let key = authenticate(gw, headers)?;
    gw.limiter
        .check(
            &key.name,
            key.requests_per_minute,
            key.burst,
            gw.clock.now_ns(),
        )
        .map_err(|retry_after_s| Refusal {
            error: OpenAiError::rate_limited(u64::from(key.requests_per_minute), retry_after_s),
            retry_after_s: Some(retry_after_s),
        })?;
    if let Some(quota) = key.token_quota {
        if gw.usage.get(&key.name).total_tokens >= quota {
            return Err(OpenAiError::quota_exceeded().into());
        }
    }
    Ok(key)
}

/// Reads the body within the limit: 413 beyond it.
pub(crate) async fn read_body(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, OpenAiError> {
    let limit = gw.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(OpenAiError::request_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(OpenAiError::request_too_large(limit))
        }
        Err(e) => Err(OpenAiError::invalid_json(format!(
            "the body could not be read ({e})"
        ))),
    }
}

/// Counts a request in flight for as long as it lives.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Gateway>);

impl InFlight {
    pub(crate) fn new(gw: &Arc<Gateway>) -> Self {
        gw.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(gw.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn chat(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    proxy::generate(gw, Endpoint::Chat, headers, body).await
}

async fn completions(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    proxy::generate(gw, Endpoint::Completions, headers, body).await
}

fn model_entry(gw: &Gateway, id: &str, max_model_len: Option<u32>) -> Model {
    Model {
        max_model_len,
        ..Model::new(id, gw.started_unix_s, "agora")
    }
}

/// Runs `f` for an admitted key and records the route's metrics.
fn simple(
    gw: &Gateway,
    route: &'static str,
    headers: &HeaderMap,
    f: impl FnOnce(&ApiKey) -> Result<Response, OpenAiError>,
) -> Response {
    let started = Instant::now();
    let response = match admit(gw, headers) {
        Ok(key) => f(&key).unwrap_or_else(|e| error_response(&e, None)),
        Err(r) => error_response(&r.error, r.retry_after_s),
    };
    gw.metrics
        .observe(route, response.status().as_u16(), started.elapsed());
    response
}

async fn list_models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    simple(&gw, "models", &headers, |_| {
        let data = gw
            .models()
            .iter()
            .map(|(id, len)| model_entry(&gw, id, *len))
            .collect();
        Ok(axum::Json(ModelList::new(data)).into_response())
    })
}

async fn one_model(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    simple(&gw, "models", &headers, |_| {
        let models = gw.models();
        let len = models
            .get(&id)
            .ok_or_else(|| OpenAiError::model_not_found(&id))?;
        Ok(axum::Json(model_entry(&gw, &id, *len)).into_response())
    })
}

async fn usage(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    simple(&gw, "usage", &headers, |key| {
        let u = gw.usage.get(&key.name);
        Ok(axum::Json(serde_json::json!({
            "object": "usage",
            "key": key.name,
            "requests": u.requests,
            "errors": u.errors,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
            "token_quota": key.token_quota,
            "requests_per_minute": key.requests_per_minute,
        }))
        .into_response())
    })
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        gw.metrics.render(&gw.pool),
    )
        .into_response()
}

async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let miners = gw.pool.snapshot();
    let healthy = miners.iter().filter(|m| m.stats().healthy).count();
    let models: Vec<String> = gw.models().keys().cloned().collect();
    let status = if healthy > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "miners": miners.len(),
            "healthy_miners": healthy,
            "models": models,
        })),
    )
        .into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    error_response(&OpenAiError::unknown_url(method.as_str(), uri.path()), None)
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    error_response(
        &OpenAiError::method_not_allowed(method.as_str(), uri.path()),
        None,
    )
}
