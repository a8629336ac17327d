//! **Test-only** (feature `insecure-mock-tee`): a deterministic test PKI that signs
//! real-format Intel TDX and AMD SEV-SNP evidence, for development and CI without TEE
//! hardware.
//!
//! From a 32-byte seed it derives an AMD-shaped chain — a self-signed RSA "ARK", an RSA
//! "ASK" it signs, and a P-384 "VCEK" the ASK signs with RSA-PSS/SHA-384 and the AMD VCEK
//! extensions (TCB SPLs, hwID) — and signs 1184-byte SNP reports with the VCEK exactly as
//! AMD firmware does. The production verifier accepts them only when the caller passes
//! [`MockPki::roots`] to [`TrustAnchors::with_mock_root`](crate::TrustAnchors), and then
//! reports [`TrustAnchor::MockTest`](crate::TrustAnchor::MockTest). Nothing here skips a
//! check.
//!
//! The Intel-shaped half is a P-256 root, PCK platform CA, PCK leaf with Intel's SGX
//! extension, TCB signer and both CRLs; it signs TCB info and QE identity JSON and TDX v4
//! quotes (QE report signed by the PCK key, binding the attestation key that signs the TD
//! report). `dcap-qvl` verifies them through `QuoteVerifier::new(mock_root_der)`.

use p384::ecdsa::signature::Signer as _;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::RsaPrivateKey;
use sha2::Sha384;
use x509_cert::der::asn1::{BitString, ObjectIdentifier, OctetString, UtcTime};
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::binding::KeyDescriptor;
use crate::bundle::AttestationBundle;
use crate::error::{Result, TeeError};
use crate::evidence::Platform;
use crate::policy::SnpTcb;
use crate::snp::REPORT_LEN;

mod intel;
pub use intel::TdxQuoteSpec;

/// RSA modulus size of the mock ARK/ASK. AMD uses 4096; 2048 keeps key generation fast
/// and exercises the same RSA-PSS code.
const MOCK_RSA_BITS: usize = 2048;
/// Validity of every mock certificate: 2020-01-01 .. 2049-12-31 (UTCTime range).
const NOT_BEFORE: u64 = 1_577_836_800;
const NOT_AFTER: u64 = 2_524_521_600;

fn err(what: &str, e: impl core::fmt::Display) -> TeeError {
    TeeError::MalformedCollateral(format!("mock PKI {what}: {e}"))
}

/// The roots of a [`MockPki`], to pass to `TrustAnchors::with_mock_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRoots {
    amd_ark_der: Vec<u8>,
    intel_root_der: Vec<u8>,
}

impl MockRoots {
    /// The AMD-shaped root (ARK) certificate, DER.
    pub fn amd_ark_der(&self) -> &[u8] {
        &self.amd_ark_der
    }

    /// The Intel-shaped root CA certificate, DER.
    pub fn intel_root_der(&self) -> Option<&[u8]> {
        Some(&self.intel_root_der)
    }
}

/// What a mock SNP report should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReportSpec {
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// Report data (put the key binding here).
    pub report_data: [u8; 64],
    /// Whether the guest policy allows debugging.
    pub debug: bool,
    /// VMPL the report was requested from.
    pub vmpl: u32,
    /// Reported TCB (must match the VCEK, which the PKI issues for [`MockPki::tcb`]).
    pub reported_tcb: SnpTcb,
}

/// A test PKI derived from a seed. Test-only.
#[derive(Debug, Clone)]
pub struct MockPki {
    ark: Certificate,
    ask: Certificate,
    vcek: Certificate,
    vcek_key: p384::ecdsa::SigningKey,
    chip_id: [u8; 64],
    tcb: SnpTcb,
    intel: intel::IntelPki,
}

fn name(cn: &str) -> Result<Name> {
    cn.parse::<Name>().map_err(|e| err("name", e))
}

fn validity_time(s: u64) -> Result<Time> {
    UtcTime::from_unix_duration(core::time::Duration::from_secs(s))
        .map(Time::UtcTime)
        .map_err(|e| err("time", e))
}

fn validity() -> Result<Validity> {
    Ok(Validity {
        not_before: validity_time(NOT_BEFORE)?,
        not_after: validity_time(NOT_AFTER)?,
    })
}

fn rsa_spki(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned> {
    use rsa::pkcs8::EncodePublicKey;
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| err("RSA SPKI", e))?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(|e| err("RSA SPKI", e))
}

