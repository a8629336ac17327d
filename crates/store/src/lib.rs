//! Durable storage for the Agora ledger, on redb.
//!
//! One database file holds the state (the ledger's key-value pairs), every block, its events
//! and receipts, a transaction index and the head. [`Store::commit_block`] writes all of a
//! block in one redb write transaction with immediate durability: after it returns the block
//! survives a crash, and a crash before it returns leaves the previous head intact. There is
//! no moment at which a block is half-applied.
//!
//! [`Snapshot`] is a consistent read view implementing [`agora_ledger::KvStore`]; block
//! production reads one while RPC readers read others.
//!
//! [`replay`] re-executes every stored block into a fresh store and checks each state root.

use agora_ledger::{
    execute_block, kv::Entries, Block, BlockEvents, ExecutedBlock, GenesisConfig, Header, KvError,
    KvStore, SignatureCheck,
};
use agora_primitives::{
    codec::{Decode, Encode},
    Hash,
};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const BLOCK_BY_HASH: TableDefinition<&[u8], u64> = TableDefinition::new("block_by_hash");
const TX_INDEX: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("tx_index");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEAD: &str = "head";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: redb::DatabaseError,
    },
    /// A read or write failed in redb.
    #[error("database error: {0}")]
    Db(String),
    /// Stored bytes that do not decode: the file is corrupt or from another version.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The database holds a different chain than the genesis asked for.
    #[error("the data directory holds chain {stored}, not {expected}: use another --data-dir")]
    GenesisMismatch {
        /// Stored genesis hash.
        stored: String,
        /// Expected genesis hash.
        expected: String,
    },
    /// The database has no genesis yet.
    #[error("the database is empty (no genesis)")]
    Empty,
    /// A block that does not extend the head.
    #[error("block {got} does not extend head {head}")]
    NotNext {
        /// The block's number.
        got: u64,
        /// The head's number.
        head: u64,
    },
    /// Re-execution failed or disagreed.
    #[error(transparent)]
    Block(#[from] agora_ledger::BlockError),
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

fn decode<T: Decode>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    T::decode(&mut &bytes[..]).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The ledger's durable store. Cloning is cheap; all clones share one database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // Create every table so that readers never meet a missing one.
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(STATE).map_err(db_err)?;
        w.open_table(BLOCKS).map_err(db_err)?;
        w.open_table(EVENTS).map_err(db_err)?;
        w.open_table(BLOCK_BY_HASH).map_err(db_err)?;
        w.open_table(TX_INDEX).map_err(db_err)?;
        w.open_table(META).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Opens the database and commits `genesis` if it is empty; refuses a database that
    /// holds another chain.
    pub fn open_or_init(path: &Path, genesis: &GenesisConfig) -> Result<Store, StoreError> {
        let store = Store::open(path)?;
        let g = genesis.build()?;
        match store.head_opt()? {
            None => store.write_block(&g)?,
            Some(_) => {
                let stored = store.genesis_hash()?;
                let expected = g.block.header.hash();
                if stored != expected {
                    return Err(StoreError::GenesisMismatch {
                        stored: stored.to_hex(),
                        expected: expected.to_hex(),
                    });
                }
            }
        }
        Ok(store)
    }

    fn head_opt(&self) -> Result<Option<Header>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let meta = r.open_table(META).map_err(db_err)?;
        match meta.get(HEAD).map_err(db_err)? {
            None => Ok(None),
            Some(v) => decode("head", v.value()).map(Some),
        }
    }

    /// The latest committed header.
    pub fn head(&self) -> Result<Header, StoreError> {
        self.head_opt()?.ok_or(StoreError::Empty)
    }

    /// The hash of block 0.
    pub fn genesis_hash(&self) -> Result<Hash, StoreError> {
        self.block(0)?
            .map(|b| b.header.hash())
            .ok_or(StoreError::Empty)
    }

    /// A consistent read view of the state at the current head.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let state = r.open_table(STATE).map_err(db_err)?;
        Ok(Snapshot { state })
    }

    /// Durably commits a block, its state changes, events and indexes in one transaction.
    pub fn commit_block(&self, b: &ExecutedBlock) -> Result<(), StoreError> {
        let head = self.head()?;
        let n = b.block.header.number;
        if n != head.number.saturating_add(1) || b.block.header.parent_hash != head.hash() {
            return Err(StoreError::NotNext {
                got: n,
                head: head.number,
            });
        }
        self.write_block(b)
    }

    fn write_block(&self, b: &ExecutedBlock) -> Result<(), StoreError> {
        let mut w = self.db.begin_write().map_err(db_err)?;
        w.set_durability(Durability::Immediate).map_err(db_err)?;
        {
            let mut state = w.open_table(STATE).map_err(db_err)?;
            for (k, v) in &b.diff {
                match v {
                    Some(v) => {
                        state.insert(k.as_slice(), v.as_slice()).map_err(db_err)?;
                    }
                    None => {
                        state.remove(k.as_slice()).map_err(db_err)?;
                    }
                }
            }
            let n = b.block.header.number;
            let hash = b.block.header.hash();
            w.open_table(BLOCKS)
                .map_err(db_err)?
                .insert(n, b.block.encode().as_slice())
                .map_err(db_err)?;
            w.open_table(EVENTS)
                .map_err(db_err)?
                .insert(n, b.events.encode().as_slice())
                .map_err(db_err)?;
            w.open_table(BLOCK_BY_HASH)
                .map_err(db_err)?
                .insert(hash.0.as_slice(), n)
                .map_err(db_err)?;
            let mut txs = w.open_table(TX_INDEX).map_err(db_err)?;
            for (i, tx) in (0u32..).zip(b.block.txs.iter()) {
                txs.insert(tx.hash().0.as_slice(), (n, i)).map_err(db_err)?;
            }
            w.open_table(META)
                .map_err(db_err)?
                .insert(HEAD, b.block.header.encode().as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)
    }

    /// A stored block.
    pub fn block(&self, number: u64) -> Result<Option<Block>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(BLOCKS).map_err(db_err)?;
        let v = t.get(number).map_err(db_err)?;
        v.map(|v| decode("block", v.value())).transpose()
    }

    /// The number of the block with this hash.
    pub fn block_number_by_hash(&self, h: &Hash) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(BLOCK_BY_HASH).map_err(db_err)?;
        let v = t.get(h.0.as_slice()).map_err(db_err)?;
        Ok(v.map(|v| v.value()))
    }

    /// A block's events and receipts.
    pub fn events(&self, number: u64) -> Result<Option<BlockEvents>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(EVENTS).map_err(db_err)?;
        let v = t.get(number).map_err(db_err)?;
        v.map(|v| decode("events", v.value())).transpose()
    }

    /// Where a transaction was included: (block number, index in block).
    pub fn tx_location(&self, tx: &Hash) -> Result<Option<(u64, u32)>, StoreError> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(TX_INDEX).map_err(db_err)?;
        let v = t.get(tx.0.as_slice()).map_err(db_err)?;
        Ok(v.map(|v| v.value()))
    }
}

