//! Intel TDX and SGX DCAP quotes, verified offline by `dcap-qvl` against supplied collateral.
//!
//! `dcap-qvl` checks the quote signature, the QE report, the PCK chain up to the root, the
//! CRLs, the TCB info and QE identity signatures and their `nextUpdate`, and evaluates the
//! TCB level. It rejects `Revoked` and nothing else: this module adds the policy (statuses,
//! advisories, debug, measurements, collateral age) and reports which root verified.

use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;

use crate::anchors::TrustAnchors;
use crate::error::{Result, TeeError};
use crate::evidence::{Measurements, Platform, TcbStatus, TrustAnchor, VerifiedEvidence};
use crate::policy::Policy;
use crate::time::parse_rfc3339;

/// Quote header `tee_type` for SGX.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
/// Quote header `tee_type` for TDX.
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Largest quote accepted; real quotes with an embedded PCK chain are ~5 KiB.
pub const MAX_QUOTE_LEN: usize = 64 * 1024;
/// Largest collateral document accepted (JSON); real ones are ~20 KiB.
pub const MAX_COLLATERAL_LEN: usize = 1024 * 1024;
/// TD attributes byte 0 is the "TD under debug" group; bit 0 is DEBUG, bits 4..=6 are
/// debug-class too (dcap-qvl rejects the same mask).
const TDX_TUD_DEBUG_MASK: u8 = 0x71;
/// SGX ATTRIBUTES.DEBUG.
const SGX_ATTR_DEBUG: u8 = 0x02;

/// Parse collateral JSON (field names as in `dcap-qvl`'s `QuoteCollateralV3`).
pub fn parse_collateral(json: &[u8]) -> Result<QuoteCollateralV3> {
    if json.len() > MAX_COLLATERAL_LEN {
        return Err(TeeError::LimitExceeded(format!(
            "collateral of {} bytes exceeds {MAX_COLLATERAL_LEN}",
            json.len()
        )));
    }
    serde_json::from_slice(json).map_err(|e| TeeError::MalformedCollateral(e.to_string()))
}

/// The platform of a DCAP quote, read from its header (no verification).
pub fn quote_platform(quote: &[u8]) -> Result<Platform> {
    let header: [u8; 8] = quote
        .get(0..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| TeeError::MalformedEvidence("quote shorter than its header".into()))?;
    let [v0, v1, _, _, t0, t1, t2, t3] = header;
    let version = u16::from_le_bytes([v0, v1]);
    let tee_type = u32::from_le_bytes([t0, t1, t2, t3]);
    match (version, tee_type) {
        (3, TEE_TYPE_SGX) => Ok(Platform::IntelSgx),
        (4 | 5, TEE_TYPE_TDX) => Ok(Platform::IntelTdx),
        (4 | 5, TEE_TYPE_SGX) => Ok(Platform::IntelSgx),
        _ => Err(TeeError::MalformedEvidence(format!(
            "unsupported quote version {version} / tee type {tee_type:#x}"
        ))),
    }
}

fn u32_le(b: &[u8], at: usize) -> Result<usize> {
    let end = at
        .checked_add(4)
        .ok_or_else(|| TeeError::MalformedEvidence("offset overflow".into()))?;
    let v: [u8; 4] = b
        .get(at..end)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| TeeError::MalformedEvidence("quote truncated".into()))?;
    usize::try_from(u32::from_le_bytes(v))
        .map_err(|_| TeeError::MalformedEvidence("length overflow".into()))
}

/// The length of the quote structure (header, body, signature data), from its size fields.
fn quote_structure_len(quote: &[u8]) -> Result<usize> {
    const HEADER: usize = 48;
    let version = quote
        .get(..2)
        .and_then(|v| <[u8; 2]>::try_from(v).ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| TeeError::MalformedEvidence("quote truncated".into()))?;
    let overflow = || TeeError::MalformedEvidence("quote length overflow".into());
    // Offset of the u32 signature-data length.
    let sig_len_at = match version {
        3 => HEADER + 384,
        4 => HEADER + 584,
        5 => {
            // v5: body type (u16) and body size (u32) precede the body.
            let body = u32_le(quote, HEADER + 2)?;
            (HEADER + 6).checked_add(body).ok_or_else(overflow)?
        }
        v => {
            return Err(TeeError::MalformedEvidence(format!(
                "unsupported quote version {v}"
            )))
        }
    };
    let sig_len = u32_le(quote, sig_len_at)?;
    if version >= 4 {
        // v4/v5 signature data: signature (64), attestation key (64), then certification
        // data that must be type 6 (QE report certification data). dcap-qvl does not
        // look at this unsigned type field; a canonical quote has the right value.
        let at = sig_len_at.checked_add(4 + 128).ok_or_else(overflow)?;
        let cert_type = quote
            .get(at..at.saturating_add(2))
            .and_then(|t| <[u8; 2]>::try_from(t).ok())
            .map(u16::from_le_bytes);
        if cert_type != Some(6) {
            return Err(TeeError::MalformedEvidence(format!(
                "certification data type {cert_type:?}, expected 6"
            )));
        }
    }
    sig_len_at
        .checked_add(4)
        .and_then(|x| x.checked_add(sig_len))
        .ok_or_else(overflow)
}

