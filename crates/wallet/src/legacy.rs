//! Reading the encrypted formats bittensor wrote before `$NACL`, so old coldkeys still open.
//! This crate never writes them.
//!
//! - **Ansible Vault 1.1/1.2** (bittensor 3.x–6.x): the header `$ANSIBLE_VAULT;1.1;AES256`, then
//!   hex lines that decode to `hex(salt) \n hex(hmac) \n hex(ciphertext)`. PBKDF2-HMAC-SHA256 of
//!   the password, 10 000 rounds, gives 80 bytes: the AES-256 key, the HMAC-SHA256 key, and the
//!   initial 128-bit big-endian CTR counter. The plaintext carries PKCS#7 padding.
//! - **Fernet** (the first bittensor format): a URL-safe base64 token `0x80 ‖ time(8) ‖ iv(16) ‖
//!   AES-128-CBC ciphertext ‖ HMAC-SHA256(32)`; the 32-byte Fernet key (HMAC key, then AES key)
//!   is PBKDF2-HMAC-SHA256 of the password with bittensor's fixed salt and 10 000 000 rounds.

use crate::encryption::Encryption;
use crate::WalletError;
use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use zeroize::Zeroizing;

const ANSIBLE_PBKDF2_ROUNDS: u32 = 10_000;
const FERNET_PBKDF2_ROUNDS: u32 = 10_000_000;
/// The fixed salt of bittensor's Fernet key files.
const FERNET_SALT: &[u8] = b"Iguesscyborgslikemyselfhaveatendencytobeparanoidaboutourorigins";
const FERNET_VERSION: u8 = 0x80;

/// Decrypts an Ansible Vault or legacy Fernet key file.
pub(crate) fn decrypt(
    format: Encryption,
    data: &[u8],
    password: &str,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    match format {
        Encryption::AnsibleVault => ansible_decrypt(data, password, path),
        Encryption::LegacyFernet => {
            // A malformed token is reported before spending seconds on the key derivation.
            fernet_token(data, path)?;
            let mut key = Zeroizing::new([0u8; 32]);
            pbkdf2::pbkdf2_hmac::<Sha256>(
                password.as_bytes(),
                FERNET_SALT,
                FERNET_PBKDF2_ROUNDS,
                key.as_mut(),
            );
            fernet_decrypt(data, &key, path)
        }
        Encryption::Nacl | Encryption::None => Err(WalletError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: format!("{} is not a legacy format", format.name()),
        }),
    }
}

fn ansible_decrypt(
    data: &[u8],
    password: &str,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    let corrupt = |why: &str| WalletError::corrupt(path, format!("Ansible Vault: {why}"));
    let text = std::str::from_utf8(data).map_err(|_| corrupt("not text"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().trim().split(';').collect();
    match header.as_slice() {
        ["$ANSIBLE_VAULT", "1.1" | "1.2", "AES256", ..] => {}
        _ => {
            return Err(WalletError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: format!(
                    "Ansible Vault header '{}' (only 1.1/1.2 AES256)",
                    header.join(";")
                ),
            })
        }
    }
    let body_hex: String = lines.map(str::trim).collect();
    let body = hex::decode(body_hex).map_err(|_| corrupt("body is not hex"))?;
    let body = std::str::from_utf8(&body).map_err(|_| corrupt("body is not text"))?;
    let parts: Vec<Vec<u8>> = body
        .split('\n')
        .map(|p| hex::decode(p.trim()))
        .collect::<Result<_, _>>()
        .map_err(|_| corrupt("salt, HMAC or ciphertext is not hex"))?;
    let [salt, tag, ciphertext] = parts.as_slice() else {
        return Err(corrupt("expected salt, HMAC and ciphertext"));
    };

    let mut keys = Zeroizing::new([0u8; 80]);
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        salt,
        ANSIBLE_PBKDF2_ROUNDS,
        keys.as_mut(),
    );
    let (aes_key, rest) = keys.split_at(32);
    let (hmac_key, counter) = rest.split_at(32);

    let mut mac = Hmac::<Sha256>::new_from_slice(hmac_key).map_err(|_| corrupt("HMAC key"))?;
    mac.update(ciphertext);
    mac.verify_slice(tag)
        .map_err(|_| WalletError::WrongPassword(path.to_path_buf()))?;

    let mut plain = Zeroizing::new(ciphertext.clone());
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(aes_key, counter)
        .map_err(|_| corrupt("key size"))?;
    cipher.apply_keystream(&mut plain);
    let pad = usize::from(plain.last().copied().unwrap_or(0));
    let valid_pad = (1..=16).contains(&pad)
        && plain.len() >= pad
        && plain
            .get(plain.len() - pad..)
            .is_some_and(|tail| tail.iter().all(|&b| usize::from(b) == pad));
    if !valid_pad {
        return Err(corrupt("bad padding"));
    }
    let len = plain.len() - pad;
    plain.truncate(len);
    Ok(plain)
}

