//! End to end, the private path with real processes and sockets: a dev node, three
//! inference miners attesting with the test PKI (`--insecure-mock-tee`) — one honest, one
//! signing with another root, one publishing a swapped key — and a `--private` gateway.
//! Recording TCP proxies sit between the client and the gateway and between the gateway and
//! the honest miner: neither the prompt nor the answer ever crosses them in the clear, while
//! the same prompt sent in the clear does. Tampered requests and answers fail, a replayed
//! request is refused, and the miners whose evidence does not verify get no private traffic.

use crate::common::{agora_ok, temp_dir, NodeProc, AGORA};
use agora_gateway::private_client::{verify_listing, ClientTrust, PrivateClient};
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
    let created = agora_ok(&[
        "subnet",
        "create",
        "--key",
        "//Alice",
        "--hotkey",
        "//AliceHot",
        "--rpc-url",
        &rpc,
    ]);
    let netuid = created
        .lines()
        .find_map(|l| l.strip_prefix("created subnet "))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no netuid in: {created}"))
        .to_owned();
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

    // Three miners: honest (behind a recording proxy), another root, a swapped key.
    let to_miner = RecordingProxy::start();
    let variants: [(&str, Vec<String>); 3] = [
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
        let mut args: Vec<String> = [
            "miner",
            "inference",
            "--subtensor.chain_endpoint",
            &ws,
            "--netuid",
            &netuid,
            "--wallet.path",
            wallets.to_str().unwrap(),
            "--wallet.name",
            name,
            "--wallet.hotkey",
            "default",
            "--axon.port",
            "0",
            "--axon.trusted_hotkey",
            &gateway_ss58,
            "--model",
            model_dir.to_str().unwrap(),
            "--served-model-name",
            MODEL,
            "--insecure-mock-tee",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        let (proc, ready) = spawn_ready(&args, &tmp.path().join(format!("{name}.log")));
        let url = ready["url"].as_str().unwrap().to_owned();
        let uid = ready["uid"].as_u64().unwrap() as u16;
        miners.push((proc, url, uid));
    }
    to_miner.set_upstream(socket_addr(&miners[0].1));
    let (honest_uid, foreign_uid, swapped_uid) = (miners[0].2, miners[1].2, miners[2].2);

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

    // Only the honest miner is listed as attested.
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = rt.block_on(client.attestations()).unwrap();
        if list.data.iter().any(|m| m.uid == honest_uid) {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the honest miner was never attested: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let listed: Vec<u16> = list.data.iter().map(|m| m.uid).collect();
    assert_eq!(listed, vec![honest_uid], "only the honest miner verifies");
    assert_eq!(list.data[0].trust_anchor, "MockTest");
    assert_eq!(list.netuid.to_string(), netuid);

    // The client verifies on its own: the honest bundle passes, the others fail, and
    // production roots alone accept none of them.
    let verdict = verify_listing(&list.data[0], &trust, unix_now());
    assert!(verdict.is_ok(), "{verdict:?}");
    let production = ClientTrust::production(Policy::default());
    assert!(matches!(
        verify_listing(&list.data[0], &production, unix_now()),
        Err(TeeError::UntrustedChain(_))
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
    let answer = rt.block_on(client.chat(&request, None)).unwrap();
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

    // The CLI does the same and prints the answer.
    let out = agora_ok(&[
        "private",
        "chat",
        "--gateway",
        &to_gateway.url(),
        "--api-key",
        &api_key,
        "--model",
        MODEL,
        "--max-tokens",
        "8",
        "--insecure-mock-tee",
        "hello",
        "there",
    ]);
    assert!(!out.trim().is_empty());
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
    let chosen = rt.block_on(client.choose(MODEL, None, now)).unwrap();
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
    drop(miners);
    drop(node);
}
