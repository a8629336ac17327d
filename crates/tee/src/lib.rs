//! Agora TEE: attestation verification, key binding and the end-to-end encrypted channel
//! of the confidential-compute subnet.
//!
//! # What it does
//! - [`verify_evidence`] / [`AttestationBundle::verify`]: verify an Intel TDX or SGX DCAP
//!   quote (via `dcap-qvl`, offline collateral) or an AMD SEV-SNP report (VCEK → ASK → ARK
//!   via `sev`, plus the checks `sev` leaves to its caller), then apply a [`Policy`] (TCB
//!   statuses, advisories, debug, measurement allow-list, collateral age, SNP VMPL and
//!   minimum TCB). The result, [`VerifiedEvidence`], names the [`TrustAnchor`] used.
//! - [`verify_published_bundle`]: what every verifier of a miner applies — the served
//!   bundle's digest equals the one published on chain, then [`AttestationBundle::verify`].
//! - [`binding`]: the enclave's HPKE key is bound to the evidence by
//!   `report_data = SHA-512("agora-tee-key-binding/v1" ‖ key descriptor)`.
//! - [`hpke`]: RFC 9180 HPKE, base mode, for the suite X25519-HKDF-SHA256 / HKDF-SHA256 /
//!   ChaCha20-Poly1305 (X25519 and the AEAD from aws-lc).
//! - [`channel`]: HPKE-sealed requests with routing metadata as associated data, a bounded
//!   replay guard, and numbered response frames under an exported key.
//! - [`attest`]: the enclave side — an [`EvidenceSource`] (hardware, or the test PKI)
//!   and [`attest_key`], the bundle binding the enclave's key.
//! - [`report::verify_files_report`]: the JSON of `agora tee verify`.
//!
//! # Invariants
//! - Pure: no I/O, no clock, no OS randomness in verification. Time is the `now` parameter
//!   (unix seconds); randomness for sealing is a `CryptoRng` parameter.
//! - Never panics on any input: no `unwrap`, indexing or `panic!` outside tests.
//! - Evidence is only trusted through a configured [`TrustAnchors`]; there is no "skip
//!   verification" path.
//!
//! # Feature flags
//! - `insecure-mock-tee` (**test-only, never in production**): the [`mock`] module, a test
//!   PKI generated from a seed that signs real-format TDX v4 quotes (with their collateral)
//!   and SEV-SNP reports, and
//!   `TrustAnchors::with_mock_root` to trust it. Evidence it signs verifies only when its
//!   root is passed explicitly and then reports `TrustAnchor::MockTest`; a build without
//!   the feature cannot be configured to accept it.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod anchors;
pub mod attest;
pub mod binding;
mod bundle;
pub mod channel;
mod error;
mod evidence;
pub mod hpke;
pub mod intel;
#[cfg(feature = "insecure-mock-tee")]
pub mod mock;
mod policy;
pub mod report;
pub mod snp;
mod time;

pub use anchors::{subnet_trust, TrustAnchors};
pub use attest::{attest_key, Evidence, EvidenceSource};
pub use binding::{check_binding, KeyDescriptor, KEY_BINDING_DOMAIN};
pub use bundle::{
    detect_platform, verify_evidence, verify_published_bundle, AttestationBundle,
    BUNDLE_DIGEST_DOMAIN,
};
pub use error::{Result, TeeError};
pub use evidence::{
    Measurement48, Measurements, Platform, TcbStatus, TrustAnchor, VerifiedEvidence,
};
pub use policy::{Policy, SnpTcb};
