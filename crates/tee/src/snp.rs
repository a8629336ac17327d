//! AMD SEV-SNP attestation reports, verified against the VCEK → ASK → ARK chain.
//!
//! The `sev` crate (pure-Rust `crypto_nossl` backend) checks the RSA-PSS chain signatures
//! and supplies the built-in ARK/ASK. It leaves to its caller, and this module does:
//! certificate validity at `now`, the report signature over the *raw* signed bytes (sev
//! re-encodes the parsed report, which would ignore reserved bytes), the reported TCB and
//! chip id against the VCEK's extensions, the signing-key type, VMPL and the debug bit.
//!
//! Report layout: AMD SEV-SNP Firmware ABI spec (56860), Table 22 "ATTESTATION_REPORT".

use p384::ecdsa::signature::Verifier;
use serde::{Deserialize, Serialize};
use sev::certs::snp::{Certificate as SevCertificate, Verifiable};
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::Certificate;

use crate::anchors::TrustAnchors;
use crate::error::{Result, TeeError};
use crate::evidence::{Measurements, Platform, TcbStatus, TrustAnchor, VerifiedEvidence};
use crate::policy::{Policy, SnpTcb};

/// Size of an SEV-SNP attestation report.
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `0..0x2A0`.
const SIGNED_LEN: usize = 0x2A0;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Guest policy bit 19: DEBUG allowed.
const POLICY_DEBUG_BIT: u64 = 1 << 19;
/// Largest SNP collateral accepted (a PEM bundle of three certificates is ~6 KiB).
pub const MAX_SNP_COLLATERAL_LEN: usize = 256 * 1024;

/// AMD VCEK extension OIDs (VCEK spec 57230, Table 8).
mod oid {
    use x509_cert::der::asn1::ObjectIdentifier as Oid;
    pub(super) const BL_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    pub(super) const TEE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    pub(super) const SNP_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    pub(super) const UCODE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    pub(super) const FMC_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    pub(super) const HW_ID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.4");
    pub(super) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
}

