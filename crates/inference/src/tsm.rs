//! TEE evidence from the guest kernel's configfs-tsm report interface, the one interface
//! Linux offers both TDX guests (`tdx_guest`) and SEV-SNP guests (`sev_guest`).
//!
//! One request: create a report entry (a directory under `/sys/kernel/config/tsm/report`),
//! write the 64 bytes of report data to its `inblob`, read `generation`, read `outblob`
//! (the quote or report), read `generation` again and remove the entry. A changed
//! generation means another writer shared the entry between our write and our read, so
//! the evidence may not carry our report data: the request fails rather than publish it.
//! The evidence must also contain the report data we asked for.
//!
//! The verifier's collateral does not come from the guest: Intel's (PCK CRL, TCB info, QE
//! identity, as JSON) comes from a PCCS, AMD's VCEK and ASK certificates from AMD's KDS or
//! the host. The operator fetches it out of band and passes the file; it is read at each
//! request so that a refreshed file is picked up.

use agora_tee::{Evidence, EvidenceSource, Platform, TeeError};
use std::path::{Path, PathBuf};

/// Where the kernel mounts the report interface.
pub const DEFAULT_TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// Largest quote or report read back (a TDX quote with its certification data is a few
/// KiB; an SNP report is 1,184 bytes).
const MAX_OUTBLOB: u64 = 1 << 20;
/// Largest collateral file read.
const MAX_COLLATERAL: u64 = 4 << 20;

