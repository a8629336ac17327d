//! A dev node driven through the CLI until an epoch pays emissions.

use crate::common::{agora_ok, create_subnet, metagraph, temp_dir, wait_for, NodeProc};
use std::time::Duration;

#[test]
fn cli_drives_a_dev_chain_to_paid_emissions() {
    let (_tmp, dir) = temp_dir();
    let node = NodeProc::spawn(&dir, "200ms");
    let url = node.url.as_str();

    // Validation errors are clear and do not reach the node.
    let bad = crate::common::agora(&[
        "transfer",
        "--key",
        "//Alice",
        "--dest",
        "not-an-address",
        "--amount",
        "1",
        "--rpc-url",
        url,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid SS58 address"));

    agora_ok(&[
        "transfer",
        "--key",
        "//Alice",
        "--dest",
        "//Dave",
        "--amount",
        "1.5",
        "--rpc-url",
        url,
    ]);
    let netuid = create_subnet(url);
    let n = netuid.as_str();
    let list = agora_ok(&["subnet", "list", "--rpc-url", url]);
    assert!(list.contains("NETUID"), "{list}");

    for (cold, hot) in [
        ("//Bob", "//Miner1"),
        ("//Bob", "//Miner2"),
        ("//Charlie", "//Validator"),
    ] {
        agora_ok(&[
            "register",
            "--key",
            cold,
            "--netuid",
            n,
            "--hotkey",
            hot,
            "--rpc-url",
            url,
        ]);
    }
    agora_ok(&[
        "stake",
        "add",
        "--key",
        "//Charlie",
        "--hotkey",
        "//Validator",
        "--amount",
        "1000",
        "--rpc-url",
        url,
    ]);
    let stakes = agora_ok(&[
        "stake",
        "list",
        "--coldkey",
        "//Charlie",
        "--json",
        "--rpc-url",
        url,
    ]);
    assert!(stakes.contains("1000000000000"), "{stakes}");

    let m = metagraph(url, n);
    assert_eq!(m.len(), 4);
    let uid_of = |hotkey: &str| -> u64 {
        let addr = hotkey_address(hotkey);
        m.iter()
            .find(|x| x["hotkey"] == addr.as_str())
            .and_then(|x| x["uid"].as_u64())
            .unwrap_or_else(|| panic!("{hotkey} not in metagraph"))
    };
    let (m1, m2, v) = (
        uid_of("//Miner1"),
        uid_of("//Miner2"),
        uid_of("//Validator"),
    );

    // The next epoch gives the staked validator its permit.
    wait_for("validator permit", Duration::from_secs(60), || {
        metagraph(url, n)
            .iter()
            .any(|x| x["uid"].as_u64() == Some(v) && x["validator_permit"] == true)
    });
    agora_ok(&[
        "weights",
        "set",
        "--key",
        "//Validator",
        "--netuid",
        n,
        "--uids",
        &format!("{m1},{m2}"),
        "--values",
        "1000,3000",
        "--rpc-url",
        url,
    ]);
    // The epoch after that pays the miners by incentive.
    wait_for("emission to miners", Duration::from_secs(60), || {
        let m = metagraph(url, n);
        let miner = m.iter().find(|x| x["uid"].as_u64() == Some(m2)).unwrap();
        miner["incentive"].as_u64().unwrap_or(0) > 0 && miner["emission"].as_u64().unwrap_or(0) > 0
    });
    let m = metagraph(url, n);
    for field in [
        "uid",
        "hotkey",
        "coldkey",
        "stake",
        "trust",
        "consensus",
        "incentive",
        "dividends",
        "emission",
        "validator_permit",
        "last_update",
        "axon",
    ] {
        assert!(m[0].get(field).is_some(), "metagraph JSON lacks {field}");
    }
    let table = agora_ok(&["metagraph", "--netuid", n, "--rpc-url", url]);
    assert!(table.contains("INCENTIVE"), "{table}");

    // Clean shutdown on SIGTERM, then the chain replays to the same root.
    let status = node.terminate();
    assert!(status.success(), "node exit: {status}");
    let replay = agora_ok(&["node", "replay", "--data-dir", dir.to_str().unwrap()]);
    assert!(replay.contains("replay ok"), "{replay}");
}

fn hotkey_address(uri: &str) -> String {
    agora_primitives::crypto::Pair::from_uri(uri)
        .unwrap()
        .account()
        .to_ss58()
}
