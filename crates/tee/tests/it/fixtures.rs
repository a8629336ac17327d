//! Real evidence from ../shared/tee-fixtures (see its README). Skipped, with a printed
//! note, when the folder is absent (a user's clone has none).

use std::path::PathBuf;

use agora_tee::snp::SnpCollateral;
use agora_tee::{
    verify_evidence, AttestationBundle, Measurements, Platform, Policy, TcbStatus, TeeError,
    TrustAnchor, TrustAnchors,
};

/// Inside the TDX and SGX collateral windows (issued 2025-06-19, next update 2025-07-19).
pub(crate) const NOW_2025_06_20: u64 = 1_750_377_600;
/// Inside the outdated TDX collateral window (2026-02-18 .. 2026-03-20).
pub(crate) const NOW_2026_02_19: u64 = 1_771_459_200;
/// Inside the dstack VCEK's validity (from 2026-06-17).
pub(crate) const NOW_2026_09_21: u64 = 1_790_000_000;
/// TDX collateral `nextUpdate` 2025-07-19T10:16:03Z.
const TDX_TCB_NEXT_UPDATE: u64 = 1_752_920_163;

pub(crate) fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AGORA_TEE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tee-fixtures")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: TEE fixtures folder {} not found (set AGORA_TEE_FIXTURES to run these tests)",
            dir.display()
        );
        None
    }
}

pub(crate) fn read(name: &str) -> Option<Vec<u8>> {
    let dir = fixtures_dir()?;
    Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}")))
}

pub(crate) fn tdx() -> Option<(Vec<u8>, Vec<u8>)> {
    Some((read("tdx_quote")?, read("tdx_quote_collateral.json")?))
}

pub(crate) fn milan() -> Option<(Vec<u8>, SnpCollateral)> {
    let hex_text = read("report_milan.hex")?;
    let clean: Vec<u8> = hex_text
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let report = hex::decode(clean).expect("hex report");
    let coll = SnpCollateral::parse_all(&[&read("vcek_milan.der")?, &read("cert_chain_milan")?])
        .expect("milan collateral");
    Some((report, coll))
}

pub(crate) fn dstack() -> Option<(Vec<u8>, SnpCollateral)> {
    let bin = read("dstack_sev_snp_attestation.bin")?;
    let marker = b"attest-test-fixture-2026";
    let at = bin
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("report_data marker");
    let start = at - 0x50;
    let report = bin[start..start + agora_tee::snp::REPORT_LEN].to_vec();
    let coll = SnpCollateral::parse_all(&[
        &read("dstack_sev_snp_vcek.pem")?,
        &read("dstack_sev_snp_ask.pem")?,
    ])
    .expect("dstack collateral");
    Some((report, coll))
}

fn prod() -> TrustAnchors {
    TrustAnchors::production()
}

#[test]
fn tdx_quote_verifies_up_to_date() {
    let Some((q, c)) = tdx() else { return };
    let ev = verify_evidence(None, &q, &c, NOW_2025_06_20, &Policy::default(), &prod())
        .expect("TDX fixture verifies");
    assert_eq!(ev.platform, Platform::IntelTdx);
    assert_eq!(ev.tcb_status, TcbStatus::UpToDate);
    assert_eq!(ev.trust_anchor, TrustAnchor::IntelSgxRootCa);
    assert!(!ev.debug);
    assert!(matches!(ev.measurements, Measurements::IntelTdx { .. }));
    // Allow-listing its own measurements accepts it; any other image is rejected.
    let ok = Policy::default().with_allowed_measurements(vec![ev.measurements.clone()]);
    verify_evidence(None, &q, &c, NOW_2025_06_20, &ok, &prod()).expect("allow-listed");
    let mut other = ev.measurements.clone();
    if let Measurements::IntelTdx { rtmr, .. } = &mut other {
        rtmr[3][0] ^= 1;
    }
    let bad = Policy::default().with_allowed_measurements(vec![other]);
    let err = verify_evidence(None, &q, &c, NOW_2025_06_20, &bad, &prod()).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementRejected(_)), "{err}");
}

#[test]
fn tdx_outdated_rejected_by_strict_policy() {
    let Some(q) = read("tdx_quote_outdated") else {
        return;
    };
    let Some(c) = read("tdx_quote_outdated_collateral.json") else {
        return;
    };
    // dcap-qvl 0.7.1 finds no TCB level of this collateral that the quote's TDX module SVN
    // meets (Intel's "TCB unrecognized"), so it is rejected whatever the policy accepts.
    for policy in [
        Policy::default(),
        Policy::default().with_accepted_statuses(vec![
            TcbStatus::UpToDate,
            TcbStatus::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded,
        ]),
    ] {
        let err = verify_evidence(None, &q, &c, NOW_2026_02_19, &policy, &prod()).unwrap_err();
        match err {
            TeeError::TcbStatusRejected { status } => assert_ne!(status, TcbStatus::UpToDate),
            TeeError::QuoteVerification(m) => assert!(m.contains("TCB level"), "{m}"),
            other => panic!("unexpected error {other}"),
        }
    }
}

