//! The insecure-mock-tee test PKI: its evidence goes through the production verifier and
//! is accepted only when its root is configured explicitly.

use std::sync::OnceLock;

use agora_tee::channel::{
    open_request, seal_request, EnclaveKeypair, ReplayGuard, RequestMetadata,
};
use agora_tee::mock::MockPki;
use agora_tee::snp::{verify_report, SnpCollateral};
use agora_tee::{Measurements, Policy, SnpTcb, TcbStatus, TeeError, TrustAnchor, TrustAnchors};
use rand_chacha09::rand_core::SeedableRng;

const NOW: u64 = 1_750_000_000;
const MEASUREMENT: [u8; 48] = [0xAB; 48];
const TCB: SnpTcb = SnpTcb {
    bootloader: 4,
    tee: 0,
    snp: 22,
    microcode: 213,
    fmc: 0,
};

fn pki() -> &'static MockPki {
    static PKI: OnceLock<MockPki> = OnceLock::new();
    PKI.get_or_init(|| MockPki::from_seed([42; 32], TCB).expect("mock PKI"))
}

fn anchors() -> TrustAnchors {
    TrustAnchors::production().with_mock_root(pki().roots().unwrap())
}

fn collateral() -> SnpCollateral {
    SnpCollateral::parse(&pki().snp_collateral_pem().unwrap()).unwrap()
}

fn enclave() -> EnclaveKeypair {
    EnclaveKeypair::derive(b"mock enclave key material, test only").expect("key")
}

#[test]
fn mock_bundle_verifies_only_with_explicit_mock_root() {
    let kp = enclave();
    let bundle = pki().snp_bundle(&kp.public_key(), MEASUREMENT).unwrap();
    let policy = Policy::default().with_allowed_measurements(vec![Measurements::AmdSevSnp {
        measurement: MEASUREMENT,
    }]);
    let ev = bundle
        .verify(NOW, &policy, &anchors())
        .expect("mock bundle verifies");
    assert_eq!(ev.trust_anchor, TrustAnchor::MockTest);
    assert_eq!(ev.tcb_status, TcbStatus::UpToDate);
    assert_eq!(ev.snp.as_ref().unwrap().reported_tcb, TCB);

    // The production roots alone refuse it.
    let err = bundle
        .verify(NOW, &policy, &TrustAnchors::production())
        .unwrap_err();
    assert!(matches!(err, TeeError::UntrustedChain(_)), "{err}");
    // Another seed's root refuses it too.
    let other = MockPki::from_seed([7; 32], TCB).unwrap();
    let wrong = TrustAnchors::none().with_mock_root(other.roots().unwrap());
    let err = bundle.verify(NOW, &policy, &wrong).unwrap_err();
    assert!(matches!(err, TeeError::UntrustedChain(_)), "{err}");

    // Bundle digest is stable and changes with any field.
    let d = bundle.digest();
    assert_eq!(d, bundle.clone().digest());
    let mut b2 = bundle.clone();
    b2.hpke_public_key[0] ^= 1;
    assert_ne!(d, b2.digest());
    let json = serde_json::to_string(&bundle).unwrap();
    assert_eq!(
        serde_json::from_str::<agora_tee::AttestationBundle>(&json).unwrap(),
        bundle
    );
}

#[test]
fn mock_pki_is_deterministic() {
    let again = MockPki::from_seed([42; 32], TCB).unwrap();
    assert_eq!(again.roots().unwrap(), pki().roots().unwrap());
    assert_eq!(
        again.snp_collateral_pem().unwrap(),
        pki().snp_collateral_pem().unwrap()
    );
}

