//! Yuma Consensus as a pure function.
//!
//! [`run_epoch`] turns a subnet's state ([`EpochInputs`]) and hyperparameters ([`YumaParams`])
//! into everything an epoch stores and emits ([`EpochOutputs`]): consensus, incentive,
//! dividends, validator trust, new validator permits, bonds and the per-uid emission in rao.
//! It covers classic bonds and Yuma3 bonds with or without liquid alpha.
//!
//! Invariants:
//! - Bit-exact with subtensor's production sparse epoch at commit `14bc6f9f`: the same I32F32 /
//!   I64F64 / I96F32 fixed-point operations with the same rounding (multiplications floor,
//!   divisions truncate, everything saturates, division by zero gives 0), and outputs in the
//!   exact `u16` / rao form the chain stores.
//! - Pure and deterministic: no I/O, no floating point, no hash-map iteration.
//! - Never panics: malformed inputs (lengths, uids out of range, duplicate uids in a row) are
//!   rejected with a [`YumaError`].
//! - Cost is linear in the number of weight and bond entries, plus a weighted selection per
//!   column for the consensus.
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
mod sparse;
mod types;

pub use epoch::run_epoch;
pub use error::YumaError;
pub use types::{EpochInputs, EpochOutputs, FixedBits, SparseRow, YumaParams};
