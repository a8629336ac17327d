//! Every case of the Yuma epoch vectors, epoch after epoch, compared field by field.
//!
//! The folder is `$AGORA_YUMA_VECTORS`, else `../shared/yuma-vectors` next to the workspace.
//! When neither exists (a plain clone) the test prints why and passes without checking.

use std::path::PathBuf;

use agora_primitives::fixed::I64F64;
use agora_yuma::{run_epoch, EpochInputs, EpochOutputs, SparseRow, YumaParams};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
struct Case {
    format: String,
    params: YumaParams,
    inputs: State,
    epochs: Vec<Epoch>,
}

#[derive(Clone, Deserialize)]
struct State {
    n: u16,
    owner_uid: Option<u16>,
    stake: Vec<u64>,
    last_update: Vec<u64>,
    block_at_registration: Vec<u64>,
    validator_permit: Vec<bool>,
    weights: Vec<SparseRow>,
    bonds: Vec<SparseRow>,
    #[serde(default)]
    commit_blocks: Option<Vec<Option<u64>>>,
}

#[derive(Deserialize)]
struct Epoch {
    block: u64,
    last_mechanism_step_block: u64,
    rao_emission: u64,
    #[serde(default)]
    changes: Option<Changes>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Changes {
    stake: Option<Vec<u64>>,
    last_update: Option<Vec<u64>>,
    block_at_registration: Option<Vec<u64>>,
    validator_permit: Option<Vec<bool>>,
    #[serde(default, deserialize_with = "present")]
    commit_blocks: Option<Option<Vec<Option<u64>>>>,
    #[serde(default, deserialize_with = "present")]
    owner_uid: Option<Option<u16>>,
    weights_rows: Option<Vec<(u16, SparseRow)>>,
    bonds_rows: Option<Vec<(u16, SparseRow)>>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Expected {
    active: Vec<bool>,
    new_validator_permit: Vec<bool>,
    stake_weight: Vec<u16>,
    consensus: Vec<u16>,
    incentive: Vec<u16>,
    dividends: Vec<u16>,
    validator_trust: Vec<u16>,
    bonds: Vec<SparseRow>,
    server_emission: Vec<u64>,
    validator_emission: Vec<u64>,
    emission: Vec<u64>,
    #[serde(default)]
    fixed_bits: Option<ExpectedBits>,
}

#[derive(Deserialize)]
struct ExpectedBits {
    stake: Vec<i64>,
    active_stake: Vec<i64>,
    consensus: Vec<i64>,
    validator_trust: Vec<i64>,
    incentive: Vec<i64>,
    dividends: Vec<i64>,
}

/// `$AGORA_YUMA_VECTORS` if it names a folder, else `../shared/yuma-vectors` beside the
/// workspace if that exists.
fn vectors_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AGORA_YUMA_VECTORS").map(PathBuf::from) {
        if dir.is_dir() {
            return Some(dir);
        }
        println!("AGORA_YUMA_VECTORS={} is not a folder", dir.display());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/yuma-vectors");
    dir.is_dir().then_some(dir)
}

fn apply(state: &mut State, changes: &Changes) {
    if let Some(v) = &changes.stake {
        state.stake.clone_from(v);
    }
    if let Some(v) = &changes.last_update {
        state.last_update.clone_from(v);
    }
    if let Some(v) = &changes.block_at_registration {
        state.block_at_registration.clone_from(v);
    }
    if let Some(v) = &changes.validator_permit {
        state.validator_permit.clone_from(v);
    }
    if let Some(v) = &changes.commit_blocks {
        state.commit_blocks.clone_from(v);
    }
    if let Some(v) = changes.owner_uid {
        state.owner_uid = v;
    }
    for (uid, row) in changes.weights_rows.iter().flatten() {
        state.weights[usize::from(*uid)].clone_from(row);
    }
    for (uid, row) in changes.bonds_rows.iter().flatten() {
        state.bonds[usize::from(*uid)].clone_from(row);
    }
}

fn inputs(state: &State, epoch: &Epoch) -> EpochInputs {
    EpochInputs {
        n: state.n,
        owner_uid: state.owner_uid,
        stake: state.stake.iter().map(|&s| I64F64::from_num(s)).collect(),
        last_update: state.last_update.clone(),
        block_at_registration: state.block_at_registration.clone(),
        validator_permit: state.validator_permit.clone(),
        weights: state.weights.clone(),
        bonds: state.bonds.clone(),
        commit_blocks: state.commit_blocks.clone(),
        current_block: epoch.block,
        last_mechanism_step_block: epoch.last_mechanism_step_block,
        rao_emission: epoch.rao_emission,
    }
}

/// Records a mismatch of one field, naming the first differing index.
fn compare<T: PartialEq + std::fmt::Debug>(
    out: &mut Vec<String>,
    at: &str,
    field: &str,
    expected: &[T],
    actual: &[T],
) {
    if expected == actual {
        return;
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    out.push(format!(
        "{at}: {field} differs at uid {first}: expected {:?}, got {:?} (lengths {} / {})",
        expected.get(first),
        actual.get(first),
        expected.len(),
        actual.len()
    ));
}

fn check_epoch(out: &mut Vec<String>, at: &str, e: &Expected, a: &EpochOutputs) {
    compare(out, at, "active", &e.active, &a.active);
    compare(
        out,
        at,
        "new_validator_permit",
        &e.new_validator_permit,
        &a.new_validator_permit,
    );
    compare(out, at, "stake_weight", &e.stake_weight, &a.stake_weight);
    compare(out, at, "consensus", &e.consensus, &a.consensus);
    compare(out, at, "incentive", &e.incentive, &a.incentive);
    compare(out, at, "dividends", &e.dividends, &a.dividends);
    compare(
        out,
        at,
        "validator_trust",
        &e.validator_trust,
        &a.validator_trust,
    );
    compare(out, at, "bonds", &e.bonds, &a.bonds);
    compare(
        out,
        at,
        "server_emission",
        &e.server_emission,
        &a.server_emission,
    );
    compare(
        out,
        at,
        "validator_emission",
        &e.validator_emission,
        &a.validator_emission,
    );
    compare(out, at, "emission", &e.emission, &a.emission);
    if let Some(b) = &e.fixed_bits {
        let f = &a.fixed_bits;
        compare(out, at, "fixed_bits.stake", &b.stake, &f.stake);
        compare(
            out,
            at,
            "fixed_bits.active_stake",
            &b.active_stake,
            &f.active_stake,
        );
        compare(out, at, "fixed_bits.consensus", &b.consensus, &f.consensus);
        compare(
            out,
            at,
            "fixed_bits.validator_trust",
            &b.validator_trust,
            &f.validator_trust,
        );
        compare(out, at, "fixed_bits.incentive", &b.incentive, &f.incentive);
        compare(out, at, "fixed_bits.dividends", &b.dividends, &f.dividends);
    }
}

#[test]
fn every_vector_matches_exactly() {
    let Some(dir) = vectors_dir() else {
        println!(
            "SKIPPED: no Yuma vectors found (set AGORA_YUMA_VECTORS or provide ../shared/yuma-vectors)"
        );
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .json vectors in {}", dir.display());

    let mut mismatches: Vec<String> = Vec::new();
    let mut epochs_checked = 0usize;
    for path in &files {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("readable vector");
        let case: Case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(case.format, "yuma-epoch-vectors/v1", "{name}");
        let mut state = case.inputs.clone();
        for (k, epoch) in case.epochs.iter().enumerate() {
            if let Some(changes) = &epoch.changes {
                apply(&mut state, changes);
            }
            let at = format!("{name} epoch {k}");
            match run_epoch(&inputs(&state, epoch), &case.params) {
                Ok(out) => check_epoch(&mut mismatches, &at, &epoch.expected, &out),
                Err(e) => mismatches.push(format!("{at}: rejected: {e}")),
            }
            epochs_checked += 1;
            // Feed back what the chain stored, so one divergence does not cascade.
            state.bonds.clone_from(&epoch.expected.bonds);
            state
                .validator_permit
                .clone_from(&epoch.expected.new_validator_permit);
        }
    }
    println!(
        "{} vector files, {epochs_checked} epochs checked",
        files.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