/// The fields of a report this crate uses, read at fixed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    /// Report format version (2, 3 or 5 seen in the field).
    pub version: u32,
    /// Guest security version number.
    pub guest_svn: u32,
    /// Guest policy (bit 19 = debug).
    pub policy: u64,
    /// VMPL the report was requested from.
    pub vmpl: u32,
    /// Signature algorithm (1 = ECDSA P-384 / SHA-384).
    pub sig_algo: u32,
    /// Raw CURRENT_TCB.
    pub current_tcb: u64,
    /// KEY_INFO word: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 2..=4 SIGNING_KEY.
    pub key_info: u32,
    /// Guest-chosen report data (the key binding lives here).
    pub report_data: [u8; 64],
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// Host-provided data.
    pub host_data: [u8; 32],
    /// Raw REPORTED_TCB: the TCB the VCEK was derived from.
    pub reported_tcb: u64,
    /// CPUID family (version ≥ 3), else `None`.
    pub cpuid_family: Option<u8>,
    /// CPUID model (version ≥ 3), else `None`.
    pub cpuid_model: Option<u8>,
    /// Chip id (zero when MASK_CHIP_ID is set).
    pub chip_id: [u8; 64],
    /// Raw COMMITTED_TCB.
    pub committed_tcb: u64,
    /// Signature R, little-endian, zero-padded to 72 bytes.
    pub sig_r: [u8; 72],
    /// Signature S, little-endian, zero-padded to 72 bytes.
    pub sig_s: [u8; 72],
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N]> {
    let end = at
        .checked_add(N)
        .ok_or_else(|| TeeError::MalformedEvidence("offset overflow".into()))?;
    b.get(at..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| TeeError::MalformedEvidence(format!("report too short at {at:#x}")))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    arr::<4>(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    arr::<8>(b, at).map(u64::from_le_bytes)
}

impl SnpReport {
    /// Parse a 1184-byte report. Checks the length and version only; nothing is trusted
    /// until [`verify_report`] has checked the signature.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() != REPORT_LEN {
            return Err(TeeError::MalformedEvidence(format!(
                "SEV-SNP report must be {REPORT_LEN} bytes, got {}",
                b.len()
            )));
        }
        let version = u32_at(b, 0x00)?;
        if !(2..=5).contains(&version) {
            return Err(TeeError::MalformedEvidence(format!(
                "unsupported SEV-SNP report version {version}"
            )));
        }
        let (cpuid_family, cpuid_model) = if version >= 3 {
            (Some(arr::<1>(b, 0x188)?[0]), Some(arr::<1>(b, 0x189)?[0]))
        } else {
            (None, None)
        };
        Ok(Self {
            version,
            guest_svn: u32_at(b, 0x04)?,
            policy: u64_at(b, 0x08)?,
            vmpl: u32_at(b, 0x30)?,
            sig_algo: u32_at(b, 0x34)?,
            current_tcb: u64_at(b, 0x38)?,
            key_info: u32_at(b, 0x48)?,
            report_data: arr(b, 0x50)?,
            measurement: arr(b, 0x90)?,
            host_data: arr(b, 0xC0)?,
            reported_tcb: u64_at(b, 0x180)?,
            cpuid_family,
            cpuid_model,
            chip_id: arr(b, 0x1A0)?,
            committed_tcb: u64_at(b, 0x1E0)?,
            sig_r: arr(b, 0x2A0)?,
            sig_s: arr(b, 0x2A0 + 72)?,
        })
    }

    /// SIGNING_KEY: 0 = VCEK, 1 = VLEK, 7 = none.
    pub fn signing_key(&self) -> u32 {
        (self.key_info >> 2) & 0b111
    }

    /// Whether the guest policy allows debugging (host can read guest memory).
    pub fn debug(&self) -> bool {
        self.policy & POLICY_DEBUG_BIT != 0
    }
}

/// Decode a raw TCB_VERSION word. Milan and Genoa: `[bl, tee, 0, 0, 0, 0, snp, ucode]`;
/// Turin: `[fmc, bl, tee, snp, 0, 0, 0, ucode]`.
pub fn decode_tcb(raw: u64, turin_layout: bool) -> SnpTcb {
    let b = raw.to_le_bytes();
    if turin_layout {
        SnpTcb {
            fmc: b[0],
            bootloader: b[1],
            tee: b[2],
            snp: b[3],
            microcode: b[7],
        }
    } else {
        SnpTcb {
            fmc: 0,
            bootloader: b[0],
            tee: b[1],
            snp: b[6],
            microcode: b[7],
        }
    }
}

/// SEV-SNP specific facts of verified evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpInfo {
    /// Report version.
    pub version: u32,
    /// VMPL the report was requested from.
    pub vmpl: u32,
    /// Guest policy word.
    pub guest_policy: u64,
    /// The TCB the VCEK certifies (checked against the certificate).
    pub reported_tcb: SnpTcb,
    /// Chip id (hex; zeros when masked).
    pub chip_id: String,
    /// Host data (hex).
    pub host_data: String,
}

/// The certificates that come with an SNP report: the VCEK and optionally the ASK (and ARK,
/// which is ignored: only configured anchors are trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpCollateral {
    /// DER certificates, in any order.
    pub certs: Vec<Vec<u8>>,
}

