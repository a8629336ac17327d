//! Forwarding a generation request to a miner: validation, the choice of miner, retries on
//! another miner while nothing has reached the user, and metering of the answer.
//!
//! Retry rule: an attempt that fails to connect, times out, or gets a 5xx, 429, 401 or 403
//! (the miner is failing, busy, or does not admit this gateway) before the first byte of the
//! answer is retried on the next best miner, up to `max_attempts` miners and within the
//! request timeout. For streams the first chunk is read from the miner before the response
//! head goes to the user, so a stream that dies before its first chunk is retried too. Once a
//! byte went out nothing is retried: a stream that fails later ends with an error event and no
//! `data: [DONE]`.

use crate::{
    miners::Miner,
    server::{admit, error_response, read_body, Gateway, InFlight},
};
use agora_openai::{
    sse::{self, SseDecoder},
    ChatCompletionRequest, CompletionRequest, Limits, OpenAiError, StreamOptions, Usage,
};
use agora_wire::{WireError, WireReply, WireStream};
use axum::{
    body::{Body, Bytes},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::Response,
};
use serde::{de::IgnoredAny, Deserialize};
use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};
use tokio::sync::mpsc;

/// Largest single event accepted from a miner's stream.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Events buffered between the miner and a slow user; beyond it the miner is read no faster
/// than the user reads.
const STREAM_BUFFER_EVENTS: usize = 64;

/// Which generation route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        }
    }
}

/// A request ready to forward.
#[derive(Debug)]
struct Prepared {
    model: String,
    max_tokens: Option<u32>,
    stream: bool,
    /// The user asked for the final usage chunk (the miner is always asked, for metering).
    include_usage: bool,
    body: Vec<u8>,
}

