//! The running node: shared state, admission, the block engine and start/stop.

use crate::mempool::{Dropped, Mempool, MempoolLimits, PoolRefusal};
use crate::metrics::{self, Metrics};
use crate::verify::{verify_all, VerifiedTxs};
use crate::NodeError;
use agora_client::types::{codes, BlockEventsInfo, HeadInfo, TxFailure, TxReceipt};
use agora_ledger::state::{ExecError, State};
use agora_ledger::types::ChainParams;
use agora_ledger::{
    build_block, check_envelope, query, GenesisConfig, SignatureCheck, SignedTx, TxError,
};
use agora_primitives::Hash;
use agora_store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot};

/// File in the data directory holding the chain's genesis configuration (JSON), written on
/// first start so that restarts and `agora node replay` need no flags to know the chain.
pub const GENESIS_FILE: &str = "genesis.json";
/// File in the data directory holding the redb database.
pub const DB_FILE: &str = "chain.redb";

/// Verified transaction hashes remembered: more than the pool holds, so that a
/// transaction is verified once per node while it can still arrive by another path.
const VERIFIED_TXS: usize = 262_144;

/// Blocks a subscriber may fall behind before it is dropped: a client that cannot keep up
/// with 256 blocks must resynchronise rather than make the node buffer without end.
const NOTIFY_CAPACITY: usize = 256;

/// How the node produces blocks.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the database and genesis file live (created if missing).
    pub data_dir: PathBuf,
    /// The genesis to initialise an empty data directory with; `None` requires the data
    /// directory to hold one already.
    pub genesis: Option<GenesisConfig>,
    /// JSON-RPC (HTTP and WebSocket) listen address; port 0 picks a free one.
    pub rpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Time between blocks; in instant mode, the longest wait for an empty block.
    pub block_time: Duration,
    /// Seal a block as soon as transactions are ready.
    pub instant: bool,
    /// Most transactions in one block.
    pub max_block_txs: usize,
    /// Mempool bounds.
    pub mempool: MempoolLimits,
}

impl NodeConfig {
    /// A development node on `data_dir`: dev genesis, RPC on `rpc_addr`.
    pub fn dev(data_dir: PathBuf, rpc_addr: SocketAddr) -> Self {
        NodeConfig {
            data_dir,
            genesis: Some(GenesisConfig::dev()),
            rpc_addr,
            metrics_addr: None,
            block_time: Duration::from_secs(1),
            instant: false,
            max_block_txs: DEFAULT_MAX_BLOCK_TXS,
            mempool: MempoolLimits::default(),
        }
    }
}

/// Default most transactions per block: two seconds of the 10k tx/s target, so a block's
/// build and commit stay well under a second even with maximal `set_weights`.
pub const DEFAULT_MAX_BLOCK_TXS: usize = 20_000;

/// A committed block as notified to waiters and subscribers.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) head: HeadInfo,
    pub(crate) events: BlockEventsInfo,
}

type WaitResult = Result<TxReceipt, TxFailure>;

/// State shared by the RPC handlers and the engine.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) genesis_hash: Hash,
    pub(crate) params: ChainParams,
    pub(crate) pool: Mutex<Mempool>,
    pub(crate) wake: Condvar,
    head: RwLock<HeadInfo>,
    waiters: Mutex<HashMap<Hash, Vec<oneshot::Sender<WaitResult>>>>,
    pub(crate) blocks: broadcast::Sender<Arc<Committed>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: AtomicBool,
    /// Where newly admitted client transactions go to reach other validators (BFT only).
    pub(crate) forward: OnceLock<tokio::sync::mpsc::Sender<Vec<SignedTx>>>,
    /// Transactions whose signatures this node verified already.
    pub(crate) verified: Mutex<VerifiedTxs>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why admission refused a transaction.
#[derive(Clone, Debug)]
pub(crate) enum Refusal {
    Tx(TxError),
    Pool(PoolRefusal),
    Storage(String),
    ShuttingDown,
}

