//! Intel-shaped half of the test PKI: a P-256 root, PCK CA, PCK leaf (with Intel's SGX
//! extension), TCB signer, both CRLs, signed TCB info and QE identity, and real-format
//! TDX v4 quotes whose QE report is signed by the PCK key and binds the attestation key.
//! `dcap-qvl` verifies them with `QuoteVerifier::new(mock_root_der)`.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;
use x509_cert::crl::{CertificateList, TbsCertList};
use x509_cert::der::asn1::{BitString, ObjectIdentifier, OctetString};
use x509_cert::der::{Encode, EncodePem};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::{err, name, put_at, validity_time};
use crate::error::Result;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// Intel's QE vendor id (dcap-qvl accepts only this one).
const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Mock platform identity.
const FMSPC: [u8; 6] = [0x00, 0x80, 0x6f, 0x05, 0x00, 0x00];
const PCE_ID: [u8; 2] = [0, 0];
const CPU_SVN: [u8; 16] = [3; 16];
const PCE_SVN: u16 = 11;
const TEE_TCB_SVN: [u8; 16] = [5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const QE_ISVSVN: u16 = 4;
const QE_ISVPRODID: u16 = 2;

fn alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    }
}

fn spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned> {
    let point = key.verifying_key().to_encoded_point(false);
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(PRIME256V1.into()),
        },
        subject_public_key: BitString::from_bytes(point.as_bytes())
            .map_err(|e| err("P-256 SPKI", e))?,
    })
}

fn ext(oid: &str, critical: bool, value: Vec<u8>) -> Result<Extension> {
    Ok(Extension {
        extn_id: ObjectIdentifier::new(oid).map_err(|e| err("OID", e))?,
        critical,
        extn_value: OctetString::new(value).map_err(|e| err("extension", e))?,
    })
}

fn ca_extensions() -> Result<Vec<Extension>> {
    Ok(vec![
        // basicConstraints: CA true.
        ext("2.5.29.19", true, vec![0x30, 0x03, 0x01, 0x01, 0xff])?,
        // keyUsage: keyCertSign, cRLSign.
        ext("2.5.29.15", true, vec![0x03, 0x02, 0x01, 0x06])?,
    ])
}

fn leaf_extensions() -> Result<Vec<Extension>> {
    Ok(vec![
        // basicConstraints: CA false.
        ext("2.5.29.19", true, vec![0x30, 0x00])?,
        // keyUsage: digitalSignature, nonRepudiation.
        ext("2.5.29.15", true, vec![0x03, 0x02, 0x06, 0xc0])?,
    ])
}

fn sign_cert(
    serial: u8,
    issuer: &Name,
    subject: &Name,
    key: &SigningKey,
    signer: &SigningKey,
    extensions: Vec<Extension>,
) -> Result<Certificate> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[serial]).map_err(|e| err("serial", e))?,
        signature: alg(),
        issuer: issuer.clone(),
        validity: super::validity()?,
        subject: subject.clone(),
        subject_public_key_info: spki(key)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let msg = tbs.to_der().map_err(|e| err("TBS", e))?;
    let sig = sign_low_s(signer, &msg);
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(sig.to_der().as_bytes())
            .map_err(|e| err("signature", e))?,
    })
}

fn sign_crl(issuer: &Name, signer: &SigningKey) -> Result<Vec<u8>> {
    let tbs = TbsCertList {
        version: Version::V2,
        signature: alg(),
        issuer: issuer.clone(),
        this_update: validity_time(super::NOT_BEFORE)?,
        next_update: Some(validity_time(super::NOT_AFTER)?),
        revoked_certificates: None,
        // cRLNumber 1.
        crl_extensions: Some(vec![ext("2.5.29.20", false, vec![0x02, 0x01, 0x01])?]),
    };
    let msg = tbs.to_der().map_err(|e| err("CRL TBS", e))?;
    let sig = sign_low_s(signer, &msg);
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(sig.to_der().as_bytes())
            .map_err(|e| err("CRL signature", e))?,
    }
    .to_der()
    .map_err(|e| err("CRL", e))
}

/// DER TLV with a short or long length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(body);
    out
}

fn oid_der(oid: &str) -> Result<Vec<u8>> {
    ObjectIdentifier::new(oid)
        .map_err(|e| err("OID", e))?
        .to_der()
        .map_err(|e| err("OID", e))
}

