//! Blocks: building one from candidate transactions, and executing one to check it.
//!
//! Both paths run the same code: the block's hooks ([`crate::epoch`]), then each transaction
//! through [`apply_tx`]. Building skips transactions that cannot enter a block; executing an
//! imported block refuses it if any transaction cannot.

use crate::epoch::on_initialize;
use crate::events::{BlockEvents, Event, Receipt};
use crate::exec::dispatch;
use crate::kv::{KvStore, StateDiff};
use crate::root::LtHash;
use crate::state::{keys, ExecError, State};
use crate::tx::SignedTx;
use crate::{BlockError, TxError};
use agora_primitives::{
    codec::{Decode, Encode},
    hashing::blake2_256_parts,
    AccountId, BlockNumber, Hash,
};
use serde::{Deserialize, Serialize};

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Header {
    /// Hash of the previous header (zero for genesis).
    pub parent_hash: Hash,
    /// Height.
    pub number: BlockNumber,
    /// Milliseconds since the Unix epoch, from the block producer; never decreases.
    pub timestamp_ms: u64,
    /// Commitment to the transactions: BLAKE2b-256 over their hashes in order.
    pub tx_root: Hash,
    /// The state root after this block (see [`crate::root`]).
    pub state_root: Hash,
}

impl Header {
    /// The block's identity.
    pub fn hash(&self) -> Hash {
        Hash(agora_primitives::hashing::blake2_256(&self.encode()))
    }
}

/// A block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Block {
    /// Header.
    pub header: Header,
    /// Transactions in execution order.
    pub txs: Vec<SignedTx>,
}

/// The transaction root of a list of transactions.
pub fn tx_root(txs: &[SignedTx]) -> Hash {
    let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
    let mut parts: Vec<&[u8]> = vec![b"agora/tx-root/v1"];
    parts.extend(hashes.iter().map(|h| h.0.as_slice()));
    Hash(blake2_256_parts(&parts))
}

/// The result of building or executing a block: the block itself, the state changes to
/// commit with it, and what happened.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    /// The block (with its final header).
    pub block: Block,
    /// State changes, to be committed atomically with the block.
    pub diff: StateDiff,
    /// Events and receipts.
    pub events: BlockEvents,
}

/// Whether [`apply_tx`] must verify the signature (already verified by the mempool when
/// building; always verified when executing a block from elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verify it.
    Verify,
    /// The caller verified this exact transaction already.
    AlreadyVerified,
}

/// The fee a transaction pays (tip included): flat + per byte, none for free calls except
/// the tip.
pub fn tx_fee(params: &crate::types::ChainParams, tx: &SignedTx, encoded_len: usize) -> u64 {
    let tip = tx.payload.tip_rao;
    if tx.payload.call.is_free() {
        return tip;
    }
    let bytes = u64::try_from(encoded_len).unwrap_or(u64::MAX);
    params
        .base_fee_rao
        .saturating_add(params.byte_fee_rao.saturating_mul(bytes))
        .saturating_add(tip)
}

/// Checks everything about `tx` that does not depend on what its call does: size, chain,
/// window, signature, nonce and fee. Pure reads; `block` is where it would be included.
pub fn check_envelope<S: KvStore + ?Sized>(
    st: &State<'_, S>,
    tx: &SignedTx,
    encoded_len: usize,
    block: BlockNumber,
    sig: SignatureCheck,
) -> Result<u64, ExecError> {
    let params = st.params()?;
    let max = usize::try_from(params.max_tx_bytes).unwrap_or(usize::MAX);
    if encoded_len > max {
        return Err(TxError::TooLarge {
            size: encoded_len,
            max,
        }
        .into());
    }
    let genesis = st.genesis_hash()?;
    if tx.payload.genesis_hash != genesis {
        return Err(TxError::WrongChain {
            expected: genesis.to_hex(),
        }
        .into());
    }
    let p = &tx.payload;
    if block < p.valid_from || block > p.valid_until {
        return Err(TxError::OutsideWindow {
            from: p.valid_from,
            until: p.valid_until,
            block,
        }
        .into());
    }
    let acct = st.account(&tx.signer)?;
    if p.nonce < acct.nonce {
        return Err(TxError::StaleNonce {
            got: p.nonce,
            expected: acct.nonce,
        }
        .into());
    }
    if p.nonce > acct.nonce {
        return Err(TxError::FutureNonce {
            got: p.nonce,
            expected: acct.nonce,
        }
        .into());
    }
    let fee = tx_fee(&params, tx, encoded_len);
    if acct.free_rao < fee {
        return Err(TxError::CannotPayFee {
            fee,
            free: acct.free_rao,
        }
        .into());
    }
    // Last, as the most expensive check.
    if sig == SignatureCheck::Verify && !tx.verify_signature() {
        return Err(TxError::BadSignature.into());
    }
    Ok(fee)
}

