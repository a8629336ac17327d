//! Signed HTTP between validators, miners and gateways: Bittensor SDK 11's `btauth/1`.
//!
//! Every request proves "sent by hotkey X, to hotkey Y, with exactly this body, recently" in six
//! headers; the server checks that proof, admits the caller by the subnet's metagraph, limits
//! its load, and signs its answer so the client knows who replied.
//!
//! - [`protocol`]: the wire format and the pure verification core ([`Verifier`]); no I/O, no
//!   clock (`now_ns` is a parameter).
//! - [`NonceStore`]: replay protection with a stated memory bound.
//! - [`AdmissionPolicy`] over a [`MetagraphView`]: registered? validator permit? minimum stake?
//!   plus a priority hook (default: stake).
//! - [`Guard`] / [`WireLayer`]: the tower layer in front of an axum router; handlers read the
//!   [`Caller`] extractor. [`ApiError`] is the JSON error answer.
//! - [`WireClient`]: a reqwest (rustls) client that signs requests and checks signed responses.
//!
//! ```no_run
//! use agora_primitives::crypto::Pair;
//! use agora_wire::{AdmissionPolicy, Caller, Guard, GuardConfig, StaticMetagraph, WireClient};
//! use axum::{routing::post, Router};
//! use std::sync::Arc;
//!
//! # async fn demo(miner: Pair, validator: Pair) -> Result<(), agora_wire::WireError> {
//! // Miner: admit permitted validators with at least 1,000 TAO; read the caller in handlers.
//! let metagraph = Arc::new(StaticMetagraph::default()); // the client crate's cache in practice
//! let config = GuardConfig {
//!     admission: AdmissionPolicy::validators(1_000_000_000_000),
//!     ..GuardConfig::default()
//! };
//! let miner_hotkey = miner.account();
//! let guard = Arc::new(Guard::new(miner, metagraph, config));
//! let app: Router = Router::new()
//!     .route("/echo", post(|c: Caller, body: String| async move {
//!         format!("{} (priority {}) said {body}", c.hotkey_ss58, c.priority)
//!     }))
//!     .layer(guard.layer());
//!
//! // Validator: sign for the miner's hotkey, check that the miner signed the answer.
//! let client = WireClient::new(validator, Default::default())?;
//! let answer: serde_json::Value = client
//!     .post_json("http://127.0.0.1:8091/echo", &miner_hotkey, &serde_json::json!({"x": 1}))
//!     .await?;
//! # let _ = (app, answer); Ok(()) }
//! ```
//!
//! # Wire format (btauth/1, as in `bittensor` 11.3.0 `bittensor/http_auth.py`)
//!
//! Request headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Bittensor-Version` | `1` |
//! | `X-Bittensor-Hotkey` | sender SS58 |
//! | `X-Bittensor-Receiver` | receiver SS58 (required by default) |
//! | `X-Bittensor-Nonce` | nanoseconds since the Unix epoch, decimal |
//! | `X-Bittensor-Crypto` | omitted for sr25519; `sr25519` (any case) or `1` accepted |
//! | `X-Bittensor-Signature` | `0x` + 128 lowercase hex digits (`0x` optional on input) |
//!
//! The signature is sr25519 (signing context `substrate`) over the raw UTF-8 bytes, not a
//! hash, of eight lines joined by `\n` with no trailing newline:
//!
//! ```text
//! btauth/1
//! {scheme}                 always "sr25519" here, rebuilt by the verifier, never echoed
//! {METHOD}                 uppercase
//! {path?query}             the request target exactly as sent
//! {sha256(body) hex}       lowercase, over the raw body bytes (empty body: sha256 of "")
//! {nonce_ns}               decimal
//! {sender ss58}            exactly as in X-Bittensor-Hotkey
//! {receiver ss58 or -}     exactly as in X-Bittensor-Receiver, "-" when absent
//! ```
//!
//! Responses (an Agora extension; the SDK signs requests only) carry the same headers, signed by
//! the server over the same layout with the method line `RESPONSE {status}`, the request's
//! target, the response body's hash, the *request's* nonce, the server as sender and the client
//! as receiver.
//!
//! # Streamed responses
//!
//! A response with content type `text/event-stream` (server-sent events, e.g. an OpenAI
//! stream) is not buffered: it passes through as the handler writes it. Its headers carry
//! `X-Agora-Stream-Signature: trailer` instead of the btauth headers, and once the handler's
//! body ends the guard appends one SSE comment line (which SSE readers ignore):
//!
//! ```text
//! :btauth/1 0x{128 hex digits}\n\n
//! ```
//!
//! The signature is exactly the one a buffered response would carry (the `RESPONSE {status}`
//! payload above) over every body byte before the trailer. So for a stream the request is
//! fully authenticated as usual and the whole body is signed, but the signature can only be
//! checked at the end: a reader that forwards bytes as they come (a gateway) forwards them
//! before it knows, and a stream cut short has no trailer. [`WireClient::send_streaming`]
//! hands out the body without the trailer and reports a missing or wrong trailer as
//! [`WireError::ResponseSignature`] when the stream ends. The concurrency slot of a streamed
//! request is held until its body ends.
//!
//! # Trusted hotkeys
//!
//! [`GuardConfig::trusted_hotkeys`] admits listed hotkeys whatever the admission policy and
//! metagraph say, and exempts them from the per-hotkey rate limit (signature, freshness,
//! replay and concurrency checks still apply). It is how a miner admits an inference gateway
//! that is not registered on the subnet and carries many users' traffic under one hotkey.
//!
//! # Invariants
//!
//! - A nonce is accepted if it is at most 10 s old and at most 2 s ahead (both inclusive).
//! - A (hotkey, nonce) pair is accepted once; the store keeps pairs only while their nonce is
//!   inside the window and holds at most [`DEFAULT_NONCE_CAPACITY`] of them (see [`NonceStore`]).
//! - The replay store is written only after the signature verifies and the caller is admitted.
//! - Errors answer `{"error": {"type", "message"}}`: 401 (`malformed_auth`, `bad_signature`,
//!   `expired_nonce`, `future_nonce`, `replayed_nonce`), 403 (`wrong_receiver`,
//!   `not_registered`, `no_validator_permit`, `insufficient_stake`), 413 (`body_too_large`),
//!   429 (`rate_limited`, `overloaded`). Messages never echo signatures or payloads.
//! - Nothing panics on input.
//!
//! Only sr25519 is verified; an `ed25519` request (valid btauth/1) is refused as
//! `malformed_auth`. No feature flags.

pub mod admission;
pub mod client;
pub mod clock;
pub mod error;
pub mod limit;
pub mod nonce;
pub mod protocol;
pub mod server;

pub use admission::{AdmissionPolicy, MetagraphView, NeuronRole, PriorityFn, StaticMetagraph};
pub use client::{ClientConfig, WireClient, WireReply, WireResponse, WireStream};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ApiError, ErrorBody, ErrorDetail, WireError};
pub use limit::{ConcurrencyLimiter, RateLimit, RateLimiter};
pub use nonce::{NonceStore, DEFAULT_NONCE_CAPACITY};
pub use protocol::{AuthHeaders, Verifier};
pub use server::{Caller, ConcurrencyConfig, Guard, GuardConfig, WireLayer, WireService};
