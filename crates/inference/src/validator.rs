//! The inference validator: challenges each miner with a fresh chat prompt, streams the
//! answer (time to first token, decode speed), and checks it against its own copy of the
//! model in one prefill ([`crate::verify`]). Score = correctness gate × speed × availability:
//! a failed check jails the miner (score 0) for some rounds, a failed query scores 0, and a
//! verified answer scores by [`speed_factor`].
//!
//! Miners that publish a TEE attestation digest with their axon are also checked on the
//! private path. Each round the validator takes the verdict on the miner's bundle from its
//! [`AttestationCache`] or, when there is none still valid, fetches the bundle from the
//! axon (`GET /v1/attestation`) and verifies it against the on-chain digest and the subnet's
//! policy ([`TeeTrust::verdict`], the gateway's check). If it verified, the validator sends
//! the plaintext challenge and then a second, different challenge sealed to the bundle's
//! key through the miner's private endpoint (`POST /v1/private/chat/completions`), opens
//! the sealed answer and checks it exactly like a plaintext one ([`check_answer`]): this
//! proves that the attested enclave really serves the model.
//!
//! The scoring rule ([`round_score`]), per miner and round:
//! - no digest published: the plaintext answer's [`speed_factor`] if it verified, else 0
//!   (as for any miner without a TEE);
//! - a digest published but no verified bundle (fetch failed, digest mismatch, evidence
//!   rejected under the policy): 0, and no challenge is sent;
//! - a verified bundle: 0 unless both the plaintext and the private answer verified, else
//!   the mean of their two speed factors.
//!
//! A rejected answer (plaintext or private) jails the miner's hotkey for
//! [`InferenceValidator::jail_rounds`] rounds of score 0; a query that got no answer at all
//! scores 0 without jail. Which uids are attested-and-verified is logged, kept
//! ([`InferenceValidator::attested_uids`]) and exported on `/metrics`
//! (`agora_inference_miner_attested`, `agora_inference_private_challenges_total`); through
//! the weights on chain it reaches the gateways, which send no private traffic to a miner
//! the validators zeroed.

use crate::attestation::{AttestationCache, TeeTrust, Verdict};
use crate::challenge::{speed_factor, Challenge, SpeedReference};
use crate::engine::{ChatMessage, Engine};
use crate::miner::{chat_prompt_ids, TokenIds};
use crate::verify::{self, Claim, Finish, Recomputed, VerifyPolicy};
use agora_openai::sse::{SseDecoder, SseEvent};
use agora_primitives::AccountId;
use agora_subnet::{Protocol, QueryOutcome, Target, ValidatorLogic};
use agora_tee::channel::{frame_from_event, seal_request, RequestMetadata, ResponseReader};
use agora_tee::AttestationBundle;
use agora_wire::{ClientConfig, WireClient, WireReply};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest wait for a miner's attestation bundle.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The private path, for a miner that published an attestation digest.
    #[serde(default)]
    pub tee: TeeObservation,
}

/// How fast a verified answer came.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Time to the first content token.
    pub ttft: Duration,
    /// Time to the end of the stream.
    pub total: Duration,
    /// Completion tokens.
    pub tokens: u32,
}

/// What came of the private path for one miner in one round.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum TeeObservation {
    /// The miner published no attestation digest: plaintext only.
    #[default]
    NotPublished,
    /// It published one, but no bundle verified against it (why). No challenge was sent.
    AttestationRejected(String),
    /// Its bundle verified; the private challenge's outcome.
    Verified(PrivateOutcome),
}

/// The outcome of a private challenge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PrivateOutcome {
    /// The sealed answer opened and verified.
    Verified(Timing),
    /// It opened but failed the checks (why).
    Rejected(String),
    /// No usable answer: refused, unreachable, tampered, truncated (why).
    Failed(String),
}

/// The score of one round for one miner, before jail, in `[0, 1]` (the rule is in the
/// module doc). Pure.
pub fn round_score(reference: SpeedReference, o: &Observation) -> f64 {
    let plain = || speed_factor(reference, o.ttft, o.total, o.tokens);
    match &o.tee {
        TeeObservation::AttestationRejected(_) => 0.0,
        _ if o.rejection.is_some() => 0.0,
        TeeObservation::NotPublished => plain(),
        TeeObservation::Verified(PrivateOutcome::Verified(t)) => {
            0.5 * (plain() + speed_factor(reference, t.ttft, t.total, t.tokens))
        }
        TeeObservation::Verified(PrivateOutcome::Rejected(_) | PrivateOutcome::Failed(_)) => 0.0,
    }
}

