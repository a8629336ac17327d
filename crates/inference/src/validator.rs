//! The inference validator: challenges each miner with a fresh chat prompt, streams the
//! answer (time to first token, decode speed), and checks it against its own copy of the
//! model in one prefill ([`crate::verify`]). Score = correctness gate × speed × availability:
//! a failed check jails the miner (score 0) for some rounds, a failed query scores 0, and a
//! verified answer scores by [`speed_factor`].

use crate::challenge::{speed_factor, Challenge, SpeedReference};
use crate::engine::{ChatMessage, Engine};
use crate::miner::{chat_prompt_ids, TokenIds};
use crate::verify::{self, Claim, Finish, Recomputed, VerifyPolicy};
use agora_openai::sse::SseDecoder;
use agora_primitives::AccountId;
use agora_subnet::{Protocol, QueryOutcome, ValidatorLogic};
use agora_wire::{WireClient, WireReply};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest streamed event the validator accepts.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// The inference subnet's challenge protocol: an OpenAI chat request, streamed.
#[derive(Debug)]
pub struct InferenceChat;

/// A challenge as sent: the OpenAI chat body with the `agora_token_ids` extension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// The model the miner claims to serve.
    pub model: String,
    /// One user message.
    pub messages: Vec<agora_openai::ChatMessage>,
    /// Completion length.
    pub max_tokens: u32,
    /// 0 for greedy.
    pub temperature: f32,
    /// Sampling seed.
    pub seed: u64,
    /// Always true: the check compares log-probabilities.
    pub logprobs: bool,
    /// Always true: time to first token is measured on the stream.
    pub stream: bool,
    /// Always true: the check needs the exact tokens.
    pub agora_token_ids: bool,
}

/// What one query found: whether the answer verified, and how fast it came.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The miner's hotkey (SS58).
    pub hotkey: String,
    /// `None` when the answer verified, else why not.
    pub rejection: Option<String>,
    /// Time to the first content token.
    pub ttft: Duration,
    /// Time to the end of the stream.
    pub total: Duration,
    /// Completion tokens.
    pub tokens: u32,
}

impl Protocol for InferenceChat {
    type Request = ChallengeRequest;
    type Response = Observation;
    const ROUTE: &'static str = "/v1/chat/completions";
}

/// A miner's answer, as the validator received it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The streamed text.
    pub text: String,
    /// Reported log-probability of each streamed token.
    pub reported_logprobs: Vec<f32>,
    /// `stop` or `length`.
    pub finish_reason: String,
    /// The token ids the miner says it used.
    pub ids: TokenIds,
}