#[test]
fn sgx_quote_needs_lenient_policy() {
    let Some(q) = read("sgx_quote") else { return };
    let Some(c) = read("sgx_quote_collateral.json") else {
        return;
    };
    let err =
        verify_evidence(None, &q, &c, NOW_2025_06_20, &Policy::default(), &prod()).unwrap_err();
    assert_eq!(
        err,
        TeeError::TcbStatusRejected {
            status: TcbStatus::ConfigurationAndSWHardeningNeeded
        }
    );
    let ev = verify_evidence(None, &q, &c, NOW_2025_06_20, &Policy::lenient(), &prod())
        .expect("lenient accepts");
    assert_eq!(ev.platform, Platform::IntelSgx);
    assert_eq!(ev.advisory_ids.len(), 2, "{:?}", ev.advisory_ids);
    assert!(matches!(ev.measurements, Measurements::IntelSgx { .. }));
    let mut p = Policy::lenient();
    p.rejected_advisories = vec![ev.advisory_ids[0].clone()];
    let err = verify_evidence(None, &q, &c, NOW_2025_06_20, &p, &prod()).unwrap_err();
    assert!(matches!(err, TeeError::AdvisoryRejected(_)), "{err}");
}

#[test]
fn tdx_collateral_time_window() {
    let Some((q, c)) = tdx() else { return };
    let p = Policy::default();
    let err = verify_evidence(None, &q, &c, TDX_TCB_NEXT_UPDATE + 1, &p, &prod()).unwrap_err();
    assert!(matches!(err, TeeError::CollateralExpired { .. }), "{err}");
    let err = verify_evidence(None, &q, &c, 1_700_000_000, &p, &prod()).unwrap_err();
    assert!(
        matches!(err, TeeError::CollateralNotYetValid { .. }),
        "{err}"
    );
    let strict = Policy {
        max_collateral_age_secs: Some(3600),
        ..Policy::default()
    };
    let err = verify_evidence(None, &q, &c, NOW_2025_06_20, &strict, &prod()).unwrap_err();
    assert!(matches!(err, TeeError::CollateralTooOld { .. }), "{err}");
}

#[test]
fn tdx_without_intel_root_is_untrusted() {
    let Some((q, c)) = tdx() else { return };
    let amd_only = TrustAnchors::only(&[TrustAnchor::AmdArkMilan, TrustAnchor::AmdArkGenoa]);
    let err =
        verify_evidence(None, &q, &c, NOW_2025_06_20, &Policy::default(), &amd_only).unwrap_err();
    assert!(matches!(err, TeeError::UntrustedChain(_)), "{err}");
}

#[test]
fn tdx_bit_flips_in_signed_data_rejected() {
    let Some((q, c)) = tdx() else { return };
    // Header (48) + TD report v4 body (584) + signature length (4) + ECDSA signature (64) +
    // attestation key (64): all signed or signature material.
    let signed_end = 48 + 584 + 4 + 128;
    let mut rejected = 0;
    for pos in (0..signed_end).step_by(3) {
        let mut m = q.clone();
        m[pos] ^= 1 << (pos % 8);
        let r = verify_evidence(None, &m, &c, NOW_2025_06_20, &Policy::default(), &prod());
        assert!(r.is_err(), "flip at byte {pos} accepted");
        rejected += 1;
    }
    assert!(rejected > 200);
}

#[test]
fn tdx_binding_mismatch() {
    let Some((q, c)) = tdx() else { return };
    let bundle = AttestationBundle {
        platform: Platform::IntelTdx,
        evidence: q,
        collateral: c,
        hpke_public_key: vec![7u8; 32],
    };
    let err = bundle
        .verify(NOW_2025_06_20, &Policy::default(), &prod())
        .unwrap_err();
    assert_eq!(err, TeeError::BindingMismatch);
    // Declaring the wrong platform is caught before any crypto.
    let wrong = AttestationBundle {
        platform: Platform::AmdSevSnp,
        ..bundle
    };
    let err = wrong
        .verify(NOW_2025_06_20, &Policy::default(), &prod())
        .unwrap_err();
    assert!(matches!(err, TeeError::PlatformMismatch { .. }), "{err}");
}

fn snp_verify(
    r: &[u8],
    c: &SnpCollateral,
    p: &Policy,
    a: &TrustAnchors,
) -> agora_tee::Result<agora_tee::VerifiedEvidence> {
    agora_tee::snp::verify_report(r, c, NOW_2025_06_20, p, a)
}

