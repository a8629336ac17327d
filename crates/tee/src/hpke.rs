//! RFC 9180 HPKE, base mode, for the one suite the network speaks:
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 (ids 0x0020, 0x0001, 0x0003).
//!
//! Only what the private path needs: key pairs (`GenerateKeyPair` as `DeriveKeyPair` of
//! fresh random input, as the RFC allows), `SetupBaseS` / `SetupBaseR`, `Seal` / `Open`
//! with the sequence-numbered nonce, and `Export`.
//!
//! Primitives: X25519 and ChaCha20-Poly1305 from aws-lc (its x86-64 X25519 is assembly,
//! about twice as fast here as a portable implementation, and X25519 is most of a sealed
//! request's cost); HKDF-SHA256 from RustCrypto. The labelled derivations are spelled out
//! below so that each line can be checked against the RFC's pseudocode; the RFC's own
//! test vector and byte-for-byte agreement with another implementation are in the tests.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use zeroize::Zeroizing;

/// KEM id of DHKEM(X25519, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0020;
/// KDF id of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// AEAD id of ChaCha20-Poly1305.
pub const AEAD_ID: u16 = 0x0003;
/// Length of a public key, an encapsulated key and a private key.
pub const KEY_LEN: usize = 32;
/// Length of the AEAD tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of an AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Length of an AEAD key.
const AEAD_KEY_LEN: usize = 32;
/// `Nh` of HKDF-SHA256.
const HASH_LEN: usize = 32;
/// Base mode.
const MODE_BASE: u8 = 0x00;

/// `"KEM" ‖ I2OSP(kem_id, 2)`.
const KEM_SUITE_ID: [u8; 5] = [b'K', b'E', b'M', 0x00, 0x20];
/// `"HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)`.
const HPKE_SUITE_ID: [u8; 10] = [b'H', b'P', b'K', b'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x03];
const VERSION_LABEL: &[u8] = b"HPKE-v1";

/// Why an HPKE operation failed. Deliberately coarse: an opener learns nothing about
/// which check refused a ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpkeError {
    /// A public or encapsulated key is malformed or of low order (the shared secret would
    /// be all zeros).
    #[error("invalid X25519 public key")]
    InvalidPublicKey,
    /// A private key could not be loaded.
    #[error("invalid X25519 private key")]
    InvalidPrivateKey,
    /// Authentication failed: wrong key, wrong associated data or a tampered ciphertext.
    #[error("HPKE open failed")]
    OpenFailed,
    /// The context sealed or opened 2^64 - 1 messages, or an export asked for more than
    /// HKDF can give.
    #[error("HPKE limit reached")]
    Limit,
    /// The underlying library refused an operation it should not refuse.
    #[error("HPKE internal failure")]
    Internal,
}

/// `LabeledExtract(salt, label, ikm)`, returning the PRK's HKDF expander.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    extract.input_ikm(VERSION_LABEL);
    extract.input_ikm(suite_id);
    extract.input_ikm(label);
    extract.input_ikm(ikm);
    extract.finalize().1
}

/// `LabeledExtract` when its output is used as bytes (the key schedule's hashes).
fn labeled_extract_bytes(suite_id: &[u8], label: &[u8], ikm: &[u8]) -> [u8; HASH_LEN] {
    let mut extract = HkdfExtract::<Sha256>::new(Some(&[]));
    extract.input_ikm(VERSION_LABEL);
    extract.input_ikm(suite_id);
    extract.input_ikm(label);
    extract.input_ikm(ikm);
    extract.finalize().0.into()
}

/// `LabeledExpand(prk, label, info, L)` into `out` (`L = out.len()`).
fn labeled_expand(
    prk: &Hkdf<Sha256>,
    suite_id: &[u8],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), HpkeError> {
    let len = u16::try_from(out.len()).map_err(|_| HpkeError::Limit)?;
    prk.expand_multi_info(
        &[&len.to_be_bytes(), VERSION_LABEL, suite_id, label, info],
        out,
    )
    .map_err(|_| HpkeError::Limit)
}

