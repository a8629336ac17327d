//! End-to-end encryption between a client and an attested enclave (RFC 9180 HPKE).
//!
//! Suite: base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305.
//!
//! - **Request.** The client seals the request body to the enclave's attested key, with
//!   the routing metadata (model, request id, netuid, uid, timestamp) as associated data:
//!   the gateway and miner can read and route on it but cannot change it.
//! - **Replay.** The enclave keeps a [`ReplayGuard`] (state passed in, pure): a request is
//!   refused if its timestamp is outside the window, or its encapsulated key or request id
//!   was accepted before within the window. Bounded: when full of live entries it refuses.
//! - **Response.** Both sides export a response key and nonce base from the same HPKE
//!   context. The response is cut into frames; frame `i` is sealed with nonce
//!   `base XOR i` and associated data `(domain, i, final flag)`. The receiver expects
//!   0, 1, 2, … and a final frame, so reordering, duplication, dropping, appending after
//!   the final frame and truncation are all detected.

use std::collections::{BTreeSet, HashMap};

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::binding::KeyDescriptor;
use crate::error::{Result, TeeError};
use crate::hpke::{self, AeadKey, HpkeError, KeyPair};

/// The RNG traits `seal_request` and `EnclaveKeypair::generate` take (rand_core 0.9).
pub use rand_core;

/// HPKE `info` of every request context.
pub const REQUEST_INFO: &[u8] = b"agora-tee-request/v1";
/// Domain tag at the start of a request's associated data.
pub const REQUEST_AAD_DOMAIN: &[u8] = b"agora-tee-request-aad/v1";
/// HPKE exporter label of the response key and nonce base.
pub const RESPONSE_EXPORT_LABEL: &[u8] = b"agora-tee-response/v1";
/// Domain tag in each response frame's associated data.
pub const FRAME_AAD_DOMAIN: &[u8] = b"agora-tee-frame/v1";
/// Longest model name in request metadata.
pub const MAX_MODEL_LEN: usize = 256;
/// Largest request body or response frame plaintext (16 MiB).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// Frame header: counter (u64 BE) and final flag (u8).
const FRAME_HEADER_LEN: usize = 9;
/// Poly1305 tag.
const TAG_LEN: usize = hpke::TAG_LEN;

fn hpke_open_err(_: HpkeError) -> TeeError {
    TeeError::DecryptionFailed
}

fn hpke_seal_err(what: &'static str) -> impl FnOnce(HpkeError) -> TeeError {
    move |e| TeeError::EncryptionFailed(format!("{what}: {e}"))
}

/// The enclave's HPKE key pair. The private key never leaves the enclave.
pub struct EnclaveKeypair {
    keys: KeyPair,
}

impl core::fmt::Debug for EnclaveKeypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EnclaveKeypair")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl EnclaveKeypair {
    /// A fresh key pair from `rng` (inside the enclave: its hardware RNG).
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Result<Self> {
        let mut ikm = Zeroizing::new([0u8; hpke::KEY_LEN]);
        rng.fill_bytes(ikm.as_mut_slice());
        Self::derive(ikm.as_slice())
    }

    /// A key pair derived from input keying material (RFC 9180 `DeriveKeyPair`), e.g. for
    /// tests or a sealed-storage secret.
    pub fn derive(ikm: &[u8]) -> Result<Self> {
        let keys = KeyPair::derive(ikm)
            .map_err(|e| TeeError::InvalidKey(format!("enclave key derivation: {e}")))?;
        Ok(Self { keys })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.keys.public_key()
    }

    /// The descriptor to bind into the evidence's report_data.
    pub fn descriptor(&self) -> KeyDescriptor {
        KeyDescriptor {
            kem_id: crate::binding::KEM_X25519_HKDF_SHA256,
            kdf_id: crate::binding::KDF_HKDF_SHA256,
            aead_id: crate::binding::AEAD_CHACHA20_POLY1305,
            public_key: self.public_key().to_vec(),
        }
    }
}

/// Routing metadata: visible to the gateway and miner, authenticated as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMetadata {
    /// Model the request is for.
    pub model: String,
    /// Client-chosen unique id (16 random bytes).
    #[serde(with = "hex::serde")]
    pub request_id: [u8; 16],
    /// Subnet.
    pub netuid: u16,
    /// Miner uid the request is routed to.
    pub uid: u16,
    /// Client's unix time when sealing; the enclave refuses it outside its replay window.
    pub issued_at: u64,
}

