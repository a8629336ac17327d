//! The JSON report of `agora tee verify <evidence> [--collateral F] [--policy F] [--now UNIX]`.
//!
//! The binary reads the files (and the clock when `--now` is absent) and calls
//! [`verify_files_report`]; everything else happens here, without I/O.
//!
//! A policy file is the JSON form of [`Policy`]; omitted fields take their defaults:
//!
//! ```json
//! {
//!   "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
//!   "rejected_advisories": ["INTEL-SA-00837"],
//!   "allow_debug": false,
//!   "allowed_measurements": [
//!     {"platform": "intel_tdx", "mrtd": "<96 hex>", "rtmr": ["<96 hex>", "…", "…", "…"]},
//!     {"platform": "intel_sgx", "mrenclave": "<64 hex>", "mrsigner": "<64 hex>"},
//!     {"platform": "amd_sev_snp", "measurement": "<96 hex>"}
//!   ],
//!   "max_collateral_age_secs": 2592000,
//!   "snp_min_tcb": {"bootloader": 4, "tee": 0, "snp": 22, "microcode": 213},
//!   "snp_max_vmpl": 0
//! }
//! ```

use serde_json::{json, Map, Value};

use crate::anchors::TrustAnchors;
use crate::bundle::{detect_platform, verify_evidence};
use crate::error::{Result, TeeError};
use crate::evidence::{Measurements, VerifiedEvidence};
use crate::policy::Policy;

/// Evidence given as hex text (e.g. `report_milan.hex`) is decoded; anything else is raw.
fn decode_evidence(bytes: &[u8]) -> Result<Vec<u8>> {
    let trimmed: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let looks_hex =
        !trimmed.is_empty() && trimmed.len() % 2 == 0 && trimmed.iter().all(u8::is_ascii_hexdigit);
    if looks_hex {
        hex::decode(&trimmed).map_err(|e| TeeError::MalformedEvidence(format!("hex: {e}")))
    } else {
        Ok(bytes.to_vec())
    }
}

/// Measurements as a flat JSON object of hex strings.
pub fn measurements_json(m: &Measurements) -> Value {
    let mut o = Map::new();
    match m {
        Measurements::IntelTdx { mrtd, rtmr } => {
            o.insert("mrtd".into(), hex::encode(mrtd).into());
            for (i, r) in rtmr.iter().enumerate() {
                o.insert(format!("rtmr{i}"), hex::encode(r).into());
            }
        }
        Measurements::IntelSgx {
            mrenclave,
            mrsigner,
        } => {
            o.insert("mrenclave".into(), hex::encode(mrenclave).into());
            o.insert("mrsigner".into(), hex::encode(mrsigner).into());
        }
        Measurements::AmdSevSnp { measurement } => {
            o.insert("measurement".into(), hex::encode(measurement).into());
        }
    }
    Value::Object(o)
}

fn success(ev: &VerifiedEvidence) -> Value {
    json!({
        "ok": true,
        "platform": ev.platform.as_str(),
        "tcb_status": ev.tcb_status.as_str(),
        "advisory_ids": ev.advisory_ids,
        "measurements": measurements_json(&ev.measurements),
        "report_data": hex::encode(ev.report_data),
        "debug": ev.debug,
        "trust_anchor": ev.trust_anchor.as_str(),
    })
}

fn failure(evidence: &[u8], err: &TeeError) -> Value {
    let platform = detect_platform(evidence)
        .map(|p| Value::from(p.as_str()))
        .unwrap_or(Value::Null);
    json!({
        "ok": false,
        "error": err.to_string(),
        "platform": platform,
        "tcb_status": Value::Null,
        "measurements": Value::Null,
        "report_data": Value::Null,
        "trust_anchor": Value::Null,
    })
}

/// `agora tee verify`: verify `evidence` (raw quote or report, or its hex text) with the
/// contents of `--collateral` (Intel: collateral JSON; AMD: VCEK/ASK PEM bundle or VCEK
/// DER) and `--policy` (JSON [`Policy`], default: UpToDate only, no debug, any image) at
/// `now` (unix seconds), against the production trust anchors.
///
/// Returns `{"ok": bool, "error"?: string, "platform", "tcb_status", "measurements": {...},
/// "report_data", "trust_anchor"}` (plus `advisory_ids` and `debug` on success).
pub fn verify_files_report(
    evidence: &[u8],
    collateral: Option<&[u8]>,
    policy: Option<&[u8]>,
    now: u64,
) -> Value {
    verify_files_report_with(
        evidence,
        collateral,
        policy,
        now,
        &TrustAnchors::production(),
    )
}

/// [`verify_files_report`] with explicit trust anchors.
pub fn verify_files_report_with(
    evidence: &[u8],
    collateral: Option<&[u8]>,
    policy: Option<&[u8]>,
    now: u64,
    anchors: &TrustAnchors,
) -> Value {
    let evidence = match decode_evidence(evidence) {
        Ok(e) => e,
        Err(err) => return failure(&[], &err),
    };
    let run = || -> Result<VerifiedEvidence> {
        let policy = match policy {
            Some(p) => Policy::from_json(p)?,
            None => Policy::default(),
        };
        let collateral = collateral.ok_or_else(|| {
            TeeError::MalformedCollateral("collateral required (--collateral F)".into())
        })?;
        verify_evidence(None, &evidence, collateral, now, &policy, anchors)
    };
    match run() {
        Ok(ev) => success(&ev),
        Err(err) => failure(&evidence, &err),
    }
}