fn entry(oid: &str, value: Vec<u8>) -> Result<Vec<u8>> {
    let mut body = oid_der(oid)?;
    body.extend_from_slice(&value);
    Ok(tlv(0x30, &body))
}

/// Intel's SGX extension (1.2.840.113741.1.13.1): PPID, TCB (16 components, PCESVN,
/// CPUSVN), PCE-ID, FMSPC, SGX type.
fn sgx_extension() -> Result<Vec<u8>> {
    const BASE: &str = "1.2.840.113741.1.13.1";
    let mut tcb = Vec::new();
    for (i, svn) in CPU_SVN.iter().enumerate() {
        tcb.extend(entry(&format!("{BASE}.2.{}", i + 1), tlv(0x02, &[*svn]))?);
    }
    tcb.extend(entry(&format!("{BASE}.2.17"), tlv(0x02, &[PCE_SVN as u8]))?);
    tcb.extend(entry(&format!("{BASE}.2.18"), tlv(0x04, &CPU_SVN))?);
    let mut body = entry(&format!("{BASE}.1"), tlv(0x04, &[0x11; 16]))?;
    body.extend(entry(&format!("{BASE}.2"), tlv(0x30, &tcb))?);
    body.extend(entry(&format!("{BASE}.3"), tlv(0x04, &PCE_ID))?);
    body.extend(entry(&format!("{BASE}.4"), tlv(0x04, &FMSPC))?);
    body.extend(entry(&format!("{BASE}.5"), tlv(0x0a, &[0]))?);
    Ok(tlv(0x30, &body))
}

fn pem(certs: &[&Certificate]) -> Result<String> {
    let mut out = String::new();
    for c in certs {
        out.push_str(
            &c.to_pem(x509_cert::der::pem::LineEnding::LF)
                .map_err(|e| err("PEM", e))?,
        );
    }
    Ok(out)
}

/// ECDSA P-256 / SHA-256 with low S (dcap-qvl's verifier rejects high-S signatures).
fn sign_low_s(key: &SigningKey, msg: &[u8]) -> Signature {
    let sig: Signature = key.sign(msg);
    sig.normalize_s().unwrap_or(sig)
}

fn raw_sig(key: &SigningKey, msg: &[u8]) -> Vec<u8> {
    sign_low_s(key, msg).to_bytes().to_vec()
}

fn random_key(rng: &mut ChaCha20Rng) -> SigningKey {
    let mut scalar = [0u8; 32];
    loop {
        rng.fill_bytes(&mut scalar);
        if let Ok(k) = SigningKey::from_slice(&scalar) {
            return k;
        }
    }
}

/// The Intel-shaped keys and certificates.
#[derive(Debug, Clone)]
pub(super) struct IntelPki {
    root: Certificate,
    pck_ca: Certificate,
    pck: Certificate,
    tcb_signer: Certificate,
    pck_key: SigningKey,
    tcb_key: SigningKey,
    attestation_key: SigningKey,
    root_crl: Vec<u8>,
    pck_crl: Vec<u8>,
    qe_mrsigner: [u8; 32],
    seam_mrsigner: [u8; 48],
}

/// What a mock TDX quote should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxQuoteSpec {
    /// MRTD.
    pub mrtd: [u8; 48],
    /// RTMR0..=RTMR3.
    pub rtmr: [[u8; 48]; 4],
    /// Report data (put the key binding here).
    pub report_data: [u8; 64],
    /// TD attributes DEBUG bit.
    pub debug: bool,
}

