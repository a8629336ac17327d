//! Where miners come from (a static list or the subnet's metagraph) and the probes that learn
//! what each serves.

use crate::{
    miners::{Attested, Miner},
    server::Gateway,
    GatewayError, PrivateConfig,
};
use agora_client::MetagraphCache;
use agora_openai::{MinerHealth, ModelList};
use agora_primitives::AccountId;
use agora_tee::AttestationBundle;
use agora_wire::WireClient;
use std::{net::IpAddr, str::FromStr, sync::Arc, time::Duration};

/// A miner given on the command line: `URL=HOTKEY_SS58`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMiner {
    /// Base URL.
    pub url: String,
    /// Hotkey.
    pub hotkey: AccountId,
}

impl FromStr for StaticMiner {
    type Err = GatewayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GatewayError::Usage(format!("--miner {s:?}: expected URL=HOTKEY_SS58"));
        let (url, hotkey) = s.rsplit_once('=').ok_or_else(bad)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad());
        }
        let (hotkey, _) = AccountId::from_ss58_with_prefix(hotkey).map_err(|_| bad())?;
        Ok(StaticMiner {
            url: url.trim_end_matches('/').to_owned(),
            hotkey,
        })
    }
}

/// Where the gateway finds miners.
#[derive(Debug, Clone)]
pub enum MinerSource {
    /// A fixed list.
    Static(Vec<StaticMiner>),
    /// Every neuron of the subnet that serves an axon, from a live metagraph.
    Metagraph(MetagraphCache),
}

/// Weight of a neuron's incentive and consensus, as a standing in [0, 1].
fn chain_weight(incentive: u16, consensus: u16) -> f64 {
    (f64::from(incentive) + f64::from(consensus)) / (2.0 * f64::from(u16::MAX))
}

fn axon_url(ip: &str, port: u16) -> Option<String> {
    let ip: IpAddr = ip.parse().ok()?;
    if ip.is_unspecified() || port == 0 {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    })
}

/// Rebuilds the pool's list from the source, keeping the state of miners that stay.
pub fn sync_pool(gw: &Gateway, source: &MinerSource) {
    let current = gw.pool.snapshot();
    let keep = |url: &str, hotkey: &AccountId| {
        current
            .iter()
            .find(|m| m.url == url && m.hotkey == *hotkey)
            .cloned()
    };
    let next: Vec<Arc<Miner>> = match source {
        MinerSource::Static(list) => list
            .iter()
            .map(|s| {
                keep(&s.url, &s.hotkey)
                    .unwrap_or_else(|| Arc::new(Miner::new(s.url.clone(), s.hotkey, None, 0.5)))
            })
            .collect(),
        MinerSource::Metagraph(cache) => {
            let Some(mg) = cache.get() else {
                return;
            };
            mg.neurons
                .iter()
                .filter_map(|n| {
                    let axon = n.axon.as_ref()?;
                    let url = axon_url(&axon.ip, axon.port)?;
                    let w = chain_weight(n.incentive, n.consensus);
                    let m = keep(&url, &n.hotkey)
                        .unwrap_or_else(|| Arc::new(Miner::new(url, n.hotkey, Some(n.uid), w)));
                    m.set_chain_weight(w);
                    m.set_attestation_digest(axon.attestation_digest);
                    Some(m)
                })
                .collect()
        }
    };
    gw.pool.replace(next);
}

/// Asks one miner for `/health` and `/v1/models`.
pub async fn probe(client: &WireClient, miner: &Miner, timeout: Duration) {
    let health = tokio::time::timeout(
        timeout,
        client.get_json::<MinerHealth>(&format!("{}/health", miner.url), &miner.hotkey),
    )
    .await;
    match health {
        Ok(Ok(h)) => {
            let models = tokio::time::timeout(
                timeout,
                client.get_json::<ModelList>(&format!("{}/v1/models", miner.url), &miner.hotkey),
            )
            .await
            .ok()
            .and_then(Result::ok);
            miner.probed(&h, models.as_ref());
        }
        Ok(Err(e)) => {
            tracing::debug!(miner = %miner.url, error = %e, "probe failed");
            miner.probe_failed();
        }
        Err(_) => {
            tracing::debug!(miner = %miner.url, "probe timed out");
            miner.probe_failed();
        }
    }
}

/// Fetches a miner's attestation bundle and checks it: the digest it published on chain,
/// then the evidence under the gateway's policy and anchors at `now`, binding included.
/// Miners without an on-chain digest, or whose bundle fails, get no private requests.
pub async fn check_attestation(
    client: &WireClient,
    private: &PrivateConfig,
    miner: &Miner,
    timeout: Duration,
    now: u64,
) {
    let Some(digest) = miner.stats().attestation_digest else {
        miner.set_attested(None);
        return;
    };
    let fetched = tokio::time::timeout(
        timeout,
        client
            .get_json::<AttestationBundle>(&format!("{}/v1/attestation", miner.url), &miner.hotkey),
    )
    .await;
    let bundle = match fetched {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::warn!(miner = %miner.url, error = %e, "attestation bundle unavailable");
            miner.set_attested(None);
            return;
        }
        Err(_) => {
            tracing::warn!(miner = %miner.url, "attestation bundle request timed out");
            miner.set_attested(None);
            return;
        }
    };
    let verdict = agora_tee::verify_published_bundle(
        &bundle,
        &digest,
        now,
        &private.policy,
        &private.anchors,
    );
    match verdict {
        Ok(evidence) => miner.set_attested(Some(Arc::new(Attested {
            bundle,
            digest,
            evidence,
            verified_at: now,
        }))),
        Err(e) => {
            tracing::warn!(miner = %miner.url, error = %e, "attestation rejected: no private requests");
            miner.set_attested(None);
        }
    }
}

/// One round: sync the list, probe every miner at once (and check the attestation of those
/// that publish one, when the private path is on), refresh the model table.
pub async fn refresh(gw: &Gateway, source: &MinerSource, probe_client: &WireClient) {
    sync_pool(gw, source);
    let miners = gw.pool.snapshot();
    let timeout = gw.config.probe_timeout;
    let now = gw.clock.now_ns() / 1_000_000_000;
    futures::future::join_all(miners.iter().map(|m| async move {
        probe(probe_client, m, timeout).await;
        if let Some(private) = &gw.config.private {
            check_attestation(probe_client, private, m, timeout, now).await;
        }
    }))
    .await;
    gw.refresh_models();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_static_miners_and_axon_urls() {
        let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let m: StaticMiner = format!("http://127.0.0.1:9/={alice}").parse().unwrap();
        assert_eq!(m.url, "http://127.0.0.1:9");
        assert!("127.0.0.1:9=x".parse::<StaticMiner>().is_err());
        assert!(format!("http://h={alice}x").parse::<StaticMiner>().is_err());
        assert_eq!(axon_url("::1", 80).as_deref(), Some("http://[::1]:80"));
        assert_eq!(axon_url("0.0.0.0", 80), None);
        assert_eq!(chain_weight(u16::MAX, u16::MAX), 1.0);
    }
}
