//! The gateway's private path: lists attested miners and relays sealed requests to them.
//!
//! - `GET /v1/private/attestations`: every miner whose bundle verified at the last probe
//!   (digest equal to the one on chain, evidence accepted by the subnet's policy, key bound)
//!   and that the subnet's validators have not zeroed ([`validators_allow`]):
//!   uid, hotkey, models, digest, platform, TCB status, measurements, trust anchor, and the
//!   bundle itself, so that a client can verify it on its own.
//! - `POST /v1/private/chat/completions`: the body is a sealed request (JSON with routing
//!   metadata in the clear, authenticated by the HPKE seal). The gateway reads only the
//!   metadata, relays the bytes unchanged to the miner with that uid — only if its bundle
//!   verified — and relays the miner's sealed event stream back unchanged. It holds no key
//!   and cannot read or alter either direction without the client noticing.
//!
//! Usage is metered in requests only: token counts are inside the ciphertext.

use crate::{
    miners::Miner,
    server::{admit, error_response, read_body, Gateway, InFlight},
};
use agora_openai::{sse, OpenAiError};
use agora_tee::channel::SealedRequest;
use agora_wire::WireReply;
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::{convert::Infallible, sync::Arc, time::Instant};
use tokio::sync::mpsc;

/// One attested miner, as listed to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestedMiner {
    /// Its uid on the subnet.
    pub uid: u16,
    /// Its hotkey (SS58).
    pub hotkey: String,
    /// The models it serves.
    pub models: Vec<String>,
    /// The bundle digest it published on chain (hex).
    pub digest: String,
    /// What the gateway's verification found (the client verifies again).
    pub platform: String,
    /// TCB status.
    pub tcb_status: String,
    /// The trust anchor the evidence chained to.
    pub trust_anchor: String,
    /// Unix seconds of the gateway's verification.
    pub verified_at: u64,
    /// The bundle itself.
    pub bundle: agora_tee::AttestationBundle,
}

/// The answer of `GET /v1/private/attestations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationList {
    /// Always `"list"`.
    pub object: String,
    /// The subnet, to put in each request's metadata.
    pub netuid: u16,
    /// The attested miners.
    pub data: Vec<AttestedMiner>,
}

fn disabled() -> OpenAiError {
    OpenAiError::new(
        404,
        "invalid_request_error",
        "This gateway does not serve private requests (start it with a TEE policy).",
        None,
        Some("private_disabled"),
    )
}

/// Whether the subnet's validators let a miner have private traffic. The gateway verifies
/// every bundle itself; validators in addition send private challenges and give weight 0
/// to a miner whose evidence or sealed answers fail. Once any miner of the subnet holds
/// on-chain standing (validators' weights have reached consensus), a miner without standing
/// gets no private request; before that, the gateway's own verification decides alone.
pub fn validators_allow(standing: f64, subnet_has_standing: bool) -> bool {
    !subnet_has_standing || standing > 0.0
}

fn attested_miners(gw: &Gateway) -> Vec<(Arc<Miner>, AttestedMiner)> {
    let miners = gw.pool.snapshot();
    let subnet_has_standing = miners.iter().any(|m| m.stats().chain_weight > 0.0);
    miners
        .iter()
        .filter_map(|m| {
            let a = m.attested()?;
            let uid = m.uid?;
            let stats = m.stats();
            if !stats.healthy || !validators_allow(stats.chain_weight, subnet_has_standing) {
                return None;
            }
            Some((
                m.clone(),
                AttestedMiner {
                    uid,
                    hotkey: m.hotkey.to_ss58(),
                    models: stats.models.iter().map(|s| s.id.clone()).collect(),
                    digest: hex::encode(a.digest),
                    platform: a.evidence.platform.as_str().to_owned(),
                    tcb_status: a.evidence.tcb_status.as_str().to_owned(),
                    trust_anchor: a.evidence.trust_anchor.as_str().to_owned(),
                    verified_at: a.verified_at,
                    bundle: a.bundle.clone(),
                },
            ))
        })
        .collect()
}

