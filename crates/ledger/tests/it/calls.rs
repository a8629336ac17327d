use crate::harness::*;
use agora_ledger::{query, types::Hyperparameter, Call, TxError};
use agora_primitives::NetUid;

fn new_subnet(c: &mut TestChain) -> NetUid {
    let owner = alice();
    c.submit(
        &owner,
        Call::CreateSubnet {
            hotkey: pair("//Alice/hot").account(),
        },
    )
    .unwrap();
    query::subnets(&c.kv).unwrap().last().unwrap().0
}

#[test]
fn transfer_moves_balance_and_charges_fee() {
    let mut c = TestChain::new();
    let (a, b) = (alice(), bob());
    let a0 = c.free(&a.account());
    let b0 = c.free(&b.account());
    c.submit(
        &a,
        Call::Transfer {
            dest: b.account(),
            amount_rao: 5 * TOKEN,
        },
    )
    .unwrap();
    let fee = a0 - 5 * TOKEN - c.free(&a.account());
    assert!(fee > 0);
    assert_eq!(c.free(&b.account()), b0 + 5 * TOKEN);
    assert_eq!(c.nonce(&a.account()), 1);
    c.check_issuance();
}

#[test]
fn transfer_errors_keep_fee_and_change_nothing_else() {
    let mut c = TestChain::new();
    let (a, b) = (alice(), bob());
    let b0 = c.free(&b.account());
    assert_eq!(
        c.submit_code(
            &a,
            Call::Transfer {
                dest: b.account(),
                amount_rao: 0
            }
        ),
        Err(202)
    );
    assert_eq!(
        c.submit_code(
            &a,
            Call::Transfer {
                dest: a.account(),
                amount_rao: 1
            }
        ),
        Err(203)
    );
    assert_eq!(
        c.submit_code(
            &a,
            Call::Transfer {
                dest: b.account(),
                amount_rao: u64::MAX
            }
        ),
        Err(200)
    );
    assert_eq!(c.free(&b.account()), b0);
    // The failed calls were included: the nonce moved and fees were taken.
    assert_eq!(c.nonce(&a.account()), 3);
    c.check_issuance();
}

