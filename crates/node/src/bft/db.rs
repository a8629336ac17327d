//! What consensus keeps beside the chain: the commit certificate of every decided block
//! (served to syncing peers) and the full blocks of undecided proposals (so that a value
//! the WAL brings back after a crash can still be committed, and re-streamed).

use agora_primitives::Hash;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("commit_certificates");
const PROPOSALS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("proposals");

/// A stored proposal: where it was proposed and the SCALE-encoded block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredProposal {
    pub(crate) height: u64,
    pub(crate) round: i64,
    pub(crate) valid_round: i64,
    pub(crate) proposer: [u8; 32],
    pub(crate) block: Vec<u8>,
}

impl StoredProposal {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(56 + self.block.len());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.round.to_le_bytes());
        out.extend_from_slice(&self.valid_round.to_le_bytes());
        out.extend_from_slice(&self.proposer);
        out.extend_from_slice(&self.block);
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 56 {
            return None;
        }
        let u = |i: usize| -> Option<[u8; 8]> { b.get(i..i + 8)?.try_into().ok() };
        Some(StoredProposal {
            height: u64::from_le_bytes(u(0)?),
            round: i64::from_le_bytes(u(8)?),
            valid_round: i64::from_le_bytes(u(16)?),
            proposer: b.get(24..56)?.try_into().ok()?,
            block: b.get(56..)?.to_vec(),
        })
    }
}

/// Why the consensus database failed.
#[derive(Debug, thiserror::Error)]
#[error("consensus database: {0}")]
pub(crate) struct DbError(String);

fn db_err(e: impl std::fmt::Display) -> DbError {
    DbError(e.to_string())
}

/// The consensus database (`consensus.redb` in the data directory).
#[derive(Debug)]
pub(crate) struct ConsensusDb {
    db: Database,
}

impl ConsensusDb {
    pub(crate) fn open(path: &Path) -> Result<Self, DbError> {
        let db = Database::create(path).map_err(db_err)?;
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(CERTS).map_err(db_err)?;
        w.open_table(PROPOSALS).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        Ok(ConsensusDb { db })
    }

    /// Stores the certificate of `height` durably (before its block is committed, so a
    /// committed block always has its certificate).
    pub(crate) fn put_cert(&self, height: u64, cert: &[u8]) -> Result<(), DbError> {
        let mut w = self.db.begin_write().map_err(db_err)?;
        w.set_durability(Durability::Immediate).map_err(db_err)?;
        w.open_table(CERTS)
            .map_err(db_err)?
            .insert(height, cert)
            .map_err(db_err)?;
        w.commit().map_err(db_err)
    }

    pub(crate) fn cert(&self, height: u64) -> Result<Option<Vec<u8>>, DbError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(CERTS).map_err(db_err)?;
        Ok(t.get(height).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Stores a proposal's block durably before consensus hears of it.
    pub(crate) fn put_proposal(&self, hash: &Hash, p: &StoredProposal) -> Result<(), DbError> {
        let mut w = self.db.begin_write().map_err(db_err)?;
        w.set_durability(Durability::Immediate).map_err(db_err)?;
        w.open_table(PROPOSALS)
            .map_err(db_err)?
            .insert(&hash.0, p.encode().as_slice())
            .map_err(db_err)?;
        w.commit().map_err(db_err)
    }

    pub(crate) fn proposal(&self, hash: &Hash) -> Result<Option<StoredProposal>, DbError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(PROPOSALS).map_err(db_err)?;
        Ok(t.get(&hash.0)
            .map_err(db_err)?
            .and_then(|v| StoredProposal::decode(v.value())))
    }

    /// Stored proposals of one height and round, with their hashes.
    pub(crate) fn proposals_at(
        &self,
        height: u64,
        round: i64,
    ) -> Result<Vec<(Hash, StoredProposal)>, DbError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(PROPOSALS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if let Some(p) = StoredProposal::decode(v.value()) {
                if p.height == height && p.round == round {
                    out.push((Hash(*k.value()), p));
                }
            }
        }
        Ok(out)
    }

    /// Forgets proposals at or below `height` (decided or superseded).
    pub(crate) fn prune_proposals(&self, height: u64) -> Result<(), DbError> {
        let mut w = self.db.begin_write().map_err(db_err)?;
        w.set_durability(Durability::None).map_err(db_err)?;
        {
            let mut t = w.open_table(PROPOSALS).map_err(db_err)?;
            let mut stale = Vec::new();
            for item in t.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                if StoredProposal::decode(v.value()).is_none_or(|p| p.height <= height) {
                    stale.push(*k.value());
                }
            }
            for k in stale {
                t.remove(&k).map_err(db_err)?;
            }
        }
        w.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_and_certificates_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let p = StoredProposal {
            height: 5,
            round: 1,
            valid_round: -1,
            proposer: [3; 32],
            block: vec![1, 2, 3],
        };
        {
            let db = ConsensusDb::open(&path).unwrap();
            db.put_proposal(&Hash([1; 32]), &p).unwrap();
            db.put_cert(5, b"cert").unwrap();
        }
        let db = ConsensusDb::open(&path).unwrap();
        assert_eq!(db.proposal(&Hash([1; 32])).unwrap(), Some(p.clone()));
        assert_eq!(db.proposals_at(5, 1).unwrap().len(), 1);
        assert!(db.proposals_at(5, 0).unwrap().is_empty());
        assert_eq!(db.cert(5).unwrap().as_deref(), Some(&b"cert"[..]));
        db.prune_proposals(5).unwrap();
        assert_eq!(db.proposal(&Hash([1; 32])).unwrap(), None);
    }
}
