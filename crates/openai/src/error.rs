//! OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, and the statuses
//! OpenAI answers with.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// An error as OpenAI reports it: an HTTP status and the error object.
///
/// `error_type` and `code` are stable strings clients match on (the official clients map the
/// status to an exception class and keep the body). Messages are safe to show the caller:
/// they never echo an API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error_type}: {message}")]
pub struct OpenAiError {
    /// The HTTP status.
    pub status: u16,
    /// A human-readable message.
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `requests`,
    /// `insufficient_quota`, `server_error`.
    pub error_type: Cow<'static, str>,
    /// The request parameter at fault, e.g. `messages.[0].role`.
    pub param: Option<String>,
    /// A machine-readable code, e.g. `invalid_api_key`, `model_not_found`.
    pub code: Option<Cow<'static, str>>,
}

/// The error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorObject,
}

/// The inside of [`ErrorBody`]; `param` and `code` are sent as `null` when absent, as OpenAI
/// does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// A human-readable message.
    pub message: String,
    /// The error type.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The parameter at fault.
    #[serde(default)]
    pub param: Option<String>,
    /// The machine-readable code.
    #[serde(default)]
    pub code: Option<String>,
}

/// `type` of refused requests (400, 401, 404, 413).
pub const INVALID_REQUEST: &str = "invalid_request_error";
/// `type` of request-rate refusals (429).
pub const RATE_LIMIT_TYPE: &str = "requests";
/// `type` and `code` of exhausted quotas (429).
pub const INSUFFICIENT_QUOTA: &str = "insufficient_quota";
/// `type` of server-side failures (500, 502, 503, 504).
pub const SERVER_ERROR: &str = "server_error";

impl OpenAiError {
    /// Any error.
    pub fn new(
        status: u16,
        error_type: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        OpenAiError {
            status,
            message: message.into(),
            error_type: error_type.into(),
            param: param.map(str::to_owned),
            code: code.map(Cow::Borrowed),
        }
    }

    /// 400 `invalid_request_error` for `param`, with `code`.
    pub fn invalid(message: impl Into<String>, param: &str, code: &'static str) -> Self {
        OpenAiError::new(400, INVALID_REQUEST, message, Some(param), Some(code))
    }

    /// 400: the body is not JSON, or not the JSON this endpoint takes.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        OpenAiError::new(
            400,
            INVALID_REQUEST,
            format!(
                "We could not parse the JSON body of your request: {detail}. The body must be \
                 a JSON object matching this endpoint's parameters."
            ),
            None,
            None,
        )
    }

    /// 401: no API key was sent.
    pub fn missing_api_key() -> Self {
        OpenAiError::new(
            401,
            INVALID_REQUEST,
            "You didn't provide an API key. Send it in the Authorization header as \
             'Authorization: Bearer YOUR_KEY'.",
            None,
            None,
        )
    }

    /// 401: the API key is not known. The key itself is not echoed.
    pub fn invalid_api_key() -> Self {
        OpenAiError::new(
            401,
            INVALID_REQUEST,
            "Incorrect API key provided.",
            None,
            Some("invalid_api_key"),
        )
    }

    /// 404: no model by this id.
    pub fn model_not_found(model: &str) -> Self {
        let shown: String = model.chars().take(256).collect();
        OpenAiError::new(
            404,
            INVALID_REQUEST,
            format!("The model `{shown}` does not exist or you do not have access to it."),
            Some("model"),
            Some("model_not_found"),
        )
    }

    /// 404: no such route.
    pub fn unknown_url(method: &str, path: &str) -> Self {
        let shown: String = path.chars().take(256).collect();
        OpenAiError::new(
            404,
            INVALID_REQUEST,
            format!("Invalid URL ({method} {shown})"),
            None,
            None,
        )
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        let shown: String = path.chars().take(256).collect();
        OpenAiError::new(
            405,
            INVALID_REQUEST,
            format!("Method {method} is not allowed for {shown}"),
            None,
            None,
        )
    }

    /// 413: the body is larger than `limit_bytes`.
    pub fn request_too_large(limit_bytes: usize) -> Self {
        OpenAiError::new(
            413,
            INVALID_REQUEST,
            format!("Request too large: the body may be at most {limit_bytes} bytes."),
            None,
            Some("request_too_large"),
        )
    }

    /// 429: the key's request rate is exceeded; retry after `retry_after_s` seconds.
    pub fn rate_limited(limit_per_minute: u64, retry_after_s: u64) -> Self {
        OpenAiError::new(
            429,
            RATE_LIMIT_TYPE,
            format!(
                "Rate limit reached for requests: limit {limit_per_minute} per minute. Please \
                 try again in {retry_after_s}s."
            ),
            None,
            Some("rate_limit_exceeded"),
        )
    }

    /// 429: the key's token quota is spent.
    pub fn quota_exceeded() -> Self {
        OpenAiError::new(
            429,
            INSUFFICIENT_QUOTA,
            "You exceeded your current quota of tokens for this API key.",
            None,
            Some(INSUFFICIENT_QUOTA),
        )
    }

    /// 500: a fault on this side.
    pub fn internal(message: impl Into<String>) -> Self {
        OpenAiError::new(500, SERVER_ERROR, message, None, None)
    }

    /// 503: nothing can serve the request now (no miner for the model, all busy or failing).
    pub fn unavailable(message: impl Into<String>) -> Self {
        OpenAiError::new(
            503,
            SERVER_ERROR,
            message,
            None,
            Some("service_unavailable"),
        )
    }

    /// 504: the request took longer than allowed.
    pub fn timeout(limit_ms: u64) -> Self {
        OpenAiError::new(
            504,
            SERVER_ERROR,
            format!("The request timed out after {limit_ms} ms."),
            None,
            Some("timeout"),
        )
    }

    /// The body to send.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                error_type: self.error_type.to_string(),
                param: self.param.clone(),
                code: self.code.as_ref().map(|c| c.to_string()),
            },
        }
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and options cannot fail.
        serde_json::to_vec(&self.body()).unwrap_or_default()
    }

    /// Rebuilds an error from a status and a body someone else sent (a miner), keeping its
    /// fields when the body has OpenAI's shape.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => OpenAiError {
                status,
                message: b.error.message,
                error_type: Cow::Owned(b.error.error_type),
                param: b.error.param,
                code: b.error.code.map(Cow::Owned),
            },
            Err(_) => OpenAiError::new(
                status,
                if status >= 500 {
                    SERVER_ERROR
                } else {
                    INVALID_REQUEST
                },
                String::from_utf8_lossy(body)
                    .chars()
                    .take(512)
                    .collect::<String>(),
                None,
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape_with_nulls() {
        let v: serde_json::Value =
            serde_json::from_slice(&OpenAiError::invalid_api_key().to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_api_key"
            }})
        );
        let e = OpenAiError::model_not_found("nope");
        assert_eq!(e.status, 404);
        assert_eq!(OpenAiError::from_body(404, &e.to_json()), e);
        assert_eq!(
            OpenAiError::from_body(502, b"boom").error_type,
            SERVER_ERROR
        );
    }
}