impl Refusal {
    pub(crate) fn failure(&self) -> TxFailure {
        match self {
            Refusal::Tx(e) => TxFailure {
                code: i32::from(e.code()),
                message: e.to_string(),
            },
            Refusal::Pool(p) => {
                let (code, message) = match p {
                    PoolRefusal::AlreadyKnown => {
                        (codes::ALREADY_KNOWN, "transaction already pending".to_owned())
                    }
                    PoolRefusal::NonceTaken => (
                        codes::NONCE_TAKEN,
                        "another transaction with this nonce is pending; raise the tip to replace it"
                            .to_owned(),
                    ),
                    PoolRefusal::Stale { got, expected } => (
                        i32::from(
                            TxError::StaleNonce {
                                got: *got,
                                expected: *expected,
                            }
                            .code(),
                        ),
                        format!("stale nonce {got}: the account's next nonce is {expected}"),
                    ),
                    PoolRefusal::TooFarAhead { got, expected } => (
                        codes::NONCE_TOO_FAR,
                        format!(
                            "nonce {got} is too far ahead of the account's next nonce {expected}"
                        ),
                    ),
                    PoolRefusal::AccountFull => (
                        codes::ACCOUNT_LIMIT,
                        "too many pending transactions for this account".to_owned(),
                    ),
                    PoolRefusal::Full => (codes::MEMPOOL_FULL, "mempool full, retry later".to_owned()),
                };
                TxFailure { code, message }
            }
            Refusal::ShuttingDown => TxFailure {
                code: codes::SHUTTING_DOWN,
                message: "the node is shutting down".to_owned(),
            },
            Refusal::Storage(m) => TxFailure {
                code: codes::STORAGE,
                message: format!("node storage failure: {m}"),
            },
        }
    }
}

/// A decoded transaction with its hash and encoded length.
pub(crate) struct Incoming {
    pub(crate) tx: SignedTx,
    pub(crate) hash: Hash,
    pub(crate) len: usize,
}

/// Decodes `0x`-hex SCALE bytes into a transaction, refusing anything over the chain's
/// size limit before decoding it.
pub(crate) fn decode_tx_hex(s: &str, max_tx_bytes: u32) -> Result<Incoming, TxError> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    let max = usize::try_from(max_tx_bytes).unwrap_or(usize::MAX);
    if h.len() / 2 > max {
        return Err(TxError::TooLarge {
            size: h.len() / 2,
            max,
        });
    }
    let bytes = hex::decode(h).map_err(|e| TxError::Malformed(format!("not hex: {e}")))?;
    let tx = SignedTx::decode_exact(&bytes)?;
    Ok(Incoming {
        hash: tx.hash(),
        len: bytes.len(),
        tx,
    })
}

