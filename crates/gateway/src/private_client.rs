//! The client side of the private path, as a library ([`PrivateClient`]) and as
//! `agora private chat` / `agora private attestations`.
//!
//! The client trusts neither the gateway nor the miner's host. Before it encrypts anything
//! it fetches the attested miners' bundles and verifies the chosen one itself, under its own
//! policy and trust anchors: the digest the gateway reports, the evidence, and the binding
//! of the HPKE key. It then seals the request to that key with the routing metadata
//! (subnet, uid, model, a random request id, the time) as associated data, sends it through
//! the gateway, and opens the sealed answer frame by frame. Any failure — a bundle that does
//! not verify, a forged, reordered, missing or extra frame, a truncated stream — is an error
//! and no plaintext is returned.
//!
//! With a node ([`PrivateClient::with_node`], `--node URL`) the client also reads the
//! chosen miner's axon from the chain itself and refuses unless the bundle's digest is the
//! one the miner published there ([`check_onchain_digest`]): the gateway cannot then serve
//! a bundle the miner never committed to.

use crate::private::{AttestationList, AttestedMiner};
use agora_tee::channel::{
    open_events, seal_request, RequestMetadata, ResponseOpener, SealedRequest,
};
use agora_tee::{Policy, TeeError, TrustAnchors, VerifiedEvidence};
use rand_chacha09::rand_core::SeedableRng;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest answer a client accepts (bytes of plaintext).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Why a private request failed. No variant carries any plaintext of the answer.
#[derive(Debug, thiserror::Error)]
pub enum PrivateClientError {
    /// The gateway could not be reached or the transfer broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The gateway or miner refused the request.
    #[error("refused with status {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error message from the body.
        message: String,
    },
    /// No listed miner serves the model with evidence this client accepts.
    #[error("no attested miner accepted: {0}")]
    NoAttestedMiner(String),
    /// The channel failed: a tampered, replayed, reordered or truncated frame.
    #[error("channel: {0}")]
    Channel(#[from] TeeError),
    /// The chain does not back the listing: another digest (or none) on chain, another
    /// hotkey on the uid, or the node could not say.
    #[error("chain cross-check: {0}")]
    Chain(String),
    /// Something else was malformed.
    #[error("{0}")]
    Invalid(String),
}

/// What the chain says about a miner's axon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnchainAxon {
    /// The hotkey registered on the uid (SS58).
    pub hotkey: String,
    /// The attestation digest published with its axon, if any.
    pub attestation_digest: Option<[u8; 32]>,
}

/// Checks a listed miner against its axon on chain: the same hotkey, and a published
/// attestation digest equal to the listed bundle's digest. Pure.
pub fn check_onchain_digest(
    listing: &AttestedMiner,
    onchain: &OnchainAxon,
) -> Result<(), PrivateClientError> {
    if onchain.hotkey != listing.hotkey {
        return Err(PrivateClientError::Chain(format!(
            "uid {} is registered to {} on chain, not {}",
            listing.uid, onchain.hotkey, listing.hotkey
        )));
    }
    let served = listing.bundle.digest().0;
    match onchain.attestation_digest {
        None => Err(PrivateClientError::Chain(format!(
            "uid {} publishes no attestation digest on chain",
            listing.uid
        ))),
        Some(d) if d != served => Err(PrivateClientError::Chain(format!(
            "uid {}: the bundle's digest {} is not the one on chain ({})",
            listing.uid,
            hex::encode(served),
            hex::encode(d)
        ))),
        Some(_) => Ok(()),
    }
}

/// Reads uid `uid`'s axon on subnet `netuid` from the node at `node_url`.
pub async fn onchain_axon(
    node_url: &str,
    netuid: u16,
    uid: u16,
) -> Result<OnchainAxon, PrivateClientError> {
    use agora_client::api::AgoraApiClient;
    let chain = |e: String| PrivateClientError::Chain(format!("node {node_url}: {e}"));
    let client = agora_client::Client::connect(node_url)
        .await
        .map_err(|e| chain(e.to_string()))?;
    let neuron = client
        .rpc()
        .neuron(netuid, uid)
        .await
        .map_err(|e| chain(e.to_string()))?
        .ok_or_else(|| chain(format!("no uid {uid} on subnet {netuid}")))?;
    Ok(OnchainAxon {
        hotkey: neuron.hotkey.to_ss58(),
        attestation_digest: neuron.axon.and_then(|a| a.attestation_digest),
    })
}

/// What a client accepts: the policy and the roots, chosen by the client, not the gateway.
#[derive(Debug, Clone)]
pub struct ClientTrust {
    /// The policy the evidence must satisfy.
    pub policy: Policy,
    /// The roots it must chain to.
    pub anchors: TrustAnchors,
}

