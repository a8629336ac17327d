//! The crate's single error type.

use crate::evidence::{Platform, TcbStatus};

/// Every way verification, binding or the encrypted channel can fail.
///
/// Messages are meant for operators; the variant is what code should match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// The evidence bytes are not a well-formed quote or report (wrong length, unknown
    /// version, unknown TEE type).
    #[error("malformed evidence: {0}")]
    MalformedEvidence(String),
    /// The platform's evidence source (the guest kernel's report interface, the
    /// collateral file) failed to produce evidence.
    #[error("evidence source: {0}")]
    EvidenceSource(String),
    /// The collateral (Intel PCK chain, CRLs, TCB info, QE identity; AMD VCEK/ASK/ARK) could
    /// not be parsed.
    #[error("malformed collateral: {0}")]
    MalformedCollateral(String),
    /// The policy document could not be parsed or is inconsistent.
    #[error("malformed policy: {0}")]
    MalformedPolicy(String),
    /// The bundle names one platform but its evidence is of another.
    #[error("platform mismatch: bundle says {declared}, evidence is {actual}")]
    PlatformMismatch {
        /// Platform the bundle declares.
        declared: Platform,
        /// Platform the evidence actually is.
        actual: Platform,
    },
    /// Intel quote verification (signatures, certificate chain, CRLs, TCB evaluation) failed
    /// inside `dcap-qvl`; the message is its error chain.
    #[error("quote verification failed: {0}")]
    QuoteVerification(String),
    /// No configured trust anchor verifies the certificate chain.
    #[error("certificate chain does not lead to a trusted root: {0}")]
    UntrustedChain(String),
    /// A certificate is outside its validity period at `now`.
    #[error("certificate {subject} not valid at {now}: valid {not_before}..={not_after}")]
    CertificateNotValid {
        /// Which certificate (role or subject).
        subject: String,
        /// The verification time (unix seconds).
        now: u64,
        /// Start of validity (unix seconds).
        not_before: u64,
        /// End of validity (unix seconds).
        not_after: u64,
    },
    /// The report signature does not verify under the endorsement key.
    #[error("evidence signature invalid: {0}")]
    BadSignature(String),
    /// A value in the AMD SEV-SNP report disagrees with the VCEK certificate's extensions
    /// (reported TCB, chip id, product).
    #[error("report does not match its VCEK certificate: {0}")]
    VcekMismatch(String),
    /// Collateral is not valid yet at `now` (issue date in the future).
    #[error("collateral {what} not yet valid: issued {issued}, now {now}")]
    CollateralNotYetValid {
        /// Which collateral item.
        what: &'static str,
        /// Its issue date (unix seconds).
        issued: u64,
        /// The verification time (unix seconds).
        now: u64,
    },
    /// Collateral is past its `nextUpdate` at `now`.
    #[error("collateral {what} expired: next update was {next_update}, now {now}")]
    CollateralExpired {
        /// Which collateral item.
        what: &'static str,
        /// Its `nextUpdate` (unix seconds).
        next_update: u64,
        /// The verification time (unix seconds).
        now: u64,
    },
    /// Collateral is older than the policy's maximum age.
    #[error("collateral {what} too old: issued {issued}, now {now}, max age {max_age_secs}s")]
    CollateralTooOld {
        /// Which collateral item.
        what: &'static str,
        /// Its issue date (unix seconds).
        issued: u64,
        /// The verification time (unix seconds).
        now: u64,
        /// The policy's limit.
        max_age_secs: u64,
    },
    /// The platform's TCB status is not one the policy accepts.
    #[error("TCB status {status} not accepted by policy")]
    TcbStatusRejected {
        /// The status the evidence has.
        status: TcbStatus,
    },
    /// The evidence lists a security advisory the policy rejects.
    #[error("advisory {0} rejected by policy")]
    AdvisoryRejected(String),
    /// The TEE runs in debug mode (its memory is readable by the host) and the policy forbids it.
    #[error("debug mode enabled and forbidden by policy")]
    DebugEnabled,
    /// The AMD SEV-SNP report was requested from a VMPL the policy does not accept.
    #[error("report VMPL {vmpl} above policy maximum {max}")]
    VmplRejected {
        /// The report's VMPL.
        vmpl: u32,
        /// The policy's maximum.
        max: u32,
    },
    /// The measured image is not on the policy's allow-list.
    #[error("measurement not allowed by policy: {0}")]
    MeasurementRejected(String),
    /// A miner serves a bundle whose digest is not the one it published on chain.
    #[error("bundle digest {served} is not the digest published on chain ({published})")]
    DigestMismatch {
        /// Hex of the digest on chain.
        published: String,
        /// Hex of the served bundle's digest.
        served: String,
    },
    /// The evidence's report_data does not commit to the bundle's public key.
    #[error("key binding mismatch: report_data does not commit to the public key")]
    BindingMismatch,
    /// A public key, encapsulated key or key descriptor is malformed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An HPKE operation failed (decapsulation, AEAD open): the ciphertext, the associated
    /// data or the key is wrong.
    #[error("decryption failed")]
    DecryptionFailed,
    /// An HPKE or AEAD seal failed (only on internal limits, e.g. message too long).
    #[error("encryption failed: {0}")]
    EncryptionFailed(String),
    /// A request was seen before (same encapsulated key or request id) within the window.
    #[error("replayed request")]
    Replay,
    /// A request's timestamp is outside the replay window around `now`.
    #[error("request timestamp {issued_at} outside window of {window_secs}s around {now}")]
    StaleRequest {
        /// The request's timestamp (unix seconds).
        issued_at: u64,
        /// The verification time (unix seconds).
        now: u64,
        /// The guard's window.
        window_secs: u64,
    },
    /// The replay guard is full of unexpired entries; the request is refused rather than
    /// forgetting an entry that could then be replayed.
    #[error("replay guard full ({capacity} live entries)")]
    ReplayGuardFull {
        /// The guard's capacity.
        capacity: usize,
    },
    /// A response frame arrived out of order, was dropped, duplicated, or came after the final one.
    #[error("response frame out of order: expected {expected}, got {got}")]
    FrameOutOfOrder {
        /// The counter the receiver expects next.
        expected: u64,
        /// The counter in the frame.
        got: u64,
    },
    /// A frame arrived after the final frame.
    #[error("frame after the final frame")]
    FrameAfterFinal,
    /// The response stream ended without its final frame (truncation).
    #[error("response truncated: final frame missing")]
    Truncated,
    /// A field exceeds its limit or a counter would overflow.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, TeeError>;