/// Checks `answer` to a chat prompt against `engine` (blocking: one prefill). Returns why it
/// was rejected, if it was.
pub fn check_answer(
    engine: &Engine,
    messages: &[ChatMessage],
    challenge: &Challenge,
    answer: &Answer,
    policy: &VerifyPolicy,
) -> Result<(), String> {
    let prompt = chat_prompt_ids(engine, messages).map_err(|e| format!("validator: {e}"))?;
    if prompt != answer.ids.prompt_token_ids {
        return Err("the prompt tokens differ from the validator's".into());
    }
    let mut tokens = answer.ids.completion_token_ids.clone();
    let finish = match (answer.finish_reason.as_str(), answer.ids.eos_token_id) {
        ("length", None) => Finish::Length,
        ("stop", Some(eos)) => {
            tokens.push(eos);
            Finish::EndOfSequence
        }
        // The challenge has no stop sequences, so `stop` must be an end of sequence.
        (reason, eos) => return Err(format!("finish '{reason}' with end token {eos:?}")),
    };
    let text = engine
        .decode(&answer.ids.completion_token_ids, true)
        .map_err(|e| format!("completion tokens: {e}"))?;
    if text != answer.text {
        return Err("the streamed text is not the text of the claimed tokens".into());
    }
    if tokens.is_empty() {
        return Err(verify::Rejection::Empty.to_string());
    }
    let mut sequence = prompt.clone();
    sequence.extend_from_slice(&tokens);
    let scored = engine
        .score(&sequence, prompt.len(), 1)
        .map_err(|e| format!("scoring: {e}"))?;
    let logprobs: Vec<f32> = scored.iter().map(|s| s.logprob).collect();
    let best: Vec<f32> = scored
        .iter()
        .map(|s| s.top_logprobs.first().map_or(s.logprob, |t| t.logprob))
        .collect();
    let entropies: Vec<f32> = scored.iter().map(|s| s.entropy).collect();
    let variances: Vec<f32> = scored.iter().map(|s| s.logprob_variance).collect();
    // The end token is not streamed, so it has no reported log-probability: check the
    // streamed ones against the first positions.
    let reported = &answer.reported_logprobs;
    if reported.len() != answer.ids.completion_token_ids.len() {
        return Err(format!(
            "{} log-probabilities reported for {} tokens",
            reported.len(),
            answer.ids.completion_token_ids.len()
        ));
    }
    let mut recomputed_reported = logprobs.clone();
    recomputed_reported.truncate(reported.len());
    verify::verify_reported(reported, &recomputed_reported, policy).map_err(|e| e.to_string())?;
    verify::verify(
        &Claim {
            tokens: &tokens,
            finish,
            max_tokens: challenge.max_tokens,
            greedy: challenge.greedy(),
        },
        &Recomputed {
            logprobs: &logprobs,
            best_logprobs: &best,
            entropies: &entropies,
            logprob_variances: &variances,
        },
        policy,
    )
    .map_err(|e| e.to_string())
}

/// The validator's logic and its memory of who cheated.
#[derive(Debug)]
pub struct InferenceValidator {
    engine: Arc<Engine>,
    model_id: String,
    /// Completion length of each challenge.
    pub max_tokens: u32,
    /// Share of greedy challenges.
    pub greedy_share: f64,
    /// What a verified answer's speed is measured against.
    pub reference: SpeedReference,
    /// Verification tolerances.
    pub policy: VerifyPolicy,
    /// Rounds a miner scores 0 after a failed check.
    pub jail_rounds: u32,
    jailed: Mutex<HashMap<String, u32>>,
}

impl InferenceValidator {
    /// A validator holding its own copy of the model, served by miners as `model_id`.
    pub fn new(engine: Arc<Engine>, model_id: Option<String>) -> Self {
        let model_id = model_id.unwrap_or_else(|| engine.model_id().to_owned());
        InferenceValidator {
            engine,
            model_id,
            max_tokens: 16,
            greedy_share: 0.5,
            reference: SpeedReference {
                ttft: Duration::from_millis(200),
                per_token: Duration::from_millis(50),
            },
            policy: VerifyPolicy::default(),
            jail_rounds: 8,
            jailed: Mutex::new(HashMap::new()),
        }
    }

