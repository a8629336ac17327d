//! The miner's private path: an attested enclave component that alone holds the HPKE key
//! and sees plaintext, and the axon routes around it that only ever carry ciphertext.
//!
//! - [`Enclave`]: created from an [`EvidenceSource`]; generates its key inside, gets
//!   evidence binding it ([`agora_tee::attest_key`]) and keeps the bundle. Its one entry
//!   point, [`Enclave::serve`], takes the sealed request's bytes and returns ciphertext
//!   events: it checks the replay guard, opens the request, checks that the authenticated
//!   routing metadata names this subnet, uid and model, runs the chat completion on the
//!   engine in-process, and seals the answer (head, body chunks, final frame) as numbered
//!   AEAD frames.
//! - Routes: `GET /v1/attestation` (public: the bundle as JSON) and
//!   `POST /v1/private/chat/completions` (signed, like every generation route: a gateway
//!   relays it). The body is a [`SealedRequest`] as JSON; the answer is a
//!   `text/event-stream` of sealed frames (`data: <hex>`). Refusals before decryption
//!   (malformed, stale, replayed, undecryptable) are plain OpenAI-shaped errors that reveal
//!   nothing about the content; everything after decryption, errors included, is sealed.
//!
//! In a confidential VM (TDX, SEV-SNP) the whole miner process runs inside the TEE; the
//! split here keeps the code that handles plaintext small and in one place, with an
//! interface (bytes in, ciphertext out) that a separate enclave process could take over.

