//! Crash safety: a node committing under load is SIGKILLed at random moments (seeded; the
//! seed is printed, `AGORA_CRASH_SEED` replays it); after every kill the data directory
//! replays to the stored head's state root, and after every restart each transaction the
//! node acknowledged as included in the round before is still there (plus a sample of
//! older ones).

use crate::common::{agora_ok, temp_dir, NodeProc};
use agora_client::api::AgoraApiClient;
use agora_client::{Client, TxOptions};
use agora_ledger::Call;
use agora_primitives::{crypto::Pair, Hash};
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILLS: usize = 20;
const SENDERS: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];
/// Transactions each sender keeps in flight, so that blocks hold several.
const IN_FLIGHT: u64 = 4;
/// Transactions from earlier rounds re-checked after each restart (all of the last
/// round's are): every one was checked after the restart that followed it, and each
/// round's replay re-executes the whole chain, so a sample guards against later loss
/// without making the test quadratic.
const OLD_SAMPLE: usize = 100;

fn sample(rng: &mut impl Rng, from: &[Hash], n: usize) -> Vec<Hash> {
    if from.len() <= n {
        return from.to_vec();
    }
    (0..n).map(|_| from[rng.gen_range(0..from.len())]).collect()
}

/// Submits transfers from one sender until the node goes away; records every hash the
/// node acknowledged as included.
async fn load(url: String, sender: &'static str, acked: Arc<Mutex<Vec<Hash>>>) {
    let Ok(client) = Client::connect(&url).await else {
        return;
    };
    let client = Arc::new(client);
    let pair = Pair::from_uri(sender).unwrap();
    let dest = Pair::from_uri("//Ferdie").unwrap().account();
    let Ok(gh) = client.rpc().genesis_hash().await else {
        return;
    };
    let Ok(mut nonce) = client.rpc().next_nonce(pair.account().to_ss58()).await else {
        return;
    };
    loop {
        let Ok(head) = client.rpc().head().await else {
            return;
        };
        let mut set = tokio::task::JoinSet::new();
        for i in 0..IN_FLIGHT {
            let tx = agora_ledger::TxPayload {
                genesis_hash: gh,
                nonce: nonce + i,
                valid_from: head.number,
                valid_until: head.number + TxOptions::default().validity_blocks,
                tip_rao: 0,
                call: Call::Transfer {
                    dest,
                    amount_rao: 1 + i,
                },
            }
            .sign(&pair);
            let c = client.clone();
            set.spawn(async move { c.submit_and_wait(&tx).await });
        }
        let mut failed = false;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(receipt)) => acked.lock().unwrap().push(receipt.tx_hash),
                _ => failed = true,
            }
        }
        if failed {
            return;
        }
        nonce += IN_FLIGHT;
    }
}

async fn missing(url: &str, hashes: &[Hash]) -> Vec<Hash> {
    let client = Client::connect(url).await.unwrap();
    let mut out = Vec::new();
    for h in hashes {
        if client.rpc().receipt(*h).await.unwrap().is_none() {
            out.push(*h);
        }
    }
    out
}

#[test]
fn acknowledged_transactions_survive_sigkill() {
    let seed: u64 = std::env::var("AGORA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("crash test seed: {seed} (rerun with AGORA_CRASH_SEED={seed})");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, dir) = temp_dir();
    let mut all_acked: Vec<Hash> = Vec::new();
    let mut unchecked: Vec<Hash> = Vec::new();
    for round in 0..KILLS {
        let node = NodeProc::spawn(&dir, "100ms");
        let mut check = unchecked.clone();
        check.extend(sample(&mut rng, &all_acked, OLD_SAMPLE));
        let lost = rt.block_on(missing(&node.url, &check));
        assert!(
            lost.is_empty(),
            "round {round} (seed {seed}): {} acknowledged transactions lost, e.g. {}",
            lost.len(),
            lost[0]
        );
        all_acked.append(&mut unchecked);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = SENDERS
            .iter()
            .map(|s| rt.spawn(load(node.url.clone(), s, acked.clone())))
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        node.kill();
        for t in tasks {
            let _ = rt.block_on(t);
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(!acked.is_empty() || round > 0, "no load reached the node");
        unchecked.extend(acked);
        let replay = agora_ok(&["node", "replay", "--data-dir", dir.to_str().unwrap()]);
        assert!(
            replay.contains("replay ok"),
            "round {round} (seed {seed}): replay failed:\n{replay}"
        );
    }
    let node = NodeProc::spawn(&dir, "100ms");
    let mut check = unchecked.clone();
    check.extend(sample(&mut rng, &all_acked, 4 * OLD_SAMPLE));
    let lost = rt.block_on(missing(&node.url, &check));
    assert!(
        lost.is_empty(),
        "seed {seed}: {} acknowledged transactions lost",
        lost.len()
    );
    all_acked.append(&mut unchecked);
    println!(
        "{KILLS} kills, {} acknowledged transactions",
        all_acked.len()
    );
}