#[test]
fn transfer_to_a_new_account() {
    let mut c = TestChain::new();
    let fresh = pair("//Fresh");
    c.submit(
        &alice(),
        Call::Transfer {
            dest: fresh.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    assert_eq!(c.free(&fresh.account()), TOKEN);
}

#[test]
fn create_subnet_locks_doubling_cost_and_registers_owner() {
    let mut c = TestChain::new();
    let a0 = c.free(&alice().account());
    let n1 = new_subnet(&mut c);
    let s1 = query::subnet(&c.kv, n1).unwrap().unwrap();
    assert_eq!(n1, NetUid(1));
    assert_eq!(s1.n, 1);
    assert!(a0 - c.free(&alice().account()) >= s1.locked_rao);
    let mg = query::metagraph(&c.kv, n1).unwrap().unwrap();
    assert_eq!(mg[0].hotkey, pair("//Alice/hot").account());
    // The next subnet costs about twice as much.
    c.submit(
        &bob(),
        Call::CreateSubnet {
            hotkey: pair("//Bob/hot").account(),
        },
    )
    .unwrap();
    let s2 = query::subnet(&c.kv, NetUid(2)).unwrap().unwrap();
    assert!(
        s2.locked_rao > s1.locked_rao * 19 / 10,
        "{} vs {}",
        s2.locked_rao,
        s1.locked_rao
    );
    c.check_issuance();
}

#[test]
fn create_subnet_errors() {
    let mut c = TestChain::new();
    let poor = pair("//Poor");
    c.submit(
        &alice(),
        Call::Transfer {
            dest: poor.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    assert_eq!(
        c.submit_code(
            &poor,
            Call::CreateSubnet {
                hotkey: poor.account()
            }
        ),
        Err(200)
    );
    new_subnet(&mut c);
    // Alice's hotkey is now owned by Alice: Bob cannot use it.
    assert_eq!(
        c.submit_code(
            &bob(),
            Call::CreateSubnet {
                hotkey: pair("//Alice/hot").account()
            }
        ),
        Err(401)
    );
}

#[test]
fn hyperparameters_owner_only_and_range_checked() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    let set = |p| Call::SetHyperparameter {
        netuid: n,
        param: p,
    };
    assert_eq!(
        c.submit_code(&bob(), set(Hyperparameter::Tempo(5))),
        Err(301)
    );
    assert_eq!(
        c.submit_code(&alice(), set(Hyperparameter::Tempo(0))),
        Err(302)
    );
    assert_eq!(
        c.submit_code(&alice(), set(Hyperparameter::BondsMovingAverage(1_000_001))),
        Err(302)
    );
    assert_eq!(
        c.submit_code(&alice(), set(Hyperparameter::AlphaValues(50_000, 40_000))),
        Err(302)
    );
    assert_eq!(
        c.submit_code(&alice(), set(Hyperparameter::MaxAllowedUids(0))),
        Err(302)
    );
    assert_eq!(
        c.submit_code(&alice(), set(Hyperparameter::MinBurn(u64::MAX))),
        Err(302)
    );
    c.submit(&alice(), set(Hyperparameter::Tempo(5))).unwrap();
    c.submit(&alice(), set(Hyperparameter::Yuma3(true)))
        .unwrap();
    let s = query::subnet(&c.kv, n).unwrap().unwrap();
    assert_eq!(s.hyperparams.tempo, 5);
    assert!(s.hyperparams.yuma3);
    assert_eq!(
        c.submit_code(
            &alice(),
            Call::SetHyperparameter {
                netuid: NetUid(99),
                param: Hyperparameter::Tempo(5)
            }
        ),
        Err(300)
    );
}

#[test]
fn registration_burns_and_assigns_uids() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    let burn = query::subnet(&c.kv, n).unwrap().unwrap().burn_rao;
    let b0 = c.free(&bob().account());
    c.submit(
        &bob(),
        Call::BurnedRegister {
            netuid: n,
            hotkey: pair("//Bob/m1").account(),
        },
    )
    .unwrap();
    assert!(b0 - c.free(&bob().account()) >= burn);
    let mg = query::metagraph(&c.kv, n).unwrap().unwrap();
    assert_eq!(mg.len(), 2);
    assert_eq!(mg[1].coldkey, bob().account());
    // Errors.
    let reg = |h: &str| Call::BurnedRegister {
        netuid: n,
        hotkey: pair(h).account(),
    };
    assert_eq!(c.submit_code(&bob(), reg("//Bob/m1")), Err(400));
    assert_eq!(c.submit_code(&pair("//Charlie"), reg("//Bob/m1")), Err(400));
    c.submit(
        &bob(),
        Call::CreateSubnet {
            hotkey: pair("//Bob/own").account(),
        },
    )
    .unwrap();
    assert_eq!(
        c.submit_code(&pair("//Charlie"), reg("//Bob/own")),
        Err(401)
    );
    assert_eq!(
        c.submit_code(
            &bob(),
            Call::BurnedRegister {
                netuid: NetUid(42),
                hotkey: bob().account()
            }
        ),
        Err(300)
    );
    c.check_issuance();
}

#[test]
fn registration_rate_limits() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::MaxRegistrationsPerBlock(1),
        },
    )
    .unwrap();
    let b = bob();
    let t1 = c.tx(
        &b,
        Call::BurnedRegister {
            netuid: n,
            hotkey: pair("//h1").account(),
        },
    );
    let mut p2 = c.payload(
        &b,
        Call::BurnedRegister {
            netuid: n,
            hotkey: pair("//h2").account(),
        },
    );
    p2.nonce += 1;
    let t2 = p2.sign(&b);
    let (built, rejected) = c.block(vec![t1, t2]);
    assert!(built.events.receipts[0].error.is_none());
    assert_eq!(
        built.events.receipts[1].error.as_ref().map(|e| e.0),
        Some(403)
    );
    assert!(rejected.is_empty());
}