fn p384_spki(key: &p384::ecdsa::SigningKey) -> Result<SubjectPublicKeyInfoOwned> {
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    let point = key.verifying_key().to_encoded_point(false);
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(SECP384R1.into()),
        },
        subject_public_key: BitString::from_bytes(point.as_bytes())
            .map_err(|e| err("EC SPKI", e))?,
    })
}

fn ext(oid: &str, value: Vec<u8>) -> Result<Extension> {
    Ok(Extension {
        extn_id: ObjectIdentifier::new(oid).map_err(|e| err("OID", e))?,
        critical: false,
        extn_value: OctetString::new(value).map_err(|e| err("extension", e))?,
    })
}

fn der_u8(v: u8) -> Result<Vec<u8>> {
    v.to_der().map_err(|e| err("INTEGER", e))
}

/// Sign a TBS certificate with an RSA-PSS/SHA-384 key (as AMD's ARK and ASK do).
fn sign_rsa_pss(
    tbs: TbsCertificate,
    signer: &RsaPrivateKey,
    rng: &mut ChaCha20Rng,
) -> Result<Certificate> {
    let msg = tbs.to_der().map_err(|e| err("TBS", e))?;
    let key = rsa::pss::SigningKey::<Sha384>::new(signer.clone());
    let sig = key
        .try_sign_with_rng(rng, &msg)
        .map_err(|e| err("RSA-PSS sign", e))?;
    Ok(Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature: BitString::from_bytes(&sig.to_bytes()).map_err(|e| err("signature", e))?,
    })
}

fn put_at(r: &mut [u8], at: usize, bytes: &[u8]) -> Result<()> {
    let end = at
        .checked_add(bytes.len())
        .ok_or_else(|| err("layout", "overflow"))?;
    r.get_mut(at..end)
        .ok_or_else(|| err("layout", "out of range"))?
        .copy_from_slice(bytes);
    Ok(())
}

