//! `agora tee verify`: checks TEE evidence offline and prints the verdict as JSON.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// `agora tee` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TeeCommand {
    /// Verifies a TDX/SGX quote or an SEV-SNP report; prints a JSON object with "ok" and exits
    /// non-zero when the evidence does not verify.
    Verify {
        /// The quote or report (raw bytes or hex text).
        evidence: PathBuf,
        /// Intel collateral JSON, or the AMD VCEK (+ASK) as PEM or DER.
        #[arg(long)]
        collateral: Option<PathBuf>,
        /// Policy JSON (accepted TCB statuses, debug, measurement allow-lists, freshness).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Verification time, seconds since the Unix epoch (default: now).
        #[arg(long)]
        now: Option<u64>,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the command; returns whether the evidence verified.
pub(crate) fn run(cmd: TeeCommand) -> Result<bool> {
    match cmd {
        TeeCommand::Verify {
            evidence,
            collateral,
            policy,
            now,
        } => {
            let evidence = read(&evidence)?;
            let collateral = collateral.as_ref().map(read).transpose()?;
            let policy = policy.as_ref().map(read).transpose()?;
            let now = match now {
                Some(n) => n,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs(),
            };
            let report = agora_tee::report::verify_files_report(
                &evidence,
                collateral.as_deref(),
                policy.as_deref(),
                now,
            );
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(report["ok"] == serde_json::Value::Bool(true))
        }
    }
}