#[test]
fn mock_policy_failures_have_the_right_errors() {
    let p = Policy::default();
    let spec = pki().spec(MEASUREMENT, [1; 64]);

    let mut debug = spec.clone();
    debug.debug = true;
    let r = pki().sign_snp_report(&debug).unwrap();
    assert_eq!(
        verify_report(&r, &collateral(), NOW, &p, &anchors()).unwrap_err(),
        TeeError::DebugEnabled
    );
    let dev = Policy {
        allow_debug: true,
        ..Policy::default()
    };
    assert!(
        verify_report(&r, &collateral(), NOW, &dev, &anchors())
            .unwrap()
            .debug
    );

    let mut vmpl = spec.clone();
    vmpl.vmpl = 2;
    let r = pki().sign_snp_report(&vmpl).unwrap();
    assert_eq!(
        verify_report(&r, &collateral(), NOW, &p, &anchors()).unwrap_err(),
        TeeError::VmplRejected { vmpl: 2, max: 0 }
    );

    // A report claiming a TCB its VCEK was not issued for.
    let mut tcb = spec.clone();
    tcb.reported_tcb.snp += 1;
    let r = pki().sign_snp_report(&tcb).unwrap();
    let err = verify_report(&r, &collateral(), NOW, &p, &anchors()).unwrap_err();
    assert!(matches!(err, TeeError::VcekMismatch(_)), "{err}");

    // Minimum TCB above the platform's: OutOfDate, rejected by the default policy.
    let r = pki().sign_snp_report(&spec).unwrap();
    let mut strict = Policy::default();
    strict.snp_min_tcb.microcode = 214;
    assert_eq!(
        verify_report(&r, &collateral(), NOW, &strict, &anchors()).unwrap_err(),
        TeeError::TcbStatusRejected {
            status: TcbStatus::OutOfDate
        }
    );

    // Wrong measurement.
    let only_other = Policy::default().with_allowed_measurements(vec![Measurements::AmdSevSnp {
        measurement: [0xCD; 48],
    }]);
    let err = verify_report(&r, &collateral(), NOW, &only_other, &anchors()).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementRejected(_)), "{err}");

    // Certificates outside their validity.
    let err = verify_report(&r, &collateral(), 3_000_000_000, &p, &anchors()).unwrap_err();
    assert!(matches!(err, TeeError::CertificateNotValid { .. }), "{err}");
}

#[test]
fn mock_report_bit_flips_rejected() {
    let r = pki()
        .sign_snp_report(&pki().spec(MEASUREMENT, [3; 64]))
        .unwrap();
    let (c, a, p) = (collateral(), anchors(), Policy::default());
    verify_report(&r, &c, NOW, &p, &a).expect("unmodified verifies");
    for pos in 0..0x2A0 + 144 {
        let mut m = r.clone();
        m[pos] ^= 1 << (pos % 8);
        assert!(
            verify_report(&m, &c, NOW, &p, &a).is_err(),
            "flip at {pos:#x}"
        );
    }
}

#[test]
fn mock_binding_mismatch() {
    let kp = enclave();
    let mut bundle = pki().snp_bundle(&kp.public_key(), MEASUREMENT).unwrap();
    bundle.hpke_public_key = EnclaveKeypair::derive(b"some other key material 12345678")
        .expect("key")
        .public_key()
        .to_vec();
    assert_eq!(
        bundle
            .verify(NOW, &Policy::default(), &anchors())
            .unwrap_err(),
        TeeError::BindingMismatch
    );
}

#[test]
fn mock_end_to_end_client_to_enclave() {
    // Enclave publishes a bundle; the client verifies it and seals to the bound key.
    let kp = enclave();
    let bundle = pki().snp_bundle(&kp.public_key(), MEASUREMENT).unwrap();
    bundle.verify(NOW, &Policy::default(), &anchors()).unwrap();
    let mut rng = rand_chacha09::ChaCha20Rng::seed_from_u64(1);
    let meta = RequestMetadata {
        model: "m".into(),
        request_id: [5; 16],
        netuid: 3,
        uid: 1,
        issued_at: NOW,
    };
    let (req, mut opener) =
        seal_request(&bundle.hpke_public_key, meta, b"hello", &mut rng).unwrap();
    let (body, mut sealer) = open_request(&kp, &req, NOW, &mut ReplayGuard::new(60, 8)).unwrap();
    assert_eq!(body, b"hello");
    let f = sealer.seal_frame(b"world", true).unwrap();
    assert_eq!(opener.open_frame(&f).unwrap().data, b"world");
    opener.finish().unwrap();
}

