//! The engine's one error type.

/// Everything that can go wrong loading a model or serving a request.
///
/// Errors carry their cause as text so they can be cloned into a stream event and sent to
/// every waiting caller; messages name the offending value so a user can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The operating system's explanation.
        message: String,
    },
    /// The model directory or a weights file is missing, malformed or unsupported.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// `tokenizer.json` or `tokenizer_config.json` could not be used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// A request parameter is out of range; nothing was run.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The engine already holds as many requests as it accepts; retry later or elsewhere.
    #[error("engine busy: {in_flight} requests in flight, limit {limit}")]
    Busy {
        /// Requests admitted and not yet finished.
        in_flight: usize,
        /// The most requests admitted at once (running plus queued).
        limit: usize,
    },
    /// The engine's scheduler has stopped (the engine is being dropped, or it crashed).
    #[error("engine stopped")]
    Stopped,
    /// The tensor library failed while running the model.
    #[error("model execution failed: {0}")]
    Execution(String),
}

impl EngineError {
    pub(crate) fn io(path: &std::path::Path, err: &std::io::Error) -> Self {
        EngineError::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    pub(crate) fn invalid_request(msg: impl Into<String>) -> Self {
        EngineError::InvalidRequest(msg.into())
    }

    pub(crate) fn invalid_model(msg: impl Into<String>) -> Self {
        EngineError::InvalidModel(msg.into())
    }
}

impl From<candle_core::Error> for EngineError {
    fn from(err: candle_core::Error) -> Self {
        EngineError::Execution(err.to_string())
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
