//! Agora's node: the solo block engine, the mempool, JSON-RPC over HTTP and WebSocket,
//! Prometheus metrics, and the node-facing CLI verbs ([`cli`]) that the `agora` binary calls.
//! With cargo feature `bft`, blocks can instead be decided by Tendermint rounds among a set
//! of validators on Malachite (`bft`), through the same build, execute and commit path.
//!
//! # Flow
//! `agora_submitTransaction` / `agora_submitBatch` → hex and SCALE decoding → signature
//! verification off the engine (batched on the rayon pool, [`verify`]) → envelope checks
//! against the committed state (`agora_ledger::check_envelope`; future nonces within a
//! window wait) → [`mempool`] → the engine thread builds a block every `block_time` (or as
//! soon as transactions are ready in instant mode) with `agora_ledger::build_block` →
//! `agora_store::Store::commit_block` (one durable write) → waiters, subscribers and
//! metrics are told. A transaction is acknowledged as *admitted* by its hash; inclusion is
//! observed with `agora_submitAndWait`, `agora_receipt` or the subscriptions.
//!
//! # RPC methods
//! Defined once in [`agora_client::api::AgoraApi`]: `agora_submitTransaction`,
//! `agora_submitBatch`, `agora_submitAndWait`, `agora_receipt`, `agora_account`,
//! `agora_nextNonce`, `agora_genesisHash`, `agora_chainParams`, `agora_head`, `agora_block`,
//! `agora_events`, `agora_subnets`, `agora_subnet`, `agora_neuron`, `agora_metagraph`,
//! `agora_stakes`, `agora_lockCost`, `agora_consensusValidators`; subscriptions
//! `agora_subscribeNewHeads` and `agora_subscribeEvents`. Refused transactions are JSON-RPC errors whose code is the
//! ledger's `TxError` code (below 1000) or one of [`agora_client::types::codes`].
//! Metrics: `GET /metrics` on `--metrics-addr`.
//!
//! # Invariants
//! - Only the engine thread writes the store; it commits a block before anyone is told
//!   about it, so an acknowledged inclusion survives a crash.
//! - Every queue is bounded, with its reason beside the constant ([`mempool::MempoolLimits`],
//!   the notification channel, batch and body limits).
//! - On shutdown the engine finishes the block it is committing, then stops.

pub mod bench;
#[cfg(feature = "bft")]
pub mod bft;
pub mod cli;
pub mod mempool;
pub mod metrics;
mod rpc;
mod service;
pub mod verify;

pub use rpc::MAX_BATCH_TXS;
pub use service::{
    load_or_store_genesis, start, NodeConfig, NodeHandle, DB_FILE, DEFAULT_MAX_BLOCK_TXS,
    GENESIS_FILE,
};

/// Why the node could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed (open, read or commit).
    #[error(transparent)]
    Store(#[from] agora_store::StoreError),
    /// The ledger reported corrupt state or could not build a block.
    #[error(transparent)]
    Ledger(#[from] agora_ledger::BlockError),
    /// The genesis configuration is missing, unreadable or not the stored chain's.
    #[error("genesis: {0}")]
    Genesis(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An invalid setting.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A client call failed (CLI verbs and the bench).
    #[error(transparent)]
    Client(#[from] agora_client::ClientError),
    /// The user's input is invalid (CLI verbs).
    #[error("{0}")]
    Input(String),
}
