//! A loopback miner for the gateway's benchmark and tests. It is not an inference engine: it
//! answers deterministically by echoing the last user message (or the prompt) word by word,
//! counting words as tokens. It serves the miner contract exactly — the OpenAI routes,
//! `/v1/models` with `max_model_len`, `/health` — behind the real `agora-wire` guard, so
//! what the gateway does against it is what it does against a real miner.

use agora_openai::{
    sse, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice,
    Completion, CompletionChoice, CompletionRequest, Delta, Limits, MinerHealth, Model, ModelList,
    OpenAiError, ResponseMessage, Role, Usage,
};
use agora_primitives::{crypto::Pair, AccountId};
use agora_wire::{Guard, GuardConfig, StaticMetagraph};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
    Json, Router,
};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{net::TcpListener, sync::oneshot};

/// How the echo miner behaves.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// The model id it serves.
    pub model: String,
    /// The context length it reports and enforces.
    pub max_model_len: u32,
    /// The concurrency it reports on `/health`.
    pub max_concurrency: u32,
    /// Answer every generation request with this status instead (failure tests).
    pub fail_status: Option<u16>,
    /// Break the connection after this many stream events (failure tests).
    pub cut_stream_after: Option<usize>,
    /// Pause before each stream event.
    pub event_delay: Duration,
    /// Hotkeys the guard admits (the gateway's, a benchmark client's); nobody else is.
    pub trusted: Vec<AccountId>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            model: "echo".into(),
            max_model_len: 4096,
            max_concurrency: 64,
            fail_status: None,
            cut_stream_after: None,
            event_delay: Duration::ZERO,
            trusted: Vec::new(),
        }
    }
}

