//! The inference miner's axon: OpenAI-compatible completions served from the [`Engine`],
//! behind `agora-wire` (every request signed by a gateway or validator hotkey).
//!
//! Signed routes: `POST /v1/chat/completions` and `POST /v1/completions` (JSON, or
//! server-sent events with `stream: true`), `POST /v1/logprobs` (score a token sequence,
//! the same one-pass scoring validators use), `GET /v1/models`. Public: `GET /health` with
//! the model served and the current load, for the gateway's routing.
//!
//! Requests may carry `"agora_token_ids": true` (an extension OpenAI clients never send):
//! the answer then names the prompt and completion token ids, and the end-of-sequence token
//! when one ended it, under `"agora"`. Validators need the exact tokens to check an answer.

use crate::engine::{
    ChatMessage, Completion as EngineCompletion, Engine, EngineError, FinishReason, Finished,
    GenerateEvent, GenerateRequest, ScoredToken, TokenEvent,
};
use agora_openai::{
    sse, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice,
    Completion, CompletionChoice, CompletionRequest, Delta, Limits, MinerHealth, Model, ModelList,
    OpenAiError, ResponseMessage, SamplingParams, Usage,
};
use agora_subnet::{metrics::NeuronMetrics, AxonRoutes};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc},
    time::{SystemTime, UNIX_EPOCH},
};

/// Most positions one `/v1/logprobs` call may score.
pub const MAX_SCORED_TOKENS: usize = 8192;

/// How a miner behaves. Everything but `Honest` is a cheat, for showing that validators
/// catch it; serving another model, or a coarser quantization, under the claimed name is
/// done with `--model` pointing elsewhere and `--served-model-name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the model as asked.
    Honest,
    /// Generates half the tokens asked for and claims the limit was reached.
    Truncate,
    /// Runs nothing: returns random tokens with made-up log-probabilities.
    Fabricate,
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "honest" => Ok(Behaviour::Honest),
            "truncate" => Ok(Behaviour::Truncate),
            "fabricate" => Ok(Behaviour::Fabricate),
            _ => Err(format!(
                "unknown behaviour '{s}': use honest, truncate or fabricate"
            )),
        }
    }
}

/// What the axon serves.
#[derive(Debug)]
pub struct InferenceMiner {
    engine: Arc<Engine>,
    model_id: String,
    behaviour: Behaviour,
    created: u64,
    metrics: Arc<NeuronMetrics>,
}

impl InferenceMiner {
    /// Serves `engine` as `model_id` (the engine's own id when `None`).
    pub fn new(
        engine: Arc<Engine>,
        model_id: Option<String>,
        behaviour: Behaviour,
        metrics: Arc<NeuronMetrics>,
    ) -> Self {
        let model_id = model_id.unwrap_or_else(|| engine.model_id().to_owned());
        InferenceMiner {
            engine,
            model_id,
            behaviour,
            created: unix_now(),
            metrics,
        }
    }

    /// The axon's routes.
    pub fn routes(self: Arc<Self>) -> AxonRoutes {
        let signed = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/completions", post(completions))
            .route("/v1/logprobs", post(logprobs))
            .route("/v1/models", get(models))
            .with_state(self.clone());
        let public = Router::new().route("/health", get(health)).with_state(self);
        AxonRoutes { signed, public }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_model_len: u32::try_from(self.engine.info().context_length).ok(),
            ..Limits::default()
        }
    }

    fn check_model(&self, model: &str) -> Result<(), OpenAiError> {
        if model == self.model_id {
            Ok(())
        } else {
            Err(OpenAiError::model_not_found(model))
        }
    }
}

/// The request extension validators use.
#[derive(Debug, Default, Deserialize)]
struct Extensions {
    #[serde(default)]
    agora_token_ids: bool,
}

/// The `"agora"` object of an answer to a request with `agora_token_ids`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIds {
    /// The prompt as the miner tokenized it.
    pub prompt_token_ids: Vec<u32>,
    /// The generated tokens (the end-of-sequence token excluded).
    pub completion_token_ids: Vec<u32>,
    /// The end-of-sequence token that ended the completion, if one did.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

/// An OpenAI-shaped error response.
struct ApiFailure(OpenAiError);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_json(),
        )
            .into_response()
    }
}

impl From<OpenAiError> for ApiFailure {
    fn from(e: OpenAiError) -> Self {
        ApiFailure(e)
    }
}

