//! The JSON-RPC interface between a node and its clients, defined once: the `jsonrpsee`
//! macro generates the client (always) and the server trait (feature `server`, used by
//! `agora-node`), so the two can never disagree on names or shapes.

use crate::types::{
    BlockEventsInfo, BlockId, BlockInfo, HeadInfo, Metagraph, StakeEntry, SubmitOutcome,
    SubnetEntry, TxReceipt,
};
use agora_ledger::query::MetagraphNeuron;
use agora_ledger::types::{AccountInfo, ChainParams, ConsensusValidator, SubnetInfo};
use agora_primitives::Hash;
// The client-only expansion rewrites the return types, leaving this import to the server's.
#[cfg_attr(not(feature = "server"), allow(unused_imports))]
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;

/// The `agora_*` JSON-RPC methods. Accounts are SS58 strings, hashes `0x`-hex, transactions
/// `0x`-hex of their SCALE encoding, amounts rao as JSON numbers.
#[cfg_attr(not(feature = "server"), rpc(client, namespace = "agora"))]
#[cfg_attr(feature = "server", rpc(client, server, namespace = "agora"))]
pub trait AgoraApi {
    /// Admits a transaction into the mempool and returns its hash. This acknowledges
    /// admission only; use `agora_receipt` or `agora_submitAndWait` for inclusion.
    #[method(name = "submitTransaction")]
    async fn submit_transaction(&self, tx_hex: String) -> RpcResult<Hash>;

    /// Admits many transactions at once (signatures batch-verified); one outcome each,
    /// in order.
    #[method(name = "submitBatch")]
    async fn submit_batch(&self, txs_hex: Vec<String>) -> RpcResult<Vec<SubmitOutcome>>;

    /// Admits a transaction and answers once it is in a durably committed block (or was
    /// dropped, or `timeout_ms` passed: default 30 s, at most 300 s).
    #[method(name = "submitAndWait")]
    async fn submit_and_wait(
        &self,
        tx_hex: String,
        timeout_ms: Option<u64>,
    ) -> RpcResult<TxReceipt>;

    /// The receipt of an included transaction; `null` if it is not in a committed block.
    #[method(name = "receipt")]
    async fn receipt(&self, tx_hash: Hash) -> RpcResult<Option<TxReceipt>>;

    /// An account's nonce and free balance.
    #[method(name = "account")]
    async fn account(&self, ss58: String) -> RpcResult<AccountInfo>;

    /// The nonce a new transaction of this account should carry: state nonce plus the
    /// account's consecutive pending transactions.
    #[method(name = "nextNonce")]
    async fn next_nonce(&self, ss58: String) -> RpcResult<u64>;

    /// The chain's identity, signed into every transaction.
    #[method(name = "genesisHash")]
    async fn genesis_hash(&self) -> RpcResult<Hash>;

    /// Chain-wide parameters.
    #[method(name = "chainParams")]
    async fn chain_params(&self) -> RpcResult<ChainParams>;

    /// The latest committed header.
    #[method(name = "head")]
    async fn head(&self) -> RpcResult<HeadInfo>;

    /// A block by number or hash.
    #[method(name = "block")]
    async fn block(&self, id: BlockId) -> RpcResult<Option<BlockInfo>>;

    /// A block's events and receipts.
    #[method(name = "events")]
    async fn events(&self, number: u64) -> RpcResult<Option<BlockEventsInfo>>;

    /// Every subnet.
    #[method(name = "subnets")]
    async fn subnets(&self) -> RpcResult<Vec<SubnetEntry>>;

    /// One subnet.
    #[method(name = "subnet")]
    async fn subnet(&self, netuid: u16) -> RpcResult<Option<SubnetInfo>>;

    /// One neuron as the metagraph shows it.
    #[method(name = "neuron")]
    async fn neuron(&self, netuid: u16, uid: u16) -> RpcResult<Option<MetagraphNeuron>>;

    /// A subnet's metagraph at the head.
    #[method(name = "metagraph")]
    async fn metagraph(&self, netuid: u16) -> RpcResult<Option<Metagraph>>;

    /// A coldkey's stakes.
    #[method(name = "stakes")]
    async fn stakes(&self, coldkey_ss58: String) -> RpcResult<Vec<StakeEntry>>;

    /// What creating a subnet in the next block would lock, rao.
    #[method(name = "lockCost")]
    async fn lock_cost(&self) -> RpcResult<u64>;

    /// The BFT validator set in the head's state (ed25519 consensus keys and voting
    /// power), which decides the next block; empty on a chain run by the solo engine.
    #[method(name = "consensusValidators")]
    async fn consensus_validators(&self) -> RpcResult<Vec<ConsensusValidator>>;

    /// Every new committed head.
    #[subscription(name = "subscribeNewHeads" => "newHead", unsubscribe = "unsubscribeNewHeads", item = HeadInfo)]
    async fn subscribe_new_heads(&self) -> jsonrpsee::core::SubscriptionResult;

    /// Every new committed block's events and receipts.
    #[subscription(name = "subscribeEvents" => "blockEvents", unsubscribe = "unsubscribeEvents", item = BlockEventsInfo)]
    async fn subscribe_events(&self) -> jsonrpsee::core::SubscriptionResult;
}