/// Quotes come from fixed-size buffers and may carry zero padding after the structure;
/// anything else there is unsigned data and makes the evidence non-canonical.
fn check_trailing_bytes(quote: &[u8]) -> Result<()> {
    let end = quote_structure_len(quote)?;
    match quote.get(end..) {
        Some(tail) if tail.iter().all(|b| *b == 0) => Ok(()),
        Some(_) => Err(TeeError::MalformedEvidence(
            "non-zero bytes after the quote".into(),
        )),
        None => Err(TeeError::MalformedEvidence("quote truncated".into())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dates {
    issue_date: String,
    next_update: String,
}

/// Check the TCB info and QE identity dates against `now` and the policy's maximum age.
/// `dcap-qvl` checks `nextUpdate` too; doing it first gives a precise error.
fn check_collateral_dates(c: &QuoteCollateralV3, now: u64, policy: &Policy) -> Result<()> {
    for (what, json) in [
        ("tcb_info", c.tcb_info.as_str()),
        ("qe_identity", c.qe_identity.as_str()),
    ] {
        let d: Dates = serde_json::from_str(json)
            .map_err(|e| TeeError::MalformedCollateral(format!("{what}: {e}")))?;
        let issued = parse_rfc3339(&d.issue_date)
            .ok_or_else(|| TeeError::MalformedCollateral(format!("{what}: bad issueDate")))?;
        let next_update = parse_rfc3339(&d.next_update)
            .ok_or_else(|| TeeError::MalformedCollateral(format!("{what}: bad nextUpdate")))?;
        if now < issued {
            return Err(TeeError::CollateralNotYetValid { what, issued, now });
        }
        if now > next_update {
            return Err(TeeError::CollateralExpired {
                what,
                next_update,
                now,
            });
        }
        if let Some(max_age_secs) = policy.max_collateral_age_secs {
            // `now >= issued` was checked above.
            if now.saturating_sub(issued) > max_age_secs {
                return Err(TeeError::CollateralTooOld {
                    what,
                    issued,
                    now,
                    max_age_secs,
                });
            }
        }
    }
    Ok(())
}

/// Verify an Intel DCAP quote (TDX or SGX) against its collateral at time `now` (unix
/// seconds), then apply `policy`. Pure: no I/O, no clock.
pub fn verify_quote(
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
    policy: &Policy,
    anchors: &TrustAnchors,
) -> Result<VerifiedEvidence> {
    if quote.len() > MAX_QUOTE_LEN {
        return Err(TeeError::LimitExceeded(format!(
            "quote of {} bytes exceeds {MAX_QUOTE_LEN}",
            quote.len()
        )));
    }
    let platform = quote_platform(quote)?;
    // Parse fully before any crypto so that garbage gets a format error.
    Quote::parse(quote).map_err(|e| TeeError::MalformedEvidence(format!("{e:#}")))?;
    check_trailing_bytes(quote)?;
    check_collateral_dates(collateral, now, policy)?;

    let roots = anchors.intel_roots();
    if roots.is_empty() {
        return Err(TeeError::UntrustedChain(
            "no Intel trust anchor configured".into(),
        ));
    }
    let mut errors = Vec::new();
    for (anchor, root) in roots {
        let verifier = match root {
            None => QuoteVerifier::new_prod(),
            Some(der) => QuoteVerifier::new(der.to_vec()),
        }
        // Debug is a policy decision, reported as `TeeError::DebugEnabled` below.
        .allow_debug(true);
        match verifier.verify(quote, collateral, now) {
            Ok(report) => {
                let ev = to_evidence(platform, anchor, &report)?;
                policy.check(&ev)?;
                return Ok(ev);
            }
            Err(e) => errors.push(format!("{anchor}: {e:#}")),
        }
    }
    Err(TeeError::QuoteVerification(errors.join("; ")))
}

fn to_evidence(
    platform: Platform,
    anchor: TrustAnchor,
    report: &dcap_qvl::verify::VerifiedReport,
) -> Result<VerifiedEvidence> {
    let tcb_status = TcbStatus::from_intel(&report.status).ok_or_else(|| {
        TeeError::QuoteVerification(format!("unknown TCB status {}", report.status))
    })?;
    let (measurements, report_data, debug) = match &report.report {
        Report::TD10(td) => td10(td),
        Report::TD15(td) => td10(&td.base),
        Report::TD15Ex(td) => td10(&td.base.base),
        Report::SgxEnclave(e) => (
            Measurements::IntelSgx {
                mrenclave: e.mr_enclave,
                mrsigner: e.mr_signer,
            },
            e.report_data,
            e.attributes
                .first()
                .is_some_and(|a| a & SGX_ATTR_DEBUG != 0),
        ),
    };
    if measurements.platform() != platform {
        return Err(TeeError::PlatformMismatch {
            declared: platform,
            actual: measurements.platform(),
        });
    }
    Ok(VerifiedEvidence {
        platform,
        tcb_status,
        advisory_ids: report.advisory_ids.clone(),
        measurements,
        report_data,
        debug,
        trust_anchor: anchor,
        snp: None,
    })
}

fn td10(td: &dcap_qvl::quote::TDReport10) -> (Measurements, [u8; 64], bool) {
    (
        Measurements::IntelTdx {
            mrtd: td.mr_td,
            rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
        },
        td.report_data,
        td.td_attributes
            .first()
            .is_some_and(|a| a & TDX_TUD_DEBUG_MASK != 0),
    )
}