impl MockPki {
    /// Derive the whole PKI from `seed` (deterministic: same seed, same certificates and
    /// keys). The VCEK certifies `tcb`.
    pub fn from_seed(seed: [u8; 32], tcb: SnpTcb) -> Result<Self> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let ark_key = RsaPrivateKey::new(&mut rng, MOCK_RSA_BITS).map_err(|e| err("ARK key", e))?;
        let ask_key = RsaPrivateKey::new(&mut rng, MOCK_RSA_BITS).map_err(|e| err("ASK key", e))?;
        let mut scalar = [0u8; 48];
        let vcek_key = loop {
            rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut scalar);
            if let Ok(k) = p384::ecdsa::SigningKey::from_slice(&scalar) {
                break k;
            }
        };
        let mut chip_id = [0u8; 64];
        rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut chip_id);

        let pss = rsa::pss::get_default_pss_signature_algo_id::<Sha384>()
            .map_err(|e| err("PSS algorithm id", e))?;
        let ark_name = name("CN=ARK-Mock,OU=Agora Test PKI (insecure-mock-tee),O=Agora")?;
        let ask_name = name("CN=SEV-Mock,OU=Agora Test PKI (insecure-mock-tee),O=Agora")?;
        let tbs = |serial: u8,
                   issuer: &Name,
                   subject: &Name,
                   spki: SubjectPublicKeyInfoOwned,
                   extensions: Option<Vec<Extension>>|
         -> Result<TbsCertificate> {
            Ok(TbsCertificate {
                version: Version::V3,
                serial_number: SerialNumber::new(&[serial]).map_err(|e| err("serial", e))?,
                signature: pss.clone(),
                issuer: issuer.clone(),
                validity: validity()?,
                subject: subject.clone(),
                subject_public_key_info: spki,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions,
            })
        };
        let ark = sign_rsa_pss(
            tbs(1, &ark_name, &ark_name, rsa_spki(&ark_key)?, None)?,
            &ark_key,
            &mut rng,
        )?;
        let ask = sign_rsa_pss(
            tbs(2, &ark_name, &ask_name, rsa_spki(&ask_key)?, None)?,
            &ark_key,
            &mut rng,
        )?;
        let vcek_ext = vec![
            ext("1.3.6.1.4.1.3704.1.1", der_u8(1)?)?,
            ext("1.3.6.1.4.1.3704.1.3.1", der_u8(tcb.bootloader)?)?,
            ext("1.3.6.1.4.1.3704.1.3.2", der_u8(tcb.tee)?)?,
            ext("1.3.6.1.4.1.3704.1.3.3", der_u8(tcb.snp)?)?,
            ext("1.3.6.1.4.1.3704.1.3.8", der_u8(tcb.microcode)?)?,
            ext("1.3.6.1.4.1.3704.1.4", chip_id.to_vec())?,
        ];
        let vcek = sign_rsa_pss(
            tbs(
                3,
                &ask_name,
                &name("CN=SEV-VCEK-Mock,OU=Agora Test PKI (insecure-mock-tee),O=Agora")?,
                p384_spki(&vcek_key)?,
                Some(vcek_ext),
            )?,
            &ask_key,
            &mut rng,
        )?;
        let intel = intel::IntelPki::generate(&mut rng)?;
        Ok(Self {
            ark,
            ask,
            vcek,
            vcek_key,
            chip_id,
            tcb,
            intel,
        })
    }

    /// The roots to trust (explicitly) when verifying this PKI's evidence.
    pub fn roots(&self) -> Result<MockRoots> {
        Ok(MockRoots {
            amd_ark_der: self.ark.to_der().map_err(|e| err("ARK DER", e))?,
            intel_root_der: self.intel.root_der()?,
        })
    }

    /// The TCB the VCEK certifies.
    pub fn tcb(&self) -> SnpTcb {
        self.tcb
    }

    /// The VCEK and ASK as a PEM bundle (the SNP collateral format).
    pub fn snp_collateral_pem(&self) -> Result<Vec<u8>> {
        let mut out = String::new();
        for c in [&self.vcek, &self.ask] {
            out.push_str(
                &c.to_pem(x509_cert::der::pem::LineEnding::LF)
                    .map_err(|e| err("PEM", e))?,
            );
        }
        Ok(out.into_bytes())
    }

    /// A spec with this PKI's TCB, no debug, VMPL 0.
    pub fn spec(&self, measurement: [u8; 48], report_data: [u8; 64]) -> SnpReportSpec {
        SnpReportSpec {
            measurement,
            report_data,
            debug: false,
            vmpl: 0,
            reported_tcb: self.tcb,
        }
    }

    /// A 1184-byte version-3 (Milan-family) SNP report signed by the VCEK.
    pub fn sign_snp_report(&self, spec: &SnpReportSpec) -> Result<Vec<u8>> {
        let mut r = vec![0u8; REPORT_LEN];
        let mut put = |at: usize, bytes: &[u8]| put_at(&mut r, at, bytes);
        let t = &spec.reported_tcb;
        let tcb = u64::from_le_bytes([t.bootloader, t.tee, 0, 0, 0, 0, t.snp, t.microcode]);
        // Bit 17 must be one; bit 16 allows SMT; bit 19 allows debugging.
        let policy: u64 = (1 << 17) | (1 << 16) | if spec.debug { 1 << 19 } else { 0 };
        put(0x00, &3u32.to_le_bytes())?; // VERSION
        put(0x04, &1u32.to_le_bytes())?; // GUEST_SVN
        put(0x08, &policy.to_le_bytes())?;
        put(0x30, &spec.vmpl.to_le_bytes())?;
        put(0x34, &1u32.to_le_bytes())?; // SIGNATURE_ALGO: ECDSA P-384 / SHA-384
        put(0x38, &tcb.to_le_bytes())?; // CURRENT_TCB
        put(0x40, &1u64.to_le_bytes())?; // PLATFORM_INFO: SMT enabled
        put(0x48, &0u32.to_le_bytes())?; // KEY_INFO: signed by VCEK, chip id not masked
        put(0x50, &spec.report_data)?;
        put(0x90, &spec.measurement)?;
        put(0x180, &tcb.to_le_bytes())?; // REPORTED_TCB
        put(0x188, &[0x19, 0x01, 0x01])?; // CPUID family/model/stepping: Milan
        put(0x1A0, &self.chip_id)?;
        put(0x1E0, &tcb.to_le_bytes())?; // COMMITTED_TCB
        put(0x1F0, &tcb.to_le_bytes())?; // LAUNCH_TCB
        let signed = r
            .get(..0x2A0)
            .ok_or_else(|| err("layout", "short report"))?;
        let sig: p384::ecdsa::Signature = self.vcek_key.sign(signed);
        let (rb, sb) = sig.split_bytes();
        // Big-endian scalars → little-endian, zero-padded 72-byte fields.
        let le = |be: &[u8]| -> Vec<u8> { be.iter().rev().copied().collect() };
        put_at(&mut r, 0x2A0, &le(&rb))?;
        put_at(&mut r, 0x2A0 + 72, &le(&sb))?;
        Ok(r)
    }

    /// A complete bundle for `public_key`: a report binding it, with this PKI's collateral.
    pub fn snp_bundle(
        &self,
        public_key: &[u8],
        measurement: [u8; 48],
    ) -> Result<AttestationBundle> {
        let report_data = KeyDescriptor::x25519(public_key)?.report_data()?;
        let evidence = self.sign_snp_report(&self.spec(measurement, report_data))?;
        Ok(AttestationBundle {
            platform: Platform::AmdSevSnp,
            evidence,
            collateral: self.snp_collateral_pem()?,
            hpke_public_key: public_key.to_vec(),
        })
    }
}

