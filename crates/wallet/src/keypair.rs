//! What a key file holds, and its JSON form.
//!
//! bittensor-wallet writes one JSON object per file with the fields `accountId`, `publicKey`,
//! `privateKey`, `secretPhrase`, `secretSeed` and `ss58Address` (each optional; public files
//! have only the first, second and last). 4.1 adds `"cryptoType": 1`; this crate reads it but
//! does not write it, because 4.0 parses every field as a string and would reject the number.
//!
//! Reading follows bittensor's precedence: the phrase, else the seed, else the private key, else
//! the address. Unlike bittensor, the public fields are then checked against the secret, so a
//! damaged or hand-edited file is reported instead of silently giving another key.

use crate::WalletError;
use agora_primitives::crypto::{mini_secret_from_phrase, Pair, Signature};
use agora_primitives::AccountId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// The `cryptoType` bittensor-wallet 4.1 uses for sr25519.
const CRYPTO_TYPE_SR25519: u64 = 1;

/// A key as stored in one key file: always a public key, and the secret when the file has one.
#[derive(Clone)]
pub struct Keypair {
    account: AccountId,
    secret: Option<Secret>,
}

#[derive(Clone)]
struct Secret {
    pair: Pair,
    phrase: Option<Zeroizing<String>>,
    seed: Option<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.secret.is_some() {
            "secret"
        } else {
            "public"
        };
        write!(f, "Keypair({}, {kind})", self.account.to_ss58())
    }
}

impl Keypair {
    /// The key for a BIP39 phrase, derived as Substrate does (no BIP39 password); the phrase and
    /// seed are kept so the key file can store them as bittensor does.
    pub fn from_phrase(phrase: &str) -> Result<Self, WalletError> {
        let phrase = normalize_phrase(phrase);
        let seed = Zeroizing::new(
            mini_secret_from_phrase(&phrase, None)
                .map_err(|e| WalletError::InvalidInput(e.to_string()))?,
        );
        let pair = Pair::from_seed(&seed);
        Ok(Self::with_secret(pair, Some(phrase), Some(seed)))
    }

    /// The key for a 32-byte mini secret (bittensor's `secretSeed`, `--seed`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::with_secret(Pair::from_seed(seed), None, Some(Zeroizing::new(*seed)))
    }

    /// The key for a seed written in hex, with or without `0x`.
    pub fn from_seed_hex(seed_hex: &str) -> Result<Self, WalletError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        let hex = seed_hex.trim();
        hex::decode_to_slice(hex.strip_prefix("0x").unwrap_or(hex), seed.as_mut()).map_err(
            |_| WalletError::InvalidInput("a seed is 32 bytes of hex (64 digits)".into()),
        )?;
        Ok(Self::from_seed(&seed))
    }

    /// A key pair without phrase or seed (e.g. from a `//Alice` URI).
    pub fn from_pair(pair: Pair) -> Self {
        Self::with_secret(pair, None, None)
    }

    /// A public key only, as in `coldkeypub.txt`.
    pub fn public(account: AccountId) -> Self {
        Keypair {
            account,
            secret: None,
        }
    }

    fn with_secret(
        pair: Pair,
        phrase: Option<Zeroizing<String>>,
        seed: Option<Zeroizing<[u8; 32]>>,
    ) -> Self {
        Keypair {
            account: pair.account(),
            secret: Some(Secret { pair, phrase, seed }),
        }
    }

    /// The public key.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The public key as an SS58 address (prefix 42, as bittensor writes it).
    pub fn ss58_address(&self) -> String {
        self.account.to_ss58()
    }

    /// The secret key pair, if this is not a public-only key.
    pub fn pair(&self) -> Option<&Pair> {
        self.secret.as_ref().map(|s| &s.pair)
    }

    /// The secret key pair, consuming the key; `None` for a public-only key.
    pub fn into_pair(self) -> Option<Pair> {
        self.secret.map(|s| s.pair)
    }

    /// The mnemonic the key was made from, if known.
    pub fn phrase(&self) -> Option<&str> {
        self.secret
            .as_ref()
            .and_then(|s| s.phrase.as_deref())
            .map(String::as_str)
    }

    /// Whether the secret key is present.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Signs `message`; `None` for a public-only key.
    pub fn sign(&self, message: &[u8]) -> Option<Signature> {
        self.pair().map(|p| p.sign(message))
    }

    /// The same key without its secret, as written to `coldkeypub.txt` and `<hotkey>pub.txt`.
    pub fn to_public(&self) -> Self {
        Self::public(self.account)
    }

    /// The key file's JSON bytes (unencrypted).
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let public_hex = format!("0x{}", hex::encode(self.account.as_bytes()));
        let secret = self.secret.as_ref();
        let file = KeyfileJson {
            account_id: Some(public_hex.clone()),
            public_key: Some(public_hex),
            private_key: secret.map(|s| {
                format!(
                    "0x{}",
                    hex::encode(schnorrkel_secret_bytes(&s.pair).as_slice())
                )
            }),
            secret_phrase: secret
                .and_then(|s| s.phrase.as_ref())
                .map(|p| p.as_str().to_owned()),
            secret_seed: secret
                .and_then(|s| s.seed.as_ref())
                .map(|s| format!("0x{}", hex::encode(s.as_slice()))),
            ss58_address: Some(self.ss58_address()),
            crypto_type: None,
        };
        // Serialising plain strings into a Vec cannot fail; an empty object would be caught on
        // the next read, never silently used.
        Zeroizing::new(serde_json::to_vec(&file).unwrap_or_default())
    }

    /// Parses a key file's JSON bytes (after decryption); `path` only names the file in errors.
    pub fn from_json(data: &[u8], path: &Path) -> Result<Self, WalletError> {
        let file: KeyfileJson = serde_json::from_slice(data)
            .map_err(|e| WalletError::corrupt(path, format!("not a key file JSON object ({e})")))?;
        file.to_keypair(path)
    }
}