fn engine_error(e: EngineError) -> OpenAiError {
    match e {
        EngineError::Busy { .. } | EngineError::Stopped => OpenAiError::unavailable(e.to_string()),
        EngineError::InvalidRequest(_) => {
            OpenAiError::invalid(e.to_string(), "messages", "invalid_value")
        }
        other => OpenAiError::internal(other.to_string()),
    }
}

/// The token ids of a chat prompt: the model's chat template, rendered with the generation
/// prompt, tokenized as the template wrote it (the template adds any BOS itself). Miners and
/// validators both call this, so they agree on the prompt.
pub fn chat_prompt_ids(engine: &Engine, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
    let text = engine.apply_chat_template(messages, true)?;
    engine.encode(&text, false)
}

/// A validated request, ready for the engine.
struct Job {
    kind: Kind,
    prompt_ids: Vec<u32>,
    generate: GenerateRequest,
    stream: bool,
    include_usage: bool,
    want_ids: bool,
    /// Legacy completions: prepend the prompt text to the answer.
    echo: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

fn generate_request(
    engine: &Engine,
    prompt: &[u32],
    max_tokens: Option<u32>,
    sampling: &SamplingParams,
) -> Result<GenerateRequest, OpenAiError> {
    let context = engine.info().context_length;
    let room = context.saturating_sub(prompt.len());
    if room == 0 {
        return Err(OpenAiError::invalid(
            format!(
                "This model's maximum context length is {context} tokens; the prompt alone \
                 has {} tokens.",
                prompt.len()
            ),
            "messages",
            "context_length_exceeded",
        ));
    }
    let max_tokens = match max_tokens {
        Some(m) => usize::try_from(m).unwrap_or(usize::MAX),
        None => room,
    };
    if max_tokens > room {
        return Err(OpenAiError::invalid(
            format!(
                "This model's maximum context length is {context} tokens. However, you \
                 requested {} tokens ({} in the messages, {max_tokens} in the completion).",
                prompt.len().saturating_add(max_tokens),
                prompt.len()
            ),
            "max_tokens",
            "context_length_exceeded",
        ));
    }
    Ok(GenerateRequest {
        prompt: prompt.to_vec(),
        max_tokens,
        temperature: sampling.temperature as f32,
        top_p: sampling.top_p as f32,
        top_k: 0,
        seed: sampling.seed,
        stop: sampling.stop.clone(),
        logprobs: sampling.logprobs,
        top_logprobs: usize::from(sampling.top_logprobs),
        ignore_eos: false,
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(T, Extensions), OpenAiError> {
    let request = serde_json::from_slice(body).map_err(OpenAiError::invalid_json)?;
    // The extension is optional and never an error: the request already parsed.
    let ext = serde_json::from_slice(body).unwrap_or_default();
    Ok((request, ext))
}

pub(crate) async fn chat_completions(
    State(miner): State<Arc<InferenceMiner>>,
    body: Bytes,
) -> Response {
    let job = (|| {
        let (req, ext): (ChatCompletionRequest, Extensions) = parse(&body)?;
        let v = req.validate(&miner.limits())?;
        miner.check_model(&v.model)?;
        let messages: Vec<ChatMessage> = v
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.clone()))
            .collect();
        let prompt_ids = chat_prompt_ids(&miner.engine, &messages).map_err(engine_error)?;
        let generate = generate_request(&miner.engine, &prompt_ids, v.max_tokens, &v.sampling)?;
        Ok::<_, OpenAiError>(Job {
            kind: Kind::Chat,
            prompt_ids,
            generate,
            stream: v.stream,
            include_usage: v.include_usage,
            want_ids: ext.agora_token_ids,
            echo: None,
        })
    })();
    serve(miner, job).await
}

async fn completions(State(miner): State<Arc<InferenceMiner>>, body: Bytes) -> Response {
    let job = (|| {
        let (req, ext): (CompletionRequest, Extensions) = parse(&body)?;
        let v = req.validate(&miner.limits())?;
        miner.check_model(&v.model)?;
        if v.echo && v.sampling.logprobs {
            return Err(OpenAiError::invalid(
                "'echo' together with 'logprobs' is not supported.",
                "echo",
                "unsupported_value",
            ));
        }
        let prompt_ids = miner.engine.encode(&v.prompt, true).map_err(engine_error)?;
        let generate =
            generate_request(&miner.engine, &prompt_ids, Some(v.max_tokens), &v.sampling)?;
        Ok(Job {
            kind: Kind::Text,
            prompt_ids,
            generate,
            stream: v.stream,
            include_usage: v.include_usage,
            want_ids: ext.agora_token_ids,
            echo: v.echo.then(|| v.prompt.clone()),
        })
    })();
    serve(miner, job).await
}

async fn serve(miner: Arc<InferenceMiner>, job: Result<Job, OpenAiError>) -> Response {
    let m = &miner.metrics;
    let started = std::time::Instant::now();
    let result = match job {
        Ok(job) if job.stream => stream(miner.clone(), job),
        Ok(job) => complete(miner.clone(), job).await,
        Err(e) => Err(e),
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    m.handler_micros.fetch_add(micros, Ordering::Relaxed);
    match result {
        Ok(r) => {
            NeuronMetrics::inc(&m.requests_ok);
            r
        }
        Err(e) => {
            NeuronMetrics::inc(&m.requests_failed);
            ApiFailure(e).into_response()
        }
    }
}

/// Runs a job, honestly or as the miner's behaviour says.
fn start(
    miner: &InferenceMiner,
    job: &Job,
) -> Result<tokio::sync::mpsc::UnboundedReceiver<GenerateEvent>, OpenAiError> {
    let mut req = job.generate.clone();
    match miner.behaviour {
        Behaviour::Honest => {}
        Behaviour::Truncate => req.max_tokens = req.max_tokens.div_ceil(2),
        Behaviour::Fabricate => return Ok(fabricate(miner, &req)),
    }
    let mut stream = miner.engine.generate(req).map_err(engine_error)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let truncating = miner.behaviour == Behaviour::Truncate;
    tokio::spawn(async move {
        while let Some(mut ev) = stream.next().await {
            if let (true, GenerateEvent::Finished(f)) = (truncating, &mut ev) {
                // The cheat: claim the limit was reached.
                f.finish_reason = FinishReason::Length;
                f.eos_token = None;
                f.stop_sequence = None;
            }
            if tx.send(ev).is_err() {
                // The caller is gone: dropping the engine stream cancels the generation.
                return;
            }
        }
    });
    Ok(rx)
}

/// The fabricating cheat: random tokens, no model run, invented log-probabilities.
fn fabricate(
    miner: &InferenceMiner,
    req: &GenerateRequest,
) -> tokio::sync::mpsc::UnboundedReceiver<GenerateEvent> {
    use rand::Rng;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let vocab = u32::try_from(miner.engine.info().vocab_size)
        .unwrap_or(u32::MAX)
        .max(1);
    let mut rng = rand::thread_rng();
    let mut ids = Vec::with_capacity(req.max_tokens);
    for index in 0..req.max_tokens {
        let id = rng.gen_range(0..vocab);
        ids.push(id);
        let text = miner.engine.decode(&[id], true).unwrap_or_default();
        let _ = tx.send(GenerateEvent::Token(TokenEvent {
            index,
            id,
            token: text.clone(),
            text,
            logprob: req.logprobs.then_some(-0.5),
            top_logprobs: Vec::new(),
        }));
    }
    let _ = tx.send(GenerateEvent::Finished(Finished {
        tail: String::new(),
        finish_reason: FinishReason::Length,
        stop_sequence: None,
        eos_token: None,
        prompt_tokens: req.prompt.len(),
        completion_tokens: ids.len(),
        time_to_first_token: std::time::Duration::ZERO,
        total_time: std::time::Duration::ZERO,
        decode_tokens_per_s: 0.0,
        seed: req.seed.unwrap_or_default(),
    }));
    rx
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id(kind: Kind) -> String {
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Text => "cmpl",
    };
    format!("{prefix}-{:032x}", rand::random::<u128>())
}

fn finish_reason(f: &Finished) -> String {
    match f.finish_reason {
        FinishReason::Stop => "stop".into(),
        FinishReason::Length => "length".into(),
    }
}

/// OpenAI's chat `logprobs.content` entries for `tokens`.
fn chat_logprobs(tokens: &[TokenEvent]) -> Value {
    let entry = |token: &str, logprob: f32| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut e = entry(&t.token, t.logprob.unwrap_or(0.0));
            e["top_logprobs"] = Value::Array(
                t.top_logprobs
                    .iter()
                    .map(|a| entry(&a.token, a.logprob))
                    .collect(),
            );
            e
        })
        .collect();
    json!({ "content": content })
}

/// The legacy completions `logprobs` object for `tokens`, offsets counted from `offset`.
fn text_logprobs(tokens: &[TokenEvent], mut offset: usize) -> Value {
    let mut text_offset = Vec::with_capacity(tokens.len());
    for t in tokens {
        text_offset.push(offset);
        offset += t.text.len();
    }
    let top: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let map: serde_json::Map<String, Value> = t
                .top_logprobs
                .iter()
                .map(|a| (a.token.clone(), json!(a.logprob)))
                .collect();
            Value::Object(map)
        })
        .collect();
    json!({
        "tokens": tokens.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": text_offset,
    })
}

