//! sr25519 keys exactly as Substrate (and so Bittensor) makes them.
//!
//! - Signatures use schnorrkel with the signing context `b"substrate"`.
//! - A BIP39 phrase becomes a key the Substrate way: the phrase's *entropy* (not the BIP39
//!   seed) goes through PBKDF2-HMAC-SHA512 with salt `"mnemonic" ‖ password`, 2048 rounds; the
//!   first 32 bytes are the mini secret key, expanded in Ed25519 mode.
//! - A derivation path (`//hard`, `/soft`) follows the phrase, as in `//Alice`: each junction's
//!   chain code is the SCALE encoding of its text (or its u64 value when it is a number),
//!   zero-padded to 32 bytes or BLAKE2b-256-hashed when longer.

use crate::{hashing::blake2_256, AccountId};
use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use schnorrkel::{
    derive::{ChainCode, Derivation},
    ExpansionMode, MiniSecretKey, SecretKey,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroize;

/// Substrate's signing context for sr25519.
pub const SIGNING_CONTEXT: &[u8] = b"substrate";

/// The phrase behind Substrate's well-known development accounts (`//Alice`, `//Bob`, ...).
/// Anyone can derive these keys: they exist for local networks only.
pub const DEV_PHRASE: &str =
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/// Why a key could not be made or a signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The phrase is not a valid English BIP39 mnemonic.
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    /// A derivation path that does not parse (e.g. an empty junction).
    #[error("invalid derivation path '{0}'")]
    Path(String),
    /// Bytes that are not a valid seed, secret or signature.
    #[error("invalid key material: {0}")]
    Material(&'static str),
}

/// A 64-byte sr25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode, MaxEncodedLen)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(self.0)))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(&s), &mut out)
            .map_err(serde::de::Error::custom)?;
        Ok(Signature(out))
    }
}

/// An sr25519 key pair. The secret is wiped from memory when the pair is dropped.
#[derive(Clone)]
pub struct Pair {
    keypair: schnorrkel::Keypair,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pair({})", self.account())
    }
}

impl Pair {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mini = MiniSecretKey::generate_with(rand_core::OsRng);
        Self::from_mini_secret(&mini)
    }

    /// The key for a 32-byte seed (Substrate's "raw seed", `0x...` in `subkey`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // A 32-byte slice always makes a mini secret key.
        match MiniSecretKey::from_bytes(seed) {
            Ok(mini) => Self::from_mini_secret(&mini),
            Err(_) => unreachable!("32 bytes are always a valid mini secret"),
        }
    }

    fn from_mini_secret(mini: &MiniSecretKey) -> Self {
        Pair {
            keypair: mini.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// The key for a BIP39 phrase and optional password, as Substrate derives it.
    pub fn from_phrase(phrase: &str, password: Option<&str>) -> Result<Self, KeyError> {
        let mut seed = mini_secret_from_phrase(phrase, password)?;
        let pair = Self::from_seed(&seed);
        seed.zeroize();
        Ok(pair)
    }

    /// A secret URI: `<phrase or 0x-seed>[//hard][/soft]...[///password]`, or a bare path
    /// such as `//Alice` which applies to [`DEV_PHRASE`].
    pub fn from_uri(uri: &str) -> Result<Self, KeyError> {
        let (rest, password) = match uri.split_once("///") {
            Some((r, p)) => (r, Some(p)),
            None => (uri, None),
        };
        let path_start = rest.find('/').unwrap_or(rest.len());
        let (phrase, path) = rest.split_at(path_start);
        let phrase = phrase.trim();
        let base = if phrase.is_empty() {
            Self::from_phrase(DEV_PHRASE, password)?
        } else if let Some(h) = phrase.strip_prefix("0x") {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(h, &mut seed)
                .map_err(|_| KeyError::Material("seed is not 32 hex bytes"))?;
            Self::from_seed(&seed)
        } else {
            Self::from_phrase(phrase, password)?
        };
        base.derive(path)
    }

    /// Applies a derivation path such as `//agora/0`.
    pub fn derive(&self, path: &str) -> Result<Self, KeyError> {
        let mut secret: SecretKey = self.keypair.secret.clone();
        for (hard, junction) in parse_path(path)? {
            let cc = ChainCode(chain_code(junction));
            secret = if hard {
                secret
                    .hard_derive_mini_secret_key(Some(cc), b"")
                    .0
                    .expand(ExpansionMode::Ed25519)
            } else {
                secret.derived_key_simple(cc, []).0
            };
        }
        Ok(Pair {
            keypair: secret.to_keypair(),
        })
    }

    /// The public key as an account.
    pub fn account(&self) -> AccountId {
        AccountId(self.keypair.public.to_bytes())
    }

    /// Signs `message` under Substrate's context.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let ctx = schnorrkel::signing_context(SIGNING_CONTEXT);
        Signature(self.keypair.sign(ctx.bytes(message)).to_bytes())
    }

    /// The 64-byte expanded secret key followed by the 32-byte public key, the layout
    /// Bittensor keyfiles store as `privateKey` ‖ `publicKey`.
    pub fn to_ed25519_expanded_bytes(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..64].copy_from_slice(&self.keypair.secret.to_ed25519_bytes());
        out[64..].copy_from_slice(&self.keypair.public.to_bytes());
        out
    }

    /// The inverse of [`Pair::to_ed25519_expanded_bytes`] for the 64-byte secret part.
    pub fn from_ed25519_expanded_secret(secret: &[u8]) -> Result<Self, KeyError> {
        let s = SecretKey::from_ed25519_bytes(secret)
            .map_err(|_| KeyError::Material("expanded secret key"))?;
        Ok(Pair {
            keypair: s.to_keypair(),
        })
    }
}

