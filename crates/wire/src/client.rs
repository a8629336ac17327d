//! The client side: [`WireClient`] signs requests with a hotkey and checks signed responses.

use crate::{
    clock::{Clock, SystemClock},
    error::{ErrorBody, WireError},
    protocol::{
        sign_request, verify_response, verify_stream_trailer, HEADER_SIGNATURE,
        HEADER_STREAM_SIGNATURE, STREAM_SIGNATURE_TRAILER, STREAM_TRAILER_LEN,
        STREAM_TRAILER_PREFIX,
    },
};
use agora_primitives::{crypto::Pair, AccountId};
use axum::body::Bytes;
use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
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
    /// Largest streamed response read (default 64 MiB).
    pub max_stream_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 16 << 20,
            require_signed_responses: true,
            max_stream_bytes: 64 << 20,
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

    /// A client with other settings that signs with the same hotkey and shares this one's
    /// nonce sequence, so requests from both never share a nonce.
    pub fn with_config(&self, config: ClientConfig) -> Result<Self, WireError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| WireError::Setup(e.to_string()))?;
        Ok(WireClient {
            http,
            pair: self.pair.clone(),
            clock: self.clock.clone(),
            last_nonce_ns: self.last_nonce_ns.clone(),
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
        let (resp, target, nonce_ns) = self
            .start(method, url, receiver, body, content_type)
            .await?;
        self.buffered(resp, &target, nonce_ns, receiver).await
    }

    /// Like [`WireClient::send`], but a successful `text/event-stream` answer comes back as a
    /// [`WireStream`] to read as it arrives; any other answer is buffered and checked as `send`
    /// does. The stream's signature (its trailer) is checked when the stream ends.
    pub async fn send_streaming(
        &self,
        method: Method,
        url: &str,
        receiver: &AccountId,
        body: Vec<u8>,
        content_type: Option<&'static str>,
    ) -> Result<WireReply, WireError> {
        let (resp, target, nonce_ns) = self
            .start(method, url, receiver, body, content_type)
            .await?;
        let is_stream = resp.status().is_success()
            && resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_stream {
            return Ok(WireReply::Buffered(
                self.buffered(resp, &target, nonce_ns, receiver).await?,
            ));
        }
        let trailer_signed = resp
            .headers()
            .get(HEADER_STREAM_SIGNATURE)
            .is_some_and(|v| v.as_bytes() == STREAM_SIGNATURE_TRAILER.as_bytes());
        let check = if trailer_signed {
            Some(StreamCheck {
                target,
                nonce_ns,
                server: *receiver,
                client: self.pair.account(),
                hasher: Sha256::new(),
            })
        } else if self.config.require_signed_responses {
            return Err(WireError::ResponseSignature(Cow::Borrowed(
                "streamed response is not marked as signed",
            )));
        } else {
            None
        };
        Ok(WireReply::Stream(Box::new(WireStream {
            status: resp.status(),
            headers: resp.headers().clone(),
            resp,
            check,
            held: Vec::new(),
            trailer: None,
            at_line_start: true,
            received_bytes: 0,
            max_bytes: self.config.max_stream_bytes,
            finished: false,
        })))
    }

    /// Signs and sends a request; the response's headers have arrived.
    async fn start(
        &self,
        method: Method,
        url: &str,
        receiver: &AccountId,
        body: Vec<u8>,
        content_type: Option<&'static str>,
    ) -> Result<(reqwest::Response, String, u64), WireError> {
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
        let resp = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        Ok((resp, target, nonce_ns))
    }

    /// Reads a whole response within the size limit and checks its signature.
    async fn buffered(
        &self,
        mut resp: reqwest::Response,
        target: &str,
        nonce_ns: u64,
        receiver: &AccountId,
    ) -> Result<WireResponse, WireError> {
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
                target,
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

/// What [`WireClient::send_streaming`] got back.
#[derive(Debug)]
pub enum WireReply {
    /// A whole, checked response: an error, or an answer that is not an event stream.
    Buffered(WireResponse),
    /// A successful `text/event-stream` answer, still arriving.
    Stream(Box<WireStream>),
}

#[derive(Debug)]
struct StreamCheck {
    target: String,
    nonce_ns: u64,
    server: AccountId,
    client: AccountId,
    hasher: Sha256,
}

/// A streamed answer. [`WireStream::next_chunk`] yields the body as it arrives, without the
/// signature trailer, and checks the trailer at the end: `Ok(None)` means the whole stream
/// arrived and (when the server marked it signed) the signature over every byte verified.
/// Bytes are handed out before that final check, so a reader that forwards them learns only
/// at the end whether the whole stream was the server's.
#[derive(Debug)]
pub struct WireStream {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    resp: reqwest::Response,
    check: Option<StreamCheck>,
    /// Bytes that may be the start of the trailer, not yet handed out.
    held: Vec<u8>,
    /// The trailer once its first bytes were seen at the start of a line.
    trailer: Option<Vec<u8>>,
    /// Whether the last byte handed out ended a line.
    at_line_start: bool,
    received_bytes: usize,
    max_bytes: usize,
    finished: bool,
}

impl WireStream {
    /// The next piece of the body (never empty), or `None` once the stream ended and checked.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, WireError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            match self.resp.chunk().await.map_err(transport)? {
                Some(chunk) => {
                    self.received_bytes = self.received_bytes.saturating_add(chunk.len());
                    if self.received_bytes > self.max_bytes {
                        return Err(WireError::ResponseTooLarge {
                            limit_bytes: self.max_bytes,
                        });
                    }
                    if self.check.is_none() {
                        if chunk.is_empty() {
                            continue;
                        }
                        return Ok(Some(chunk));
                    }
                    if let Some(out) = self.absorb(&chunk)? {
                        return Ok(Some(out));
                    }
                }
                None => {
                    self.finished = true;
                    return self.finish();
                }
            }
        }
    }

    /// Splits arriving bytes into body to hand out and trailer to keep.
    fn absorb(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, WireError> {
        if let Some(t) = self.trailer.as_mut() {
            t.extend_from_slice(chunk);
            if t.len() > STREAM_TRAILER_LEN {
                return Err(WireError::ResponseSignature(Cow::Borrowed(
                    "data after the stream trailer",
                )));
            }
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        // The trailer starts a line: at the very start, or after a line break.
        let trailer_at = (0..buf.len()).find(|&i| {
            let line_start = match i.checked_sub(1) {
                None => self.at_line_start,
                Some(p) => matches!(buf.get(p), Some(b'\n' | b'\r')),
            };
            line_start
                && buf
                    .get(i..)
                    .is_some_and(|rest| rest.starts_with(STREAM_TRAILER_PREFIX))
        });
        let body_end = match trailer_at {
            Some(i) => {
                self.trailer = Some(buf.get(i..).unwrap_or_default().to_vec());
                i
            }
            None => {
                // Hold back a tail that could still grow into the trailer's prefix.
                let keep = (1..STREAM_TRAILER_PREFIX.len())
                    .rev()
                    .find(|&k| {
                        buf.len() >= k
                            && STREAM_TRAILER_PREFIX
                                .starts_with(buf.get(buf.len() - k..).unwrap_or_default())
                    })
                    .unwrap_or(0);
                let split = buf.len() - keep;
                self.held = buf.get(split..).unwrap_or_default().to_vec();
                split
            }
        };
        buf.truncate(body_end);
        if buf.is_empty() {
            return Ok(None);
        }
        self.at_line_start = matches!(buf.last(), Some(b'\n' | b'\r'));
        if let Some(c) = self.check.as_mut() {
            c.hasher.update(&buf);
        }
        Ok(Some(Bytes::from(buf)))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, WireError> {
        let Some(check) = self.check.take() else {
            return Ok(None);
        };
        let Some(trailer) = self.trailer.take() else {
            return Err(WireError::ResponseSignature(Cow::Borrowed(
                "stream ended without its signature trailer",
            )));
        };
        let hash: [u8; 32] = check.hasher.finalize().into();
        verify_stream_trailer(
            &trailer,
            self.status.as_u16(),
            &check.target,
            &hash,
            check.nonce_ns,
            &check.server,
            &check.client,
        )?;
        Ok(None)
    }
}
