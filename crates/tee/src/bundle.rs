//! What an enclave publishes: evidence + collateral + its HPKE public key, and the one call
//! that verifies all of it.

use agora_primitives::hashing::{blake2_256, Hash};
use serde::{Deserialize, Serialize};

use crate::anchors::TrustAnchors;
use crate::binding::{check_binding, KeyDescriptor};
use crate::error::{Result, TeeError};
use crate::evidence::{Platform, VerifiedEvidence};
use crate::policy::Policy;
use crate::{intel, snp};

/// Domain tag of [`AttestationBundle::digest`].
pub const BUNDLE_DIGEST_DOMAIN: &[u8] = b"agora-tee-bundle/v1";

/// Evidence of an enclave and the key it holds. Serialises to JSON with hex byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationBundle {
    /// Which TEE produced the evidence.
    pub platform: Platform,
    /// The raw quote (Intel) or 1184-byte report (AMD).
    #[serde(with = "hex::serde")]
    pub evidence: Vec<u8>,
    /// Intel: collateral JSON (`QuoteCollateralV3` field names). AMD: VCEK and optionally
    /// ASK as a PEM bundle, or the VCEK as DER.
    #[serde(with = "hex::serde")]
    pub collateral: Vec<u8>,
    /// The enclave's X25519 HPKE public key (32 bytes).
    #[serde(with = "hex::serde")]
    pub hpke_public_key: Vec<u8>,
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    // Lengths are bounded by `usize`; u64 encoding keeps the digest platform-independent.
    out.extend_from_slice(&(field.len() as u64).to_le_bytes());
    out.extend_from_slice(field);
}

impl AttestationBundle {
    /// 32-byte digest for publishing on chain: BLAKE2b-256 of the domain tag, the platform
    /// name and each field length-prefixed.
    pub fn digest(&self) -> Hash {
        let mut buf = Vec::with_capacity(
            self.evidence
                .len()
                .saturating_add(self.collateral.len())
                .saturating_add(128),
        );
        buf.extend_from_slice(BUNDLE_DIGEST_DOMAIN);
        put(&mut buf, self.platform.as_str().as_bytes());
        put(&mut buf, &self.evidence);
        put(&mut buf, &self.collateral);
        put(&mut buf, &self.hpke_public_key);
        Hash(blake2_256(&buf))
    }

    /// The key descriptor of the bundle's public key.
    pub fn key_descriptor(&self) -> Result<KeyDescriptor> {
        KeyDescriptor::x25519(&self.hpke_public_key)
    }

    /// Verify the evidence at `now` under `policy` and check that it binds the public key.
    pub fn verify(
        &self,
        now: u64,
        policy: &Policy,
        anchors: &TrustAnchors,
    ) -> Result<VerifiedEvidence> {
        let key = self.key_descriptor()?;
        let ev = verify_evidence(
            Some(self.platform),
            &self.evidence,
            &self.collateral,
            now,
            policy,
            anchors,
        )?;
        check_binding(&ev, &key)?;
        Ok(ev)
    }
}

/// The check every verifier of a miner (gateway, validator, client) applies to the bundle
/// the miner serves: its digest must be the one the miner published on chain with its axon,
/// and the bundle must verify under `policy` and `anchors` at `now`, key binding included.
/// The digest comes first, so a miner cannot have anything verified but what it committed to.
pub fn verify_published_bundle(
    bundle: &AttestationBundle,
    onchain_digest: &[u8; 32],
    now: u64,
    policy: &Policy,
    anchors: &TrustAnchors,
) -> Result<VerifiedEvidence> {
    let served = bundle.digest().0;
    if served != *onchain_digest {
        return Err(TeeError::DigestMismatch {
            published: hex::encode(onchain_digest),
            served: hex::encode(served),
        });
    }
    bundle.verify(now, policy, anchors)
}

/// Guess the platform of raw evidence: a 1184-byte blob with an SNP version is AMD,
/// anything else must be a DCAP quote.
pub fn detect_platform(evidence: &[u8]) -> Result<Platform> {
    if evidence.len() == snp::REPORT_LEN {
        if let Ok(r) = snp::SnpReport::parse(evidence) {
            if r.sig_algo == 1 {
                return Ok(Platform::AmdSevSnp);
            }
        }
    }
    intel::quote_platform(evidence)
}

/// Verify evidence of any supported platform with its collateral bytes at `now`, then
/// apply `policy`. `platform`, when given, must match the evidence. Does not check a key
/// binding (see [`AttestationBundle::verify`]).
pub fn verify_evidence(
    platform: Option<Platform>,
    evidence: &[u8],
    collateral: &[u8],
    now: u64,
    policy: &Policy,
    anchors: &TrustAnchors,
) -> Result<VerifiedEvidence> {
    let actual = detect_platform(evidence)?;
    if let Some(declared) = platform {
        if declared != actual {
            return Err(TeeError::PlatformMismatch { declared, actual });
        }
    }
    match actual {
        Platform::IntelTdx | Platform::IntelSgx => {
            let c = intel::parse_collateral(collateral)?;
            intel::verify_quote(evidence, &c, now, policy, anchors)
        }
        Platform::AmdSevSnp => {
            let c = snp::SnpCollateral::parse(collateral)?;
            snp::verify_report(evidence, &c, now, policy, anchors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_bundle_must_match_its_onchain_digest_before_anything_else() {
        let bundle = AttestationBundle {
            platform: Platform::AmdSevSnp,
            evidence: vec![1; 1184],
            collateral: Vec::new(),
            hpke_public_key: vec![2; 32],
        };
        let (policy, anchors) = (Policy::default(), TrustAnchors::production());
        let err = verify_published_bundle(&bundle, &[0; 32], 0, &policy, &anchors).unwrap_err();
        assert!(
            matches!(&err, TeeError::DigestMismatch { published, served }
                if *published == hex::encode([0u8; 32]) && *served == hex::encode(bundle.digest().0)),
            "{err}"
        );
        // The right digest, but evidence that does not verify: still refused, and not for
        // its digest.
        let err =
            verify_published_bundle(&bundle, &bundle.digest().0, 0, &policy, &anchors).unwrap_err();
        assert!(!matches!(err, TeeError::DigestMismatch { .. }), "{err}");
    }
}