/// An X25519 private key with its public key.
pub struct KeyPair {
    private: agreement::PrivateKey,
    public: [u8; KEY_LEN],
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// `DeriveKeyPair(ikm)`: deterministic in `ikm`, which must hold at least 32 bytes of
    /// entropy for the key to be secret.
    pub fn derive(ikm: &[u8]) -> Result<Self, HpkeError> {
        let dkp_prk = labeled_extract(&KEM_SUITE_ID, &[], b"dkp_prk", ikm);
        let mut sk = Zeroizing::new([0u8; KEY_LEN]);
        labeled_expand(&dkp_prk, &KEM_SUITE_ID, b"sk", &[], sk.as_mut_slice())?;
        Self::from_private_bytes(sk.as_slice())
    }

    /// The key pair of a raw 32-byte X25519 private key.
    pub fn from_private_bytes(sk: &[u8]) -> Result<Self, HpkeError> {
        let private = agreement::PrivateKey::from_private_key(&X25519, sk)
            .map_err(|_| HpkeError::InvalidPrivateKey)?;
        let computed = private
            .compute_public_key()
            .map_err(|_| HpkeError::InvalidPrivateKey)?;
        let public = computed
            .as_ref()
            .try_into()
            .map_err(|_| HpkeError::Internal)?;
        Ok(Self { private, public })
    }

    /// The serialized public key (`SerializePublicKey`).
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// `DH(sk, pk)`; refuses a peer key whose result is all zeros (RFC 9180 §7.1.4).
    fn dh(&self, peer: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, HpkeError> {
        if peer.len() != KEY_LEN {
            return Err(HpkeError::InvalidPublicKey);
        }
        let shared = agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&X25519, peer),
            HpkeError::InvalidPublicKey,
            |secret| {
                let mut out = Zeroizing::new([0u8; KEY_LEN]);
                if secret.len() != KEY_LEN {
                    return Err(HpkeError::Internal);
                }
                out.copy_from_slice(secret);
                Ok(out)
            },
        )?;
        if shared.iter().fold(0u8, |acc, b| acc | b) == 0 {
            return Err(HpkeError::InvalidPublicKey);
        }
        Ok(shared)
    }
}

/// `ExtractAndExpand(dh, kem_context)` of DHKEM.
fn kem_shared_secret(
    dh: &[u8],
    enc: &[u8],
    pk_r: &[u8],
) -> Result<Zeroizing<[u8; HASH_LEN]>, HpkeError> {
    let eae_prk = labeled_extract(&KEM_SUITE_ID, &[], b"eae_prk", dh);
    let mut kem_context = [0u8; 2 * KEY_LEN];
    let (e, r) = kem_context.split_at_mut(KEY_LEN);
    e.copy_from_slice(enc);
    r.copy_from_slice(pk_r);
    let mut shared = Zeroizing::new([0u8; HASH_LEN]);
    labeled_expand(
        &eae_prk,
        &KEM_SUITE_ID,
        b"shared_secret",
        &kem_context,
        shared.as_mut_slice(),
    )?;
    Ok(shared)
}

/// `KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")`.
fn key_schedule(shared_secret: &[u8], info: &[u8]) -> Result<Context, HpkeError> {
    let psk_id_hash = labeled_extract_bytes(&HPKE_SUITE_ID, b"psk_id_hash", &[]);
    let info_hash = labeled_extract_bytes(&HPKE_SUITE_ID, b"info_hash", info);
    let mut ks_context = [0u8; 1 + 2 * HASH_LEN];
    let (mode, hashes) = ks_context.split_at_mut(1);
    let (psk_part, info_part) = hashes.split_at_mut(HASH_LEN);
    mode.copy_from_slice(&[MODE_BASE]);
    psk_part.copy_from_slice(&psk_id_hash);
    info_part.copy_from_slice(&info_hash);

    let secret = labeled_extract(&HPKE_SUITE_ID, shared_secret, b"secret", &[]);
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    labeled_expand(
        &secret,
        &HPKE_SUITE_ID,
        b"key",
        &ks_context,
        key.as_mut_slice(),
    )?;
    let mut base_nonce = [0u8; NONCE_LEN];
    labeled_expand(
        &secret,
        &HPKE_SUITE_ID,
        b"base_nonce",
        &ks_context,
        &mut base_nonce,
    )?;
    let mut exporter_secret = Zeroizing::new([0u8; HASH_LEN]);
    labeled_expand(
        &secret,
        &HPKE_SUITE_ID,
        b"exp",
        &ks_context,
        exporter_secret.as_mut_slice(),
    )?;
    Ok(Context {
        aead: AeadKey::new(key.as_slice())?,
        base_nonce,
        exporter_secret,
        seq: 0,
    })
}

