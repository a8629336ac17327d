//! What a verifier accepts: TCB statuses, debug, measurements, collateral age, SNP minimums.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TeeError};
use crate::evidence::{Measurements, TcbStatus, VerifiedEvidence};

/// An AMD SEV-SNP TCB version (security version numbers of each firmware component).
///
/// Ordering is component-wise: `a.meets(b)` when every component of `a` is at least `b`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnpTcb {
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// CPU microcode SVN.
    pub microcode: u8,
    /// FMC SVN (Turin and later; zero before).
    #[serde(default)]
    pub fmc: u8,
}

impl SnpTcb {
    /// Whether every component is at least `min`'s.
    pub fn meets(&self, min: &SnpTcb) -> bool {
        self.bootloader >= min.bootloader
            && self.tee >= min.tee
            && self.snp >= min.snp
            && self.microcode >= min.microcode
            && self.fmc >= min.fmc
    }
}

/// The verifier's acceptance policy. Deserialises from JSON (`agora tee verify --policy F`);
/// missing fields take the [`Policy::default`] values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// TCB statuses accepted. `Revoked` is never accepted even if listed.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// Advisory ids (e.g. `INTEL-SA-00615`) that reject evidence outright.
    pub rejected_advisories: Vec<String>,
    /// Whether a debug TEE (host can read its memory) is accepted. Default false; true only
    /// for local development.
    pub allow_debug: bool,
    /// The images accepted. `None` accepts any image (use only to inspect evidence); a
    /// confidential-compute subnet sets the list of reproducibly built images.
    pub allowed_measurements: Option<Vec<Measurements>>,
    /// Maximum age of the collateral (seconds since the TCB info / QE identity issue date).
    /// Collateral past its `nextUpdate` is always rejected.
    pub max_collateral_age_secs: Option<u64>,
    /// Minimum SEV-SNP reported TCB: below it the status is `OutOfDate`.
    pub snp_min_tcb: SnpTcb,
    /// Highest SEV-SNP VMPL accepted for the report (0 = only the most privileged level,
    /// where the guest kernel runs without an SVSM).
    pub snp_max_vmpl: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            accepted_tcb_statuses: vec![TcbStatus::UpToDate],
            rejected_advisories: Vec::new(),
            allow_debug: false,
            allowed_measurements: None,
            max_collateral_age_secs: None,
            snp_min_tcb: SnpTcb::default(),
            snp_max_vmpl: 0,
        }
    }
}

impl Policy {
    /// Parse a JSON policy document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| TeeError::MalformedPolicy(e.to_string()))
    }

    /// A policy that also accepts the non-critical "configuration / hardening needed"
    /// statuses (still rejects out-of-date and revoked platforms).
    pub fn lenient() -> Self {
        Self {
            accepted_tcb_statuses: vec![
                TcbStatus::UpToDate,
                TcbStatus::SWHardeningNeeded,
                TcbStatus::ConfigurationNeeded,
                TcbStatus::ConfigurationAndSWHardeningNeeded,
            ],
            ..Self::default()
        }
    }

    /// Builder: restrict to exactly these images.
    pub fn with_allowed_measurements(mut self, allowed: Vec<Measurements>) -> Self {
        self.allowed_measurements = Some(allowed);
        self
    }

    /// Builder: accept these TCB statuses.
    pub fn with_accepted_statuses(mut self, statuses: Vec<TcbStatus>) -> Self {
        self.accepted_tcb_statuses = statuses;
        self
    }

    /// Check verified evidence against this policy. Collateral age and SNP VMPL are checked
    /// by the platform verifiers, which see the raw values.
    pub fn check(&self, ev: &VerifiedEvidence) -> Result<()> {
        if ev.tcb_status == TcbStatus::Revoked
            || !self.accepted_tcb_statuses.contains(&ev.tcb_status)
        {
            return Err(TeeError::TcbStatusRejected {
                status: ev.tcb_status,
            });
        }
        if let Some(adv) = ev
            .advisory_ids
            .iter()
            .find(|a| self.rejected_advisories.iter().any(|r| r == *a))
        {
            return Err(TeeError::AdvisoryRejected(adv.clone()));
        }
        if ev.debug && !self.allow_debug {
            return Err(TeeError::DebugEnabled);
        }
        if let Some(allowed) = &self.allowed_measurements {
            if !allowed.contains(&ev.measurements) {
                return Err(TeeError::MeasurementRejected(format!(
                    "{} image not in the allow-list of {} entries",
                    ev.platform,
                    allowed.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_json_round_trip_and_defaults() {
        let p = Policy::from_json(br#"{"allow_debug": true}"#).unwrap();
        assert!(p.allow_debug);
        assert_eq!(p.accepted_tcb_statuses, vec![TcbStatus::UpToDate]);
        let m = Measurements::AmdSevSnp {
            measurement: [7; 48],
        };
        let full = Policy::lenient().with_allowed_measurements(vec![m]);
        let json = serde_json::to_vec(&full).unwrap();
        assert_eq!(Policy::from_json(&json).unwrap(), full);
        assert!(Policy::from_json(br#"{"alow_debug": true}"#).is_err());
        assert!(Policy::from_json(b"not json").is_err());
    }
}
