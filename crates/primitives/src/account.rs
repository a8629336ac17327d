use crate::hashing::blake2_512;
use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// The SS58 address prefix Agora shows by default: 42, the generic Substrate prefix that
/// Bittensor also uses, so addresses read the same in both.
pub const SS58_PREFIX: u16 = 42;

/// An account: a 32-byte sr25519 public key. Coldkeys and hotkeys are both `AccountId`s.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, MaxEncodedLen,
)]
pub struct AccountId(pub [u8; 32]);

/// Why a string is not an SS58 address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    /// Not base58.
    #[error("not base58")]
    BadBase58,
    /// Decoded to a length no 32-byte account address has.
    #[error("wrong length for an account address")]
    BadLength,
    /// The two checksum bytes do not match.
    #[error("checksum mismatch")]
    BadChecksum,
    /// A prefix outside 0..16384, or one of the reserved values.
    #[error("invalid address prefix")]
    BadPrefix,
}

const SS58_HASH_DOMAIN: &[u8] = b"SS58PRE";

fn ss58_checksum(body: &[u8]) -> [u8; 2] {
    let mut buf = Vec::with_capacity(SS58_HASH_DOMAIN.len() + body.len());
    buf.extend_from_slice(SS58_HASH_DOMAIN);
    buf.extend_from_slice(body);
    let h = blake2_512(&buf);
    [h[0], h[1]]
}

impl AccountId {
    /// The raw public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The SS58 address under `prefix`.
    pub fn to_ss58_with_prefix(&self, prefix: u16) -> String {
        let mut body = Vec::with_capacity(36);
        if prefix < 64 {
            body.push(prefix as u8);
        } else {
            // Two-byte form of the SS58 spec: 14 prefix bits spread over two bytes.
            let p = prefix & 0x3fff;
            body.push((((p & 0b0000_0000_1111_1100) >> 2) as u8) | 0b0100_0000);
            body.push(((p >> 8) as u8) | (((p & 0b11) as u8) << 6));
        }
        body.extend_from_slice(&self.0);
        let check = ss58_checksum(&body);
        body.extend_from_slice(&check);
        bs58::encode(body).into_string()
    }

    /// The SS58 address under Agora's prefix (42).
    pub fn to_ss58(&self) -> String {
        self.to_ss58_with_prefix(SS58_PREFIX)
    }

    /// Parses an SS58 address under any prefix, returning the account and its prefix.
    pub fn from_ss58_with_prefix(s: &str) -> Result<(Self, u16), Ss58Error> {
        let data = bs58::decode(s)
            .into_vec()
            .map_err(|_| Ss58Error::BadBase58)?;
        let (prefix, prefix_len) = match data.first() {
            Some(&b) if b < 64 => (u16::from(b), 1usize),
            Some(&b) if b < 128 => {
                let b1 = *data.get(1).ok_or(Ss58Error::BadLength)?;
                let lower = (u16::from(b) << 2) | (u16::from(b1) >> 6);
                let upper = u16::from(b1 & 0b0011_1111);
                ((lower & 0b0000_0000_1111_1111) | (upper << 8), 2usize)
            }
            Some(_) => return Err(Ss58Error::BadPrefix),
            None => return Err(Ss58Error::BadLength),
        };
        if data.len() != prefix_len + 32 + 2 {
            return Err(Ss58Error::BadLength);
        }
        let (body, check) = data.split_at(prefix_len + 32);
        if ss58_checksum(body) != check {
            return Err(Ss58Error::BadChecksum);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&body[prefix_len..]);
        Ok((AccountId(key), prefix))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

/// Accepts an SS58 address under any prefix, or `0x` followed by 64 hex digits.
impl FromStr for AccountId {
    type Err = Ss58Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(h) = s.strip_prefix("0x") {
            let mut key = [0u8; 32];
            hex::decode_to_slice(h, &mut key).map_err(|_| Ss58Error::BadLength)?;
            return Ok(AccountId(key));
        }
        Self::from_ss58_with_prefix(s).map(|(a, _)| a)
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Alice's well-known public key and address (Substrate dev account).
    const ALICE_HEX: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const ALICE_SS58: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    #[test]
    fn alice_address() {
        let mut key = [0u8; 32];
        hex::decode_to_slice(ALICE_HEX, &mut key).unwrap();
        let a = AccountId(key);
        assert_eq!(a.to_ss58(), ALICE_SS58);
        assert_eq!(ALICE_SS58.parse::<AccountId>(), Ok(a));
        assert_eq!(format!("0x{ALICE_HEX}").parse::<AccountId>(), Ok(a));
    }

    #[test]
    fn rejects_corrupted_addresses() {
        let mut bad = ALICE_SS58.to_owned();
        bad.replace_range(10..11, "z");
        assert_eq!(bad.parse::<AccountId>(), Err(Ss58Error::BadChecksum));
        assert_eq!("0OIl".parse::<AccountId>(), Err(Ss58Error::BadBase58));
        let short = bs58::encode([42u8; 20]).into_string();
        assert_eq!(short.parse::<AccountId>(), Err(Ss58Error::BadLength));
    }

    proptest::proptest! {
        #[test]
        fn ss58_round_trips(key: [u8; 32], prefix in 0u16..16384) {
            let a = AccountId(key);
            let s = a.to_ss58_with_prefix(prefix);
            proptest::prop_assert_eq!(AccountId::from_ss58_with_prefix(&s), Ok((a, prefix)));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<AccountId>();
        }
    }
}