/// What the gateway reads from an answer or a chunk: the usage, whether it has choices, and
/// whether it is an error.
#[derive(Debug, Deserialize)]
struct Peek {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

fn prepare(gw: &Gateway, endpoint: Endpoint, bytes: &[u8]) -> Result<Prepared, OpenAiError> {
    let models = gw.models();
    let lookup = |model: &str| -> Result<Limits, OpenAiError> {
        match models.get(model) {
            Some(len) => Ok(Limits {
                max_model_len: *len,
                ..gw.config.limits
            }),
            // An empty model is a validation error, reported as such below.
            None if model.is_empty() => Ok(gw.config.limits),
            None => Err(OpenAiError::model_not_found(model)),
        }
    };
    let usage_on = || {
        Some(StreamOptions {
            include_usage: Some(true),
        })
    };
    match endpoint {
        Endpoint::Chat => {
            let mut req: ChatCompletionRequest =
                serde_json::from_slice(bytes).map_err(OpenAiError::invalid_json)?;
            let v = req.validate(&lookup(&req.model)?)?;
            if v.stream {
                req.stream_options = usage_on();
            }
            Ok(Prepared {
                body: serde_json::to_vec(&req).map_err(|e| OpenAiError::internal(e.to_string()))?,
                model: v.model,
                max_tokens: v.max_tokens,
                stream: v.stream,
                include_usage: v.include_usage,
            })
        }
        Endpoint::Completions => {
            let mut req: CompletionRequest =
                serde_json::from_slice(bytes).map_err(OpenAiError::invalid_json)?;
            let v = req.validate(&lookup(&req.model)?)?;
            if v.stream {
                req.stream_options = usage_on();
            }
            Ok(Prepared {
                body: serde_json::to_vec(&req).map_err(|e| OpenAiError::internal(e.to_string()))?,
                model: v.model,
                max_tokens: Some(v.max_tokens),
                stream: v.stream,
                include_usage: v.include_usage,
            })
        }
    }
}

/// Serves one generation request from head to answer.
pub(crate) async fn generate(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let in_flight = InFlight::new(&gw);
    let key = match admit(&gw, &headers) {
        Ok(k) => k,
        Err(r) => {
            let resp = error_response(&r.error, r.retry_after_s);
            gw.metrics
                .observe(endpoint.route(), resp.status().as_u16(), started.elapsed());
            return resp;
        }
    };
    let prepared = match read_body(&gw, &headers, body)
        .await
        .and_then(|b| prepare(&gw, endpoint, &b))
    {
        Ok(p) => p,
        Err(e) => {
            gw.usage.record(&key.name, false, None);
            gw.metrics
                .observe(endpoint.route(), e.status, started.elapsed());
            return error_response(&e, None);
        }
    };
    let deadline = started + gw.config.request_timeout;
    let outcome = forward(&gw, endpoint, &prepared, deadline).await;
    let response = match outcome {
        Ok(Answer::Whole(bytes)) => {
            let usage = serde_json::from_slice::<Peek>(&bytes)
                .ok()
                .and_then(|p| p.usage);
            meter(&gw, &key.name, true, usage.as_ref());
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(Body::from(bytes))
                .unwrap_or_else(|_| error_response(&OpenAiError::internal("response"), None))
        }
        Ok(Answer::Stream {
            stream,
            first,
            miner,
        }) => {
            let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER_EVENTS);
            tokio::spawn(pump(
                gw.clone(),
                key.name.clone(),
                prepared.include_usage,
                stream,
                first,
                miner,
                tx,
                in_flight,
            ));
            let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            }));
            Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(sse::CONTENT_TYPE),
                )
                .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
                .body(body)
                .unwrap_or_else(|_| error_response(&OpenAiError::internal("response"), None))
        }
        Err(e) => {
            meter(&gw, &key.name, false, None);
            error_response(&e, None)
        }
    };
    gw.metrics.observe(
        endpoint.route(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn meter(gw: &Gateway, key: &str, ok: bool, usage: Option<&Usage>) {
    gw.usage.record(key, ok, usage);
    if let Some(u) = usage {
        gw.metrics
            .prompt_tokens
            .fetch_add(u.prompt_tokens, Ordering::Relaxed);
        gw.metrics
            .completion_tokens
            .fetch_add(u.completion_tokens, Ordering::Relaxed);
    }
}

/// A successful attempt.
enum Answer {
    /// A whole JSON answer.
    Whole(Bytes),
    /// A stream whose first chunk arrived.
    Stream {
        stream: Box<WireStream>,
        first: Bytes,
        miner: MinerSlot,
    },
}

/// A miner's in-flight count held for one attempt.
#[derive(Debug)]
struct MinerSlot(Arc<Miner>);

impl MinerSlot {
    fn take(m: Arc<Miner>) -> Self {
        m.in_flight.fetch_add(1, Ordering::Relaxed);
        m.requests.fetch_add(1, Ordering::Relaxed);
        MinerSlot(m)
    }
}

impl Drop for MinerSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an attempt failed, and whether another miner may be tried.
enum Failure {
    /// The miner failed; try another.
    Retry(OpenAiError),
    /// The miner refused the request itself (a 4xx about the request): tell the user.
    Final(OpenAiError),
}

fn failure_from_status(status: StatusCode, body: &[u8]) -> Failure {
    let e = OpenAiError::from_body(status.as_u16(), body);
    match status.as_u16() {
        401 | 403 | 429 | 500..=599 => Failure::Retry(OpenAiError::unavailable(format!(
            "a miner failed ({}: {})",
            status.as_u16(),
            e.message
        ))),
        _ => Failure::Final(e),
    }
}

async fn attempt(
    gw: &Gateway,
    endpoint: Endpoint,
    p: &Prepared,
    miner: &Arc<Miner>,
) -> Result<Answer, Failure> {
    let url = format!("{}{}", miner.url, endpoint.path());
    let slot = MinerSlot::take(miner.clone());
    let retry =
        |e: WireError| Failure::Retry(OpenAiError::unavailable(format!("a miner failed: {e}")));
    if !p.stream {
        let r = gw
            .wire
            .send(
                Method::POST,
                &url,
                &miner.hotkey,
                p.body.clone(),
                Some("application/json"),
            )
            .await
            .map_err(retry)?;
        drop(slot);
        return if r.status.is_success() {
            Ok(Answer::Whole(r.body))
        } else {
            Err(failure_from_status(r.status, &r.body))
        };
    }
    match gw
        .wire
        .send_streaming(
            Method::POST,
            &url,
            &miner.hotkey,
            p.body.clone(),
            Some("application/json"),
        )
        .await
        .map_err(retry)?
    {
        WireReply::Buffered(r) if r.status.is_success() => Err(Failure::Retry(
            OpenAiError::unavailable("a miner answered a stream request without a stream"),
        )),
        WireReply::Buffered(r) => Err(failure_from_status(r.status, &r.body)),
        WireReply::Stream(mut stream) => match stream.next_chunk().await.map_err(retry)? {
            Some(first) => Ok(Answer::Stream {
                stream,
                first,
                miner: slot,
            }),
            None => Err(Failure::Retry(OpenAiError::unavailable(
                "a miner's stream ended before its first event",
            ))),
        },
    }
}

/// Tries miners in order of preference until one answers.
async fn forward(
    gw: &Gateway,
    endpoint: Endpoint,
    p: &Prepared,
    deadline: Instant,
) -> Result<Answer, OpenAiError> {
    let mut tried: Vec<Arc<Miner>> = Vec::new();
    let mut last = OpenAiError::unavailable(format!(
        "No miner is serving the model `{}` right now; try again shortly.",
        p.model
    ));
    for n in 0..gw.config.max_attempts {
        let now_ns = gw.clock.now_ns();
        let Some(miner) = gw.pool.choose(&p.model, p.max_tokens, &tried, now_ns) else {
            break;
        };
        tried.push(miner.clone());
        if n > 0 {
            gw.metrics.retries.fetch_add(1, Ordering::Relaxed);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_error(gw));
        }
        let t0 = Instant::now();
        match tokio::time::timeout(left, attempt(gw, endpoint, p, &miner)).await {
            Ok(Ok(answer)) => {
                miner.succeeded(t0.elapsed().as_secs_f64() * 1e3);
                return Ok(answer);
            }
            Ok(Err(Failure::Final(e))) => {
                // The miner worked; the request was at fault.
                miner.succeeded(t0.elapsed().as_secs_f64() * 1e3);
                return Err(e);
            }
            Ok(Err(Failure::Retry(e))) => {
                tracing::debug!(miner = %miner.url, error = %e.message, "attempt failed");
                miner.failed(gw.clock.now_ns());
                last = e;
            }
            Err(_) => {
                tracing::debug!(miner = %miner.url, "attempt timed out");
                miner.failed(gw.clock.now_ns());
                return Err(timeout_error(gw));
            }
        }
    }
    Err(last)
}

fn timeout_error(gw: &Gateway) -> OpenAiError {
    OpenAiError::timeout(u64::try_from(gw.config.request_timeout.as_millis()).unwrap_or(u64::MAX))
}

/// Moves a committed stream from the miner to the user, event by event: drops the usage
/// chunk the user did not ask for, meters usage, holds `[DONE]` until the miner's signature
/// checked, and ends with an error event when the miner fails midway.
#[allow(clippy::too_many_arguments)]
async fn pump(
    gw: Arc<Gateway>,
    key: String,
    include_usage: bool,
    mut stream: Box<WireStream>,
    first: Bytes,
    miner: MinerSlot,
    tx: mpsc::Sender<Bytes>,
    _in_flight: InFlight,
) {
    let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
    let mut events = Vec::new();
    let mut usage: Option<Usage> = None;
    let mut saw_done = false;
    let mut chunk = Some(first);
    let idle = gw.config.stream_idle_timeout;
    let failure: Option<OpenAiError> = loop {
        if let Some(c) = chunk.take() {
            if let Err(e) = decoder.feed(&c, &mut events) {
                break Some(OpenAiError::unavailable(format!(
                    "the miner's stream is malformed: {e}"
                )));
            }
            let mut user_gone = false;
            for ev in events.drain(..) {
                if ev.is_done() {
                    saw_done = true;
                    continue;
                }
                let peek = serde_json::from_str::<Peek>(&ev.data).ok();
                if let Some(u) = peek.as_ref().and_then(|p| p.usage) {
                    usage = Some(u);
                }
                let usage_only = peek.as_ref().is_some_and(|p| {
                    p.choices.is_empty() && p.usage.is_some() && p.error.is_none()
                });
                if usage_only && !include_usage {
                    continue;
                }
                if tx
                    .send(Bytes::from(sse::encode_data(&ev.data)))
                    .await
                    .is_err()
                {
                    user_gone = true;
                    break;
                }
            }
            if user_gone {
                // Dropping the stream closes the connection, which stops the miner.
                meter(&gw, &key, true, usage.as_ref());
                return;
            }
        }
        match tokio::time::timeout(idle, stream.next_chunk()).await {
            Ok(Ok(Some(c))) => chunk = Some(c),
            Ok(Ok(None)) if saw_done => break None,
            Ok(Ok(None)) => {
                break Some(OpenAiError::unavailable(
                    "the miner's stream ended without [DONE]",
                ))
            }
            Ok(Err(e)) => {
                if matches!(e, WireError::ResponseSignature(_)) {
                    gw.metrics.unsigned_streams.fetch_add(1, Ordering::Relaxed);
                }
                break Some(OpenAiError::unavailable(format!(
                    "the miner's stream failed: {e}"
                )));
            }
            Err(_) => {
                break Some(OpenAiError::timeout(
                    u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                ))
            }
        }
    };
    match failure {
        None => {
            let _ = tx.send(Bytes::from_static(sse::DONE_EVENT)).await;
            meter(&gw, &key, true, usage.as_ref());
        }
        Some(e) => {
            tracing::debug!(miner = %miner.0.url, error = %e.message, "stream failed after its first byte");
            miner.0.failed(gw.clock.now_ns());
            let body = String::from_utf8_lossy(&e.to_json()).into_owned();
            let _ = tx.send(Bytes::from(sse::encode_data(&body))).await;
            meter(&gw, &key, false, usage.as_ref());
        }
    }
    drop(miner);
}

/// The idle-timeout default for streams: how long a miner may pause between chunks.
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(60);
