//! Signature verification off the engine thread, batched.
//!
//! Admission verifies every signature before a transaction enters the pool, so the engine
//! builds blocks with [`agora_ledger::SignatureCheck::AlreadyVerified`]. Large submissions
//! are split into chunks verified in parallel on the rayon pool with schnorrkel's batch
//! verification (about twice as fast per signature as one by one); a chunk that fails is
//! re-checked one by one to find the bad signatures.

use agora_ledger::SignedTx;
use agora_primitives::crypto::SIGNING_CONTEXT;
use rayon::prelude::*;

/// Signatures per batch: large enough for batch verification's savings, small enough that
/// a bad signature only costs re-checking this many one by one.
const CHUNK: usize = 64;

fn verify_chunk(txs: &[SignedTx]) -> Vec<bool> {
    // Sorted by signer: batch verification merges adjacent equal public keys into one
    // term of its multi-scalar multiplication (sound: their scalars add up), and an
    // account's transactions tend to arrive together, so a chunk often holds few signers.
    let mut order: Vec<&SignedTx> = txs.iter().collect();
    order.sort_by_key(|tx| tx.signer.as_bytes());
    let mut keys: Vec<schnorrkel::PublicKey> = Vec::with_capacity(txs.len());
    let mut sigs = Vec::with_capacity(txs.len());
    let mut msgs = Vec::with_capacity(txs.len());
    let mut decodable = true;
    let mut last_signer: Option<&[u8; 32]> = None;
    for tx in order {
        let signer = tx.signer.as_bytes();
        // Decompressing a public key costs about a third of a verification: once per run.
        let key = match (last_signer, keys.last()) {
            (Some(prev), Some(key)) if prev == signer => Ok(*key),
            _ => schnorrkel::PublicKey::from_bytes(signer),
        };
        last_signer = Some(signer);
        match (key, schnorrkel::Signature::from_bytes(&tx.signature.0)) {
            (Ok(k), Ok(s)) => {
                keys.push(k);
                sigs.push(s);
                msgs.push(tx.payload.signing_hash());
            }
            _ => {
                decodable = false;
                break;
            }
        }
    }
    if decodable {
        let ctx = schnorrkel::signing_context(SIGNING_CONTEXT);
        let transcripts = msgs.iter().map(|m| ctx.bytes(m));
        if schnorrkel::verify_batch(transcripts, &sigs, &keys, true).is_ok() {
            return vec![true; txs.len()];
        }
    }
    txs.iter().map(SignedTx::verify_signature).collect()
}

/// Whether each transaction's signature verifies, in order. Uses the calling thread for
/// small inputs and the rayon pool for large ones.
pub fn verify_all(txs: &[SignedTx]) -> Vec<bool> {
    if txs.len() <= CHUNK {
        return verify_chunk(txs);
    }
    txs.par_chunks(CHUNK).flat_map_iter(verify_chunk).collect()
}

/// Hashes of transactions whose signatures this node verified, so that each is verified
/// once per node whichever way it arrives first (submitted, forwarded by a peer, or in a
/// peer's proposed block). A transaction's hash covers its signature: the same hash is
/// the same signed bytes. Bounded: the oldest entries are forgotten first, which only
/// costs a second verification.
#[derive(Debug)]
pub(crate) struct VerifiedTxs {
    set: std::collections::HashSet<agora_primitives::Hash>,
    order: std::collections::VecDeque<agora_primitives::Hash>,
    cap: usize,
}

impl VerifiedTxs {
    pub(crate) fn new(cap: usize) -> Self {
        VerifiedTxs {
            set: std::collections::HashSet::new(),
            order: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn contains(&self, hash: &agora_primitives::Hash) -> bool {
        self.set.contains(hash)
    }

    pub(crate) fn insert(&mut self, hash: agora_primitives::Hash) {
        if !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_ledger::{Call, TxPayload};
    use agora_primitives::{crypto::Pair, AccountId, Hash};

    /// A small transfer with nonce `n`, signed by `signer`.
    fn transfer(n: u64, signer: &Pair) -> SignedTx {
        TxPayload {
            genesis_hash: Hash::ZERO,
            nonce: n,
            valid_from: 0,
            valid_until: 9,
            tip_rao: 0,
            call: Call::Transfer {
                dest: AccountId([1; 32]),
                amount_rao: 5,
            },
        }
        .sign(signer)
    }

    #[test]
    fn finds_the_bad_signature_in_a_batch() {
        let p = Pair::from_uri("//Alice").unwrap();
        let mut txs: Vec<SignedTx> = (0..200).map(|n| transfer(n, &p)).collect();
        txs[130].payload.nonce = 9999;
        let ok = verify_all(&txs);
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[130]);
    }

    #[test]
    fn interleaved_signers_verify_and_a_forgery_is_caught() {
        let pairs = [
            Pair::from_uri("//Alice").unwrap(),
            Pair::from_uri("//Bob").unwrap(),
        ];
        let mut txs: Vec<SignedTx> = (0..150u64)
            .map(|n| transfer(n, &pairs[(n % 2) as usize]))
            .collect();
        assert!(verify_all(&txs).iter().all(|ok| *ok));
        // Bob's signature under Alice's name.
        txs[7].signer = pairs[0].account();
        let ok = verify_all(&txs);
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[7]);
    }

    #[test]
    fn the_verified_set_is_bounded() {
        let mut v = VerifiedTxs::new(2);
        for n in 1..=3u8 {
            v.insert(Hash([n; 32]));
        }
        assert!(!v.contains(&Hash([1; 32])));
        assert!(v.contains(&Hash([2; 32])) && v.contains(&Hash([3; 32])));
    }
}