/// Checks an sr25519 `signature` of `message` by `signer` under Substrate's context.
pub fn verify(signer: &AccountId, message: &[u8], signature: &Signature) -> bool {
    let Ok(public) = schnorrkel::PublicKey::from_bytes(signer.as_bytes()) else {
        return false;
    };
    let Ok(sig) = schnorrkel::Signature::from_bytes(&signature.0) else {
        return false;
    };
    public.verify_simple(SIGNING_CONTEXT, message, &sig).is_ok()
}

/// The 32-byte mini secret Substrate derives from a phrase (see the module docs).
pub fn mini_secret_from_phrase(phrase: &str, password: Option<&str>) -> Result<[u8; 32], KeyError> {
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, phrase)
        .map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    let mut entropy = mnemonic.to_entropy();
    let salt = format!("mnemonic{}", password.unwrap_or(""));
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&entropy, salt.as_bytes(), 2048, &mut out);
    entropy.zeroize();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&out[..32]);
    out.zeroize();
    Ok(seed)
}

fn parse_path(path: &str) -> Result<Vec<(bool, &str)>, KeyError> {
    let mut junctions = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let (hard, tail) = if let Some(t) = rest.strip_prefix("//") {
            (true, t)
        } else if let Some(t) = rest.strip_prefix('/') {
            (false, t)
        } else {
            return Err(KeyError::Path(path.to_owned()));
        };
        let end = tail.find('/').unwrap_or(tail.len());
        let (junction, next) = tail.split_at(end);
        if junction.is_empty() {
            return Err(KeyError::Path(path.to_owned()));
        }
        junctions.push((hard, junction));
        rest = next;
    }
    Ok(junctions)
}

fn chain_code(junction: &str) -> [u8; 32] {
    let encoded = match junction.parse::<u64>() {
        Ok(n) => n.encode(),
        Err(_) => junction.encode(),
    };
    let mut cc = [0u8; 32];
    if encoded.len() > 32 {
        cc = blake2_256(&encoded);
    } else {
        cc[..encoded.len()].copy_from_slice(&encoded);
    }
    cc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_substrate() {
        let alice = Pair::from_uri("//Alice").unwrap();
        assert_eq!(
            alice.account().to_ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let bob = Pair::from_uri("//Bob").unwrap();
        assert_eq!(
            bob.account().to_ss58(),
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
        );
    }

    #[test]
    fn bip39_test_mnemonic_matches_substrate() {
        let p = Pair::from_phrase(
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            None,
        )
        .unwrap();
        assert_eq!(
            p.account().to_ss58(),
            "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe"
        );
    }

    #[test]
    fn sign_and_verify() {
        let p = Pair::from_uri("//Alice").unwrap();
        let sig = p.sign(b"agora");
        assert!(verify(&p.account(), b"agora", &sig));
        assert!(!verify(&p.account(), b"agorb", &sig));
        let bob = Pair::from_uri("//Bob").unwrap();
        assert!(!verify(&bob.account(), b"agora", &sig));
    }

    #[test]
    fn expanded_secret_round_trips() {
        let p = Pair::from_uri("//Alice").unwrap();
        let bytes = p.to_ed25519_expanded_bytes();
        let q = Pair::from_ed25519_expanded_secret(&bytes[..64]).unwrap();
        assert_eq!(p.account(), q.account());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            Pair::from_phrase("not a phrase", None),
            Err(KeyError::Mnemonic(_))
        ));
        assert!(matches!(
            Pair::from_uri("//Alice//"),
            Err(KeyError::Path(_))
        ));
        assert!(matches!(
            Pair::from_uri("0x1234"),
            Err(KeyError::Material(_))
        ));
    }
}
