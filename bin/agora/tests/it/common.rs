//! Starting and stopping `agora node` processes, and running CLI verbs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const AGORA: &str = env!("CARGO_BIN_EXE_agora");

/// A running `agora node` child process; killed when dropped.
pub(crate) struct NodeProc {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl NodeProc {
    /// Starts `agora node --dev --instant` on `data_dir` with an ephemeral port and waits
    /// for its RPC line.
    pub(crate) fn spawn(data_dir: &Path, block_time: &str) -> NodeProc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = Command::new(AGORA)
            .args(["node", "--dev", "--instant", "--block-time", block_time])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--rpc-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start agora node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the address line, then keeps draining so the child never blocks on a pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("agora node: rpc=") {
                    let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("node did not print its RPC address; log:\n{log}");
            }
        };
        NodeProc { child, url }
    }

    /// SIGKILL, no chance to clean up.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        let rc = send_sigterm(pid);
        assert_eq!(rc, 0, "sending SIGTERM failed");
        self.child.wait().unwrap()
    }
}

/// Through kill(1): the workspace forbids the `unsafe` a direct libc call needs.
fn send_sigterm(pid: i32) -> i32 {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `agora <args>` and returns its output.
pub(crate) fn agora(args: &[&str]) -> Output {
    Command::new(AGORA)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agora")
}

/// Runs `agora <args>`, asserting success, and returns stdout.
pub(crate) fn agora_ok(args: &[&str]) -> String {
    let out = agora(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "agora {} failed: {}\nstdout: {stdout}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub(crate) fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("node");
    (t, p)
}

/// Creates a subnet owned by //Alice (hotkey //AliceHot) and returns its netuid.
pub(crate) fn create_subnet(rpc: &str) -> String {
    let created = agora_ok(&[
        "subnet",
        "create",
        "--key",
        "//Alice",
        "--hotkey",
        "//AliceHot",
        "--rpc-url",
        rpc,
    ]);
    created
        .lines()
        .find_map(|l| l.strip_prefix("created subnet "))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no netuid in: {created}"))
        .to_owned()
}

/// The subnet's metagraph as `agora metagraph --json` prints it.
pub(crate) fn metagraph(url: &str, netuid: &str) -> Vec<serde_json::Value> {
    let out = agora_ok(&["metagraph", "--netuid", netuid, "--json", "--rpc-url", url]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("metagraph JSON: {e}\n{out}"))
}

/// Polls `f` every 200 ms until it holds; panics after `timeout`.
pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
