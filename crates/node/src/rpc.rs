//! The JSON-RPC server: [`agora_client::api::AgoraApiServer`] over the shared node state.

use crate::service::{decode_tx_hex, Committed, Refusal, Shared};
use crate::NodeError;
use agora_client::api::AgoraApiServer;
use agora_client::types::{
    codes, BlockEventsInfo, BlockId, BlockInfo, HeadInfo, Metagraph, StakeEntry, SubmitOutcome,
    SubnetEntry, TxFailure, TxReceipt,
};
use agora_ledger::query::{self, MetagraphNeuron};
use agora_ledger::types::{AccountInfo, ChainParams, ConsensusValidator, SubnetInfo};
use agora_primitives::{AccountId, Hash, NetUid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::server::{PendingSubscriptionSink, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Most transactions in one `agora_submitBatch`: verification of a full batch takes well
/// under a second on two cores, so one request cannot stall admission for long.
pub const MAX_BATCH_TXS: usize = 10_000;

/// Largest request body: a full batch of typical transactions (1 KiB `set_weights` as hex
/// is ~2.2 KiB; 10k of them ~22 MiB) with room to spare.
const MAX_REQUEST_BYTES: u32 = 64 * 1024 * 1024;

/// Largest response: a metagraph of the 4096-uid limit is ~2 MiB.
const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;

/// Open connections: enough for a devnet's miners, validators and tools.
const MAX_CONNECTIONS: u32 = 1024;

/// Default and longest wait of `agora_submitAndWait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);

fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn failure_err(f: TxFailure) -> ErrorObjectOwned {
    err(f.code, f.message)
}

fn internal(e: impl Into<NodeError>) -> ErrorObjectOwned {
    let e: NodeError = e.into();
    tracing::warn!(error = %e, "RPC read failed");
    err(codes::STORAGE, e.to_string())
}

fn parse_account(s: &str) -> Result<AccountId, ErrorObjectOwned> {
    AccountId::from_str(s.trim()).map_err(|e| {
        err(
            codes::INVALID_PARAMS,
            format!("invalid SS58 address '{s}': {e}"),
        )
    })
}

struct RpcImpl {
    shared: Arc<Shared>,
}

impl RpcImpl {
    async fn admit(
        &self,
        batch: Vec<Result<crate::service::Incoming, agora_ledger::TxError>>,
    ) -> Result<Vec<Result<Hash, Refusal>>, ErrorObjectOwned> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.admit(batch))
            .await
            .map_err(|e| err(codes::STORAGE, format!("admission task failed: {e}")))
    }

    fn head_info(&self) -> HeadInfo {
        self.shared.head()
    }
}

#[async_trait]
impl AgoraApiServer for RpcImpl {
    async fn submit_transaction(&self, tx_hex: String) -> RpcResult<Hash> {
        let inc = decode_tx_hex(&tx_hex, self.shared.params.max_tx_bytes);
        let mut r = self.admit(vec![inc]).await?;
        match r.pop() {
            Some(Ok(h)) => Ok(h),
            Some(Err(refusal)) => Err(failure_err(refusal.failure())),
            None => Err(err(codes::STORAGE, "admission returned nothing")),
        }
    }

    async fn submit_batch(&self, txs_hex: Vec<String>) -> RpcResult<Vec<SubmitOutcome>> {
        if txs_hex.len() > MAX_BATCH_TXS {
            return Err(err(
                codes::INVALID_PARAMS,
                format!(
                    "batch of {} transactions exceeds the limit of {MAX_BATCH_TXS}",
                    txs_hex.len()
                ),
            ));
        }
        let max = self.shared.params.max_tx_bytes;
        let batch = txs_hex.iter().map(|h| decode_tx_hex(h, max)).collect();
        let r = self.admit(batch).await?;
        Ok(r.into_iter()
            .map(|x| match x {
                Ok(h) => SubmitOutcome {
                    hash: Some(h),
                    error: None,
                },
                Err(refusal) => SubmitOutcome {
                    hash: None,
                    error: Some(refusal.failure()),
                },
            })
            .collect())
    }