#[test]
fn full_subnet_prunes_lowest_non_immune_and_never_the_owner() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    let set = |p| Call::SetHyperparameter {
        netuid: n,
        param: p,
    };
    c.submit(&alice(), set(Hyperparameter::MaxAllowedUids(3)))
        .unwrap();
    c.submit(&alice(), set(Hyperparameter::ImmunityPeriod(5)))
        .unwrap();
    for h in ["//m1", "//m2"] {
        c.submit(
            &bob(),
            Call::BurnedRegister {
                netuid: n,
                hotkey: pair(h).account(),
            },
        )
        .unwrap();
    }
    // Everyone still immune.
    assert_eq!(
        c.submit_code(
            &bob(),
            Call::BurnedRegister {
                netuid: n,
                hotkey: pair("//m3").account()
            }
        ),
        Err(402)
    );
    c.advance(6);
    c.submit(
        &bob(),
        Call::BurnedRegister {
            netuid: n,
            hotkey: pair("//m3").account(),
        },
    )
    .unwrap();
    let mg = query::metagraph(&c.kv, n).unwrap().unwrap();
    assert_eq!(mg.len(), 3);
    assert_eq!(mg[0].hotkey, pair("//Alice/hot").account(), "owner kept");
    assert_eq!(
        mg[1].hotkey,
        pair("//m3").account(),
        "earliest lowest-emission neuron replaced"
    );
    assert_eq!(mg[2].hotkey, pair("//m2").account());
}