/// The 64-byte secret key as bittensor-wallet 4.x stores `privateKey`: schnorrkel's
/// `SecretKey::to_bytes` (canonical scalar ‖ nonce), which `sp_core::sr25519::Pair::to_raw_vec`
/// returns. Older Python bittensor stored the Ed25519-style form instead; both are read.
fn schnorrkel_secret_bytes(pair: &Pair) -> Zeroizing<[u8; 64]> {
    let mut expanded = Zeroizing::new(pair.to_ed25519_expanded_bytes());
    let mut out = Zeroizing::new([0u8; 64]);
    // Converting our own valid key back cannot fail; all zeros would fail the reader's check.
    if let Ok(secret) = schnorrkel::SecretKey::from_ed25519_bytes(&expanded[..64]) {
        out.copy_from_slice(&secret.to_bytes());
    }
    expanded.zeroize();
    out
}

fn pair_from_private_key(bytes: &[u8], expected: Option<AccountId>) -> Option<Pair> {
    match bytes.len() {
        32 => {
            let mut seed = Zeroizing::new([0u8; 32]);
            seed.copy_from_slice(bytes);
            Some(Pair::from_seed(&seed))
        }
        64 => {
            // bittensor-wallet 4.x form first, then the Ed25519-style form older tools wrote;
            // the public key, when present, decides between them.
            let canonical = schnorrkel::SecretKey::from_bytes(bytes)
                .ok()
                .and_then(|s| Pair::from_ed25519_expanded_secret(&s.to_ed25519_bytes()).ok());
            let ed25519 = Pair::from_ed25519_expanded_secret(bytes).ok();
            match (canonical, ed25519, expected) {
                (Some(c), _, Some(e)) if c.account() == e => Some(c),
                (_, Some(d), Some(e)) if d.account() == e => Some(d),
                (Some(c), _, _) => Some(c),
                (None, d, _) => d,
            }
        }
        _ => None,
    }
}

