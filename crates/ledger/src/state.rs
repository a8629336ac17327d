//! Typed access to the ledger's state over an [`Overlay`], and the key schema.
//!
//! Keys are a 4-byte table tag followed by fixed-width big-endian ids, so prefix scans come
//! out in id order. Values are SCALE. The only key outside the hashed state is the state-root
//! accumulator (see [`crate::root`]).

use crate::error::BlockError;
use crate::kv::{KvStore, Overlay};
use crate::types::*;
use crate::TxError;
use agora_primitives::{
    codec::{Decode, Encode},
    AccountId, Hash, NetUid,
};

/// A failure while executing a call: either the call's own error, or a fatal one that stops
/// the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The transaction fails; its writes are dropped.
    Tx(TxError),
    /// Storage or state corruption: the block cannot be processed.
    Fatal(BlockError),
}

impl From<TxError> for ExecError {
    fn from(e: TxError) -> Self {
        ExecError::Tx(e)
    }
}

impl From<BlockError> for ExecError {
    fn from(e: BlockError) -> Self {
        ExecError::Fatal(e)
    }
}

impl From<crate::kv::KvError> for ExecError {
    fn from(e: crate::kv::KvError) -> Self {
        ExecError::Fatal(BlockError::Storage(e))
    }
}

/// Key schema. Public so that stores and tools can read state without the ledger.
pub mod keys {
    use agora_primitives::{AccountId, NetUid};

    /// The state-root accumulator (not hashed into itself).
    pub const LTHASH: &[u8] = b"\x00lthash";
    /// [`crate::types::ChainParams`].
    pub const PARAMS: &[u8] = b"\x01params";
    /// The genesis hash.
    pub const GENESIS: &[u8] = b"\x00genesis";
    /// The chain's name, part of the genesis state.
    pub const CHAIN_NAME: &[u8] = b"\x01chain";
    /// [`crate::types::Totals`].
    pub const TOTALS: &[u8] = b"\x01totals";
    /// The BFT validator set, a `Vec<`[`crate::types::ConsensusValidator`]`>`; absent on a
    /// chain without one.
    pub const CONSENSUS_VALIDATORS: &[u8] = b"\x01bftvals";

    /// Table tags.
    pub const ACCOUNT: &[u8; 4] = b"acct";
    /// Subnets.
    pub const SUBNET: &[u8; 4] = b"snet";
    /// Neurons by (netuid, uid).
    pub const NEURON: &[u8; 4] = b"neur";
    /// Uid by (netuid, hotkey).
    pub const HOTKEY_UID: &[u8; 4] = b"huid";
    /// Hotkey ownership and take.
    pub const HOTKEY: &[u8; 4] = b"hkey";
    /// Stake by (hotkey, coldkey).
    pub const STAKE: &[u8; 4] = b"stak";
    /// Index of stake by (coldkey, hotkey), value empty.
    pub const COLD_STAKE: &[u8; 4] = b"cstk";
    /// Weight rows by (netuid, uid).
    pub const WEIGHTS: &[u8; 4] = b"wght";
    /// Bond rows by (netuid, uid).
    pub const BONDS: &[u8; 4] = b"bond";
    /// Pending weight commits by (netuid, hotkey).
    pub const COMMITS: &[u8; 4] = b"wcom";

    fn join(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// An account's key.
    pub fn account(a: &AccountId) -> Vec<u8> {
        join(&[ACCOUNT, a.as_bytes()])
    }
    /// A subnet's key.
    pub fn subnet(n: NetUid) -> Vec<u8> {
        join(&[SUBNET, &n.0.to_be_bytes()])
    }
    /// A neuron's key.
    pub fn neuron(n: NetUid, uid: u16) -> Vec<u8> {
        join(&[NEURON, &n.0.to_be_bytes(), &uid.to_be_bytes()])
    }
    /// Prefix of a subnet's neurons.
    pub fn neurons(n: NetUid) -> Vec<u8> {
        join(&[NEURON, &n.0.to_be_bytes()])
    }
    /// The uid index key.
    pub fn hotkey_uid(n: NetUid, hotkey: &AccountId) -> Vec<u8> {
        join(&[HOTKEY_UID, &n.0.to_be_bytes(), hotkey.as_bytes()])
    }
    /// A hotkey's record key.
    pub fn hotkey(h: &AccountId) -> Vec<u8> {
        join(&[HOTKEY, h.as_bytes()])
    }
    /// A stake entry's key.
    pub fn stake(hotkey: &AccountId, coldkey: &AccountId) -> Vec<u8> {
        join(&[STAKE, hotkey.as_bytes(), coldkey.as_bytes()])
    }
    /// Prefix of all stake on a hotkey.
    pub fn stakes_on(hotkey: &AccountId) -> Vec<u8> {
        join(&[STAKE, hotkey.as_bytes()])
    }
    /// The coldkey index key.
    pub fn cold_stake(coldkey: &AccountId, hotkey: &AccountId) -> Vec<u8> {
        join(&[COLD_STAKE, coldkey.as_bytes(), hotkey.as_bytes()])
    }
    /// Prefix of a coldkey's stake index.
    pub fn cold_stakes(coldkey: &AccountId) -> Vec<u8> {
        join(&[COLD_STAKE, coldkey.as_bytes()])
    }
    /// A weight row's key.
    pub fn weights(n: NetUid, uid: u16) -> Vec<u8> {
        join(&[WEIGHTS, &n.0.to_be_bytes(), &uid.to_be_bytes()])
    }
    /// A bond row's key.
    pub fn bonds(n: NetUid, uid: u16) -> Vec<u8> {
        join(&[BONDS, &n.0.to_be_bytes(), &uid.to_be_bytes()])
    }
    /// A commit list's key.
    pub fn commits(n: NetUid, hotkey: &AccountId) -> Vec<u8> {
        join(&[COMMITS, &n.0.to_be_bytes(), hotkey.as_bytes()])
    }
}

/// A sparse row as stored: `(uid, value)` pairs in stored order.
pub type Row = Vec<(u16, u16)>;

/// Typed reads and writes over an overlay.
#[derive(Debug)]
pub struct State<'a, S: KvStore + ?Sized> {
    /// The write buffer.
    pub ov: Overlay<'a, S>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> BlockError {
    BlockError::CorruptState(format!("{what}: {e}"))
}