/// The outcome of [`apply_tx`] for a transaction that enters the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Fee charged.
    pub fee_rao: u64,
    /// The call's error, if it failed after the fee was taken.
    pub error: Option<TxError>,
}

/// Applies one transaction on top of `st`. `Err(Tx)` means it cannot enter the block at all
/// and nothing changed; `Ok` means it is included, successful or not.
pub fn apply_tx<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    tx: &SignedTx,
    encoded_len: usize,
    block: BlockNumber,
    sig: SignatureCheck,
    events: &mut Vec<Event>,
) -> Result<Applied, ExecError> {
    let fee = check_envelope(st, tx, encoded_len, block, sig)?;
    // Fee and nonce first, in the transaction's own buffer.
    charge_fee_and_nonce(st, &tx.signer, fee)?;
    let mark = events.len();
    match dispatch(st, &tx.signer, &tx.payload.call, block, events) {
        Ok(()) => {
            st.ov.commit_tx();
            Ok(Applied {
                fee_rao: fee,
                error: None,
            })
        }
        Err(ExecError::Tx(e)) => {
            events.truncate(mark);
            st.ov.rollback_tx();
            if tx.payload.call.is_free() {
                // A free call that fails would let anyone fill blocks at no cost: refuse it.
                return Err(ExecError::Tx(e));
            }
            // The call failed after the checks that guard the fee: keep fee and nonce.
            charge_fee_and_nonce(st, &tx.signer, fee)?;
            st.ov.commit_tx();
            Ok(Applied {
                fee_rao: fee,
                error: Some(e),
            })
        }
        Err(fatal) => {
            st.ov.rollback_tx();
            Err(fatal)
        }
    }
}

/// Takes the fee (burned) and advances the signer's nonce, in the open transaction buffer.
fn charge_fee_and_nonce<S: KvStore + ?Sized>(
    st: &mut State<'_, S>,
    signer: &AccountId,
    fee: u64,
) -> Result<(), ExecError> {
    let mut acct = st.account(signer)?;
    acct.nonce = acct.nonce.checked_add(1).ok_or(TxError::Overflow)?;
    acct.free_rao = acct.free_rao.saturating_sub(fee);
    st.put_account(signer, &acct);
    let mut totals = st.totals()?;
    totals.issuance_rao = totals.issuance_rao.saturating_sub(fee);
    st.put_totals(&totals);
    Ok(())
}

/// A transaction offered to [`build_block`], with its encoded length.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The transaction.
    pub tx: SignedTx,
    /// Its encoded length.
    pub encoded_len: usize,
    /// Whether its signature was verified already.
    pub sig: SignatureCheck,
}

/// A candidate that could not enter the block.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// The transaction's hash.
    pub tx_hash: Hash,
    /// Its signer.
    pub signer: AccountId,
    /// Why.
    pub error: TxError,
}

fn finish<S: KvStore + ?Sized>(
    st: State<'_, S>,
    header: Header,
    txs: Vec<SignedTx>,
    events: BlockEvents,
) -> Result<ExecutedBlock, BlockError> {
    let ov = st.ov;
    let mut acc = match ov.get_base(keys::LTHASH)? {
        Some(bytes) => LtHash::from_bytes(&bytes)
            .ok_or_else(|| BlockError::CorruptState("state root accumulator".into()))?,
        None => LtHash::default(),
    };
    acc.apply_diff(ov.block_diff(), |k| ov.get_base(k))?;
    let mut diff = ov.into_diff();
    let header = Header {
        state_root: acc.root(),
        ..header
    };
    diff.insert(keys::LTHASH.to_vec(), Some(acc.to_bytes()));
    Ok(ExecutedBlock {
        block: Block { header, txs },
        diff,
        events,
    })
}

