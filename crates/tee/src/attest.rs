//! The enclave side of attestation: where evidence comes from, and the bundle that binds the
//! enclave's HPKE key to it.
//!
//! An [`EvidenceSource`] produces evidence whose report_data the caller chooses: on TDX the
//! guest asks the TDX module for a quote (configfs-tsm), on SEV-SNP the guest asks the PSP
//! for a report, and with feature `insecure-mock-tee` the test PKI signs one
//! (`mock::MockEvidenceSource`). [`attest_key`] asks for evidence binding an
//! [`EnclaveKeypair`] and returns the [`AttestationBundle`] to publish.

use crate::binding::KeyDescriptor;
use crate::bundle::AttestationBundle;
use crate::channel::EnclaveKeypair;
use crate::error::Result;
use crate::evidence::Platform;

/// Evidence and the collateral a verifier needs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The raw quote (Intel) or report (AMD).
    pub evidence: Vec<u8>,
    /// Intel: collateral JSON; AMD: VCEK (+ASK) PEM bundle.
    pub collateral: Vec<u8>,
}

/// A producer of TEE evidence over chosen report data. Implementations for hardware talk
/// to the platform (and so live outside this pure crate); the test PKI's lives in
/// `mock` behind feature `insecure-mock-tee`.
pub trait EvidenceSource: Send + Sync + core::fmt::Debug {
    /// The platform whose evidence this produces.
    fn platform(&self) -> Platform;

    /// Evidence carrying `report_data`, produced at `now` (unix seconds; collateral
    /// freshness may depend on it).
    fn evidence(&self, report_data: &[u8; 64], now: u64) -> Result<Evidence>;
}

/// Evidence from `source` binding `keypair`'s public key, as the bundle to publish.
pub fn attest_key(
    source: &dyn EvidenceSource,
    keypair: &EnclaveKeypair,
    now: u64,
) -> Result<AttestationBundle> {
    let public_key = keypair.public_key();
    let report_data = KeyDescriptor::x25519(&public_key)?.report_data()?;
    let ev = source.evidence(&report_data, now)?;
    Ok(AttestationBundle {
        platform: source.platform(),
        evidence: ev.evidence,
        collateral: ev.collateral,
        hpke_public_key: public_key.to_vec(),
    })
}