/// `SetupBaseS(pkR, info)` with the ephemeral key derived from `ephemeral_ikm` (32 fresh
/// random bytes). Returns the encapsulated key and the sender's context.
pub fn setup_sender(
    pk_r: &[u8],
    info: &[u8],
    ephemeral_ikm: &[u8; KEY_LEN],
) -> Result<([u8; KEY_LEN], Context), HpkeError> {
    setup_sender_with(pk_r, info, &KeyPair::derive(ephemeral_ikm)?)
}

/// `SetupBaseS` with a given ephemeral key pair (the RFC's test vectors fix `skEm`).
pub fn setup_sender_with(
    pk_r: &[u8],
    info: &[u8],
    ephemeral: &KeyPair,
) -> Result<([u8; KEY_LEN], Context), HpkeError> {
    let dh = ephemeral.dh(pk_r)?;
    let enc = ephemeral.public_key();
    let shared = kem_shared_secret(dh.as_slice(), &enc, pk_r)?;
    Ok((enc, key_schedule(shared.as_slice(), info)?))
}

/// `SetupBaseR(enc, skR, info)`.
pub fn setup_receiver(enc: &[u8], recipient: &KeyPair, info: &[u8]) -> Result<Context, HpkeError> {
    let dh = recipient.dh(enc)?;
    let shared = kem_shared_secret(dh.as_slice(), enc, &recipient.public_key())?;
    key_schedule(shared.as_slice(), info)
}

/// A ChaCha20-Poly1305 key (aws-lc), shared by HPKE contexts and response frames.
pub struct AeadKey(LessSafeKey);

