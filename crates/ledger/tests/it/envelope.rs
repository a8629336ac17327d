use crate::harness::*;
use agora_ledger::{Call, SignedTx, TxError};
use agora_primitives::{codec::Encode, Hash};
use proptest::prelude::*;

fn transfer() -> Call {
    Call::Transfer {
        dest: bob().account(),
        amount_rao: TOKEN,
    }
}

/// Submits a transaction that must be rejected, and checks that nothing changed.
fn rejected(c: &mut TestChain, tx: SignedTx) -> TxError {
    let before = c.kv.clone();
    let err = c.submit_tx(tx).unwrap_err();
    // Only the hooks of the empty block ran: no account changed.
    let changed_accounts =
        c.kv.iter()
            .filter(|(k, _)| k.starts_with(agora_ledger::state::keys::ACCOUNT))
            .filter(|(k, v)| agora_ledger::KvStore::get(&before, k).unwrap().as_ref() != Some(*v))
            .count();
    assert_eq!(
        changed_accounts, 0,
        "a rejected transaction changed an account"
    );
    assert!(
        c.blocks.last().unwrap().txs.is_empty(),
        "a rejected transaction entered a block"
    );
    err
}

#[test]
fn bad_signature() {
    let mut c = TestChain::new();
    let mut tx = c.tx(&alice(), transfer());
    tx.signature.0[3] ^= 1;
    assert_eq!(rejected(&mut c, tx), TxError::BadSignature);
    // Signed by someone else.
    let mut tx = c.tx(&alice(), transfer());
    tx.signer = bob().account();
    assert_eq!(rejected(&mut c, tx), TxError::BadSignature);
}

#[test]
fn wrong_chain() {
    let mut c = TestChain::new();
    let mut p = c.payload(&alice(), transfer());
    p.genesis_hash = Hash([9; 32]);
    assert!(matches!(
        rejected(&mut c, p.sign(&alice())),
        TxError::WrongChain { .. }
    ));
}

#[test]
fn stale_and_future_nonces() {
    let mut c = TestChain::new();
    c.submit(&alice(), transfer()).unwrap();
    let mut p = c.payload(&alice(), transfer());
    p.nonce = 0;
    assert_eq!(
        rejected(&mut c, p.clone().sign(&alice())),
        TxError::StaleNonce {
            got: 0,
            expected: 1
        }
    );
    p.nonce = 5;
    assert_eq!(
        rejected(&mut c, p.sign(&alice())),
        TxError::FutureNonce {
            got: 5,
            expected: 1
        }
    );
}

#[test]
fn validity_window() {
    let mut c = TestChain::new();
    c.advance(3);
    let mut p = c.payload(&alice(), transfer());
    p.valid_until = 2;
    assert!(matches!(
        rejected(&mut c, p.clone().sign(&alice())),
        TxError::OutsideWindow { .. }
    ));
    p.valid_from = 100;
    p.valid_until = 200;
    assert!(matches!(
        rejected(&mut c, p.sign(&alice())),
        TxError::OutsideWindow { .. }
    ));
}

#[test]
fn cannot_pay_fee() {
    let mut c = TestChain::new();
    let broke = pair("//Broke");
    let tx = c.tx(
        &broke,
        Call::Transfer {
            dest: bob().account(),
            amount_rao: 1,
        },
    );
    let err = rejected(&mut c, tx);
    assert!(matches!(err, TxError::CannotPayFee { .. }));
}

#[test]
fn too_large() {
    let mut c = TestChain::new();
    let n = 40_000;
    let call = Call::SetWeights {
        netuid: agora_primitives::NetUid(1),
        uids: vec![0; n],
        values: vec![0; n],
        version_key: 0,
    };
    let tx = c.tx(&alice(), call);
    assert!(matches!(rejected(&mut c, tx), TxError::TooLarge { .. }));
}

#[test]
fn malformed_bytes() {
    assert!(matches!(
        SignedTx::decode_exact(&[]),
        Err(TxError::Malformed(_))
    ));
    let c = TestChain::new();
    let mut bytes = c.tx(&alice(), transfer()).encode();
    bytes.push(0);
    assert!(matches!(
        SignedTx::decode_exact(&bytes),
        Err(TxError::Malformed(_))
    ));
    bytes.pop();
    assert!(SignedTx::decode_exact(&bytes).is_ok());
    bytes.truncate(bytes.len() - 1);
    assert!(SignedTx::decode_exact(&bytes).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedTx::decode_exact(&bytes);
    }

    #[test]
    fn mutated_transactions_are_rejected_or_harmless(pos in 0usize..200, bit in 0u8..8) {
        let mut c = TestChain::new();
        let mut bytes = c.tx(&alice(), transfer()).encode();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(tx) = SignedTx::decode_exact(&bytes) {
            // Any flipped bit breaks the signature or the envelope.
            prop_assert!(c.submit_tx(tx).is_err());
        }
    }
}
