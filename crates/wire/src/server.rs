//! The server side: a [`Guard`] that runs every check, a tower [`WireLayer`] that puts it in
//! front of an axum router, and the [`Caller`] extractor handlers read.

use crate::{
    admission::{stake_priority, AdmissionPolicy, MetagraphView, NeuronRole, PriorityFn},
    clock::{Clock, SystemClock},
    error::{ApiError, WireError},
    limit::{ConcurrencyLimiter, Permit, RateLimit, RateLimiter},
    nonce::{NonceStore, DEFAULT_NONCE_CAPACITY},
    protocol::{
        sign_response, stream_trailer, AuthHeaders, Verifier, DEFAULT_ALLOWED_SKEW_NS,
        DEFAULT_MAX_AGE_NS, HEADER_STREAM_SIGNATURE, STREAM_SIGNATURE_TRAILER,
    },
};
use agora_primitives::{crypto::Pair, AccountId};
use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, OriginalUri, Request},
    response::{IntoResponse, Response},
};
use http::{
    header::{CONTENT_LENGTH, CONTENT_TYPE},
    request::Parts,
    HeaderValue,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// Default request body limit: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 << 20;
/// Default limit on a response buffered for signing: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Concurrency settings for [`GuardConfig::concurrency`]; see [`ConcurrencyLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// Slots kept for callers with priority at least `priority_floor`.
    pub reserved: usize,
    /// The priority that may use the reserved slots.
    pub priority_floor: u64,
}

/// Everything a [`Guard`] enforces.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// How old a nonce may be (default 10 s).
    pub max_age_ns: u64,
    /// How far ahead a nonce may be (default 2 s).
    pub allowed_skew_ns: u64,
    /// Refuse requests bound to no receiver (default true).
    pub require_receiver: bool,
    /// Request body limit; larger bodies get 413 (default 2 MiB).
    pub max_body_bytes: usize,
    /// Who is admitted (default: registered hotkeys).
    pub admission: AdmissionPolicy,
    /// Hotkeys admitted whatever `admission` and the metagraph say, and exempt from the
    /// per-hotkey rate limit (default none). For a gateway that is not registered on the
    /// subnet: it carries many users' traffic under one hotkey and rate-limits them itself.
    /// The signature, freshness, replay and concurrency checks still apply to them.
    pub trusted_hotkeys: Vec<AccountId>,
    /// Per-hotkey rate, if any (default 20/s, burst 40).
    pub rate_limit: Option<RateLimit>,
    /// Bound on hotkeys tracked by the rate limiter (default 4096).
    pub max_rate_limited_hotkeys: usize,
    /// Concurrency limit, if any (default none).
    pub concurrency: Option<ConcurrencyConfig>,
    /// Replay store bound (default [`DEFAULT_NONCE_CAPACITY`]).
    pub nonce_capacity: usize,
    /// Sign responses (default true). A response is buffered to be signed, except a
    /// `text/event-stream` one, which streams through and is signed by a trailer (see the
    /// crate docs).
    pub sign_responses: bool,
    /// Largest response buffered for signing; larger ones become 500 (default 16 MiB).
    pub max_response_bytes: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_age_ns: DEFAULT_MAX_AGE_NS,
            allowed_skew_ns: DEFAULT_ALLOWED_SKEW_NS,
            require_receiver: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            admission: AdmissionPolicy::registered(),
            trusted_hotkeys: Vec::new(),
            rate_limit: Some(RateLimit {
                per_second: 20,
                burst: 40,
            }),
            max_rate_limited_hotkeys: 4096,
            concurrency: None,
            nonce_capacity: DEFAULT_NONCE_CAPACITY,
            sign_responses: true,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The authenticated, admitted caller of a request. The layer puts it in the request's
/// extensions; handlers take it as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The sender's hotkey.
    pub hotkey: AccountId,
    /// The sender's hotkey as it signed it.
    pub hotkey_ss58: String,
    /// The request's nonce (ns since the Unix epoch).
    pub nonce_ns: u64,
    /// The sender's metagraph role, `None` if unregistered under an open policy.
    pub role: Option<NeuronRole>,
    /// The sender's priority from the guard's priority hook (default: stake in rao).
    pub priority: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| WireError::Internal("route is not behind the wire layer").into())
    }
}

/// A request that passed the header checks and claimed-hotkey admission, awaiting its body.
#[derive(Debug, Clone)]
pub struct Pending {
    auth: AuthHeaders,
    role: Option<NeuronRole>,
    trusted: bool,
}