impl IntelPki {
    pub(super) fn generate(rng: &mut ChaCha20Rng) -> Result<Self> {
        let root_key = random_key(rng);
        let pck_ca_key = random_key(rng);
        let pck_key = random_key(rng);
        let tcb_key = random_key(rng);
        let attestation_key = random_key(rng);
        let mut qe_mrsigner = [0u8; 32];
        rng.fill_bytes(&mut qe_mrsigner);
        let mut seam_mrsigner = [0u8; 48];
        rng.fill_bytes(&mut seam_mrsigner);

        let ou = "OU=Agora Test PKI (insecure-mock-tee),O=Agora";
        let root_name = name(&format!("CN=Mock SGX Root CA,{ou}"))?;
        let pck_ca_name = name(&format!("CN=Mock SGX PCK Platform CA,{ou}"))?;
        let root = sign_cert(
            1,
            &root_name,
            &root_name,
            &root_key,
            &root_key,
            ca_extensions()?,
        )?;
        let pck_ca = sign_cert(
            2,
            &root_name,
            &pck_ca_name,
            &pck_ca_key,
            &root_key,
            ca_extensions()?,
        )?;
        let mut pck_ext = leaf_extensions()?;
        pck_ext.push(ext("1.2.840.113741.1.13.1", false, sgx_extension()?)?);
        let pck = sign_cert(
            3,
            &pck_ca_name,
            &name(&format!("CN=Mock SGX PCK Certificate,{ou}"))?,
            &pck_key,
            &pck_ca_key,
            pck_ext,
        )?;
        let tcb_signer = sign_cert(
            4,
            &root_name,
            &name(&format!("CN=Mock SGX TCB Signing,{ou}"))?,
            &tcb_key,
            &root_key,
            leaf_extensions()?,
        )?;
        Ok(Self {
            root_crl: sign_crl(&root_name, &root_key)?,
            pck_crl: sign_crl(&pck_ca_name, &pck_ca_key)?,
            root,
            pck_ca,
            pck,
            tcb_signer,
            pck_key,
            tcb_key,
            attestation_key,
            qe_mrsigner,
            seam_mrsigner,
        })
    }

    pub(super) fn root_der(&self) -> Result<Vec<u8>> {
        self.root.to_der().map_err(|e| err("root DER", e))
    }