impl Shared {
    pub(crate) fn head(&self) -> HeadInfo {
        self.head.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    pub(crate) fn next_nonce(
        &self,
        account: &agora_primitives::AccountId,
    ) -> Result<u64, NodeError> {
        let snap = self.store.snapshot()?;
        let state = query::account(&snap, account)?.nonce;
        Ok(lock(&self.pool).next_nonce(account, state))
    }

    /// Verifies, checks and pools transactions; one result each, in order. Blocking: runs on
    /// a blocking thread, never on the engine.
    pub(crate) fn admit(
        &self,
        batch: Vec<Result<Incoming, TxError>>,
    ) -> Vec<Result<Hash, Refusal>> {
        self.admit_from(batch, true)
    }

    /// [`Shared::admit`]; `forward` says whether transactions new to this node are passed
    /// on to the other validators (not for those that another node forwarded already).
    pub(crate) fn admit_from(
        &self,
        batch: Vec<Result<Incoming, TxError>>,
        forward: bool,
    ) -> Vec<Result<Hash, Refusal>> {
        if self.is_shutting_down() {
            return batch.iter().map(|_| Err(Refusal::ShuttingDown)).collect();
        }
        let snap = match self.store.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let r = Refusal::Storage(e.to_string());
                return batch.iter().map(|_| Err(r.clone())).collect();
            }
        };
        let block = self.head().number.saturating_add(1);
        // Cheap checks first, the signature last (as the ledger orders them): a
        // transaction already pending, or one that a block already included (a peer's
        // forwarded copy arriving late), costs no signature verification.
        let known: Vec<bool> = {
            let pool = lock(&self.pool);
            batch
                .iter()
                .map(|r| r.as_ref().is_ok_and(|i| pool.contains(&i.hash)))
                .collect()
        };
        let mut checked = Vec::with_capacity(batch.len());
        for (item, known) in batch.into_iter().zip(known) {
            let inc = match item {
                Ok(i) => i,
                Err(e) => {
                    checked.push(Err(Refusal::Tx(e)));
                    continue;
                }
            };
            if known {
                checked.push(Err(Refusal::Pool(PoolRefusal::AlreadyKnown)));
                continue;
            }
            let st = State::new(&snap);
            let state_nonce = match check_envelope(
                &st,
                &inc.tx,
                inc.len,
                block,
                SignatureCheck::AlreadyVerified,
            ) {
                Ok(_) => inc.tx.payload.nonce,
                Err(ExecError::Tx(TxError::FutureNonce { expected, .. })) => expected,
                // Not yet valid but will be: pool it until its window opens.
                Err(ExecError::Tx(TxError::OutsideWindow { from, until, .. }))
                    if block < from && from <= until =>
                {
                    match st.account(&inc.tx.signer) {
                        Ok(a) => a.nonce,
                        Err(e) => {
                            checked.push(Err(Refusal::Storage(e.to_string())));
                            continue;
                        }
                    }
                }
                Err(ExecError::Tx(e)) => {
                    checked.push(Err(Refusal::Tx(e)));
                    continue;
                }
                Err(ExecError::Fatal(e)) => {
                    checked.push(Err(Refusal::Storage(e.to_string())));
                    continue;
                }
            };
            checked.push(Ok((inc, state_nonce)));
        }
        // Verified already (seen in a peer's block, say): no second verification.
        let seen: Vec<bool> = {
            let verified = lock(&self.verified);
            checked
                .iter()
                .map(|c| c.as_ref().is_ok_and(|(i, _)| verified.contains(&i.hash)))
                .collect()
        };
        let to_verify: Vec<SignedTx> = checked
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| !**seen)
            .filter_map(|(c, _)| c.as_ref().ok().map(|(i, _)| i.tx.clone()))
            .collect();
        let mut sig_ok = verify_all(&to_verify).into_iter();
        let checked: Vec<Result<(Incoming, u64), Refusal>> = checked
            .into_iter()
            .zip(seen)
            .map(|(c, seen)| match c {
                Ok(ok) if seen => Ok(ok),
                Ok(ok) if sig_ok.next().unwrap_or(false) => Ok(ok),
                Ok(_) => Err(Refusal::Tx(TxError::BadSignature)),
                Err(r) => Err(r),
            })
            .collect();
        {
            let mut verified = lock(&self.verified);
            for (i, _) in checked.iter().flatten() {
                verified.insert(i.hash);
            }
        }
        drop(snap);
        let mut out = Vec::with_capacity(checked.len());
        let sink = if forward { self.forward.get() } else { None };
        let mut to_forward = Vec::new();
        let mut pool = lock(&self.pool);
        // A block may have committed since the snapshot above: with the pool locked (the
        // engine updates the pool after each commit under this lock), re-read the
        // signers' nonces, or a transaction could be pooled behind a stale state nonce and
        // never become ready.
        let fresh = self.store.snapshot().ok();
        let mut added = false;
        for c in checked {
            out.push(match c {
                Ok((inc, state_nonce)) => {
                    let state_nonce = fresh
                        .as_ref()
                        .and_then(|s| query::account(s, &inc.tx.signer).ok())
                        .map_or(state_nonce, |a| a.nonce.max(state_nonce));
                    let hash = inc.hash;
                    let copy = sink.map(|_| inc.tx.clone());
                    match pool.insert(inc.tx, hash, inc.len, state_nonce) {
                        Ok(()) => {
                            added = true;
                            to_forward.extend(copy);
                            Ok(hash)
                        }
                        Err(p) => Err(Refusal::Pool(p)),
                    }
                }
                Err(r) => Err(r),
            });
        }
        self.metrics
            .mempool_txs
            .store(pool.len() as u64, Ordering::Relaxed);
        self.metrics
            .mempool_bytes
            .store(pool.bytes() as u64, Ordering::Relaxed);
        drop(pool);
        let refused = out.iter().filter(|r| r.is_err()).count();
        self.metrics
            .refused
            .fetch_add(refused as u64, Ordering::Relaxed);
        if added {
            self.wake.notify_all();
        }
        if let Some(sink) = sink {
            // A full forwarding queue only delays a transaction's spread: it is in this
            // node's pool and is proposed when this node's turn comes.
            if !to_forward.is_empty() && sink.try_send(to_forward).is_err() {
                tracing::debug!("forwarding queue full; transactions stay local");
            }
        }
        out
    }

    /// Registers interest in a transaction's inclusion; the receiver answers once it is
    /// committed or dropped.
    pub(crate) fn wait_for(&self, hash: Hash) -> oneshot::Receiver<WaitResult> {
        let (tx, rx) = oneshot::channel();
        let mut w = lock(&self.waiters);
        let list = w.entry(hash).or_default();
        // Waiters whose request timed out are gone: forget them, so that repeated waits
        // on a stuck transaction cannot grow the list.
        list.retain(|s| !s.is_closed());
        list.push(tx);
        rx
    }

    /// Forgets every waiter of `hash` (after a refused admission).
    pub(crate) fn forget_waiters(&self, hash: &Hash) {
        lock(&self.waiters).remove(hash);
    }

    /// The receipt of an included transaction.
    pub(crate) fn receipt(&self, hash: &Hash) -> Result<Option<TxReceipt>, NodeError> {
        let Some((number, index)) = self.store.tx_location(hash)? else {
            return Ok(None);
        };
        let (Some(block), Some(ev)) = (self.store.block(number)?, self.store.events(number)?)
        else {
            return Ok(None);
        };
        let Some(r) = usize::try_from(index).ok().and_then(|i| ev.receipts.get(i)) else {
            return Ok(None);
        };
        Ok(Some(TxReceipt::from_block_events(
            block.header.hash(),
            number,
            index,
            r,
            &ev.events,
        )))
    }

    pub(crate) fn notify_dropped(&self, dropped: &[Dropped]) {
        if dropped.is_empty() {
            return;
        }
        self.metrics
            .dropped
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        let mut w = lock(&self.waiters);
        if w.is_empty() {
            return;
        }
        for d in dropped {
            if let Some(list) = w.remove(&d.hash) {
                let f = Refusal::Tx(d.error.clone()).failure();
                for s in list {
                    let _ = s.send(Err(f.clone()));
                }
            }
        }
    }

    /// Produces, commits and announces one block. Store failures are fatal to the engine.
    fn produce_block(&self, max_block_txs: usize) -> Result<(), NodeError> {
        let started = Instant::now();
        let parent = self.head().header;
        let candidates = lock(&self.pool).select(max_block_txs);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let snap = self.store.snapshot()?;
        let (executed, rejected) = build_block(&snap, &parent, now_ms, candidates, max_block_txs)?;
        drop(snap);
        let dropped = self.drop_rejected(rejected);
        self.commit_executed(executed, dropped, started)
    }

    /// Removes from the pool the transactions a block build refused for good (a future
    /// nonce or a window not yet open keeps them); returns them for [`Self::notify_dropped`].
    pub(crate) fn drop_rejected(&self, rejected: Vec<agora_ledger::Rejected>) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        if rejected.is_empty() {
            return dropped;
        }
        let mut pool = lock(&self.pool);
        for r in rejected {
            let keep = match &r.error {
                TxError::FutureNonce { .. } => true,
                TxError::OutsideWindow { from, block, .. } => block < from,
                _ => false,
            };
            if !keep && pool.remove(&r.tx_hash) {
                dropped.push(Dropped {
                    hash: r.tx_hash,
                    error: r.error,
                });
            }
        }
        dropped
    }

    /// Durably commits an executed block, then updates the head, the pool, the metrics and
    /// tells waiters and subscribers. `dropped` are transactions already removed from the
    /// pool whose waiters learn it now.
    pub(crate) fn commit_executed(
        &self,
        executed: agora_ledger::ExecutedBlock,
        mut dropped: Vec<Dropped>,
        started: Instant,
    ) -> Result<(), NodeError> {
        self.store.commit_block(&executed)?;
        let header = executed.block.header.clone();
        let number = header.number;
        let hash = header.hash();
        let head = HeadInfo {
            number,
            hash,
            header,
        };
        *self.head.write().unwrap_or_else(|p| p.into_inner()) = head.clone();
        {
            let mut pool = lock(&self.pool);
            dropped.extend(pool.on_included(executed.block.txs.iter()));
            dropped.extend(pool.drop_expired(number.saturating_add(1)));
            self.metrics
                .mempool_txs
                .store(pool.len() as u64, Ordering::Relaxed);
            self.metrics
                .mempool_bytes
                .store(pool.bytes() as u64, Ordering::Relaxed);
        }
        let ntx = executed.block.txs.len() as u64;
        self.metrics.blocks.fetch_add(1, Ordering::Relaxed);
        self.metrics.txs.fetch_add(ntx, Ordering::Relaxed);
        self.metrics.head.store(number, Ordering::Relaxed);
        self.metrics
            .observe_commit(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        tracing::debug!(
            number,
            txs = ntx,
            ms = started.elapsed().as_millis() as u64,
            "block committed"
        );
        {
            let mut w = lock(&self.waiters);
            if !w.is_empty() {
                for (index, r) in (0u32..).zip(executed.events.receipts.iter()) {
                    if let Some(list) = w.remove(&r.tx_hash) {
                        let rec = TxReceipt::from_block_events(
                            hash,
                            number,
                            index,
                            r,
                            &executed.events.events,
                        );
                        for s in list {
                            let _ = s.send(Ok(rec.clone()));
                        }
                    }
                }
            }
        }
        self.notify_dropped(&dropped);
        if self.blocks.receiver_count() > 0 {
            let ev = executed.events;
            let _ = self.blocks.send(Arc::new(Committed {
                head,
                events: BlockEventsInfo {
                    number,
                    hash,
                    events: ev.events,
                    receipts: ev.receipts,
                },
            }));
        }
        Ok(())
    }
}