impl RequestMetadata {
    /// Canonical encoding used as HPKE associated data.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let model = self.model.as_bytes();
        if model.len() > MAX_MODEL_LEN {
            return Err(TeeError::LimitExceeded(format!(
                "model name of {} bytes exceeds {MAX_MODEL_LEN}",
                model.len()
            )));
        }
        let len = u16::try_from(model.len())
            .map_err(|_| TeeError::LimitExceeded("model name too long".into()))?;
        let mut out = Vec::with_capacity(REQUEST_AAD_DOMAIN.len().saturating_add(64));
        out.extend_from_slice(REQUEST_AAD_DOMAIN);
        out.extend_from_slice(&self.netuid.to_be_bytes());
        out.extend_from_slice(&self.uid.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.request_id);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(model);
        Ok(out)
    }
}

/// A sealed request as sent over the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRequest {
    /// Routing metadata (associated data).
    pub metadata: RequestMetadata,
    /// HPKE encapsulated key (32 bytes).
    #[serde(with = "hex::serde")]
    pub enc: Vec<u8>,
    /// Request body ciphertext with its tag.
    #[serde(with = "hex::serde")]
    pub ciphertext: Vec<u8>,
}

/// Response key material exported from the request's HPKE context.
struct ResponseKeys {
    cipher: AeadKey,
    nonce_base: [u8; 12],
}

impl ResponseKeys {
    fn export(ctx: &hpke::Context) -> Result<Self> {
        let mut buf = Zeroizing::new([0u8; 44]);
        ctx.export(RESPONSE_EXPORT_LABEL, buf.as_mut_slice())
            .map_err(hpke_seal_err("HPKE export"))?;
        let (key, nonce) = buf.split_at(32);
        let mut nonce_base = [0u8; 12];
        nonce_base.copy_from_slice(nonce);
        let cipher = AeadKey::new(key).map_err(hpke_seal_err("response key"))?;
        Ok(Self { cipher, nonce_base })
    }

    fn nonce(&self, counter: u64) -> [u8; 12] {
        let mut n = self.nonce_base;
        for (b, c) in n.iter_mut().skip(4).zip(counter.to_be_bytes()) {
            *b ^= c;
        }
        n
    }
}

fn frame_aad(counter: u64, is_final: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(FRAME_AAD_DOMAIN.len().saturating_add(FRAME_HEADER_LEN));
    aad.extend_from_slice(FRAME_AAD_DOMAIN);
    aad.extend_from_slice(&counter.to_be_bytes());
    aad.push(u8::from(is_final));
    aad
}

/// Client side: seal `body` to the enclave key `enclave_pk` (which the caller has checked
/// is bound to accepted evidence). Returns the request and the opener for its response.
pub fn seal_request<R: CryptoRng + RngCore>(
    enclave_pk: &[u8],
    metadata: RequestMetadata,
    body: &[u8],
    rng: &mut R,
) -> Result<(SealedRequest, ResponseOpener)> {
    if body.len() > MAX_MESSAGE_LEN {
        return Err(TeeError::LimitExceeded(format!(
            "request of {} bytes exceeds {MAX_MESSAGE_LEN}",
            body.len()
        )));
    }
    let aad = metadata.encode()?;
    let mut ephemeral_ikm = Zeroizing::new([0u8; hpke::KEY_LEN]);
    rng.fill_bytes(ephemeral_ikm.as_mut_slice());
    let (enc, mut ctx) =
        hpke::setup_sender(enclave_pk, REQUEST_INFO, &ephemeral_ikm).map_err(|e| match e {
            HpkeError::InvalidPublicKey => TeeError::InvalidKey(format!("enclave public key: {e}")),
            other => TeeError::EncryptionFailed(format!("HPKE setup: {other}")),
        })?;
    let ciphertext = ctx.seal(&aad, body).map_err(hpke_seal_err("HPKE seal"))?;
    let keys = ResponseKeys::export(&ctx)?;
    Ok((
        SealedRequest {
            metadata,
            enc: enc.to_vec(),
            ciphertext,
        },
        ResponseOpener {
            keys,
            next: 0,
            done: false,
        },
    ))
}

