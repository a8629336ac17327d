//! agora-tee benchmarks: `cargo bench -p agora-tee --bench tee`.
//!
//! Targets: TDX quote verification ≤ 5 ms; HPKE seal + open of a 4 KiB request ≤ 50 µs.
//! The attestation benches use ../shared/tee-fixtures (or AGORA_TEE_FIXTURES) and are
//! skipped with a note when it is absent.

use std::path::PathBuf;

use agora_tee::channel::{
    open_request, seal_request, EnclaveKeypair, ReplayGuard, RequestMetadata,
};
use agora_tee::snp::{verify_report, SnpCollateral};
use agora_tee::{verify_evidence, Policy, TrustAnchors};
use criterion::{criterion_group, criterion_main, Criterion};
use rand_chacha09::rand_core::SeedableRng;

/// Inside the TDX fixture's collateral window.
const TDX_NOW: u64 = 1_750_377_600;

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("AGORA_TEE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tee-fixtures")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP attestation benches: {} not found", dir.display());
        None
    }
}

fn attestation(c: &mut Criterion) {
    let Some(dir) = fixtures() else { return };
    let read = |n: &str| std::fs::read(dir.join(n)).expect("fixture");
    let (quote, coll) = (read("tdx_quote"), read("tdx_quote_collateral.json"));
    let (policy, anchors) = (Policy::default(), TrustAnchors::production());
    c.bench_function("verify_tdx_quote_fixture", |b| {
        b.iter(|| verify_evidence(None, &quote, &coll, TDX_NOW, &policy, &anchors).expect("ok"))
    });
    let hex_text: Vec<u8> = read("report_milan.hex")
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let report = hex::decode(hex_text).expect("hex");
    let snp_coll = SnpCollateral::parse_all(&[&read("vcek_milan.der"), &read("cert_chain_milan")])
        .expect("coll");
    c.bench_function("verify_snp_milan_fixture", |b| {
        b.iter(|| verify_report(&report, &snp_coll, TDX_NOW, &policy, &anchors).expect("ok"))
    });
}

fn hpke(c: &mut Criterion) {
    let kp = EnclaveKeypair::derive(b"bench enclave key material 000000").expect("key");
    let pk = kp.public_key();
    let body = vec![0x42u8; 4096];
    let mut rng = rand_chacha09::ChaCha20Rng::seed_from_u64(1);
    let mut id: u128 = 0;
    // A guard big enough for every iteration; the replay check is part of what is timed.
    let mut guard = ReplayGuard::new(3600, 50_000_000);
    c.bench_function("hpke_seal_open_4KiB", |b| {
        b.iter(|| {
            id = id.wrapping_add(1);
            let meta = RequestMetadata {
                model: "llama-3.1-8b".into(),
                request_id: id.to_le_bytes(),
                netuid: 1,
                uid: 2,
                issued_at: 1_000,
            };
            let (req, _) = seal_request(&pk, meta, &body, &mut rng).expect("seal");
            open_request(&kp, &req, 1_000, &mut guard).expect("open")
        })
    });
    let meta = RequestMetadata {
        model: "m".into(),
        request_id: [0; 16],
        netuid: 1,
        uid: 2,
        issued_at: 1_000,
    };
    let (req, mut opener) = seal_request(&pk, meta, b"x", &mut rng).expect("seal");
    let (_, mut sealer) =
        open_request(&kp, &req, 1_000, &mut ReplayGuard::new(60, 4)).expect("open");
    let chunk = vec![0x17u8; 4096];
    c.bench_function("response_frame_seal_open_4KiB", |b| {
        b.iter(|| {
            let f = sealer.seal_frame(&chunk, false).expect("frame");
            opener.open_frame(&f).expect("open frame")
        })
    });
}

/// The HPKE layer alone (setup, one 4 KiB seal and open, the response export) against the
/// `hpke` crate doing the same, and where the time goes.
fn hpke_layer(c: &mut Criterion) {
    use agora_tee::hpke::{setup_receiver, setup_sender, KeyPair};
    use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
    type Kem = hpke::kem::X25519HkdfSha256;
    type Kdf = hpke::kdf::HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;

    let body = vec![0x42u8; 4096];
    let ikm = [7u8; 32];
    let recipient = KeyPair::derive(&ikm).expect("key");
    let (their_sk, their_pk) = Kem::derive_keypair(&ikm);
    let mut rng = rand_chacha09::ChaCha20Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("hpke_4KiB");
    group.bench_function("agora_aws_lc", |b| {
        b.iter(|| {
            let mut eph = [0u8; 32];
            rand_chacha09::rand_core::RngCore::fill_bytes(&mut rng, &mut eph);
            let (enc, mut s) = setup_sender(&recipient.public_key(), b"info", &eph).expect("s");
            let ct = s.seal(b"aad", &body).expect("seal");
            let mut out = [0u8; 44];
            s.export(b"response", &mut out).expect("export");
            let mut r = setup_receiver(&enc, &recipient, b"info").expect("r");
            r.export(b"response", &mut out).expect("export");
            r.open(b"aad", &ct).expect("open")
        })
    });
    group.bench_function("hpke_crate", |b| {
        b.iter(|| {
            let (enc, mut s) = hpke::setup_sender::<Aead, Kdf, Kem, _>(
                &OpModeS::Base,
                &their_pk,
                b"info",
                &mut rng,
            )
            .expect("s");
            let ct = s.seal(&body, b"aad").expect("seal");
            let mut out = [0u8; 44];
            s.export(b"response", &mut out).expect("export");
            let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc.to_bytes()).expect("enc");
            let mut r =
                hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &their_sk, &enc, b"info")
                    .expect("r");
            r.export(b"response", &mut out).expect("export");
            r.open(&ct, b"aad").expect("open")
        })
    });
    group.bench_function("part_keypair_derive", |b| {
        b.iter(|| KeyPair::derive(&ikm).expect("key"))
    });
    let (enc, _) = setup_sender(&recipient.public_key(), b"info", &ikm).expect("s");
    group.bench_function("part_setup_sender", |b| {
        b.iter(|| setup_sender(&recipient.public_key(), b"info", &ikm).expect("s"))
    });
    group.bench_function("part_setup_receiver", |b| {
        b.iter(|| setup_receiver(&enc, &recipient, b"info").expect("r"))
    });
    group.finish();
}

criterion_group!(benches, attestation, hpke, hpke_layer);
criterion_main!(benches);
