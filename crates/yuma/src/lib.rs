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
//! - Large epochs (from 2^19 entries in a stage) split validation, weight masking, consensus
//!   (by column ranges), clipping and the bond stages (by row ranges) over the available cores
//!   with scoped std threads. Ranges are fixed by the input alone and their partial results are
//!   combined in range order; the only cross-range reductions are saturating sums of
//!   non-negative values and maxima, which are order-independent, so the output never depends
//!   on the number of threads (a unit test compares 1, 2, 3 and 7 ranges). The core count is
//!   read once per process (`available_parallelism`); small epochs never ask.
//! - The large per-entry buffers (masked weights, EMA rows, selection keys) are kept on
//!   per-thread shelves and reused by the next call on the same thread, so that a steady stream
//!   of epochs does not fault fresh pages in every time (only the returned bond rows are new).
//!
//! Where the time goes (4096 uids x 256 validators, dense rows: 1M weights and 1M bonds;
//! callgrind instructions over all threads, input generation excluded): classic ~715M (698M
//! before the stages were split: the per-range partial sums cost ~2%), Yuma3 ~519M (512M).
//! Classic, roughly: EMA merge ~250M (recomputing `W_b`, dividing `ΔB` and the old bonds by
//! their column sums, merging each row), dividends with the stored rows ~130M, consensus
//! ~135M (gather ~60M, per-column radix selection ~75M), bond column sums ~70M, clipping ~65M,
//! masking ~40M, validation ~20M. Wall time comes from spreading that over 2 cores and from
//! no longer faulting ~16 MB in per epoch (4k -> 1.3k page faults, the rest are the returned
//! bond rows). On the shared 2-core machine under load 3 to 4, 4096x256 takes 66 to 88 ms
//! classic and 52 to 71 ms Yuma3 (criterion, see `benches/yuma_epoch.rs`): the 18 ms target is
//! not met. Most per-entry work is 128-bit multiplications with their saturation checks (about
//! 10 per bond entry); what remains to try: caching `W_b * A` from the first bond pass, storing
//! the normalised weights once instead of dividing on each of four reads, and a narrower EMA
//! (`u32` with an offset) to halve its memory traffic.
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

pub use epoch::{run_epoch, run_epoch_with};
pub use error::YumaError;
pub use types::{EpochInputs, EpochOutputs, FixedBits, Parallelism, SparseRow, YumaParams};