#[test]
fn serve_axon_validates_endpoint() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    let hot = pair("//Bob/m1");
    c.submit(
        &bob(),
        Call::BurnedRegister {
            netuid: n,
            hotkey: hot.account(),
        },
    )
    .unwrap();
    c.submit(
        &alice(),
        Call::Transfer {
            dest: hot.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    let axon = |ip: &str, port| Call::ServeAxon {
        netuid: n,
        ip: ip.into(),
        port,
        protocol: 0,
        version: 1,
        attestation_digest: Some([7; 32]),
    };
    assert_eq!(
        c.submit(&hot, axon("not-an-ip", 80)).map_err(|e| e.code()),
        Err(406)
    );
    assert_eq!(
        c.submit(&hot, axon("0.0.0.0", 80)).map_err(|e| e.code()),
        Err(406)
    );
    assert_eq!(
        c.submit(&hot, axon("127.0.0.1", 0)).map_err(|e| e.code()),
        Err(406)
    );
    assert_eq!(
        c.submit(&pair("//Stranger"), axon("127.0.0.1", 80))
            .map_err(|e| e.code()),
        Err(404)
    );
    c.submit(&hot, axon("127.0.0.1", 8091)).unwrap();
    let mg = query::metagraph(&c.kv, n).unwrap().unwrap();
    let a = mg[1].axon.clone().unwrap();
    assert_eq!(
        (a.ip.as_str(), a.port, a.attestation_digest),
        ("127.0.0.1", 8091, Some([7; 32]))
    );
    // Free calls that fail never enter a block, so the hotkey's nonce moved only once.
    assert_eq!(c.nonce(&hot.account()), 1);
}

#[test]
fn stake_add_remove_and_take() {
    let mut c = TestChain::new();
    let n = new_subnet(&mut c);
    let hot = pair("//Bob/v");
    c.submit(
        &bob(),
        Call::BurnedRegister {
            netuid: n,
            hotkey: hot.account(),
        },
    )
    .unwrap();
    let add = |amount_rao| Call::AddStake {
        hotkey: hot.account(),
        amount_rao,
    };
    c.submit(&bob(), add(100 * TOKEN)).unwrap();
    // Charlie nominates.
    c.submit(&pair("//Charlie"), add(50 * TOKEN)).unwrap();
    assert_eq!(
        query::hotkey(&c.kv, &hot.account())
            .unwrap()
            .unwrap()
            .total_stake_rao,
        150 * TOKEN
    );
    assert_eq!(
        query::stakes_of(&c.kv, &bob().account()).unwrap(),
        vec![(hot.account(), 100 * TOKEN)]
    );
    c.submit(
        &pair("//Charlie"),
        Call::RemoveStake {
            hotkey: hot.account(),
            amount_rao: 20 * TOKEN,
        },
    )
    .unwrap();
    assert_eq!(
        c.submit_code(
            &pair("//Charlie"),
            Call::RemoveStake {
                hotkey: hot.account(),
                amount_rao: 31 * TOKEN
            }
        ),
        Err(501)
    );
    assert_eq!(c.submit_code(&bob(), add(0)), Err(202));
    assert_eq!(c.submit_code(&bob(), add(u64::MAX)), Err(200));
    assert_eq!(
        c.submit_code(
            &bob(),
            Call::AddStake {
                hotkey: pair("//Nobody").account(),
                amount_rao: 1
            }
        ),
        Err(500)
    );
    // Take.
    assert_eq!(
        c.submit_code(
            &pair("//Charlie"),
            Call::SetTake {
                hotkey: hot.account(),
                take: 100
            }
        ),
        Err(502)
    );
    assert_eq!(
        c.submit_code(
            &bob(),
            Call::SetTake {
                hotkey: hot.account(),
                take: 65_535
            }
        ),
        Err(503)
    );
    c.submit(
        &bob(),
        Call::SetTake {
            hotkey: hot.account(),
            take: 100,
        },
    )
    .unwrap();
    assert_eq!(
        query::hotkey(&c.kv, &hot.account()).unwrap().unwrap().take,
        100
    );
    c.check_issuance();
}

/// A subnet with a staked validator holding a permit (after one epoch) and two miners.
pub fn subnet_with_validator(c: &mut TestChain) -> NetUid {
    let n = new_subnet(c);
    let v = pair("//Bob/v");
    c.submit(
        &bob(),
        Call::BurnedRegister {
            netuid: n,
            hotkey: v.account(),
        },
    )
    .unwrap();
    c.submit(
        &bob(),
        Call::AddStake {
            hotkey: v.account(),
            amount_rao: 1000 * TOKEN,
        },
    )
    .unwrap();
    for m in ["//m1", "//m2"] {
        c.submit(
            &pair("//Charlie"),
            Call::BurnedRegister {
                netuid: n,
                hotkey: pair(m).account(),
            },
        )
        .unwrap();
    }
    c.submit(
        &alice(),
        Call::Transfer {
            dest: v.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    // Run to the first epoch so that permits are assigned.
    let tempo = query::subnet(&c.kv, n).unwrap().unwrap().hyperparams.tempo as u64;
    c.advance(tempo + 1);
    let mg = query::metagraph(&c.kv, n).unwrap().unwrap();
    assert!(mg[1].validator_permit, "validator got a permit: {mg:?}");
    n
}

#[test]
fn set_weights_rules() {
    let mut c = TestChain::new();
    let n = subnet_with_validator(&mut c);
    let v = pair("//Bob/v");
    let w = |uids: Vec<u16>, values: Vec<u16>| Call::SetWeights {
        netuid: n,
        uids,
        values,
        version_key: 0,
    };
    let code = |c: &mut TestChain, call| c.submit(&v, call).map_err(|e| e.code());
    assert_eq!(code(&mut c, w(vec![2, 3], vec![1])), Err(600));
    assert_eq!(code(&mut c, w(vec![2, 2], vec![1, 1])), Err(601));
    assert_eq!(code(&mut c, w(vec![2, 9], vec![1, 1])), Err(405));
    c.submit(&v, w(vec![2, 3], vec![10, 30])).unwrap();
    // Stored max-upscaled, in submission order.
    let st = agora_ledger::state::State::new(&c.kv);
    assert_eq!(st.weights(n, 1).unwrap(), vec![(2, 21_845), (3, 65_535)]);
    // A miner without permit may only weight itself.
    let m1 = pair("//m1");
    c.submit(
        &alice(),
        Call::Transfer {
            dest: m1.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    assert_eq!(
        c.submit(&m1, w(vec![3], vec![1])).map_err(|e| e.code()),
        Err(605)
    );
    c.submit(&m1, w(vec![2], vec![1])).unwrap();
    // Version key and rate limit.
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::WeightsVersion(5),
        },
    )
    .unwrap();
    assert_eq!(code(&mut c, w(vec![2], vec![1])), Err(603));
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::WeightsVersion(0),
        },
    )
    .unwrap();
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::WeightsRateLimit(50),
        },
    )
    .unwrap();
    assert_eq!(code(&mut c, w(vec![2], vec![1])), Err(604));
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::MinAllowedWeights(2),
        },
    )
    .unwrap();
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::WeightsRateLimit(0),
        },
    )
    .unwrap();
    assert_eq!(code(&mut c, w(vec![2, 3], vec![1, 0])), Err(602));
    // Direct weights refused when commit-reveal is on.
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::CommitRevealEnabled(true),
        },
    )
    .unwrap();
    assert_eq!(code(&mut c, w(vec![2, 3], vec![1, 1])), Err(606));
}