impl SnpCollateral {
    /// Parse a PEM bundle (any number of CERTIFICATE blocks) or a single DER certificate.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_SNP_COLLATERAL_LEN {
            return Err(TeeError::LimitExceeded(format!(
                "SNP collateral of {} bytes exceeds {MAX_SNP_COLLATERAL_LEN}",
                bytes.len()
            )));
        }
        let certs = if !bytes.starts_with(b"-----") && bytes.first() == Some(&0x30) {
            let c = Certificate::from_der(bytes)
                .map_err(|e| TeeError::MalformedCollateral(format!("DER certificate: {e}")))?;
            vec![c]
        } else {
            Certificate::load_pem_chain(bytes)
                .map_err(|e| TeeError::MalformedCollateral(format!("PEM bundle: {e}")))?
        };
        Self::from_certs(&certs)
    }

    /// Concatenate several collateral pieces (e.g. a VCEK file and an ASK/ARK chain file).
    pub fn parse_all(pieces: &[&[u8]]) -> Result<Self> {
        let mut certs = Vec::new();
        for p in pieces {
            certs.extend(Self::parse(p)?.certs);
        }
        Ok(Self { certs })
    }

    fn from_certs(certs: &[Certificate]) -> Result<Self> {
        if certs.is_empty() {
            return Err(TeeError::MalformedCollateral("no certificate".into()));
        }
        let certs = certs
            .iter()
            .map(|c| {
                c.to_der()
                    .map_err(|e| TeeError::MalformedCollateral(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { certs })
    }
}

/// PEM certificate to DER (for the built-in AMD roots).
pub(crate) fn pem_to_der(pem: &[u8]) -> Option<Vec<u8>> {
    Certificate::from_pem(pem).ok()?.to_der().ok()
}

fn is_ec(cert: &Certificate) -> bool {
    cert.tbs_certificate.subject_public_key_info.algorithm.oid == oid::EC_PUBLIC_KEY
}

fn check_validity(role: &str, cert: &Certificate, now: u64) -> Result<()> {
    let v = &cert.tbs_certificate.validity;
    let not_before = v.not_before.to_unix_duration().as_secs();
    let not_after = v.not_after.to_unix_duration().as_secs();
    if now < not_before || now > not_after {
        return Err(TeeError::CertificateNotValid {
            subject: role.to_string(),
            now,
            not_before,
            not_after,
        });
    }
    Ok(())
}

fn sev_cert(der: &[u8]) -> Result<SevCertificate> {
    SevCertificate::from_der(der).map_err(|e| TeeError::MalformedCollateral(e.to_string()))
}

/// Check `ark` self-signed, `ark` → `ask`, `ask` → `vcek` (RSA-PSS / SHA-384, in `sev`).
fn chain_ok(ark: &[u8], ask: &[u8], vcek: &[u8]) -> Result<()> {
    let (ark, ask, vcek) = (sev_cert(ark)?, sev_cert(ask)?, sev_cert(vcek)?);
    let err = |e: std::io::Error| TeeError::UntrustedChain(e.to_string());
    (&ark, &ark).verify().map_err(err)?;
    (&ark, &ask).verify().map_err(err)?;
    (&ask, &vcek).verify().map_err(err)
}

fn extension<'a>(
    cert: &'a Certificate,
    id: &x509_cert::der::asn1::ObjectIdentifier,
) -> Option<&'a [u8]> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == *id)
        .map(|e| e.extn_value.as_bytes())
}

fn ext_u8(cert: &Certificate, id: &x509_cert::der::asn1::ObjectIdentifier) -> Result<Option<u8>> {
    match extension(cert, id) {
        None => Ok(None),
        Some(v) => u8::from_der(v)
            .map(Some)
            .map_err(|e| TeeError::MalformedCollateral(format!("VCEK extension {id}: {e}"))),
    }
}

