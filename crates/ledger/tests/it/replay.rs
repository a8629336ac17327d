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