fn engine_loop(shared: Arc<Shared>, block_time: Duration, instant: bool, max_block_txs: usize) {
    let mut last = Instant::now();
    loop {
        {
            let mut pool = lock(&shared.pool);
            loop {
                if shared.is_shutting_down() {
                    tracing::info!("block engine stopped");
                    return;
                }
                if instant && pool.has_ready() {
                    break;
                }
                let due = last + block_time;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                pool = shared
                    .wake
                    .wait_timeout(pool, due - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        last = Instant::now();
        if let Err(e) = shared.produce_block(max_block_txs) {
            tracing::error!(error = %e, "block production failed; stopping the engine");
            shared.shutdown.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Reads the genesis stored in `data_dir`, or stores `given`; refuses a mismatch.
pub fn load_or_store_genesis(
    data_dir: &Path,
    given: Option<&GenesisConfig>,
) -> Result<GenesisConfig, NodeError> {
    let path = data_dir.join(GENESIS_FILE);
    let io = |e: std::io::Error| NodeError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let stored: GenesisConfig = serde_json::from_str(&text).map_err(|e| {
            NodeError::Genesis(format!(
                "{} is not a genesis configuration: {e}",
                path.display()
            ))
        })?;
        if let Some(g) = given {
            if *g != stored {
                return Err(NodeError::Genesis(format!(
                    "{} holds chain '{}' with another genesis than the one given (chain \
                     '{}'): a chain's genesis, its validator set included, never changes; \
                     for another chain use another --data-dir",
                    data_dir.display(),
                    stored.chain_name,
                    g.chain_name
                )));
            }
        }
        return Ok(stored);
    }
    let Some(g) = given else {
        return Err(NodeError::Genesis(format!(
            "{} holds no chain: start with --dev (or give a genesis) to create one",
            data_dir.display()
        )));
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let text = serde_json::to_string_pretty(g)
        .map_err(|e| NodeError::Genesis(format!("cannot encode genesis: {e}")))?;
    // Written to a temporary name first so that a crash never leaves half a file.
    let tmp = data_dir.join(format!("{GENESIS_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(g.clone())
}

/// A running node. Dropping it without [`NodeHandle::stop`] leaves the engine running.
#[derive(Debug)]
pub struct NodeHandle {
    shared: Arc<Shared>,
    engine: Option<std::thread::JoinHandle<()>>,
    server: jsonrpsee::server::ServerHandle,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    rpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl NodeHandle {
    /// Where the JSON-RPC server listens.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The chain's genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.shared.genesis_hash
    }

    /// The latest committed head.
    pub fn head(&self) -> HeadInfo {
        self.shared.head()
    }

    /// The hash of stored block `number`, if any.
    pub fn block_hash(&self, number: u64) -> Result<Option<Hash>, NodeError> {
        Ok(self.shared.store.block(number)?.map(|b| b.header.hash()))
    }

    /// The node's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// True once the engine stopped (on request or after a fatal storage error).
    pub fn engine_stopped(&self) -> bool {
        self.engine.as_ref().is_none_or(|e| e.is_finished())
    }

    /// Stops accepting transactions, lets the engine finish the block it is committing,
    /// then stops the RPC server.
    pub async fn stop(mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(engine) = self.engine.take() {
            let _ = tokio::task::spawn_blocking(move || engine.join()).await;
        }
        let _ = self.server.stop();
        self.server.clone().stopped().await;
        if let Some(t) = self.metrics_task.take() {
            t.abort();
        }
        // Connection tasks may still hold the state for a moment; wait for them so that the
        // database is closed (and can be reopened) when this returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.shared) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Which engine decides the blocks.
#[derive(Debug)]
pub(crate) enum EngineKind {
    /// This node alone produces every block.
    Solo,
    /// Blocks are decided by Tendermint rounds among the validators.
    #[cfg(feature = "bft")]
    Bft(Box<crate::bft::BftSettings>),
}

/// Opens (or initialises) the data directory, starts the engine and the servers.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_engine(config, EngineKind::Solo).await
}

/// [`start`] with the given engine.
pub(crate) async fn start_engine(
    config: NodeConfig,
    kind: EngineKind,
) -> Result<NodeHandle, NodeError> {
    if config.max_block_txs == 0 {
        return Err(NodeError::Config(
            "max block transactions must be at least 1".into(),
        ));
    }
    if config.block_time.is_zero() {
        return Err(NodeError::Config("block time must be positive".into()));
    }
    let genesis = load_or_store_genesis(&config.data_dir, config.genesis.as_ref())?;
    let db = config.data_dir.join(DB_FILE);
    let store = tokio::task::spawn_blocking(move || Store::open_or_init(&db, &genesis))
        .await
        .map_err(|e| NodeError::Config(format!("store task failed: {e}")))??;
    let genesis_hash = store.genesis_hash()?;
    let params = {
        let snap = store.snapshot()?;
        State::new(&snap).params()?
    };
    let header = store.head()?;
    let head = HeadInfo {
        number: header.number,
        hash: header.hash(),
        header,
    };
    tracing::info!(
        genesis = %genesis_hash,
        head = head.number,
        data_dir = %config.data_dir.display(),
        "chain opened"
    );
    let metrics = Arc::new(Metrics::default());
    metrics.head.store(head.number, Ordering::Relaxed);
    let (blocks, _) = broadcast::channel(NOTIFY_CAPACITY);
    let shared = Arc::new(Shared {
        store,
        genesis_hash,
        params,
        pool: Mutex::new(Mempool::new(config.mempool)),
        wake: Condvar::new(),
        head: RwLock::new(head),
        waiters: Mutex::new(HashMap::new()),
        blocks,
        metrics: metrics.clone(),
        shutdown: AtomicBool::new(false),
        forward: OnceLock::new(),
        verified: Mutex::new(VerifiedTxs::new(VERIFIED_TXS)),
    });
    let (server, rpc_addr) = crate::rpc::serve(shared.clone(), config.rpc_addr).await?;
    let (metrics_task, metrics_addr) = match config.metrics_addr {
        Some(addr) => {
            let l = metrics::bind(addr).await.map_err(|e| NodeError::Bind {
                addr: addr.to_string(),
                source: e,
            })?;
            let local = l.local_addr().ok();
            (Some(tokio::spawn(metrics::serve(l, metrics))), local)
        }
        None => (None, None),
    };
    let engine_shared = shared.clone();
    let (bt, instant, max) = (config.block_time, config.instant, config.max_block_txs);
    let engine = match kind {
        EngineKind::Solo => std::thread::Builder::new()
            .name("agora-engine".into())
            .spawn(move || engine_loop(engine_shared, bt, instant, max))
            .map_err(|e| NodeError::Config(format!("cannot start the engine thread: {e}")))?,
        #[cfg(feature = "bft")]
        EngineKind::Bft(settings) => {
            crate::bft::spawn(engine_shared, *settings, &config.data_dir, bt, max)?
        }
    };
    tracing::info!(%rpc_addr, instant, block_time_ms = bt.as_millis() as u64, "node started");
    Ok(NodeHandle {
        shared,
        engine: Some(engine),
        server,
        metrics_task,
        rpc_addr,
        metrics_addr,
    })
}