fn token_ids(job: &Job, tokens: &[TokenEvent], finished: &Finished) -> TokenIds {
    TokenIds {
        prompt_token_ids: job.prompt_ids.clone(),
        completion_token_ids: tokens.iter().map(|t| t.id).collect(),
        eos_token_id: finished.eos_token,
    }
}

fn usage(f: &Finished) -> Usage {
    Usage::new(f.prompt_tokens as u64, f.completion_tokens as u64)
}

async fn complete(miner: Arc<InferenceMiner>, job: Job) -> Result<Response, OpenAiError> {
    let mut rx = start(&miner, &job)?;
    let mut tokens = Vec::new();
    let mut text = String::new();
    let finished = loop {
        match rx.recv().await {
            Some(GenerateEvent::Token(t)) => {
                text.push_str(&t.text);
                tokens.push(t);
            }
            Some(GenerateEvent::Finished(f)) => {
                text.push_str(&f.tail);
                break f;
            }
            Some(GenerateEvent::Error(e)) => return Err(engine_error(e)),
            None => return Err(engine_error(EngineError::Stopped)),
        }
    };
    let done = EngineCompletion {
        tokens,
        text,
        finished,
    };
    let id = completion_id(job.kind);
    let want_logprobs = job.generate.logprobs;
    let mut body = match job.kind {
        Kind::Chat => serde_json::to_value(ChatCompletion {
            id,
            object: "chat.completion".into(),
            created: unix_now(),
            model: miner.model_id.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: Some(done.text.clone()),
                    refusal: None,
                },
                logprobs: want_logprobs.then(|| chat_logprobs(&done.tokens)),
                finish_reason: Some(finish_reason(&done.finished)),
            }],
            usage: Some(usage(&done.finished)),
            system_fingerprint: None,
        }),
        Kind::Text => {
            let prefix = job.echo.clone().unwrap_or_default();
            serde_json::to_value(Completion {
                id,
                object: "text_completion".into(),
                created: unix_now(),
                model: miner.model_id.clone(),
                choices: vec![CompletionChoice {
                    text: format!("{prefix}{}", done.text),
                    index: 0,
                    logprobs: want_logprobs.then(|| text_logprobs(&done.tokens, prefix.len())),
                    finish_reason: Some(finish_reason(&done.finished)),
                }],
                usage: Some(usage(&done.finished)),
                system_fingerprint: None,
            })
        }
    }
    .map_err(|e| OpenAiError::internal(e.to_string()))?;
    if job.want_ids {
        body["agora"] = json!(token_ids(&job, &done.tokens, &done.finished));
    }
    Ok(Json(body).into_response())
}

