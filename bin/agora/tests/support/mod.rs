//! Helpers shared by the end-to-end tests that start `agora devnet` as a real process.
//! Each test binary uses a different subset, hence the `dead_code` allowance where it is
//! included.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Waits until `path` holds a whole JSON document (the devnet writes `devnet.json` once
/// every process is up) and returns it.
pub(crate) fn wait_for_file(path: &Path, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running `agora devnet`, interrupted (Ctrl-C) and reaped on drop.
pub(crate) struct Devnet(Child);

impl Devnet {
    /// Starts `agora devnet` with `args` and its data in `data_dir`; output is discarded.
    pub(crate) fn start(args: &[&str], data_dir: &Path) -> Devnet {
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("devnet")
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agora devnet");
        Devnet(child)
    }

    /// Interrupts the devnet as Ctrl-C would and waits up to 20 s for it to exit; `None`
    /// when it did not (it is then killed).
    pub(crate) fn interrupt(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        signal(self.0.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// Sends `kill -<name>` to a process.
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the raw body
/// (de-chunked). Raw sockets on purpose: what the gateway sends is what the test sees.
pub(crate) fn http(url: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        },
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until the gateway lists `model` (it learns models from the miners' health probes).
pub(crate) fn wait_for_model(url: &str, key: &str, model: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(url, "GET", "/v1/models", key, "");
        if status == 200 && body.contains(model) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "models never listed: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
