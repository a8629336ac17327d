//! Prometheus metrics in the text exposition format: requests by route and status, a latency
//! histogram, requests in flight, retries, tokens, and per-miner counters.

use crate::miners::MinerPool;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

/// Upper bounds of the latency histogram's buckets, seconds.
const BUCKETS_S: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Requests being served now.
    pub in_flight: AtomicI64,
    /// Attempts retried on another miner.
    pub retries: AtomicU64,
    /// Prompt tokens served.
    pub prompt_tokens: AtomicU64,
    /// Completion tokens served.
    pub completion_tokens: AtomicU64,
    /// Streams whose signature trailer was missing or wrong.
    pub unsigned_streams: AtomicU64,
}

impl Metrics {
    /// Records a finished request: its route, status and time to the response head.
    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
        let s = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS_S.iter().position(|b| s <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text exposition, with the pool's per-miner series.
    pub fn render(&self, pool: &MinerPool) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP agora_gateway_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE agora_gateway_requests_total counter");
        for ((route, status), n) in self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "agora_gateway_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP agora_gateway_request_duration_seconds Time to the response head."
        );
        let _ = writeln!(
            out,
            "# TYPE agora_gateway_request_duration_seconds histogram"
        );
        let mut cumulative = 0u64;
        for (b, count) in BUCKETS_S.iter().zip(&self.buckets) {
            cumulative = cumulative.saturating_add(count.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "agora_gateway_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "agora_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "agora_gateway_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "agora_gateway_request_duration_seconds_count {count}");
        let scalars: [(&str, &str, &str, i64); 5] = [
            (
                "agora_gateway_in_flight",
                "gauge",
                "Requests being served.",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "agora_gateway_retries_total",
                "counter",
                "Attempts retried on another miner.",
                load(&self.retries),
            ),
            (
                "agora_gateway_prompt_tokens_total",
                "counter",
                "Prompt tokens served.",
                load(&self.prompt_tokens),
            ),
            (
                "agora_gateway_completion_tokens_total",
                "counter",
                "Completion tokens served.",
                load(&self.completion_tokens),
            ),
            (
                "agora_gateway_unsigned_streams_total",
                "counter",
                "Streams without a valid signature trailer.",
                load(&self.unsigned_streams),
            ),
        ];
        for (name, kind, help, v) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        let miners = pool.snapshot();
        let series: [(&str, &str, &str); 6] = [
            (
                "agora_gateway_miner_requests_total",
                "counter",
                "Attempts sent to the miner.",
            ),
            (
                "agora_gateway_miner_failures_total",
                "counter",
                "Failed attempts (connect, 5xx, timeout, signature).",
            ),
            (
                "agora_gateway_miner_in_flight",
                "gauge",
                "Requests in flight to the miner.",
            ),
            (
                "agora_gateway_miner_healthy",
                "gauge",
                "1 when the last probe succeeded.",
            ),
            (
                "agora_gateway_miner_latency_ms",
                "gauge",
                "Moving average of time to first byte.",
            ),
            (
                "agora_gateway_miner_error_rate",
                "gauge",
                "Moving average of failed attempts.",
            ),
        ];
        for (i, (name, kind, help)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for m in miners.iter() {
                let s = m.stats();
                let v = match i {
                    0 => m.requests.load(Ordering::Relaxed) as f64,
                    1 => m.failures.load(Ordering::Relaxed) as f64,
                    2 => f64::from(m.in_flight.load(Ordering::Relaxed)),
                    3 => f64::from(u8::from(s.healthy)),
                    4 => s.latency_ms,
                    _ => s.error_rate,
                };
                let uid = m.uid.map(|u| u.to_string()).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{name}{{miner=\"{}\",uid=\"{uid}\",hotkey=\"{}\"}} {v}",
                    m.url,
                    m.hotkey.to_ss58()
                );
            }
        }
        out
    }
}

fn load(a: &AtomicU64) -> i64 {
    i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
}
