//! Agora's client: a typed JSON-RPC client for a node, a signing helper and a metagraph
//! cache.
//!
//! [`api::AgoraApi`] is the single definition of the node's interface; `jsonrpsee`
//! generates [`api::AgoraApiClient`] from it here, and with feature `server` the server
//! trait that `agora-node` implements. Methods (namespace `agora_`):
//!
//! | method | params | result |
//! |---|---|---|
//! | `agora_submitTransaction` | hex SCALE `SignedTx` | tx hash (mempool admission only) |
//! | `agora_submitBatch` | `[hex]` | `[{hash} or {error:{code,message}}]` |
//! | `agora_submitAndWait` | hex, `timeout_ms?` | [`types::TxReceipt`] once committed |
//! | `agora_receipt` | tx hash | receipt or `null` |
//! | `agora_account` | SS58 | `{nonce, free_rao}` |
//! | `agora_nextNonce` | SS58 | state nonce + consecutive pending |
//! | `agora_genesisHash` | – | hash |
//! | `agora_chainParams` | – | chain parameters |
//! | `agora_head` | – | [`types::HeadInfo`] |
//! | `agora_block` | number or hash | [`types::BlockInfo`] or `null` |
//! | `agora_events` | number | [`types::BlockEventsInfo`] or `null` |
//! | `agora_subnets` | – | `[{netuid, subnet}]` |
//! | `agora_subnet` | netuid | subnet or `null` |
//! | `agora_neuron` | netuid, uid | metagraph neuron or `null` |
//! | `agora_metagraph` | netuid | [`types::Metagraph`] or `null` |
//! | `agora_stakes` | coldkey SS58 | `[{hotkey, stake_rao}]` |
//! | `agora_lockCost` | – | rao |
//! | `agora_consensusValidators` | – | `[{public_key, power}]` (the BFT set; empty on a solo chain) |
//! | `agora_subscribeNewHeads` / `agora_unsubscribeNewHeads` | – | `newHead` notifications |
//! | `agora_subscribeEvents` / `agora_unsubscribeEvents` | – | `blockEvents` notifications |
//!
//! Errors: a refused transaction is a JSON-RPC error whose code is the ledger's
//! [`agora_ledger::TxError::code`] (below 1000); node conditions use [`types::codes`].
//!
//! [`Client::sign_and_submit`] fetches the genesis hash and next nonce and sets a validity
//! window; [`MetagraphCache`] keeps a subnet's metagraph fresh from new-head subscriptions.

pub mod api;
mod client;
pub mod metagraph;
pub mod transport;
pub mod types;

pub use client::{tx_to_hex, Client, TxOptions, DEFAULT_RPC_URL, DEFAULT_VALIDITY_BLOCKS};
pub use metagraph::MetagraphCache;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the URL is unusable.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error, or the transport failed.
    #[error("{}", describe_rpc(.0))]
    Rpc(#[from] jsonrpsee::core::client::Error),
    /// The subnet does not exist.
    #[error("subnet {0} does not exist")]
    UnknownSubnet(u16),
    /// A notification did not decode as the expected type.
    #[error("undecodable notification: {0}")]
    Decode(String),
    /// A subscription ended (the node closed the connection).
    #[error("subscription closed by the node")]
    SubscriptionClosed,
}

impl ClientError {
    /// The JSON-RPC error code when the node refused the call (a `TxError` code below 1000,
    /// or one of [`types::codes`]).
    pub fn rpc_code(&self) -> Option<i32> {
        match self {
            ClientError::Rpc(jsonrpsee::core::client::Error::Call(e)) => Some(e.code()),
            _ => None,
        }
    }
}

fn describe_rpc(e: &jsonrpsee::core::client::Error) -> String {
    match e {
        jsonrpsee::core::client::Error::Call(obj) => {
            format!("node refused: {} (code {})", obj.message(), obj.code())
        }
        other => format!("RPC failure: {other}"),
    }
}