/// A configfs-tsm evidence source.
#[derive(Debug, Clone)]
pub struct ConfigfsTsm {
    report_dir: PathBuf,
    platform: Platform,
    collateral: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> TeeError {
    TeeError::EvidenceSource(format!("configfs-tsm: {what} {}: {e}", path.display()))
}

fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, TeeError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_err(what, path, e))?;
    let mut out = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io_err(what, path, e))?;
    if out.len() as u64 > limit {
        return Err(TeeError::LimitExceeded(format!(
            "{what} {} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(out)
}

fn read_text(path: &Path, what: &str) -> Result<String, TeeError> {
    let bytes = read_limited(path, 4096, what)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

/// The platform a configfs-tsm `provider` names.
pub fn platform_of_provider(provider: &str) -> Result<Platform, TeeError> {
    match provider {
        "tdx_guest" => Ok(Platform::IntelTdx),
        "sev_guest" => Ok(Platform::AmdSevSnp),
        other => Err(TeeError::EvidenceSource(format!(
            "configfs-tsm provider `{other}` is neither tdx_guest nor sev_guest"
        ))),
    }
}

/// Asks the report entry `entry` (which must exist) for evidence over `report_data`.
pub fn request_report(entry: &Path, report_data: &[u8; 64]) -> Result<Vec<u8>, TeeError> {
    let inblob = entry.join("inblob");
    std::fs::write(&inblob, report_data).map_err(|e| io_err("writing", &inblob, e))?;
    let generation = entry.join("generation");
    let before = read_text(&generation, "reading")?;
    let outblob = read_limited(&entry.join("outblob"), MAX_OUTBLOB, "reading")?;
    let after = read_text(&generation, "reading")?;
    if before != after {
        return Err(TeeError::EvidenceSource(format!(
            "configfs-tsm: {} was written by someone else during the request (generation {before} -> {after}); try again",
            entry.display()
        )));
    }
    if outblob.is_empty() {
        return Err(TeeError::EvidenceSource(format!(
            "configfs-tsm: {} returned no evidence",
            entry.display()
        )));
    }
    if !outblob.windows(report_data.len()).any(|w| w == report_data) {
        return Err(TeeError::BindingMismatch);
    }
    Ok(outblob)
}

impl ConfigfsTsm {
    /// A source over the report interface at `report_dir` (normally
    /// [`DEFAULT_TSM_REPORT_DIR`]) with the verifier's collateral in `collateral`. Fails with
    /// a clear message when the interface is absent (no TEE guest, or a kernel without
    /// configfs-tsm) or names an unknown provider.
    pub fn open(report_dir: &Path, collateral: &Path) -> Result<Self, TeeError> {
        if !report_dir.is_dir() {
            return Err(TeeError::EvidenceSource(format!(
                "configfs-tsm: {} does not exist: this is not a TDX or SEV-SNP guest, or its kernel lacks configfs-tsm (mount configfs and load tdx_guest or sev_guest)",
                report_dir.display()
            )));
        }
        // The provider is known only inside an entry: probe with one.
        let probe = Entry::create(report_dir)?;
        let provider = read_text(&probe.path.join("provider"), "reading")?;
        drop(probe);
        let platform = platform_of_provider(&provider)?;
        // Fail now rather than at the first request if the collateral is unreadable.
        read_limited(collateral, MAX_COLLATERAL, "reading collateral")?;
        Ok(Self {
            report_dir: report_dir.to_owned(),
            platform,
            collateral: collateral.to_owned(),
        })
    }
}

/// A report entry, removed when dropped.
struct Entry {
    path: PathBuf,
}

impl Entry {
    fn create(report_dir: &Path) -> Result<Self, TeeError> {
        let name = format!("agora-{}-{}", std::process::id(), rand::random::<u64>());
        let path = report_dir.join(name);
        std::fs::create_dir(&path).map_err(|e| io_err("creating", &path, e))?;
        Ok(Self { path })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.path) {
            tracing::warn!(entry = %self.path.display(), error = %e, "configfs-tsm: could not remove a report entry");
        }
    }
}

impl EvidenceSource for ConfigfsTsm {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn evidence(&self, report_data: &[u8; 64], _now: u64) -> Result<Evidence, TeeError> {
        let entry = Entry::create(&self.report_dir)?;
        let evidence = request_report(&entry.path, report_data)?;
        let collateral = read_limited(&self.collateral, MAX_COLLATERAL, "reading collateral")?;
        Ok(Evidence {
            evidence,
            collateral,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as the kernel presents it after our `inblob` write: the test writes the
    /// attributes the kernel would.
    fn entry(dir: &Path, outblob: &[u8], generation: &str) -> PathBuf {
        let e = dir.join("entry");
        std::fs::create_dir_all(&e).unwrap();
        std::fs::write(e.join("outblob"), outblob).unwrap();
        std::fs::write(e.join("generation"), generation).unwrap();
        std::fs::write(e.join("provider"), "tdx_guest\n").unwrap();
        e
    }

    #[test]
    fn writes_the_report_data_and_returns_evidence_that_carries_it() {
        let dir = tempfile::tempdir().unwrap();
        let rd = [0x5au8; 64];
        let mut quote = vec![0u8; 568];
        quote.extend_from_slice(&rd);
        quote.extend_from_slice(&[1u8; 100]);
        let e = entry(dir.path(), &quote, "1\n");
        assert_eq!(request_report(&e, &rd).unwrap(), quote);
        assert_eq!(std::fs::read(e.join("inblob")).unwrap(), rd.to_vec());
    }

    #[test]
    fn evidence_without_our_report_data_or_empty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry(dir.path(), &[7u8; 1184], "3");
        assert!(matches!(
            request_report(&e, &[0x11; 64]),
            Err(TeeError::BindingMismatch)
        ));
        let e = entry(dir.path(), &[], "3");
        assert!(request_report(&e, &[0x11; 64])
            .unwrap_err()
            .to_string()
            .contains("no evidence"));
    }

    #[test]
    fn providers_map_to_platforms_and_a_missing_interface_says_why() {
        assert_eq!(
            platform_of_provider("tdx_guest").unwrap(),
            Platform::IntelTdx
        );
        assert_eq!(
            platform_of_provider("sev_guest").unwrap(),
            Platform::AmdSevSnp
        );
        assert!(platform_of_provider("arm_cca_guest").is_err());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("tsm/report");
        let err = ConfigfsTsm::open(&missing, &dir.path().join("c.json")).unwrap_err();
        assert!(
            err.to_string().contains("not a TDX or SEV-SNP guest"),
            "{err}"
        );
    }
}
