//! The btauth/1 wire format and its pure verification core: header names, the signed payload,
//! signing, header parsing, receiver binding, freshness and signature checks.
//!
//! Nothing here does I/O or reads a clock; `now_ns` is always a parameter.

use crate::{error::WireError, nonce::NonceStore};
use agora_primitives::{
    crypto::{self, Pair, Signature},
    hashing::sha256,
    AccountId,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::{borrow::Cow, fmt::Write as _};

/// The protocol tag, the first line of every signed payload.
pub const PROTOCOL: &str = "btauth/1";
/// The value of [`HEADER_VERSION`].
pub const VERSION: &str = "1";

/// Protocol version; must be exactly [`VERSION`].
pub const HEADER_VERSION: HeaderName = HeaderName::from_static("x-bittensor-version");
/// The sender's hotkey, SS58.
pub const HEADER_HOTKEY: HeaderName = HeaderName::from_static("x-bittensor-hotkey");
/// The receiving hotkey, SS58. Optional in the format, required by default by [`Verifier`].
pub const HEADER_RECEIVER: HeaderName = HeaderName::from_static("x-bittensor-receiver");
/// Nanoseconds since the Unix epoch, decimal.
pub const HEADER_NONCE: HeaderName = HeaderName::from_static("x-bittensor-nonce");
/// The signature scheme. Absent means `sr25519`, and signers omit it for sr25519.
pub const HEADER_CRYPTO: HeaderName = HeaderName::from_static("x-bittensor-crypto");
/// `0x` followed by the 64-byte signature in lowercase hex (the prefix is optional on input).
pub const HEADER_SIGNATURE: HeaderName = HeaderName::from_static("x-bittensor-signature");

/// The only scheme this crate signs and verifies.
pub const SCHEME_SR25519: &str = "sr25519";
/// The receiver line of a payload that is bound to no receiver.
pub const NO_RECEIVER: &str = "-";
/// The method line of a signed *response* is this prefix and the status code (`RESPONSE 200`).
/// It contains a space, which an HTTP method token cannot, so a response signature can never
/// be presented as a request signature.
pub const RESPONSE_METHOD_PREFIX: &str = "RESPONSE ";

/// Nanoseconds in a second.
pub const NS_PER_SEC: u64 = 1_000_000_000;
/// How old a nonce may be (10 s, as in the Bittensor SDK).
pub const DEFAULT_MAX_AGE_NS: u64 = 10 * NS_PER_SEC;
/// How far ahead of the verifier's clock a nonce may be (2 s, as in the Bittensor SDK).
pub const DEFAULT_ALLOWED_SKEW_NS: u64 = 2 * NS_PER_SEC;

/// The exact bytes a request signature covers: eight lines joined by `\n`, no trailing newline:
/// [`PROTOCOL`], the scheme, the uppercase method, the request target (path and `?query` as
/// sent), the lowercase hex SHA-256 of the raw body, the decimal nonce, the sender's SS58 and
/// the receiver's SS58 or [`NO_RECEIVER`].
pub fn request_payload(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    nonce_ns: u64,
    sender_ss58: &str,
    receiver_ss58: Option<&str>,
) -> Vec<u8> {
    payload(
        &method.to_ascii_uppercase(),
        path_and_query,
        body,
        nonce_ns,
        sender_ss58,
        receiver_ss58,
    )
}

/// The bytes a response signature covers (an Agora extension; the SDK signs requests only):
/// the request layout with the method line `RESPONSE {status}`, the request's target, the
/// response body's hash, the *request's* nonce, the server as sender and the client as
/// receiver. Echoing the request nonce binds the answer to one request.
pub fn response_payload(
    status: u16,
    path_and_query: &str,
    body: &[u8],
    request_nonce_ns: u64,
    server_ss58: &str,
    client_ss58: &str,
) -> Vec<u8> {
    payload(
        &format!("{RESPONSE_METHOD_PREFIX}{status}"),
        path_and_query,
        body,
        request_nonce_ns,
        server_ss58,
        Some(client_ss58),
    )
}

/// [`response_payload`] over a body whose SHA-256 was computed as it streamed by.
pub fn response_payload_hashed(
    status: u16,
    path_and_query: &str,
    body_sha256: &[u8; 32],
    request_nonce_ns: u64,
    server_ss58: &str,
    client_ss58: &str,
) -> Vec<u8> {
    payload_hashed(
        &format!("{RESPONSE_METHOD_PREFIX}{status}"),
        path_and_query,
        body_sha256,
        request_nonce_ns,
        server_ss58,
        Some(client_ss58),
    )
}

fn payload(
    method_line: &str,
    target: &str,
    body: &[u8],
    nonce_ns: u64,
    sender_ss58: &str,
    receiver_ss58: Option<&str>,
) -> Vec<u8> {
    payload_hashed(
        method_line,
        target,
        &sha256(body),
        nonce_ns,
        sender_ss58,
        receiver_ss58,
    )
}

fn payload_hashed(
    method_line: &str,
    target: &str,
    body_sha256: &[u8; 32],
    nonce_ns: u64,
    sender_ss58: &str,
    receiver_ss58: Option<&str>,
) -> Vec<u8> {
    let receiver = receiver_ss58.unwrap_or(NO_RECEIVER);
    let mut s = String::with_capacity(
        PROTOCOL.len()
            + method_line.len()
            + target.len()
            + sender_ss58.len()
            + receiver.len()
            + 110,
    );
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{PROTOCOL}\n{SCHEME_SR25519}\n{method_line}\n{target}\n{}\n{nonce_ns}\n{sender_ss58}\n{receiver}",
        hex::encode(body_sha256),
    );
    s.into_bytes()
}

