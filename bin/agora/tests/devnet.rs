//! End to end: `agora devnet` with an honest miner and a cheating one. The cheater's
//! incentive must end below the honest miner's; once the owner turns commit-reveal on, the
//! validator's weights keep landing through commit then reveal; and Ctrl-C must stop every
//! process.

use agora_client::{api::AgoraApiClient, Client, TxOptions};
use agora_ledger::{types::Hyperparameter, Call};
use agora_primitives::{crypto::Pair, NetUid};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod support;
use support::{wait_for_file, Devnet};

#[test]
fn cheating_miner_earns_less_than_honest_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let mut devnet = Devnet::start(
        &[
            "--rpc-port",
            "0",
            "--miners",
            "2",
            "--validators",
            "1",
            "--miner-behaviours",
            "honest,wrong",
            "--block-time",
            "200ms",
            "--matrix-size",
            "32",
            "--training-miners",
            "0",
            "--inference-miners",
            "0",
        ],
        &data,
    );
    let info = wait_for_file(&data.join("devnet.json"), Duration::from_secs(60));
    let rpc = info["rpc_url"].as_str().unwrap().to_owned();
    let netuid = info["netuids"][0].as_u64().unwrap() as u16;
    let miners = info["miners"].as_array().unwrap();
    assert_eq!(miners.len(), 2);
    assert_eq!(info["validators"].as_array().unwrap().len(), 1);
    let uid = |i: usize| miners[i]["uid"].as_u64().unwrap() as usize;
    let (honest, cheater) = (uid(0), uid(1));
    let validator = info["validators"][0]["uid"].as_u64().unwrap() as usize;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = rt.block_on(async {
        let client = Client::connect(&rpc).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut paid_epochs = 0;
        let mut last_block_seen = 0;
        loop {
            let mg = client.rpc().metagraph(netuid).await.unwrap().unwrap();
            let h = &mg.neurons[honest];
            if h.incentive > 0 && h.emission > 0 && mg.block != last_block_seen {
                paid_epochs += 1;
                last_block_seen = mg.block;
            }
            // Three paid observations, several epochs apart, make the comparison settled.
            if paid_epochs >= 3 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no emission reached the honest miner in time: {mg:#?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let mg = client.rpc().metagraph(netuid).await.unwrap().unwrap();
        let (h, c) = (&mg.neurons[honest], &mg.neurons[cheater]);
        let paid = (h.incentive, c.incentive, h.stake, c.stake);

        // Commit-reveal on: direct weights are refused from now on, so any later update of
        // the validator's weights came through a reveal.
        let alice = Pair::from_uri("//Alice").unwrap();
        let call = Call::SetHyperparameter {
            netuid: NetUid(netuid),
            param: Hyperparameter::CommitRevealEnabled(true),
        };
        let receipt = client
            .sign_submit_and_wait(&alice, call, TxOptions::default())
            .await
            .unwrap();
        assert!(receipt.error.is_none(), "{receipt:?}");
        let switched_at = receipt.block_number;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = client
                .rpc()
                .neuron(netuid, validator as u16)
                .await
                .unwrap()
                .unwrap();
            if n.last_update > switched_at {
                return Ok(paid);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no revealed weights after commit-reveal was enabled at {switched_at}: {n:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // Stop the devnet as Ctrl-C would, and check it exits cleanly.
    let status = devnet.interrupt();
    let (h_inc, c_inc, h_stake, c_stake) = outcome.unwrap();
    assert!(h_inc > c_inc, "honest incentive {h_inc} <= cheater {c_inc}");
    assert!(
        h_stake > c_stake,
        "honest stake {h_stake} <= cheater {c_stake}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "devnet did not stop cleanly: {status:?}"
    );
}