/// The checks a server runs on every request, in this order:
///
/// 1. header shape, receiver binding, freshness (401 / 403) — no body read yet;
/// 2. admission of the *claimed* hotkey by metagraph (403) — still before reading the body, so
///    unregistered senders cost one map lookup (registration is public, so this leaks nothing);
/// 3. body size (413), then the sr25519 signature over the raw body (401);
/// 4. replay lookup (401), per-hotkey rate limit (429), replay insert (401): a replayed
///    request does not spend its victim's tokens, and only rate-limited traffic fills the store;
/// 5. concurrency slot by priority (429), held until the handler returns.
///
/// The replay store sees the clock as it reads *after* the body arrived, so a nonce must still
/// be inside the window then: an upload slower than `max_age_ns` is refused as expired (raise
/// the window for routes that take large bodies).
#[derive(Debug)]
pub struct Guard {
    pair: Pair,
    self_ss58: String,
    verifier: Verifier,
    metagraph: Arc<dyn MetagraphView>,
    clock: Arc<dyn Clock>,
    nonces: NonceStore,
    rate: Option<RateLimiter>,
    concurrency: Option<ConcurrencyLimiter>,
    priority: PriorityHook,
    config: GuardConfig,
}

struct PriorityHook(PriorityFn);

impl std::fmt::Debug for PriorityHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PriorityFn")
    }
}

impl Guard {
    /// A guard for the server whose hotkey is `pair`, admitting by `metagraph`, on the system
    /// clock.
    pub fn new(pair: Pair, metagraph: Arc<dyn MetagraphView>, config: GuardConfig) -> Self {
        let account = pair.account();
        Guard {
            self_ss58: account.to_ss58(),
            verifier: Verifier::new(account)
                .with_window(config.max_age_ns, config.allowed_skew_ns)
                .with_require_receiver(config.require_receiver),
            nonces: NonceStore::new(config.max_age_ns, config.nonce_capacity),
            rate: config
                .rate_limit
                .map(|r| RateLimiter::new(r, config.max_rate_limited_hotkeys)),
            concurrency: config
                .concurrency
                .map(|c| ConcurrencyLimiter::new(c.max_in_flight, c.reserved, c.priority_floor)),
            priority: PriorityHook(Arc::new(stake_priority)),
            pair,
            metagraph,
            clock: Arc::new(SystemClock),
            config,
        }
    }

    /// Replaces the clock (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the priority hook (default: stake in rao).
    pub fn with_priority(mut self, priority: PriorityFn) -> Self {
        self.priority = PriorityHook(priority);
        self
    }

    /// The server's hotkey.
    pub fn hotkey(&self) -> &AccountId {
        self.verifier.self_hotkey()
    }

    /// The configuration.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The replay store (for metrics).
    pub fn nonces(&self) -> &NonceStore {
        &self.nonces
    }

    /// A tower layer running this guard in front of a router.
    pub fn layer(self: Arc<Self>) -> WireLayer {
        WireLayer { guard: self }
    }

    /// Steps 1–2: headers, receiver, freshness, claimed-hotkey admission.
    pub fn precheck(&self, headers: &http::HeaderMap, now_ns: u64) -> Result<Pending, WireError> {
        let auth = self.verifier.check_headers(headers, now_ns)?;
        if self.config.trusted_hotkeys.contains(&auth.hotkey) {
            let role = self.metagraph.neuron(&auth.hotkey);
            return Ok(Pending {
                auth,
                role,
                trusted: true,
            });
        }
        let role = self
            .config
            .admission
            .admit(self.metagraph.as_ref(), &auth.hotkey)?;
        Ok(Pending {
            auth,
            role,
            trusted: false,
        })
    }

    /// Steps 3–4 on a body already read within the limit: signature, replay, rate.
    pub fn finish(
        &self,
        pending: Pending,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ns: u64,
    ) -> Result<Caller, WireError> {
        let Pending {
            auth,
            role,
            trusted,
        } = pending;
        self.verifier
            .check_signature(&auth, method, path_and_query, body)?;
        if self.nonces.contains(&auth.hotkey, auth.nonce_ns) {
            return Err(WireError::Replayed);
        }
        if let Some(rate) = self.rate.as_ref().filter(|_| !trusted) {
            rate.check(&auth.hotkey, now_ns)?;
        }
        self.nonces
            .check_and_insert(&auth.hotkey, auth.nonce_ns, now_ns)?;
        let priority = (self.priority.0)(&auth.hotkey, role.as_ref());
        Ok(Caller {
            hotkey: auth.hotkey,
            hotkey_ss58: auth.hotkey_ss58,
            nonce_ns: auth.nonce_ns,
            role,
            priority,
        })
    }

    /// Steps 1–4 on a buffered request (the body limit included): what the layer runs, for
    /// hosts that are not axum and for benchmarks.
    pub fn check(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        now_ns: u64,
    ) -> Result<Caller, WireError> {
        let pending = self.precheck(headers, now_ns)?;
        if body.len() > self.config.max_body_bytes {
            return Err(WireError::BodyTooLarge {
                limit_bytes: self.config.max_body_bytes,
            });
        }
        self.finish(pending, method, path_and_query, body, now_ns)
    }

    async fn handle<S>(&self, req: Request, inner: &mut S) -> Result<Response, WireError>
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let now_ns = self.clock.now_ns();
        let (mut parts, body) = req.into_parts();
        let pending = self.precheck(&parts.headers, now_ns)?;