impl core::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// A key from 32 bytes.
    pub fn new(key: &[u8]) -> Result<Self, HpkeError> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| HpkeError::Internal)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Encrypts `plaintext`; returns ciphertext ‖ tag.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, HpkeError> {
        let mut buf = Vec::with_capacity(plaintext.len().saturating_add(TAG_LEN));
        buf.extend_from_slice(plaintext);
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| HpkeError::Internal)?;
        Ok(buf)
    }

    /// Decrypts ciphertext ‖ tag; any forgery is [`HpkeError::OpenFailed`].
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, HpkeError> {
        let mut buf = ciphertext.to_vec();
        let len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| HpkeError::OpenFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// An HPKE encryption context (either side): the AEAD key, base nonce, sequence number and
/// exporter secret.
pub struct Context {
    aead: AeadKey,
    base_nonce: [u8; NONCE_LEN],
    exporter_secret: Zeroizing<[u8; HASH_LEN]>,
    seq: u64,
}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// `ComputeNonce(seq)`: the base nonce XOR the big-endian sequence number.
    fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = self.base_nonce;
        for (b, s) in nonce
            .iter_mut()
            .skip(NONCE_LEN - 8)
            .zip(self.seq.to_be_bytes())
        {
            *b ^= s;
        }
        nonce
    }

    fn advance(&mut self) -> Result<(), HpkeError> {
        // RFC 9180 §5.2: the sequence number must not wrap.
        self.seq = self
            .seq
            .checked_add(1)
            .filter(|s| *s < u64::MAX)
            .ok_or(HpkeError::Limit)?;
        Ok(())
    }

    /// `Seal(aad, pt)` with the next sequence number.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let ct = self.aead.seal(self.nonce(), aad, plaintext)?;
        self.advance()?;
        Ok(ct)
    }

    /// `Open(aad, ct)` with the next sequence number; the number advances only on success.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let pt = self.aead.open(self.nonce(), aad, ciphertext)?;
        self.advance()?;
        Ok(pt)
    }

    /// `Export(exporter_context, L)` into `out` (`L = out.len()`, at most 255 · 32).
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
        let prk = Hkdf::<Sha256>::from_prk(self.exporter_secret.as_slice())
            .map_err(|_| HpkeError::Internal)?;
        labeled_expand(&prk, &HPKE_SUITE_ID, b"sec", exporter_context, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    // RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305,
    // base mode; the first encryption (sequence number 0).
    const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
    const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
    const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
    const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    const AAD0: &str = "436f756e742d30";
    const CT0: &str = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b\
                       60b4db21993c62ce81883d2dd1b51a28";

    #[test]
    fn rfc9180_a21_base_vector() {
        let ephemeral = KeyPair::from_private_bytes(&unhex(SK_EM)).expect("skEm");
        assert_eq!(ephemeral.public_key().to_vec(), unhex(PK_EM));
        let recipient = KeyPair::from_private_bytes(&unhex(SK_RM)).expect("skRm");
        assert_eq!(recipient.public_key().to_vec(), unhex(PK_RM));

        let (enc, mut sender) =
            setup_sender_with(&unhex(PK_RM), &unhex(INFO), &ephemeral).expect("sender");
        assert_eq!(enc.to_vec(), unhex(PK_EM));
        let ct = sender.seal(&unhex(AAD0), &unhex(PT)).expect("seal");
        assert_eq!(hex::encode(&ct), CT0.replace(' ', ""));

        let mut receiver = setup_receiver(&enc, &recipient, &unhex(INFO)).expect("receiver");
        assert_eq!(receiver.open(&unhex(AAD0), &ct).expect("open"), unhex(PT));
    }

    #[test]
    fn second_message_uses_the_next_nonce_and_exports_agree() {
        let recipient = KeyPair::derive(b"recipient ikm of thirty-two bytes!").expect("kp");
        let (enc, mut s) =
            setup_sender(&recipient.public_key(), b"info", &[7u8; KEY_LEN]).expect("sender");
        let mut r = setup_receiver(&enc, &recipient, b"info").expect("receiver");
        let a = s.seal(b"a", b"one").expect("seal");
        let b = s.seal(b"b", b"two").expect("seal");
        // Out of order: b opened first fails, state unchanged, then both in order succeed.
        assert_eq!(r.open(b"b", &b), Err(HpkeError::OpenFailed));
        assert_eq!(r.open(b"a", &a).expect("a"), b"one");
        assert_eq!(r.open(b"b", &b).expect("b"), b"two");
        let (mut x, mut y) = ([0u8; 44], [0u8; 44]);
        s.export(b"ctx", &mut x).expect("export");
        r.export(b"ctx", &mut y).expect("export");
        assert_eq!(x, y);
        let mut z = [0u8; 44];
        r.export(b"other", &mut z).expect("export");
        assert_ne!(x, z);
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let recipient = KeyPair::derive(&[1u8; 32]).expect("kp");
        let other = KeyPair::derive(&[2u8; 32]).expect("kp");
        let (enc, mut s) =
            setup_sender(&recipient.public_key(), b"info", &[9u8; KEY_LEN]).expect("sender");
        let ct = s.seal(b"aad", b"secret body").expect("seal");
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let mut r = setup_receiver(&enc, &recipient, b"info").expect("receiver");
            assert_eq!(r.open(b"aad", &bad), Err(HpkeError::OpenFailed), "byte {i}");
        }
        let mut r = setup_receiver(&enc, &recipient, b"info").expect("receiver");
        assert_eq!(r.open(b"AAD", &ct), Err(HpkeError::OpenFailed));
        let mut wrong_info = setup_receiver(&enc, &recipient, b"other").expect("receiver");
        assert_eq!(wrong_info.open(b"aad", &ct), Err(HpkeError::OpenFailed));
        let mut wrong_key = setup_receiver(&enc, &other, b"info").expect("receiver");
        assert_eq!(wrong_key.open(b"aad", &ct), Err(HpkeError::OpenFailed));
    }

    #[test]
    fn low_order_and_malformed_keys_are_refused() {
        let recipient = KeyPair::derive(&[3u8; 32]).expect("kp");
        // u = 0 and u = 1 are of small order: the shared secret would be all zeros.
        let mut one = [0u8; KEY_LEN];
        one[0] = 1;
        for bad in [[0u8; KEY_LEN], one] {
            assert_eq!(
                setup_receiver(&bad, &recipient, b"").map(|_| ()),
                Err(HpkeError::InvalidPublicKey)
            );
            assert_eq!(
                setup_sender(&bad, b"", &[4u8; KEY_LEN]).map(|_| ()),
                Err(HpkeError::InvalidPublicKey)
            );
        }
        assert!(setup_receiver(&[5u8; 31], &recipient, b"").is_err());
        assert!(KeyPair::from_private_bytes(&[1u8; 31]).is_err());
    }
}