    async fn ask(
        &self,
        wire: &WireClient,
        axon: &str,
        hotkey: &AccountId,
        request: &ChallengeRequest,
    ) -> Result<(Answer, Duration, Duration), String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let url = format!("{axon}{}", InferenceChat::ROUTE);
        let started = Instant::now();
        let reply = wire
            .send_streaming(
                http::Method::POST,
                &url,
                hotkey,
                body,
                Some("application/json"),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = match reply {
            WireReply::Stream(s) => s,
            WireReply::Buffered(r) => {
                return Err(format!(
                    "expected a stream, got status {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ))
            }
        };
        let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        let mut answer = Answer::default();
        let mut ttft = None;
        let mut done = false;
        let mut ids = None;
        while let Some(chunk) = stream.next_chunk().await.map_err(|e| e.to_string())? {
            decoder
                .feed(&chunk, &mut events)
                .map_err(|e| e.to_string())?;
            for ev in events.drain(..) {
                if ev.is_done() {
                    done = true;
                    continue;
                }
                let v: Value = serde_json::from_str(&ev.data).map_err(|e| e.to_string())?;
                if let Some(err) = v.get("error") {
                    return Err(format!("miner error: {err}"));
                }
                if let Some(agora) = v.get("agora") {
                    ids = Some(
                        serde_json::from_value::<TokenIds>(agora.clone())
                            .map_err(|e| format!("agora token ids: {e}"))?,
                    );
                }
                let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
                    continue;
                };
                if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                    if !text.is_empty() && ttft.is_none() {
                        ttft = Some(started.elapsed());
                    }
                    answer.text.push_str(text);
                }
                if let Some(content) = choice
                    .pointer("/logprobs/content")
                    .and_then(Value::as_array)
                {
                    for entry in content {
                        let lp = entry.get("logprob").and_then(Value::as_f64);
                        answer
                            .reported_logprobs
                            .push(lp.map_or(f32::NAN, |v| v as f32));
                    }
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    answer.finish_reason = reason.to_owned();
                }
            }
        }
        let total = started.elapsed();
        if !done {
            return Err("the stream ended without [DONE]".into());
        }
        answer.ids = ids.ok_or("the answer carries no token ids")?;
        Ok((answer, ttft.unwrap_or(total), total))
    }
}

impl ValidatorLogic for InferenceValidator {
    type P = InferenceChat;
    type Check = ();

    fn challenge(&self, _uid: u16, rng: &mut ChaCha20Rng) -> (ChallengeRequest, ()) {
        let c = Challenge::generate(rng, self.max_tokens, self.greedy_share);
        let request = ChallengeRequest {
            model: self.model_id.clone(),
            messages: vec![agora_openai::ChatMessage {
                role: "user".into(),
                content: Some(Value::String(c.prompt)),
                name: None,
            }],
            max_tokens: c.max_tokens,
            temperature: c.temperature,
            seed: c.seed,
            logprobs: true,
            stream: true,
            agora_token_ids: true,
        };
        (request, ())
    }

    async fn query(
        &self,
        wire: &WireClient,
        axon: &str,
        hotkey: &AccountId,
        request: ChallengeRequest,
    ) -> QueryOutcome<Observation> {
        let (answer, ttft, total) = match self.ask(wire, axon, hotkey, &request).await {
            Ok(a) => a,
            Err(error) => return QueryOutcome::Failed { error },
        };
        let challenge = Challenge {
            prompt: request
                .messages
                .first()
                .and_then(|m| m.content.as_ref())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            seed: request.seed,
        };
        let messages = vec![ChatMessage::new("user", challenge.prompt.clone())];
        let engine = self.engine.clone();
        let policy = self.policy;
        let tokens = u32::try_from(answer.ids.completion_token_ids.len()).unwrap_or(u32::MAX);
        let verdict = tokio::task::spawn_blocking(move || {
            check_answer(&engine, &messages, &challenge, &answer, &policy)
        })
        .await
        .unwrap_or_else(|e| Err(format!("validator: {e}")));
        if let Err(reason) = &verdict {
            tracing::info!(miner = %hotkey, %reason, "answer rejected");
        }
        QueryOutcome::Answered {
            response: Observation {
                hotkey: hotkey.to_ss58(),
                rejection: verdict.err(),
                ttft,
                total,
                tokens,
            },
            latency: total,
        }
    }

    fn score(&self, _check: (), outcome: QueryOutcome<Observation>) -> f64 {
        let QueryOutcome::Answered { response: o, .. } = outcome else {
            return 0.0;
        };
        let mut jailed = self.jailed.lock().unwrap_or_else(|p| p.into_inner());
        if o.rejection.is_some() {
            jailed.insert(o.hotkey, self.jail_rounds);
            return 0.0;
        }
        if let Some(left) = jailed.get_mut(&o.hotkey) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                jailed.remove(&o.hotkey);
            }
            return 0.0;
        }
        speed_factor(self.reference, o.ttft, o.total, o.tokens)
    }
}
