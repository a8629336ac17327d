//! [`Client`]: connects by URL and adds signing helpers on top of the generated methods.

use crate::api::AgoraApiClient;
use crate::transport::Transport;
use crate::types::{SubmitOutcome, TxReceipt};
use crate::ClientError;
use agora_ledger::{Call, SignedTx, TxPayload};
use agora_primitives::{codec::Encode, crypto::Pair, Hash};
use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::ws_client::WsClientBuilder;
use std::time::Duration;

/// The default node address.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:9944";

/// How long a signed transaction stays valid by default, in blocks: ten minutes at the
/// default one-second block time, long enough for a busy mempool, short enough that a lost
/// transaction cannot surprise its signer much later.
pub const DEFAULT_VALIDITY_BLOCKS: u64 = 600;

/// Largest request or response the client accepts: a full `agora_submitBatch` of 64 KiB
/// transactions, or a metagraph of 4096 neurons, fits well inside.
const MAX_MESSAGE_BYTES: u32 = 256 * 1024 * 1024;

/// Options for building a transaction.
#[derive(Clone, Copy, Debug)]
pub struct TxOptions {
    /// Extra rao burned to be ordered first.
    pub tip_rao: u64,
    /// Blocks after the current head during which it may be included.
    pub validity_blocks: u64,
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions {
            tip_rao: 0,
            validity_blocks: DEFAULT_VALIDITY_BLOCKS,
        }
    }
}

/// A typed connection to a node. All `agora_*` methods come from
/// [`AgoraApiClient`], implemented for [`Client::rpc`].
#[derive(Debug)]
pub struct Client {
    rpc: Transport,
    url: String,
}

/// Hex of a transaction's SCALE encoding, as the RPC takes it.
pub fn tx_to_hex(tx: &SignedTx) -> String {
    format!("0x{}", hex::encode(tx.encode()))
}

impl Client {
    /// Connects to `url`: `http(s)://` for requests only, `ws(s)://` also for
    /// subscriptions.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        let timeout = Duration::from_secs(330);
        let rpc = if url.starts_with("ws://") || url.starts_with("wss://") {
            Transport::Ws(
                WsClientBuilder::default()
                    .request_timeout(timeout)
                    .max_request_size(MAX_MESSAGE_BYTES)
                    .max_response_size(MAX_MESSAGE_BYTES)
                    .build(url)
                    .await
                    .map_err(|e| ClientError::Connect {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    })?,
            )
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Transport::Http(
                HttpClientBuilder::default()
                    .request_timeout(timeout)
                    .max_request_size(MAX_MESSAGE_BYTES)
                    .max_response_size(MAX_MESSAGE_BYTES)
                    .build(url)
                    .map_err(|e| ClientError::Connect {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    })?,
            )
        } else {
            return Err(ClientError::Connect {
                url: url.to_owned(),
                reason: "the URL must start with http://, https://, ws:// or wss://".into(),
            });
        };
        Ok(Client {
            rpc,
            url: url.to_owned(),
        })
    }

    /// The generated typed methods (`client.rpc().head().await`).
    pub fn rpc(&self) -> &Transport {
        &self.rpc
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Signs `call` with the genesis hash, the signer's next nonce and a validity window
    /// starting at the current head.
    pub async fn sign(
        &self,
        pair: &Pair,
        call: Call,
        opts: TxOptions,
    ) -> Result<SignedTx, ClientError> {
        let genesis_hash = self.rpc.genesis_hash().await?;
        let nonce = self.rpc.next_nonce(pair.account().to_ss58()).await?;
        let head = self.rpc.head().await?;
        Ok(TxPayload {
            genesis_hash,
            nonce,
            valid_from: head.number,
            valid_until: head.number.saturating_add(opts.validity_blocks),
            tip_rao: opts.tip_rao,
            call,
        }
        .sign(pair))
    }

    /// Signs and submits `call`; returns the hash once the mempool admitted it.
    pub async fn sign_and_submit(&self, pair: &Pair, call: Call) -> Result<Hash, ClientError> {
        let tx = self.sign(pair, call, TxOptions::default()).await?;
        Ok(self.rpc.submit_transaction(tx_to_hex(&tx)).await?)
    }

    /// Signs and submits `call`, then waits until it is in a committed block.
    pub async fn sign_submit_and_wait(
        &self,
        pair: &Pair,
        call: Call,
        opts: TxOptions,
    ) -> Result<TxReceipt, ClientError> {
        let tx = self.sign(pair, call, opts).await?;
        self.submit_and_wait(&tx).await
    }

    /// Submits a signed transaction and waits until it is in a committed block.
    pub async fn submit_and_wait(&self, tx: &SignedTx) -> Result<TxReceipt, ClientError> {
        Ok(self.rpc.submit_and_wait(tx_to_hex(tx), None).await?)
    }

    /// Submits signed transactions in one request.
    pub async fn submit_batch(&self, txs: &[SignedTx]) -> Result<Vec<SubmitOutcome>, ClientError> {
        let hex: Vec<String> = txs.iter().map(tx_to_hex).collect();
        Ok(self.rpc.submit_batch(hex).await?)
    }
}
