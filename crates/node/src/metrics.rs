//! Prometheus metrics in text format, served at `/metrics` on their own address.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the commit-latency histogram buckets, milliseconds.
const COMMIT_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

/// The node's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Blocks committed since start.
    pub blocks: AtomicU64,
    /// Transactions committed since start.
    pub txs: AtomicU64,
    /// Transactions refused at admission.
    pub refused: AtomicU64,
    /// Transactions dropped from the pool (stale, expired, failed at build).
    pub dropped: AtomicU64,
    /// Head height.
    pub head: AtomicU64,
    /// Pending transactions (updated after each block and admission batch).
    pub mempool_txs: AtomicU64,
    /// Pending bytes.
    pub mempool_bytes: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_MS.len()],
    commit_count: AtomicU64,
    commit_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one block's build-and-commit latency.
    pub fn observe_commit(&self, micros: u64) {
        for (b, le) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_MS) {
            if micros <= le.saturating_mul(1000) {
                b.fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_sum_us.fetch_add(micros, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        counter(
            "agora_blocks_total",
            "Blocks committed since start.",
            "counter",
            self.blocks.load(Relaxed),
        );
        counter(
            "agora_txs_total",
            "Transactions committed since start.",
            "counter",
            self.txs.load(Relaxed),
        );
        counter(
            "agora_txs_refused_total",
            "Transactions refused at admission.",
            "counter",
            self.refused.load(Relaxed),
        );
        counter(
            "agora_txs_dropped_total",
            "Admitted transactions dropped without inclusion.",
            "counter",
            self.dropped.load(Relaxed),
        );
        counter(
            "agora_head_number",
            "Height of the latest committed block.",
            "gauge",
            self.head.load(Relaxed),
        );
        counter(
            "agora_mempool_txs",
            "Transactions in the mempool.",
            "gauge",
            self.mempool_txs.load(Relaxed),
        );
        counter(
            "agora_mempool_bytes",
            "Encoded bytes in the mempool.",
            "gauge",
            self.mempool_bytes.load(Relaxed),
        );
        let name = "agora_block_commit_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time to build and durably commit a block.\n# TYPE {name} histogram"
        );
        for (b, le) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_MS) {
            let _ = writeln!(
                s,
                "{name}_bucket{{le=\"{}\"}} {}",
                le as f64 / 1000.0,
                b.load(Relaxed)
            );
        }
        let count = self.commit_count.load(Relaxed);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "{name}_sum {}",
            self.commit_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "{name}_count {count}");
        s
    }
}

/// Largest request head read before answering: a scraper's GET fits in far less.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Serves `GET /metrics` (anything else is 404) until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_REQUEST_BYTES];
            let mut used = 0;
            while used < buf.len() {
                match sock.read(&mut buf[used..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => used += n,
                }
                if buf[..used].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..used]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found: try GET /metrics\n".to_owned())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
