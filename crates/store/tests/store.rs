//! The redb store against the in-memory reference: same state after the same blocks,
//! durable across reopen, replay checks every root, bad blocks refused.

use agora_ledger::{
    build_block, Call, Candidate, GenesisConfig, KvStore, MemKv, SignatureCheck, TxPayload,
};
use agora_primitives::{codec::Encode, crypto::Pair};
use agora_store::{replay, Store, StoreError};

fn transfer_block(store: &Store, nonce: u64, amount: u64) -> agora_ledger::ExecutedBlock {
    let alice = Pair::from_uri("//Alice").unwrap();
    let head = store.head().unwrap();
    let tx = TxPayload {
        genesis_hash: store.genesis_hash().unwrap(),
        nonce,
        valid_from: 0,
        valid_until: 1000,
        tip_rao: 0,
        call: Call::Transfer {
            dest: Pair::from_uri("//Bob").unwrap().account(),
            amount_rao: amount,
        },
    }
    .sign(&alice);
    let c = Candidate {
        encoded_len: tx.encoded_size(),
        tx,
        sig: SignatureCheck::Verify,
    };
    let snap = store.snapshot().unwrap();
    let (b, rejected) = build_block(&snap, &head, head.timestamp_ms + 1, [c], 10).unwrap();
    assert!(rejected.is_empty());
    b
}

#[test]
fn blocks_survive_reopen_and_replay_matches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let genesis = GenesisConfig::dev();
    let mut mem = MemKv::new();
    mem.apply(&genesis.build().unwrap().diff);
    {
        let store = Store::open_or_init(&path, &genesis).unwrap();
        for i in 0..5 {
            let b = transfer_block(&store, i, 1000 + i);
            mem.apply(&b.diff);
            store.commit_block(&b).unwrap();
        }
    }
    let store = Store::open_or_init(&path, &genesis).unwrap();
    let head = store.head().unwrap();
    assert_eq!(head.number, 5);
    let snap = store.snapshot().unwrap();
    for (k, v) in mem.iter() {
        assert_eq!(snap.get(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(
        snap.scan_prefix(b"acct").unwrap(),
        mem.scan_prefix(b"acct").unwrap()
    );
    let b3 = store.block(3).unwrap().unwrap();
    assert_eq!(
        store.block_number_by_hash(&b3.header.hash()).unwrap(),
        Some(3)
    );
    assert_eq!(store.tx_location(&b3.txs[0].hash()).unwrap(), Some((3, 0)));
    assert_eq!(store.events(3).unwrap().unwrap().receipts.len(), 1);

    let mut seen = Vec::new();
    let report = replay(&store, &dir.path().join("replay.redb"), &genesis, |n, _| {
        seen.push(n)
    })
    .unwrap();
    assert_eq!(report.state_root, head.state_root);
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
}

#[test]
fn refuses_blocks_that_do_not_extend_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(&dir.path().join("c.redb"), &GenesisConfig::dev()).unwrap();
    let b = transfer_block(&store, 0, 1);
    store.commit_block(&b).unwrap();
    assert!(matches!(
        store.commit_block(&b),
        Err(StoreError::NotNext { .. })
    ));
}

#[test]
fn refuses_another_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    Store::open_or_init(&path, &GenesisConfig::dev()).unwrap();
    let mut other = GenesisConfig::dev();
    other.chain_name = "other".into();
    assert!(matches!(
        Store::open_or_init(&path, &other),
        Err(StoreError::GenesisMismatch { .. })
    ));
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, b"this is not a database").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("garbage.redb"), "{err}");
}
