use crate::calls::subnet_with_validator;
use crate::harness::*;
use agora_ledger::{query, Call, Event};

#[test]
fn epoch_pays_miners_validators_nominators_and_owner() {
    let mut c = TestChain::new();
    let n = subnet_with_validator(&mut c);
    let v = pair("//Bob/v");
    // A nominator on the validator.
    c.submit(
        &pair("//Dave"),
        Call::AddStake {
            hotkey: v.account(),
            amount_rao: 500 * TOKEN,
        },
    )
    .unwrap();
    // The validator weights miner uid 3 above uid 2.
    c.submit(
        &v,
        Call::SetWeights {
            netuid: n,
            uids: vec![2, 3],
            values: vec![1, 3],
            version_key: 0,
        },
    )
    .unwrap();
    let owner0 = c.free(&alice().account());
    let tempo = query::subnet(&c.kv, n).unwrap().unwrap().hyperparams.tempo as u64;
    let mut epochs = 0;
    for _ in 0..3 * (tempo + 1) {
        let (b, _) = c.block(Vec::new());
        epochs += b
            .events
            .events
            .iter()
            .filter(|e| matches!(e, Event::EpochCompleted { .. }))
            .count();
    }
    assert!(epochs >= 2);
    let mg = query::metagraph(&c.kv, n).unwrap().unwrap();
    let (m1, m2) = (&mg[2], &mg[3]);
    assert!(m2.incentive > m1.incentive, "{mg:#?}");
    assert!(
        m1.stake > 0 && m2.stake > m1.stake,
        "miners were paid as stake"
    );
    assert!(mg[1].dividends > 0);
    // The nominator earned on top of its stake.
    let dave = query::stakes_of(&c.kv, &pair("//Dave").account()).unwrap();
    assert!(dave[0].1 > 500 * TOKEN);
    assert!(c.free(&alice().account()) > owner0, "owner cut paid");
    c.check_issuance();
}

#[test]
fn emission_accrues_only_to_existing_subnets() {
    let mut c = TestChain::new();
    c.advance(5);
    let st = agora_ledger::state::State::new(&c.kv);
    let issuance0 = st.totals().unwrap().issuance_rao;
    assert_eq!(
        issuance0,
        6 * 1_000_000 * TOKEN,
        "nothing minted without subnets"
    );
    c.check_issuance();
}
