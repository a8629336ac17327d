//! Yuma Consensus as a pure function.
//!
//! [`run_epoch`] turns a subnet's state ([`EpochInputs`]) and hyperparameters ([`YumaParams`])
//! into everything an epoch stores and emits ([`EpochOutputs`]): consensus, incentive,
//! dividends, validator trust, new validator permits, bonds and the per-uid emission in rao.
//! It covers classic bonds and Yuma3 bonds with or without liquid alpha, the stake threshold,
//! the owner's exemptions and the commit-reveal column mask.
//!
//! Invariants:
//! - Bit-exact with subtensor's production sparse epoch at commit `14bc6f9f`: the same I32F32 /
//!   I64F64 / I96F32 fixed-point operations with the same rounding (multiplications floor,
//!   divisions truncate, `safe_div` gives 0 on a zero divisor or overflow), the same order of
//!   masks, and outputs in the exact `u16` / rao form the chain stores, bond rows in stored
//!   order. Where subtensor would overflow (sums beyond the fixed-point range, which realistic
//!   inputs never reach) this crate saturates instead.
//! - Pure and deterministic: no I/O, no floating point, no hash-map iteration.
//! - Never panics: malformed inputs (lengths, uids out of range, duplicate uids in a row,
//!   negative stake) are rejected with a [`YumaError`].
//! - Cost is linear in the number of weight and bond entries: rows are walked in flat arrays,
//!   each column's consensus is found by a radix selection over its entries, and divisions by
//!   a per-row or per-column divisor take one multiplication.
//!
//! Tests: `cargo test -p agora-yuma` (the shared vectors when present, cases transcribed from
//! subtensor's tests, degenerate subnets, errors, properties). Benchmarks:
//! `cargo bench -p agora-yuma`.
//!
//! No feature flags.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::expect_used,
        clippy::panic
    )
)]

mod epoch;
mod error;
mod fx;
mod median;
mod par;
mod pool;
mod sparse;
mod types;

pub use epoch::run_epoch;
pub use error::YumaError;
pub use types::{EpochInputs, EpochOutputs, FixedBits, SparseRow, YumaParams};
