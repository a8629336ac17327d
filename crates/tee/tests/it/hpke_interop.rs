//! Our RFC 9180 implementation against the `hpke` crate, byte for byte: both derive the
//! ephemeral key from 32 bytes of the same seeded RNG, so `enc`, every ciphertext and every
//! exported secret must be equal, and each side must open what the other sealed.

use agora_tee::hpke::{setup_receiver, setup_sender, KeyPair, KEY_LEN};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_chacha09::rand_core::{RngCore, SeedableRng};
use rand_chacha09::ChaCha20Rng;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

#[test]
fn agrees_with_the_hpke_crate_byte_for_byte() {
    for seed in 0..32u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut recipient_ikm = [0u8; 32];
        rng.fill_bytes(&mut recipient_ikm);
        let ours_r = KeyPair::derive(&recipient_ikm).expect("derive");
        let (their_sk, their_pk) = Kem::derive_keypair(&recipient_ikm);
        assert_eq!(ours_r.public_key().to_vec(), their_pk.to_bytes().to_vec());

        let info = format!("info {seed}").into_bytes();
        let aad = format!("aad {seed}").into_bytes();
        let body: Vec<u8> = (0..(seed as usize * 97)).map(|i| i as u8).collect();

        // Same RNG state on both sides of the comparison.
        let mut rng_ours = ChaCha20Rng::seed_from_u64(1000 + seed);
        let mut rng_theirs = rng_ours.clone();
        let mut ephemeral_ikm = [0u8; KEY_LEN];
        rng_ours.fill_bytes(&mut ephemeral_ikm);
        let (enc, mut ours_s) =
            setup_sender(&ours_r.public_key(), &info, &ephemeral_ikm).expect("our sender");
        let (their_enc, mut theirs_s) = hpke::setup_sender::<Aead, Kdf, Kem, _>(
            &OpModeS::Base,
            &their_pk,
            &info,
            &mut rng_theirs,
        )
        .expect("their sender");
        assert_eq!(enc.to_vec(), their_enc.to_bytes().to_vec(), "seed {seed}");

        for round in 0..3 {
            let ours_ct = ours_s.seal(&aad, &body).expect("our seal");
            let theirs_ct = theirs_s.seal(&body, &aad).expect("their seal");
            assert_eq!(ours_ct, theirs_ct, "seed {seed} message {round}");
        }
        let (mut x, mut y) = ([0u8; 44], vec![0u8; 44]);
        ours_s.export(b"exporter", &mut x).expect("export");
        theirs_s.export(b"exporter", &mut y).expect("export");
        assert_eq!(x.to_vec(), y);

        // Each side opens what the other sealed.
        let enc_parsed = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).expect("enc");
        let mut theirs_r =
            hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &their_sk, &enc_parsed, &info)
                .expect("their receiver");
        let mut ours_r_ctx = setup_receiver(&enc, &ours_r, &info).expect("our receiver");
        let mut fresh = setup_sender(&ours_r.public_key(), &info, &ephemeral_ikm)
            .expect("sender")
            .1;
        for _ in 0..3 {
            let ct = fresh.seal(&aad, &body).expect("seal");
            assert_eq!(theirs_r.open(&ct, &aad).expect("they open ours"), body);
            assert_eq!(ours_r_ctx.open(&aad, &ct).expect("we open ours"), body);
        }
    }
}