    async fn submit_and_wait(
        &self,
        tx_hex: String,
        timeout_ms: Option<u64>,
    ) -> RpcResult<TxReceipt> {
        let wait = timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_WAIT)
            .min(MAX_WAIT);
        let inc = decode_tx_hex(&tx_hex, self.shared.params.max_tx_bytes)
            .map_err(|e| err(i32::from(e.code()), e.to_string()))?;
        let hash = inc.hash;
        if let Some(r) = self.shared.receipt(&hash).map_err(internal)? {
            return Ok(r);
        }
        let rx = self.shared.wait_for(hash);
        let mut r = self.admit(vec![Ok(inc)]).await?;
        match r.pop() {
            Some(Ok(_)) => {}
            Some(Err(Refusal::Pool(crate::mempool::PoolRefusal::AlreadyKnown))) => {}
            Some(Err(refusal)) => {
                self.shared.forget_waiters(&hash);
                return Err(failure_err(refusal.failure()));
            }
            None => return Err(err(codes::STORAGE, "admission returned nothing")),
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(receipt))) => Ok(receipt),
            Ok(Ok(Err(f))) => Err(failure_err(f)),
            Ok(Err(_)) => Err(err(
                codes::SHUTTING_DOWN,
                "the node stopped before inclusion",
            )),
            Err(_) => Err(err(
                codes::WAIT_TIMEOUT,
                format!(
                    "not included within {} ms; transaction {hash} is still pending",
                    wait.as_millis()
                ),
            )),
        }
    }

    async fn receipt(&self, tx_hash: Hash) -> RpcResult<Option<TxReceipt>> {
        self.shared.receipt(&tx_hash).map_err(internal)
    }

    async fn account(&self, ss58: String) -> RpcResult<AccountInfo> {
        let id = parse_account(&ss58)?;
        let snap = self.shared.store.snapshot().map_err(internal)?;
        query::account(&snap, &id).map_err(internal)
    }

    async fn next_nonce(&self, ss58: String) -> RpcResult<u64> {
        let id = parse_account(&ss58)?;
        self.shared.next_nonce(&id).map_err(internal)
    }

    async fn genesis_hash(&self) -> RpcResult<Hash> {
        Ok(self.shared.genesis_hash)
    }

    async fn chain_params(&self) -> RpcResult<ChainParams> {
        Ok(self.shared.params.clone())
    }

    async fn head(&self) -> RpcResult<HeadInfo> {
        Ok(self.head_info())
    }

    async fn block(&self, id: BlockId) -> RpcResult<Option<BlockInfo>> {
        let number = match id {
            BlockId::Number(n) => Some(n),
            BlockId::Hash(h) => self
                .shared
                .store
                .block_number_by_hash(&h)
                .map_err(internal)?,
        };
        let Some(n) = number else { return Ok(None) };
        Ok(self
            .shared
            .store
            .block(n)
            .map_err(internal)?
            .map(|block| BlockInfo {
                hash: block.header.hash(),
                block,
            }))
    }

    async fn events(&self, number: u64) -> RpcResult<Option<BlockEventsInfo>> {
        let Some(block) = self.shared.store.block(number).map_err(internal)? else {
            return Ok(None);
        };
        Ok(self
            .shared
            .store
            .events(number)
            .map_err(internal)?
            .map(|ev| BlockEventsInfo {
                number,
                hash: block.header.hash(),
                events: ev.events,
                receipts: ev.receipts,
            }))
    }

    async fn subnets(&self) -> RpcResult<Vec<SubnetEntry>> {
        let snap = self.shared.store.snapshot().map_err(internal)?;
        Ok(query::subnets(&snap)
            .map_err(internal)?
            .into_iter()
            .map(|(netuid, subnet)| SubnetEntry { netuid, subnet })
            .collect())
    }

    async fn subnet(&self, netuid: u16) -> RpcResult<Option<SubnetInfo>> {
        let snap = self.shared.store.snapshot().map_err(internal)?;
        query::subnet(&snap, NetUid(netuid)).map_err(internal)
    }

    async fn neuron(&self, netuid: u16, uid: u16) -> RpcResult<Option<MetagraphNeuron>> {
        let snap = self.shared.store.snapshot().map_err(internal)?;
        Ok(query::metagraph(&snap, NetUid(netuid))
            .map_err(internal)?
            .and_then(|m| m.into_iter().find(|n| n.uid == uid)))
    }

    async fn metagraph(&self, netuid: u16) -> RpcResult<Option<Metagraph>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // Read the head before the snapshot: the metagraph is at least this fresh.
            let block = shared.head().number;
            let snap = shared.store.snapshot().map_err(internal)?;
            Ok(query::metagraph(&snap, NetUid(netuid))
                .map_err(internal)?
                .map(|neurons| Metagraph {
                    netuid: NetUid(netuid),
                    block,
                    neurons,
                }))
        })
        .await
        .map_err(|e| err(codes::STORAGE, format!("metagraph task failed: {e}")))?
    }

    async fn stakes(&self, coldkey_ss58: String) -> RpcResult<Vec<StakeEntry>> {
        let id = parse_account(&coldkey_ss58)?;
        let snap = self.shared.store.snapshot().map_err(internal)?;
        Ok(query::stakes_of(&snap, &id)
            .map_err(internal)?
            .into_iter()
            .map(|(hotkey, stake_rao)| StakeEntry { hotkey, stake_rao })
            .collect())
    }

    async fn lock_cost(&self) -> RpcResult<u64> {
        let next = self.head_info().number.saturating_add(1);
        let snap = self.shared.store.snapshot().map_err(internal)?;
        query::lock_cost(&snap, next).map_err(internal)
    }

    async fn consensus_validators(&self) -> RpcResult<Vec<ConsensusValidator>> {
        let snap = self.shared.store.snapshot().map_err(internal)?;
        query::consensus_validators(&snap).map_err(internal)
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        // A head subscriber only needs the latest head: skipped ones are fine.
        forward_committed(&self.shared, pending, OnLag::Skip, |c| {
            serde_json::value::to_raw_value(&c.head)
        })
        .await
    }

    async fn subscribe_events(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        // Events cannot be skipped silently: end the subscription so the client knows to
        // catch up with agora_events.
        forward_committed(&self.shared, pending, OnLag::End, |c| {
            serde_json::value::to_raw_value(&c.events)
        })
        .await
    }
}