/// Enclave side: check `req` against the replay guard at `now`, open it, and record it.
/// Returns the body and the sealer for the response.
pub fn open_request(
    keypair: &EnclaveKeypair,
    req: &SealedRequest,
    now: u64,
    guard: &mut ReplayGuard,
) -> Result<(Vec<u8>, ResponseSealer)> {
    if req.ciphertext.len() > MAX_MESSAGE_LEN.saturating_add(TAG_LEN) {
        return Err(TeeError::LimitExceeded(
            "request ciphertext too long".into(),
        ));
    }
    let ids = guard.ids(req);
    // Check first, record only after the request authenticates: otherwise anyone could
    // pre-register a victim's request id.
    guard.check(now, req.metadata.issued_at, &ids)?;
    if req.enc.len() != hpke::KEY_LEN {
        return Err(TeeError::InvalidKey(format!(
            "encapsulated key of {} bytes, expected {}",
            req.enc.len(),
            hpke::KEY_LEN
        )));
    }
    let aad = req.metadata.encode()?;
    let mut ctx =
        hpke::setup_receiver(&req.enc, &keypair.keys, REQUEST_INFO).map_err(hpke_open_err)?;
    let body = ctx.open(&aad, &req.ciphertext).map_err(hpke_open_err)?;
    let keys = ResponseKeys::export(&ctx)?;
    guard.record(now, req.metadata.issued_at, ids)?;
    Ok((
        body,
        ResponseSealer {
            keys,
            next: 0,
            done: false,
        },
    ))
}

/// Enclave side: seals response frames in order.
pub struct ResponseSealer {
    keys: ResponseKeys,
    next: u64,
    done: bool,
}

impl core::fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResponseSealer")
            .field("next", &self.next)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ResponseSealer {
    /// Seal the next frame; `is_final` marks the last one (no frame may follow).
    /// Wire format: `counter (u64 BE) ‖ final (u8) ‖ ciphertext ‖ tag`.
    pub fn seal_frame(&mut self, chunk: &[u8], is_final: bool) -> Result<Vec<u8>> {
        if self.done {
            return Err(TeeError::FrameAfterFinal);
        }
        if chunk.len() > MAX_MESSAGE_LEN {
            return Err(TeeError::LimitExceeded("response frame too long".into()));
        }
        let counter = self.next;
        let next = counter
            .checked_add(1)
            .ok_or_else(|| TeeError::LimitExceeded("frame counter".into()))?;
        let aad = frame_aad(counter, is_final);
        let nonce = self.keys.nonce(counter);
        let ct = self
            .keys
            .cipher
            .seal(nonce, &aad, chunk)
            .map_err(hpke_seal_err("frame seal"))?;
        let mut out = Vec::with_capacity(ct.len().saturating_add(FRAME_HEADER_LEN));
        out.extend_from_slice(&counter.to_be_bytes());
        out.push(u8::from(is_final));
        out.extend_from_slice(&ct);
        self.next = next;
        self.done = is_final;
        Ok(out)
    }
}

/// A decrypted response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The plaintext chunk.
    pub data: Vec<u8>,
    /// Whether this was the final frame.
    pub is_final: bool,
}

/// Client side: opens response frames, enforcing order and completeness.
pub struct ResponseOpener {
    keys: ResponseKeys,
    next: u64,
    done: bool,
}

impl core::fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResponseOpener")
            .field("next", &self.next)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ResponseOpener {
    /// Open the next frame. State advances only on success, so a forged frame can be
    /// dropped and the genuine one still accepted.
    pub fn open_frame(&mut self, frame: &[u8]) -> Result<Frame> {
        if self.done {
            return Err(TeeError::FrameAfterFinal);
        }
        let (header, ct) = frame
            .split_at_checked(FRAME_HEADER_LEN)
            .ok_or(TeeError::DecryptionFailed)?;
        let mut counter_bytes = [0u8; 8];
        let (c, flag) = header.split_at(8);
        counter_bytes.copy_from_slice(c);
        let got = u64::from_be_bytes(counter_bytes);
        if got != self.next {
            return Err(TeeError::FrameOutOfOrder {
                expected: self.next,
                got,
            });
        }
        let is_final = match flag {
            [0] => false,
            [1] => true,
            _ => return Err(TeeError::DecryptionFailed),
        };
        let next = got
            .checked_add(1)
            .ok_or_else(|| TeeError::LimitExceeded("frame counter".into()))?;
        let aad = frame_aad(got, is_final);
        let nonce = self.keys.nonce(got);
        let data = self
            .keys
            .cipher
            .open(nonce, &aad, ct)
            .map_err(hpke_open_err)?;
        self.next = next;
        self.done = is_final;
        Ok(Frame { data, is_final })
    }

    /// Call when the stream ends: errors unless the final frame was received.
    pub fn finish(&self) -> Result<()> {
        if self.done {
            Ok(())
        } else {
            Err(TeeError::Truncated)
        }
    }
}

