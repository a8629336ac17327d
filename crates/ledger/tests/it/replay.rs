use crate::harness::*;
use agora_ledger::{execute_block, query, Call, GenesisConfig, MemKv, SignatureCheck};
use rand::{Rng, SeedableRng};

/// Drives a chain with random transactions from a seed (printed, so a failure reproduces),
/// then replays every block into a fresh store and compares every state root.
#[test]
fn replay_reproduces_every_state_root() {
    let seed: u64 = std::env::var("AGORA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut c = TestChain::new();
    let users: Vec<_> = ["//Alice", "//Bob", "//Charlie", "//Dave"]
        .iter()
        .map(|u| pair(u))
        .collect();
    c.submit(
        &users[0],
        Call::CreateSubnet {
            hotkey: pair("//Alice/hot").account(),
        },
    )
    .unwrap();
    let netuid = query::subnets(&c.kv).unwrap()[0].0;
    for round in 0..40 {
        let mut txs = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let call = match rng.gen_range(0..4) {
                0 => Call::Transfer {
                    dest: users[(i + 1) % users.len()].account(),
                    amount_rao: rng.gen_range(0..5 * TOKEN),
                },
                1 => Call::BurnedRegister {
                    netuid,
                    hotkey: pair(&format!("//h{round}{i}")).account(),
                },
                2 => Call::AddStake {
                    hotkey: pair("//Alice/hot").account(),
                    amount_rao: rng.gen_range(1..TOKEN),
                },
                _ => Call::RemoveStake {
                    hotkey: pair("//Alice/hot").account(),
                    amount_rao: rng.gen_range(1..TOKEN),
                },
            };
            txs.push(c.tx(u, call));
        }
        c.block(txs);
    }
    c.check_issuance();

    let g = GenesisConfig::dev().build().unwrap();
    let mut kv = MemKv::new();
    kv.apply(&g.diff);
    let mut head = g.block.header;
    for b in &c.blocks {
        let out = execute_block(&kv, &head, b, SignatureCheck::Verify).unwrap();
        assert_eq!(out.block.header.state_root, b.header.state_root);
        kv.apply(&out.diff);
        head = out.block.header;
    }
    assert_eq!(kv, c.kv);
}

#[test]
fn tampered_block_is_refused() {
    let mut c = TestChain::new();
    c.submit(
        &alice(),
        Call::Transfer {
            dest: bob().account(),
            amount_rao: TOKEN,
        },
    )
    .unwrap();
    let g = GenesisConfig::dev().build().unwrap();
    let mut kv = MemKv::new();
    kv.apply(&g.diff);
    let mut b = c.blocks[0].clone();
    b.header.state_root.0[0] ^= 1;
    assert!(matches!(
        execute_block(&kv, &g.block.header, &b, SignatureCheck::Verify),
        Err(agora_ledger::BlockError::StateRootMismatch { .. })
    ));
    let mut b = c.blocks[0].clone();
    if let Call::Transfer { amount_rao, .. } = &mut b.txs[0].payload.call {
        *amount_rao += 1;
    }
    b.header.tx_root = agora_ledger::block::tx_root(&b.txs);
    assert!(matches!(
        execute_block(&kv, &g.block.header, &b, SignatureCheck::Verify),
        Err(agora_ledger::BlockError::InvalidTx { .. })
    ));
}

#[test]
fn genesis_differs_by_name() {
    let a = GenesisConfig::dev().build().unwrap();
    let mut cfg = GenesisConfig::dev();
    cfg.chain_name = "other".into();
    let b = cfg.build().unwrap();
    assert_ne!(a.block.header.hash(), b.block.header.hash());
}

fn arbitrary_call(rng: &mut rand_chacha::ChaCha8Rng, keys: &[agora_primitives::AccountId]) -> Call {
    use agora_ledger::types::Hyperparameter as H;
    use agora_primitives::NetUid;
    let k = |rng: &mut rand_chacha::ChaCha8Rng| keys[rng.gen_range(0..keys.len())];
    let netuid = NetUid(rng.gen_range(0..3));
    let amount = match rng.gen_range(0..4) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.gen_range(0..10 * TOKEN),
        _ => rng.gen(),
    };
    let small = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<u16> {
        (0..rng.gen_range(0..6))
            .map(|_| rng.gen_range(0..6))
            .collect()
    };
    match rng.gen_range(0..11) {
        0 => Call::Transfer {
            dest: k(rng),
            amount_rao: amount,
        },
        1 => Call::CreateSubnet { hotkey: k(rng) },
        2 => Call::SetHyperparameter {
            netuid,
            param: match rng.gen_range(0..4) {
                0 => H::Tempo(rng.gen()),
                1 => H::MaxAllowedUids(rng.gen_range(0..8)),
                2 => H::CommitRevealEnabled(rng.gen()),
                _ => H::Kappa(rng.gen()),
            },
        },
        3 => Call::BurnedRegister {
            netuid,
            hotkey: k(rng),
        },
        4 => Call::ServeAxon {
            netuid,
            ip: ["127.0.0.1", "::1", "x", "0.0.0.0"][rng.gen_range(0..4)].into(),
            port: rng.gen(),
            protocol: 0,
            version: 1,
            attestation_digest: None,
        },
        5 => Call::AddStake {
            hotkey: k(rng),
            amount_rao: amount,
        },
        6 => Call::RemoveStake {
            hotkey: k(rng),
            amount_rao: amount,
        },
        7 => Call::SetTake {
            hotkey: k(rng),
            take: rng.gen(),
        },
        8 => {
            let uids = small(rng);
            let values = small(rng);
            Call::SetWeights {
                netuid,
                uids,
                values,
                version_key: rng.gen_range(0..2),
            }
        }
        9 => Call::CommitWeights {
            netuid,
            commit_hash: agora_primitives::Hash(rng.gen()),
        },
        _ => Call::RevealWeights {
            netuid,
            uids: small(rng),
            values: small(rng),
            salt: small(rng),
            version_key: 0,
        },
    }
}

/// Random calls with hostile arguments from several signers: nothing panics, the issuance
/// invariant holds after every block, and a replay reproduces the chain.
#[test]
fn random_calls_keep_invariants() {
    for seed in 0..6u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut c = TestChain::new();
        let signers: Vec<_> = ["//Alice", "//Bob", "//Charlie", "//Alice/hot", "//Bob/hot"]
            .iter()
            .map(|u| pair(u))
            .collect();
        let keys: Vec<_> = signers.iter().map(|p| p.account()).collect();
        c.submit(
            &signers[0],
            Call::Transfer {
                dest: keys[3],
                amount_rao: 1000 * TOKEN,
            },
        )
        .unwrap();
        c.submit(
            &signers[1],
            Call::Transfer {
                dest: keys[4],
                amount_rao: 1000 * TOKEN,
            },
        )
        .unwrap();
        for _ in 0..25 {
            let mut txs = Vec::new();
            for s in &signers {
                if rng.gen_bool(0.6) {
                    let call = arbitrary_call(&mut rng, &keys);
                    txs.push(c.tx(s, call));
                }
            }
            c.block(txs);
            c.check_issuance();
        }
        let g = GenesisConfig::dev().build().unwrap();
        let mut kv = MemKv::new();
        kv.apply(&g.diff);
        let mut head = g.block.header;
        for b in &c.blocks {
            let out = execute_block(&kv, &head, b, SignatureCheck::Verify).unwrap();
            kv.apply(&out.diff);
            head = out.block.header;
        }
        assert_eq!(head, c.head, "seed {seed}");
    }
}