use crate::miner::InferenceMiner;
use agora_openai::{sse, OpenAiError};
use agora_tee::channel::{
    open_request, EnclaveKeypair, ReplayGuard, ResponseHead, ResponseWriter, SealedRequest,
};
use agora_tee::{attest_key, AttestationBundle, EvidenceSource, TeeError};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::StreamExt;
use std::{
    convert::Infallible,
    sync::{Arc, Mutex, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

/// How far a request's timestamp may be from the enclave's clock, and how long its ids are
/// remembered against replay.
pub const REPLAY_WINDOW_SECS: u64 = 120;
/// Requests remembered at most within the window; beyond, requests are refused.
pub const REPLAY_CAPACITY: usize = 200_000;
/// Largest sealed request accepted (hex JSON of a request of about 2 MiB).
pub const MAX_SEALED_BYTES: usize = 4 << 20;

/// Why the enclave refused a request before anything was decrypted (or could be).
#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    /// The sealed request is not valid JSON of the expected shape.
    #[error("malformed sealed request: {0}")]
    Malformed(String),
    /// Its routing metadata does not address this enclave.
    #[error("misrouted: {0}")]
    Misrouted(String),
    /// The channel refused it (stale, replayed, undecryptable, too large).
    #[error(transparent)]
    Channel(#[from] TeeError),
}

impl PrivateError {
    fn to_openai(&self) -> OpenAiError {
        let (status, code) = match self {
            PrivateError::Malformed(_) => (400, "invalid_sealed_request"),
            PrivateError::Misrouted(_) => (421, "misrouted"),
            PrivateError::Channel(TeeError::Replay) => (409, "replayed_request"),
            PrivateError::Channel(TeeError::StaleRequest { .. }) => (400, "stale_request"),
            PrivateError::Channel(TeeError::ReplayGuardFull { .. }) => (503, "busy"),
            PrivateError::Channel(TeeError::DecryptionFailed) => (400, "decryption_failed"),
            PrivateError::Channel(_) => (400, "invalid_sealed_request"),
        };
        OpenAiError::new(
            status,
            "invalid_request_error",
            self.to_string(),
            None,
            Some(code),
        )
    }
}

/// The attested component that holds the private key and handles plaintext.
pub struct Enclave {
    keypair: EnclaveKeypair,
    bundle: AttestationBundle,
    guard: Mutex<ReplayGuard>,
    miner: OnceLock<Arc<InferenceMiner>>,
    netuid: u16,
    uid: OnceLock<u16>,
}

impl std::fmt::Debug for Enclave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enclave")
            .field("platform", &self.bundle.platform)
            .field("public_key", &hex::encode(&self.bundle.hpke_public_key))
            .field("netuid", &self.netuid)
            .field("uid", &self.uid.get())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Enclave {
    /// Generates the enclave's key (from the OS-seeded CSPRNG) and gets evidence binding it
    /// from `source`, for serving on `netuid`.
    pub fn start(source: &dyn EvidenceSource, netuid: u16) -> Result<Self, TeeError> {
        let ikm = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
        let keypair = EnclaveKeypair::derive(ikm.as_slice())?;
        let bundle = attest_key(source, &keypair, unix_now())?;
        Ok(Self::with_bundle(keypair, bundle, netuid))
    }

    /// An enclave publishing `bundle` for `keypair`. The bundle is not checked here
    /// (verifiers check it), so a test can publish one that should fail.
    pub fn with_bundle(keypair: EnclaveKeypair, bundle: AttestationBundle, netuid: u16) -> Self {
        Enclave {
            keypair,
            bundle,
            guard: Mutex::new(ReplayGuard::new(REPLAY_WINDOW_SECS, REPLAY_CAPACITY)),
            miner: OnceLock::new(),
            netuid,
            uid: OnceLock::new(),
        }
    }

    /// Hands the enclave the model it serves (once; later calls are ignored).
    pub fn attach(&self, miner: Arc<InferenceMiner>) {
        let _ = self.miner.set(miner);
    }

    /// The bundle to publish (its digest goes on chain).
    pub fn bundle(&self) -> &AttestationBundle {
        &self.bundle
    }

    /// Records the uid the chain gave this miner (requests must name it).
    pub fn set_uid(&self, uid: u16) {
        let _ = self.uid.set(uid);
    }

    /// Opens `sealed` (the JSON of a [`SealedRequest`]), runs it, and returns the sealed
    /// answer as server-sent events.
    pub async fn serve(
        self: Arc<Self>,
        sealed: &[u8],
    ) -> Result<tokio::sync::mpsc::Receiver<Bytes>, PrivateError> {
        if sealed.len() > MAX_SEALED_BYTES {
            return Err(PrivateError::Malformed(format!(
                "larger than {MAX_SEALED_BYTES} bytes"
            )));
        }
        let req: SealedRequest =
            serde_json::from_slice(sealed).map_err(|e| PrivateError::Malformed(e.to_string()))?;
        let meta = &req.metadata;
        if meta.netuid != self.netuid {
            return Err(PrivateError::Misrouted(format!(
                "netuid {} is not this miner's {}",
                meta.netuid, self.netuid
            )));
        }
        if let Some(uid) = self.uid.get() {
            if meta.uid != *uid {
                return Err(PrivateError::Misrouted(format!(
                    "uid {} is not this miner's {uid}",
                    meta.uid
                )));
            }
        }
        let (body, sealer) = {
            let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            open_request(&self.keypair, &req, unix_now(), &mut guard)?
        };
        // From here on everything is plaintext: it stays in this function and leaves sealed.
        let response = self.run(meta.model.clone(), Bytes::from(body)).await;
        let (parts, inner) = response.into_parts();
        let head = ResponseHead {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned(),
        };
        let (mut writer, first) = ResponseWriter::start(sealer, &head)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let streamed = head.content_type.starts_with(sse::CONTENT_TYPE);
        tokio::spawn(async move {
            // A whole answer leaves in one write (head, body and final frame together); a
            // stream leaves event by event.
            let mut pending = first;
            let mut chunks = inner.into_data_stream();
            while let Some(chunk) = chunks.next().await {
                let Ok(chunk) = chunk else {
                    // The inner answer failed midway: end without the final frame, which
                    // the client reports as a truncated response.
                    return;
                };
                match writer.chunk(&chunk) {
                    Ok(e) => pending.extend_from_slice(&e),
                    Err(e) => {
                        tracing::warn!(error = %e, "sealing a response frame failed");
                        return;
                    }
                }
                if streamed
                    && tx
                        .send(Bytes::from(std::mem::take(&mut pending)))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            match writer.finish() {
                Ok(last) => {
                    pending.extend_from_slice(&last);
                    let _ = tx.send(Bytes::from(pending)).await;
                }
                Err(e) => tracing::warn!(error = %e, "sealing the final frame failed"),
            }
        });
        Ok(rx)
    }

    /// Runs the decrypted chat request on the engine, after checking that it asks for the
    /// model its authenticated metadata named.
    async fn run(&self, metadata_model: String, body: Bytes) -> Response {
        #[derive(serde::Deserialize)]
        struct ModelOnly {
            model: String,
        }
        let named = serde_json::from_slice::<ModelOnly>(&body).map(|m| m.model);
        if let Ok(model) = &named {
            if *model != metadata_model {
                let e = OpenAiError::invalid(
                    format!("the request's model `{model}` is not the sealed metadata's `{metadata_model}`"),
                    "model",
                    "model_mismatch",
                );
                return error_response(&e);
            }
        }
        match self.miner.get() {
            Some(miner) => crate::miner::chat_completions(State(miner.clone()), body).await,
            None => error_response(&OpenAiError::unavailable("the model is not loaded yet")),
        }
    }

    /// The axon routes of the private path.
    pub fn routes(self: Arc<Self>) -> (Router, Router) {
        let signed = Router::new()
            .route("/v1/private/chat/completions", post(private_chat))
            .with_state(self.clone());
        let public = Router::new()
            .route("/v1/attestation", get(attestation))
            .with_state(self);
        (signed, public)
    }
}

fn error_response(e: &OpenAiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.to_json(),
    )
        .into_response()
}

async fn attestation(State(enclave): State<Arc<Enclave>>) -> Json<AttestationBundle> {
    Json(enclave.bundle.clone())
}

/// The host side: hands the ciphertext to the enclave and streams its ciphertext back.
async fn private_chat(State(enclave): State<Arc<Enclave>>, body: Bytes) -> Response {
    match enclave.serve(&body).await {
        Ok(rx) => {
            let events = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            (
                [
                    (header::CONTENT_TYPE, sse::CONTENT_TYPE),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                Body::from_stream(events),
            )
                .into_response()
        }
        Err(e) => {
            tracing::debug!(error = %e, "private request refused");
            error_response(&e.to_openai())
        }
    }
}
