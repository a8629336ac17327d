//! The miners the gateway routes to: what each serves, how loaded and how reliable it is, and
//! the choice of a miner for a request ([`pick`], pure).

use agora_openai::{MinerHealth, ModelList};
use agora_primitives::AccountId;
use agora_tee::{AttestationBundle, VerifiedEvidence};
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

/// Weight of each new sample in a miner's moving averages of latency and errors.
const EWMA_ALPHA: f64 = 0.2;
/// Failures in a row after which a miner is set aside for a while.
const FAILURES_BEFORE_BACKOFF: u32 = 3;
/// First backoff; it doubles with each further failure.
const BACKOFF_BASE_NS: u64 = 1_000_000_000;
/// Longest backoff.
const BACKOFF_MAX_NS: u64 = 30_000_000_000;

/// One model as a miner serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    /// The id.
    pub id: String,
    /// Context length in tokens, if the miner said.
    pub max_model_len: Option<u32>,
}

/// A miner's attestation bundle that verified under the gateway's policy and matches the
/// digest it published on chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Attested {
    /// The bundle, as the miner serves it.
    pub bundle: AttestationBundle,
    /// Its digest (equal to the on-chain one).
    pub digest: [u8; 32],
    /// What verification established.
    pub evidence: VerifiedEvidence,
    /// Unix seconds of the verification.
    pub verified_at: u64,
}

/// What the gateway has learned about a miner.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerStats {
    /// Models served (from `/v1/models`, or `/health` when that lists more).
    pub models: Vec<ServedModel>,
    /// Requests it serves at once (from `/health`).
    pub max_concurrency: u32,
    /// The last probe succeeded.
    pub healthy: bool,
    /// On-chain standing in [0, 1]: incentive and consensus (0.5 for static miners).
    pub chain_weight: f64,
    /// Moving average of time to first byte, milliseconds.
    pub latency_ms: f64,
    /// Moving average of failures (0 = none, 1 = all).
    pub error_rate: f64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Not chosen before this time (ns since the Unix epoch) unless nothing else is left.
    pub backoff_until_ns: u64,
    /// The attestation digest the miner published on chain with its axon.
    pub attestation_digest: Option<[u8; 32]>,
    /// Its bundle, when it verified at the last probe: only then is it sent private requests.
    pub attested: Option<Arc<Attested>>,
}

impl Default for MinerStats {
    fn default() -> Self {
        MinerStats {
            models: Vec::new(),
            max_concurrency: 1,
            healthy: false,
            chain_weight: 0.5,
            latency_ms: 0.0,
            error_rate: 0.0,
            consecutive_failures: 0,
            backoff_until_ns: 0,
            attestation_digest: None,
            attested: None,
        }
    }
}

/// A miner's axon.
#[derive(Debug)]
pub struct Miner {
    /// Base URL, `http://ip:port`, no trailing slash.
    pub url: String,
    /// Its hotkey: requests are signed for it and its answers must be signed by it.
    pub hotkey: AccountId,
    /// Its uid, when it comes from the metagraph.
    pub uid: Option<u16>,
    /// Requests this gateway has in flight to it.
    pub in_flight: AtomicU32,
    /// Requests sent, for metrics.
    pub requests: AtomicU64,
    /// Failed attempts (connect errors, 5xx, timeouts, bad signatures), for metrics.
    pub failures: AtomicU64,
    stats: Mutex<MinerStats>,
}

impl Miner {
    /// A miner not yet probed.
    pub fn new(url: String, hotkey: AccountId, uid: Option<u16>, chain_weight: f64) -> Self {
        Miner {
            url: url.trim_end_matches('/').to_owned(),
            hotkey,
            uid,
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            stats: Mutex::new(MinerStats {
                chain_weight,
                ..MinerStats::default()
            }),
        }
    }