impl ClientTrust {
    /// `policy` over the vendors' production roots.
    pub fn production(policy: Policy) -> Self {
        ClientTrust {
            policy,
            anchors: TrustAnchors::production(),
        }
    }

    /// INSECURE, development only: `policy` over the production roots and the public
    /// development test PKI.
    #[cfg(feature = "insecure-mock-tee")]
    pub fn insecure_mock_dev(policy: Policy) -> Result<Self, TeeError> {
        let roots = agora_tee::mock::MockPki::dev()?.roots()?;
        Ok(ClientTrust {
            policy,
            anchors: TrustAnchors::production().with_mock_root(roots),
        })
    }
}

/// A miner the client verified and will encrypt to.
#[derive(Debug, Clone)]
pub struct VerifiedMiner {
    /// The subnet.
    pub netuid: u16,
    /// The gateway's listing, bundle included.
    pub listing: AttestedMiner,
    /// The client's own verification result.
    pub evidence: VerifiedEvidence,
}

/// A decrypted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateResponse {
    /// The uid that answered.
    pub uid: u16,
    /// The inner HTTP status.
    pub status: u16,
    /// The inner content type.
    pub content_type: String,
    /// The inner body (JSON, or server-sent events for a stream).
    pub body: Vec<u8>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks a listed miner on the client's own terms: the bundle's digest is the listed one,
/// and the bundle verifies under `trust` at `now`, key binding included.
pub fn verify_listing(
    listing: &AttestedMiner,
    trust: &ClientTrust,
    now: u64,
) -> Result<VerifiedEvidence, TeeError> {
    if hex::encode(listing.bundle.digest().0) != listing.digest {
        return Err(TeeError::MalformedEvidence(
            "the bundle's digest is not the listed one".into(),
        ));
    }
    listing.bundle.verify(now, &trust.policy, &trust.anchors)
}

/// A client of one gateway's private path.
#[derive(Debug, Clone)]
pub struct PrivateClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
    trust: ClientTrust,
    node: Option<String>,
}