/// Collapses runs of whitespace so a pasted phrase matches what bittensor stores.
fn normalize_phrase(phrase: &str) -> Zeroizing<String> {
    Zeroizing::new(phrase.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The JSON object of a key file. Field order is fixed here; bittensor's is random.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyfileJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_phrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_seed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ss58_address: Option<String>,
    #[serde(default, skip_serializing)]
    crypto_type: Option<u64>,
}

impl Drop for KeyfileJson {
    fn drop(&mut self) {
        self.private_key.zeroize();
        self.secret_phrase.zeroize();
        self.secret_seed.zeroize();
    }
}

impl KeyfileJson {
    fn to_keypair(&self, path: &Path) -> Result<Keypair, WalletError> {
        if let Some(crypto_type) = self.crypto_type.filter(|t| *t != CRYPTO_TYPE_SR25519) {
            return Err(WalletError::UnsupportedCryptoType {
                path: path.to_path_buf(),
                crypto_type,
            });
        }
        let bad = |what: &str| WalletError::corrupt(path, what.to_owned());
        let claimed = self.claimed_account(path)?;
        let keypair = if let Some(phrase) = &self.secret_phrase {
            Keypair::from_phrase(phrase)
                .map_err(|_| bad("secretPhrase is not a valid BIP39 mnemonic"))?
        } else if let Some(seed) = &self.secret_seed {
            Keypair::from_seed_hex(seed).map_err(|_| bad("secretSeed is not 32 bytes of hex"))?
        } else if let Some(private_key) = &self.private_key {
            let hex = private_key.strip_prefix("0x").unwrap_or(private_key);
            let bytes = Zeroizing::new(hex::decode(hex).map_err(|_| bad("privateKey is not hex"))?);
            let pair = pair_from_private_key(&bytes, claimed)
                .ok_or_else(|| bad("privateKey is not a valid sr25519 secret"))?;
            Keypair::from_pair(pair)
        } else if let Some(account) = claimed {
            Keypair::public(account)
        } else {
            return Err(bad(
                "no secretPhrase, secretSeed, privateKey, ss58Address or publicKey",
            ));
        };
        match claimed {
            Some(account) if account != keypair.account => Err(bad(
                "the public key does not match the secret key in the same file",
            )),
            _ => Ok(keypair),
        }
    }

    /// The public key the file claims, after checking its public fields agree.
    fn claimed_account(&self, path: &Path) -> Result<Option<AccountId>, WalletError> {
        let mut claimed: Option<AccountId> = None;
        let mut agree = |account: AccountId| match claimed {
            Some(c) if c != account => Err(WalletError::corrupt(
                path,
                "ss58Address, publicKey and accountId disagree",
            )),
            _ => {
                claimed = Some(account);
                Ok(())
            }
        };
        if let Some(address) = &self.ss58_address {
            let (account, _prefix) = AccountId::from_ss58_with_prefix(address.trim())
                .map_err(|e| WalletError::corrupt(path, format!("ss58Address: {e}")))?;
            agree(account)?;
        }
        for (field, value) in [
            ("publicKey", &self.public_key),
            ("accountId", &self.account_id),
        ] {
            if let Some(value) = value {
                let account = parse_public_hex(value).ok_or_else(|| {
                    WalletError::corrupt(path, format!("{field} is not 32 bytes of hex"))
                })?;
                agree(account)?;
            }
        }
        Ok(claimed)
    }
}

/// A 32-byte public key in hex, with or without `0x`.
pub(crate) fn parse_public_hex(value: &str) -> Option<AccountId> {
    let value = value.trim();
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(value.strip_prefix("0x").unwrap_or(value), &mut bytes).ok()?;
    Some(AccountId(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHRASE: &str =
        "legal winner thank year wave sausage worth useful legal winner thank yellow";
    const ADDRESS: &str = "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe";
    // Written by bittensor-wallet 4.1.1 for PHRASE (its own JSON, fields reordered).
    const BT_PRIVATE_KEY: &str = "0xad8a44476e667ef8eab356d1d6f09303f21ba1ac44a3f8b96210bdd603d1900bb25d15f130020fffc3261f584f84168e7a6f0009f6c3abb2f3fa460f493b0595";
    const BT_SEED: &str = "0x6fa2796b0071cac425d8a7851038318c2c37dcebfe4bae73197ce93e75909bd2";
    const BT_PUBLIC: &str = "0x625e25364c7b68e0a83065ccb40afed43f8fe933e669b24f3d69a57eddb3b715";

    fn p() -> &'static Path {
        Path::new("test-keyfile")
    }

    #[test]
    fn phrase_gives_bittensor_fields() {
        let kp = Keypair::from_phrase(PHRASE).unwrap();
        assert_eq!(kp.ss58_address(), ADDRESS);
        let json: serde_json::Value = serde_json::from_slice(&kp.to_json()).unwrap();
        assert_eq!(json["accountId"], BT_PUBLIC);
        assert_eq!(json["publicKey"], BT_PUBLIC);
        assert_eq!(json["privateKey"], BT_PRIVATE_KEY);
        assert_eq!(json["secretPhrase"], PHRASE);
        assert_eq!(json["secretSeed"], BT_SEED);
        assert_eq!(json["ss58Address"], ADDRESS);
        assert!(json.get("cryptoType").is_none());
    }

    #[test]
    fn reads_each_source_of_the_key() {
        for body in [
            format!(r#"{{"secretPhrase":"{PHRASE}","cryptoType":1}}"#),
            format!(r#"{{"secretSeed":"{BT_SEED}"}}"#),
            format!(r#"{{"privateKey":"{BT_PRIVATE_KEY}","publicKey":"{BT_PUBLIC}"}}"#),
            format!(r#"{{"privateKey":"{BT_PRIVATE_KEY}"}}"#),
        ] {
            let kp = Keypair::from_json(body.as_bytes(), p()).unwrap();
            assert_eq!(kp.ss58_address(), ADDRESS, "{body}");
            assert!(kp.has_secret());
        }
        let public = format!(
            r#"{{"ss58Address":"{ADDRESS}","publicKey":"{BT_PUBLIC}","secretPhrase":null}}"#
        );
        let kp = Keypair::from_json(public.as_bytes(), p()).unwrap();
        assert_eq!(kp.ss58_address(), ADDRESS);
        assert!(!kp.has_secret());
        assert!(kp.sign(b"x").is_none());
    }

    #[test]
    fn reads_the_older_ed25519_style_private_key() {
        let kp = Keypair::from_phrase(PHRASE).unwrap();
        let old = kp.pair().unwrap().to_ed25519_expanded_bytes();
        let body = format!(
            r#"{{"privateKey":"0x{}","publicKey":"{BT_PUBLIC}"}}"#,
            hex::encode(&old[..64])
        );
        assert_eq!(
            Keypair::from_json(body.as_bytes(), p())
                .unwrap()
                .ss58_address(),
            ADDRESS
        );
    }

    #[test]
    fn json_round_trip() {
        let kp = Keypair::from_seed(&[5u8; 32]);
        let back = Keypair::from_json(&kp.to_json(), p()).unwrap();
        assert_eq!(back.account(), kp.account());
        let sig = back.sign(b"agora").unwrap();
        assert!(agora_primitives::crypto::verify(
            &kp.account(),
            b"agora",
            &sig
        ));
        let public = Keypair::from_json(&kp.to_public().to_json(), p()).unwrap();
        assert_eq!(public.account(), kp.account());
        assert!(!public.has_secret());
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"not json",
            b"[]",
            b"{}",
            b"\xff\xfe",
            br#"{"secretPhrase":"not a phrase"}"#,
            br#"{"secretSeed":"0x1234"}"#,
            br#"{"privateKey":"zz"}"#,
            br#"{"privateKey":"0x00"}"#,
            br#"{"ss58Address":"5Nope"}"#,
            br#"{"publicKey":"0x1234"}"#,
            br#"{"secretSeed":7}"#,
        ];
        for case in cases {
            let err = Keypair::from_json(case, p()).unwrap_err();
            assert!(
                matches!(err, WalletError::Corrupt { .. }),
                "{:?}: {err}",
                String::from_utf8_lossy(case)
            );
        }
        let mismatch = format!(
            r#"{{"secretSeed":"{BT_SEED}","ss58Address":"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}}"#
        );
        assert!(matches!(
            Keypair::from_json(mismatch.as_bytes(), p()),
            Err(WalletError::Corrupt { .. })
        ));
        let ed = format!(r#"{{"ss58Address":"{ADDRESS}","cryptoType":0}}"#);
        assert!(matches!(
            Keypair::from_json(ed.as_bytes(), p()),
            Err(WalletError::UnsupportedCryptoType { crypto_type: 0, .. })
        ));
    }

    #[test]
    fn phrase_whitespace_is_normalised() {
        let messy = format!("  {}  ", PHRASE.replace(' ', "   "));
        let kp = Keypair::from_phrase(&messy).unwrap();
        assert_eq!(kp.phrase(), Some(PHRASE));
        assert_eq!(kp.ss58_address(), ADDRESS);
    }

    proptest::proptest! {
        #[test]
        fn any_seed_round_trips_through_json(seed in proptest::array::uniform32(proptest::prelude::any::<u8>())) {
            let kp = Keypair::from_seed(&seed);
            let back = Keypair::from_json(&kp.to_json(), p()).unwrap();
            proptest::prop_assert_eq!(back.account(), kp.account());
            proptest::prop_assert!(back.has_secret());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = Keypair::from_json(&data, p());
        }

        #[test]
        fn arbitrary_objects_never_panic(
            fields in proptest::collection::vec(("[a-zA-Z]{1,12}", "(0x)?[0-9a-f]{0,130}"), 0..6)
        ) {
            let object: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            let _ = Keypair::from_json(&serde_json::to_vec(&object).unwrap(), p());
        }
    }
}