/// Bounded memory of accepted requests (pure state; the enclave owns and passes it in).
///
/// A request is refused when its `issued_at` is more than `window_secs` from `now`, or when
/// its encapsulated key or request id was accepted within the window. Entries older than
/// the window are forgotten: such a request would be refused as stale anyway. At most
/// `capacity` live entries are kept; beyond that requests are refused (fail closed) rather
/// than forgetting an entry that could then be replayed.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window_secs: u64,
    capacity: usize,
    /// (issued_at, id) in time order, for expiry.
    by_time: BTreeSet<(u64, [u8; 32])>,
    /// id → issued_at.
    seen: HashMap<[u8; 32], u64>,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_secs` of `now`, holding at most
    /// `capacity` requests.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        Self {
            window_secs,
            capacity,
            by_time: BTreeSet::new(),
            seen: HashMap::new(),
        }
    }

    /// Number of requests remembered.
    pub fn len(&self) -> usize {
        self.seen.len() / 2
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn ids(&self, req: &SealedRequest) -> [[u8; 32]; 2] {
        let enc_id = agora_primitives::hashing::sha256(&[b"enc:".as_slice(), &req.enc].concat());
        let rid = agora_primitives::hashing::sha256(
            &[b"rid:".as_slice(), req.metadata.request_id.as_slice()].concat(),
        );
        [enc_id, rid]
    }

    fn expire(&mut self, now: u64) {
        let cutoff = now.saturating_sub(self.window_secs);
        while let Some(first) = self.by_time.first().copied() {
            if first.0 >= cutoff {
                break;
            }
            self.by_time.remove(&first);
            self.seen.remove(&first.1);
        }
    }

    fn check(&mut self, now: u64, issued_at: u64, ids: &[[u8; 32]; 2]) -> Result<()> {
        if issued_at.abs_diff(now) > self.window_secs {
            return Err(TeeError::StaleRequest {
                issued_at,
                now,
                window_secs: self.window_secs,
            });
        }
        self.expire(now);
        if ids.iter().any(|id| self.seen.contains_key(id)) {
            return Err(TeeError::Replay);
        }
        if self.len() >= self.capacity {
            return Err(TeeError::ReplayGuardFull {
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    fn record(&mut self, now: u64, issued_at: u64, ids: [[u8; 32]; 2]) -> Result<()> {
        self.check(now, issued_at, &ids)?;
        for id in ids {
            self.seen.insert(id, issued_at);
            self.by_time.insert((issued_at, id));
        }
        Ok(())
    }
}

/// The first plaintext frame of a private response: the inner answer's HTTP status and
/// content type (encrypted like the body, so relays do not learn whether it failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    /// HTTP status of the inner answer.
    pub status: u16,
    /// Its content type (`application/json`, or `text/event-stream` for a stream).
    pub content_type: String,
}

/// Longest content type accepted in a [`ResponseHead`].
const MAX_CONTENT_TYPE_LEN: usize = 256;

/// A sealed frame as one server-sent event, `data: <hex>\n\n`, so that private responses
/// stream through the same relays (and the same signed-stream trailer) as public ones.
pub fn frame_event(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len().saturating_mul(2).saturating_add(8));
    out.extend_from_slice(b"data: ");
    let start = out.len();
    out.resize(start.saturating_add(frame.len().saturating_mul(2)), 0);
    if let Some(dst) = out.get_mut(start..) {
        // Cannot fail: `dst` is exactly twice the frame's length.
        let _ = hex::encode_to_slice(frame, dst);
    }
    out.extend_from_slice(b"\n\n");
    out
}

/// The sealed frame carried by an event's data (the inverse of [`frame_event`]).
pub fn frame_from_event(data: &str) -> Result<Vec<u8>> {
    if data.len() > MAX_MESSAGE_LEN.saturating_add(64).saturating_mul(2) {
        return Err(TeeError::LimitExceeded("response frame too long".into()));
    }
    hex::decode(data.trim()).map_err(|_| TeeError::DecryptionFailed)
}

/// Client side: opens a private response frame by frame — the [`ResponseHead`] first, then
/// body chunks, then the final frame — and refuses anything out of order, forged, truncated
/// or larger than its limit.
#[derive(Debug)]
pub struct ResponseReader {
    opener: ResponseOpener,
    head: Option<ResponseHead>,
    body: Vec<u8>,
    max_body: usize,
}

impl ResponseReader {
    /// Reads a response sealed under `opener`'s keys, keeping at most `max_body` bytes.
    pub fn new(opener: ResponseOpener, max_body: usize) -> Self {
        Self {
            opener,
            head: None,
            body: Vec::new(),
            max_body,
        }
    }

    /// Open the next sealed frame; returns the body bytes it added (empty for the head and
    /// the final frame).
    pub fn push_frame(&mut self, frame: &[u8]) -> Result<&[u8]> {
        let f = self.opener.open_frame(frame)?;
        if self.head.is_none() {
            if f.is_final {
                return Err(TeeError::Truncated);
            }
            if f.data.len() > MAX_CONTENT_TYPE_LEN.saturating_add(64) {
                return Err(TeeError::LimitExceeded("response head too long".into()));
            }
            let head: ResponseHead =
                serde_json::from_slice(&f.data).map_err(|_| TeeError::DecryptionFailed)?;
            self.head = Some(head);
            return Ok(&[]);
        }
        if self.body.len().saturating_add(f.data.len()) > self.max_body {
            return Err(TeeError::LimitExceeded(format!(
                "response body beyond {} bytes",
                self.max_body
            )));
        }
        let start = self.body.len();
        self.body.extend_from_slice(&f.data);
        Ok(self.body.get(start..).unwrap_or_default())
    }

    /// The head, once its frame was opened.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// The whole response: errors unless the final frame arrived.
    pub fn finish(self) -> Result<(ResponseHead, Vec<u8>)> {
        self.opener.finish()?;
        let head = self.head.ok_or(TeeError::Truncated)?;
        Ok((head, self.body))
    }
}

/// Enclave side: seals a response as events — [`ResponseHead`], body chunks, final frame.
#[derive(Debug)]
pub struct ResponseWriter {
    sealer: ResponseSealer,
}

impl ResponseWriter {
    /// Writes a response under `sealer`'s keys; returns the head's event.
    pub fn start(mut sealer: ResponseSealer, head: &ResponseHead) -> Result<(Self, Vec<u8>)> {
        if head.content_type.len() > MAX_CONTENT_TYPE_LEN {
            return Err(TeeError::LimitExceeded("content type too long".into()));
        }
        let json = serde_json::to_vec(head)
            .map_err(|e| TeeError::EncryptionFailed(format!("response head: {e}")))?;
        let frame = sealer.seal_frame(&json, false)?;
        Ok((Self { sealer }, frame_event(&frame)))
    }

    /// The event carrying the next body chunk.
    pub fn chunk(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(frame_event(&self.sealer.seal_frame(data, false)?))
    }

    /// The final, empty frame's event: nothing may follow it.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        Ok(frame_event(&self.sealer.seal_frame(&[], true)?))
    }
}

/// Client side: opens a whole private answer as relayed — the events written by
/// [`ResponseWriter`], `data: <hex>` each, blank-line separated — under `opener`'s keys,
/// keeping at most `max_body` bytes. Anything else in the stream, a cut mid-event, or a
/// missing final frame is an error.
pub fn open_events(
    opener: ResponseOpener,
    events: &[u8],
    max_body: usize,
) -> Result<(ResponseHead, Vec<u8>)> {
    let mut reader = ResponseReader::new(opener, max_body);
    let text = core::str::from_utf8(events).map_err(|_| TeeError::DecryptionFailed)?;
    let mut rest = text;
    while !rest.is_empty() {
        let (event, tail) = rest.split_once("\n\n").ok_or(TeeError::Truncated)?;
        let data = event
            .strip_prefix("data: ")
            .filter(|d| !d.contains('\n'))
            .ok_or(TeeError::DecryptionFailed)?;
        reader.push_frame(&frame_from_event(data)?)?;
        rest = tail;
    }
    reader.finish()
}