/// The auth headers of one signed message, as sent or as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// The signer's hotkey as written in the header (it is signed verbatim).
    pub hotkey_ss58: String,
    /// The signer's hotkey, decoded.
    pub hotkey: AccountId,
    /// The receiver as written in the header, if any.
    pub receiver_ss58: Option<String>,
    /// The nonce: nanoseconds since the Unix epoch.
    pub nonce_ns: u64,
    /// The signature.
    pub signature: Signature,
}

impl AuthHeaders {
    /// Reads and shape-checks the btauth headers. Every failure is [`WireError::Malformed`].
    pub fn parse(headers: &HeaderMap) -> Result<Self, WireError> {
        match single(headers, &HEADER_VERSION)? {
            Some(VERSION) => {}
            _ => {
                return Err(malformed(
                    "missing or unsupported X-Bittensor-Version (expected \"1\")",
                ))
            }
        }
        let hotkey_ss58 = match single(headers, &HEADER_HOTKEY)? {
            Some(h) if !h.is_empty() => h,
            _ => return Err(malformed("missing X-Bittensor-Hotkey")),
        };
        let nonce_ns = single(headers, &HEADER_NONCE)?
            .ok_or_else(|| malformed("missing X-Bittensor-Nonce"))?
            .parse::<u64>()
            .map_err(|_| malformed("X-Bittensor-Nonce is not a decimal integer"))?;
        if let Some(scheme) = single(headers, &HEADER_CRYPTO)? {
            check_scheme(scheme)?;
        }
        let signature = parse_signature(
            single(headers, &HEADER_SIGNATURE)?
                .ok_or_else(|| malformed("missing X-Bittensor-Signature"))?,
        )?;
        let receiver_ss58 = single(headers, &HEADER_RECEIVER)?.map(str::to_owned);
        let (hotkey, _prefix) = AccountId::from_ss58_with_prefix(hotkey_ss58)
            .map_err(|_| malformed("X-Bittensor-Hotkey is not an SS58 address"))?;
        Ok(AuthHeaders {
            hotkey_ss58: hotkey_ss58.to_owned(),
            hotkey,
            receiver_ss58,
            nonce_ns,
            signature,
        })
    }

