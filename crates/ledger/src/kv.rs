//! The storage contract the ledger runs over, and the write buffers that make a transaction
//! or a block all-or-nothing.
//!
//! The ledger never writes to a [`KvStore`] directly: it reads through an [`Overlay`], and a
//! block's result is a [`StateDiff`] that the host commits atomically (one redb write
//! transaction in `agora-store`, a `BTreeMap` in [`MemKv`]).

use std::collections::BTreeMap;
use std::ops::Bound;

/// A failure of the storage underneath the ledger (I/O, corruption). Never caused by a
/// transaction's content; the host treats it as fatal for the block being processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct KvError(pub String);

/// Key-value pairs in ascending key order, as prefix scans return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered key-value state, read-only from the ledger's point of view.
pub trait KvStore {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Every entry whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError>;
}

/// Changes to apply on top of a store: `Some(v)` writes, `None` deletes. Ordered, so that
/// applying it and hashing it are deterministic.
pub type StateDiff = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An in-memory [`KvStore`] for tests, tools and replay checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemKv {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a block's diff.
    pub fn apply(&mut self, diff: &StateDiff) {
        for (k, v) in diff {
            match v {
                Some(v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                None => {
                    self.map.remove(k);
                }
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl KvStore for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        Ok(self
            .map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// A write buffer over a base store. Reads see the buffer first. Two levels are used: one
/// per block, and one per transaction on top of it, dropped when the transaction fails.
#[derive(Debug)]
pub struct Overlay<'a, S: KvStore + ?Sized> {
    base: &'a S,
    block: StateDiff,
    tx: StateDiff,
}

impl<'a, S: KvStore + ?Sized> Overlay<'a, S> {
    /// An empty buffer over `base`.
    pub fn new(base: &'a S) -> Self {
        Overlay {
            base,
            block: StateDiff::new(),
            tx: StateDiff::new(),
        }
    }

    /// The value under `key`, as the current transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(v) = self.tx.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.block.get(key) {
            return Ok(v.clone());
        }
        self.base.get(key)
    }

    /// The value under `key` in the base store, ignoring every buffered change.
    pub fn get_base(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.base.get(key)
    }

    /// Writes into the current transaction's buffer.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.tx.insert(key, Some(value));
    }

    /// Deletes in the current transaction's buffer.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.tx.insert(key, None);
    }

    /// Every live entry under `prefix`, merging base, block and transaction buffers.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .base
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for layer in [&self.block, &self.tx] {
            for (k, v) in layer.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded)) {
                if !k.starts_with(prefix) {
                    break;
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Keeps the current transaction's writes.
    pub fn commit_tx(&mut self) {
        let tx = std::mem::take(&mut self.tx);
        self.block.extend(tx);
    }

    /// Drops the current transaction's writes.
    pub fn rollback_tx(&mut self) {
        self.tx.clear();
    }

    /// The block's accumulated changes (the open transaction, if any, is dropped).
    pub fn into_diff(self) -> StateDiff {
        self.block
    }

    /// The block's accumulated changes so far.
    pub fn block_diff(&self) -> &StateDiff {
        &self.block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_layers_and_rollback() {
        let mut base = MemKv::new();
        base.apply(&StateDiff::from([
            (b"a1".to_vec(), Some(b"x".to_vec())),
            (b"a2".to_vec(), Some(b"y".to_vec())),
        ]));
        let mut o = Overlay::new(&base);
        o.put(b"a3".to_vec(), b"z".to_vec());
        o.delete(b"a1".to_vec());
        o.commit_tx();
        o.put(b"a2".to_vec(), b"lost".to_vec());
        o.rollback_tx();
        assert_eq!(o.get(b"a1").unwrap(), None);
        assert_eq!(o.get(b"a2").unwrap(), Some(b"y".to_vec()));
        let scan: Vec<_> = o
            .scan_prefix(b"a")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(scan, vec![b"a2".to_vec(), b"a3".to_vec()]);
        let diff = o.into_diff();
        base.apply(&diff);
        assert_eq!(base.len(), 2);
    }
}