/// What a subscription does when it falls behind the block broadcast.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnLag {
    Skip,
    End,
}

/// Sends one projection of every committed block to a subscriber until it leaves.
async fn forward_committed(
    shared: &Shared,
    pending: PendingSubscriptionSink,
    on_lag: OnLag,
    project: impl Fn(&Committed) -> Result<Box<serde_json::value::RawValue>, serde_json::Error>,
) -> SubscriptionResult {
    let mut rx = shared.blocks.subscribe();
    let sink = pending.accept().await?;
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            msg = rx.recv() => match msg {
                Ok(c) => {
                    if sink.send(project(&c)?).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) if on_lag == OnLag::Skip => {
                    tracing::debug!(skipped = n, "subscriber lagged");
                }
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}

/// Starts the server on `addr`; returns its handle and bound address.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> Result<(ServerHandle, SocketAddr), NodeError> {
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(MAX_CONNECTIONS)
        .build();
    let server = Server::builder()
        .set_config(config)
        .build(addr)
        .await
        .map_err(|e| NodeError::Bind {
            addr: addr.to_string(),
            source: e,
        })?;
    let local = server.local_addr().map_err(|e| NodeError::Bind {
        addr: addr.to_string(),
        source: e,
    })?;
    let mut module = RpcImpl {
        shared: shared.clone(),
    }
    .into_rpc();
    // Transactions another node forwards: admitted like `agora_submitBatch` but never
    // forwarded again, so a transaction crosses each link at most once.
    module
        .register_async_method("agora_forwardBatch", move |params, _, _| {
            let shared = shared.clone();
            async move {
                let txs: Vec<String> = params.one()?;
                if txs.len() > MAX_BATCH_TXS {
                    return Err(err(codes::INVALID_PARAMS, "batch too large"));
                }
                let max = shared.params.max_tx_bytes;
                let batch = txs.iter().map(|h| decode_tx_hex(h, max)).collect();
                let admitted = tokio::task::spawn_blocking(move || shared.admit_from(batch, false))
                    .await
                    .map_err(|e| err(codes::STORAGE, format!("admission task failed: {e}")))?;
                Ok::<usize, ErrorObjectOwned>(admitted.iter().filter(|r| r.is_ok()).count())
            }
        })
        .map_err(|e| NodeError::Config(format!("cannot register a method: {e}")))?;
    let handle = server.start(module);
    Ok((handle, local))
}
