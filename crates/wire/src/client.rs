//! The client side: [`WireClient`] signs requests with a hotkey and checks signed responses.

use crate::{
    clock::{Clock, SystemClock},
    error::{ErrorBody, WireError},
    protocol::{sign_request, verify_response, HEADER_SIGNATURE},
};
use agora_primitives::{crypto::Pair, AccountId};
use axum::body::Bytes;
use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

/// Settings for a [`WireClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Whole-request timeout, connect to last byte (default 30 s).
    pub timeout: Duration,
    /// Connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Largest response body read (default 16 MiB).
    pub max_response_bytes: usize,
    /// Refuse successful responses that are not signed by the receiver (default true).
    pub require_signed_responses: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 16 << 20,
            require_signed_responses: true,
        }
    }
}

/// A verified response.
#[derive(Debug, Clone)]
pub struct WireResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// Whether the receiver's signature was present and valid. Always true for a success when
    /// signed responses are required; an unsigned error answer is reported with `false`.
    pub signed: bool,
}

/// An HTTP client (reqwest with rustls, no native TLS) that signs every request with its hotkey
/// for a named receiver and checks that the receiver signed the answer.
#[derive(Debug, Clone)]
pub struct WireClient {
    http: reqwest::Client,
    pair: Arc<Pair>,
    clock: Arc<dyn Clock>,
    last_nonce_ns: Arc<AtomicU64>,
    config: ClientConfig,
}

impl WireClient {
    /// A client signing with `pair` (a hotkey).
    pub fn new(pair: Pair, config: ClientConfig) -> Result<Self, WireError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| WireError::Setup(e.to_string()))?;
        Ok(WireClient {
            http,
            pair: Arc::new(pair),
            clock: Arc::new(SystemClock),
            last_nonce_ns: Arc::new(AtomicU64::new(0)),
            config,
        })
    }

    /// Replaces the clock the nonces come from.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The signing hotkey.
    pub fn hotkey(&self) -> AccountId {
        self.pair.account()
    }

    /// The clock reading, bumped past the last nonce so two requests in one nanosecond (or
    /// after the clock steps back) never share a nonce.
    fn next_nonce(&self) -> u64 {
        let now = self.clock.now_ns();
        let prev = self
            .last_nonce_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or(now);
        now.max(prev.saturating_add(1))
    }

    /// Sends `body` to `url` signed for `receiver`, and checks the response signature. An error
    /// status is returned as a response, not an error; see [`WireClient::post_json`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        receiver: &AccountId,
        body: Vec<u8>,
        content_type: Option<&'static str>,
    ) -> Result<WireResponse, WireError> {
        let url = reqwest::Url::parse(url).map_err(|e| WireError::Setup(format!("url: {e}")))?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let nonce_ns = self.next_nonce();
        let auth = sign_request(
            &self.pair,
            method.as_str(),
            &target,
            &body,
            Some(receiver),
            nonce_ns,
        );
        let mut headers = HeaderMap::new();
        auth.write_to(&mut headers);
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let mut resp = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;

        let limit = self.config.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(WireError::ResponseTooLarge { limit_bytes: limit });
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if buf.len().saturating_add(chunk.len()) > limit {
                return Err(WireError::ResponseTooLarge { limit_bytes: limit });
            }
            buf.extend_from_slice(&chunk);
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let has_signature = headers.contains_key(HEADER_SIGNATURE);
        let signed = if has_signature {
            verify_response(
                &headers,
                status.as_u16(),
                &target,
                &buf,
                nonce_ns,
                receiver,
                &self.pair.account(),
            )?;
            true
        } else if status.is_success() && self.config.require_signed_responses {
            return Err(WireError::ResponseSignature(Cow::Borrowed(
                "successful response is not signed",
            )));
        } else {
            false
        };
        Ok(WireResponse {
            status,
            headers,
            body: Bytes::from(buf),
            signed,
        })
    }

    /// POSTs `request` as JSON to `url` for `receiver` and decodes a successful JSON answer;
    /// an error status becomes [`WireError::Status`].
    pub async fn post_json<Req, Resp>(
        &self,
        url: &str,
        receiver: &AccountId,
        request: &Req,
    ) -> Result<Resp, WireError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(request)?;
        let resp = self
            .send(Method::POST, url, receiver, body, Some("application/json"))
            .await?;
        decode(resp)
    }

    /// GETs `url` from `receiver` and decodes a successful JSON answer.
    pub async fn get_json<Resp: DeserializeOwned>(
        &self,
        url: &str,
        receiver: &AccountId,
    ) -> Result<Resp, WireError> {
        decode(
            self.send(Method::GET, url, receiver, Vec::new(), None)
                .await?,
        )
    }
}

fn decode<Resp: DeserializeOwned>(resp: WireResponse) -> Result<Resp, WireError> {
    if resp.status.is_success() {
        return Ok(serde_json::from_slice(&resp.body)?);
    }
    let (error_type, message) = match serde_json::from_slice::<ErrorBody>(&resp.body) {
        Ok(b) => (b.error.error_type, b.error.message),
        Err(_) => (
            "unknown".to_owned(),
            String::from_utf8_lossy(&resp.body)
                .chars()
                .take(512)
                .collect(),
        ),
    };
    Err(WireError::Status {
        status: resp.status.as_u16(),
        error_type,
        message,
        signed: resp.signed,
    })
}

fn transport(e: reqwest::Error) -> WireError {
    if e.is_timeout() {
        WireError::Timeout
    } else {
        WireError::Transport(e)
    }
}
