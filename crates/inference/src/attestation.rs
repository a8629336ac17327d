//! The validator's verdicts on miners' TEE attestations, and how long it keeps them. Pure:
//! time is the `now` parameter (unix seconds); fetching bundles is the caller's job.
//!
//! A miner that publishes an attestation digest with its axon serves the bundle at
//! `GET /v1/attestation`. Its verdict is [`agora_tee::verify_published_bundle`] — the check
//! the gateway and the client apply too: the served bundle's digest is the one on chain, and
//! the bundle verifies under the subnet's policy and trust anchors at `now`, key binding
//! included. Verdicts are kept per (uid, hotkey, digest): a new registration on the uid or a
//! new digest starts over. A verified bundle is verified again after
//! [`AttestationCache::reverify_secs`] (verification depends on `now`: certificates and
//! collateral expire), a rejected one is tried again after [`AttestationCache::retry_secs`].

use agora_primitives::AccountId;
use agora_tee::{AttestationBundle, Policy, TrustAnchors, VerifiedEvidence};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a validator accepts: the subnet's TEE policy and the roots evidence must chain to
/// (the same `--tee-policy` file and anchors as the subnet's gateways).
#[derive(Debug, Clone)]
pub struct TeeTrust {
    /// The subnet (private challenges name it in their sealed metadata).
    pub netuid: u16,
    /// The policy evidence must satisfy.
    pub policy: Policy,
    /// The roots evidence must chain to.
    pub anchors: TrustAnchors,
}

impl TeeTrust {
    /// The verdict on `bundle`, served by a miner that published `onchain_digest`.
    pub fn verdict(
        &self,
        bundle: AttestationBundle,
        onchain_digest: &[u8; 32],
        now: u64,
    ) -> Verdict {
        match agora_tee::verify_published_bundle(
            &bundle,
            onchain_digest,
            now,
            &self.policy,
            &self.anchors,
        ) {
            Ok(evidence) => Verdict::Verified {
                bundle,
                evidence: Box::new(evidence),
            },
            Err(e) => Verdict::Rejected(e.to_string()),
        }
    }
}

/// The outcome of checking one miner's bundle.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It verified: private challenges are sealed to this bundle's key.
    Verified {
        /// The bundle whose digest is on chain.
        bundle: AttestationBundle,
        /// What verification established.
        evidence: Box<VerifiedEvidence>,
    },
    /// It did not: why.
    Rejected(String),
}

impl Verdict {
    /// Whether the bundle verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

type Key = (u16, AccountId, [u8; 32]);

#[derive(Debug, Clone)]
struct Entry {
    verdict: Arc<Verdict>,
    expires_at: u64,
}

/// Verdicts per (uid, hotkey, digest), each until its expiry.
#[derive(Debug, Clone)]
pub struct AttestationCache {
    /// Seconds a verified bundle is trusted before it is verified again.
    pub reverify_secs: u64,
    /// Seconds before a rejected bundle is fetched and checked again.
    pub retry_secs: u64,
    entries: BTreeMap<Key, Entry>,
}

impl Default for AttestationCache {
    fn default() -> Self {
        AttestationCache {
            reverify_secs: 300,
            retry_secs: 60,
            entries: BTreeMap::new(),
        }
    }
}

impl AttestationCache {
    /// The verdict still valid at `now` for this miner and digest, if any.
    pub fn get(
        &self,
        uid: u16,
        hotkey: &AccountId,
        digest: &[u8; 32],
        now: u64,
    ) -> Option<Arc<Verdict>> {
        self.entries
            .get(&(uid, *hotkey, *digest))
            .filter(|e| now < e.expires_at)
            .map(|e| e.verdict.clone())
    }

    /// Records the verdict reached at `now`, replacing any other digest of the same uid
    /// and hotkey.
    pub fn record(
        &mut self,
        uid: u16,
        hotkey: &AccountId,
        digest: &[u8; 32],
        verdict: Verdict,
        now: u64,
    ) -> Arc<Verdict> {
        let ttl = if verdict.is_verified() {
            self.reverify_secs
        } else {
            self.retry_secs
        };
        self.entries
            .retain(|(u, h, d), _| !(*u == uid && h == hotkey && d != digest));
        let verdict = Arc::new(verdict);
        self.entries.insert(
            (uid, *hotkey, *digest),
            Entry {
                verdict: verdict.clone(),
                expires_at: now.saturating_add(ttl),
            },
        );
        verdict
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> AttestationBundle {
        AttestationBundle {
            platform: agora_tee::Platform::AmdSevSnp,
            evidence: vec![1; 1184],
            collateral: Vec::new(),
            hpke_public_key: vec![2; 32],
        }
    }

    fn trust() -> TeeTrust {
        TeeTrust {
            netuid: 1,
            policy: Policy::default(),
            anchors: TrustAnchors::production(),
        }
    }

    #[test]
    fn a_bundle_whose_digest_is_not_on_chain_is_rejected() {
        let b = bundle();
        let v = trust().verdict(b.clone(), &[9; 32], 1_000);
        let Verdict::Rejected(reason) = v else {
            panic!("a mismatched digest verified")
        };
        assert!(
            reason.contains("is not the digest published on chain"),
            "{reason}"
        );
        // The right digest with evidence that does not verify is rejected too.
        let digest = b.digest().0;
        assert!(!trust().verdict(b, &digest, 1_000).is_verified());
    }

    #[test]
    fn verdicts_expire_and_are_keyed_by_uid_hotkey_and_digest() {
        let mut c = AttestationCache {
            reverify_secs: 100,
            retry_secs: 10,
            ..AttestationCache::default()
        };
        let (h1, h2) = (AccountId([1; 32]), AccountId([2; 32]));
        let verified = Verdict::Verified {
            bundle: bundle(),
            evidence: Box::new(agora_tee::VerifiedEvidence {
                platform: agora_tee::Platform::AmdSevSnp,
                tcb_status: agora_tee::TcbStatus::UpToDate,
                advisory_ids: Vec::new(),
                measurements: agora_tee::Measurements::AmdSevSnp {
                    measurement: [0; 48],
                },
                report_data: [0; 64],
                debug: false,
                trust_anchor: agora_tee::TrustAnchor::AmdArkGenoa,
                snp: None,
            }),
        };
        c.record(3, &h1, &[7; 32], verified, 1_000);
        assert!(c.get(3, &h1, &[7; 32], 1_099).unwrap().is_verified());
        // Expired: verify again.
        assert!(c.get(3, &h1, &[7; 32], 1_100).is_none());
        // Another hotkey on the uid, or another digest, is another miner's verdict.
        assert!(c.get(3, &h2, &[7; 32], 1_001).is_none());
        assert!(c.get(3, &h1, &[8; 32], 1_001).is_none());
        // A rejection is retried sooner, and a new digest replaces the old one's verdict.
        c.record(3, &h1, &[8; 32], Verdict::Rejected("no".into()), 1_000);
        assert_eq!(c.len(), 1);
        assert!(!c.get(3, &h1, &[8; 32], 1_009).unwrap().is_verified());
        assert!(c.get(3, &h1, &[8; 32], 1_010).is_none());
        assert!(!c.is_empty());
    }
}
