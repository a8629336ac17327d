//! The crate's one error enum and the HTTP error body built from it.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Everything that can go wrong on either side of a btauth/1 exchange.
///
/// Server-side variants map to a status and a stable `type` string through
/// [`WireError::status`] and [`WireError::error_type`]. Messages never echo a signature or a
/// signed payload, so they are safe to return to an unauthenticated caller.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A btauth header is missing, repeated, not visible ASCII, or does not parse; or the
    /// declared signature scheme is one this crate does not verify. (401 `malformed_auth`)
    #[error("malformed auth headers: {0}")]
    Malformed(Cow<'static, str>),
    /// The request is bound to another receiving hotkey, or to none while this server requires
    /// one. (403 `wrong_receiver`)
    #[error("wrong receiver: {0}")]
    WrongReceiver(Cow<'static, str>),
    /// The nonce is older than the freshness window. (401 `expired_nonce`)
    #[error("nonce is {age_ms} ms old, more than the {max_age_ms} ms freshness window")]
    Expired {
        /// How old the nonce was, in milliseconds.
        age_ms: u64,
        /// The window, in milliseconds.
        max_age_ms: u64,
    },
    /// The nonce lies further in the future than the allowed clock skew. (401 `future_nonce`)
    #[error("nonce is {ahead_ms} ms in the future, more than the allowed {skew_ms} ms skew")]
    FutureNonce {
        /// How far ahead the nonce was, in milliseconds.
        ahead_ms: u64,
        /// The allowed skew, in milliseconds.
        skew_ms: u64,
    },
    /// The signature does not verify against the claimed hotkey. (401 `bad_signature`)
    #[error("signature does not verify against the claimed hotkey")]
    BadSignature,
    /// This (hotkey, nonce) pair was already accepted inside the window. (401 `replayed_nonce`)
    #[error("this nonce was already accepted from this hotkey")]
    Replayed,
    /// The hotkey has no uid on this subnet. (403 `not_registered`)
    #[error("hotkey is not registered on this subnet")]
    NotRegistered,
    /// The hotkey is registered but holds no validator permit. (403 `no_validator_permit`)
    #[error("hotkey holds no validator permit")]
    NoValidatorPermit,
    /// The hotkey's stake is below the server's minimum. (403 `insufficient_stake`)
    #[error("stake {stake_rao} rao is below the minimum {min_stake_rao} rao")]
    InsufficientStake {
        /// The caller's stake.
        stake_rao: u64,
        /// The minimum this server admits.
        min_stake_rao: u64,
    },
    /// The request body is larger than the server accepts. (413 `body_too_large`)
    #[error("request body exceeds {limit_bytes} bytes")]
    BodyTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The hotkey sent more requests than its rate allows. (429 `rate_limited`)
    #[error("rate limit exceeded for this hotkey")]
    RateLimited,
    /// The server is at its concurrency limit for the caller's priority, or its replay store
    /// is full. (429 `overloaded`)
    #[error("server overloaded: {0}")]
    Overloaded(&'static str),
    /// The request body could not be read. (400 `bad_request`)
    #[error("could not read request body: {0}")]
    BodyRead(String),
    /// A server-side fault: a handler asked for the caller without the layer in front, or a
    /// response could not be buffered for signing. (500 `internal`)
    #[error("internal error: {0}")]
    Internal(&'static str),

    /// The client could not build its HTTP stack or was given an unusable URL.
    #[error("client setup: {0}")]
    Setup(String),
    /// The transport failed (connect, TLS, I/O).
    #[error("transport: {0}")]
    Transport(#[source] reqwest::Error),
    /// The request or its response took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// A body could not be encoded or decoded as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The response body is larger than the client accepts.
    #[error("response body exceeds {limit_bytes} bytes")]
    ResponseTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The response is unsigned, or its signature, signer, receiver or nonce is wrong.
    #[error("response signature: {0}")]
    ResponseSignature(Cow<'static, str>),
    /// The server answered with an error status. `signed` says whether the body was signed by
    /// the expected hotkey; errors the server's guard raises itself (401, 403, 413, 429) are not.
    #[error("server answered {status}: {error_type}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error.type` of the body, or `unknown` when the body is not an error object.
        error_type: String,
        /// The `error.message` of the body.
        message: String,
        /// Whether the response carried a valid signature.
        signed: bool,
    },
}

impl WireError {
    /// The HTTP status a server answers with for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WireError::Malformed(_)
            | WireError::Expired { .. }
            | WireError::FutureNonce { .. }
            | WireError::BadSignature
            | WireError::Replayed => StatusCode::UNAUTHORIZED,
            WireError::WrongReceiver(_)
            | WireError::NotRegistered
            | WireError::NoValidatorPermit
            | WireError::InsufficientStake { .. } => StatusCode::FORBIDDEN,
            WireError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WireError::RateLimited | WireError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            WireError::BodyRead(_) => StatusCode::BAD_REQUEST,
            WireError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            WireError::Status { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            WireError::Transport(_)
            | WireError::ResponseTooLarge { .. }
            | WireError::ResponseSignature(_) => StatusCode::BAD_GATEWAY,
            WireError::Internal(_) | WireError::Setup(_) | WireError::Json(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable `error.type` string for this error. Clients may match on it.
    pub fn error_type(&self) -> &'static str {
        match self {
            WireError::Malformed(_) => "malformed_auth",
            WireError::WrongReceiver(_) => "wrong_receiver",
            WireError::Expired { .. } => "expired_nonce",
            WireError::FutureNonce { .. } => "future_nonce",
            WireError::BadSignature => "bad_signature",
            WireError::Replayed => "replayed_nonce",
            WireError::NotRegistered => "not_registered",
            WireError::NoValidatorPermit => "no_validator_permit",
            WireError::InsufficientStake { .. } => "insufficient_stake",
            WireError::BodyTooLarge { .. } => "body_too_large",
            WireError::RateLimited => "rate_limited",
            WireError::Overloaded(_) => "overloaded",
            WireError::BodyRead(_) => "bad_request",
            WireError::Internal(_) => "internal",
            WireError::Setup(_) => "client_setup",
            WireError::Transport(_) => "transport",
            WireError::Timeout => "timeout",
            WireError::Json(_) => "json",
            WireError::ResponseTooLarge { .. } => "response_too_large",
            WireError::ResponseSignature(_) => "response_signature",
            WireError::Status { .. } => "upstream_status",
        }
    }
}

/// An HTTP error answer: a status and the body `{"error": {"type": ..., "message": ...}}`.
///
/// The guard turns every [`WireError`] into one; handlers behind the guard may return it too,
/// so a subnet's errors share the shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable error type (`snake_case`).
    pub error_type: Cow<'static, str>,
    /// A human-readable message, safe to show the caller.
    pub message: String,
}

impl ApiError {
    /// An error with any status, type and message.
    pub fn new(
        status: StatusCode,
        error_type: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error_type: error_type.into(),
            message: message.into(),
        }
    }

    /// The JSON body this error is sent as.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                error_type: self.error_type.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError {
            status: e.status(),
            error_type: Cow::Borrowed(e.error_type()),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The JSON error body: `{"error": {"type": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable error type.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The message.
    pub message: String,
}
