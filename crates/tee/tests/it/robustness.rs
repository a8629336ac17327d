//! Hostile inputs: every entry point returns an error, never panics.

use agora_tee::channel::{
    open_request, EnclaveKeypair, ReplayGuard, RequestMetadata, SealedRequest,
};
use agora_tee::report::verify_files_report;
use agora_tee::snp::{SnpCollateral, SnpReport, REPORT_LEN};
use agora_tee::{verify_evidence, Policy, TrustAnchors};

/// xorshift64*: a tiny deterministic generator; failures reproduce from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Random bytes of random length below `max`.
    fn bytes_below(&mut self, max: u64) -> Vec<u8> {
        let n = (self.next() % max) as usize;
        self.bytes(n)
    }
}

#[test]
fn random_evidence_and_collateral_are_errors() {
    let seed = 0x5eed_u64;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let anchors = TrustAnchors::production();
    let policy = Policy::default();
    for i in 0..300 {
        let len = match i % 4 {
            0 => REPORT_LEN,
            1 => (rng.next() % 64) as usize,
            2 => 48 + (rng.next() % 2000) as usize,
            _ => (rng.next() % 6000) as usize,
        };
        let mut ev = rng.bytes(len);
        // Make some look like DCAP quote headers or SNP reports to go deeper.
        if i % 3 == 0 && ev.len() >= 8 {
            ev[..8].copy_from_slice(&[4, 0, 2, 0, 0x81, 0, 0, 0]);
        }
        if i % 4 == 0 {
            ev[..4].copy_from_slice(&3u32.to_le_bytes());
            ev[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
            assert!(SnpReport::parse(&ev).is_ok());
        }
        let coll = rng.bytes_below(3000);
        assert!(verify_evidence(None, &ev, &coll, 1_750_000_000, &policy, &anchors).is_err());
        let v = verify_files_report(&ev, Some(&coll), None, 1_750_000_000);
        assert_eq!(v["ok"], false);
        assert!(SnpCollateral::parse(&coll).is_err());
        let _ = Policy::from_json(&coll);
    }
}

#[test]
fn truncated_and_extended_real_quote_is_an_error() {
    let Some((q, c)) = crate::fixtures::tdx() else {
        return;
    };
    let anchors = TrustAnchors::production();
    // The structure ends at 4936 bytes; the rest of this quote is zero padding.
    for cut in (0..4936).step_by(97).chain([4935]) {
        assert!(
            verify_evidence(
                None,
                &q[..cut],
                &c,
                1_750_377_600,
                &Policy::default(),
                &anchors
            )
            .is_err(),
            "truncated to {cut}"
        );
    }
    verify_evidence(
        None,
        &q[..4936],
        &c,
        1_750_377_600,
        &Policy::default(),
        &anchors,
    )
    .expect("padding is optional");
    let mut longer = q.clone();
    longer.extend_from_slice(&[0u8; 100]);
    verify_evidence(
        None,
        &longer,
        &c,
        1_750_377_600,
        &Policy::default(),
        &anchors,
    )
    .expect("zero padding is accepted");
    for pos in [4936, 4990, q.len() - 1] {
        let mut m = q.clone();
        m[pos] = 1;
        let err =
            verify_evidence(None, &m, &c, 1_750_377_600, &Policy::default(), &anchors).unwrap_err();
        assert!(
            matches!(err, agora_tee::TeeError::MalformedEvidence(_)),
            "{err}"
        );
    }
    // Collateral JSON cut anywhere.
    for cut in (0..c.len()).step_by(503) {
        assert!(verify_evidence(
            None,
            &q,
            &c[..cut],
            1_750_377_600,
            &Policy::default(),
            &anchors
        )
        .is_err());
    }
}

#[test]
fn random_sealed_requests_are_errors() {
    let mut rng = Rng(0xfeed);
    let kp = EnclaveKeypair::derive(b"robustness enclave key material!!").expect("key");
    let mut guard = ReplayGuard::new(60, 16);
    for _ in 0..200 {
        let enc_len = [0usize, 31, 32, 33][(rng.next() % 4) as usize];
        let req = SealedRequest {
            metadata: RequestMetadata {
                model: String::from_utf8_lossy(&rng.bytes_below(300)).into_owned(),
                request_id: [rng.next() as u8; 16],
                netuid: rng.next() as u16,
                uid: rng.next() as u16,
                issued_at: 1_000 + rng.next() % 100,
            },
            enc: rng.bytes(enc_len),
            ciphertext: rng.bytes_below(100),
        };
        assert!(open_request(&kp, &req, 1_030, &mut guard).is_err());
    }
    assert!(guard.is_empty());
}