/// Compare the report's REPORTED_TCB and CHIP_ID with the VCEK's extensions.
fn check_vcek_extensions(vcek: &Certificate, report: &SnpReport, tcb: &SnpTcb) -> Result<()> {
    let checks = [
        ("bootloader", &oid::BL_SPL, tcb.bootloader),
        ("tee", &oid::TEE_SPL, tcb.tee),
        ("snp", &oid::SNP_SPL, tcb.snp),
        ("microcode", &oid::UCODE_SPL, tcb.microcode),
    ];
    for (name, id, reported) in checks {
        match ext_u8(vcek, id)? {
            Some(v) if v == reported => {}
            Some(v) => {
                return Err(TeeError::VcekMismatch(format!(
                    "{name} SPL: report {reported}, VCEK {v}"
                )))
            }
            None => {
                return Err(TeeError::VcekMismatch(format!(
                    "VCEK lacks the {name} SPL extension"
                )))
            }
        }
    }
    if let Some(v) = ext_u8(vcek, &oid::FMC_SPL)? {
        if v != tcb.fmc {
            return Err(TeeError::VcekMismatch(format!(
                "fmc SPL: report {}, VCEK {v}",
                tcb.fmc
            )));
        }
    }
    let masked = report.key_info & 0b10 != 0 || report.chip_id == [0u8; 64];
    if !masked {
        let hw = extension(vcek, &oid::HW_ID)
            .ok_or_else(|| TeeError::VcekMismatch("VCEK lacks the hwID extension".into()))?;
        // The hwID value is the raw 64 bytes; accept a DER OCTET STRING wrapping too.
        let hw_id: Vec<u8> = if hw.len() == 64 {
            hw.to_vec()
        } else {
            x509_cert::der::asn1::OctetString::from_der(hw)
                .map(|o| o.as_bytes().to_vec())
                .map_err(|e| TeeError::MalformedCollateral(format!("VCEK hwID: {e}")))?
        };
        if hw_id.as_slice() != report.chip_id.as_slice() {
            return Err(TeeError::VcekMismatch(
                "chip id differs from VCEK hwID".into(),
            ));
        }
    }
    Ok(())
}

/// Verify the report's ECDSA P-384 signature over its raw signed bytes.
fn check_signature(raw: &[u8], report: &SnpReport, vcek: &Certificate) -> Result<()> {
    let spki = &vcek.tbs_certificate.subject_public_key_info;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .map_err(|e| TeeError::MalformedCollateral(format!("VCEK public key: {e}")))?;
    // R and S are little-endian in 72-byte fields; P-384 scalars use the low 48 bytes and
    // the rest must be zero.
    let scalar = |field: &[u8; 72]| -> Result<[u8; 48]> {
        let (low, high) = field.split_at(48);
        if high.iter().any(|b| *b != 0) {
            return Err(TeeError::BadSignature("signature scalar too large".into()));
        }
        let mut be = [0u8; 48];
        for (d, s) in be.iter_mut().zip(low.iter().rev()) {
            *d = *s;
        }
        Ok(be)
    };
    let (r, s) = (scalar(&report.sig_r)?, scalar(&report.sig_s)?);
    let sig = p384::ecdsa::Signature::from_scalars(r, s)
        .map_err(|e| TeeError::BadSignature(format!("signature scalars: {e}")))?;
    let signed = raw
        .get(..SIGNED_LEN)
        .ok_or_else(|| TeeError::MalformedEvidence("report too short".into()))?;
    key.verify(signed, &sig)
        .map_err(|_| TeeError::BadSignature("VCEK does not sign this report".into()))
}