/// A running echo miner.
#[derive(Debug)]
pub struct EchoMiner {
    /// `http://addr`.
    pub url: String,
    /// Its hotkey.
    pub hotkey: AccountId,
    /// Generation requests it answered.
    pub served: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoMiner {
    /// `--miner` syntax: `URL=HOTKEY`.
    pub fn spec(&self) -> String {
        format!("{}={}", self.url, self.hotkey.to_ss58())
    }

    /// Stops serving and closes the listener (open connections finish their requests).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

struct EchoState {
    config: EchoConfig,
    in_flight: AtomicU32,
    served: Arc<AtomicU64>,
    created: u64,
    ids: AtomicU64,
}

/// Starts an echo miner with hotkey `pair` on `listen` (use port 0 for a free one).
pub async fn spawn(
    pair: Pair,
    config: EchoConfig,
    listen: SocketAddr,
) -> std::io::Result<EchoMiner> {
    let hotkey = pair.account();
    let guard = Arc::new(Guard::new(
        pair,
        Arc::new(StaticMetagraph::default()),
        GuardConfig {
            trusted_hotkeys: config.trusted.clone(),
            rate_limit: None,
            ..GuardConfig::default()
        },
    ));
    let served = Arc::new(AtomicU64::new(0));
    let state = Arc::new(EchoState {
        config,
        in_flight: AtomicU32::new(0),
        served: served.clone(),
        created: 1_700_000_000,
        ids: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .with_state(state)
        .layer(guard.layer());
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(EchoMiner {
        url: format!("http://{addr}"),
        hotkey,
        served,
        shutdown: Some(tx),
        task,
    })
}

fn openai_error(e: &OpenAiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.to_json(),
    )
        .into_response()
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// The reply: the echoed words, cut to `max_tokens`, and whether the cut happened.
fn reply(source: &str, max_tokens: Option<u32>) -> (Vec<String>, &'static str) {
    let all = words(source);
    let cap = max_tokens.map_or(usize::MAX, |m| m as usize);
    let finish = if all.len() > cap { "length" } else { "stop" };
    (
        all.into_iter().take(cap).map(str::to_owned).collect(),
        finish,
    )
}

async fn models(State(s): State<Arc<EchoState>>) -> Json<ModelList> {
    Json(ModelList::new(vec![Model {
        max_model_len: Some(s.config.max_model_len),
        ..Model::new(&s.config.model, s.created, "echo")
    }]))
}

async fn health(State(s): State<Arc<EchoState>>) -> Json<MinerHealth> {
    Json(MinerHealth {
        models: vec![s.config.model.clone()],
        max_concurrency: s.config.max_concurrency,
        in_flight: s.in_flight.load(Ordering::Relaxed),
    })
}

/// What a validated request of either route asks for.
struct Job {
    model: String,
    prompt_tokens: u64,
    words: Vec<String>,
    finish: &'static str,
    stream: bool,
    include_usage: bool,
}

fn limits(s: &EchoState) -> Limits {
    Limits {
        max_model_len: Some(s.config.max_model_len),
        ..Limits::default()
    }
}

async fn chat(State(s): State<Arc<EchoState>>, body: Bytes) -> Response {
    let job = serde_json::from_slice::<ChatCompletionRequest>(&body)
        .map_err(OpenAiError::invalid_json)
        .and_then(|r| r.validate(&limits(&s)))
        .map(|v| {
            let source = v
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .unwrap_or("");
            let (words, finish) = reply(source, v.max_tokens);
            let prompt_tokens: usize = v
                .messages
                .iter()
                .map(|m| self::words(&m.content).len())
                .sum();
            Job {
                model: v.model,
                prompt_tokens: prompt_tokens as u64,
                words,
                finish,
                stream: v.stream,
                include_usage: v.include_usage,
            }
        });
    answer(s, job, true).await
}

async fn completions(State(s): State<Arc<EchoState>>, body: Bytes) -> Response {
    let job = serde_json::from_slice::<CompletionRequest>(&body)
        .map_err(OpenAiError::invalid_json)
        .and_then(|r| r.validate(&limits(&s)))
        .map(|v| {
            let (words, finish) = reply(&v.prompt, Some(v.max_tokens));
            Job {
                model: v.model,
                prompt_tokens: self::words(&v.prompt).len() as u64,
                words,
                finish,
                stream: v.stream,
                include_usage: v.include_usage,
            }
        });
    answer(s, job, false).await
}

async fn answer(s: Arc<EchoState>, job: Result<Job, OpenAiError>, chat: bool) -> Response {
    if let Some(status) = s.config.fail_status {
        return openai_error(&OpenAiError::new(
            status,
            agora_openai::error::SERVER_ERROR,
            "the echo miner is set to fail",
            None,
            None,
        ));
    }
    let job = match job {
        Ok(j) => j,
        Err(e) => return openai_error(&e),
    };
    if job.model != s.config.model {
        return openai_error(&OpenAiError::model_not_found(&job.model));
    }
    s.served.fetch_add(1, Ordering::Relaxed);
    let n = s.ids.fetch_add(1, Ordering::Relaxed);
    let usage = Usage::new(job.prompt_tokens, job.words.len() as u64);
    if !job.stream {
        let text = job.words.join(" ");
        return if chat {
            Json(ChatCompletion {
                id: format!("chatcmpl-echo-{n}"),
                object: "chat.completion".into(),
                created: s.created,
                model: job.model,
                choices: vec![ChatChoice {
                    index: 0,
                    message: ResponseMessage {
                        role: "assistant".into(),
                        content: Some(text),
                        refusal: None,
                    },
                    logprobs: None,
                    finish_reason: Some(job.finish.into()),
                }],
                usage: Some(usage),
                system_fingerprint: None,
            })
            .into_response()
        } else {
            Json(Completion {
                id: format!("cmpl-echo-{n}"),
                object: "text_completion".into(),
                created: s.created,
                model: job.model,
                choices: vec![CompletionChoice {
                    text,
                    index: 0,
                    logprobs: None,
                    finish_reason: Some(job.finish.into()),
                }],
                usage: Some(usage),
                system_fingerprint: None,
            })
            .into_response()
        };
    }
    let events = stream_events(&s, &job, chat, n, usage);
    let delay = s.config.event_delay;
    let cut = s.config.cut_stream_after;
    let busy = Busy::new(s.clone());
    let body = futures::stream::unfold((0usize, busy), move |(i, busy)| {
        let event = events.get(i).cloned();
        async move {
            if i == usize::MAX {
                return None;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if cut.is_some_and(|c| i >= c) {
                let cut = std::io::Error::other("stream cut by configuration");
                return Some((Err(cut), (usize::MAX, busy)));
            }
            event.map(|e| (Ok(e), (i + 1, busy)))
        }
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(sse::CONTENT_TYPE),
    );
    r
}

/// Counts a stream in flight until its body is done or dropped.
struct Busy(Arc<EchoState>);

impl Busy {
    fn new(s: Arc<EchoState>) -> Self {
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(s)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn stream_events(s: &EchoState, job: &Job, chat: bool, n: u64, usage: Usage) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(job.words.len() + 4);
    let count = job.words.len();
    let encode = |v: &dyn erased::Json| Bytes::from(v.sse());
    if chat {
        let chunk = |delta: Delta, finish: Option<&str>, usage: Option<Usage>, choices: bool| {
            ChatCompletionChunk {
                id: format!("chatcmpl-echo-{n}"),
                object: "chat.completion.chunk".into(),
                created: s.created,
                model: job.model.clone(),
                choices: if choices {
                    vec![ChunkChoice {
                        index: 0,
                        delta,
                        logprobs: None,
                        finish_reason: finish.map(str::to_owned),
                    }]
                } else {
                    Vec::new()
                },
                usage,
                system_fingerprint: None,
            }
        };
        out.push(encode(&chunk(
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
            },
            None,
            None,
            true,
        )));
        for (i, w) in job.words.iter().enumerate() {
            let text = if i + 1 < count {
                format!("{w} ")
            } else {
                w.clone()
            };
            out.push(encode(&chunk(
                Delta {
                    role: None,
                    content: Some(text),
                },
                None,
                None,
                true,
            )));
        }
        out.push(encode(&chunk(
            Delta::default(),
            Some(job.finish),
            None,
            true,
        )));
        if job.include_usage {
            out.push(encode(&chunk(Delta::default(), None, Some(usage), false)));
        }
    } else {
        let chunk =
            |text: String, finish: Option<&str>, usage: Option<Usage>, choices: bool| Completion {
                id: format!("cmpl-echo-{n}"),
                object: "text_completion".into(),
                created: s.created,
                model: job.model.clone(),
                choices: if choices {
                    vec![CompletionChoice {
                        text,
                        index: 0,
                        logprobs: None,
                        finish_reason: finish.map(str::to_owned),
                    }]
                } else {
                    Vec::new()
                },
                usage,
                system_fingerprint: None,
            };
        for (i, w) in job.words.iter().enumerate() {
            let text = if i + 1 < count {
                format!("{w} ")
            } else {
                w.clone()
            };
            out.push(encode(&chunk(text, None, None, true)));
        }
        out.push(encode(&chunk(String::new(), Some(job.finish), None, true)));
        if job.include_usage {
            out.push(encode(&chunk(String::new(), None, Some(usage), false)));
        }
    }
    out.push(Bytes::from_static(sse::DONE_EVENT));
    out
}

/// Serialisation of either chunk type as one event.
mod erased {
    pub(super) trait Json {
        fn sse(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn sse(&self) -> Vec<u8> {
            agora_openai::sse::encode_json(self).unwrap_or_default()
        }
    }
}
