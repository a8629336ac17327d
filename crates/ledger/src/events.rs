//! What blocks report: events for every state change a user may watch, and a receipt per
//! transaction.

use crate::types::Hyperparameter;
use agora_primitives::{AccountId, BlockNumber, Hash, NetUid};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Something that happened in a block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Event {
    /// Free balance moved.
    Transfer {
        /// Sender.
        from: AccountId,
        /// Recipient.
        to: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// A subnet was created.
    SubnetCreated {
        /// Its netuid.
        netuid: NetUid,
        /// Owner coldkey.
        owner: AccountId,
        /// Locked, rao.
        lock_rao: u64,
    },
    /// A hyperparameter changed.
    HyperparameterSet {
        /// Subnet.
        netuid: NetUid,
        /// New value.
        param: Hyperparameter,
    },
    /// A hotkey was registered.
    NeuronRegistered {
        /// Subnet.
        netuid: NetUid,
        /// Assigned uid.
        uid: u16,
        /// Hotkey.
        hotkey: AccountId,
        /// Burned, rao.
        burn_rao: u64,
    },
    /// A neuron was replaced by a new registration.
    NeuronPruned {
        /// Subnet.
        netuid: NetUid,
        /// Its uid.
        uid: u16,
        /// The hotkey that lost the slot.
        hotkey: AccountId,
    },
    /// An axon was published.
    AxonServed {
        /// Subnet.
        netuid: NetUid,
        /// Uid.
        uid: u16,
    },
    /// Stake added.
    StakeAdded {
        /// Staker.
        coldkey: AccountId,
        /// Hotkey.
        hotkey: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// Stake removed.
    StakeRemoved {
        /// Staker.
        coldkey: AccountId,
        /// Hotkey.
        hotkey: AccountId,
        /// Amount, rao.
        amount_rao: u64,
    },
    /// A delegate take changed.
    TakeSet {
        /// Hotkey.
        hotkey: AccountId,
        /// New take.
        take: u16,
    },
    /// Weights stored (directly or by reveal).
    WeightsSet {
        /// Subnet.
        netuid: NetUid,
        /// Uid.
        uid: u16,
    },
    /// A weight commit stored.
    WeightsCommitted {
        /// Subnet.
        netuid: NetUid,
        /// Uid.
        uid: u16,
        /// The commit.
        commit_hash: Hash,
    },
    /// An epoch ran and paid emission.
    EpochCompleted {
        /// Subnet.
        netuid: NetUid,
        /// Paid to the owner, rao.
        owner_cut_rao: u64,
        /// Paid to miners and validators, rao.
        paid_rao: u64,
    },
}

/// The outcome of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx_hash: Hash,
    /// `None` on success; the error code and message on failure.
    pub error: Option<(u16, String)>,
    /// Fee charged, rao.
    pub fee_rao: u64,
    /// Index range of this transaction's events in the block's event list.
    pub events: (u32, u32),
}

/// Events and receipts of a block, kept beside it in the block store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct BlockEvents {
    /// The block's height.
    pub number: BlockNumber,
    /// Events in order: the block's hooks first, then each transaction's.
    pub events: Vec<Event>,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
}