/// Whether the round jails the miner: an answer, plaintext or private, failed its check.
pub fn jails(o: &Observation) -> bool {
    o.rejection.is_some() || matches!(o.tee, TeeObservation::Verified(PrivateOutcome::Rejected(_)))
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

/// Reads a streamed chat answer event by event (plaintext, or opened from sealed frames).
#[derive(Debug, Default)]
struct StreamCollector {
    answer: Answer,
    ttft: Option<Duration>,
    done: bool,
    ids: Option<TokenIds>,
}

impl StreamCollector {
    fn event(&mut self, ev: &SseEvent, elapsed: Duration) -> Result<(), String> {
        if ev.is_done() {
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| e.to_string())?;
        if let Some(err) = v.get("error") {
            return Err(format!("miner error: {err}"));
        }
        if let Some(agora) = v.get("agora") {
            self.ids = Some(
                serde_json::from_value::<TokenIds>(agora.clone())
                    .map_err(|e| format!("agora token ids: {e}"))?,
            );
        }
        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
            return Ok(());
        };
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
            if !text.is_empty() && self.ttft.is_none() {
                self.ttft = Some(elapsed);
            }
            self.answer.text.push_str(text);
        }
        if let Some(content) = choice
            .pointer("/logprobs/content")
            .and_then(Value::as_array)
        {
            for entry in content {
                let lp = entry.get("logprob").and_then(Value::as_f64);
                self.answer
                    .reported_logprobs
                    .push(lp.map_or(f32::NAN, |v| v as f32));
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.answer.finish_reason = reason.to_owned();
        }
        Ok(())
    }

    fn finish(mut self, total: Duration) -> Result<(Answer, Duration, Duration), String> {
        if !self.done {
            return Err("the stream ended without [DONE]".into());
        }
        self.answer.ids = self.ids.ok_or("the answer carries no token ids")?;
        Ok((self.answer, self.ttft.unwrap_or(total), total))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The private-path counters exported on `/metrics`.
#[derive(Debug, Default)]
struct PrivateCounters {
    verified: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
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
    /// The TEE evidence this validator accepts from miners that publish a digest.
    pub tee: TeeTrust,
    jailed: Mutex<HashMap<String, u32>>,
    attestations: Mutex<AttestationCache>,
    /// Per uid with a published digest: its hotkey and whether its bundle verified at the
    /// last check.
    attested: Mutex<BTreeMap<u16, (String, bool)>>,
    private_counters: PrivateCounters,
}

impl InferenceValidator {
    /// A validator holding its own copy of the model, served by miners as `model_id`, that
    /// accepts TEE evidence under `tee`.
    pub fn new(engine: Arc<Engine>, model_id: Option<String>, tee: TeeTrust) -> Self {
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
            tee,
            jailed: Mutex::new(HashMap::new()),
            attestations: Mutex::new(AttestationCache::default()),
            attested: Mutex::new(BTreeMap::new()),
            private_counters: PrivateCounters::default(),
        }
    }

    /// Sets how long verdicts on bundles are kept (see [`AttestationCache`]).
    pub fn set_attestation_ttl(&self, reverify_secs: u64, retry_secs: u64) {
        let mut c = self.attestations.lock().unwrap_or_else(|p| p.into_inner());
        c.reverify_secs = reverify_secs;
        c.retry_secs = retry_secs;
    }

    /// The uids whose published bundle verified at their last check.
    pub fn attested_uids(&self) -> Vec<u16> {
        self.attested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, (_, ok))| *ok)
            .map(|(uid, _)| *uid)
            .collect()
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
        let (mut stream, started) = open_stream(wire, &url, hotkey, body).await?;
        let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        let mut collector = StreamCollector::default();
        while let Some(chunk) = stream.next_chunk().await.map_err(|e| e.to_string())? {
            decoder
                .feed(&chunk, &mut events)
                .map_err(|e| e.to_string())?;
            for ev in events.drain(..) {
                collector.event(&ev, started.elapsed())?;
            }
        }
        collector.finish(started.elapsed())
    }

    /// Sends `request` sealed to `bundle`'s key through the miner's private endpoint and
    /// opens the sealed answer frame by frame, as a client would.
    async fn ask_private(
        &self,
        wire: &WireClient,
        target: &Target,
        bundle: &AttestationBundle,
        request: &ChallengeRequest,
    ) -> Result<(Answer, Duration, Duration), String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let metadata = RequestMetadata {
            model: request.model.clone(),
            request_id: rand::random::<[u8; 16]>(),
            netuid: self.tee.netuid,
            uid: target.uid,
            issued_at: unix_now(),
        };
        let mut rng =
            <rand_chacha09::ChaCha20Rng as rand_chacha09::rand_core::SeedableRng>::from_seed(
                rand::random::<[u8; 32]>(),
            );
        let (sealed, opener) = seal_request(&bundle.hpke_public_key, metadata, &body, &mut rng)
            .map_err(|e| format!("sealing: {e}"))?;
        let sealed = serde_json::to_vec(&sealed).map_err(|e| e.to_string())?;
        let url = format!("{}/v1/private/chat/completions", target.url);
        let (mut stream, started) = open_stream(wire, &url, &target.hotkey, sealed).await?;
        let mut reader = ResponseReader::new(opener, MAX_EVENT_BYTES.saturating_mul(4));
        let (mut sealed_events, mut inner_events) = (Vec::new(), Vec::new());
        let mut outer = SseDecoder::new(MAX_EVENT_BYTES.saturating_mul(3));
        let mut inner = SseDecoder::new(MAX_EVENT_BYTES);
        let mut collector = StreamCollector::default();
        while let Some(chunk) = stream.next_chunk().await.map_err(|e| e.to_string())? {
            outer
                .feed(&chunk, &mut sealed_events)
                .map_err(|e| e.to_string())?;
            for ev in sealed_events.drain(..) {
                let frame = frame_from_event(&ev.data).map_err(|e| format!("channel: {e}"))?;
                let opened = reader
                    .push_frame(&frame)
                    .map_err(|e| format!("channel: {e}"))?
                    .to_vec();
                // An inner error is one JSON body, read whole at the end.
                if reader.head().is_some_and(|h| h.status == 200) {
                    inner
                        .feed(&opened, &mut inner_events)
                        .map_err(|e| e.to_string())?;
                    for ev in inner_events.drain(..) {
                        collector.event(&ev, started.elapsed())?;
                    }
                }
            }
        }
        let total = started.elapsed();
        let (head, inner_body) = reader.finish().map_err(|e| format!("channel: {e}"))?;
        if head.status != 200 {
            return Err(format!(
                "the enclave answered status {}: {}",
                head.status,
                String::from_utf8_lossy(&inner_body)
            ));
        }
        collector.finish(total)
    }

    /// The verdict on `target`'s bundle for `digest`: cached, or fetched and verified now.
    /// `Err` when the bundle could not be fetched (not cached: tried again next round).
    async fn attestation(
        &self,
        wire: &WireClient,
        target: &Target,
        digest: &[u8; 32],
    ) -> Result<Arc<Verdict>, String> {
        let now = unix_now();
        if let Some(v) = self
            .attestations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target.uid, &target.hotkey, digest, now)
        {
            return Ok(v);
        }
        // The bundle is public and authenticated by its digest on chain, not by a response
        // signature (the axon serves it unsigned, like `/health`).
        let unsigned = wire
            .with_config(ClientConfig {
                require_signed_responses: false,
                timeout: BUNDLE_TIMEOUT,
                ..ClientConfig::default()
            })
            .map_err(|e| e.to_string())?;
        let bundle = unsigned
            .get_json::<AttestationBundle>(
                &format!("{}/v1/attestation", target.url),
                &target.hotkey,
            )
            .await
            .map_err(|e| format!("attestation bundle unavailable: {e}"))?;
        let verdict = self.tee.verdict(bundle, digest, now);
        match &verdict {
            Verdict::Verified { evidence, .. } => tracing::info!(
                uid = target.uid,
                miner = %target.hotkey,
                digest = %hex::encode(digest),
                platform = %evidence.platform,
                trust_anchor = evidence.trust_anchor.as_str(),
                "attestation verified: private challenges on"
            ),
            Verdict::Rejected(reason) => tracing::warn!(
                uid = target.uid,
                miner = %target.hotkey,
                digest = %hex::encode(digest),
                %reason,
                "attestation rejected: scored 0"
            ),
        }
        Ok(self
            .attestations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(target.uid, &target.hotkey, digest, verdict, now))
    }

    fn note_attested(&self, target: &Target, verified: Option<bool>) {
        let mut attested = self.attested.lock().unwrap_or_else(|p| p.into_inner());
        match verified {
            Some(ok) => {
                attested.insert(target.uid, (target.hotkey.to_ss58(), ok));
            }
            None => {
                attested.remove(&target.uid);
            }
        }
    }

    /// Checks `answer` to `request` on the blocking pool.
    async fn check(&self, request: &ChallengeRequest, answer: Answer) -> Result<(), String> {
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
        tokio::task::spawn_blocking(move || {
            check_answer(&engine, &messages, &challenge, &answer, &policy)
        })
        .await
        .unwrap_or_else(|e| Err(format!("validator: {e}")))
    }

    /// The private challenge of a round: another prompt than the plaintext one, derived
    /// from its (fresh, random) seed.
    fn private_request(&self, plain: &ChallengeRequest) -> ChallengeRequest {
        let mut rng = ChaCha20Rng::seed_from_u64(plain.seed ^ 0x7072_6976_6174_6521);
        self.request_for(Challenge::generate(
            &mut rng,
            self.max_tokens,
            self.greedy_share,
        ))
    }

    fn request_for(&self, c: Challenge) -> ChallengeRequest {
        ChallengeRequest {
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
        }
    }

    async fn private_challenge(
        &self,
        wire: &WireClient,
        target: &Target,
        bundle: &AttestationBundle,
        plain: &ChallengeRequest,
    ) -> PrivateOutcome {
        let request = self.private_request(plain);
        let counters = &self.private_counters;
        let outcome = match self.ask_private(wire, target, bundle, &request).await {
            Err(error) => PrivateOutcome::Failed(error),
            Ok((answer, ttft, total)) => {
                let tokens =
                    u32::try_from(answer.ids.completion_token_ids.len()).unwrap_or(u32::MAX);
                match self.check(&request, answer).await {
                    Ok(()) => PrivateOutcome::Verified(Timing {
                        ttft,
                        total,
                        tokens,
                    }),
                    Err(reason) => PrivateOutcome::Rejected(reason),
                }
            }
        };
        match &outcome {
            PrivateOutcome::Verified(_) => {
                counters.verified.fetch_add(1, Ordering::Relaxed);
                tracing::info!(uid = target.uid, miner = %target.hotkey, "private answer verified");
            }
            PrivateOutcome::Rejected(reason) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(uid = target.uid, miner = %target.hotkey, %reason, "private answer rejected");
            }
            PrivateOutcome::Failed(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(uid = target.uid, miner = %target.hotkey, %error, "private challenge failed");
            }
        }
        outcome
    }
}