/// `GET /v1/private/attestations`.
pub(crate) async fn attestations(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let response = match (admit(&gw, &headers), &gw.config.private) {
        (Err(r), _) => error_response(&r.error, r.retry_after_s),
        (Ok(_), None) => error_response(&disabled(), None),
        (Ok(_), Some(p)) => axum::Json(AttestationList {
            object: "list".into(),
            netuid: p.netuid,
            data: attested_miners(&gw).into_iter().map(|(_, a)| a).collect(),
        })
        .into_response(),
    };
    gw.metrics.observe(
        "private_attestations",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `POST /v1/private/chat/completions`.
pub(crate) async fn chat(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let in_flight = InFlight::new(&gw);
    let response = match admit(&gw, &headers) {
        Err(r) => error_response(&r.error, r.retry_after_s),
        Ok(key) => match relay(&gw, &headers, body, in_flight).await {
            Ok(r) => {
                gw.usage.record(&key.name, true, None);
                r
            }
            Err(e) => {
                gw.usage.record(&key.name, false, None);
                error_response(&e, None)
            }
        },
    };
    gw.metrics.observe(
        "private_chat",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn relay(
    gw: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Body,
    in_flight: InFlight,
) -> Result<Response, OpenAiError> {
    let private = gw.config.private.as_ref().ok_or_else(disabled)?;
    let bytes = read_body(gw, headers, body).await?;
    let sealed: SealedRequest = serde_json::from_slice(&bytes).map_err(|e| {
        OpenAiError::invalid(
            format!("not a sealed request: {e}"),
            "body",
            "invalid_sealed_request",
        )
    })?;
    let meta = &sealed.metadata;
    if meta.netuid != private.netuid {
        return Err(OpenAiError::invalid(
            format!(
                "netuid {} is not this gateway's subnet {}",
                meta.netuid, private.netuid
            ),
            "metadata.netuid",
            "wrong_netuid",
        ));
    }
    let miner = attested_miners(gw)
        .into_iter()
        .find(|(_, a)| a.uid == meta.uid)
        .map(|(m, _)| m)
        .ok_or_else(|| {
            OpenAiError::new(
                404,
                "invalid_request_error",
                format!(
                    "uid {} has no verified attestation on this gateway: private requests go only \
                     to miners whose TEE evidence verifies",
                    meta.uid
                ),
                Some("metadata.uid"),
                Some("miner_not_attested"),
            )
        })?;
    let url = format!("{}/v1/private/chat/completions", miner.url);
    let timeout = gw.config.request_timeout;
    let sent = tokio::time::timeout(
        timeout,
        gw.wire.send_streaming(
            Method::POST,
            &url,
            &miner.hotkey,
            bytes.to_vec(),
            Some("application/json"),
        ),
    )
    .await
    .map_err(|_| OpenAiError::timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)))?
    .map_err(|e| {
        miner.failed(gw.clock.now_ns());
        OpenAiError::unavailable(format!("the miner failed: {e}"))
    })?;
    match sent {
        WireReply::Buffered(r) => {
            // A refusal before decryption (replay, stale, malformed): plain, and passed on.
            let status = StatusCode::from_u16(r.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            Ok((
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                r.body,
            )
                .into_response())
        }
        WireReply::Stream(mut stream) => {
            let (tx, rx) = mpsc::channel::<Bytes>(64);
            let idle = gw.config.stream_idle_timeout;
            let miner = miner.clone();
            let gw = gw.clone();
            tokio::spawn(async move {
                let _in_flight = in_flight;
                loop {
                    match tokio::time::timeout(idle, stream.next_chunk()).await {
                        Ok(Ok(Some(chunk))) => {
                            if tx.send(chunk).await.is_err() {
                                return;
                            }
                        }
                        Ok(Ok(None)) => return,
                        // The client sees the stream end without its final frame and fails
                        // closed; nothing else can be said without a key.
                        Ok(Err(e)) => {
                            tracing::debug!(miner = %miner.url, error = %e, "private stream failed");
                            miner.failed(gw.clock.now_ns());
                            return;
                        }
                        Err(_) => {
                            miner.failed(gw.clock.now_ns());
                            return;
                        }
                    }
                }
            });
            let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            }));
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(sse::CONTENT_TYPE),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                ],
                body,
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validators_allow;

    #[test]
    fn a_miner_zeroed_by_validators_gets_no_private_traffic() {
        // Before any consensus the gateway's own verification decides.
        assert!(validators_allow(0.0, false));
        // After it, only miners with standing.
        assert!(validators_allow(0.2, true));
        assert!(!validators_allow(0.0, true));
    }
}
