//! The roots of trust a verifier accepts.

use crate::error::Result;
use crate::evidence::TrustAnchor;
use crate::Policy;

/// The set of roots verification may chain to.
///
/// [`TrustAnchors::production`] holds the vendor roots compiled into `dcap-qvl` (Intel SGX
/// Root CA) and `sev` (AMD ARKs). The test PKI root can only be added with feature
/// `insecure-mock-tee`, so a production build cannot be configured to accept mock evidence.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    vendor: Vec<TrustAnchor>,
    #[cfg(feature = "insecure-mock-tee")]
    mock: Option<crate::mock::MockRoots>,
}

impl TrustAnchors {
    /// All production vendor roots.
    pub fn production() -> Self {
        Self::only(&[
            TrustAnchor::IntelSgxRootCa,
            TrustAnchor::AmdArkMilan,
            TrustAnchor::AmdArkGenoa,
            TrustAnchor::AmdArkTurin,
        ])
    }

    /// Only the listed vendor roots (`MockTest` is ignored here; see `with_mock_root`).
    pub fn only(anchors: &[TrustAnchor]) -> Self {
        Self {
            vendor: anchors
                .iter()
                .copied()
                .filter(TrustAnchor::is_production)
                .collect(),
            #[cfg(feature = "insecure-mock-tee")]
            mock: None,
        }
    }

    /// No root at all: every verification fails. Useful as a base for `with_mock_root`.
    pub fn none() -> Self {
        Self::only(&[])
    }

    /// Add the test PKI's roots. Test-only: exists only with feature `insecure-mock-tee`.
    #[cfg(feature = "insecure-mock-tee")]
    pub fn with_mock_root(mut self, roots: crate::mock::MockRoots) -> Self {
        self.mock = Some(roots);
        self
    }

    /// The vendor roots configured.
    pub fn vendor_anchors(&self) -> &[TrustAnchor] {
        &self.vendor
    }

    /// Intel roots to try: `None` means dcap-qvl's built-in Intel SGX Root CA.
    pub(crate) fn intel_roots(&self) -> Vec<(TrustAnchor, Option<&[u8]>)> {
        #[allow(unused_mut)]
        let mut out: Vec<(TrustAnchor, Option<&[u8]>)> = self
            .vendor
            .iter()
            .filter(|a| **a == TrustAnchor::IntelSgxRootCa)
            .map(|a| (*a, None))
            .collect();
        #[cfg(feature = "insecure-mock-tee")]
        if let Some(m) = &self.mock {
            if let Some(der) = m.intel_root_der() {
                out.push((TrustAnchor::MockTest, Some(der)));
            }
        }
        out
    }

    /// AMD roots to try: (anchor, ARK DER, built-in ASK DER if any).
    pub(crate) fn amd_roots(&self) -> Vec<(TrustAnchor, Vec<u8>, Option<Vec<u8>>)> {
        use sev::certs::snp::builtin;
        #[allow(unused_mut)]
        let mut out = Vec::new();
        for a in &self.vendor {
            let pems = match a {
                TrustAnchor::AmdArkMilan => (builtin::milan::ARK, builtin::milan::ASK),
                TrustAnchor::AmdArkGenoa => (builtin::genoa::ARK, builtin::genoa::ASK),
                TrustAnchor::AmdArkTurin => (builtin::turin::ARK, builtin::turin::ASK),
                _ => continue,
            };
            let ark = crate::snp::pem_to_der(pems.0);
            let ask = crate::snp::pem_to_der(pems.1);
            if let Some(ark) = ark {
                out.push((*a, ark, ask));
            }
        }
        #[cfg(feature = "insecure-mock-tee")]
        if let Some(m) = &self.mock {
            out.push((TrustAnchor::MockTest, m.amd_ark_der().to_vec(), None));
        }
        out
    }
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self::production()
    }
}

/// What a subnet's verifiers (validators and gateways) trust, from their operator's
/// settings: the policy document (`None`: [`Policy::default`]) over the vendors' roots, plus
/// the public test PKI's roots when `trust_test_pki`. Only builds with feature
/// `insecure-mock-tee` can honour that; any other build refuses rather than ignore it.
pub fn subnet_trust(
    policy_json: Option<&[u8]>,
    trust_test_pki: bool,
) -> Result<(Policy, TrustAnchors)> {
    let policy = match policy_json {
        Some(bytes) => Policy::from_json(bytes)?,
        None => Policy::default(),
    };
    let anchors = TrustAnchors::production();
    if !trust_test_pki {
        return Ok((policy, anchors));
    }
    #[cfg(feature = "insecure-mock-tee")]
    {
        let roots = crate::mock::MockPki::dev()?.roots()?;
        Ok((policy, anchors.with_mock_root(roots)))
    }
    #[cfg(not(feature = "insecure-mock-tee"))]
    Err(crate::TeeError::UntrustedChain(
        "trusting the test PKI needs a build with feature insecure-mock-tee".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_anchor_cannot_be_configured_by_name() {
        let a = TrustAnchors::only(&[TrustAnchor::MockTest, TrustAnchor::AmdArkMilan]);
        assert_eq!(a.vendor_anchors(), &[TrustAnchor::AmdArkMilan]);
        assert!(a
            .amd_roots()
            .iter()
            .all(|(anchor, _, _)| *anchor != TrustAnchor::MockTest));
        assert!(TrustAnchors::production()
            .intel_roots()
            .iter()
            .all(|(anchor, der)| *anchor == TrustAnchor::IntelSgxRootCa && der.is_none()));
        // The built-in AMD roots all load.
        assert_eq!(TrustAnchors::production().amd_roots().len(), 3);
    }

    #[test]
    fn subnet_trust_reads_the_policy_and_only_a_mock_build_trusts_the_test_pki() {
        let (policy, _) = subnet_trust(None, false).expect("defaults");
        assert_eq!(policy, Policy::default());
        assert!(matches!(
            subnet_trust(Some(b"{not json"), false),
            Err(crate::TeeError::MalformedPolicy(_))
        ));
        let with_test_pki = subnet_trust(None, true);
        #[cfg(feature = "insecure-mock-tee")]
        assert!(with_test_pki.is_ok());
        #[cfg(not(feature = "insecure-mock-tee"))]
        assert!(matches!(
            with_test_pki,
            Err(crate::TeeError::UntrustedChain(_))
        ));
    }
}
