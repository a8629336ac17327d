//! The mempool: admitted transactions waiting for a block.
//!
//! Per account, transactions are kept by nonce; a block takes each account's run of
//! consecutive nonces starting at the account's state nonce. Across accounts the next
//! transaction is the one with the highest tip, then the earliest arrival. Transactions
//! ahead of the state nonce (future nonces) wait, within a window, for the gap to fill.
//!
//! Every bound is explicit (see [`MempoolLimits`]): the pool refuses new transactions when
//! full rather than grow, so a flood costs the node at most the stated memory.

use agora_ledger::{Candidate, SignatureCheck, SignedTx, TxError};
use agora_primitives::{AccountId, BlockNumber, Hash};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// The pool's bounds.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held: 100k is ten seconds of the 10k tx/s target, enough to ride
    /// out a slow commit, small enough to scan every block.
    pub max_txs: usize,
    /// Most encoded bytes held: 64 MiB caps memory at about 60k maximal `set_weights`
    /// (64 KiB each is the chain's hard limit; real ones are ~1 KiB).
    pub max_bytes: usize,
    /// Most pending transactions per account: one account cannot take the whole pool.
    pub max_per_account: usize,
    /// How far ahead of the account's state nonce a transaction may be: bounds the gap a
    /// client can open, so future-nonce transactions cannot pile up without end.
    pub max_nonce_ahead: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_account: 8_192,
            max_nonce_ahead: 8_192,
        }
    }
}

/// Why the pool refused a transaction that passed the ledger's envelope checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolRefusal {
    /// The exact transaction is already pending.
    AlreadyKnown,
    /// Another transaction with this nonce is pending and the tip is not higher.
    NonceTaken,
    /// The nonce is below the account's state nonce.
    Stale {
        /// Nonce given.
        got: u64,
        /// The account's state nonce.
        expected: u64,
    },
    /// The nonce is too far ahead.
    TooFarAhead {
        /// Nonce given.
        got: u64,
        /// The account's state nonce.
        expected: u64,
    },
    /// The account has too many pending transactions.
    AccountFull,
    /// The pool is full.
    Full,
}

#[derive(Clone, Debug)]
struct PoolTx {
    tx: SignedTx,
    hash: Hash,
    len: usize,
    arrival: u64,
}

#[derive(Debug, Default)]
struct AccountTxs {
    /// The account's nonce in committed state, as far as the pool knows.
    state_nonce: u64,
    txs: BTreeMap<u64, PoolTx>,
}

/// A transaction removed from the pool without being included, and why.
#[derive(Clone, Debug)]
pub struct Dropped {
    /// Its hash.
    pub hash: Hash,
    /// Why.
    pub error: TxError,
}

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    accounts: HashMap<AccountId, AccountTxs>,
    by_hash: HashMap<Hash, (AccountId, u64)>,
    /// `(valid_until, hash)`: finds expired transactions without a scan.
    expiry: BTreeSet<(BlockNumber, Hash)>,
    bytes: usize,
    next_arrival: u64,
}