/// Serializes one stream event; a failure here is a bug, reported in the stream.
fn event<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(sse::encode_json(value).unwrap_or_else(|e| {
        sse::encode_json(&OpenAiError::internal(e.to_string()).body()).unwrap_or_default()
    }))
}

fn stream(miner: Arc<InferenceMiner>, job: Job) -> Result<Response, OpenAiError> {
    let mut rx = start(&miner, &job)?;
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let id = completion_id(job.kind);
        let created = unix_now();
        let model = miner.model_id.clone();
        let chat_chunk = |delta: Delta, logprobs: Option<Value>, finish: Option<String>| {
            event(&ChatCompletionChunk {
                id: id.clone(),
                object: "chat.completion.chunk".into(),
                created,
                model: model.clone(),
                choices: vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs,
                    finish_reason: finish,
                }],
                usage: None,
                system_fingerprint: None,
            })
        };
        let text_chunk = |text: String, logprobs: Option<Value>, finish: Option<String>| {
            event(&Completion {
                id: id.clone(),
                object: "text_completion".into(),
                created,
                model: model.clone(),
                choices: vec![CompletionChoice {
                    text,
                    index: 0,
                    logprobs,
                    finish_reason: finish,
                }],
                usage: None,
                system_fingerprint: None,
            })
        };
        let mut offset = 0usize;
        let first = match job.kind {
            Kind::Chat => Some(chat_chunk(
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                },
                None,
                None,
            )),
            Kind::Text => job.echo.clone().map(|p| {
                offset = p.len();
                text_chunk(p, None, None)
            }),
        };
        if let Some(first) = first {
            if tx.send(first).await.is_err() {
                return;
            }
        }
        let mut tokens = Vec::new();
        let finished = loop {
            let chunk = match rx.recv().await {
                Some(GenerateEvent::Token(t)) => {
                    let one = std::slice::from_ref(&t);
                    let chunk = match job.kind {
                        Kind::Chat => chat_chunk(
                            Delta {
                                role: None,
                                content: Some(t.text.clone()),
                            },
                            job.generate.logprobs.then(|| chat_logprobs(one)),
                            None,
                        ),
                        Kind::Text => text_chunk(
                            t.text.clone(),
                            job.generate.logprobs.then(|| text_logprobs(one, offset)),
                            None,
                        ),
                    };
                    offset += t.text.len();
                    tokens.push(t);
                    chunk
                }
                Some(GenerateEvent::Finished(f)) => break f,
                Some(GenerateEvent::Error(e)) => {
                    let _ = tx.send(event(&engine_error(e).body())).await;
                    return;
                }
                None => return,
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        };
        let reason = Some(finish_reason(&finished));
        if !finished.tail.is_empty() {
            let tail = match job.kind {
                Kind::Chat => chat_chunk(
                    Delta {
                        role: None,
                        content: Some(finished.tail.clone()),
                    },
                    None,
                    None,
                ),
                Kind::Text => text_chunk(finished.tail.clone(), None, None),
            };
            if tx.send(tail).await.is_err() {
                return;
            }
        }
        let last = match job.kind {
            Kind::Chat => chat_chunk(Delta::default(), None, reason),
            Kind::Text => text_chunk(String::new(), None, reason),
        };
        let mut tail = vec![last];
        if job.include_usage || job.want_ids {
            let usage = usage(&finished);
            let mut v = match job.kind {
                Kind::Chat => json!({
                    "id": id, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [], "usage": usage,
                }),
                Kind::Text => json!({
                    "id": id, "object": "text_completion", "created": created,
                    "model": model, "choices": [], "usage": usage,
                }),
            };
            if job.want_ids {
                v["agora"] = json!(token_ids(&job, &tokens, &finished));
            }
            tail.push(event(&v));
        }
        tail.push(Bytes::from_static(sse::DONE_EVENT));
        for b in tail {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    let body = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, sse::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `POST /v1/logprobs`: log-probabilities of `token_ids[start..]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogprobsRequest {
    /// The model id.
    pub model: String,
    /// The whole sequence, prompt included.
    pub token_ids: Vec<u32>,
    /// First position scored (at least 1).
    pub start: usize,
    /// Alternatives per position, 0 to 20.
    #[serde(default)]
    pub top_logprobs: usize,
}

/// The answer to a [`LogprobsRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogprobsResponse {
    /// The model id.
    pub model: String,
    /// One entry per scored position.
    pub tokens: Vec<ScoredToken>,
}

async fn logprobs(State(miner): State<Arc<InferenceMiner>>, body: Bytes) -> Response {
    let result = async {
        let req: LogprobsRequest =
            serde_json::from_slice(&body).map_err(OpenAiError::invalid_json)?;
        miner.check_model(&req.model)?;
        if req.token_ids.len() > MAX_SCORED_TOKENS {
            return Err(OpenAiError::invalid(
                format!("at most {MAX_SCORED_TOKENS} tokens may be scored"),
                "token_ids",
                "array_above_max_length",
            ));
        }
        let engine = miner.engine.clone();
        let tokens = tokio::task::spawn_blocking(move || {
            engine.score(&req.token_ids, req.start, req.top_logprobs)
        })
        .await
        .map_err(|e| OpenAiError::internal(e.to_string()))?
        .map_err(engine_error)?;
        Ok(LogprobsResponse {
            model: miner.model_id.clone(),
            tokens,
        })
    }
    .await;
    match result {
        Ok(r) => Json(r).into_response(),
        Err(e) => ApiFailure(e).into_response(),
    }
}

async fn models(State(miner): State<Arc<InferenceMiner>>) -> Json<ModelList> {
    let mut model = Model::new(miner.model_id.clone(), miner.created, "agora-miner");
    model.max_model_len = u32::try_from(miner.engine.info().context_length).ok();
    Json(ModelList::new(vec![model]))
}

async fn health(State(miner): State<Arc<InferenceMiner>>) -> Json<MinerHealth> {
    let c = miner.engine.capacity();
    Json(MinerHealth {
        models: vec![miner.model_id.clone()],
        max_concurrency: u32::try_from(c.max_concurrent).unwrap_or(u32::MAX),
        in_flight: u32::try_from(c.in_flight).unwrap_or(u32::MAX),
    })
}
