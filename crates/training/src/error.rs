//! The crate's one error type.

/// Everything that can go wrong in training, checkpoints and the round protocol.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// The model configuration cannot be built.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A checkpoint, update or state blob is malformed or does not fit the model.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tensor library failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A JSON document could not be parsed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A miner or validator could not reach the chain, register, listen or sign.
    #[error(transparent)]
    Subnet(#[from] agora_subnet::SubnetError),
    /// Training produced a non-finite loss.
    #[error("loss diverged (non-finite) at step {0}")]
    Diverged(u64),
}

impl TrainingError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