#[test]
fn mock_cli_report_names_mock_anchor() {
    let r = pki()
        .sign_snp_report(&pki().spec(MEASUREMENT, [0; 64]))
        .unwrap();
    let coll = pki().snp_collateral_pem().unwrap();
    let v = agora_tee::report::verify_files_report_with(&r, Some(&coll), None, NOW, &anchors());
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["trust_anchor"], "MockTest");
    let v = agora_tee::report::verify_files_report(&r, Some(&coll), None, NOW);
    assert_eq!(v["ok"], false, "{v}");

    let q = pki().sign_tdx_quote(&tdx_spec([0; 64])).unwrap();
    let coll = pki().tdx_collateral_json(TDX_ISSUED).unwrap();
    let v = agora_tee::report::verify_files_report_with(&q, Some(&coll), None, NOW, &anchors());
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["platform"], "intel_tdx");
    assert_eq!(v["trust_anchor"], "MockTest");
    assert_eq!(v["measurements"]["rtmr3"], hex::encode([0x34u8; 48]));
}

const TDX_ISSUED: u64 = 1_749_000_000;

#[test]
fn mock_tdx_quote_verifies_only_with_explicit_mock_root() {
    let kp = enclave();
    let mrtd = [0x21; 48];
    let rtmr = [[0x31; 48], [0x32; 48], [0x33; 48], [0x34; 48]];
    let bundle = pki()
        .tdx_bundle(&kp.public_key(), mrtd, rtmr, TDX_ISSUED)
        .unwrap();
    let policy =
        Policy::default().with_allowed_measurements(vec![Measurements::IntelTdx { mrtd, rtmr }]);
    let ev = bundle
        .verify(NOW, &policy, &anchors())
        .expect("mock TDX bundle verifies");
    assert_eq!(ev.trust_anchor, TrustAnchor::MockTest);
    assert_eq!(ev.tcb_status, TcbStatus::UpToDate);
    let err = bundle
        .verify(NOW, &policy, &TrustAnchors::production())
        .unwrap_err();
    assert!(matches!(err, TeeError::QuoteVerification(_)), "{err}");
}

fn tdx_spec(report_data: [u8; 64]) -> agora_tee::mock::TdxQuoteSpec {
    agora_tee::mock::TdxQuoteSpec {
        mrtd: [0x21; 48],
        rtmr: [[0x31; 48], [0x32; 48], [0x33; 48], [0x34; 48]],
        report_data,
        debug: false,
    }
}

#[test]
fn mock_tdx_failures_have_the_right_errors() {
    let coll = pki().tdx_collateral_json(TDX_ISSUED).unwrap();
    let p = Policy::default();
    let a = anchors();
    let verify =
        |q: &[u8], now: u64, p: &Policy| agora_tee::verify_evidence(None, q, &coll, now, p, &a);
    let good = pki().sign_tdx_quote(&tdx_spec([9; 64])).unwrap();
    let ev = verify(&good, NOW, &p).expect("mock TDX verifies");
    assert_eq!(ev.report_data, [9; 64]);

    // Debug TD: rejected by policy, accepted (and flagged) when debug is allowed.
    let mut spec = tdx_spec([9; 64]);
    spec.debug = true;
    let dbg = pki().sign_tdx_quote(&spec).unwrap();
    assert_eq!(verify(&dbg, NOW, &p).unwrap_err(), TeeError::DebugEnabled);
    let dev = Policy {
        allow_debug: true,
        ..Policy::default()
    };
    assert!(verify(&dbg, NOW, &dev).unwrap().debug);

    // Collateral past nextUpdate (issued + 30 days).
    let err = verify(&good, TDX_ISSUED + 31 * 86_400, &p).unwrap_err();
    assert!(matches!(err, TeeError::CollateralExpired { .. }), "{err}");

    // Wrong measurement.
    let other = Policy::default().with_allowed_measurements(vec![Measurements::IntelTdx {
        mrtd: [0x21; 48],
        rtmr: [[0x31; 48], [0x32; 48], [0x33; 48], [0xFF; 48]],
    }]);
    let err = verify(&good, NOW, &other).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementRejected(_)), "{err}");

    // Another seed's root does not verify it.
    let stranger = MockPki::from_seed([7; 32], TCB).unwrap();
    let wrong = TrustAnchors::none().with_mock_root(stranger.roots().unwrap());
    let err = agora_tee::verify_evidence(None, &good, &coll, NOW, &p, &wrong).unwrap_err();
    assert!(matches!(err, TeeError::QuoteVerification(_)), "{err}");
}

