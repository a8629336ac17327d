//! OpenAI-compatible API types for the inference subnet, shared by the gateway and the miners.
//!
//! - [`types`]: the JSON bodies of `POST /v1/chat/completions`, `POST /v1/completions`,
//!   `GET /v1/models`, their stream chunks, and a miner's `GET /health` answer. Unknown request
//!   fields are ignored, as OpenAI does; shapes that vary (message content, `stop`, `prompt`)
//!   stay JSON values until validated.
//! - [`validate`]: pure checks that turn a request into a [`ValidatedChat`] or
//!   [`ValidatedCompletion`] — the only form an engine should accept — or an [`OpenAiError`]
//!   naming the offending parameter.
//! - [`error`]: OpenAI's error body `{"error": {"message", "type", "param", "code"}}` with the
//!   status codes OpenAI uses.
//! - [`sse`]: server-sent events: encoding `data:` events and `data: [DONE]`, and an
//!   incremental decoder with a bound on event size.
//!
//! No I/O, no clock, no panics on input. No feature flags; dependencies are serde, serde_json
//! and thiserror only, so a miner can use this crate without pulling in an HTTP stack.

pub mod error;
pub mod sse;
pub mod types;
pub mod validate;

pub use error::{ErrorBody, ErrorObject, OpenAiError};
pub use types::{
    ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
    ChunkChoice, Completion, CompletionChoice, CompletionRequest, Delta, MinerHealth, Model,
    ModelList, ResponseMessage, StreamOptions, Usage,
};
pub use validate::{
    Limits, Message, Role, SamplingParams, ValidatedChat, ValidatedCompletion, MAX_STOP_SEQUENCES,
    MAX_TOP_LOGPROBS,
};