    /// Collateral JSON (dcap-qvl `QuoteCollateralV3` field names), valid
    /// `issued .. issued + 30 days`.
    pub(super) fn collateral_json(&self, issued: u64) -> Result<Vec<u8>> {
        let (issue, next) = (
            rfc3339(issued)?,
            rfc3339(issued.saturating_add(30 * 86_400))?,
        );
        let comps = |v: &[u8]| -> String {
            v.iter()
                .map(|s| format!("{{\"svn\":{s}}}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let tcb_info = format!(
            concat!(
                "{{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"{issue}\",\"nextUpdate\":\"{next}\",",
                "\"fmspc\":\"{fmspc}\",\"pceId\":\"{pce_id}\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,",
                "\"tdxModule\":{{\"mrsigner\":\"{seam}\",\"attributes\":\"0000000000000000\",",
                "\"attributesMask\":\"FFFFFFFFFFFFFFFF\"}},",
                "\"tcbLevels\":[{{\"tcb\":{{\"sgxtcbcomponents\":[{sgx}],\"pcesvn\":{pcesvn},",
                "\"tdxtcbcomponents\":[{tdx}]}},\"tcbDate\":\"2024-03-13T00:00:00Z\",",
                "\"tcbStatus\":\"UpToDate\"}}]}}"
            ),
            issue = issue,
            next = next,
            fmspc = hex::encode_upper(FMSPC),
            pce_id = hex::encode_upper(PCE_ID),
            seam = hex::encode_upper(self.seam_mrsigner),
            sgx = comps(&CPU_SVN),
            pcesvn = PCE_SVN,
            tdx = comps(&TEE_TCB_SVN),
        );
        let qe_identity = format!(
            concat!(
                "{{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"{issue}\",\"nextUpdate\":\"{next}\",",
                "\"tcbEvaluationDataNumber\":17,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",",
                "\"attributes\":\"11000000000000000000000000000000\",",
                "\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",",
                "\"mrsigner\":\"{mrsigner}\",\"isvprodid\":{prodid},",
                "\"tcbLevels\":[{{\"tcb\":{{\"isvsvn\":{isvsvn}}},\"tcbDate\":\"2024-03-13T00:00:00Z\",",
                "\"tcbStatus\":\"UpToDate\"}}]}}"
            ),
            issue = issue,
            next = next,
            mrsigner = hex::encode_upper(self.qe_mrsigner),
            prodid = QE_ISVPRODID,
            isvsvn = QE_ISVSVN,
        );
        let signer_chain = pem(&[&self.tcb_signer, &self.root])?;
        let json = serde_json::json!({
            "pck_crl_issuer_chain": pem(&[&self.pck_ca, &self.root])?,
            "root_ca_crl": hex::encode(&self.root_crl),
            "pck_crl": hex::encode(&self.pck_crl),
            "tcb_info_issuer_chain": signer_chain,
            "tcb_info_signature": hex::encode(raw_sig(&self.tcb_key, tcb_info.as_bytes())),
            "tcb_info": tcb_info,
            "qe_identity_issuer_chain": signer_chain,
            "qe_identity_signature": hex::encode(raw_sig(&self.tcb_key, qe_identity.as_bytes())),
            "qe_identity": qe_identity,
            "pck_certificate_chain": pem(&[&self.pck, &self.pck_ca, &self.root])?,
        });
        serde_json::to_vec(&json).map_err(|e| err("collateral JSON", e))
    }

    /// A TDX v4 quote: header and TD report signed by the attestation key, QE report
    /// signed by the PCK key and binding the attestation key, PCK chain embedded.
    pub(super) fn sign_tdx_quote(&self, spec: &TdxQuoteSpec) -> Result<Vec<u8>> {
        // Header (48) and TD report body (584).
        let mut q = vec![0u8; 48 + 584];
        put_at(&mut q, 0, &4u16.to_le_bytes())?;
        put_at(&mut q, 2, &2u16.to_le_bytes())?; // ECDSA-256 with P-256
        put_at(&mut q, 4, &0x81u32.to_le_bytes())?; // TDX
        put_at(&mut q, 8, &QE_ISVSVN.to_le_bytes())?;
        put_at(&mut q, 10, &PCE_SVN.to_le_bytes())?;
        put_at(&mut q, 12, &INTEL_QE_VENDOR_ID)?;
        let b = 48;
        put_at(&mut q, b, &TEE_TCB_SVN)?;
        put_at(&mut q, b + 16 + 48, &self.seam_mrsigner)?;
        // TUD.DEBUG (bit 0) as asked; SEPT_VE_DISABLE (bit 28) set as real TDs must.
        let td_attributes: [u8; 8] = [u8::from(spec.debug), 0, 0, 0x10, 0, 0, 0, 0];
        put_at(&mut q, b + 16 + 96 + 8, &td_attributes)?;
        put_at(&mut q, b + 136, &spec.mrtd)?;
        for (i, r) in spec.rtmr.iter().enumerate() {
            put_at(&mut q, b + 136 + 48 * 4 + 48 * i, r)?;
        }
        put_at(&mut q, b + 520, &spec.report_data)?;

        let ak_point = self.attestation_key.verifying_key().to_encoded_point(false);
        let ak = ak_point
            .as_bytes()
            .get(1..)
            .ok_or_else(|| err("attestation key", "encoding"))?
            .to_vec();
        let auth_data = [0x5au8; 32];
        // QE report (SGX enclave report, 384 bytes).
        let mut qe = vec![0u8; 384];
        put_at(&mut qe, 48, &[0x11, 0, 0, 0, 0, 0, 0, 0])?; // ATTRIBUTES: INIT | MODE64BIT
        put_at(&mut qe, 128, &self.qe_mrsigner)?;
        put_at(&mut qe, 256, &QE_ISVPRODID.to_le_bytes())?;
        put_at(&mut qe, 258, &QE_ISVSVN.to_le_bytes())?;
        let qe_hash = agora_primitives::hashing::sha256(&[ak.as_slice(), &auth_data].concat());
        put_at(&mut qe, 320, &qe_hash)?;
        let qe_sig = raw_sig(&self.pck_key, &qe);

        let chain = pem(&[&self.pck, &self.pck_ca, &self.root])?.into_bytes();
        let len32 = |n: usize| -> Result<[u8; 4]> {
            u32::try_from(n)
                .map(u32::to_le_bytes)
                .map_err(|e| err("length", e))
        };
        let mut qe_cert_data = qe;
        qe_cert_data.extend_from_slice(&qe_sig);
        qe_cert_data.extend_from_slice(&32u16.to_le_bytes());
        qe_cert_data.extend_from_slice(&auth_data);
        qe_cert_data.extend_from_slice(&5u16.to_le_bytes());
        qe_cert_data.extend_from_slice(&len32(chain.len())?);
        qe_cert_data.extend_from_slice(&chain);

        let mut auth = raw_sig(&self.attestation_key, &q);
        auth.extend_from_slice(&ak);
        auth.extend_from_slice(&6u16.to_le_bytes());
        auth.extend_from_slice(&len32(qe_cert_data.len())?);
        auth.extend_from_slice(&qe_cert_data);

        q.extend_from_slice(&len32(auth.len())?);
        q.extend_from_slice(&auth);
        Ok(q)
    }
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(t: u64) -> Result<String> {
    let dt = x509_cert::der::DateTime::from_unix_duration(core::time::Duration::from_secs(t))
        .map_err(|e| err("date", e))?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds()
    ))
}
