//! The node in process: RPC methods, errors, subscriptions and metrics over real sockets.

use agora_client::api::AgoraApiClient;
use agora_client::types::{codes, BlockId};
use agora_client::{tx_to_hex, Client, MetagraphCache, TxOptions};
use agora_ledger::{Call, TxPayload};
use agora_node::{start, NodeConfig, NodeHandle};
use agora_primitives::{crypto::Pair, NetUid, RAO_PER_TOKEN};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

async fn dev_node(dir: &std::path::Path) -> NodeHandle {
    let config = NodeConfig {
        instant: true,
        block_time: Duration::from_millis(100),
        metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..NodeConfig::dev(dir.join("node"), SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    start(config).await.unwrap()
}

fn alice() -> Pair {
    Pair::from_uri("//Alice").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_receipt_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let node = dev_node(tmp.path()).await;
    let url = format!("http://{}", node.rpc_addr());
    let c = Client::connect(&url).await.unwrap();
    let bob = Pair::from_uri("//Bob").unwrap().account();

    assert_eq!(c.rpc().genesis_hash().await.unwrap(), node.genesis_hash());

    // Malformed bytes: the ledger's code 100.
    let e = c
        .rpc()
        .submit_transaction("0x0102".into())
        .await
        .unwrap_err();
    assert_eq!(agora_client::ClientError::from(e).rpc_code(), Some(100));
    // A tampered signature: 101.
    let mut tx = c
        .sign(
            &alice(),
            Call::Transfer {
                dest: bob,
                amount_rao: 5,
            },
            TxOptions::default(),
        )
        .await
        .unwrap();
    tx.payload.call = Call::Transfer {
        dest: bob,
        amount_rao: 6,
    };
    let e = c
        .rpc()
        .submit_transaction(tx_to_hex(&tx))
        .await
        .unwrap_err();
    assert_eq!(agora_client::ClientError::from(e).rpc_code(), Some(101));
    // Invalid SS58.
    let e = c.rpc().account("nope".into()).await.unwrap_err();
    assert_eq!(
        agora_client::ClientError::from(e).rpc_code(),
        Some(codes::INVALID_PARAMS)
    );

    // Admission, then inclusion.
    let r = c
        .sign_submit_and_wait(
            &alice(),
            Call::Transfer {
                dest: bob,
                amount_rao: RAO_PER_TOKEN,
            },
            TxOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.success);
    let again = c.rpc().receipt(r.tx_hash).await.unwrap().unwrap();
    assert_eq!(again, r);
    let block = c
        .rpc()
        .block(BlockId::Number(r.block_number))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.hash, r.block_hash);
    let by_hash = c
        .rpc()
        .block(BlockId::Hash(r.block_hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_hash, block);
    let ev = c.rpc().events(r.block_number).await.unwrap().unwrap();
    assert_eq!(ev.receipts.len(), 1);

    // Future nonces wait in the pool and count in nextNonce only once the gap is filled.
    let gh = node.genesis_hash();
    let head = c.rpc().head().await.unwrap().number;
    let n0 = c
        .rpc()
        .next_nonce(alice().account().to_ss58())
        .await
        .unwrap();
    let mk = |nonce| {
        TxPayload {
            genesis_hash: gh,
            nonce,
            valid_from: head,
            valid_until: head + 100,
            tip_rao: 0,
            call: Call::Transfer {
                dest: bob,
                amount_rao: 1,
            },
        }
        .sign(&alice())
    };
    let later = mk(n0 + 1);
    c.rpc().submit_transaction(tx_to_hex(&later)).await.unwrap();
    let e = c
        .rpc()
        .submit_transaction(tx_to_hex(&later))
        .await
        .unwrap_err();
    assert_eq!(
        agora_client::ClientError::from(e).rpc_code(),
        Some(codes::ALREADY_KNOWN)
    );
    assert_eq!(
        c.rpc()
            .next_nonce(alice().account().to_ss58())
            .await
            .unwrap(),
        n0
    );
    let first = c.submit_and_wait(&mk(n0)).await.unwrap();
    assert!(first.success);
    // The waiting one follows in the next block.
    let mut tries = 0;
    while c.rpc().receipt(later.hash()).await.unwrap().is_none() {
        tries += 1;
        assert!(tries < 100, "future-nonce transaction never included");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stale now.
    let e = c
        .rpc()
        .submit_transaction(tx_to_hex(&mk(n0)))
        .await
        .unwrap_err();
    assert_eq!(agora_client::ClientError::from(e).rpc_code(), Some(103));

    let subnets_before = c.rpc().subnets().await.unwrap().len();
    assert!(c.rpc().lock_cost().await.unwrap() >= 10 * RAO_PER_TOKEN);
    assert_eq!(subnets_before, 0);

    // Metrics.
    let m = node.metrics_addr().unwrap();
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(m).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(body.contains("agora_txs_total 3"), "{body}");
    assert!(body.contains("agora_block_commit_seconds_bucket"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_metagraph_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let node = dev_node(tmp.path()).await;
    let ws = Arc::new(
        Client::connect(&format!("ws://{}", node.rpc_addr()))
            .await
            .unwrap(),
    );
    let mut heads = ws.rpc().subscribe_new_heads().await.unwrap();
    let mut events = ws.rpc().subscribe_events().await.unwrap();
    let hot = Pair::from_uri("//AliceHot").unwrap().account();
    let r = ws
        .sign_submit_and_wait(
            &alice(),
            Call::CreateSubnet { hotkey: hot },
            TxOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.success, "{r:?}");
    let h = heads.next().await.unwrap().unwrap();
    assert!(h.number >= 1);
    loop {
        let ev = events.next().await.unwrap().unwrap();
        if ev.number == r.block_number {
            assert_eq!(ev.receipts[0].tx_hash, r.tx_hash);
            break;
        }
    }
    let (cache, _task) = MetagraphCache::spawn(ws.clone(), NetUid(1), 1)
        .await
        .unwrap();
    let m = cache.get().unwrap();
    assert_eq!(m.neurons.len(), 1);
    assert_eq!(m.neurons[0].hotkey, hot);
    let b0 = m.block;
    // Empty blocks keep coming: the cache follows.
    let mut tries = 0;
    while cache.get().unwrap().block == b0 {
        tries += 1;
        assert!(tries < 100, "metagraph cache never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = Client::connect(&format!("http://{}", node.rpc_addr()))
        .await
        .unwrap();
    let n = http.rpc().neuron(1, 0).await.unwrap().unwrap();
    assert_eq!(n.hotkey, hot);
    assert!(http.rpc().subnet(1).await.unwrap().is_some());
    assert!(http.rpc().metagraph(9).await.unwrap().is_none());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_chain_and_refuses_another_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let node = dev_node(tmp.path()).await;
    let c = Client::connect(&format!("http://{}", node.rpc_addr()))
        .await
        .unwrap();
    let bob = Pair::from_uri("//Bob").unwrap().account();
    let r = c
        .sign_submit_and_wait(
            &alice(),
            Call::Transfer {
                dest: bob,
                amount_rao: 7,
            },
            TxOptions::default(),
        )
        .await
        .unwrap();
    let gh = node.genesis_hash();
    node.stop().await;
    let node = dev_node(tmp.path()).await;
    assert_eq!(node.genesis_hash(), gh);
    let c = Client::connect(&format!("http://{}", node.rpc_addr()))
        .await
        .unwrap();
    assert!(c.rpc().receipt(r.tx_hash).await.unwrap().is_some());
    node.stop().await;
    let mut other = agora_ledger::GenesisConfig::dev();
    other.chain_name = "another".into();
    let config = NodeConfig {
        genesis: Some(other),
        ..NodeConfig::dev(
            tmp.path().join("node"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
    };
    let e = start(config).await.unwrap_err();
    assert!(e.to_string().contains("use another --data-dir"), "{e}");
}