impl ValidatorLogic for InferenceValidator {
    type P = InferenceChat;
    type Check = ();

    fn challenge(&self, _uid: u16, rng: &mut ChaCha20Rng) -> (ChallengeRequest, ()) {
        let c = Challenge::generate(rng, self.max_tokens, self.greedy_share);
        (self.request_for(c), ())
    }

    async fn query(
        &self,
        wire: &WireClient,
        target: &Target,
        request: ChallengeRequest,
    ) -> QueryOutcome<Observation> {
        let hotkey = &target.hotkey;
        let verified_bundle = match &target.attestation_digest {
            None => {
                self.note_attested(target, None);
                None
            }
            Some(digest) => match self.attestation(wire, target, digest).await {
                Ok(v) => match v.as_ref() {
                    Verdict::Verified { bundle, .. } => {
                        self.note_attested(target, Some(true));
                        Some(bundle.clone())
                    }
                    Verdict::Rejected(reason) => {
                        self.note_attested(target, Some(false));
                        return rejected_attestation(target, reason.clone());
                    }
                },
                Err(reason) => {
                    self.note_attested(target, Some(false));
                    tracing::info!(uid = target.uid, miner = %hotkey, %reason, "no attestation bundle: scored 0");
                    return rejected_attestation(target, reason);
                }
            },
        };
        let (answer, ttft, total) = match self.ask(wire, &target.url, hotkey, &request).await {
            Ok(a) => a,
            Err(error) => return QueryOutcome::Failed { error },
        };
        let tokens = u32::try_from(answer.ids.completion_token_ids.len()).unwrap_or(u32::MAX);
        let verdict = self.check(&request, answer).await;
        if let Err(reason) = &verdict {
            tracing::info!(miner = %hotkey, %reason, "answer rejected");
        }
        let tee = match &verified_bundle {
            None => TeeObservation::NotPublished,
            Some(bundle) => TeeObservation::Verified(
                self.private_challenge(wire, target, bundle, &request).await,
            ),
        };
        QueryOutcome::Answered {
            response: Observation {
                hotkey: hotkey.to_ss58(),
                rejection: verdict.err(),
                ttft,
                total,
                tokens,
                tee,
            },
            latency: total,
        }
    }