/// Ordering key of an account's next ready transaction: higher tip first, then earlier
/// arrival.
#[derive(PartialEq, Eq)]
struct Ready {
    tip: u64,
    arrival: Reverse<u64>,
    account: AccountId,
    nonce: u64,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.tip, self.arrival).cmp(&(other.tip, other.arrival))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Mempool {
    /// An empty pool.
    pub fn new(limits: MempoolLimits) -> Self {
        Mempool {
            limits,
            accounts: HashMap::new(),
            by_hash: HashMap::new(),
            expiry: BTreeSet::new(),
            bytes: 0,
            next_arrival: 0,
        }
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when the transaction is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The nonce the account's next new transaction should carry: its state nonce (or
    /// `state_nonce`, whichever is newer) plus its consecutive pending transactions.
    pub fn next_nonce(&self, account: &AccountId, state_nonce: u64) -> u64 {
        let Some(a) = self.accounts.get(account) else {
            return state_nonce;
        };
        let mut n = a.state_nonce.max(state_nonce);
        while a.txs.contains_key(&n) {
            n = n.saturating_add(1);
        }
        n
    }

    /// Adds a transaction whose signature and envelope were checked against a state where
    /// the signer's nonce was `state_nonce`.
    pub fn insert(
        &mut self,
        tx: SignedTx,
        hash: Hash,
        len: usize,
        state_nonce: u64,
    ) -> Result<(), PoolRefusal> {
        if self.by_hash.contains_key(&hash) {
            return Err(PoolRefusal::AlreadyKnown);
        }
        let signer = tx.signer;
        let nonce = tx.payload.nonce;
        let known = self
            .accounts
            .get(&signer)
            .map_or(state_nonce, |a| a.state_nonce.max(state_nonce));
        if nonce < known {
            return Err(PoolRefusal::Stale {
                got: nonce,
                expected: known,
            });
        }
        if nonce.saturating_sub(known) > self.limits.max_nonce_ahead {
            return Err(PoolRefusal::TooFarAhead {
                got: nonce,
                expected: known,
            });
        }
        let replacing = match self.accounts.get(&signer).and_then(|a| a.txs.get(&nonce)) {
            Some(old) if tx.payload.tip_rao > old.tx.payload.tip_rao => Some(old.hash),
            Some(_) => return Err(PoolRefusal::NonceTaken),
            None => None,
        };
        if replacing.is_none() {
            let count = self.accounts.get(&signer).map_or(0, |a| a.txs.len());
            if count >= self.limits.max_per_account {
                return Err(PoolRefusal::AccountFull);
            }
            if self.len() >= self.limits.max_txs
                || self.bytes.saturating_add(len) > self.limits.max_bytes
            {
                return Err(PoolRefusal::Full);
            }
        }
        if let Some(old) = replacing {
            self.remove(&old);
        }
        let arrival = self.next_arrival;
        self.next_arrival = self.next_arrival.saturating_add(1);
        self.expiry.insert((tx.payload.valid_until, hash));
        self.by_hash.insert(hash, (signer, nonce));
        self.bytes = self.bytes.saturating_add(len);
        let entry = self.accounts.entry(signer).or_default();
        entry.state_nonce = known;
        entry.txs.insert(
            nonce,
            PoolTx {
                tx,
                hash,
                len,
                arrival,
            },
        );
        Ok(())
    }

    /// Removes a transaction; true if it was pending.
    pub fn remove(&mut self, hash: &Hash) -> bool {
        let Some((signer, nonce)) = self.by_hash.remove(hash) else {
            return false;
        };
        if let Some(a) = self.accounts.get_mut(&signer) {
            if let Some(p) = a.txs.remove(&nonce) {
                self.bytes = self.bytes.saturating_sub(p.len);
                self.expiry.remove(&(p.tx.payload.valid_until, p.hash));
            }
            if a.txs.is_empty() {
                self.accounts.remove(&signer);
            }
        }
        true
    }

    /// True when at least one transaction could enter the next block.
    pub fn has_ready(&self) -> bool {
        self.accounts
            .values()
            .any(|a| a.txs.contains_key(&a.state_nonce))
    }

    /// Up to `max` transactions for the next block, in block order: each account's
    /// consecutive run from its state nonce, interleaved by tip then arrival.
    pub fn select(&self, max: usize) -> Vec<Candidate> {
        let mut heap = BinaryHeap::new();
        for (account, a) in &self.accounts {
            if let Some(p) = a.txs.get(&a.state_nonce) {
                heap.push(Ready {
                    tip: p.tx.payload.tip_rao,
                    arrival: Reverse(p.arrival),
                    account: *account,
                    nonce: a.state_nonce,
                });
            }
        }
        let mut out = Vec::with_capacity(max.min(self.len()));
        while out.len() < max {
            let Some(r) = heap.pop() else { break };
            let Some(a) = self.accounts.get(&r.account) else {
                continue;
            };
            let Some(p) = a.txs.get(&r.nonce) else {
                continue;
            };
            out.push(Candidate {
                tx: p.tx.clone(),
                encoded_len: p.len,
                sig: SignatureCheck::AlreadyVerified,
            });
            let next = r.nonce.saturating_add(1);
            if let Some(n) = a.txs.get(&next) {
                heap.push(Ready {
                    tip: n.tx.payload.tip_rao,
                    arrival: Reverse(n.arrival),
                    account: r.account,
                    nonce: next,
                });
            }
        }
        out
    }

    /// Records a committed block: its transactions leave the pool and their signers' state
    /// nonces advance; pending transactions that became stale are returned as dropped.
    pub fn on_included<'a>(&mut self, txs: impl IntoIterator<Item = &'a SignedTx>) -> Vec<Dropped> {
        let mut touched: BTreeMap<AccountId, u64> = BTreeMap::new();
        for tx in txs {
            let hash = tx.hash();
            self.remove(&hash);
            let next = tx.payload.nonce.saturating_add(1);
            let e = touched.entry(tx.signer).or_insert(next);
            *e = (*e).max(next);
        }
        let mut dropped = Vec::new();
        for (account, nonce) in touched {
            let Some(a) = self.accounts.get_mut(&account) else {
                continue;
            };
            a.state_nonce = a.state_nonce.max(nonce);
            let stale: Vec<(u64, Hash)> = a
                .txs
                .range(..a.state_nonce)
                .map(|(n, p)| (*n, p.hash))
                .collect();
            let expected = a.state_nonce;
            for (got, hash) in stale {
                self.remove(&hash);
                dropped.push(Dropped {
                    hash,
                    error: TxError::StaleNonce { got, expected },
                });
            }
        }
        dropped
    }

    /// Removes transactions whose window ends before block `next`.
    pub fn drop_expired(&mut self, next: BlockNumber) -> Vec<Dropped> {
        let expired: Vec<(BlockNumber, Hash)> =
            self.expiry.range(..(next, Hash::ZERO)).copied().collect();
        let mut dropped = Vec::with_capacity(expired.len());
        for (until, hash) in expired {
            let from = self
                .by_hash
                .get(&hash)
                .and_then(|(a, n)| self.accounts.get(a)?.txs.get(n))
                .map_or(0, |p| p.tx.payload.valid_from);
            if self.remove(&hash) {
                dropped.push(Dropped {
                    hash,
                    error: TxError::OutsideWindow {
                        from,
                        until,
                        block: next,
                    },
                });
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_ledger::{Call, TxPayload};
    use agora_primitives::crypto::Pair;

    fn tx(p: &Pair, nonce: u64, tip: u64) -> SignedTx {
        TxPayload {
            genesis_hash: Hash::ZERO,
            nonce,
            valid_from: 0,
            valid_until: 10,
            tip_rao: tip,
            call: Call::Transfer {
                dest: AccountId([9; 32]),
                amount_rao: 1,
            },
        }
        .sign(p)
    }

    fn add(pool: &mut Mempool, t: SignedTx, state_nonce: u64) -> Result<(), PoolRefusal> {
        let h = t.hash();
        pool.insert(t, h, 100, state_nonce)
    }

    #[test]
    fn orders_by_nonce_then_tip_then_arrival() {
        let a = Pair::from_uri("//A").unwrap();
        let b = Pair::from_uri("//B").unwrap();
        let mut pool = Mempool::new(MempoolLimits::default());
        add(&mut pool, tx(&a, 1, 0), 0).unwrap();
        add(&mut pool, tx(&a, 0, 0), 0).unwrap();
        add(&mut pool, tx(&b, 0, 5), 0).unwrap();
        add(&mut pool, tx(&a, 3, 0), 0).unwrap(); // gap: waits
        let sel: Vec<(AccountId, u64)> = pool
            .select(10)
            .iter()
            .map(|c| (c.tx.signer, c.tx.payload.nonce))
            .collect();
        assert_eq!(
            sel,
            vec![(b.account(), 0), (a.account(), 0), (a.account(), 1)]
        );
        assert_eq!(pool.next_nonce(&a.account(), 0), 2);
    }

    #[test]
    fn refuses_duplicates_stale_and_overflow() {
        let a = Pair::from_uri("//A").unwrap();
        let limits = MempoolLimits {
            max_txs: 2,
            max_nonce_ahead: 5,
            ..MempoolLimits::default()
        };
        let mut pool = Mempool::new(limits);
        let t = tx(&a, 3, 0);
        add(&mut pool, t.clone(), 3).unwrap();
        assert_eq!(add(&mut pool, t, 3), Err(PoolRefusal::AlreadyKnown));
        // Signatures are randomised: a re-signed copy is a different transaction.
        assert_eq!(
            add(&mut pool, tx(&a, 3, 0), 3),
            Err(PoolRefusal::NonceTaken)
        );
        assert!(matches!(
            add(&mut pool, tx(&a, 2, 0), 0),
            Err(PoolRefusal::Stale { .. })
        ));
        assert!(matches!(
            add(&mut pool, tx(&a, 9, 0), 3),
            Err(PoolRefusal::TooFarAhead { .. })
        ));
        add(&mut pool, tx(&a, 4, 0), 3).unwrap();
        assert_eq!(add(&mut pool, tx(&a, 5, 0), 3), Err(PoolRefusal::Full));
        // A higher tip replaces.
        add(&mut pool, tx(&a, 4, 1), 3).unwrap();
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn inclusion_and_expiry_prune() {
        let a = Pair::from_uri("//A").unwrap();
        let mut pool = Mempool::new(MempoolLimits::default());
        let t0 = tx(&a, 0, 0);
        add(&mut pool, t0.clone(), 0).unwrap();
        add(&mut pool, tx(&a, 1, 0), 0).unwrap();
        // Someone else's copy of nonce 1 was included: ours is stale.
        let mut other = tx(&a, 1, 7);
        other.payload.tip_rao = 7;
        let dropped = pool.on_included([&t0, &other]);
        assert_eq!(dropped.len(), 1);
        assert!(pool.is_empty());
        add(&mut pool, tx(&a, 2, 0), 2).unwrap();
        assert_eq!(pool.drop_expired(11).len(), 1);
        assert!(pool.is_empty());
    }
}