#[test]
fn mock_tdx_bit_flips_rejected() {
    let coll = pki().tdx_collateral_json(TDX_ISSUED).unwrap();
    let a = anchors();
    let p = Policy::default();
    let good = pki().sign_tdx_quote(&tdx_spec([1; 64])).unwrap();
    // Header and TD report (0..632), signature and attestation key (636..764), the
    // certification data type (764..766) and the QE report with its signature
    // (770..1218). (The size fields are checked by parsing; the PEM chain in the quote is
    // unsigned and unused when the collateral carries the PCK chain.)
    let signed = (0..632).chain(636..766).chain(770..1218);
    for pos in signed.step_by(3) {
        let mut m = good.clone();
        m[pos] ^= 1 << (pos % 8);
        assert!(
            agora_tee::verify_evidence(None, &m, &coll, NOW, &p, &a).is_err(),
            "flip at byte {pos}"
        );
    }
}

#[test]
fn mock_evidence_source_attests_a_key_under_the_dev_root() {
    use agora_tee::mock::{MockEvidenceSource, DEV_MEASUREMENT, DEV_SEED, DEV_TCB};
    use agora_tee::{attest_key, Platform};
    let dev = MockPki::dev().unwrap();
    let anchors = TrustAnchors::production().with_mock_root(dev.roots().unwrap());
    let kp = enclave();
    for platform in [Platform::AmdSevSnp, Platform::IntelTdx] {
        let source = MockEvidenceSource::new(dev.clone(), platform, DEV_MEASUREMENT).unwrap();
        let bundle = attest_key(&source, &kp, NOW).unwrap();
        assert_eq!(bundle.platform, platform);
        assert_eq!(bundle.hpke_public_key, kp.public_key().to_vec());
        let ev = bundle.verify(NOW, &Policy::default(), &anchors).unwrap();
        assert_eq!(ev.trust_anchor, TrustAnchor::MockTest);
        // Another key in the bundle breaks the binding.
        let mut swapped = bundle.clone();
        swapped.hpke_public_key = EnclaveKeypair::derive(b"host key")
            .expect("key")
            .public_key()
            .to_vec();
        assert!(matches!(
            swapped.verify(NOW, &Policy::default(), &anchors),
            Err(TeeError::BindingMismatch)
        ));
        assert_ne!(swapped.digest(), bundle.digest());
    }
    // Another seed's PKI is not trusted under the dev root.
    let other = MockPki::from_seed([0x11; 32], DEV_TCB).unwrap();
    assert_ne!(DEV_SEED, [0x11; 32]);
    let source = MockEvidenceSource::new(other, Platform::AmdSevSnp, DEV_MEASUREMENT).unwrap();
    let bundle = attest_key(&source, &kp, NOW).unwrap();
    assert!(matches!(
        bundle.verify(NOW, &Policy::default(), &anchors),
        Err(TeeError::UntrustedChain(_))
    ));
    assert!(MockEvidenceSource::new(dev, Platform::IntelSgx, DEV_MEASUREMENT).is_err());
}