/// Verify an SEV-SNP report with its certificates at time `now` (unix seconds), then apply
/// `policy`. Pure: no I/O, no clock.
pub fn verify_report(
    raw: &[u8],
    collateral: &SnpCollateral,
    now: u64,
    policy: &Policy,
    anchors: &TrustAnchors,
) -> Result<VerifiedEvidence> {
    let report = SnpReport::parse(raw)?;
    if report.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(TeeError::MalformedEvidence(format!(
            "unsupported signature algorithm {}",
            report.sig_algo
        )));
    }
    if report.signing_key() != 0 {
        return Err(TeeError::MalformedEvidence(format!(
            "report signed by key type {} (only VCEK is supported)",
            report.signing_key()
        )));
    }

    let parsed: Vec<Certificate> = collateral
        .certs
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| TeeError::MalformedCollateral(e.to_string())))
        .collect::<Result<_>>()?;
    let mut vceks = collateral
        .certs
        .iter()
        .zip(&parsed)
        .filter(|(_, c)| is_ec(c));
    let (vcek_der, vcek) = vceks
        .next()
        .ok_or_else(|| TeeError::MalformedCollateral("no VCEK (EC P-384) certificate".into()))?;
    if vceks.next().is_some() {
        return Err(TeeError::MalformedCollateral(
            "more than one EC certificate".into(),
        ));
    }
    let supplied_cas: Vec<&Vec<u8>> = collateral
        .certs
        .iter()
        .zip(&parsed)
        .filter(|(_, c)| !is_ec(c))
        .map(|(d, _)| d)
        .collect();

    // Find the anchor whose ARK leads to this VCEK, through a supplied or built-in ASK.
    let mut found: Option<(TrustAnchor, Vec<u8>, Vec<u8>)> = None;
    let mut first_err: Option<TeeError> = None;
    'anchors: for (anchor, ark, builtin_ask) in anchors.amd_roots() {
        let candidates = supplied_cas
            .iter()
            .map(|d| d.as_slice())
            .filter(|d| *d != ark.as_slice())
            .chain(builtin_ask.as_deref());
        let Ok(ark_cert) = Certificate::from_der(&ark) else {
            continue;
        };
        for ask in candidates {
            // Cheap name check first: only a chain whose names link is worth the RSA work.
            let links = Certificate::from_der(ask).is_ok_and(|a| {
                a.tbs_certificate.issuer == ark_cert.tbs_certificate.subject
                    && vcek.tbs_certificate.issuer == a.tbs_certificate.subject
            });
            if !links {
                first_err.get_or_insert_with(|| {
                    TeeError::UntrustedChain(format!("certificate names do not link to {anchor}"))
                });
                continue;
            }
            match chain_ok(&ark, ask, vcek_der) {
                Ok(()) => {
                    found = Some((anchor, ark.clone(), ask.to_vec()));
                    break 'anchors;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    let (anchor, ark_der, ask_der) = found.ok_or_else(|| {
        first_err
            .unwrap_or_else(|| TeeError::UntrustedChain("no AMD trust anchor configured".into()))
    })?;
    for (role, der) in [("ARK", &ark_der), ("ASK", &ask_der)] {
        let c =
            Certificate::from_der(der).map_err(|e| TeeError::MalformedCollateral(e.to_string()))?;
        check_validity(role, &c, now)?;
    }
    check_validity("VCEK", vcek, now)?;

    check_signature(raw, &report, vcek)?;

    let reported_tcb = decode_tcb(report.reported_tcb, anchor == TrustAnchor::AmdArkTurin);
    check_vcek_extensions(vcek, &report, &reported_tcb)?;

    if report.vmpl > policy.snp_max_vmpl {
        return Err(TeeError::VmplRejected {
            vmpl: report.vmpl,
            max: policy.snp_max_vmpl,
        });
    }
    let tcb_status = if reported_tcb.meets(&policy.snp_min_tcb) {
        TcbStatus::UpToDate
    } else {
        TcbStatus::OutOfDate
    };
    let ev = VerifiedEvidence {
        platform: Platform::AmdSevSnp,
        tcb_status,
        advisory_ids: Vec::new(),
        measurements: Measurements::AmdSevSnp {
            measurement: report.measurement,
        },
        report_data: report.report_data,
        debug: report.debug(),
        trust_anchor: anchor,
        snp: Some(SnpInfo {
            version: report.version,
            vmpl: report.vmpl,
            guest_policy: report.policy,
            reported_tcb,
            chip_id: hex::encode(report.chip_id),
            host_data: hex::encode(report.host_data),
        }),
    };
    policy.check(&ev)?;
    Ok(ev)
}
