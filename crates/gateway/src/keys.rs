//! API keys: a JSON file of key hashes with per-key limits. Keys themselves are never stored;
//! a request's bearer token is hashed (SHA-256) and looked up.
//!
//! ```json
//! {"keys": [
//!   {"name": "alice", "sha256": "<64 hex digits>", "requests_per_minute": 600, "burst": 60,
//!    "token_quota": 1000000}
//! ]}
//! ```
//!
//! `burst` defaults to a tenth of a minute's requests (at least 1); `token_quota` (total
//! prompt + completion tokens over the key's life) defaults to none.

use crate::GatewayError;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{collections::HashMap, path::Path, sync::Arc};

/// How generated keys start, so they are recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "sk-agora-";

/// One key's settings as written in the keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// A unique name: usage is accounted under it.
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// Sustained requests per minute.
    pub requests_per_minute: u32,
    /// Requests allowed at once after a quiet period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Total tokens the key may use, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_quota: Option<u64>,
}

/// The keys file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The keys.
    pub keys: Vec<KeySpec>,
}

/// A known key, as the server uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its name.
    pub name: String,
    /// Sustained requests per minute.
    pub requests_per_minute: u32,
    /// Bucket size.
    pub burst: u32,
    /// Total token quota, if any.
    pub token_quota: Option<u64>,
}

/// The SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: [`KEY_PREFIX`] and 32 random bytes in hex.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// The keys by hash.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    by_hash: HashMap<[u8; 32], Arc<ApiKey>>,
}

impl KeyStore {
    /// Checks a parsed keys file: hashes well-formed and unique, names unique and non-empty,
    /// rates positive.
    pub fn from_file(file: &KeyFile) -> Result<Self, GatewayError> {
        let bad = |m: String| GatewayError::Keys(m);
        let mut by_hash = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, k) in file.keys.iter().enumerate() {
            if k.name.is_empty() || k.name.len() > 128 {
                return Err(bad(format!("key {i}: name must be 1 to 128 bytes")));
            }
            if !names.insert(k.name.as_str()) {
                return Err(bad(format!("key {i}: name {:?} is used twice", k.name)));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&k.sha256, &mut hash)
                .map_err(|_| bad(format!("key {:?}: sha256 must be 64 hex digits", k.name)))?;
            if k.requests_per_minute == 0 {
                return Err(bad(format!(
                    "key {:?}: requests_per_minute must be positive",
                    k.name
                )));
            }
            let burst = k
                .burst
                .unwrap_or_else(|| (k.requests_per_minute / 10).max(1));
            if burst == 0 {
                return Err(bad(format!("key {:?}: burst must be positive", k.name)));
            }
            let key = ApiKey {
                name: k.name.clone(),
                requests_per_minute: k.requests_per_minute,
                burst,
                token_quota: k.token_quota,
            };
            if by_hash.insert(hash, Arc::new(key)).is_some() {
                return Err(bad(format!(
                    "key {:?}: the same key is listed twice",
                    k.name
                )));
            }
        }
        Ok(KeyStore { by_hash })
    }

    /// Reads and checks a keys file.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        KeyStore::from_file(&read_key_file(path)?)
    }

    /// The key a bearer token names, if any.
    pub fn lookup(&self, token: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.get(&hash_key(token)).cloned()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Reads a keys file (a missing file is an error).
pub fn read_key_file(path: &Path) -> Result<KeyFile, GatewayError> {
    let text = std::fs::read(path).map_err(|e| GatewayError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| GatewayError::Keys(format!("{}: {e}", path.display())))
}

/// Adds a new key named `name` to the keys file at `path` (created if missing) and returns the
/// key, which is shown once and stored nowhere.
pub fn add_key(
    path: &Path,
    name: &str,
    requests_per_minute: u32,
    burst: Option<u32>,
    token_quota: Option<u64>,
) -> Result<String, GatewayError> {
    let mut file = if path.exists() {
        read_key_file(path)?
    } else {
        KeyFile::default()
    };
    let key = generate_key();
    file.keys.push(KeySpec {
        name: name.to_owned(),
        sha256: hex::encode(hash_key(&key)),
        requests_per_minute,
        burst,
        token_quota,
    });
    KeyStore::from_file(&file)?;
    let text = serde_json::to_vec_pretty(&file).map_err(|e| GatewayError::Keys(e.to_string()))?;
    crate::usage::write_atomically(path, &text)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, key: &str) -> KeySpec {
        KeySpec {
            name: name.into(),
            sha256: hex::encode(hash_key(key)),
            requests_per_minute: 60,
            burst: None,
            token_quota: None,
        }
    }

    #[test]
    fn lookup_by_hash_and_checks() {
        let store = KeyStore::from_file(&KeyFile {
            keys: vec![spec("a", "k1"), spec("b", "k2")],
        })
        .unwrap();
        assert_eq!(store.lookup("k1").unwrap().name, "a");
        assert_eq!(store.lookup("k2").unwrap().burst, 6);
        assert!(store.lookup("k3").is_none());
        let dup_name = KeyFile {
            keys: vec![spec("a", "k1"), spec("a", "k2")],
        };
        assert!(KeyStore::from_file(&dup_name).is_err());
        let dup_key = KeyFile {
            keys: vec![spec("a", "k1"), spec("b", "k1")],
        };
        assert!(KeyStore::from_file(&dup_key).is_err());
        let mut bad_hash = spec("a", "k1");
        bad_hash.sha256 = "zz".into();
        assert!(KeyStore::from_file(&KeyFile {
            keys: vec![bad_hash]
        })
        .is_err());
    }

    #[test]
    fn add_key_stores_only_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let a = add_key(&path, "a", 60, None, Some(100)).unwrap();
        let b = add_key(&path, "b", 120, Some(5), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&a) && !text.contains(&b));
        let store = KeyStore::load(&path).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.lookup(&a).unwrap().token_quota, Some(100));
        assert_eq!(store.lookup(&b).unwrap().burst, 5);
        // A second key with a used name is refused and leaves the file as it was.
        assert!(add_key(&path, "a", 60, None, None).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn generated_keys_are_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        assert_ne!(a, b);
    }
}
