//! Usage accounting per key: requests and tokens, kept in memory and written to a JSON file
//! periodically and at shutdown.

use crate::GatewayError;
use agora_openai::Usage;
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// What one key has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// Requests that reached a miner or were refused by validation.
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Prompt tokens, from the miners' `usage`.
    pub prompt_tokens: u64,
    /// Completion tokens, from the miners' `usage`.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsageFile {
    version: u32,
    keys: BTreeMap<String, KeyUsage>,
}

/// Usage by key name.
///
/// **Bound.** One entry per key name that made a request, names coming from the keys file
/// only (plus names loaded from an earlier usage file).
#[derive(Debug)]
pub struct UsageBook {
    keys: Mutex<BTreeMap<String, KeyUsage>>,
    path: Option<PathBuf>,
    dirty: Mutex<bool>,
}

impl UsageBook {
    /// A book persisted at `path` (loaded from it when it exists), or in memory only.
    pub fn open(path: Option<PathBuf>) -> Result<Self, GatewayError> {
        let keys = match &path {
            Some(p) if p.exists() => {
                let bytes = std::fs::read(p).map_err(|e| GatewayError::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                let file: UsageFile = serde_json::from_slice(&bytes)
                    .map_err(|e| GatewayError::UsageFile(format!("{}: {e}", p.display())))?;
                file.keys
            }
            _ => BTreeMap::new(),
        };
        Ok(UsageBook {
            keys: Mutex::new(keys),
            path,
            dirty: Mutex::new(false),
        })
    }

    /// Records one request of `name`: its outcome and, when known, its token counts.
    pub fn record(&self, name: &str, ok: bool, usage: Option<&Usage>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match keys.get_mut(name) {
            Some(e) => e,
            None => keys.entry(name.to_owned()).or_default(),
        };
        entry.requests = entry.requests.saturating_add(1);
        if !ok {
            entry.errors = entry.errors.saturating_add(1);
        }
        if let Some(u) = usage {
            entry.prompt_tokens = entry.prompt_tokens.saturating_add(u.prompt_tokens);
            entry.completion_tokens = entry.completion_tokens.saturating_add(u.completion_tokens);
            entry.total_tokens = entry
                .total_tokens
                .saturating_add(u.prompt_tokens.saturating_add(u.completion_tokens));
        }
        drop(keys);
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// What `name` has used so far.
    pub fn get(&self, name: &str) -> KeyUsage {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(name).copied().unwrap_or_default()
    }

    /// Every key's usage.
    pub fn all(&self) -> BTreeMap<String, KeyUsage> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the book to its file if anything changed since the last write.
    pub fn flush(&self) -> Result<(), GatewayError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            if !*dirty {
                return Ok(());
            }
            *dirty = false;
        }
        let file = UsageFile {
            version: 1,
            keys: self.all(),
        };
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| GatewayError::UsageFile(e.to_string()))?;
        write_atomically(path, &bytes).inspect_err(|_| {
            *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves either
/// the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), GatewayError> {
    let io = |e| GatewayError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let book = UsageBook::open(Some(path.clone())).unwrap();
        book.record("a", true, Some(&Usage::new(3, 4)));
        book.record("a", false, None);
        book.flush().unwrap();
        let again = UsageBook::open(Some(path)).unwrap();
        assert_eq!(
            again.get("a"),
            KeyUsage {
                requests: 2,
                errors: 1,
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            }
        );
        assert_eq!(again.get("b"), KeyUsage::default());
    }
}
