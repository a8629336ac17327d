//! Prometheus counters for miners and validators, rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one neuron. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct NeuronMetrics {
    /// Miner: requests answered.
    pub requests_ok: AtomicU64,
    /// Miner: requests refused by the handler or undecodable.
    pub requests_failed: AtomicU64,
    /// Miner: total handler time, microseconds.
    pub handler_micros: AtomicU64,
    /// Validator: query rounds completed.
    pub rounds: AtomicU64,
    /// Validator: queries answered.
    pub queries_ok: AtomicU64,
    /// Validator: queries failed (timeout, refused, unreachable, bad answer encoding).
    pub queries_failed: AtomicU64,
    /// Validator: weight submissions (set or commit) accepted on chain.
    pub weights_submitted: AtomicU64,
}

impl NeuronMetrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus text format, labelled with the role, netuid and uid.
    pub fn render(&self, role: &str, netuid: u16, uid: u16) -> String {
        let mut out = String::new();
        let rows: [(&str, &str, &AtomicU64); 7] = [
            (
                "agora_miner_requests_ok_total",
                "Requests answered",
                &self.requests_ok,
            ),
            (
                "agora_miner_requests_failed_total",
                "Requests refused or undecodable",
                &self.requests_failed,
            ),
            (
                "agora_miner_handler_micros_total",
                "Time spent in the handler, microseconds",
                &self.handler_micros,
            ),
            (
                "agora_validator_rounds_total",
                "Query rounds completed",
                &self.rounds,
            ),
            (
                "agora_validator_queries_ok_total",
                "Queries answered",
                &self.queries_ok,
            ),
            (
                "agora_validator_queries_failed_total",
                "Queries without a usable answer",
                &self.queries_failed,
            ),
            (
                "agora_validator_weights_submitted_total",
                "Weight submissions accepted",
                &self.weights_submitted,
            ),
        ];
        for (name, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}.");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{role=\"{role}\",netuid=\"{netuid}\",uid=\"{uid}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = NeuronMetrics::default();
        NeuronMetrics::inc(&m.requests_ok);
        let text = m.render("miner", 1, 3);
        assert!(text
            .contains("agora_miner_requests_ok_total{role=\"miner\",netuid=\"1\",uid=\"3\"} 1\n"));
        assert!(text.contains("# TYPE agora_validator_rounds_total counter"));
    }
}
