//! Child processes that `agora devnet` and `agora testnet` start: spawned with their stderr
//! in a log file and their stdout lines on a channel (where neurons announce readiness),
//! and stopped together (SIGTERM, then SIGKILL after a grace period) so that no process
//! outlives its parent.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Children started so far; stopped on drop so that none outlives its parent.
pub(crate) struct Children(pub(crate) Vec<(String, Child)>);

impl Children {
    pub(crate) fn stop_all(&mut self) {
        for (_, child) in &self.0 {
            // SIGTERM lets each process finish what it is committing.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!("{name} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts `exe args`, stderr into `log`, stdout lines onto the returned channel.
pub(crate) fn spawn(
    exe: &Path,
    args: &[String],
    log: &Path,
) -> Result<(Child, mpsc::Receiver<String>)> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}