    fn score(&self, _check: (), outcome: QueryOutcome<Observation>) -> f64 {
        let QueryOutcome::Answered { response: o, .. } = outcome else {
            return 0.0;
        };
        let mut jailed = self.jailed.lock().unwrap_or_else(|p| p.into_inner());
        if jails(&o) {
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
        round_score(self.reference, &o)
    }

    fn render_metrics(&self, out: &mut String) {
        let attested = self.attested.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP agora_inference_miner_attested Whether the miner's published TEE bundle verified at its last check.\n# TYPE agora_inference_miner_attested gauge"
        );
        for (uid, (hotkey, ok)) in attested.iter() {
            let _ = writeln!(
                out,
                "agora_inference_miner_attested{{uid=\"{uid}\",hotkey=\"{hotkey}\"}} {}",
                u8::from(*ok)
            );
        }
        let c = &self.private_counters;
        let _ = writeln!(
            out,
            "# HELP agora_inference_private_challenges_total Private challenges sent to attested miners, by result.\n# TYPE agora_inference_private_challenges_total counter"
        );
        for (result, n) in [
            ("verified", &c.verified),
            ("rejected", &c.rejected),
            ("failed", &c.failed),
        ] {
            let _ = writeln!(
                out,
                "agora_inference_private_challenges_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

fn rejected_attestation(target: &Target, reason: String) -> QueryOutcome<Observation> {
    QueryOutcome::Answered {
        response: Observation {
            hotkey: target.hotkey.to_ss58(),
            rejection: None,
            ttft: Duration::ZERO,
            total: Duration::ZERO,
            tokens: 0,
            tee: TeeObservation::AttestationRejected(reason),
        },
        latency: Duration::ZERO,
    }
}

/// POSTs a signed JSON `body` to `url` and returns the answer's stream and when the
/// request left (time to first token and tokens/s count from there). A buffered answer is
/// a refusal: its status and body become the error.
async fn open_stream(
    wire: &WireClient,
    url: &str,
    hotkey: &AccountId,
    body: Vec<u8>,
) -> Result<(Box<agora_wire::WireStream>, Instant), String> {
    let started = Instant::now();
    let reply = wire
        .send_streaming(
            http::Method::POST,
            url,
            hotkey,
            body,
            Some("application/json"),
        )
        .await
        .map_err(|e| e.to_string())?;
    match reply {
        WireReply::Stream(s) => Ok((s, started)),
        WireReply::Buffered(r) => Err(format!(
            "{url} answered status {} instead of a stream: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(rejection: Option<&str>, tee: TeeObservation) -> Observation {
        Observation {
            hotkey: "miner".into(),
            rejection: rejection.map(str::to_owned),
            ttft: Duration::from_millis(100),
            total: Duration::from_millis(100 + 15 * 20),
            tokens: 16,
            tee,
        }
    }

    #[test]
    fn the_scoring_rule_zeroes_attested_miners_that_fail_the_private_path() {
        let r = SpeedReference {
            ttft: Duration::from_millis(100),
            per_token: Duration::from_millis(20),
        };
        let fast = Timing {
            ttft: Duration::from_millis(50),
            total: Duration::from_millis(50 + 15 * 10),
            tokens: 16,
        };
        // No digest: scored on the plaintext answer as before.
        let plain = observation(None, TeeObservation::NotPublished);
        assert!((round_score(r, &plain) - 0.5).abs() < 1e-9);
        assert!(!jails(&plain));
        let wrong = observation(Some("bad"), TeeObservation::NotPublished);
        assert_eq!(round_score(r, &wrong), 0.0);
        assert!(jails(&wrong));
        // A digest whose bundle does not verify: 0, without jail.
        let rejected = observation(None, TeeObservation::AttestationRejected("digest".into()));
        assert_eq!(round_score(r, &rejected), 0.0);
        assert!(!jails(&rejected));
        // Verified: the mean of both speed factors...
        let both = observation(
            None,
            TeeObservation::Verified(PrivateOutcome::Verified(fast)),
        );
        let expected = 0.5 * (0.5 + speed_factor(r, fast.ttft, fast.total, fast.tokens));
        assert!((round_score(r, &both) - expected).abs() < 1e-9);
        assert!(round_score(r, &both) > round_score(r, &plain));
        // ...but 0 when either answer fails; a wrong private answer jails.
        let private_wrong = observation(
            None,
            TeeObservation::Verified(PrivateOutcome::Rejected("tokens".into())),
        );
        assert_eq!(round_score(r, &private_wrong), 0.0);
        assert!(jails(&private_wrong));
        let private_failed = observation(
            None,
            TeeObservation::Verified(PrivateOutcome::Failed("refused".into())),
        );
        assert_eq!(round_score(r, &private_failed), 0.0);
        assert!(!jails(&private_failed));
        let plain_wrong = observation(
            Some("bad"),
            TeeObservation::Verified(PrivateOutcome::Verified(fast)),
        );
        assert_eq!(round_score(r, &plain_wrong), 0.0);
        assert!(jails(&plain_wrong));
    }
}