    /// A copy of what is known.
    pub fn stats(&self) -> MinerStats {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MinerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a successful probe.
    pub fn probed(&self, health: &MinerHealth, models: Option<&ModelList>) {
        let mut served: Vec<ServedModel> = models
            .map(|l| {
                l.data
                    .iter()
                    .map(|m| ServedModel {
                        id: m.id.clone(),
                        max_model_len: m.max_model_len,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for id in &health.models {
            if !served.iter().any(|m| &m.id == id) {
                served.push(ServedModel {
                    id: id.clone(),
                    max_model_len: None,
                });
            }
        }
        let mut s = self.lock();
        s.models = served;
        s.max_concurrency = health.max_concurrency.max(1);
        s.healthy = true;
    }

    /// Records a failed probe.
    pub fn probe_failed(&self) {
        self.lock().healthy = false;
    }

    /// Records the attestation digest published on chain; a change forgets the verified
    /// bundle until the next probe verifies the new one.
    pub fn set_attestation_digest(&self, digest: Option<[u8; 32]>) {
        let mut s = self.lock();
        if s.attestation_digest != digest {
            s.attestation_digest = digest;
            s.attested = None;
        }
    }

    /// Records the outcome of an attestation check (`None`: not verified).
    pub fn set_attested(&self, attested: Option<Arc<Attested>>) {
        self.lock().attested = attested;
    }

    /// The verified bundle, if any.
    pub fn attested(&self) -> Option<Arc<Attested>> {
        self.lock().attested.clone()
    }

    /// Updates the on-chain standing.
    pub fn set_chain_weight(&self, w: f64) {
        self.lock().chain_weight = w.clamp(0.0, 1.0);
    }

    /// Records an attempt that got its first byte after `latency_ms`.
    pub fn succeeded(&self, latency_ms: f64) {
        let mut s = self.lock();
        s.latency_ms = if s.latency_ms == 0.0 {
            latency_ms
        } else {
            s.latency_ms + EWMA_ALPHA * (latency_ms - s.latency_ms)
        };
        s.error_rate *= 1.0 - EWMA_ALPHA;
        s.consecutive_failures = 0;
        s.backoff_until_ns = 0;
    }

    /// Records a failed attempt at `now_ns`.
    pub fn failed(&self, now_ns: u64) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        s.error_rate += EWMA_ALPHA * (1.0 - s.error_rate);
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        if s.consecutive_failures >= FAILURES_BEFORE_BACKOFF {
            let doublings = (s.consecutive_failures - FAILURES_BEFORE_BACKOFF).min(16);
            let wait = BACKOFF_BASE_NS
                .saturating_mul(1u64 << doublings)
                .min(BACKOFF_MAX_NS);
            s.backoff_until_ns = now_ns.saturating_add(wait);
        }
    }
}

/// What [`pick`] weighs for one miner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// On-chain standing in [0, 1].
    pub chain_weight: f64,
    /// Moving average of time to first byte, ms.
    pub latency_ms: f64,
    /// Moving average of failures in [0, 1].
    pub error_rate: f64,
    /// Requests this gateway has in flight to it.
    pub in_flight: u32,
    /// Requests it serves at once.
    pub max_concurrency: u32,
    /// Set aside after repeated failures, or its last probe failed.
    pub backing_off: bool,
}

impl Candidate {
    /// Higher is better: standing and reliability over latency, divided by load.
    pub fn score(&self) -> f64 {
        let quality = (0.1 + self.chain_weight.clamp(0.0, 1.0))
            * (1.0 - self.error_rate.clamp(0.0, 1.0)).max(0.01)
            / (1.0 + self.latency_ms.max(0.0) / 100.0);
        let load = 1.0 + f64::from(self.in_flight);
        let full = if self.in_flight >= self.max_concurrency {
            0.01
        } else {
            1.0
        };
        let resting = if self.backing_off { 1e-6 } else { 1.0 };
        quality / load * full * resting
    }
}

/// The best candidate's index: the highest [`Candidate::score`]; ties go to the first at or
/// after `rotate` (mod the length), so equal miners share the load.
pub fn pick(candidates: &[Candidate], rotate: usize) -> Option<usize> {
    let n = candidates.len();
    let mut best: Option<(usize, f64)> = None;
    for k in 0..n {
        let i = (rotate % n.max(1) + k) % n;
        let s = candidates.get(i)?.score();
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// The miners known now. Discovery replaces the list; requests read a snapshot.
#[derive(Debug, Default)]
pub struct MinerPool {
    miners: RwLock<Arc<Vec<Arc<Miner>>>>,
    rotate: AtomicU64,
}

impl MinerPool {
    /// A pool of `miners`.
    pub fn new(miners: Vec<Arc<Miner>>) -> Self {
        MinerPool {
            miners: RwLock::new(Arc::new(miners)),
            rotate: AtomicU64::new(0),
        }
    }

    /// The miners now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Miner>>> {
        self.miners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the list.
    pub fn replace(&self, miners: Vec<Arc<Miner>>) {
        *self.miners.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(miners);
    }

    /// The models served by any healthy miner, with the largest context length any of them
    /// reports (`None` when one of them reports none).
    pub fn models(&self) -> BTreeMap<String, Option<u32>> {
        let mut out: BTreeMap<String, Option<u32>> = BTreeMap::new();
        for m in self.snapshot().iter() {
            let s = m.stats();
            if !s.healthy {
                continue;
            }
            for model in s.models {
                out.entry(model.id)
                    .and_modify(|len| {
                        *len = match (*len, model.max_model_len) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        }
                    })
                    .or_insert(model.max_model_len);
            }
        }
        out
    }

    /// The best miner serving `model` with room for `max_tokens`, other than those in
    /// `exclude`, at `now_ns`.
    pub fn choose(
        &self,
        model: &str,
        max_tokens: Option<u32>,
        exclude: &[Arc<Miner>],
        now_ns: u64,
    ) -> Option<Arc<Miner>> {
        let snapshot = self.snapshot();
        let mut eligible = Vec::with_capacity(snapshot.len());
        let mut candidates = Vec::with_capacity(snapshot.len());
        for m in snapshot.iter() {
            if exclude.iter().any(|e| Arc::ptr_eq(e, m)) {
                continue;
            }
            let s = m.lock();
            let serves = s.models.iter().any(|sm| {
                sm.id == model
                    && match (sm.max_model_len, max_tokens) {
                        (Some(limit), Some(n)) => n <= limit,
                        _ => true,
                    }
            });
            if !serves {
                continue;
            }
            candidates.push(Candidate {
                chain_weight: s.chain_weight,
                latency_ms: s.latency_ms,
                error_rate: s.error_rate,
                in_flight: m.in_flight.load(Ordering::Relaxed),
                max_concurrency: s.max_concurrency,
                backing_off: !s.healthy || s.backoff_until_ns > now_ns,
            });
            drop(s);
            eligible.push(m);
        }
        let rotate = self.rotate.fetch_add(1, Ordering::Relaxed) as usize;
        pick(&candidates, rotate).and_then(|i| eligible.get(i).map(|m| Arc::clone(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(chain_weight: f64, latency_ms: f64, in_flight: u32) -> Candidate {
        Candidate {
            chain_weight,
            latency_ms,
            error_rate: 0.0,
            in_flight,
            max_concurrency: 8,
            backing_off: false,
        }
    }

    #[test]
    fn prefers_standing_speed_and_idle() {
        assert_eq!(pick(&[c(0.2, 10.0, 0), c(0.9, 10.0, 0)], 0), Some(1));
        assert_eq!(pick(&[c(0.5, 500.0, 0), c(0.5, 10.0, 0)], 0), Some(1));
        assert_eq!(pick(&[c(0.5, 10.0, 4), c(0.5, 10.0, 0)], 0), Some(1));
        let mut resting = c(1.0, 1.0, 0);
        resting.backing_off = true;
        assert_eq!(pick(&[resting, c(0.0, 900.0, 7)], 0), Some(1));
        // Still chosen when it is all there is.
        assert_eq!(pick(&[resting], 0), Some(0));
        assert_eq!(pick(&[], 3), None);
        // Ties rotate.
        let same = [c(0.5, 1.0, 0), c(0.5, 1.0, 0), c(0.5, 1.0, 0)];
        assert_eq!(
            (pick(&same, 0), pick(&same, 1), pick(&same, 5)),
            (Some(0), Some(1), Some(2))
        );
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let m = Miner::new("http://x/".into(), AccountId([1; 32]), None, 0.5);
        assert_eq!(m.url, "http://x");
        for _ in 0..3 {
            m.failed(100);
        }
        assert_eq!(m.stats().backoff_until_ns, 100 + BACKOFF_BASE_NS);
        m.failed(100);
        assert_eq!(m.stats().backoff_until_ns, 100 + 2 * BACKOFF_BASE_NS);
        m.succeeded(5.0);
        assert_eq!(m.stats().backoff_until_ns, 0);
        assert!(m.stats().error_rate > 0.0);
    }
}
