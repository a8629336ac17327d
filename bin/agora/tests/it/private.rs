//! End to end, the private path with real processes and sockets: a dev node, four
//! inference miners attesting with the test PKI (`--insecure-mock-tee`) — one honest, one
//! signing with another root, one publishing a swapped key, and one whose attested enclave
//! fabricates its answers while its host serves plaintext honestly (a test behaviour) — a
//! `--private` gateway, and later an inference validator.
//! Recording TCP proxies sit between the client and the gateway and between the gateway and
//! the honest miner: neither the prompt nor the answer ever crosses them in the clear, while
//! the same prompt sent in the clear does. Tampered requests and answers fail, a replayed
//! request is refused, and the miners whose evidence does not verify get no private traffic.
//! A client checking against the chain refuses a bundle whose digest is not on chain. The
//! validator verifies every published bundle, sends private challenges to the attested
//! miners, and gives weight only to the honest one; from then on the gateway sends private
//! requests to no miner the validators zeroed.

use crate::common::{agora_ok, create_subnet, metagraph, temp_dir, wait_for, NodeProc, AGORA};
use agora_gateway::private_client::{
    check_onchain_digest, onchain_axon, verify_listing, ClientTrust, PrivateClient,
    PrivateClientError,
};
use agora_primitives::crypto::Pair;
use agora_tee::channel::{open_events, seal_request, RequestMetadata};
use agora_tee::{AttestationBundle, Policy, TeeError};
use agora_wallet::{Keypair, Wallet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const MODEL: &str = "tiny-private";
const SECRET: &str = "patient AZURE-PANGOLIN-4417 has a confidential diagnosis";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agora <args>` and waits for its `{"event":"ready",...}` line.
fn spawn_ready(args: &[String], log: &Path) -> (Proc, serde_json::Value) {
    let mut child = Command::new(AGORA)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .expect("spawn agora");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == "ready" {
                    let _ = tx.send(v);
                }
            }
        }
    });
    let proc = Proc(child);
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(v) => (proc, v),
        Err(_) => panic!(
            "agora {} never got ready; log:\n{}",
            args.join(" "),
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

/// A TCP proxy that records every byte it forwards, both ways. The upstream address may be
/// set after the proxy starts listening (a miner publishes the proxy's port before it
/// knows its own).
#[derive(Clone)]
struct RecordingProxy {
    port: u16,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    recorded: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = RecordingProxy {
            port: listener.local_addr().unwrap().port(),
            upstream: Arc::new(Mutex::new(None)),
            recorded: Arc::new(Mutex::new(Vec::new())),
        };
        let proxy = p.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Some(target) = *proxy.upstream.lock().unwrap() else {
                    continue;
                };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let rec = proxy.recorded.clone();
                    std::thread::spawn(move || pipe(from, to, rec));
                }
            }
        });
        p
    }

    fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(addr);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.recorded.lock().unwrap().clear();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, rec: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                rec.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && haystack.windows(n.len()).any(|w| w == n)
}

fn socket_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn wallet(dir: &Path, name: &str) -> String {
    let cold = Pair::from_uri(&format!("//{name}Cold")).unwrap();
    let hot = Pair::from_uri(&format!("//{name}Hot")).unwrap();
    let w = Wallet::new(name, "default", dir);
    w.set_coldkey(&Keypair::from_pair(cold), None, true)
        .unwrap();
    w.set_hotkey(&Keypair::from_pair(hot), None, true).unwrap();
    format!("//{name}Cold")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn fetch_bundle(miner_url: &str) -> AttestationBundle {
    let addr = socket_addr(miner_url);
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /v1/attestation HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

#[test]
fn private_requests_stay_encrypted_through_gateway_and_miner_host() {
    let (tmp, dir) = temp_dir();
    let node = NodeProc::spawn(&dir, "200ms");
    let rpc = node.url.clone();
    let ws = rpc.replace("http://", "ws://");
    let netuid = create_subnet(&rpc);
    let model_dir = tmp.path().join("model");
    agora_ok(&[
        "model",
        "init",
        "--out",
        model_dir.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    let wallets = tmp.path().join("wallets");
    let gateway_key = "//PrivateGateway";
    let gateway_ss58 = Pair::from_uri(gateway_key).unwrap().account().to_ss58();

    // Four miners: honest (behind a recording proxy), another root, a swapped key, and an
    // enclave that does not serve the model.
    let to_miner = RecordingProxy::start();
    let variants: [(&str, Vec<String>); 4] = [
        (
            "PrivHonest",
            vec!["--axon.external_port".into(), to_miner.port.to_string()],
        ),
        (
            "PrivForeignRoot",
            vec!["--insecure-mock-tee-seed".into(), "11".repeat(32)],
        ),
        (
            "PrivSwappedKey",
            vec!["--insecure-mock-tee-swap-key".into()],
        ),
        (
            "PrivFabricating",
            vec![
                "--insecure-mock-tee-private-behaviour".into(),
                "fabricate".into(),
            ],
        ),
    ];
    let mut miners = Vec::new();
    for (name, extra) in &variants {
        let cold = wallet(&wallets, name);
        agora_ok(&[
            "transfer",
            "--key",
            "//Alice",
            "--dest",
            &cold,
            "--amount",
            "100",
            "--rpc-url",
            &rpc,
        ]);
        let mut args = inference_neuron_args(
            "miner",
            &ws,
            &netuid,
            &wallets,
            name,
            &model_dir,
            &["--axon.port", "0", "--axon.trusted_hotkey", &gateway_ss58],
        );
        args.extend(extra.iter().cloned());
        let (proc, ready) = spawn_ready(&args, &tmp.path().join(format!("{name}.log")));
        let url = ready["url"].as_str().unwrap().to_owned();
        let uid = ready["uid"].as_u64().unwrap() as u16;
        miners.push((proc, url, uid));
    }
    to_miner.set_upstream(socket_addr(&miners[0].1));
    let (honest_uid, foreign_uid, swapped_uid, fabricating_uid) =
        (miners[0].2, miners[1].2, miners[2].2, miners[3].2);

    // The gateway, verifying miners' evidence against the development test root.
    let keys = tmp.path().join("keys.json");
    let api_key = agora_ok(&[
        "gateway",
        "add-key",
        "--keys",
        keys.to_str().unwrap(),
        "--name",
        "private-test",
    ])
    .trim()
    .to_owned();
    let gw_args: Vec<String> = [
        "gateway",
        "--keys",
        keys.to_str().unwrap(),
        "--rpc-url",
        &ws,
        "--netuid",
        &netuid,
        "--listen",
        "127.0.0.1:0",
        "--key",
        gateway_key,
        "--probe-interval-s",
        "1",
        "--private",
        "--insecure-mock-tee",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (_gateway, ready) = spawn_ready(&gw_args, &tmp.path().join("gateway.log"));
    let to_gateway = RecordingProxy::start();
    to_gateway.set_upstream(socket_addr(ready["url"].as_str().unwrap()));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let trust = ClientTrust::insecure_mock_dev(Policy::default()).unwrap();
    let client = PrivateClient::new(&to_gateway.url(), &api_key, trust.clone()).unwrap();

    // Only the miners whose evidence verifies are listed as attested: the honest one and
    // the fabricating one (its evidence is fine; only its answers are not).
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = rt.block_on(client.attestations()).unwrap();
        let listed = |uid| list.data.iter().any(|m| m.uid == uid);
        if listed(honest_uid) && listed(fabricating_uid) {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the miners with good evidence were never attested: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut listed: Vec<u16> = list.data.iter().map(|m| m.uid).collect();
    listed.sort_unstable();
    let mut expected = vec![honest_uid, fabricating_uid];
    expected.sort_unstable();
    assert_eq!(listed, expected, "only evidence that verifies is listed");
    let honest_listing = list
        .data
        .iter()
        .find(|m| m.uid == honest_uid)
        .unwrap()
        .clone();
    let fabricating_listing = list
        .data
        .iter()
        .find(|m| m.uid == fabricating_uid)
        .unwrap()
        .clone();
    assert_eq!(honest_listing.trust_anchor, "MockTest");
    assert_eq!(list.netuid.to_string(), netuid);

    // The client verifies on its own: the honest bundle passes, the others fail, and
    // production roots alone accept none of them.
    let verdict = verify_listing(&honest_listing, &trust, unix_now());
    assert!(verdict.is_ok(), "{verdict:?}");
    let production = ClientTrust::production(Policy::default());
    assert!(matches!(
        verify_listing(&honest_listing, &production, unix_now()),
        Err(TeeError::UntrustedChain(_))
    ));

    // Checked against the chain too: the honest listing is what the miner published; a
    // gateway listing another valid bundle (the fabricating miner's) under the honest uid
    // passes the client's own verification but not the chain's digest.
    let honest_onchain = rt
        .block_on(onchain_axon(&rpc, list.netuid, honest_uid))
        .unwrap();
    check_onchain_digest(&honest_listing, &honest_onchain).unwrap();
    let mut substituted = honest_listing.clone();
    substituted.bundle = fabricating_listing.bundle.clone();
    substituted.digest = fabricating_listing.digest.clone();
    assert!(verify_listing(&substituted, &trust, unix_now()).is_ok());
    let refused = check_onchain_digest(&substituted, &honest_onchain).unwrap_err();
    assert!(
        matches!(&refused, PrivateClientError::Chain(m) if m.contains("is not the one on chain")),
        "{refused}"
    );
    let checked = PrivateClient::new(&to_gateway.url(), &api_key, trust.clone())
        .unwrap()
        .with_node(&rpc);
    rt.block_on(checked.verify(list.netuid, &honest_listing, unix_now()))
        .unwrap();
    assert!(matches!(
        rt.block_on(checked.verify(list.netuid, &substituted, unix_now())),
        Err(PrivateClientError::Chain(_))
    ));
    let foreign = fetch_bundle(&miners[1].1);
    let swapped = fetch_bundle(&miners[2].1);
    let anchors = trust.anchors.clone();
    assert!(matches!(
        foreign.verify(unix_now(), &Policy::default(), &anchors),
        Err(TeeError::UntrustedChain(_))
    ));
    assert!(matches!(
        swapped.verify(unix_now(), &Policy::default(), &anchors),
        Err(TeeError::BindingMismatch)
    ));

    // A private request, end to end, greedy so the answer is reproducible.
    to_gateway.clear();
    to_miner.clear();
    let request = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": SECRET}],
        "max_tokens": 24,
        "temperature": 0,
    });
    let answer = rt
        .block_on(client.chat(&request, Some(honest_uid)))
        .unwrap();
    assert_eq!(answer.uid, honest_uid);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.len() >= 8, "answer too short to look for: {text:?}");
    let (seen_gw, seen_miner) = (to_gateway.recorded(), to_miner.recorded());
    // Traffic did go through both relays...
    assert!(contains(&seen_gw, "/v1/private/chat/completions"));
    assert!(contains(&seen_miner, "/v1/private/chat/completions"));
    assert!(contains(&seen_miner, "data: "));
    // ...and neither the prompt nor the answer (nor the model's JSON) crossed them.
    for (hop, seen) in [("client-gateway", &seen_gw), ("gateway-miner", &seen_miner)] {
        assert!(!contains(seen, "AZURE-PANGOLIN"), "prompt visible on {hop}");
        assert!(!contains(seen, &text), "answer visible on {hop}");
        assert!(
            !contains(seen, "chat.completion"),
            "answer JSON visible on {hop}"
        );
    }

    // The control: the same prompt in the clear is visible to the same relays.
    to_gateway.clear();
    to_miner.clear();
    let clear = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", to_gateway.url()))
            .bearer_auth(&api_key)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&request).unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(clear.contains("chat.completion"), "{clear}");
    assert!(contains(&to_gateway.recorded(), "AZURE-PANGOLIN"));
    assert!(
        contains(&to_gateway.recorded(), &text),
        "the same greedy answer"
    );

    // The CLI does the same, checked against the chain, and prints the answer.
    let out = agora_ok(&[
        "private",
        "chat",
        "--gateway",
        &to_gateway.url(),
        "--api-key",
        &api_key,
        "--model",
        MODEL,
        "--uid",
        &honest_uid.to_string(),
        "--node",
        &rpc,
        "--max-tokens",
        "8",
        "--insecure-mock-tee",
        "hello",
        "there",
    ]);
    assert!(!out.trim().is_empty());
    let listed = agora_ok(&[
        "private",
        "attestations",
        "--gateway",
        &to_gateway.url(),
        "--api-key",
        &api_key,
        "--node",
        &rpc,
        "--insecure-mock-tee",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let rows = listed["miners"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| r["ok"] == true),
        "every listed bundle is on chain: {listed}"
    );
    // Without the development root the CLI refuses to encrypt to anyone.
    let refused = crate::common::agora(&[
        "private",
        "chat",
        "--gateway",
        &to_gateway.url(),
        "--api-key",
        &api_key,
        "--model",
        MODEL,
        "hello",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no attested miner accepted"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let now = unix_now();
    let chosen = rt
        .block_on(client.choose(MODEL, Some(honest_uid), now))
        .unwrap();
    let body = serde_json::to_vec(&request).unwrap();

    // Replay: the same sealed bytes twice; the enclave refuses the second.
    let (sealed, opener) = client.seal(&chosen, MODEL, &body, now).unwrap();
    let json = serde_json::to_vec(&sealed).unwrap();
    let (status, raw) = rt.block_on(client.send_raw(json.clone())).unwrap();
    assert_eq!(status, 200);
    let (head, plain) = open_events(opener, &raw, 1 << 20).unwrap();
    assert_eq!(head.status, 200);
    assert!(String::from_utf8_lossy(&plain).contains(&text));
    let (status, refusal) = rt.block_on(client.send_raw(json)).unwrap();
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&refusal));
    assert!(String::from_utf8_lossy(&refusal).contains("replayed_request"));

    // Tampered answers fail closed: a flipped digit, a dropped frame, a cut stream. Each
    // tampering is applied to the real answer of its own freshly sealed request.
    for what in ["flipped", "dropped", "cut"] {
        let (sealed, opener) = client.seal(&chosen, MODEL, &body, now).unwrap();
        let (status, raw) = rt
            .block_on(client.send_raw(serde_json::to_vec(&sealed).unwrap()))
            .unwrap();
        assert_eq!(status, 200);
        let text = String::from_utf8(raw).unwrap();
        let events: Vec<&str> = text.split_terminator("\n\n").collect();
        assert!(events.len() >= 3, "head, body and final frames: {text}");
        let keep = |skip: usize| -> Vec<u8> {
            events
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, e)| format!("{e}\n\n"))
                .collect::<String>()
                .into_bytes()
        };
        let tampered = match what {
            "flipped" => {
                // A ciphertext digit of the head frame, past `data: ` and the 9-byte header.
                let mut b = text.clone().into_bytes();
                let at = "data: ".len() + 9 * 2 + 4;
                b[at] = if b[at] == b'0' { b'1' } else { b'0' };
                b
            }
            "dropped" => keep(1),
            _ => keep(events.len() - 1),
        };
        assert!(
            open_events(opener, &tampered, 1 << 20).is_err(),
            "a {what} answer was accepted"
        );
    }

    // Tampered requests are refused by the enclave: ciphertext or authenticated metadata.
    let (mut sealed, _) = client.seal(&chosen, MODEL, &body, now).unwrap();
    sealed.ciphertext[3] ^= 0x40;
    let (status, refusal) = rt
        .block_on(client.send_raw(serde_json::to_vec(&sealed).unwrap()))
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&refusal));
    assert!(String::from_utf8_lossy(&refusal).contains("decryption_failed"));
    let (mut sealed, _) = client.seal(&chosen, MODEL, &body, now).unwrap();
    sealed.metadata.issued_at += 1;
    let (status, _) = rt
        .block_on(client.send_raw(serde_json::to_vec(&sealed).unwrap()))
        .unwrap();
    assert_eq!(status, 400);

    // Miners whose evidence does not verify get no private traffic, even when a request is
    // sealed to their published key and addressed to them.
    for (uid, bundle) in [(foreign_uid, &foreign), (swapped_uid, &swapped)] {
        let meta = RequestMetadata {
            model: MODEL.into(),
            request_id: rand::random(),
            netuid: netuid.parse().unwrap(),
            uid,
            issued_at: unix_now(),
        };
        let mut rng =
            <rand_chacha09::ChaCha20Rng as rand_chacha09::rand_core::SeedableRng>::seed_from_u64(9);
        let (sealed, _) = seal_request(&bundle.hpke_public_key, meta, &body, &mut rng).unwrap();
        let (status, refusal) = rt
            .block_on(client.send_raw(serde_json::to_vec(&sealed).unwrap()))
            .unwrap();
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&refusal));
        assert!(String::from_utf8_lossy(&refusal).contains("miner_not_attested"));
    }

    // An inference validator (started only now, so that its plaintext challenges do not
    // cross the recording proxy above) verifies the published bundles and challenges the
    // attested miners on the private path too.
    let cold = wallet(&wallets, "PrivValidator");
    agora_ok(&[
        "transfer",
        "--key",
        "//Alice",
        "--dest",
        &cold,
        "--amount",
        "1000",
        "--rpc-url",
        &rpc,
    ]);
    // From below the ephemeral range: nothing else takes it before the validator binds it.
    let metrics_port = agora_node::bft::loopback_ports(1).expect("a free loopback port")[0];
    let validator_args = inference_neuron_args(
        "validator",
        &ws,
        &netuid,
        &wallets,
        "PrivValidator",
        &model_dir,
        &[
            "--max-tokens",
            "8",
            "--round-interval-s",
            "1",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ],
    );
    let validator_log = tmp.path().join("validator.log");
    let (_validator, _) = spawn_ready(&validator_args, &validator_log);

    // On chain: the honest miner is paid; the miners whose evidence fails, and the one whose
    // enclave fabricates, are not.
    let mut incentives = Vec::new();
    wait_for(
        "incentive for the honest miner",
        Duration::from_secs(180),
        || {
            let m = metagraph(&rpc, &netuid);
            let incentive = |uid: u16| {
                m.iter()
                    .find(|x| x["uid"].as_u64() == Some(u64::from(uid)))
                    .and_then(|x| x["incentive"].as_u64())
                    .unwrap_or(0)
            };
            incentives = [honest_uid, foreign_uid, swapped_uid, fabricating_uid]
                .map(incentive)
                .to_vec();
            incentives[0] > 0
        },
    );
    assert_eq!(
        &incentives[1..],
        &[0, 0, 0],
        "only the honest miner is paid (honest, foreign root, swapped key, fabricating enclave)"
    );

    // The validator's own record: which bundles verified, and private challenges answered
    // and caught (polled: a round may still be on its way).
    let challenges = |metrics: &str, result: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "agora_inference_private_challenges_total{{result=\"{result}\"}} "
                ))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = http_get(metrics_port, "/metrics");
        if challenges(&metrics, "verified") >= 1 && challenges(&metrics, "rejected") >= 1 {
            break metrics;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&validator_log).unwrap_or_default();
            let private: Vec<&str> = log.lines().filter(|l| l.contains("private")).collect();
            panic!(
                "the validator never verified and caught private answers:\n{metrics}\n{}",
                private.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let attested = |uid: u16| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("agora_inference_miner_attested{")
                    && l.contains(&format!("uid=\"{uid}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(attested(honest_uid).as_deref(), Some("1"), "{metrics}");
    assert_eq!(attested(fabricating_uid).as_deref(), Some("1"), "{metrics}");
    assert_eq!(attested(foreign_uid).as_deref(), Some("0"), "{metrics}");
    assert_eq!(attested(swapped_uid).as_deref(), Some("0"), "{metrics}");
    let log = std::fs::read_to_string(&validator_log).unwrap();
    assert!(log.contains("private answer rejected"), "{log}");
    println!(
        "validator private challenges: {} verified, {} rejected, {} failed",
        challenges(&metrics, "verified"),
        challenges(&metrics, "rejected"),
        challenges(&metrics, "failed")
    );
    for line in log
        .lines()
        .filter(|l| l.contains("private challenge failed"))
    {
        println!("{line}");
    }
    let m = metagraph(&rpc, &netuid);
    let fabricating = m
        .iter()
        .find(|x| x["uid"].as_u64() == Some(u64::from(fabricating_uid)))
        .unwrap();
    assert_eq!(fabricating["incentive"].as_u64(), Some(0), "{fabricating}");

    // And the gateway follows the validators: the fabricating miner, zeroed on chain, is
    // no longer offered for private requests, however good its evidence.
    wait_for(
        "the gateway to drop the zeroed miner",
        Duration::from_secs(60),
        || {
            let list = rt.block_on(client.attestations()).unwrap();
            list.data.iter().map(|m| m.uid).collect::<Vec<_>>() == vec![honest_uid]
        },
    );
    drop(miners);
    drop(node);
}

/// The body of `GET path` on 127.0.0.1:`port` (plain HTTP/1.1).
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The command line of an inference `role` (`miner` or `validator`) on the test chain: its
/// wallet, the test model, the test PKI, then `extra`.
fn inference_neuron_args(
    role: &str,
    ws: &str,
    netuid: &str,
    wallets: &std::path::Path,
    wallet_name: &str,
    model_dir: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        role,
        "inference",
        "--subtensor.chain_endpoint",
        ws,
        "--netuid",
        netuid,
        "--wallet.path",
        wallets.to_str().unwrap(),
        "--wallet.name",
        wallet_name,
        "--wallet.hotkey",
        "default",
        "--model",
        model_dir.to_str().unwrap(),
        "--served-model-name",
        MODEL,
        "--insecure-mock-tee",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