#[test]
fn snp_milan_verifies() {
    let Some((r, c)) = milan() else { return };
    let ev = snp_verify(&r, &c, &Policy::default(), &prod()).expect("milan verifies");
    assert_eq!(ev.platform, Platform::AmdSevSnp);
    assert_eq!(ev.trust_anchor, TrustAnchor::AmdArkMilan);
    assert!(!ev.debug);
    eprintln!("milan: {:?}", ev.snp);
}

#[test]
fn snp_dstack_verifies_with_builtin_ark() {
    let Some((r, c)) = dstack() else { return };
    // This VCEK's validity starts 2026-06-17.
    let err = snp_verify(&r, &c, &Policy::default(), &prod()).unwrap_err();
    assert!(matches!(err, TeeError::CertificateNotValid { .. }), "{err}");
    let ev = agora_tee::snp::verify_report(&r, &c, NOW_2026_09_21, &Policy::default(), &prod())
        .expect("dstack verifies");
    assert!(ev.report_data.starts_with(b"attest-test-fixture-2026"));
    eprintln!("dstack: {:?} {:?}", ev.trust_anchor, ev.snp);
}

#[test]
fn snp_wrong_root_rejected() {
    let Some((r, c)) = milan() else { return };
    let genoa = TrustAnchors::only(&[TrustAnchor::AmdArkGenoa]);
    let err = snp_verify(&r, &c, &Policy::default(), &genoa).unwrap_err();
    assert!(matches!(err, TeeError::UntrustedChain(_)), "{err}");
}

#[test]
fn snp_bit_flips_in_signed_data_rejected() {
    let Some((r, c)) = milan() else { return };
    let p = Policy::default();
    // Every byte of the signed region and of the signature's R and S.
    for pos in (0..0x2A0 + 144).step_by(2) {
        let mut m = r.clone();
        m[pos] ^= 1 << (pos % 8);
        assert!(snp_verify(&m, &c, &p, &prod()).is_err(), "flip at {pos:#x}");
    }
}

#[test]
fn snp_wrong_measurement_and_vmpl_policy() {
    let Some((r, c)) = milan() else { return };
    let p = Policy::default().with_allowed_measurements(vec![Measurements::AmdSevSnp {
        measurement: [0u8; 48],
    }]);
    let err = snp_verify(&r, &c, &p, &prod()).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementRejected(_)), "{err}");
    let mut p = Policy::default();
    p.snp_min_tcb.snp = 255;
    let err = snp_verify(&r, &c, &p, &prod()).unwrap_err();
    assert_eq!(
        err,
        TeeError::TcbStatusRejected {
            status: TcbStatus::OutOfDate
        }
    );
}

#[test]
fn cli_json_report() {
    use agora_tee::report::verify_files_report;
    let Some((q, c)) = tdx() else { return };
    let v = verify_files_report(&q, Some(&c), None, NOW_2025_06_20);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["platform"], "intel_tdx");
    assert_eq!(v["tcb_status"], "UpToDate");
    assert_eq!(v["trust_anchor"], "IntelSgxRootCa");
    assert_eq!(v["measurements"]["mrtd"].as_str().unwrap().len(), 96);
    assert_eq!(v["report_data"].as_str().unwrap().len(), 128);
    assert!(v.get("error").is_none());

    let v = verify_files_report(&q, Some(&c), None, TDX_TCB_NEXT_UPDATE + 1);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(v["platform"], "intel_tdx");

    let v = verify_files_report(&q, None, None, NOW_2025_06_20);
    assert_eq!(v["ok"], false);
    let v = verify_files_report(&q, Some(&c), Some(b"{\"allow_debug\": 3}"), NOW_2025_06_20);
    assert!(v["error"].as_str().unwrap().contains("policy"), "{v}");

    // SNP from its hex text and a PEM bundle of VCEK + chain.
    let Some(hex_report) = read("report_milan.hex") else {
        return;
    };
    let Some(chain) = read("cert_chain_milan") else {
        return;
    };
    let Some(vcek_der) = read("vcek_milan.der") else {
        return;
    };
    let vcek = agora_tee::snp::SnpCollateral::parse(&vcek_der).unwrap();
    let mut bundle = x509_pem(&vcek.certs[0]);
    bundle.extend_from_slice(&chain);
    let v = verify_files_report(&hex_report, Some(&bundle), None, NOW_2025_06_20);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["trust_anchor"], "AmdArkMilan");
    assert_eq!(v["measurements"]["measurement"].as_str().unwrap().len(), 96);
}

fn x509_pem(der: &[u8]) -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    let mut line = 0;
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            let c = if i > chunk.len() {
                '='
            } else {
                B64[((n >> (18 - 6 * i)) & 63) as usize] as char
            };
            s.push(c);
        }
        line += 4;
        if line == 64 {
            s.push('\n');
            line = 0;
        }
    }
    if line != 0 {
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s.into_bytes()
}