/// Opens a Fernet token with a 32-byte key (signing key, then encryption key).
fn fernet_decrypt(
    data: &[u8],
    key: &[u8; 32],
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    let token = fernet_token(data, path)?;
    let corrupt = |why: &str| WalletError::corrupt(path, format!("Fernet token: {why}"));
    let (signed, tag) = token.split_at(token.len() - 32);
    let (signing_key, encryption_key) = key.split_at(16);
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key).map_err(|_| corrupt("HMAC key"))?;
    mac.update(signed);
    mac.verify_slice(tag)
        .map_err(|_| WalletError::WrongPassword(path.to_path_buf()))?;
    let (iv, ciphertext) = signed.get(9..).unwrap_or_default().split_at(16);
    let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(encryption_key, iv)
        .map_err(|_| corrupt("key size"))?;
    decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| corrupt("bad padding"))
}

/// The decoded token, checked for version and length.
fn fernet_token(data: &[u8], path: &Path) -> Result<Vec<u8>, WalletError> {
    let corrupt = |why: &str| WalletError::corrupt(path, format!("Fernet token: {why}"));
    let engine = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let token = engine
        .decode(data.trim_ascii())
        .map_err(|_| corrupt("not URL-safe base64"))?;
    // version(1) + timestamp(8) + iv(16) + at least one block(16) + hmac(32)
    if token.len() < 1 + 8 + 16 + 16 + 32 || (token.len() - 1 - 8 - 16 - 32) % 16 != 0 {
        return Err(corrupt("wrong length"));
    }
    if token.first() != Some(&FERNET_VERSION) {
        return Err(corrupt("unknown version"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    const PLAIN: &str = r#"{"secretPhrase":"legal winner thank year wave sausage worth useful legal winner thank yellow"}"#;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
    }

    #[test]
    fn opens_bittensor_ansible_vault() {
        // Written by bittensor-wallet 4.1.1 `legacy_encrypt_keyfile_data(PLAIN, "ansible-pw")`.
        let data = fixture("ansible_vault_coldkey_ansible-pw");
        let p = Path::new("k");
        let plain = decrypt(Encryption::AnsibleVault, &data, "ansible-pw", p).unwrap();
        assert_eq!(plain.as_slice(), PLAIN.as_bytes());
        let wrong = decrypt(Encryption::AnsibleVault, &data, "ansible-px", p).unwrap_err();
        assert!(matches!(wrong, WalletError::WrongPassword(_)), "{wrong}");
        let mut cut = data.clone();
        cut.truncate(60);
        assert!(decrypt(Encryption::AnsibleVault, &cut, "ansible-pw", p).is_err());
    }

    #[test]
    fn opens_a_fernet_token_with_its_key() {
        // Made with Python `cryptography`: the key is bittensor's PBKDF2 of "fernet-pw"
        // (URL-safe base64 `CBIq7zKjJWHaZgnAvRt6gC6-XXBb6EHPUZIDDO30SuM=`); the whole path
        // through PBKDF2 is tested in tests/it/files.rs.
        let key_b64 = "CBIq7zKjJWHaZgnAvRt6gC6-XXBb6EHPUZIDDO30SuM=";
        let key_vec = base64::engine::general_purpose::URL_SAFE
            .decode(key_b64)
            .unwrap();
        let key: [u8; 32] = key_vec.try_into().unwrap();
        let data = fixture("legacy_fernet_coldkey_fernet-pw");
        let p = Path::new("k");
        assert_eq!(
            fernet_decrypt(&data, &key, p).unwrap().as_slice(),
            PLAIN.as_bytes()
        );
        let mut other = key;
        other[0] ^= 1;
        assert!(matches!(
            fernet_decrypt(&data, &other, p),
            Err(WalletError::WrongPassword(_))
        ));
        assert!(matches!(
            fernet_decrypt(b"gAAAAA", &key, p),
            Err(WalletError::Corrupt { .. })
        ));
        assert!(matches!(
            fernet_decrypt(b"gAAAAA!*", &key, p),
            Err(WalletError::Corrupt { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_legacy_data_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let p = Path::new("k");
            let mut ansible = b"$ANSIBLE_VAULT;1.1;AES256\n".to_vec();
            ansible.extend_from_slice(&tail);
            let _ = decrypt(Encryption::AnsibleVault, &ansible, "pw", p);
            let mut fernet = b"gAAAAA".to_vec();
            fernet.extend_from_slice(&tail);
            let _ = fernet_decrypt(&fernet, &[1u8; 32], p);
        }

        #[test]
        fn well_formed_ansible_bodies_never_panic(
            salt in "[0-9a-f]{0,64}", tag in "[0-9a-f]{0,64}", ct in "[0-9a-f]{0,96}"
        ) {
            let body = hex::encode(format!("{salt}\n{tag}\n{ct}"));
            let data = format!("$ANSIBLE_VAULT;1.1;AES256\n{body}");
            let _ = decrypt(Encryption::AnsibleVault, data.as_bytes(), "pw", Path::new("k"));
        }
    }
}