#[test]
fn commit_then_reveal_in_its_window() {
    let mut c = TestChain::new();
    let n = subnet_with_validator(&mut c);
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::CommitRevealEnabled(true),
        },
    )
    .unwrap();
    let v = pair("//Bob/v");
    let (uids, values, salt) = (vec![2u16, 3], vec![5u16, 7], vec![9u16, 9, 9]);
    let hash = agora_ledger::commit_hash(&v.account(), n, &uids, &values, &salt, 0);
    let reveal = |uids: Vec<u16>, salt: Vec<u16>| Call::RevealWeights {
        netuid: n,
        uids,
        values: values.clone(),
        salt,
        version_key: 0,
    };
    let tempo = query::subnet(&c.kv, n).unwrap().unwrap().hyperparams.tempo as u64;
    // Commit where the following block is still in the same epoch.
    while (c.head.number + 2 + u64::from(n.0) + 1) % (tempo + 1) == 0 {
        c.advance(1);
    }
    c.submit(
        &v,
        Call::CommitWeights {
            netuid: n,
            commit_hash: hash,
        },
    )
    .unwrap();
    assert_eq!(
        c.submit(&v, reveal(uids.clone(), salt.clone()))
            .map_err(|e| e.code()),
        Err(608)
    );
    assert_eq!(
        c.submit(&v, reveal(uids.clone(), vec![1]))
            .map_err(|e| e.code()),
        Err(607)
    );
    // Move into the next epoch (reveal period 1).
    let mut revealed = false;
    for _ in 0..=tempo + 1 {
        c.advance(1);
        if c.submit(&v, reveal(uids.clone(), salt.clone())).is_ok() {
            revealed = true;
            break;
        }
    }
    assert!(revealed, "reveal accepted within one tempo");
    let st = agora_ledger::state::State::new(&c.kv);
    assert_eq!(st.weights(n, 1).unwrap(), vec![(2, 46_810), (3, 65_535)]);
    // A commit left unrevealed past its window expires.
    let hash2 = agora_ledger::commit_hash(&v.account(), n, &uids, &values, &[1], 0);
    c.submit(
        &v,
        Call::CommitWeights {
            netuid: n,
            commit_hash: hash2,
        },
    )
    .unwrap();
    c.advance(3 * (tempo + 1));
    assert_eq!(
        c.submit(&v, reveal(uids.clone(), vec![1]))
            .map_err(|e| e.code()),
        Err(609)
    );
}

#[test]
fn commit_requires_commit_reveal_and_registration() {
    let mut c = TestChain::new();
    let n = subnet_with_validator(&mut c);
    let v = pair("//Bob/v");
    let call = Call::CommitWeights {
        netuid: n,
        commit_hash: agora_primitives::Hash([1; 32]),
    };
    assert_eq!(c.submit(&v, call.clone()).map_err(|e| e.code()), Err(606));
    c.submit(
        &alice(),
        Call::SetHyperparameter {
            netuid: n,
            param: Hyperparameter::CommitRevealEnabled(true),
        },
    )
    .unwrap();
    let stranger = pair("//Stranger");
    c.submit(
        &alice(),
        Call::Transfer {
            dest: stranger.account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    assert_eq!(c.submit(&stranger, call).map_err(|e| e.code()), Err(404));
    let _ = TxError::NoMatchingCommit;
}