    /// Writes these headers into `headers`, replacing any earlier values. The crypto header is
    /// omitted: absent means sr25519, as the SDK's signer does.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        headers.insert(HEADER_VERSION, HeaderValue::from_static(VERSION));
        headers.insert(HEADER_HOTKEY, ascii_value(&self.hotkey_ss58));
        headers.insert(HEADER_NONCE, HeaderValue::from(self.nonce_ns));
        headers.insert(
            HEADER_SIGNATURE,
            ascii_value(&format!("0x{}", hex::encode(self.signature.0))),
        );
        match &self.receiver_ss58 {
            Some(r) => {
                headers.insert(HEADER_RECEIVER, ascii_value(r));
            }
            None => {
                headers.remove(HEADER_RECEIVER);
            }
        }
    }
}

/// Signs a request as `pair` for `receiver` (or for no receiver); `path_and_query` must be the
/// request target exactly as it will be sent. Every send, retries included, needs a new nonce.
pub fn sign_request(
    pair: &Pair,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    receiver: Option<&AccountId>,
    nonce_ns: u64,
) -> AuthHeaders {
    let hotkey = pair.account();
    let hotkey_ss58 = hotkey.to_ss58();
    let receiver_ss58 = receiver.map(AccountId::to_ss58);
    let msg = request_payload(
        method,
        path_and_query,
        body,
        nonce_ns,
        &hotkey_ss58,
        receiver_ss58.as_deref(),
    );
    AuthHeaders {
        signature: pair.sign(&msg),
        hotkey_ss58,
        hotkey,
        receiver_ss58,
        nonce_ns,
    }
}

/// Signs a response as `pair` (the server) to the request `(path_and_query, request_nonce_ns)`
/// from `client_ss58`. See [`response_payload`].
pub fn sign_response(
    pair: &Pair,
    status: u16,
    path_and_query: &str,
    body: &[u8],
    request_nonce_ns: u64,
    client_ss58: &str,
) -> AuthHeaders {
    let hotkey = pair.account();
    let hotkey_ss58 = hotkey.to_ss58();
    let msg = response_payload(
        status,
        path_and_query,
        body,
        request_nonce_ns,
        &hotkey_ss58,
        client_ss58,
    );
    AuthHeaders {
        signature: pair.sign(&msg),
        hotkey_ss58,
        hotkey,
        receiver_ss58: Some(client_ss58.to_owned()),
        nonce_ns: request_nonce_ns,
    }
}

/// Checks a signed response: signed by `server`, addressed to `client`, echoing the request's
/// nonce, over this status, target and body.
pub fn verify_response(
    headers: &HeaderMap,
    status: u16,
    path_and_query: &str,
    body: &[u8],
    request_nonce_ns: u64,
    server: &AccountId,
    client: &AccountId,
) -> Result<(), WireError> {
    let bad = |m: &'static str| WireError::ResponseSignature(Cow::Borrowed(m));
    let auth = AuthHeaders::parse(headers).map_err(|_| bad("missing or malformed auth headers"))?;
    if auth.hotkey != *server {
        return Err(bad(
            "signed by a hotkey other than the receiver the request was sent to",
        ));
    }
    let receiver_ss58 = auth
        .receiver_ss58
        .as_deref()
        .ok_or_else(|| bad("no receiver"))?;
    match AccountId::from_ss58_with_prefix(receiver_ss58) {
        Ok((r, _)) if r == *client => {}
        _ => return Err(bad("addressed to another hotkey")),
    }
    if auth.nonce_ns != request_nonce_ns {
        return Err(bad("nonce does not echo the request's"));
    }
    let msg = response_payload(
        status,
        path_and_query,
        body,
        request_nonce_ns,
        &auth.hotkey_ss58,
        receiver_ss58,
    );
    if crypto::verify(&auth.hotkey, &msg, &auth.signature) {
        Ok(())
    } else {
        Err(bad("signature does not verify"))
    }
}

