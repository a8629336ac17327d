//! Encrypted key files: the `$NACL` format bittensor-wallet writes, and recognition of the older
//! formats it can still read.
//!
//! `$NACL` layout (bittensor-wallet 4.x, `keyfile.rs`): the five bytes `$NACL`, a 24-byte nonce,
//! then NaCl `crypto_secretbox_easy` output (16-byte Poly1305 tag, then the XSalsa20
//! ciphertext). The key is libsodium's `crypto_pwhash_argon2i` (Argon2i, version 0x13) of the
//! password with bittensor's fixed 16-byte salt, `OPSLIMIT_SENSITIVE` = 8 passes and
//! `MEMLIMIT_SENSITIVE` = 512 MiB, one lane, 32 bytes of output.

use crate::WalletError;
use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::{
    aead::{Aead, KeyInit},
    Key, Nonce, XSalsa20Poly1305,
};
use rand::RngCore;
use std::path::Path;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The prefix of a file in the `$NACL` format.
pub const NACL_PREFIX: &[u8] = b"$NACL";
/// The prefix of an Ansible Vault file (bittensor's encryption before `$NACL`).
pub const ANSIBLE_PREFIX: &[u8] = b"$ANSIBLE_VAULT";
/// The prefix of a legacy Fernet token (the first bittensor format): base64 of version byte
/// 0x80 followed by a timestamp whose high bytes are zero.
pub const LEGACY_PREFIX: &[u8] = b"gAAAAA";

/// Bittensor's fixed Argon2i salt for `$NACL` files.
const NACL_SALT: [u8; 16] = [
    0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1,
];
/// libsodium `crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE`: passes over memory.
const ARGON2I_OPSLIMIT_SENSITIVE: u32 = 8;
/// libsodium `crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE` (512 MiB), in KiB as Argon2 counts it.
const ARGON2I_MEMLIMIT_SENSITIVE_KIB: u32 = 512 * 1024;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// How a key file's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Plain JSON.
    None,
    /// `$NACL`: Argon2i + XSalsa20-Poly1305, what bittensor-wallet 4.x writes.
    Nacl,
    /// Ansible Vault 1.1 (AES-256-CTR, HMAC-SHA256), written by bittensor 3.x–6.x.
    AnsibleVault,
    /// A Fernet token (AES-128-CBC, HMAC-SHA256), the earliest bittensor format.
    LegacyFernet,
}

impl Encryption {
    /// Recognises the format from the file's first bytes, as bittensor-wallet does.
    pub fn detect(data: &[u8]) -> Self {
        if data.starts_with(NACL_PREFIX) {
            Encryption::Nacl
        } else if data.starts_with(ANSIBLE_PREFIX) {
            Encryption::AnsibleVault
        } else if data.starts_with(LEGACY_PREFIX) {
            Encryption::LegacyFernet
        } else {
            Encryption::None
        }
    }

    /// Whether a password is needed to read the file.
    pub fn is_encrypted(self) -> bool {
        self != Encryption::None
    }

    /// The format's name in words.
    pub fn name(self) -> &'static str {
        match self {
            Encryption::None => "unencrypted",
            Encryption::Nacl => "NaCl",
            Encryption::AnsibleVault => "Ansible Vault",
            Encryption::LegacyFernet => "legacy Fernet",
        }
    }
}

/// Argon2i at 512 MiB is the largest allocation in the crate; one derivation at a time keeps a
/// process (or a parallel test run) from multiplying it.
static KDF_LOCK: Mutex<()> = Mutex::new(());

/// The 32-byte secretbox key bittensor derives from a password.
fn derive_key(password: &[u8]) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let params = Params::new(
        ARGON2I_MEMLIMIT_SENSITIVE_KIB,
        ARGON2I_OPSLIMIT_SENSITIVE,
        1,
        Some(32),
    )
    .map_err(|e| WalletError::Crypto(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    // A poisoned lock only means another derivation panicked; the guard protects no data.
    let _guard = KDF_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    argon
        .hash_password_into(password, &NACL_SALT, key.as_mut())
        .map_err(|e| WalletError::Crypto(e.to_string()))?;
    Ok(key)
}

/// Encrypts `plaintext` into the `$NACL` format with a fresh random nonce.
pub fn nacl_encrypt(plaintext: &[u8], password: &str) -> Result<Vec<u8>, WalletError> {
    let key = derive_key(password.as_bytes())?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal(plaintext, &key, &nonce)
}

/// Decrypts a `$NACL` file; `path` only names the file in errors.
pub fn nacl_decrypt(
    data: &[u8],
    password: &str,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    let body = data
        .strip_prefix(NACL_PREFIX)
        .filter(|b| b.len() >= NONCE_LEN + TAG_LEN)
        .ok_or_else(|| WalletError::corrupt(path, "$NACL data is shorter than nonce and tag"))?;
    let key = derive_key(password.as_bytes())?;
    open(body, &key).ok_or_else(|| WalletError::WrongPassword(path.to_path_buf()))
}

fn seal(plaintext: &[u8], key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Result<Vec<u8>, WalletError> {
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key));
    // crypto_secretbox puts the tag first, as NaCl's `crypto_secretbox_easy` does.
    let sealed = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .map_err(|_| WalletError::Crypto("secretbox encryption".into()))?;
    let mut out = Vec::with_capacity(NACL_PREFIX.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(NACL_PREFIX);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens `nonce ‖ tag ‖ ciphertext`; `None` when the tag does not verify.
fn open(body: &[u8], key: &[u8; 32]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, sealed) = body.split_at_checked(NONCE_LEN)?;
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(Encryption::detect(b"$NACL\x00"), Encryption::Nacl);
        assert_eq!(
            Encryption::detect(b"$ANSIBLE_VAULT;1.1;AES256\n"),
            Encryption::AnsibleVault
        );
        assert_eq!(Encryption::detect(b"gAAAAABk"), Encryption::LegacyFernet);
        assert_eq!(Encryption::detect(b"{\"a\":1}"), Encryption::None);
        assert!(!Encryption::None.is_encrypted());
    }

    #[test]
    fn secretbox_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; NONCE_LEN];
        let sealed = seal(b"hello keyfile", &key, &nonce).unwrap();
        assert_eq!(sealed.len(), 5 + 24 + 16 + 13);
        let body = &sealed[5..];
        assert_eq!(open(body, &key).unwrap().as_slice(), b"hello keyfile");
        assert!(open(body, &[8u8; 32]).is_none());
        let mut bad = body.to_vec();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        assert!(open(&bad, &key).is_none());
        assert!(open(&body[..10], &key).is_none());
    }

    #[test]
    fn truncated_nacl_is_corrupt_not_a_panic() {
        let err = nacl_decrypt(b"$NACLshort", "pw", Path::new("k")).unwrap_err();
        assert!(matches!(err, WalletError::Corrupt { .. }), "{err}");
    }
}