impl<'a, S: KvStore + ?Sized> State<'a, S> {
    /// Typed state over `base`.
    pub fn new(base: &'a S) -> Self {
        State {
            ov: Overlay::new(base),
        }
    }

    /// Reads and decodes a value.
    pub fn read<T: Decode>(&self, key: &[u8]) -> Result<Option<T>, BlockError> {
        match self.ov.get(key)? {
            None => Ok(None),
            Some(bytes) => T::decode(&mut bytes.as_slice())
                .map(Some)
                .map_err(|e| corrupt("record", e)),
        }
    }

    /// Encodes and writes a value.
    pub fn write<T: Encode>(&mut self, key: Vec<u8>, value: &T) {
        self.ov.put(key, value.encode());
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ov.delete(key);
    }

    /// Chain parameters (present from genesis on).
    pub fn params(&self) -> Result<ChainParams, BlockError> {
        self.read(keys::PARAMS)?
            .ok_or_else(|| BlockError::CorruptState("no chain parameters (no genesis?)".into()))
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Result<Hash, BlockError> {
        self.read(keys::GENESIS)?
            .ok_or_else(|| BlockError::CorruptState("no genesis hash".into()))
    }

    /// The BFT validator set (empty on a chain without one).
    pub fn consensus_validators(&self) -> Result<Vec<ConsensusValidator>, BlockError> {
        Ok(self.read(keys::CONSENSUS_VALIDATORS)?.unwrap_or_default())
    }

    /// Chain totals.
    pub fn totals(&self) -> Result<Totals, BlockError> {
        Ok(self.read(keys::TOTALS)?.unwrap_or_default())
    }

    /// Writes chain totals.
    pub fn put_totals(&mut self, t: &Totals) {
        self.write(keys::TOTALS.to_vec(), t);
    }

    /// An account (default when it never existed).
    pub fn account(&self, a: &AccountId) -> Result<AccountInfo, BlockError> {
        Ok(self.read(&keys::account(a))?.unwrap_or_default())
    }

    /// Writes an account; an account back at its default is deleted so that empty accounts
    /// take no state.
    pub fn put_account(&mut self, a: &AccountId, info: &AccountInfo) {
        if *info == AccountInfo::default() {
            self.delete(keys::account(a));
        } else {
            self.write(keys::account(a), info);
        }
    }

    /// A subnet, or `UnknownSubnet`.
    pub fn subnet(&self, n: NetUid) -> Result<SubnetInfo, ExecError> {
        self.read(&keys::subnet(n))?
            .ok_or(ExecError::Tx(TxError::UnknownSubnet(n.0)))
    }

    /// A subnet if it exists.
    pub fn subnet_opt(&self, n: NetUid) -> Result<Option<SubnetInfo>, BlockError> {
        self.read(&keys::subnet(n))
    }

    /// Writes a subnet.
    pub fn put_subnet(&mut self, n: NetUid, s: &SubnetInfo) {
        self.write(keys::subnet(n), s);
    }

    /// Every subnet, in netuid order.
    pub fn subnets(&self) -> Result<Vec<(NetUid, SubnetInfo)>, BlockError> {
        let mut out = Vec::new();
        for (k, v) in self.ov.scan_prefix(keys::SUBNET)? {
            let id = k
                .get(4..6)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .map(u16::from_be_bytes)
                .ok_or_else(|| corrupt("subnet key", "short"))?;
            let s = SubnetInfo::decode(&mut v.as_slice()).map_err(|e| corrupt("subnet", e))?;
            out.push((NetUid(id), s));
        }
        Ok(out)
    }

    /// A neuron, or `UnknownUid`.
    pub fn neuron(&self, n: NetUid, uid: u16) -> Result<NeuronInfo, ExecError> {
        self.read(&keys::neuron(n, uid))?
            .ok_or(ExecError::Tx(TxError::UnknownUid { netuid: n.0, uid }))
    }

    /// Writes a neuron.
    pub fn put_neuron(&mut self, n: NetUid, uid: u16, info: &NeuronInfo) {
        self.write(keys::neuron(n, uid), info);
    }

    /// Every neuron of a subnet in uid order.
    pub fn neurons(&self, n: NetUid) -> Result<Vec<NeuronInfo>, BlockError> {
        self.ov
            .scan_prefix(&keys::neurons(n))?
            .into_iter()
            .map(|(_, v)| NeuronInfo::decode(&mut v.as_slice()).map_err(|e| corrupt("neuron", e)))
            .collect()
    }

    /// The uid of `hotkey` on subnet `n`.
    pub fn uid_of(&self, n: NetUid, hotkey: &AccountId) -> Result<Option<u16>, BlockError> {
        self.read(&keys::hotkey_uid(n, hotkey))
    }

    /// A hotkey's record.
    pub fn hotkey(&self, h: &AccountId) -> Result<Option<HotkeyInfo>, BlockError> {
        self.read(&keys::hotkey(h))
    }

    /// Writes a hotkey's record.
    pub fn put_hotkey(&mut self, h: &AccountId, info: &HotkeyInfo) {
        self.write(keys::hotkey(h), info);
    }

    /// Stake of `coldkey` on `hotkey`, rao.
    pub fn stake(&self, hotkey: &AccountId, coldkey: &AccountId) -> Result<u64, BlockError> {
        Ok(self.read(&keys::stake(hotkey, coldkey))?.unwrap_or(0))
    }

    /// Sets stake of `coldkey` on `hotkey`, keeping the coldkey index in step.
    pub fn put_stake(&mut self, hotkey: &AccountId, coldkey: &AccountId, rao: u64) {
        if rao == 0 {
            self.delete(keys::stake(hotkey, coldkey));
            self.delete(keys::cold_stake(coldkey, hotkey));
        } else {
            self.write(keys::stake(hotkey, coldkey), &rao);
            self.ov.put(keys::cold_stake(coldkey, hotkey), Vec::new());
        }
    }

    /// Every (coldkey, stake) on a hotkey, in coldkey order.
    pub fn stakes_on(&self, hotkey: &AccountId) -> Result<Vec<(AccountId, u64)>, BlockError> {
        let mut out = Vec::new();
        for (k, v) in self.ov.scan_prefix(&keys::stakes_on(hotkey))? {
            let cold = account_suffix(&k)?;
            let amount = u64::decode(&mut v.as_slice()).map_err(|e| corrupt("stake", e))?;
            out.push((cold, amount));
        }
        Ok(out)
    }

    /// Every hotkey a coldkey stakes on, in hotkey order.
    pub fn hotkeys_staked_by(&self, coldkey: &AccountId) -> Result<Vec<AccountId>, BlockError> {
        self.ov
            .scan_prefix(&keys::cold_stakes(coldkey))?
            .into_iter()
            .map(|(k, _)| account_suffix(&k))
            .collect()
    }

    /// A weight row.
    pub fn weights(&self, n: NetUid, uid: u16) -> Result<Row, BlockError> {
        Ok(self.read(&keys::weights(n, uid))?.unwrap_or_default())
    }

    /// Writes a weight row; an empty row is deleted.
    pub fn put_weights(&mut self, n: NetUid, uid: u16, row: &Row) {
        if row.is_empty() {
            self.delete(keys::weights(n, uid));
        } else {
            self.write(keys::weights(n, uid), row);
        }
    }

    /// A bond row.
    pub fn bonds(&self, n: NetUid, uid: u16) -> Result<Row, BlockError> {
        Ok(self.read(&keys::bonds(n, uid))?.unwrap_or_default())
    }

    /// Writes a bond row; an empty row is deleted.
    pub fn put_bonds(&mut self, n: NetUid, uid: u16, row: &Row) {
        if row.is_empty() {
            self.delete(keys::bonds(n, uid));
        } else {
            self.write(keys::bonds(n, uid), row);
        }
    }

    /// Pending commits of a hotkey.
    pub fn commits(&self, n: NetUid, hotkey: &AccountId) -> Result<Vec<WeightCommit>, BlockError> {
        Ok(self.read(&keys::commits(n, hotkey))?.unwrap_or_default())
    }

    /// Writes pending commits; none left deletes the entry.
    pub fn put_commits(&mut self, n: NetUid, hotkey: &AccountId, c: &[WeightCommit]) {
        if c.is_empty() {
            self.delete(keys::commits(n, hotkey));
        } else {
            self.write(keys::commits(n, hotkey), &c.to_vec());
        }
    }
}

fn account_suffix(key: &[u8]) -> Result<AccountId, BlockError> {
    let start = key
        .len()
        .checked_sub(32)
        .ok_or_else(|| corrupt("key", "short"))?;
    key.get(start..)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(AccountId)
        .ok_or_else(|| corrupt("key", "short"))
}