/// Marks a streamed (`text/event-stream`) response whose body is signed by a trailer; the
/// value is [`STREAM_SIGNATURE_TRAILER`].
pub const HEADER_STREAM_SIGNATURE: HeaderName = HeaderName::from_static("x-agora-stream-signature");
/// The value of [`HEADER_STREAM_SIGNATURE`].
pub const STREAM_SIGNATURE_TRAILER: &str = "trailer";
/// How the trailer line starts. A line starting with `:` is a comment in server-sent events,
/// so SSE readers that know nothing of btauth skip the trailer.
pub const STREAM_TRAILER_PREFIX: &[u8] = b":btauth/1 ";
/// The trailer's length: the prefix, `0x`, 128 hex digits and the blank line ending the event.
pub const STREAM_TRAILER_LEN: usize = STREAM_TRAILER_PREFIX.len() + 2 + 128 + 2;

/// The trailer a server appends to a streamed response: `:btauth/1 0x{signature}\n\n`, the
/// signature being the one a buffered response would carry in its headers
/// ([`response_payload`]) over every body byte before the trailer.
pub fn stream_trailer(
    pair: &Pair,
    status: u16,
    path_and_query: &str,
    body_sha256: &[u8; 32],
    request_nonce_ns: u64,
    client_ss58: &str,
) -> Vec<u8> {
    let msg = response_payload_hashed(
        status,
        path_and_query,
        body_sha256,
        request_nonce_ns,
        &pair.account().to_ss58(),
        client_ss58,
    );
    let mut out = Vec::with_capacity(STREAM_TRAILER_LEN);
    out.extend_from_slice(STREAM_TRAILER_PREFIX);
    out.extend_from_slice(b"0x");
    out.extend_from_slice(hex::encode(pair.sign(&msg).0).as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// Checks a stream trailer (exactly as [`stream_trailer`] writes it) against the hash of the
/// body bytes that preceded it.
pub fn verify_stream_trailer(
    trailer: &[u8],
    status: u16,
    path_and_query: &str,
    body_sha256: &[u8; 32],
    request_nonce_ns: u64,
    server: &AccountId,
    client: &AccountId,
) -> Result<(), WireError> {
    let bad = |m: &'static str| WireError::ResponseSignature(Cow::Borrowed(m));
    let sig_hex = trailer
        .strip_prefix(STREAM_TRAILER_PREFIX)
        .and_then(|t| t.strip_suffix(b"\n\n"))
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or_else(|| bad("malformed stream trailer"))?;
    let signature = parse_signature(sig_hex).map_err(|_| bad("malformed stream trailer"))?;
    let msg = response_payload_hashed(
        status,
        path_and_query,
        body_sha256,
        request_nonce_ns,
        &server.to_ss58(),
        &client.to_ss58(),
    );
    if crypto::verify(server, &msg, &signature) {
        Ok(())
    } else {
        Err(bad("stream signature does not verify"))
    }
}

/// The stateless half of request verification, configured for one receiving hotkey.
#[derive(Debug, Clone)]
pub struct Verifier {
    self_hotkey: AccountId,
    self_ss58: String,
    max_age_ns: u64,
    allowed_skew_ns: u64,
    require_receiver: bool,
}

impl Verifier {
    /// A verifier for requests addressed to `self_hotkey`, with the SDK's defaults: 10 s max
    /// age, 2 s skew, receiver required.
    pub fn new(self_hotkey: AccountId) -> Self {
        Verifier {
            self_ss58: self_hotkey.to_ss58(),
            self_hotkey,
            max_age_ns: DEFAULT_MAX_AGE_NS,
            allowed_skew_ns: DEFAULT_ALLOWED_SKEW_NS,
            require_receiver: true,
        }
    }

    /// Sets the freshness window.
    pub fn with_window(mut self, max_age_ns: u64, allowed_skew_ns: u64) -> Self {
        self.max_age_ns = max_age_ns;
        self.allowed_skew_ns = allowed_skew_ns;
        self
    }

    /// Whether requests bound to no receiver are refused (the default, as in the SDK).
    pub fn with_require_receiver(mut self, require: bool) -> Self {
        self.require_receiver = require;
        self
    }

    /// The receiving hotkey.
    pub fn self_hotkey(&self) -> &AccountId {
        &self.self_hotkey
    }

    /// How old a nonce may be.
    pub fn max_age_ns(&self) -> u64 {
        self.max_age_ns
    }

    /// How far ahead a nonce may be.
    pub fn allowed_skew_ns(&self) -> u64 {
        self.allowed_skew_ns
    }

    /// Everything that needs no body: header shape, receiver binding, freshness (the SDK's
    /// order). Cheap, so a server runs it before reading the body.
    pub fn check_headers(
        &self,
        headers: &HeaderMap,
        now_ns: u64,
    ) -> Result<AuthHeaders, WireError> {
        let auth = AuthHeaders::parse(headers)?;
        self.check_receiver(auth.receiver_ss58.as_deref())?;
        check_freshness(auth.nonce_ns, now_ns, self.max_age_ns, self.allowed_skew_ns)?;
        Ok(auth)
    }

    /// The receiver binding: the header must name this server (any SS58 prefix), and may be
    /// absent only when receivers are not required.
    pub fn check_receiver(&self, receiver_ss58: Option<&str>) -> Result<(), WireError> {
        match receiver_ss58 {
            None if self.require_receiver => Err(WireError::WrongReceiver(Cow::Borrowed(
                "missing X-Bittensor-Receiver: this server requires receiver-bound requests",
            ))),
            None => Ok(()),
            // The common case, the SS58 we print ourselves, needs no checksum.
            Some(r) if r == self.self_ss58 => Ok(()),
            Some(r) => match AccountId::from_ss58_with_prefix(r) {
                Ok((account, _)) if account == self.self_hotkey => Ok(()),
                _ => Err(WireError::WrongReceiver(Cow::Borrowed(
                    "request was signed for a different receiving hotkey",
                ))),
            },
        }
    }

    /// The signature over the payload rebuilt from the received method, target and raw body.
    pub fn check_signature(
        &self,
        auth: &AuthHeaders,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), WireError> {
        let msg = request_payload(
            method,
            path_and_query,
            body,
            auth.nonce_ns,
            &auth.hotkey_ss58,
            auth.receiver_ss58.as_deref(),
        );
        if crypto::verify(&auth.hotkey, &msg, &auth.signature) {
            Ok(())
        } else {
            Err(WireError::BadSignature)
        }
    }

    /// The SDK's `verify` in one call: shape, receiver, freshness, signature, then replay. The
    /// replay store is written only after the signature verifies, so forged traffic cannot
    /// poison it against a real sender.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ns: u64,
        nonces: &NonceStore,
    ) -> Result<AuthHeaders, WireError> {
        let auth = self.check_headers(headers, now_ns)?;
        self.check_signature(&auth, method, path_and_query, body)?;
        nonces.check_and_insert(&auth.hotkey, auth.nonce_ns, now_ns)?;
        Ok(auth)
    }
}

/// Accepts `nonce_ns` if it is at most `max_age_ns` older and `allowed_skew_ns` newer than
/// `now_ns` (both bounds inclusive, as in the SDK).
pub fn check_freshness(
    nonce_ns: u64,
    now_ns: u64,
    max_age_ns: u64,
    allowed_skew_ns: u64,
) -> Result<(), WireError> {
    if now_ns >= nonce_ns {
        let age = now_ns - nonce_ns;
        if age > max_age_ns {
            return Err(WireError::Expired {
                age_ms: age / 1_000_000,
                max_age_ms: max_age_ns / 1_000_000,
            });
        }
    } else {
        let ahead = nonce_ns - now_ns;
        if ahead > allowed_skew_ns {
            return Err(WireError::FutureNonce {
                ahead_ms: ahead / 1_000_000,
                skew_ms: allowed_skew_ns / 1_000_000,
            });
        }
    }
    Ok(())
}

fn malformed(m: &'static str) -> WireError {
    WireError::Malformed(Cow::Borrowed(m))
}

/// The one value of a header that must not repeat (two values would make the signed bytes
/// ambiguous).
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, WireError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(WireError::Malformed(Cow::Owned(format!(
            "{name} appears more than once"
        ))));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| WireError::Malformed(Cow::Owned(format!("{name} is not visible ASCII"))))
}

