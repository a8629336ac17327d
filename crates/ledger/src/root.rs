//! The state root: a lattice-based homomorphic multiset hash (LtHash) over every `(key, value)`
//! entry of the state, maintained incrementally.
//!
//! Each entry maps to 1024 16-bit lanes (BLAKE3 in XOF mode over a domain tag, the key's
//! length, the key and the value). The accumulator is the lane-wise sum, modulo 2^16, of all
//! entries. Changing an entry subtracts its old lanes and adds its new ones, so a block costs
//! O(entries it changed), not O(state). Finding two different states with the same
//! accumulator reduces to a short-vector problem on a lattice of dimension 1024 (the
//! construction and parameters that have been analysed for this use). The root in a block
//! header is BLAKE3 of the accumulator.
//!
//! What it does not give: inclusion proofs for light clients. A Merkle commitment can be added
//! beside it when a light client needs one.

use crate::kv::{KvError, StateDiff};

/// Lanes in the accumulator.
pub const LANES: usize = 1024;
const ENTRY_DOMAIN: &[u8] = b"agora/state-entry/v1";
const ROOT_DOMAIN: &[u8] = b"agora/state-root/v1";

/// Keys starting with this byte hold the ledger's own bookkeeping (the accumulator itself)
/// and are not part of the hashed state.
pub const UNHASHED_PREFIX: u8 = 0x00;

/// The multiset-hash accumulator.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LANES]>);

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.root())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0; LANES]))
    }
}

fn entry_lanes(key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new();
    h.update(ENTRY_DOMAIN);
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    let mut bytes = [0u8; LANES * 2];
    h.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [lo, hi] = *pair {
            *lane = u16::from_le_bytes([lo, hi]);
        }
    }
    lanes
}

impl LtHash {
    /// Adds an entry.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        let e = entry_lanes(key, value);
        for (a, b) in self.0.iter_mut().zip(e.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Removes an entry that was added before.
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        let e = entry_lanes(key, value);
        for (a, b) in self.0.iter_mut().zip(e.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// The 32-byte root committed in block headers.
    pub fn root(&self) -> agora_primitives::Hash {
        let mut h = blake3::Hasher::new();
        h.update(ROOT_DOMAIN);
        h.update(&self.to_bytes());
        agora_primitives::Hash(*h.finalize().as_bytes())
    }

    /// Little-endian lanes, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// Reads a stored accumulator; `None` if the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LANES * 2 {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            if let [lo, hi] = *pair {
                *lane = u16::from_le_bytes([lo, hi]);
            }
        }
        Some(LtHash(lanes))
    }

    /// Folds a block's diff into the accumulator. `old` reads an entry's value before the
    /// block. Keys under [`UNHASHED_PREFIX`] are skipped.
    pub fn apply_diff(
        &mut self,
        diff: &StateDiff,
        mut old: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, KvError>,
    ) -> Result<(), KvError> {
        for (key, new) in diff {
            if key.first() == Some(&UNHASHED_PREFIX) {
                continue;
            }
            let before = old(key)?;
            if before.as_deref() == new.as_deref() {
                continue;
            }
            if let Some(v) = before {
                self.remove(key, &v);
            }
            if let Some(v) = new {
                self.insert(key, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_removable() {
        let mut a = LtHash::default();
        a.insert(b"k1", b"v1");
        a.insert(b"k2", b"v2");
        let mut b = LtHash::default();
        b.insert(b"k2", b"v2");
        b.insert(b"k1", b"v1");
        assert_eq!(a, b);
        b.insert(b"k3", b"v3");
        assert_ne!(a.root(), b.root());
        b.remove(b"k3", b"v3");
        assert_eq!(a.root(), b.root());
        // The key/value boundary is part of the hash.
        let mut c = LtHash::default();
        c.insert(b"k", b"1v1");
        let mut d = LtHash::default();
        d.insert(b"k1", b"v1");
        assert_ne!(c, d);
        assert_eq!(LtHash::from_bytes(&a.to_bytes()), Some(a));
    }
}