impl MockPki {
    /// Intel collateral JSON for this PKI's quotes, valid from `issued` for 30 days.
    pub fn tdx_collateral_json(&self, issued: u64) -> Result<Vec<u8>> {
        self.intel.collateral_json(issued)
    }

    /// A TDX v4 quote signed through this PKI's Intel-shaped chain.
    pub fn sign_tdx_quote(&self, spec: &TdxQuoteSpec) -> Result<Vec<u8>> {
        self.intel.sign_tdx_quote(spec)
    }

    /// A complete TDX bundle binding `public_key`, with collateral issued at `issued`.
    pub fn tdx_bundle(
        &self,
        public_key: &[u8],
        mrtd: [u8; 48],
        rtmr: [[u8; 48]; 4],
        issued: u64,
    ) -> Result<AttestationBundle> {
        let report_data = KeyDescriptor::x25519(public_key)?.report_data()?;
        let evidence = self.sign_tdx_quote(&TdxQuoteSpec {
            mrtd,
            rtmr,
            report_data,
            debug: false,
        })?;
        Ok(AttestationBundle {
            platform: Platform::IntelTdx,
            evidence,
            collateral: self.tdx_collateral_json(issued)?,
            hpke_public_key: public_key.to_vec(),
        })
    }
}

/// Seed of the development PKI that `--insecure-mock-tee` miners sign with and
/// `--insecure-mock-tee` gateways and clients trust. Public on purpose: anyone can sign with
/// it, which is why only builds with this feature, and only with the runtime flag, accept it.
pub const DEV_SEED: [u8; 32] = *b"agora insecure mock tee dev seed";

/// The TCB the development PKI's VCEK certifies.
pub const DEV_TCB: SnpTcb = SnpTcb {
    bootloader: 4,
    tee: 0,
    snp: 22,
    microcode: 213,
    fmc: 0,
};

/// The launch measurement development evidence reports (an image nobody built).
pub const DEV_MEASUREMENT: [u8; 48] = *b"agora insecure-mock-tee development image v1 ###";

impl MockPki {
    /// The development PKI: [`DEV_SEED`], [`DEV_TCB`].
    pub fn dev() -> Result<Self> {
        Self::from_seed(DEV_SEED, DEV_TCB)
    }
}

/// An [`EvidenceSource`](crate::attest::EvidenceSource) backed by a [`MockPki`]: SEV-SNP
/// reports or TDX quotes in the real formats, signed by the test PKI. Test-only.
#[derive(Debug, Clone)]
pub struct MockEvidenceSource {
    pki: MockPki,
    platform: Platform,
    measurement: [u8; 48],
}

impl MockEvidenceSource {
    /// SEV-SNP reports with launch `measurement` (TDX quotes use it as MRTD, RTMRs zero).
    pub fn new(pki: MockPki, platform: Platform, measurement: [u8; 48]) -> Result<Self> {
        if platform == Platform::IntelSgx {
            return Err(err(
                "platform",
                "the test PKI signs SEV-SNP reports and TDX quotes",
            ));
        }
        Ok(Self {
            pki,
            platform,
            measurement,
        })
    }

    /// The test PKI behind it.
    pub fn pki(&self) -> &MockPki {
        &self.pki
    }
}

impl crate::attest::EvidenceSource for MockEvidenceSource {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn evidence(&self, report_data: &[u8; 64], now: u64) -> Result<crate::attest::Evidence> {
        match self.platform {
            Platform::IntelTdx => Ok(crate::attest::Evidence {
                evidence: self.pki.sign_tdx_quote(&TdxQuoteSpec {
                    mrtd: self.measurement,
                    rtmr: [[0; 48]; 4],
                    report_data: *report_data,
                    debug: false,
                })?,
                // Issued a minute ago so that small clock differences do not matter.
                collateral: self.pki.tdx_collateral_json(now.saturating_sub(60))?,
            }),
            _ => Ok(crate::attest::Evidence {
                evidence: self
                    .pki
                    .sign_snp_report(&self.pki.spec(self.measurement, *report_data))?,
                collateral: self.pki.snp_collateral_pem()?,
            }),
        }
    }
}