/// Accepts the SDK's spellings of sr25519 (`sr25519` in any case, or its crypto-type code 1);
/// ed25519 (`ed25519`, code 0) is a valid btauth/1 scheme this crate does not verify.
fn check_scheme(raw: &str) -> Result<(), WireError> {
    let s = raw.trim();
    let is_sr25519 = s.eq_ignore_ascii_case(SCHEME_SR25519)
        || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>() == Ok(1));
    if is_sr25519 {
        Ok(())
    } else {
        Err(malformed(
            "unsupported X-Bittensor-Crypto (only sr25519 is accepted)",
        ))
    }
}

fn parse_signature(raw: &str) -> Result<Signature, WireError> {
    let digits = raw.strip_prefix("0x").unwrap_or(raw);
    let mut sig = [0u8; 64];
    hex::decode_to_slice(digits, &mut sig)
        .map_err(|_| malformed("X-Bittensor-Signature is not 64 bytes of hex"))?;
    Ok(Signature(sig))
}

/// Header values this crate writes are SS58, hex or digits, always valid; anything else
/// becomes `-`, which then fails verification at the peer instead of panicking here.
fn ascii_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(NO_RECEIVER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str) -> Pair {
        Pair::from_uri(&format!("//{name}")).expect("dev uri")
    }

    /// The SDK's cross-language golden vector (bittensor 11.3.0, tests/unit/test_http_auth.py).
    #[test]
    fn golden_payload_matches_sdk() {
        let alice = dev("Alice").account().to_ss58();
        let bob = dev("Bob").account().to_ss58();
        assert_eq!(alice, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
        assert_eq!(bob, "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty");
        let got = request_payload(
            "post",
            "/generate?stream=false",
            br#"{"prompt": "hello"}"#,
            1_752_076_800_000_000_000,
            &alice,
            Some(&bob),
        );
        let want = "btauth/1\nsr25519\nPOST\n/generate?stream=false\n\
                    341c57448e531310fbbe83f44cea2a5e838bd9e8a6b82b269f01d0dbbc23c3cc\n\
                    1752076800000000000\n\
                    5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\n\
                    5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    /// Headers the Python SDK (bittensor 11.3.0, `http_auth.sign`) produced for the golden
    /// request: //Alice to //Bob. sr25519 signatures are randomised, so this is one valid
    /// signature among many; it proves the signed bytes and encodings agree.
    #[test]
    fn sdk_signed_request_verifies() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("X-Bittensor-Version", "1"),
            (
                "X-Bittensor-Hotkey",
                "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            ),
            ("X-Bittensor-Nonce", "1752076800000000000"),
            (
                "X-Bittensor-Signature",
                "0x681f930fae76f3e5953f6d533089dc71f082bab9a0fd1b4b1a9d92c32205213f\
                 dc8cc5f6db9e705beabfc16eb75d47d513603d001a0de7b0451ab065909df582",
            ),
            (
                "X-Bittensor-Receiver",
                "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
            ),
        ] {
            headers.insert(
                HeaderName::try_from(k).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let v = Verifier::new(dev("Bob").account());
        let store = NonceStore::new(DEFAULT_MAX_AGE_NS, 16);
        let auth = v
            .verify(
                &headers,
                "POST",
                "/generate?stream=false",
                br#"{"prompt": "hello"}"#,
                1_752_076_800_001_000_000,
                &store,
            )
            .expect("the SDK's signature verifies here");
        assert_eq!(auth.hotkey, dev("Alice").account());
    }

    /// A signature `sign_request` made for the golden request, which the Python SDK's
    /// `http_auth.verify` (bittensor 11.3.0) accepted, and rejected once the body was changed.
    /// Kept so a change to our signing bytes shows up here, not in production.
    #[test]
    fn vector_checked_by_sdk_still_verifies() {
        let mut auth = sign_request(
            &dev("Alice"),
            "POST",
            "/generate?stream=false",
            br#"{"prompt": "hello"}"#,
            Some(&dev("Bob").account()),
            1_752_076_800_000_000_000,
        );
        let sig = "2691ab5b5e2b38ed390a7a62a78c74f2874a221246ae12b0a5b4f9c4a8ee5c25\
                   3971b8104b24b0716a8edf441307e79e60a72df51ffed5ca6b49beabe426138b";
        hex::decode_to_slice(sig, &mut auth.signature.0).unwrap();
        let v = Verifier::new(dev("Bob").account());
        let body = br#"{"prompt": "hello"}"#;
        assert!(v
            .check_signature(&auth, "POST", "/generate?stream=false", body)
            .is_ok());
    }

    #[test]
    fn unbound_payload_uses_dash() {
        let p = request_payload("GET", "/health", b"", 7, "5Sender", None);
        assert!(String::from_utf8(p).unwrap().ends_with("\n7\n5Sender\n-"));
    }

    #[test]
    fn sign_then_verify_round_trip_and_header_format() {
        let (alice, bob) = (dev("Alice"), dev("Bob"));
        let nonce = 1_752_076_800_000_000_000;
        let signed = sign_request(&alice, "POST", "/x?y=1", b"{}", Some(&bob.account()), nonce);
        let mut headers = HeaderMap::new();
        signed.write_to(&mut headers);
        assert_eq!(headers[&HEADER_VERSION], "1");
        assert!(headers.get(&HEADER_CRYPTO).is_none());
        let sig = headers[&HEADER_SIGNATURE].to_str().unwrap();
        assert!(sig.starts_with("0x") && sig.len() == 130);
        assert_eq!(headers[&HEADER_NONCE], "1752076800000000000");

        let v = Verifier::new(bob.account());
        let store = NonceStore::new(DEFAULT_MAX_AGE_NS, 16);
        let got = v
            .verify(&headers, "POST", "/x?y=1", b"{}", nonce + 1, &store)
            .unwrap();
        assert_eq!(got.hotkey, alice.account());
        assert!(matches!(
            v.verify(&headers, "POST", "/x?y=1", b"{}", nonce + 1, &store),
            Err(WireError::Replayed)
        ));
    }

    #[test]
    fn signature_without_prefix_and_scheme_spellings_accepted() {
        let (alice, bob) = (dev("Alice"), dev("Bob"));
        let signed = sign_request(&alice, "GET", "/", b"", Some(&bob.account()), 5);
        let mut headers = HeaderMap::new();
        signed.write_to(&mut headers);
        let bare = hex::encode(signed.signature.0).to_uppercase();
        headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(&bare).unwrap());
        for scheme in ["sr25519", "SR25519", "1", " Sr25519 "] {
            headers.insert(HEADER_CRYPTO, HeaderValue::from_str(scheme).unwrap());
            let v = Verifier::new(bob.account());
            let auth = v.check_headers(&headers, 5).unwrap();
            v.check_signature(&auth, "GET", "/", b"").unwrap();
        }
        for scheme in ["ed25519", "0", "ecdsa", ""] {
            headers.insert(HEADER_CRYPTO, HeaderValue::from_str(scheme).unwrap());
            assert!(matches!(
                AuthHeaders::parse(&headers),
                Err(WireError::Malformed(_))
            ));
        }
    }

    #[test]
    fn freshness_bounds_are_inclusive() {
        let n = 100 * NS_PER_SEC;
        assert!(check_freshness(
            n,
            n + DEFAULT_MAX_AGE_NS,
            DEFAULT_MAX_AGE_NS,
            DEFAULT_ALLOWED_SKEW_NS
        )
        .is_ok());
        assert!(matches!(
            check_freshness(
                n,
                n + DEFAULT_MAX_AGE_NS + 1,
                DEFAULT_MAX_AGE_NS,
                DEFAULT_ALLOWED_SKEW_NS
            ),
            Err(WireError::Expired { .. })
        ));
        assert!(check_freshness(
            n + DEFAULT_ALLOWED_SKEW_NS,
            n,
            DEFAULT_MAX_AGE_NS,
            DEFAULT_ALLOWED_SKEW_NS
        )
        .is_ok());
        assert!(matches!(
            check_freshness(
                n + DEFAULT_ALLOWED_SKEW_NS + 1,
                n,
                DEFAULT_MAX_AGE_NS,
                DEFAULT_ALLOWED_SKEW_NS
            ),
            Err(WireError::FutureNonce { .. })
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let (alice, bob) = (dev("Alice"), dev("Bob"));
        let signed = sign_request(&alice, "POST", "/a", b"body", Some(&bob.account()), 9);
        let v = Verifier::new(bob.account());
        assert!(v.check_signature(&signed, "POST", "/a", b"body").is_ok());
        for (m, p, b) in [
            ("PUT", "/a", &b"body"[..]),
            ("POST", "/b", b"body"),
            ("POST", "/a", b"bodY"),
        ] {
            assert!(matches!(
                v.check_signature(&signed, m, p, b),
                Err(WireError::BadSignature)
            ));
        }
        let mut later = signed.clone();
        later.nonce_ns += 1;
        assert!(matches!(
            v.check_signature(&later, "POST", "/a", b"body"),
            Err(WireError::BadSignature)
        ));
    }

    #[test]
    fn stream_trailer_round_trip() {
        let (server, client) = (dev("Bob"), dev("Alice"));
        let body = b"data: {}\n\ndata: [DONE]\n\n";
        let hash = sha256(body);
        let trailer = stream_trailer(&server, 200, "/v1/x", &hash, 7, &client.account().to_ss58());
        assert_eq!(trailer.len(), STREAM_TRAILER_LEN);
        let check = |t: &[u8], h: &[u8; 32], nonce| {
            verify_stream_trailer(
                t,
                200,
                "/v1/x",
                h,
                nonce,
                &server.account(),
                &client.account(),
            )
        };
        check(&trailer, &hash, 7).unwrap();
        assert!(check(&trailer, &sha256(b"data: {}\n\n"), 7).is_err());
        assert!(check(&trailer, &hash, 8).is_err());
        assert!(check(&trailer[..trailer.len() - 1], &hash, 7).is_err());
        assert!(check(b"", &hash, 7).is_err());
    }

    #[test]
    fn response_signature_round_trip() {
        let (client, server) = (dev("Alice"), dev("Bob"));
        let client_ss58 = client.account().to_ss58();
        let signed = sign_response(&server, 200, "/a?b", b"ok", 42, &client_ss58);
        let mut headers = HeaderMap::new();
        signed.write_to(&mut headers);
        let (c, s) = (client.account(), server.account());
        assert!(verify_response(&headers, 200, "/a?b", b"ok", 42, &s, &c).is_ok());
        assert!(verify_response(&headers, 201, "/a?b", b"ok", 42, &s, &c).is_err());
        assert!(verify_response(&headers, 200, "/a?b", b"ok", 43, &s, &c).is_err());
        assert!(verify_response(&headers, 200, "/a?b", b"ok", 42, &c, &c).is_err());
        assert!(verify_response(&headers, 200, "/a?b", b"no", 42, &s, &c).is_err());
    }
}
