//! What the RPC methods take and return.

use agora_ledger::events::{Event, Receipt};
use agora_ledger::query::MetagraphNeuron;
use agora_ledger::types::SubnetInfo;
use agora_ledger::{Block, Header};
use agora_primitives::{AccountId, BlockNumber, Hash, NetUid};
use serde::{Deserialize, Serialize};

/// JSON-RPC error codes the node uses besides the ledger's. Codes below 1000 are
/// [`agora_ledger::TxError::code`] values: the transaction itself is refused.
pub mod codes {
    /// The mempool is full; retry later.
    pub const MEMPOOL_FULL: i32 = 1001;
    /// The same transaction is already pending.
    pub const ALREADY_KNOWN: i32 = 1002;
    /// Another transaction with this signer and nonce is pending (raise the tip to replace
    /// it).
    pub const NONCE_TAKEN: i32 = 1003;
    /// The nonce is further ahead of the account's than the mempool keeps.
    pub const NONCE_TOO_FAR: i32 = 1004;
    /// The account has too many pending transactions.
    pub const ACCOUNT_LIMIT: i32 = 1005;
    /// `agora_submitAndWait` gave up waiting; the transaction may still be included.
    pub const WAIT_TIMEOUT: i32 = 1006;
    /// The node is shutting down.
    pub const SHUTTING_DOWN: i32 = 1007;
    /// The node's storage failed.
    pub const STORAGE: i32 = 1100;
    /// A parameter is invalid (JSON-RPC's own code).
    pub const INVALID_PARAMS: i32 = -32602;
}

/// A committed header and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// Height.
    pub number: BlockNumber,
    /// The header's hash.
    pub hash: Hash,
    /// The header.
    pub header: Header,
}

/// A stored block and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The header's hash.
    pub hash: Hash,
    /// The block.
    pub block: Block,
}

/// A block by height or by hash (`0x`-hex string).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockId {
    /// Height.
    Number(BlockNumber),
    /// Header hash.
    Hash(Hash),
}

/// Why a transaction was refused or failed: a stable code and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxFailure {
    /// [`agora_ledger::TxError::code`], or one of [`codes`].
    pub code: i32,
    /// Human-readable reason.
    pub message: String,
}

/// One transaction's outcome in `agora_submitBatch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOutcome {
    /// The hash, when admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    /// The reason, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TxFailure>,
}

/// A transaction in a committed block, and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// The transaction.
    pub tx_hash: Hash,
    /// The block that holds it.
    pub block_number: BlockNumber,
    /// That block's hash.
    pub block_hash: Hash,
    /// Position in the block.
    pub index: u32,
    /// True when the call succeeded; a failed fee-paying call still pays its fee.
    pub success: bool,
    /// The call's error when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TxFailure>,
    /// Fee charged, rao.
    pub fee_rao: u64,
    /// Events the transaction emitted.
    pub events: Vec<Event>,
}

impl TxReceipt {
    /// The receipt of the transaction at `index` of a block, from its stored events.
    pub fn from_block_events(
        block_hash: Hash,
        number: BlockNumber,
        index: u32,
        receipt: &Receipt,
        events: &[Event],
    ) -> TxReceipt {
        let (start, end) = receipt.events;
        let slice = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| events.get(s..e))
            .unwrap_or(&[]);
        TxReceipt {
            tx_hash: receipt.tx_hash,
            block_number: number,
            block_hash,
            index,
            success: receipt.error.is_none(),
            error: receipt.error.as_ref().map(|(code, message)| TxFailure {
                code: i32::from(*code),
                message: message.clone(),
            }),
            fee_rao: receipt.fee_rao,
            events: slice.to_vec(),
        }
    }
}

/// A block's events and receipts, with its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEventsInfo {
    /// Height.
    pub number: BlockNumber,
    /// The header's hash.
    pub hash: Hash,
    /// Events in order: hooks first, then each transaction's.
    pub events: Vec<Event>,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
}

/// A subnet and its netuid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetEntry {
    /// Its netuid.
    pub netuid: NetUid,
    /// Its record.
    pub subnet: SubnetInfo,
}

/// A subnet's neurons at a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metagraph {
    /// Subnet.
    pub netuid: NetUid,
    /// The head it was read at.
    pub block: BlockNumber,
    /// Neurons in uid order.
    pub neurons: Vec<MetagraphNeuron>,
}

/// Stake of a coldkey on one hotkey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeEntry {
    /// The hotkey.
    pub hotkey: AccountId,
    /// Staked, rao.
    pub stake_rao: u64,
}