impl PrivateClient {
    /// A client for the gateway at `gateway_url` (`http://host:port`, with or without `/v1`).
    pub fn new(
        gateway_url: &str,
        api_key: &str,
        trust: ClientTrust,
    ) -> Result<Self, PrivateClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| PrivateClientError::Transport(e.to_string()))?;
        let base = gateway_url
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_owned();
        Ok(PrivateClient {
            http,
            base,
            api_key: api_key.to_owned(),
            trust,
            node: None,
        })
    }

    /// Also checks every chosen miner against the chain, read from the node at `node_url`
    /// (`http://` or `ws://`), before encrypting to it.
    pub fn with_node(mut self, node_url: &str) -> Self {
        self.node = Some(node_url.to_owned());
        self
    }

    /// Verifies `listing` on this client's terms at `now`, and against the chain when a
    /// node is set.
    pub async fn verify(
        &self,
        netuid: u16,
        listing: &AttestedMiner,
        now: u64,
    ) -> Result<VerifiedEvidence, PrivateClientError> {
        let evidence = verify_listing(listing, &self.trust, now)?;
        if let Some(node) = &self.node {
            let onchain = onchain_axon(node, netuid, listing.uid).await?;
            check_onchain_digest(listing, &onchain)?;
        }
        Ok(evidence)
    }

    /// The gateway's list of attested miners (not yet verified by this client).
    pub async fn attestations(&self) -> Result<AttestationList, PrivateClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/private/attestations", self.base))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| PrivateClientError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| PrivateClientError::Transport(e.to_string()))?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| PrivateClientError::Invalid(format!("attestation list: {e}")))
    }

    /// Picks a miner serving `model` (the given `uid`, or the first listed) whose bundle
    /// verifies under this client's trust at `now`.
    pub async fn choose(
        &self,
        model: &str,
        uid: Option<u16>,
        now: u64,
    ) -> Result<VerifiedMiner, PrivateClientError> {
        let list = self.attestations().await?;
        let mut reasons = Vec::new();
        for listing in list.data {
            if uid.is_some_and(|u| u != listing.uid) || !listing.models.iter().any(|m| m == model) {
                continue;
            }
            match self.verify(list.netuid, &listing, now).await {
                Ok(evidence) => {
                    return Ok(VerifiedMiner {
                        netuid: list.netuid,
                        listing,
                        evidence,
                    })
                }
                Err(e) => reasons.push(format!("uid {}: {e}", listing.uid)),
            }
        }
        Err(PrivateClientError::NoAttestedMiner(if reasons.is_empty() {
            format!(
                "the gateway lists no attested miner serving `{model}`{}",
                uid.map(|u| format!(" with uid {u}")).unwrap_or_default()
            )
        } else {
            reasons.join("; ")
        }))
    }

    /// Seals `body` (an OpenAI chat request for `model`) to `miner`'s verified key.
    pub fn seal(
        &self,
        miner: &VerifiedMiner,
        model: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(SealedRequest, ResponseOpener), PrivateClientError> {
        let mut rng = rand_chacha09::ChaCha20Rng::from_seed(rand::random::<[u8; 32]>());
        let metadata = RequestMetadata {
            model: model.to_owned(),
            request_id: rand::random::<[u8; 16]>(),
            netuid: miner.netuid,
            uid: miner.listing.uid,
            issued_at: now,
        };
        Ok(seal_request(
            &miner.listing.bundle.hpke_public_key,
            metadata,
            body,
            &mut rng,
        )?)
    }

    /// Posts sealed bytes to the gateway; returns the status and the raw (sealed) answer.
    pub async fn send_raw(
        &self,
        sealed_json: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), PrivateClientError> {
        let mut resp = self
            .http
            .post(format!("{}/v1/private/chat/completions", self.base))
            .bearer_auth(&self.api_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(sealed_json)
            .send()
            .await
            .map_err(|e| PrivateClientError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| PrivateClientError::Transport(e.to_string()))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES.saturating_mul(3) {
                return Err(PrivateClientError::Invalid("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// Sends a sealed request and opens its answer.
    pub async fn send(
        &self,
        sealed: &SealedRequest,
        opener: ResponseOpener,
    ) -> Result<PrivateResponse, PrivateClientError> {
        let json = serde_json::to_vec(sealed)
            .map_err(|e| PrivateClientError::Invalid(format!("sealed request: {e}")))?;
        let (status, raw) = self.send_raw(json).await?;
        if status != 200 {
            return Err(refused(status, &raw));
        }
        let (head, body) = open_events(opener, &raw, MAX_RESPONSE_BYTES)?;
        Ok(PrivateResponse {
            uid: sealed.metadata.uid,
            status: head.status,
            content_type: head.content_type,
            body,
        })
    }

    /// The whole exchange for one OpenAI chat request (JSON with a `model`): choose and
    /// verify a miner, seal, send, open.
    pub async fn chat(
        &self,
        request: &serde_json::Value,
        uid: Option<u16>,
    ) -> Result<PrivateResponse, PrivateClientError> {
        let model = request
            .get("model")
            .and_then(|m| m.as_str())
            .ok_or_else(|| PrivateClientError::Invalid("the request names no model".into()))?;
        let now = unix_now();
        let miner = self.choose(model, uid, now).await?;
        let body = serde_json::to_vec(request)
            .map_err(|e| PrivateClientError::Invalid(format!("request: {e}")))?;
        let (sealed, opener) = self.seal(&miner, model, &body, now)?;
        self.send(&sealed, opener).await
    }
}

fn refused(status: u16, body: &[u8]) -> PrivateClientError {
    PrivateClientError::Refused {
        status,
        message: agora_openai::OpenAiError::from_body(status, body).message,
    }
}

/// `agora private ...`.
#[derive(clap::Args, Debug, Clone)]
pub struct PrivateCli {
    /// The command.
    #[command(subcommand)]
    pub command: PrivateCommand,
}

/// The private-path commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum PrivateCommand {
    /// Sends one chat message end-to-end encrypted to an attested miner and prints the answer.
    Chat(ChatArgs),
    /// Lists the gateway's attested miners with this client's own verdict on each.
    Attestations(TrustArgs),
}

/// Where the gateway is and what this client trusts.
#[derive(clap::Args, Debug, Clone)]
pub struct TrustArgs {
    /// The gateway's URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub gateway: String,
    /// The API key.
    #[arg(long, env = "AGORA_API_KEY")]
    pub api_key: String,
    /// The TEE policy JSON (default: UpToDate TCB only, no debug, any image).
    #[arg(long)]
    pub tee_policy: Option<PathBuf>,
    /// A node to cross-check against: refuse a miner unless its bundle's digest is the one
    /// it published on chain.
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// INSECURE, development only: also trust the public test PKI's evidence.
    #[cfg(feature = "insecure-mock-tee")]
    #[arg(long = "insecure-mock-tee")]
    pub insecure_mock_tee: bool,
}

impl TrustArgs {
    /// The trust these flags describe.
    pub fn trust(&self) -> Result<ClientTrust, PrivateClientError> {
        let policy = match &self.tee_policy {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| {
                    PrivateClientError::Invalid(format!("--tee-policy {}: {e}", p.display()))
                })?;
                Policy::from_json(&bytes)?
            }
            None => Policy::default(),
        };
        #[cfg(feature = "insecure-mock-tee")]
        if self.insecure_mock_tee {
            return Ok(ClientTrust::insecure_mock_dev(policy)?);
        }
        Ok(ClientTrust::production(policy))
    }

    fn client(&self) -> Result<PrivateClient, PrivateClientError> {
        let client = PrivateClient::new(&self.gateway, &self.api_key, self.trust()?)?;
        Ok(match &self.node {
            Some(node) => client.with_node(node),
            None => client,
        })
    }
}

/// `agora private chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Gateway and trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The model.
    #[arg(long)]
    pub model: String,
    /// A specific miner (default: the first attested one serving the model).
    #[arg(long)]
    pub uid: Option<u16>,
    /// Completion tokens at most.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Print the whole decrypted JSON answer instead of the message text.
    #[arg(long)]
    pub json: bool,
    /// The message.
    #[arg(required = true)]
    pub prompt: Vec<String>,
}

/// Runs `agora private ...`; output goes to `out`.
pub async fn run(cli: PrivateCli, out: &mut dyn std::io::Write) -> Result<(), PrivateClientError> {
    let io = |e: std::io::Error| PrivateClientError::Transport(e.to_string());
    match cli.command {
        PrivateCommand::Attestations(t) => {
            let client = t.client()?;
            let list = client.attestations().await?;
            let now = unix_now();
            let mut rows: Vec<serde_json::Value> = Vec::new();
            for m in &list.data {
                let verdict = client.verify(list.netuid, m, now).await;
                rows.push(serde_json::json!({
                    "uid": m.uid,
                    "hotkey": m.hotkey,
                    "models": m.models,
                    "digest": m.digest,
                    "platform": m.platform,
                    "ok": verdict.is_ok(),
                    "error": verdict.as_ref().err().map(|e| e.to_string()),
                    "trust_anchor": verdict.as_ref().ok().map(|v| v.trust_anchor.as_str()),
                    "tcb_status": verdict.as_ref().ok().map(|v| v.tcb_status.as_str()),
                    "measurements": verdict.as_ref().ok().map(|v| agora_tee::report::measurements_json(&v.measurements)),
                }));
            }
            let text = serde_json::to_string_pretty(&serde_json::json!({
                "netuid": list.netuid,
                "miners": rows,
            }))
            .map_err(|e| PrivateClientError::Invalid(e.to_string()))?;
            writeln!(out, "{text}").map_err(io)?;
        }
        PrivateCommand::Chat(a) => {
            let client = a.trust.client()?;
            let request = serde_json::json!({
                "model": a.model,
                "messages": [{"role": "user", "content": a.prompt.join(" ")}],
                "max_tokens": a.max_tokens,
            });
            let r = client.chat(&request, a.uid).await?;
            if a.json || r.status != 200 {
                out.write_all(&r.body).map_err(io)?;
                writeln!(out).map_err(io)?;
                if r.status != 200 {
                    return Err(PrivateClientError::Refused {
                        status: r.status,
                        message: "the miner refused the request (answer above)".into(),
                    });
                }
            } else {
                let v: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|e| PrivateClientError::Invalid(format!("answer: {e}")))?;
                let text = v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default();
                writeln!(out, "{text}").map_err(io)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> AttestedMiner {
        let bundle = agora_tee::AttestationBundle {
            platform: agora_tee::Platform::AmdSevSnp,
            evidence: vec![1; 1184],
            collateral: Vec::new(),
            hpke_public_key: vec![2; 32],
        };
        AttestedMiner {
            uid: 4,
            hotkey: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
            models: vec!["m".into()],
            digest: hex::encode(bundle.digest().0),
            platform: "amd-sev-snp".into(),
            tcb_status: "UpToDate".into(),
            trust_anchor: "MockTest".into(),
            verified_at: 0,
            bundle,
        }
    }

    #[test]
    fn the_chain_must_carry_the_bundles_digest_for_the_same_hotkey() {
        let l = listing();
        let good = OnchainAxon {
            hotkey: l.hotkey.clone(),
            attestation_digest: Some(l.bundle.digest().0),
        };
        assert!(check_onchain_digest(&l, &good).is_ok());
        // Another digest on chain: refused, naming both.
        let other = OnchainAxon {
            attestation_digest: Some([7; 32]),
            ..good.clone()
        };
        let err = check_onchain_digest(&l, &other).unwrap_err().to_string();
        assert!(err.contains(&hex::encode([7u8; 32])), "{err}");
        assert!(err.contains(&l.digest), "{err}");
        // No digest on chain, or another hotkey on the uid: refused.
        let none = OnchainAxon {
            attestation_digest: None,
            ..good.clone()
        };
        assert!(matches!(
            check_onchain_digest(&l, &none),
            Err(PrivateClientError::Chain(_))
        ));
        let moved = OnchainAxon {
            hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
            ..good
        };
        assert!(matches!(
            check_onchain_digest(&l, &moved),
            Err(PrivateClientError::Chain(_))
        ));
    }
}
