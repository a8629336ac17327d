//! Binding the enclave's HPKE public key to its attestation evidence.
//!
//! The enclave puts `SHA-512(KEY_BINDING_DOMAIN ‖ descriptor)` in the 64-byte report_data of
//! its quote or report. A verifier that accepts the evidence and recomputes the same value
//! from the public key it is about to encrypt to knows that only code with the measured
//! image holds the private key.

use sha2::{Digest, Sha512};

use crate::error::{Result, TeeError};
use crate::evidence::VerifiedEvidence;

/// Domain-separation tag for the key-binding hash.
pub const KEY_BINDING_DOMAIN: &[u8] = b"agora-tee-key-binding/v1";

/// HPKE KEM id of DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1.
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// HPKE KDF id of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// HPKE AEAD id of ChaCha20-Poly1305.
pub const AEAD_CHACHA20_POLY1305: u16 = 0x0003;

/// The public key an enclave binds to its evidence, with the full HPKE suite so that a
/// downgrade to another suite changes the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescriptor {
    /// HPKE KEM id.
    pub kem_id: u16,
    /// HPKE KDF id.
    pub kdf_id: u16,
    /// HPKE AEAD id.
    pub aead_id: u16,
    /// The serialised public key (32 bytes for X25519).
    pub public_key: Vec<u8>,
}

impl KeyDescriptor {
    /// The descriptor of an X25519 key for this crate's suite.
    pub fn x25519(public_key: &[u8]) -> Result<Self> {
        if public_key.len() != 32 {
            return Err(TeeError::InvalidKey(format!(
                "X25519 public key must be 32 bytes, got {}",
                public_key.len()
            )));
        }
        Ok(Self {
            kem_id: KEM_X25519_HKDF_SHA256,
            kdf_id: KDF_HKDF_SHA256,
            aead_id: AEAD_CHACHA20_POLY1305,
            public_key: public_key.to_vec(),
        })
    }

    /// Canonical encoding: `kem_id ‖ kdf_id ‖ aead_id ‖ len(pk) ‖ pk`, integers big-endian
    /// u16 (as in RFC 9180's suite ids).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let len = u16::try_from(self.public_key.len())
            .map_err(|_| TeeError::InvalidKey("public key longer than 65535 bytes".into()))?;
        let mut out = Vec::with_capacity(self.public_key.len().saturating_add(8));
        out.extend_from_slice(&self.kem_id.to_be_bytes());
        out.extend_from_slice(&self.kdf_id.to_be_bytes());
        out.extend_from_slice(&self.aead_id.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        Ok(out)
    }

    /// The 64 bytes the enclave must put in its report_data.
    pub fn report_data(&self) -> Result<[u8; 64]> {
        let mut h = Sha512::new();
        h.update(KEY_BINDING_DOMAIN);
        h.update(self.encode()?);
        Ok(h.finalize().into())
    }
}

/// Check that verified evidence commits to `key`.
pub fn check_binding(ev: &VerifiedEvidence, key: &KeyDescriptor) -> Result<()> {
    if ev.report_data == key.report_data()? {
        Ok(())
    } else {
        Err(TeeError::BindingMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_encoding_is_canonical() {
        let d = KeyDescriptor::x25519(&[0x11; 32]).unwrap();
        let e = d.encode().unwrap();
        assert_eq!(&e[..8], &[0x00, 0x20, 0x00, 0x01, 0x00, 0x03, 0x00, 0x20]);
        assert_eq!(&e[8..], &[0x11; 32]);
        // report_data = SHA-512(domain ‖ encoding), recomputed independently.
        let mut h = Sha512::new();
        h.update(b"agora-tee-key-binding/v1");
        h.update(&e);
        let expected: [u8; 64] = h.finalize().into();
        assert_eq!(d.report_data().unwrap(), expected);
        // Any change of key or suite changes the binding.
        let mut other = d.clone();
        other.aead_id = 0x0001;
        assert_ne!(other.report_data().unwrap(), expected);
        assert_ne!(
            KeyDescriptor::x25519(&[0x12; 32])
                .unwrap()
                .report_data()
                .unwrap(),
            expected
        );
        assert!(KeyDescriptor::x25519(&[0; 31]).is_err());
    }
}
