//! End to end: `agora devnet` runs the training subnet — three miners as real processes
//! (two honest, one sending all-zero updates) and a validator running rounds over the wire
//! protocol. Rounds complete and lower the held-out loss; the validator's weights reach the
//! chain and pay the honest miners more than the cheater; its latest checkpoint is what its
//! id says and loads in the inference engine; a miner that dies is skipped, and the rounds
//! go on without it.

use agora_client::{api::AgoraApiClient, Client};
use agora_primitives::{crypto::Pair, hashing::blake2_256, AccountId};
use agora_training::protocol::{RoundRequest, REVEAL_ROUTE, ROUND_ROUTE};
use agora_training::round::RunConfig;
use agora_wire::{ClientConfig, WireClient};
use http::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod support;
use support::{signal, wait_for_file, Devnet};

/// The round records the validator has written so far.
fn rounds(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("rounds.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until `done` holds for the round records.
fn wait_rounds(dir: &Path, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = rounds(dir);
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "rounds not as expected within {timeout:?}: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn training_rounds_lower_loss_pay_honest_miners_and_publish_servable_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let _devnet = Devnet::start(
        &[
            "--rpc-port",
            "0",
            "--gateway-port",
            "0",
            "--miners",
            "0",
            "--validators",
            "0",
            "--inference-miners",
            "0",
            "--block-time",
            "200ms",
            "--training-miners",
            "3",
            "--training-miner-behaviours",
            "honest,honest,zeros",
        ],
        &data,
    );
    let info = wait_for_file(&data.join("devnet.json"), Duration::from_secs(60));
    let netuid = info["training_netuid"].as_u64().expect("training_netuid") as u16;
    let tdir = PathBuf::from(info["training_dir"].as_str().expect("training_dir"));
    let latest = PathBuf::from(info["training_latest"].as_str().expect("training_latest"));
    let miners = info["miners"].as_array().unwrap();
    assert_eq!(miners.len(), 3);
    let uid = |i: usize| miners[i]["uid"].as_u64().unwrap() as u16;
    let (honest, cheater) = ([uid(0), uid(1)], uid(2));

    // Rounds complete, everyone commits, and the held-out loss goes down.
    let done = wait_rounds(&tdir, Duration::from_secs(60), |r| r.len() >= 3);
    let first = done[0]["heldout_before"].as_f64().unwrap();
    let last = done.last().unwrap()["heldout_after"].as_f64().unwrap();
    assert!(last < first - 0.1, "held-out loss {first} -> {last}");
    for r in &done {
        let committed = r["miners"].as_array().unwrap();
        assert_eq!(committed.len(), 3, "{r}");
        let zeros = committed
            .iter()
            .find(|m| m["uid"].as_u64() == Some(u64::from(cheater)))
            .unwrap();
        assert!(zeros["rejection"].is_string(), "zeros accepted: {r}");
    }

    // The weights reach the chain: after an epoch the honest miners earn incentive and the
    // cheater earns less than each of them.
    let rpc = info["rpc_url"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let paid = rt.block_on(async {
        let client = Client::connect(&rpc).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mg = client.rpc().metagraph(netuid).await.unwrap().unwrap();
            let incentive = |u: u16| mg.neurons[usize::from(u)].incentive;
            if honest.iter().all(|&h| incentive(h) > 0) {
                return Ok((
                    incentive(honest[0]),
                    incentive(honest[1]),
                    incentive(cheater),
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("honest miners never paid: {mg:#?}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let (h0, h1, c) = paid.unwrap();
    assert!(c < h0 && c < h1, "cheater {c} vs honest {h0}, {h1}");

    // The latest checkpoint is what its id says, and the inference engine serves it.
    let ckpt = PathBuf::from(std::fs::read_to_string(&latest).unwrap().trim());
    let (_, _, id) = agora_training::checkpoint::load(&ckpt, None).unwrap();
    let id_hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ckpt.file_name().unwrap().to_str().unwrap(), id_hex);
    let engine = agora_inference::engine::Engine::load(
        &ckpt,
        &agora_inference::engine::LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(engine.info().arch.to_string(), "mixtral");

    // Bad requests from the validator's own hotkey get clear errors and change nothing:
    // the next rounds still have every miner committing.
    let miner_url = miners[0]["url"].as_str().unwrap().to_owned();
    let miner_hotkey: AccountId = miners[0]["hotkey"].as_str().unwrap().parse().unwrap();
    let validator_key = Pair::from_seed(&blake2_256(b"agora-devnet/training-validator0/hot"));
    let wire = WireClient::new(validator_key, ClientConfig::default()).unwrap();
    let post = |route: &str, body: Vec<u8>| {
        rt.block_on(wire.send(
            Method::POST,
            &format!("{miner_url}{route}"),
            &miner_hotkey,
            body,
            Some("application/json"),
        ))
        .unwrap()
    };
    let r = post(ROUND_ROUTE, b"{not json".to_vec());
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    let misaddressed = RoundRequest {
        run: RunConfig::tiny(),
        corpus: "00".repeat(32),
        round: 0,
        round_seed: 0,
        checkpoint: "00".repeat(32),
        checkpoint_url: "http://127.0.0.1:1/x".into(),
        uid: uid(1),
        miners: vec![uid(0), uid(1)],
    };
    let r = post(ROUND_ROUTE, serde_json::to_vec(&misaddressed).unwrap());
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status.as_u16(), 400, "{body}");
    assert!(body.contains("addressed to uid"), "{body}");
    let r = post(REVEAL_ROUTE, br#"{"round":999999}"#.to_vec());
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status.as_u16(), 422, "{body}");
    assert!(
        body.contains("nothing committed for round 999999"),
        "{body}"
    );
    let seen = rounds(&tdir).len();
    wait_rounds(&tdir, Duration::from_secs(30), |r| {
        r.len() >= seen + 2
            && r[seen + 1..]
                .iter()
                .all(|x| x["miners"].as_array().unwrap().len() == 3)
    });

    // A miner that dies is skipped (scored zero for the round); the others go on.
    let pid = miners[1]["pid"].as_u64().unwrap() as u32;
    signal(pid, "KILL");
    let seen = rounds(&tdir).len();
    let after = wait_rounds(&tdir, Duration::from_secs(60), |r| {
        r.len() >= seen + 2
            && r.last().unwrap()["absent"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_u64() == Some(u64::from(honest[1])))
    });
    let r = after.last().unwrap();
    assert_eq!(r["miners"].as_array().unwrap().len(), 2, "{r}");
}
