//! What verification returns: platform, TCB status, measurements, report data, trust anchor.

use core::fmt;

use serde::{Deserialize, Serialize};

/// The kind of TEE that produced a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Intel TDX (trust domain), DCAP quote v4/v5.
    IntelTdx,
    /// Intel SGX enclave, DCAP quote v3.
    IntelSgx,
    /// AMD SEV-SNP guest, 1184-byte attestation report.
    AmdSevSnp,
}

impl Platform {
    /// Stable lowercase name, as used in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::IntelTdx => "intel_tdx",
            Self::IntelSgx => "intel_sgx",
            Self::AmdSevSnp => "amd_sev_snp",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TCB (trusted computing base) status, Intel's vocabulary, also used for AMD.
///
/// For AMD SEV-SNP the status is derived from the policy's minimum TCB: `UpToDate` when the
/// reported TCB meets it in every component, `OutOfDate` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    /// Platform patched to the latest TCB.
    UpToDate,
    /// Software hardening (e.g. against LVI) needed.
    SWHardeningNeeded,
    /// Platform configuration needed (e.g. SMT off).
    ConfigurationNeeded,
    /// Both configuration and software hardening needed.
    ConfigurationAndSWHardeningNeeded,
    /// Platform TCB is older than the latest.
    OutOfDate,
    /// Out of date and configuration needed.
    OutOfDateConfigurationNeeded,
    /// TDX 1.5: TD launched on an out-of-date TCB; relaunch advised.
    TDRelaunchAdvised,
    /// TDX 1.5: relaunch advised and configuration needed.
    TDRelaunchAdvisedConfigurationNeeded,
    /// The platform's keys are revoked. Never accepted.
    Revoked,
}

impl TcbStatus {
    /// Parse Intel's status string (as in TCB info JSON).
    pub fn from_intel(s: &str) -> Option<Self> {
        Some(match s {
            "UpToDate" => Self::UpToDate,
            "SWHardeningNeeded" => Self::SWHardeningNeeded,
            "ConfigurationNeeded" => Self::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => Self::ConfigurationAndSWHardeningNeeded,
            "OutOfDate" => Self::OutOfDate,
            "OutOfDateConfigurationNeeded" => Self::OutOfDateConfigurationNeeded,
            "TDRelaunchAdvised" => Self::TDRelaunchAdvised,
            "TDRelaunchAdvisedConfigurationNeeded" => Self::TDRelaunchAdvisedConfigurationNeeded,
            "Revoked" => Self::Revoked,
            _ => return None,
        })
    }

    /// Intel's status string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UpToDate => "UpToDate",
            Self::SWHardeningNeeded => "SWHardeningNeeded",
            Self::ConfigurationNeeded => "ConfigurationNeeded",
            Self::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            Self::OutOfDate => "OutOfDate",
            Self::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            Self::TDRelaunchAdvised => "TDRelaunchAdvised",
            Self::TDRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
            Self::Revoked => "Revoked",
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The root of trust a piece of evidence was verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrustAnchor {
    /// Intel SGX Root CA (production; covers SGX and TDX).
    IntelSgxRootCa,
    /// AMD Root Key for Milan (EPYC 7003).
    AmdArkMilan,
    /// AMD Root Key for Genoa (EPYC 9004).
    AmdArkGenoa,
    /// AMD Root Key for Turin (EPYC 9005).
    AmdArkTurin,
    /// The deterministic test PKI of feature `insecure-mock-tee`. Never trusted in production:
    /// a build without the feature has no way to configure it.
    MockTest,
}

impl TrustAnchor {
    /// Stable name, as used in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::IntelSgxRootCa => "IntelSgxRootCa",
            Self::AmdArkMilan => "AmdArkMilan",
            Self::AmdArkGenoa => "AmdArkGenoa",
            Self::AmdArkTurin => "AmdArkTurin",
            Self::MockTest => "MockTest",
        }
    }

    /// Whether this anchor is a real vendor root.
    pub fn is_production(&self) -> bool {
        !matches!(self, Self::MockTest)
    }
}

impl fmt::Display for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 48-byte measurement register (SHA-384 sized).
pub type Measurement48 = [u8; 48];

/// The measurements of the launched image, per platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum Measurements {
    /// TDX: the build-time measurement and the four runtime registers.
    IntelTdx {
        /// MRTD: measurement of the initial TD contents (firmware).
        #[serde(with = "hex48")]
        mrtd: Measurement48,
        /// RTMR0..=RTMR3: runtime-extended registers (firmware config, kernel, cmdline, app).
        #[serde(with = "hex48_4")]
        rtmr: [Measurement48; 4],
    },
    /// SGX: the enclave identity and its signer.
    IntelSgx {
        /// MRENCLAVE: hash of the enclave's initial contents.
        #[serde(with = "hex::serde")]
        mrenclave: [u8; 32],
        /// MRSIGNER: hash of the enclave signer's public key.
        #[serde(with = "hex::serde")]
        mrsigner: [u8; 32],
    },
    /// SEV-SNP: the launch measurement.
    AmdSevSnp {
        /// MEASUREMENT: launch digest of the guest's initial memory and VMSA.
        #[serde(with = "hex48")]
        measurement: Measurement48,
    },
}

impl Measurements {
    /// The platform these measurements belong to.
    pub fn platform(&self) -> Platform {
        match self {
            Self::IntelTdx { .. } => Platform::IntelTdx,
            Self::IntelSgx { .. } => Platform::IntelSgx,
            Self::AmdSevSnp { .. } => Platform::AmdSevSnp,
        }
    }
}

/// The result of successful verification: everything a caller may rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedEvidence {
    /// Which TEE produced the evidence.
    pub platform: Platform,
    /// The TCB status of the platform.
    pub tcb_status: TcbStatus,
    /// Security advisories (Intel `INTEL-SA-xxxxx`) that apply to this TCB.
    pub advisory_ids: Vec<String>,
    /// The launched image's measurements.
    pub measurements: Measurements,
    /// The 64 bytes of report data the TEE put in the evidence.
    #[serde(with = "hex::serde")]
    pub report_data: [u8; 64],
    /// Whether the TEE runs in debug mode (policy normally forbids it).
    pub debug: bool,
    /// The root the evidence chains to.
    pub trust_anchor: TrustAnchor,
    /// SEV-SNP specifics (VMPL, reported TCB, chip id); `None` for Intel.
    pub snp: Option<crate::snp::SnpInfo>,
}

pub(crate) mod hex48 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 48], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 48], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 48];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

pub(crate) mod hex48_4 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(4))?;
        for r in v {
            seq.serialize_element(&hex::encode(r))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[[u8; 48]; 4], D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        if v.len() != 4 {
            return Err(serde::de::Error::custom("expected 4 RTMRs"));
        }
        let mut out = [[0u8; 48]; 4];
        for (o, s) in out.iter_mut().zip(v) {
            hex::decode_to_slice(s, o).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}
