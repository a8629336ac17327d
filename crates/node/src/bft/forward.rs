//! Passes transactions that clients submitted to this node on to the other validators
//! (`agora_forwardBatch`, which admits without forwarding again), so the proposer of the
//! next round has them whichever node they reached first.

use crate::service::Shared;
use agora_ledger::SignedTx;
use agora_primitives::codec::Encode;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting to be forwarded: beyond this, admission stops forwarding (the
/// transactions stay in this node's pool) rather than buffer without bound.
const QUEUE_BATCHES: usize = 1024;

/// Most transactions in one forwarded request (the RPC batch limit).
const MAX_FORWARD: usize = crate::MAX_BATCH_TXS;

/// The forwarding task, before it runs.
#[derive(Debug)]
pub(crate) struct Forwarder {
    rx: mpsc::Receiver<Vec<SignedTx>>,
    peers: Vec<SocketAddr>,
}

/// Connects the node's admission to a new forwarding queue.
pub(crate) fn start(shared: &Arc<Shared>, peers: Vec<SocketAddr>) -> Forwarder {
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    if !peers.is_empty() {
        let _ = shared.forward.set(tx);
    }
    Forwarder { rx, peers }
}

fn client(addr: SocketAddr) -> Option<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .max_request_size(64 * 1024 * 1024)
        .build(format!("http://{addr}"))
        .ok()
}

impl Forwarder {
    /// Forwards until the node stops. A peer that is down misses the batch: it gets the
    /// transactions in a block instead.
    pub(crate) async fn run(mut self) {
        let mut peers: Vec<(SocketAddr, mpsc::Sender<Arc<Vec<String>>>)> = Vec::new();
        for addr in self.peers.clone() {
            // One sender task per peer, so a slow or dead peer delays nobody else.
            let (tx, mut rx) = mpsc::channel::<Arc<Vec<String>>>(64);
            tokio::spawn(async move {
                let Some(c) = client(addr) else {
                    tracing::warn!(%addr, "cannot build a forwarding client");
                    return;
                };
                while let Some(batch) = rx.recv().await {
                    let r: Result<serde_json::Value, _> = c
                        .request("agora_forwardBatch", rpc_params![batch.as_ref()])
                        .await;
                    if let Err(e) = r {
                        tracing::debug!(%addr, error = %e, "forwarding failed");
                    }
                }
            });
            peers.push((addr, tx));
        }
        while let Some(first) = self.rx.recv().await {
            let mut txs = first;
            while txs.len() < MAX_FORWARD {
                match self.rx.try_recv() {
                    Ok(more) => txs.extend(more),
                    Err(_) => break,
                }
            }
            let hex: Arc<Vec<String>> = Arc::new(
                txs.iter()
                    .map(|t| format!("0x{}", hex::encode(t.encode())))
                    .collect(),
            );
            for (addr, p) in &peers {
                if p.try_send(hex.clone()).is_err() {
                    tracing::debug!(%addr, "peer forwarding queue full; batch skipped");
                }
            }
        }
    }
}