fn next_header(parent: &Header, timestamp_ms: u64) -> Header {
    Header {
        parent_hash: parent.hash(),
        number: parent.number.saturating_add(1),
        timestamp_ms: timestamp_ms.max(parent.timestamp_ms),
        tx_root: Hash::ZERO,
        state_root: Hash::ZERO,
    }
}

/// Builds the block after `parent` from `candidates`, in the order given, stopping after
/// `max_txs` included transactions. Candidates that cannot enter are returned as rejected;
/// the state is untouched by them.
pub fn build_block<S: KvStore + ?Sized>(
    base: &S,
    parent: &Header,
    timestamp_ms: u64,
    candidates: impl IntoIterator<Item = Candidate>,
    max_txs: usize,
) -> Result<(ExecutedBlock, Vec<Rejected>), BlockError> {
    let mut header = next_header(parent, timestamp_ms);
    let number = header.number;
    let mut st = State::new(base);
    let mut events = Vec::new();
    on_initialize(&mut st, number, &mut events)?;
    st.ov.commit_tx();
    let mut receipts = Vec::new();
    let mut txs = Vec::new();
    let mut rejected = Vec::new();
    for c in candidates {
        if txs.len() >= max_txs {
            break;
        }
        let start = events.len();
        match apply_tx(&mut st, &c.tx, c.encoded_len, number, c.sig, &mut events) {
            Ok(applied) => {
                receipts.push(receipt(&c.tx, &applied, start, events.len()));
                txs.push(c.tx);
            }
            Err(ExecError::Tx(error)) => {
                rejected.push(Rejected {
                    tx_hash: c.tx.hash(),
                    signer: c.tx.signer,
                    error,
                });
            }
            Err(ExecError::Fatal(e)) => return Err(e),
        }
    }
    header.tx_root = tx_root(&txs);
    let block_events = BlockEvents {
        number,
        events,
        receipts,
    };
    Ok((finish(st, header, txs, block_events)?, rejected))
}

fn receipt(tx: &SignedTx, applied: &Applied, start: usize, end: usize) -> Receipt {
    let idx = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Receipt {
        tx_hash: tx.hash(),
        error: applied.error.as_ref().map(|e| (e.code(), e.to_string())),
        fee_rao: applied.fee_rao,
        events: (idx(start), idx(end)),
    }
}

/// Executes a block produced elsewhere (or replays a stored one) on top of `parent`'s state
/// and checks it: every transaction must enter, and the roots must match the header.
pub fn execute_block<S: KvStore + ?Sized>(
    base: &S,
    parent: &Header,
    block: &Block,
    sig: SignatureCheck,
) -> Result<ExecutedBlock, BlockError> {
    let h = &block.header;
    if h.number != parent.number.saturating_add(1) {
        return Err(BlockError::NotNextBlock {
            got: h.number,
            head: parent.number,
        });
    }
    if h.parent_hash != parent.hash() {
        return Err(BlockError::WrongParent);
    }
    if h.timestamp_ms < parent.timestamp_ms {
        return Err(BlockError::InvalidHeader("timestamp goes backwards".into()));
    }
    if h.tx_root != tx_root(&block.txs) {
        return Err(BlockError::InvalidHeader(
            "transaction root mismatch".into(),
        ));
    }
    let mut st = State::new(base);
    let mut events = Vec::new();
    on_initialize(&mut st, h.number, &mut events)?;
    st.ov.commit_tx();
    let mut receipts = Vec::new();
    for (index, tx) in block.txs.iter().enumerate() {
        let len = tx.encoded_size();
        let start = events.len();
        match apply_tx(&mut st, tx, len, h.number, sig, &mut events) {
            Ok(applied) => receipts.push(receipt(tx, &applied, start, events.len())),
            Err(ExecError::Tx(error)) => return Err(BlockError::InvalidTx { index, error }),
            Err(ExecError::Fatal(e)) => return Err(e),
        }
    }
    let header = Header {
        state_root: Hash::ZERO,
        ..h.clone()
    };
    let out = finish(
        st,
        header,
        block.txs.clone(),
        BlockEvents {
            number: h.number,
            events,
            receipts,
        },
    )?;
    if out.block.header.state_root != h.state_root {
        return Err(BlockError::StateRootMismatch {
            number: h.number,
            header: h.state_root.to_hex(),
            computed: out.block.header.state_root.to_hex(),
        });
    }
    Ok(out)
}
