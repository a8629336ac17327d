//! Agora's ledger: a deterministic state machine over an ordered key-value store.
//!
//! It holds accounts and balances, subnets and their hyperparameters, neurons (registration,
//! pruning, axons), stake and delegation, weights (direct and commit-reveal), and every tempo
//! runs each subnet's epoch through [`agora_yuma`] and pays emission. Semantics follow
//! Bittensor's (subtensor's) unless a module's docs say why not.
//!
//! Invariants:
//! - Pure and deterministic: no I/O, clock, randomness, floats or hash-map iteration. Block
//!   time comes from the header. The same blocks on the same genesis give the same state root
//!   on every machine.
//! - A transaction that fails changes nothing, except that a fee-paying call which fails after
//!   the envelope checks keeps its fee and nonce (as in Substrate). Every failure is a
//!   [`TxError`] with a stable numeric code.
//! - Checked arithmetic, no panics on any input.
//! - Issuance equals the sum of free, staked and locked balances.
//!
//! Entry points: [`GenesisConfig::build`], [`build_block`] (block production) and
//! [`execute_block`] (import and replay), both returning an [`ExecutedBlock`] whose
//! [`StateDiff`] the host commits atomically with the block. [`query`] reads state for RPC.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod block;
pub mod emission;
pub mod epoch;
mod error;
pub mod events;
mod exec;
pub mod genesis;
pub mod kv;
pub mod query;
pub mod root;
pub mod state;
pub mod tx;
pub mod types;

pub use block::{
    apply_tx, build_block, check_envelope, execute_block, tx_fee, Block, Candidate, ExecutedBlock,
    Header, Rejected, SignatureCheck,
};
pub use error::{BlockError, TxError};
pub use events::{BlockEvents, Event, Receipt};
pub use exec::max_upscale;
pub use genesis::GenesisConfig;
pub use kv::{KvError, KvStore, MemKv, StateDiff};
pub use tx::{commit_hash, Call, SignedTx, TxPayload};