/// A consistent read-only view of the state.
pub struct Snapshot {
    state: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

impl KvStore for Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let v = self.state.get(key).map_err(|e| KvError(e.to_string()))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        let mut out = Vec::new();
        for item in self
            .state
            .range::<&[u8]>(prefix..)
            .map_err(|e| KvError(e.to_string()))?
        {
            let (k, v) = item.map_err(|e| KvError(e.to_string()))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

/// What [`replay`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// Blocks re-executed (genesis excluded).
    pub blocks: u64,
    /// The final state root, equal to the source's head.
    pub state_root: Hash,
}

/// Re-executes every block of `src` from genesis into a fresh store at `dst_path`, checking
/// every signature and state root. `progress(done, total)` is called after each block.
pub fn replay(
    src: &Store,
    dst_path: &Path,
    genesis: &GenesisConfig,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplayReport, StoreError> {
    let head = src.head()?;
    let dst = Store::open_or_init(dst_path, genesis)?;
    if dst.genesis_hash()? != src.genesis_hash()? {
        return Err(StoreError::GenesisMismatch {
            stored: src.genesis_hash()?.to_hex(),
            expected: dst.genesis_hash()?.to_hex(),
        });
    }
    let mut parent = dst.head()?;
    for n in parent.number.saturating_add(1)..=head.number {
        let block = src
            .block(n)?
            .ok_or_else(|| StoreError::Corrupt(format!("block {n} missing")))?;
        let snap = dst.snapshot()?;
        let out = execute_block(&snap, &parent, &block, SignatureCheck::Verify)?;
        dst.commit_block(&out)?;
        parent = out.block.header;
        progress(n, head.number);
    }
    Ok(ReplayReport {
        blocks: head.number,
        state_root: parent.state_root,
    })
}