        let limit = self.config.max_body_bytes;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(WireError::BodyTooLarge { limit_bytes: limit });
        }
        let bytes = read_limited(body, limit).await?;

        // Sign what the client sent: the original target even when this router is nested.
        let target = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| &u.0)
            .unwrap_or(&parts.uri)
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        // A fresh reading: the body may have taken a while, and the replay store must never
        // see an older clock than the one that pruned it.
        let now_ns = self.clock.now_ns().max(now_ns);
        let caller = self.finish(pending, parts.method.as_str(), &target, &bytes, now_ns)?;
        let permit = match &self.concurrency {
            Some(c) => Some(c.acquire(caller.priority)?),
            None => None,
        };
        let nonce_ns = caller.nonce_ns;
        let client_ss58 = caller.hotkey_ss58.clone();
        parts.extensions.insert(caller);
        let response = match inner
            .call(Request::from_parts(parts, Body::from(bytes)))
            .await
        {
            Ok(r) => r,
            Err(never) => match never {},
        };
        if is_event_stream(response.headers()) {
            // The stream outlives this call: the permit travels with its body.
            return Ok(self.stream_response(response, target, nonce_ns, client_ss58, permit));
        }
        drop(permit);
        if !self.config.sign_responses {
            return Ok(response);
        }
        let (mut rparts, rbody) = response.into_parts();
        let rbytes = Limited::new(rbody, self.config.max_response_bytes)
            .collect()
            .await
            .map_err(|_| WireError::Internal("response too large or failed while buffering"))?
            .to_bytes();
        sign_response(
            &self.pair,
            rparts.status.as_u16(),
            &target,
            &rbytes,
            nonce_ns,
            &client_ss58,
        )
        .write_to(&mut rparts.headers);
        tracing::trace!(server = %self.self_ss58, status = rparts.status.as_u16(), "signed response");
        Ok(Response::from_parts(rparts, Body::from(rbytes)))
    }
}

impl Guard {
    /// Passes a `text/event-stream` response through unbuffered, hashing it on the way and,
    /// when responses are signed, appending the signed trailer once the handler's body ends.
    fn stream_response(
        &self,
        response: Response,
        target: String,
        nonce_ns: u64,
        client_ss58: String,
        permit: Option<Permit>,
    ) -> Response {
        let (mut parts, body) = response.into_parts();
        let signer = self.config.sign_responses.then(|| {
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.insert(
                HEADER_STREAM_SIGNATURE,
                HeaderValue::from_static(STREAM_SIGNATURE_TRAILER),
            );
            TrailerSigner {
                pair: self.pair.clone(),
                status: parts.status.as_u16(),
                target,
                nonce_ns,
                client_ss58,
                hasher: Sha256::new(),
            }
        });
        Response::from_parts(
            parts,
            Body::new(SignedStream {
                inner: body,
                inner_done: false,
                signer,
                _permit: permit,
            }),
        )
    }
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

#[derive(Debug)]
struct TrailerSigner {
    pair: Pair,
    status: u16,
    target: String,
    nonce_ns: u64,
    client_ss58: String,
    hasher: Sha256,
}

/// A streamed response body: the handler's frames as they come, then the signed trailer.
/// A handler body that fails midway ends the stream without a trailer, which the client
/// reports as an unsigned (truncated) stream.
struct SignedStream {
    inner: Body,
    /// The handler's body ended; it must not be polled again.
    inner_done: bool,
    signer: Option<TrailerSigner>,
    _permit: Option<Permit>,
}

impl http_body::Body for SignedStream {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.inner_done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(s), Some(data)) = (this.signer.as_mut(), frame.data_ref()) {
                    s.hasher.update(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.inner_done = true;
                Poll::Ready(this.signer.take().map(|s| {
                    let hash: [u8; 32] = s.hasher.finalize().into();
                    let trailer = stream_trailer(
                        &s.pair,
                        s.status,
                        &s.target,
                        &hash,
                        s.nonce_ns,
                        &s.client_ss58,
                    );
                    Ok(http_body::Frame::data(Bytes::from(trailer)))
                }))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner_done = true;
                this.signer = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.signer.is_none() && (self.inner_done || self.inner.is_end_stream())
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, WireError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(WireError::BodyTooLarge { limit_bytes: limit })
        }
        Err(e) => Err(WireError::BodyRead(e.to_string())),
    }
}

/// The tower layer made by [`Guard::layer`]: `router.layer(guard.layer())`.
#[derive(Debug, Clone)]
pub struct WireLayer {
    guard: Arc<Guard>,
}

impl<S> Layer<S> for WireLayer {
    type Service = WireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WireService {
            guard: self.guard.clone(),
            inner,
        }
    }
}

/// The service [`WireLayer`] wraps around a router; it answers every refusal itself with an
/// [`ApiError`] body and never fails.
#[derive(Debug, Clone)]
pub struct WireService<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S> Service<Request> for WireService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone stays for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let guard = self.guard.clone();
        Box::pin(async move {
            Ok(match guard.handle(req, &mut inner).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "request refused");
                    ApiError::from(e).into_response()
                }
            })
        })
    }
}
